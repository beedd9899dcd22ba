// End-to-end `prepare ntu60|ntu120|pku1|pku2` on directories built from the real fixture files
// (symlinks named so samples land in both train and test): output files, shapes, labels, the
// original's sample order, the NTU-120 duplication of a single actor, the missing-skeleton
// lists, and bad input leaving no output behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/npz.h"
#include "core/ntu.h"
#include "core/ntu_pipeline.h"
#include "core/pku.h"
#include "core/prepare.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

using test::expect_input_error;
using test::write_file;

namespace fs = std::filesystem;

std::string ntu(const std::string& name) {
  return test::real("ntu/" + name + ".skeleton");
}

void link(const std::string& target, const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  fs::create_symlink(target, path);
}

std::vector<int> labels_of(const NdArray& y) {
  std::vector<int> out;
  const int64_t c = y.shape[1];
  for (int64_t i = 0; i < y.shape[0]; ++i) {
    int lab = -1, ones = 0;
    for (int64_t k = 0; k < c; ++k)
      if (y.data<double>()[i * c + k] > 0) lab = int(k), ++ones;
    EXPECT_EQ(ones, 1) << "row " << i << " is not one-hot";
    out.push_back(lab);
  }
  return out;
}

std::vector<float> sample(const NdArray& x, int64_t i) {
  const float* p = x.data<float>() + i * 300 * 150;
  return std::vector<float>(p, p + 300 * 150);
}

std::vector<float> expected_ntu(const std::string& fixture, bool ntu120) {
  NtuSequence seq;
  EXPECT_EQ(ntu_sgn_pipeline(read_ntu_skeleton(ntu(fixture)), &seq), NtuSkip::none);
  std::vector<float> out(300 * 150);
  ntu_align(seq, ntu120, out.data());
  return out;
}

PrepareOptions opts(const std::string& ds, const std::string& raw, const std::string& out) {
  PrepareOptions o;
  o.dataset = ds;
  o.raw_dir = raw;
  o.out_dir = out;
  o.threads = 2;
  o.progress = false;
  return o;
}

// The raw directory: each name -> the fixture file it links to.
struct Entry {
  const char* name;
  const char* fixture;
};
const std::vector<Entry> kRaw = {
    {"S001C001P001R001A001", "S001C001P001R001A001"},  // P001 train, camera 1 (XView test)
    {"S001C002P003R001A001", "S001C001P001R001A001"},  // same content renamed: P003 test, camera 2
    {"S001C003P008R002A058", "S001C003P008R002A058"},  // 2 actors, P008 train
    {"S017C003P020R002A059", "S017C003P020R002A059"},  // body count varies, P020 test
    {"S001C002P006R001A008", "S001C002P006R001A008"},  // zero bodies: on the missing list
    {"nturgb+d_skeletons_120/S018C001P008R002A061", "S018C001P008R002A061"},  // NTU-120 only
    {"nturgb+d_skeletons_120/S032C003P106R001A070", "S032C003P106R001A070"},
};

std::string make_raw(const std::string& tag) {
  std::string dir = test::scratch_dir(tag);
  for (const auto& e : kRaw) link(ntu(e.fixture), dir + "/" + e.name + ".skeleton");
  return dir;
}

class PrepareNtu : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& e : kRaw)
      if (!test::file_exists(ntu(e.fixture))) GTEST_SKIP() << "fixture missing: " << ntu(e.fixture);
  }
};

