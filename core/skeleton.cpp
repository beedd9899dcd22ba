#include "core/skeleton.h"

namespace hacm {

const char* ntu_joint_name(int j) {
  static const char* const kNames[kNtuJoints] = {
      "SpineBase",     "SpineMid",    "Neck",      "Head",          "ShoulderLeft",
      "ElbowLeft",     "WristLeft",   "HandLeft",  "ShoulderRight", "ElbowRight",
      "WristRight",    "HandRight",   "HipLeft",   "KneeLeft",      "AnkleLeft",
      "FootLeft",      "HipRight",    "KneeRight", "AnkleRight",    "FootRight",
      "SpineShoulder", "HandTipLeft", "ThumbLeft", "HandTipRight",  "ThumbRight"};
  return (j >= 0 && j < kNtuJoints) ? kNames[j] : "?";
}

const std::array<std::pair<int, int>, kNtuJoints>& ntu_bones() {
  // 1-based list of the feeder minus one.
  static const std::array<std::pair<int, int>, kNtuJoints> kBones = {{
      {0, 1},   {1, 20},  {2, 20},  {3, 2},   {4, 20},  {5, 4},   {6, 5},   {7, 6},  {8, 20},
      {9, 8},   {10, 9},  {11, 10}, {12, 0},  {13, 12}, {14, 13}, {15, 14}, {16, 0}, {17, 16},
      {18, 17}, {19, 18}, {20, 20}, {21, 22}, {22, 7},  {23, 24}, {24, 11},
  }};
  return kBones;
}

const std::array<int, kNtuJoints>& ntu_parents() {
  static const std::array<int, kNtuJoints> kParents = {
      -1, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11};
  return kParents;
}

const std::array<int, kNtuJoints>& ntu_fk_order() {
  static const std::array<int, kNtuJoints> kOrder = {
      0, 1, 20, 2, 3, 4, 5, 6, 7, 21, 22, 8, 9, 10, 11, 23, 24, 12, 13, 14, 15, 16, 17, 18, 19};
  return kOrder;
}

const std::array<int, kNtuJoints>& ntu_mirror() {
  static const std::array<int, kNtuJoints> kMirror = {
      0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24, 21, 22};
  return kMirror;
}

const std::array<int, kKeptJoints>& hacm_kept_joints() {
  static const std::array<int, kKeptJoints> kKept = {2,  3,  5,  6,  7,  9,  10, 11, 13,
                                                     14, 15, 17, 18, 19, 21, 22, 23, 24};
  return kKept;
}

const std::array<int, kRootJoints>& hacm_root_joints() {
  static const std::array<int, kRootJoints> kRoot = {0, 1, 4, 8, 12, 16, 20};
  return kRoot;
}

void split_joints(const float* x, int T, int M, float* kept, float* root) {
  const auto& kk = hacm_kept_joints();
  const auto& rr = hacm_root_joints();
  // x index: ((c*T + t)*25 + v)*M + m
  auto at = [&](int c, int t, int v, int m) {
    return x[((int64_t(c) * T + t) * kNtuJoints + v) * M + m];
  };
  for (int m = 0; m < M; ++m)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < 3; ++c) {
        if (kept)
          for (int k = 0; k < kKeptJoints; ++k)
            kept[((int64_t(m) * T + t) * kKeptJoints + k) * 3 + c] = at(c, t, kk[k], m);
        if (root)
          for (int k = 0; k < kRootJoints; ++k)
            root[((int64_t(m) * T + t) * kRootJoints + k) * 3 + c] = at(c, t, rr[k], m);
      }
}

}  // namespace hacm
