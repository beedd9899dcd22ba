// PKU-MMD readers on the real fixtures (0016-L skeleton + labels, the two official split files,
// the phase-2 A10N08-L skeleton), MAMP clip cutting, and malformed inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ntu.h"
#include "core/pku.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

using test::expect_input_error;
using test::write_file;

std::string pku(const std::string& name) {
  return test::real("pku_mmd/" + name);
}

TEST(PkuSkeleton, RealPhase1File) {
  std::string p = pku("PKU_Skeleton_Renew/0016-L.txt");
  REQUIRE_FIXTURE(p);
  PkuSkeleton s = read_pku_skeleton(p);
  EXPECT_EQ(s.frames, 1370);
  ASSERT_EQ(s.values.size(), size_t(1370) * 150);
  // First line starts "0.080380 -0.083040 2.296283"; second "0.067653 -0.082575 2.288223".
  EXPECT_EQ(s.values[0], 0.080380);  // strtod-exact: the same decimal gives the same double
  EXPECT_EQ(s.values[1], -0.083040);
  EXPECT_EQ(s.values[150 + 2], 2.288223);
}

TEST(PkuSkeleton, RealPhase2File) {
  std::string p = pku("v2/A10N08-L.txt");
  REQUIRE_FIXTURE(p);
  PkuSkeleton s = read_pku_skeleton(p);
  EXPECT_EQ(s.frames, 1040);
  EXPECT_TRUE(is_pku_video_id("A10N08-L", 2));
  EXPECT_FALSE(is_pku_video_id("A10N08-L", 1));
  EXPECT_TRUE(is_pku_video_id("0016-L", 1));
  EXPECT_FALSE(is_pku_video_id("0016-X", 1));
  EXPECT_FALSE(is_pku_video_id("016-L", 0));
}

TEST(PkuLabels, RealFile) {
  std::string p = pku("Train_Label_PKU_final/0016-L.txt");
  REQUIRE_FIXTURE(p);
  auto l = read_pku_labels(p);
  ASSERT_EQ(l.size(), 8u);
  EXPECT_EQ(l[0].cls, 26);
  EXPECT_EQ(l[0].start, 124);
  EXPECT_EQ(l[0].end, 161);
  EXPECT_EQ(l[0].confidence, 1);
  EXPECT_EQ(l[2].cls, 27);
  EXPECT_EQ(l[2].confidence, 0);  // the confidence-0 row is kept (MAMP ignores confidence)
  EXPECT_EQ(l[7].end, 1366);
}

TEST(PkuClips, RealVideoCutAsMamp) {
  std::string sp = pku("PKU_Skeleton_Renew/0016-L.txt"),
              lp = pku("Train_Label_PKU_final/0016-L.txt");
  REQUIRE_FIXTURE(sp);
  REQUIRE_FIXTURE(lp);
  PkuSkeleton s = read_pku_skeleton(sp);
  auto labels = read_pku_labels(lp);
  int dropped = -1;
  auto clips = pku_cut_clips(s, labels, 300, &dropped);
  ASSERT_EQ(clips.size(), 8u);  // all 8 labelled instances, none all-zero
  EXPECT_EQ(dropped, 0);
  for (size_t i = 0; i < clips.size(); ++i) {
    const auto& c = clips[i];
    EXPECT_EQ(c.label, labels[i].cls - 1);
    EXPECT_EQ(c.label_index, int(i));
    EXPECT_EQ(c.length, labels[i].end - labels[i].start);  // seq[start:end]: end - start frames
    EXPECT_EQ(c.frames, c.length);                         // all shorter than 300
    // Row 0 of the clip is file row `start` (0-based), i.e. the 2nd labelled frame.
    std::vector<float> got(c.x.begin(), c.x.begin() + 150), ref(150);
    for (int k = 0; k < 150; ++k)
      ref[size_t(k)] = float(s.values[size_t(labels[i].start) * 150 + size_t(k)]);
    EXPECT_CLOSE("clip first row", got, ref, 0.0, 0.0);  // float64 -> float32 cast, as numpy
  }
  EXPECT_EQ(clips[0].length, 37);
  EXPECT_EQ(clips[7].length, 85);
}