TEST_F(PrepareNtu, Ntu60EndToEnd) {
  std::string raw = make_raw("prep-ntu60"), out = test::scratch_path("prep-ntu60-out");
  auto files = prepare_ntu(opts("ntu60", raw, out));
  ASSERT_EQ(files, (std::vector<std::string>{out + "/NTU60_XSub.npz", out + "/NTU60_XView.npz"}));
  struct Want {
    std::vector<const char*> train, test;
  };
  // XSub: performer lists in order (train 1, 2, 4, 5, 8, ...; test 3, 6, 7, ..., 20, ...).
  // XView: cameras 2 then 3 train, camera 1 test; within an id, sorted names.
  const Want want[2] = {
      {{"S001C001P001R001A001", "S001C003P008R002A058"},
       {"S001C002P003R001A001", "S017C003P020R002A059"}},
      {{"S001C002P003R001A001", "S001C003P008R002A058", "S017C003P020R002A059"},
       {"S001C001P001R001A001"}},
  };
  for (int s = 0; s < 2; ++s) {
    NpzReader r(files[size_t(s)]);
    EXPECT_EQ(r.keys(), (std::vector<std::string>{"x_train", "y_train", "x_test", "y_test"}));
    for (int part = 0; part < 2; ++part) {
      const auto& names = part == 0 ? want[s].train : want[s].test;
      std::string sfx = part == 0 ? "_train" : "_test";
      NdArray x = r.get("x" + sfx), y = r.get("y" + sfx);
      ASSERT_EQ(x.dtype, DType::f4);
      ASSERT_EQ(x.shape, (std::vector<int64_t>{int64_t(names.size()), 300, 150}));
      ASSERT_EQ(y.dtype, DType::f8);
      ASSERT_EQ(y.shape, (std::vector<int64_t>{int64_t(names.size()), 60}));
      std::vector<int> labs = labels_of(y);
      for (size_t i = 0; i < names.size(); ++i) {
        NtuSampleName n;
        ASSERT_TRUE(parse_ntu_name(names[i], &n));
        EXPECT_EQ(labs[i], n.label()) << names[i];
        std::string fixture = names[i];
        if (fixture == "S001C002P003R001A001") fixture = "S001C001P001R001A001";
        // Same code path as the pipeline tests; this checks placement and order, exactly.
        EXPECT_CLOSE(std::string(names[i]) + " in " + files[size_t(s)] + " x" + sfx,
                     sample(x, int64_t(i)), expected_ntu(fixture, false), 0.0, 0.0);
      }
    }
  }
  // The sample of CTR-GCN's NTU60_CS.npz comes out identical (its 111 frames, zeros after).
  std::string cs = test::real("ntu/npz/NTU60_CS.npz");
  if (test::file_exists(cs)) {
    NpzReader ref(cs), got(files[0]);
    std::vector<float> ref_all = ref.get("x_test").to_f32();  // numpy-written: may be misaligned
    const float* r9 = ref_all.data() + 9 * 111 * 150;
    std::vector<float> g = sample(got.get("x_test"), 1);
    std::vector<float> want9(r9, r9 + 111 * 150);
    want9.resize(300 * 150, 0.f);
    EXPECT_CLOSE("XSub x_test[1] vs NTU60_CS x_test[9]", g, want9, 0.0,
                 0.0);  // exact (float32 ops)
  }
  // Nothing else left in the output directory (no .tmp, no scratch file).
  int n = 0;
  for (auto& e : fs::directory_iterator(out)) (void)e, ++n;
  EXPECT_EQ(n, 2);
}

TEST_F(PrepareNtu, Ntu120EndToEndDuplicatesSingleActor) {
  std::string raw = make_raw("prep-ntu120"), out = test::scratch_path("prep-ntu120-out");
  auto files = prepare_ntu(opts("ntu120", raw, out));
  ASSERT_EQ(files, (std::vector<std::string>{out + "/NTU120_XSub.npz", out + "/NTU120_XSet.npz"}));
  // XSub train: P001, P008 (2 files, name order); test: P003, P020, P106.
  // XSet train: setups 18, 32 (even); test: setup 1 (3 files), 17.
  const std::vector<std::vector<std::vector<const char*>>> want = {
      {{"S001C001P001R001A001", "S001C003P008R002A058", "S018C001P008R002A061"},
       {"S001C002P003R001A001", "S017C003P020R002A059", "S032C003P106R001A070"}},
      {{"S018C001P008R002A061", "S032C003P106R001A070"},
       {"S001C001P001R001A001", "S001C002P003R001A001", "S001C003P008R002A058",
        "S017C003P020R002A059"}},
  };
  for (int s = 0; s < 2; ++s) {
    NpzReader r(files[size_t(s)]);
    for (int part = 0; part < 2; ++part) {
      const auto& names = want[size_t(s)][size_t(part)];
      std::string sfx = part == 0 ? "_train" : "_test";
      NdArray x = r.get("x" + sfx), y = r.get("y" + sfx);
      ASSERT_EQ(x.shape, (std::vector<int64_t>{int64_t(names.size()), 300, 150}));
      ASSERT_EQ(y.shape, (std::vector<int64_t>{int64_t(names.size()), 120}));
      std::vector<int> labs = labels_of(y);
      for (size_t i = 0; i < names.size(); ++i) {
        NtuSampleName n;
        ASSERT_TRUE(parse_ntu_name(names[i], &n));
        EXPECT_EQ(labs[i], n.label()) << names[i];
        std::string fixture = names[i];
        if (fixture == "S001C002P003R001A001") fixture = "S001C001P001R001A001";
        std::vector<float> got = sample(x, int64_t(i));
        EXPECT_CLOSE(std::string(names[i]) + " x" + sfx, got, expected_ntu(fixture, true), 0.0,
                     0.0);
        // Single-actor files: columns 75:150 repeat 0:75 in every frame with data.
        bool two = fixture == "S001C003P008R002A058" || fixture == "S017C003P020R002A059";
        int frames = 0, dup = 0;
        for (int f = 0; f < 300; ++f) {
          const float* row = got.data() + f * 150;
          bool any = false, same = true;
          for (int k = 0; k < 75; ++k) any |= row[k] != 0.f, same &= row[k] == row[k + 75];
          frames += any;
          dup += any && same;
        }
        EXPECT_GT(frames, 0);
        if (two)
          EXPECT_EQ(dup, 0) << names[i];
        else
          EXPECT_EQ(dup, frames) << names[i] << ": the NTU-120 single actor is duplicated";
      }
    }
  }
}

