// NTU .skeleton parser, sample names, missing-skeleton lists and split lists, on every real
// fixture of ../shared/data/real/ntu (PROVENANCE.md: frame counts, bodies per frame, CRLF/LF,
// the zero-body file) and on malformed copies made in a scratch directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/npz.h"
#include "core/ntu.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

using test::expect_input_error;
using test::write_file;

std::string ntu(const std::string& name) {
  return test::real("ntu/" + name);
}

// Histogram body count -> number of frames.
std::map<int, int> histogram(const NtuSkeleton& s) {
  std::map<int, int> h;
  for (int b : s.bodies_per_frame) h[b]++;
  return h;
}

struct Expect {
  const char* name;
  int frames;
  std::map<int, int> bodies;
  bool crlf;
};

// PROVENANCE.md's table of the NTU fixtures.
const std::vector<Expect>& expectations() {
  static const std::vector<Expect> e = {
      {"S001C001P001R001A001", 103, {{1, 103}}, false},
      {"S001C003P008R002A058", 70, {{2, 70}}, true},
      {"S017C003P020R002A059", 111, {{1, 79}, {2, 32}}, true},
      {"S018C001P008R002A061", 80, {{1, 80}}, true},
      {"S032C003P106R001A070", 36, {{1, 36}}, true},
      {"S001C002P006R001A008", 71, {{0, 71}}, false},
  };
  return e;
}

TEST(NtuParse, EveryRealFixture) {
  for (const auto& e : expectations()) {
    std::string path = ntu(std::string(e.name) + ".skeleton");
    REQUIRE_FIXTURE(path);
    std::string bytes = read_file_bytes(path);
    EXPECT_EQ(bytes.find("\r\n") != std::string::npos, e.crlf) << e.name;
    NtuSkeleton s = read_ntu_skeleton(path);
    EXPECT_EQ(s.file_frames, e.frames) << e.name;
    EXPECT_EQ(histogram(s), e.bodies) << e.name;
    int with_body = 0;
    int64_t appearances = 0, per_frame_sum = 0;
    for (int b : s.bodies_per_frame) with_body += b > 0, per_frame_sum += b;
    EXPECT_EQ(s.kept_frames, with_body) << e.name;
    for (const auto& b : s.bodies) {
      appearances += b.count;
      EXPECT_EQ(b.xyz.size(), size_t(b.count) * 75) << e.name;
      EXPECT_GE(b.first, 0);
      EXPECT_LE(b.first + b.count, s.kept_frames) << e.name << " body " << b.id;
      EXPECT_GE(b.id.size(), 15u) << "bodyID kept as the full 64-bit text";
    }
    EXPECT_EQ(appearances, per_frame_sum) << e.name;
  }
}

TEST(NtuParse, FirstValuesAndBodyIds) {
  std::string path = ntu("S017C003P020R002A059.skeleton");
  REQUIRE_FIXTURE(path);
  NtuSkeleton s = read_ntu_skeleton(path);
  ASSERT_FALSE(s.bodies.empty());
  // Line 3 is the first body-info line, line 5 the first joint:
  // "72057594037937917 0 0 0 1 1 0 0.3208714 -0.2772838 2" / "-1.563335 -0.301858 2.893202 ..."
  EXPECT_EQ(s.bodies[0].id, "72057594037937917");  // exact: no float round trip of the id
  std::vector<float> got(s.bodies[0].xyz.begin(), s.bodies[0].xyz.begin() + 3);
  std::vector<float> ref = {float(-1.563335), float(-0.301858), float(2.893202)};
  // Text -> double -> float32, as numpy's float32 conversion of a Python float: bit-exact.
  EXPECT_CLOSE("S017 first joint", got, ref, 0.0, 0.0);
  // 32 frames with 2 bodies: more than one bodyID in this file.
  EXPECT_GE(s.bodies.size(), 2u);

  std::string p1 = ntu("S001C001P001R001A001.skeleton");
  REQUIRE_FIXTURE(p1);
  NtuSkeleton a = read_ntu_skeleton(p1);
  ASSERT_EQ(a.bodies.size(), 1u);
  EXPECT_EQ(a.bodies[0].id, "72057594037931101");
  EXPECT_EQ(a.bodies[0].count, 103);
  EXPECT_EQ(a.bodies[0].first, 0);
}