TEST(PkuClips, TruncationZeroClipsAndClamping) {
  PkuSkeleton s;
  s.frames = 400;
  s.values.assign(400 * 150, 0.0);
  for (int f = 100; f < 400; ++f)
    for (int k = 0; k < 150; ++k) s.values[size_t(f) * 150 + size_t(k)] = f + k * 1e-3;
  std::vector<PkuLabel> labels = {
      {1, 10, 50, 1},     // rows 10..49: all zero -> dropped
      {2, 50, 420, 1},    // end past the video: rows 50..399 (350) -> first 300 kept
      {3, 200, 150, 1},   // end < start: empty -> dropped
      {51, 399, 400, 1},  // one row
      {4, 500, 600, 1},   // past the end: empty -> dropped
  };
  int dropped = 0;
  auto c = pku_cut_clips(s, labels, 300, &dropped);
  EXPECT_EQ(dropped, 3);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].label, 1);
  EXPECT_EQ(c[0].length, 350);
  EXPECT_EQ(c[0].frames, 300);
  EXPECT_EQ(c[0].x[0], 0.f);                   // row 50 is still zero
  EXPECT_EQ(c[0].x[299 * 150], float(349.0));  // last kept row = file row 349
  EXPECT_EQ(c[1].label, 50);
  EXPECT_EQ(c[1].frames, 1);
  EXPECT_EQ(c[1].label_index, 3);
}

TEST(PkuSplit, OfficialFiles) {
  std::string xs = pku("Split/cross-subject.txt"), xv = pku("Split/cross-view.txt");
  REQUIRE_FIXTURE(xs);
  REQUIRE_FIXTURE(xv);
  PkuSplit a = read_pku_split(xs, 1);
  EXPECT_EQ(a.train.size(), 944u);
  EXPECT_EQ(a.test.size(), 132u);
  EXPECT_EQ(a.train.front(), "0002-L");
  EXPECT_EQ(a.test.front(), "0291-L");
  PkuSplit b = read_pku_split(xv, 1);
  EXPECT_EQ(b.train.size(), 717u);
  EXPECT_EQ(b.test.size(), 359u);
  // CRLF copy reads the same.
  std::string bytes = read_file_bytes(xs), crlf;
  for (char c : bytes) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  PkuSplit c = parse_pku_split(crlf.data(), crlf.size(), "crlf", 1);
  EXPECT_EQ(c.train, a.train);
  EXPECT_EQ(c.test, a.test);
}

TEST(PkuSplit, Malformed) {
  std::string t = "Training videos: \n0002-L, 0002-M, 0002-Q, \nValidataion videos: \n0291-L, \n";
  expect_input_error([&] { parse_pku_split(t.data(), t.size(), "s.txt", 1); },
                     {"s.txt:2:", "0002-Q"});
  t = "Training videos: \n0002-L, 0002-M, \nValidataion videos: \n0291-L, 0002-M\n";
  expect_input_error([&] { parse_pku_split(t.data(), t.size(), "s.txt", 1); },
                     {"s.txt:4:", "both lists"});
  t = "Training videos: \nA01N01-L, \nValidataion videos: \n0291-L, \n";
  expect_input_error([&] { parse_pku_split(t.data(), t.size(), "s.txt", 1); },
                     {"s.txt:2:", "A01N01-L"});
  t = "0002-L, 0002-M, \n";
  expect_input_error([&] { parse_pku_split(t.data(), t.size(), "s.txt", 1); },
                     {"s.txt:1:", "header"});
  t = "Training videos: \n";
  expect_input_error([&] { parse_pku_split(t.data(), t.size(), "s.txt", 1); }, {"s.txt:2:"});
  t = "Training videos: \nA01N01-L, A26N13-R, \nValidataion videos: \nA02N01-M, \n";
  PkuSplit ok = parse_pku_split(t.data(), t.size(), "v2.txt", 2);
  EXPECT_EQ(ok.train, (std::vector<std::string>{"A01N01-L", "A26N13-R"}));
  EXPECT_EQ(ok.test, (std::vector<std::string>{"A02N01-M"}));
}