TEST_F(PrepareNtu, ExtraMissingListDuplicatesAndEmptyDirs) {
  std::string raw = make_raw("prep-missing"), out = test::scratch_path("prep-missing-out");
  write_file(raw + "/my_samples_with_missing_skeletons.txt",
             "1 of the captured samples have missing skeletons.\nPlease ignore "
             "it.\n\nS032C003P106R001A070\n");
  prepare_ntu(opts("ntu120", raw, out));
  NpzReader r(out + "/NTU120_XSet.npz");
  EXPECT_EQ(r.get("x_train").shape[0], 1);  // S032 excluded by the list file, S018 left

  // A symlinked folder is followed (and a link cycle does not hang the scan).
  std::string other = test::scratch_dir("prep-missing-linked");
  link(ntu("S018C001P008R002A061"), other + "/S018C001P008R002A062.skeleton");
  fs::create_directory_symlink(other, raw + "/linked");
  fs::create_directory_symlink(raw, other + "/cycle");
  prepare_ntu(opts("ntu120", raw, out + "/3"));
  EXPECT_EQ(NpzReader(out + "/3/NTU120_XSet.npz").get("x_train").shape[0], 2);  // + S018...A062
  fs::remove(raw + "/linked");

  // Two links to one file are one sample; two different files with one name are an error.
  link(ntu("S001C001P001R001A001"), raw + "/link/S001C001P001R001A001.skeleton");
  prepare_ntu(opts("ntu60", raw, out + "/4"));
  fs::create_directories(raw + "/copy");
  fs::copy_file(ntu("S001C001P001R001A001"), raw + "/copy/S001C001P001R001A001.skeleton");
  expect_input_error([&] { prepare_ntu(opts("ntu60", raw, out + "/2")); },
                     {"S001C001P001R001A001", "twice"});

  std::string empty = test::scratch_dir("prep-empty");
  expect_input_error([&] { prepare_ntu(opts("ntu60", empty, empty + "/out")); },
                     {empty, "no usable"});
  expect_input_error([&] { prepare_ntu(opts("ntu60", empty + "/nope", empty + "/out")); },
                     {"not a directory"});
}

TEST_F(PrepareNtu, BadFileFailsWithNoOutput) {
  std::string raw = make_raw("prep-bad"), out = test::scratch_path("prep-bad-out");
  std::string good = read_file_bytes(ntu("S001C003P008R002A058"));
  // Cut inside a joint line of the second frame: a truncated download.
  size_t cut = 0;
  for (int l = 0; l < 80; ++l) cut = good.find('\n', cut) + 1;
  write_file(raw + "/S002C001P001R001A001.skeleton", good.substr(0, cut + 10));
  expect_input_error([&] { prepare_ntu(opts("ntu60", raw, out)); },
                     {"S002C001P001R001A001.skeleton:81:"});
  // Nothing written: neither the npz nor their temporaries nor the scratch file.
  int n = 0;
  if (fs::exists(out))
    for (auto& e : fs::directory_iterator(out)) (void)e, ++n;
  EXPECT_EQ(n, 0);
}