TEST(NtuParse, ZeroBodyFile) {
  std::string path = ntu("S001C002P006R001A008.skeleton");
  REQUIRE_FIXTURE(path);
  NtuSkeleton s = read_ntu_skeleton(path);
  EXPECT_EQ(s.file_frames, 71);
  EXPECT_EQ(s.kept_frames, 0);
  EXPECT_TRUE(s.bodies.empty());
}

// The same file with LF, CRLF and lone-CR line ends parses to identical values.
TEST(NtuParse, LineEndingsAreEquivalent) {
  std::string path = ntu("S001C001P001R001A001.skeleton");
  REQUIRE_FIXTURE(path);
  std::string lf = read_file_bytes(path);
  ASSERT_EQ(lf.find('\r'), std::string::npos);
  std::string crlf, cr;
  for (char c : lf) {
    if (c == '\n')
      crlf += "\r\n", cr += '\r';
    else
      crlf += c, cr += c;
  }
  NtuSkeleton a = parse_ntu_skeleton(lf.data(), lf.size(), "lf");
  for (const std::string* v : {&crlf, &cr}) {
    NtuSkeleton b = parse_ntu_skeleton(v->data(), v->size(), "variant");
    ASSERT_EQ(b.bodies.size(), a.bodies.size());
    EXPECT_EQ(b.bodies_per_frame, a.bodies_per_frame);
    EXPECT_EQ(b.bodies[0].id, a.bodies[0].id);
    EXPECT_CLOSE("line-ending variant", b.bodies[0].xyz, a.bodies[0].xyz, 0.0, 0.0);  // same text
  }
  // A CRLF file converted to LF gives the same values too.
  std::string p2 = ntu("S032C003P106R001A070.skeleton");
  REQUIRE_FIXTURE(p2);
  std::string c2 = read_file_bytes(p2), l2;
  for (char c : c2)
    if (c != '\r') l2 += c;
  NtuSkeleton x = parse_ntu_skeleton(c2.data(), c2.size(), "crlf");
  NtuSkeleton y = parse_ntu_skeleton(l2.data(), l2.size(), "lf");
  EXPECT_CLOSE("crlf vs lf", x.bodies[0].xyz, y.bodies[0].xyz, 0.0, 0.0);  // same text
}

// Body count changing between frames, a body leaving and coming back, and a 0-body frame in the
// middle (dropped: kept-frame indices skip it).
TEST(NtuParse, SyntheticVaryingBodies) {
  auto joint_lines = [](double base) {
    std::string s = "25\n";
    for (int j = 0; j < 25; ++j) s += std::to_string(base + j) + " 0.5 2.0 1 2 3 4 0 0 0 0 2\n";
    return s;
  };
  std::string t = "4\n1\n111 0 0 0 0 0 0 0 0 2\n" + joint_lines(0) + "0\n" +
                  "2\n222 0 0 0 0 0 0 0 0 2\n" + joint_lines(100) + "111 0 0 0 0 0 0 0 0 2\n" +
                  joint_lines(1) + "1\n222 0 0 0 0 0 0 0 0 2\n" + joint_lines(101);
  NtuSkeleton s = parse_ntu_skeleton(t.data(), t.size(), "synthetic");
  EXPECT_EQ(s.file_frames, 4);
  EXPECT_EQ(s.kept_frames, 3);
  EXPECT_EQ(s.bodies_per_frame, (std::vector<int>{1, 0, 2, 1}));
  ASSERT_EQ(s.bodies.size(), 2u);
  EXPECT_EQ(s.bodies[0].id, "111");
  EXPECT_EQ(s.bodies[0].first, 0);
  EXPECT_EQ(s.bodies[0].count, 2);
  EXPECT_EQ(s.bodies[1].id, "222");
  EXPECT_EQ(s.bodies[1].first, 1);  // kept-frame index: the 0-body frame does not count
  EXPECT_EQ(s.bodies[1].count, 2);
  EXPECT_EQ(s.bodies[0].xyz[75], 1.0f);    // 2nd appearance of body 111: x of joint 1
  EXPECT_EQ(s.bodies[1].xyz[75], 101.0f);  // 2nd appearance of body 222
}

