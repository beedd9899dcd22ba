// NTU 25-joint topology and HA-CM's kept/root joint split.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/skeleton.h"

namespace hacm {
namespace {

TEST(Skeleton, KeptAndRootJointsAreTheSpecLists) {
  const std::vector<int> kept(hacm_kept_joints().begin(), hacm_kept_joints().end());
  const std::vector<int> root(hacm_root_joints().begin(), hacm_root_joints().end());
  EXPECT_EQ(kept,
            (std::vector<int>{2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 24}));
  EXPECT_EQ(root, (std::vector<int>{0, 1, 4, 8, 12, 16, 20}));
  std::set<int> all(kept.begin(), kept.end());
  all.insert(root.begin(), root.end());
  EXPECT_EQ(all.size(), size_t(kNtuJoints));  // a partition of 0..24
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 24);
}

TEST(Skeleton, BonesMatchTheFeederList) {
  // 1-based (child,parent) pairs of MAMP feeder_ntu.py.
  const int kOneBased[25][2] = {
      {1, 2},   {2, 21},  {3, 21},  {4, 3},   {5, 21},  {6, 5},   {7, 6},   {8, 7},  {9, 21},
      {10, 9},  {11, 10}, {12, 11}, {13, 1},  {14, 13}, {15, 14}, {16, 15}, {17, 1}, {18, 17},
      {19, 18}, {20, 19}, {21, 21}, {22, 23}, {23, 8},  {24, 25}, {25, 12}};
  const auto& bones = ntu_bones();
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(bones[size_t(i)].first, kOneBased[i][0] - 1) << "bone " << i;
    EXPECT_EQ(bones[size_t(i)].second, kOneBased[i][1] - 1) << "bone " << i;
  }
}

TEST(Skeleton, KinematicTreeIsRootedAndOrdered) {
  const auto& par = ntu_parents();
  const auto& order = ntu_fk_order();
  std::vector<int> pos(kNtuJoints, -1);
  for (int k = 0; k < kNtuJoints; ++k) pos[size_t(order[size_t(k)])] = k;
  int roots = 0;
  for (int j = 0; j < kNtuJoints; ++j) {
    ASSERT_GE(pos[size_t(j)], 0) << "joint " << j << " missing from fk order";
    if (par[size_t(j)] < 0) {
      ++roots;
      EXPECT_EQ(j, kSpineBase);
    } else {
      EXPECT_LT(pos[size_t(par[size_t(j)])], pos[size_t(j)]) << "parent after child " << j;
    }
  }
  EXPECT_EQ(roots, 1);
  // Same adjacency as the bone list except the thumb/hand-tip re-rooting and the self-loop.
  EXPECT_EQ(par[kHandL], kWristL);
  EXPECT_EQ(par[kSpineShoulder], kSpineMid);
  EXPECT_EQ(par[kHandTipR], kHandR);
}

TEST(Skeleton, MirrorIsAnInvolutionThatSwapsSides) {
  const auto& mir = ntu_mirror();
  for (int j = 0; j < kNtuJoints; ++j) EXPECT_EQ(mir[size_t(mir[size_t(j)])], j);
  EXPECT_EQ(mir[kHandL], kHandR);
  EXPECT_EQ(mir[kThumbR], kThumbL);
  EXPECT_EQ(mir[kHead], kHead);
  std::string l = ntu_joint_name(kElbowL), r = ntu_joint_name(mir[kElbowL]);
  EXPECT_EQ(l, "ElbowLeft");
  EXPECT_EQ(r, "ElbowRight");
  EXPECT_STREQ(ntu_joint_name(25), "?");
}

TEST(Skeleton, SplitJointsGathersModelLayout) {
  const int T = 4, M = 2;
  std::vector<float> x(size_t(3 * T * 25 * M));
  auto code = [](int c, int t, int v, int m) { return float(c + 10 * t + 100 * v + 10000 * m); };
  for (int c = 0; c < 3; ++c)
    for (int t = 0; t < T; ++t)
      for (int v = 0; v < 25; ++v)
        for (int m = 0; m < M; ++m) x[size_t(((c * T + t) * 25 + v) * M + m)] = code(c, t, v, m);
  std::vector<float> kept(size_t(M * T * 18 * 3)), root(size_t(M * T * 7 * 3));
  split_joints(x.data(), T, M, kept.data(), root.data());
  for (int m = 0; m < M; ++m)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < 3; ++c) {
        for (int k = 0; k < 18; ++k)
          EXPECT_EQ(kept[size_t(((m * T + t) * 18 + k) * 3 + c)],
                    code(c, t, hacm_kept_joints()[size_t(k)], m));
        for (int k = 0; k < 7; ++k)
          EXPECT_EQ(root[size_t(((m * T + t) * 7 + k) * 3 + c)],
                    code(c, t, hacm_root_joints()[size_t(k)], m));
      }
}

}  // namespace
}  // namespace hacm