TEST(PkuParse, MalformedFilesNameFileAndLine) {
  std::string dir = test::scratch_dir("pku-malformed");
  std::string p = dir + "/labels_text.txt";
  write_file(p, "26,124,161,1\n18,abc,292,2\n");
  expect_input_error([&] { read_pku_labels(p); }, {p, ":2:", "not an integer", "abc"});
  p = dir + "/labels_class.txt";
  write_file(p, "26,124,161,1\n\n52,261,292,2\n");
  expect_input_error([&] { read_pku_labels(p); }, {p, ":3:", "class 52"});
  p = dir + "/labels_fields.txt";
  write_file(p, "26,124\n");
  expect_input_error([&] { read_pku_labels(p); }, {p, ":1:", "fields"});
  p = dir + "/labels_neg.txt";
  write_file(p, "26,-1,5,1\n");
  expect_input_error([&] { read_pku_labels(p); }, {p, ":1:", "negative"});
  p = dir + "/labels_float.txt";
  write_file(p, "26,1.5,5,1\n");
  expect_input_error([&] { read_pku_labels(p); }, {p, ":1:", "not an integer"});

  std::string row;
  for (int k = 0; k < 150; ++k) row += (k ? " " : "") + std::to_string(k * 0.5);
  p = dir + "/skel_short.txt";
  write_file(p, row + "\n" + row.substr(0, row.rfind(' ')) + "\n");
  expect_input_error([&] { read_pku_skeleton(p); }, {p, ":2:", "149 values"});
  p = dir + "/skel_long.txt";
  write_file(p, row + " 1.0\n");
  expect_input_error([&] { read_pku_skeleton(p); }, {p, ":1:", "151 values"});
  p = dir + "/skel_text.txt";
  write_file(p, row + "\n\n" + "x" + row.substr(1) + "\n");
  expect_input_error([&] { read_pku_skeleton(p); }, {p, ":3:", "non-numeric"});
  p = dir + "/skel_ok.txt";
  write_file(p, row + "\r\n\r\n" + row + "\r\n");  // blank lines skipped as np.loadtxt does
  PkuSkeleton s = read_pku_skeleton(p);
  EXPECT_EQ(s.frames, 2);
  EXPECT_EQ(s.values[150 + 3], 1.5);
}

TEST(PkuLayout, OfficialAndMampNames) {
  std::string real = test::real("pku_mmd");
  REQUIRE_FIXTURE(real + "/Split/cross-subject.txt");
  PkuLayout L = find_pku_layout(real, 1);
  EXPECT_EQ(L.skeleton_dir, real + "/PKU_Skeleton_Renew");
  EXPECT_EQ(L.label_dir, real + "/Train_Label_PKU_final");
  EXPECT_EQ(L.xsub_split, real + "/Split/cross-subject.txt");
  EXPECT_EQ(L.xview_split, real + "/Split/cross-view.txt");
  std::string d = test::scratch_dir("pku-layout");
  expect_input_error([&] { find_pku_layout(d, 2); }, {d, "skeleton"});
  std::filesystem::create_directories(d + "/skeleton");
  std::filesystem::create_directories(d + "/label");
  expect_input_error([&] { find_pku_layout(d, 2); }, {"cross_subject_v2.txt"});
  write_file(d + "/cross_subject_v2.txt", "x");
  L = find_pku_layout(d, 2);
  EXPECT_EQ(L.xsub_split, d + "/cross_subject_v2.txt");
  EXPECT_EQ(L.xview_split, "");
}

}  // namespace
}  // namespace hacm