TEST(NtuParse, MalformedFilesNameFileAndLine) {
  std::string src = ntu("S001C001P001R001A001.skeleton");
  REQUIRE_FIXTURE(src);
  std::string good = read_file_bytes(src);
  std::vector<std::string> lines;
  {
    size_t p = 0;
    while (p < good.size()) {
      size_t n = good.find('\n', p);
      lines.push_back(good.substr(p, n - p));
      p = n + 1;
    }
  }
  auto join = [](const std::vector<std::string>& v, size_t upto) {
    std::string s;
    for (size_t i = 0; i < upto && i < v.size(); ++i) s += v[i] + "\n";
    return s;
  };
  std::string dir = test::scratch_dir("ntu-malformed");
  // Layout: 1 frame count, 2 body count, 3 body info, 4 "25", 5..29 joints, 30 next body count.
  ASSERT_EQ(lines[3], "25");

  std::string p = dir + "/truncated_at_line.skeleton";
  write_file(p, join(lines, 100));  // ends inside frame 4's joints
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":101:", "unexpected end of file"});

  p = dir + "/truncated_mid_line.skeleton";
  std::string cut = join(lines, 10) + lines[10].substr(0, 12);
  write_file(p, cut);
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":11:", "fields"});

  std::vector<std::string> bad = lines;
  bad[3] = "24";
  p = dir + "/joints24.skeleton";
  write_file(p, join(bad, bad.size()));
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":4:", "joint count 24"});

  bad = lines;
  bad[6] = "0.1 abc 0.3 1 2 3 4 0 0 0 0 2";
  p = dir + "/nonnumeric.skeleton";
  write_file(p, join(bad, bad.size()));
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":7:", "non-numeric value 'abc'"});

  bad = lines;
  bad[1] = "one";
  p = dir + "/bodycount.skeleton";
  write_file(p, join(bad, bad.size()));
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":2:", "body count"});

  bad = lines;
  bad[0] = "10x";
  p = dir + "/framecount.skeleton";
  write_file(p, join(bad, bad.size()));
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":1:", "frame count"});

  bad = lines;
  bad[2] = "   ";
  p = dir + "/emptyid.skeleton";
  write_file(p, join(bad, bad.size()));
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":3:", "bodyID"});

  // Same bodyID twice in one frame.
  std::vector<std::string> dup(lines.begin(), lines.begin() + 29);
  dup[1] = "2";
  dup.insert(dup.end(), lines.begin() + 2, lines.begin() + 29);
  dup[0] = "1";
  p = dir + "/dupbody.skeleton";
  write_file(p, join(dup, dup.size()));
  expect_input_error([&] { read_ntu_skeleton(p); }, {p, ":30:", "appears twice"});

  expect_input_error([&] { read_ntu_skeleton(dir + "/nope.skeleton"); },
                     {"nope.skeleton", "cannot open"});
  std::string empty;
  expect_input_error([&] { parse_ntu_skeleton(empty.data(), 0, "empty.skeleton"); },
                     {"empty.skeleton:1:", "end of file"});
}