// A signal (PrepareOptions::cancelled) stops the work with Interrupted and leaves nothing in
// --out: while parsing (pass 1), and once an npz is being written (pass 2).
TEST_F(PrepareNtu, CancelledLeavesNoOutput) {
  std::string raw = make_raw("prep-cancel");
  for (int when = 0; when < 2; ++when) {
    std::string out = test::scratch_path("prep-cancel-out" + std::to_string(when));
    PrepareOptions o = opts("ntu60", raw, out);
    o.cancelled = [out, when] {
      if (when == 0) return true;
      std::error_code ec;
      for (fs::directory_iterator it(out, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().find(".npz") != std::string::npos) return true;
      return false;
    };
    EXPECT_THROW(prepare_ntu(o), Interrupted) << "when " << when;
    int n = 0;
    if (fs::exists(out))
      for (auto& e : fs::directory_iterator(out)) (void)e, ++n;
    EXPECT_EQ(n, 0) << "when " << when;
  }
}

// ---- PKU ----

std::vector<float> expected_clip(const PkuSkeleton& s, int64_t start, int64_t end) {
  std::vector<float> out(300 * 150, 0.f);
  int64_t n = std::min<int64_t>(std::min(end, s.frames) - start, 300);
  for (int64_t i = 0; i < n * 150; ++i) out[size_t(i)] = float(s.values[size_t(start * 150 + i)]);
  return out;
}

TEST(PreparePku, Phase1EndToEnd) {
  std::string real = test::real("pku_mmd");
  std::string sk = real + "/PKU_Skeleton_Renew/0016-L.txt",
              lb = real + "/Train_Label_PKU_final/0016-L.txt";
  REQUIRE_FIXTURE(sk);
  REQUIRE_FIXTURE(lb);
  REQUIRE_FIXTURE(real + "/Split/cross-view.txt");
  std::string raw = test::scratch_dir("prep-pku1"), out = test::scratch_path("prep-pku1-out");
  // 0016-L: train in both splits; 0291-L: XSub test; 0002-M: XSub train, XView test.
  for (const char* id : {"0016-L", "0291-L", "0002-M"}) {
    link(sk, raw + "/PKU_Skeleton_Renew/" + id + ".txt");
    link(lb, raw + "/Train_Label_PKU_final/" + id + ".txt");
  }
  link(real + "/Split/cross-subject.txt", raw + "/Split/cross-subject.txt");
  link(real + "/Split/cross-view.txt", raw + "/Split/cross-view.txt");
  write_file(raw + "/PKU_Skeleton_Renew/README.txt", "not a video");
  auto files = prepare_pku(opts("pku1", raw, out));
  ASSERT_EQ(files, (std::vector<std::string>{out + "/PKUv1_XSub.npz", out + "/PKUv1_XView.npz"}));

  PkuSkeleton s = read_pku_skeleton(sk);
  auto labels = read_pku_labels(lb);
  ASSERT_EQ(labels.size(), 8u);
  for (int split = 0; split < 2; ++split) {
    PkuSplit sp = read_pku_split(
        raw + (split == 0 ? "/Split/cross-subject.txt" : "/Split/cross-view.txt"), 1);
    std::vector<std::string> train, test;  // sorted video order
    for (const char* id : {"0002-M", "0016-L", "0291-L"})
      (std::find(sp.train.begin(), sp.train.end(), id) != sp.train.end() ? train : test)
          .push_back(id);
    NpzReader r(files[size_t(split)]);
    EXPECT_EQ(r.keys(), (std::vector<std::string>{"x_train", "y_train", "x_test", "y_test"}));
    for (int part = 0; part < 2; ++part) {
      const auto& vids = part == 0 ? train : test;
      std::string sfx = part == 0 ? "_train" : "_test";
      NdArray x = r.get("x" + sfx), y = r.get("y" + sfx);
      ASSERT_EQ(x.dtype, DType::f4);
      ASSERT_EQ(x.shape, (std::vector<int64_t>{int64_t(vids.size() * 8), 300, 150}));
      ASSERT_EQ(y.shape, (std::vector<int64_t>{int64_t(vids.size() * 8), 51}));
      std::vector<int> labs = labels_of(y);
      for (size_t v = 0; v < vids.size(); ++v)
        for (size_t c = 0; c < 8; ++c) {
          int64_t i = int64_t(v * 8 + c);
          EXPECT_EQ(labs[size_t(i)], labels[c].cls - 1);
          // Raw camera coordinates of rows start..end-1, float64 -> float32, zero padded: exact.
          EXPECT_CLOSE(vids[v] + " clip " + std::to_string(c) + " x" + sfx, sample(x, i),
                       expected_clip(s, labels[c].start, labels[c].end), 0.0, 0.0);
        }
    }
  }
  EXPECT_EQ(NpzReader(files[0]).get("x_train").shape[0], 16);  // 0002-M, 0016-L
  EXPECT_EQ(NpzReader(files[0]).get("x_test").shape[0], 8);    // 0291-L
}

TEST(PreparePku, Phase2MampLayoutAndErrors) {
  std::string v2 = test::real("pku_mmd/v2/A10N08-L.txt");
  REQUIRE_FIXTURE(v2);
  std::string raw = test::scratch_dir("prep-pku2"), out = test::scratch_path("prep-pku2-out");
  link(v2, raw + "/skeleton/A10N08-L.txt");
  fs::create_directories(raw + "/label");
  write_file(raw + "/label/A10N08-L.txt", "5,10,60,1\n12,100,500,2\n");
  write_file(raw + "/cross_subject_v2.txt",
             "Training videos: \nA10N08-L, \nValidataion videos: \nA01N01-L, \n");
  auto files = prepare_pku(opts("pku2", raw, out));
  ASSERT_EQ(files, (std::vector<std::string>{out + "/PKUv2_XSub.npz"}));  // no cross-view file
  NpzReader r(files[0]);
  NdArray x = r.get("x_train");
  ASSERT_EQ(x.shape, (std::vector<int64_t>{2, 300, 150}));
  EXPECT_EQ(r.get("x_test").shape, (std::vector<int64_t>{0, 300, 150}));
  EXPECT_EQ(labels_of(r.get("y_train")), (std::vector<int>{4, 11}));
  PkuSkeleton s = read_pku_skeleton(v2);
  EXPECT_CLOSE("v2 clip 0", sample(x, 0), expected_clip(s, 10, 60), 0.0, 0.0);    // exact cast
  EXPECT_CLOSE("v2 clip 1", sample(x, 1), expected_clip(s, 100, 500), 0.0, 0.0);  // first 300

  // A label line with text: one message naming file and line; no output.
  std::string bad = test::scratch_dir("prep-pku2-bad"),
              bout = test::scratch_path("prep-pku2-bad-out");
  link(v2, bad + "/skeleton/A10N08-L.txt");
  fs::create_directories(bad + "/label");
  write_file(bad + "/label/A10N08-L.txt", "5,10,60,1\nfive,100,500,2\n");
  write_file(bad + "/cross_subject_v2.txt",
             "Training videos: \nA10N08-L, \nValidataion videos: \n\n");
  expect_input_error([&] { prepare_pku(opts("pku2", bad, bout)); }, {"label/A10N08-L.txt:2:"});
  EXPECT_FALSE(fs::exists(bout + "/PKUv2_XSub.npz"));
  // Unknown id in the split file.
  write_file(bad + "/label/A10N08-L.txt", "5,10,60,1\n");
  write_file(bad + "/cross_subject_v2.txt", "Training videos: \nA10N08-L, B1, \n");
  expect_input_error([&] { prepare_pku(opts("pku2", bad, bout)); },
                     {"cross_subject_v2.txt:2:", "B1"});
  // Missing label file.
  write_file(bad + "/cross_subject_v2.txt", "Training videos: \nA10N08-L, \n");
  fs::remove(bad + "/label/A10N08-L.txt");
  expect_input_error([&] { prepare_pku(opts("pku2", bad, bout)); },
                     {"label/A10N08-L.txt", "missing"});
}

}  // namespace
}  // namespace hacm