// The parser's fast decimal path must give the correctly rounded double, as strtod does (and as
// Python's float() does before numpy casts to float32).
TEST(NumberParsing, FastPathMatchesStrtod) {
  uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ULL + 1442695040888963407ULL; };
  char buf[64];
  for (int i = 0; i < 200000; ++i) {
    uint64_t r = next();
    int digits = 1 + int((r >> 8) % 15), frac = int((r >> 16) % (digits + 1));
    std::string t = (r & 1) ? "-" : "";
    uint64_t m = next();
    for (int d = 0; d < digits; ++d) {
      if (d == digits - frac) t += '.';
      t += char('0' + (m % 10));
      m /= 10;
    }
    std::snprintf(buf, sizeof buf, "%s", t.c_str());
    double got = 0;
    ASSERT_TRUE(parse_f64(t, &got)) << t;
    double ref = std::strtod(buf, nullptr);
    ASSERT_EQ(std::memcmp(&got, &ref, sizeof got), 0) << t;
    ASSERT_EQ(float(got), float(ref)) << t;
    // The fused token scanner used by the parsers gives the same bits.
    std::string line = " " + t + "\t" + t;
    Tokens tk(line);
    double a = 1, b = 1;
    ASSERT_EQ(tk.next_f64(&a), 1);
    ASSERT_EQ(tk.next_f64(&b), 1);
    ASSERT_EQ(tk.next_f64(&b), 0);
    ASSERT_EQ(std::memcmp(&a, &ref, sizeof a), 0) << t;
    ASSERT_EQ(std::memcmp(&b, &ref, sizeof b), 0) << t;
  }
  {
    std::string line = "1.5e3 -x 2.5.1 7";
    Tokens tk(line);
    double a = 0;
    EXPECT_EQ(tk.next_f64(&a), 1);
    EXPECT_EQ(a, 1500.0);
    EXPECT_EQ(tk.next_f64(&a), -1);
    EXPECT_EQ(tk.last(), "-x");
    EXPECT_EQ(tk.next_f64(&a), -1);
    EXPECT_EQ(tk.last(), "2.5.1");
    EXPECT_EQ(tk.next_f64(&a), 1);
    EXPECT_EQ(a, 7.0);
  }
  // Forms that take the slow path, and rejects.
  double v = 0;
  for (const char* ok :
       {"1e-05", "-2.5E+3", "+0.75", "inf", "-nan", "1234567890123456789.5", ".5", "5."}) {
    ASSERT_TRUE(parse_f64(ok, &v)) << ok;
    if (std::string(ok).find("nan") == std::string::npos) {
      EXPECT_EQ(v, std::strtod(ok, nullptr)) << ok;
    }
  }
  EXPECT_EQ(v, 5.0);
  EXPECT_TRUE(parse_f64("1e400", &v));  // Python float() gives inf
  EXPECT_TRUE(std::isinf(v));
  for (const char* bad : {"", "-", ".", "1.2.3", "--1", "+-1", "1e", "abc", "0x10", "1,5", "12a"})
    EXPECT_FALSE(parse_f64(bad, &v)) << bad;
  int64_t k = 0;
  EXPECT_TRUE(parse_i64("+25", &k));
  EXPECT_EQ(k, 25);
  EXPECT_FALSE(parse_i64("2.5", &k));
  EXPECT_FALSE(parse_i64("99999999999999999999", &k));
}

TEST(NtuNames, ParseAndReject) {
  NtuSampleName n;
  ASSERT_TRUE(parse_ntu_name("S017C003P020R002A059", &n));
  EXPECT_EQ(n.setup, 17);
  EXPECT_EQ(n.camera, 3);
  EXPECT_EQ(n.performer, 20);
  EXPECT_EQ(n.replication, 2);
  EXPECT_EQ(n.action, 59);
  EXPECT_EQ(n.label(), 58);
  ASSERT_TRUE(parse_ntu_name("S032C003P106R001A120.skeleton", &n));
  EXPECT_EQ(n.performer, 106);
  EXPECT_EQ(n.action, 120);
  for (const char* bad : {"S017C003P020R002A05", "S017C003P020R002A0599", "X017C003P020R002A059",
                          "S017C003P020R002A05x", "S000C003P020R002A059",
                          "S017C003P020R002A059.txt", "", "samples with missing skeletons"})
    EXPECT_FALSE(is_ntu_name(bad)) << bad;
}

TEST(NtuMissing, EmbeddedListsMatchOfficialFiles) {
  const auto& m60 = ntu_missing_samples(false);
  const auto& m120 = ntu_missing_samples(true);
  EXPECT_EQ(m60.size(), 302u);
  EXPECT_EQ(m120.size(), 535u);
  EXPECT_TRUE(std::is_sorted(m120.begin(), m120.end()));
  EXPECT_TRUE(std::equal(m60.begin(), m60.end(), m120.begin()));
  for (const auto& n : m120) EXPECT_TRUE(is_ntu_name(n)) << n;
  EXPECT_TRUE(std::binary_search(m60.begin(), m60.end(), "S001C002P006R001A008"));  // zero-body
  for (const auto& n : m60) EXPECT_LE(n.substr(1, 3), "017");
  std::string f60 = ntu("NTU_RGBD_samples_with_missing_skeletons.txt");
  std::string f120 = ntu("NTU_RGBD120_samples_with_missing_skeletons.txt");
  REQUIRE_FIXTURE(f60);
  REQUIRE_FIXTURE(f120);
  EXPECT_EQ(read_ntu_missing_list(f60), m60);  // header lines skipped
  EXPECT_EQ(read_ntu_missing_list(f120), m120);
}

TEST(NtuMissing, ListWithoutHeaderAndJunk) {
  std::string t =
      "S001C002P005R002A008\r\n  S001C002P006R001A008  \n\n# comment\nS001C002P005R002A00\n"
      "S018C001P008R002A061";
  auto v = parse_ntu_missing_list(t.data(), t.size());
  EXPECT_EQ(v, (std::vector<std::string>{"S001C002P005R002A008", "S001C002P006R001A008",
                                         "S018C001P008R002A061"}));
}

TEST(NtuSplits, IdLists) {
  auto s60 = ntu_splits(false);
  ASSERT_EQ(s60.size(), 2u);
  EXPECT_EQ(s60[0].name, "XSub");
  EXPECT_EQ(s60[0].train_ids.size(), 20u);
  EXPECT_EQ(s60[0].test_ids.size(), 20u);
  EXPECT_EQ(s60[1].name, "XView");
  EXPECT_EQ(s60[1].train_ids, (std::vector<int>{2, 3}));
  EXPECT_EQ(s60[1].test_ids, (std::vector<int>{1}));
  auto s120 = ntu_splits(true);
  ASSERT_EQ(s120.size(), 2u);
  EXPECT_EQ(s120[0].train_ids.size(), 53u);
  EXPECT_EQ(s120[0].test_ids.size(), 53u);
  EXPECT_EQ(s120[0].train_ids.back(), 103);
  std::vector<int> all = s120[0].train_ids;
  all.insert(all.end(), s120[0].test_ids.begin(), s120[0].test_ids.end());
  std::sort(all.begin(), all.end());
  for (int i = 0; i < 106; ++i) EXPECT_EQ(all[size_t(i)], i + 1);
  // NTU-60 performers are the first 20 train ids of NTU-120.
  EXPECT_TRUE(
      std::equal(s60[0].train_ids.begin(), s60[0].train_ids.end(), s120[0].train_ids.begin()));
  EXPECT_EQ(s120[1].name, "XSet");
  EXPECT_EQ(s120[1].train_ids.size(), 16u);
  EXPECT_EQ(s120[1].train_ids.front(), 2);
  EXPECT_EQ(s120[1].test_ids.front(), 1);
}

// Grouped by id in list order; within an id, input order (np.hstack of np.where per id).
TEST(NtuSplits, IndicesGroupedInListOrder) {
  std::vector<std::string> names = {"S001C001P003R001A001", "S001C001P001R001A001",
                                    "S001C002P003R001A002", "S001C003P002R001A001",
                                    "S001C001P001R002A001", "S001C002P041R001A001"};
  std::vector<NtuSampleName> s;
  for (auto& n : names) {
    NtuSampleName x;
    ASSERT_TRUE(parse_ntu_name(n, &x));
    s.push_back(x);
  }
  std::vector<int64_t> tr, te;
  auto sp = ntu_splits(false);
  ntu_split_indices(sp[0], s, &tr, &te);
  EXPECT_EQ(tr, (std::vector<int64_t>{1, 4, 3}));  // P001 (idx 1, 4), then P002
  EXPECT_EQ(te, (std::vector<int64_t>{0, 2}));     // P003; P041 is on neither NTU-60 list
  ntu_split_indices(sp[1], s, &tr, &te);
  EXPECT_EQ(tr, (std::vector<int64_t>{2, 5, 3}));  // camera 2 then camera 3
  EXPECT_EQ(te, (std::vector<int64_t>{0, 1, 4}));
}

// Arrays made by CTR-GCN's scripts read as they are and their labels decode.
TEST(NtuNpz, CtrGcnFileReadsAndLabelsDecode) {
  std::string path = ntu("npz/NTU60_CS.npz");
  REQUIRE_FIXTURE(path);
  NpzReader r(path);
  EXPECT_EQ(r.keys(), (std::vector<std::string>{"x_train", "y_train", "x_test", "y_test"}));
  NdArray x = r.get("x_test"), y = r.get("y_test");
  EXPECT_EQ(x.shape, (std::vector<int64_t>{11, 111, 150}));
  EXPECT_EQ(x.dtype, DType::f4);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{11, 60}));
  EXPECT_EQ(y.dtype, DType::f8);
  EXPECT_EQ(r.get("x_train").shape, (std::vector<int64_t>{0, 111, 150}));
  for (int i = 0; i < 11; ++i) {
    int label = -1, ones = 0;
    for (int c = 0; c < 60; ++c)
      if (y.at_f64(i * 60 + c) > 0) label = c, ++ones;  // numpy-written: may be misaligned
    EXPECT_EQ(ones, 1);
    EXPECT_EQ(label, 49 + i);  // S017C003P020R002A050 ... A060
  }
}

}  // namespace
}  // namespace hacm
