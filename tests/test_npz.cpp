// .npz reader/writer: round trips (stored and deflated, whole and streamed), ZIP64 (forced by us
// and made by Python's zipfile), zero-copy views, header access without touching data, every
// error path, and every real archive of the golden set and the NTU sample.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ndarray.h"
#include "core/npy.h"
#include "core/npz.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

using test::expect_input_error;
using test::write_file;

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
uint32_t rd32(const std::string& s, size_t off) {
  uint32_t v;
  std::memcpy(&v, s.data() + off, 4);
  return v;
}

// Deterministic array: element i of dtype t.
NdArray sample(DType t, const std::vector<int64_t>& shape, int salt = 0) {
  NdArray a = NdArray::zeros(t, shape);
  for (int64_t i = 0; i < a.numel(); ++i) {
    double v = std::sin(double(i + salt)) * 100;
    switch (t) {
      case DType::f4:
        a.data<float>()[i] = float(v);
        break;
      case DType::f8:
        a.data<double>()[i] = v;
        break;
      case DType::i4:
        a.data<int32_t>()[i] = int32_t(v * 1000);
        break;
      case DType::i8:
        a.data<int64_t>()[i] = int64_t(v) << 30;
        break;
      case DType::u1:
        a.data<uint8_t>()[i] = uint8_t(i * 31 + salt);
        break;
      case DType::b1:
        a.data<uint8_t>()[i] = uint8_t(v > 0);
        break;
    }
  }
  return a;
}

std::map<std::string, NdArray> sample_set() {
  std::map<std::string, NdArray> m;
  m["f4"] = sample(DType::f4, {3, 4});
  m["f8_scalar"] = sample(DType::f8, {}, 3);
  m["i4"] = sample(DType::i4, {7});
  m["i8"] = sample(DType::i8, {2, 2, 2});
  m["u1"] = sample(DType::u1, {300});
  m["b1"] = sample(DType::b1, {5, 1});
  m["empty"] = sample(DType::f4, {0, 111, 150});
  m["blocks.0.attn.qkv.weight"] = sample(DType::f4, {96, 32}, 7);
  return m;
}

void expect_same(const NdArray& got, const NdArray& ref, const std::string& what) {
  EXPECT_EQ(got.dtype, ref.dtype) << what;
  EXPECT_EQ(got.shape, ref.shape) << what;
  ASSERT_EQ(got.nbytes(), ref.nbytes()) << what;
  // Exact: bytes are copied (or inflated), never recomputed.
  EXPECT_CLOSE(what, got.to_f64(), ref.to_f64(), 0.0, 0.0);
  if (got.nbytes()) {
    EXPECT_EQ(0, std::memcmp(got.bytes, ref.bytes, got.nbytes())) << what;
  }
}

void expect_archive(const std::string& path, const std::map<std::string, NdArray>& ref) {
  NpzReader r(path);
  std::vector<std::string> keys = r.keys();
  std::vector<std::string> want;
  for (const auto& kv : ref) want.push_back(kv.first);
  EXPECT_EQ(keys, want);  // npz_save writes in map order; keys() is archive order
  for (const auto& [k, a] : ref) {
    EXPECT_TRUE(r.has(k));
    NpyHeader h = r.header(k);
    EXPECT_EQ(h.dtype, a.dtype) << k;
    EXPECT_EQ(h.shape, a.shape) << k;
    expect_same(r.get(k), a, path + ":" + k);
    r.verify(k);
  }
  EXPECT_FALSE(r.has("nope"));
}

TEST(Npz, RoundTripStoredAndCompressed) {
  std::string dir = test::scratch_dir("npz-rt");
  auto ref = sample_set();
  for (bool compress : {false, true}) {
    std::string p = dir + (compress ? "/c.npz" : "/s.npz");
    npz_save(p, ref, compress);
    EXPECT_FALSE(test::file_exists(p + ".tmp"));
    expect_archive(p, ref);
    auto all = npz_load(p);
    ASSERT_EQ(all.size(), ref.size());
    for (const auto& [k, a] : ref) expect_same(all.at(k), a, "npz_load " + k);
  }
  // Deflate actually compresses this (zero) data, and the stored archive holds it raw.
  std::map<std::string, NdArray> z{{"z", NdArray::zeros(DType::f8, {4096})}};
  npz_save(dir + "/zs.npz", z, false);
  npz_save(dir + "/zc.npz", z, true);
  EXPECT_GT(read_file(dir + "/zs.npz").size(), 32768u);
  EXPECT_LT(read_file(dir + "/zc.npz").size(), 1024u);
  expect_archive(dir + "/zc.npz", z);
}

TEST(Npz, StoredMembersAreCopyOnWriteViews) {
  std::string dir = test::scratch_dir("npz-view");
  std::string p = dir + "/v.npz";
  auto ref = sample_set();
  npz_save(p, ref);
  std::string before = read_file(p);
  NdArray a, c;
  {
    NpzReader r(p);
    a = r.get("f4");
    EXPECT_EQ(a.bytes, r.get("f4").bytes);  // the same place in the mapping, not a copy
    EXPECT_TRUE(a.owner);
  }
  // Our writer pads local headers so stored data starts at a 64-byte file offset, and the
  // mapping is page aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.bytes) % 64, 0u);
  {
    NpzReader r(p);
    for (const auto& k : r.keys()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r.get(k).bytes) % 64, 0u) << k;
      EXPECT_TRUE(r.get(k).aligned()) << k;
    }
  }
  // The reader is gone; the view keeps the mapping alive.
  expect_same(a, ref["f4"], "after reader destroyed");
  a.data<uint8_t>()[0] ^= 0xff;  // private copy-on-write page
  EXPECT_EQ(read_file(p), before);
  expect_same(NpzReader(p).get("f4"), ref["f4"], "file unchanged");

  npz_save(p, ref, true);
  NpzReader rc(p);
  EXPECT_NE(rc.get("f4").bytes, rc.get("f4").bytes);  // deflated: a fresh heap copy each time
}

TEST(Npz, HeaderAndKeysDoNotTouchData) {
  // Archive image in anonymous memory with the data pages of a large stored member made
  // inaccessible: any read of them would crash the test.
  std::string dir = test::scratch_dir("npz-lazy");
  std::string p = dir + "/big.npz";
  long page = sysconf(_SC_PAGESIZE);
  {
    NpzWriter w(p);
    w.add("small", sample(DType::i8, {3}));
    w.begin("big", DType::f8, {64, int64_t(page)});
    std::vector<double> row(size_t(page), 1.5);
    for (int i = 0; i < 64; ++i) w.write(row.data(), row.size() * 8);
    w.end();
    w.add("after", sample(DType::f4, {2}));
    w.finish();
  }
  std::string img = read_file(p);
  size_t len = img.size();
  auto* mem = static_cast<uint8_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  std::memcpy(mem, img.data(), len);
  size_t big_start = size_t(NpzReader(mem, len, "mem.npz").get("big").bytes - mem);
  size_t lo = (big_start + size_t(page) - 1) / size_t(page) * size_t(page);
  size_t hi = (big_start + 64 * size_t(page) * 8) / size_t(page) * size_t(page);
  ASSERT_GT(hi, lo + 60 * size_t(page));
  ASSERT_EQ(mprotect(mem + lo, hi - lo, PROT_NONE), 0);
  {
    NpzReader r(mem, len, "mem.npz");
    EXPECT_EQ(r.keys(), (std::vector<std::string>{"small", "big", "after"}));
    NpyHeader h = r.header("big");
    EXPECT_EQ(h.shape, (std::vector<int64_t>{64, page}));
    NdArray big = r.get("big");  // a view: creating it reads nothing
    EXPECT_EQ(big.bytes, mem + big_start);
    expect_same(r.get("after"), sample(DType::f4, {2}), "after");
  }
  mprotect(mem + lo, hi - lo, PROT_READ);
  {
    NpzReader r(mem, len, "mem.npz");
    EXPECT_EQ(r.get("big").at_f64(64 * page - 1), 1.5);
    r.verify("big");
  }
  munmap(mem, len);
}

TEST(Npz, StreamingMembersBothModes) {
  std::string dir = test::scratch_dir("npz-stream");
  for (bool compress : {false, true}) {
    std::string p = dir + (compress ? "/c.npz" : "/s.npz");
    NdArray ref = sample(DType::f4, {10, 1000});
    {
      NpzWriter w(p, compress);
      w.begin("x", DType::f4, {10, 1000});
      // Uneven chunks, including an empty one.
      size_t off = 0;
      for (size_t n : {size_t(1), size_t(0), size_t(4095), size_t(20000), size_t(15904)}) {
        w.write(ref.bytes + off, n);
        off += n;
      }
      EXPECT_EQ(off, ref.nbytes());
      w.end();
      w.add("y", sample(DType::u1, {17}));
      EXPECT_FALSE(test::file_exists(p)) << "visible before finish()";
      w.finish();
    }
    expect_archive(p, {{"x", ref}, {"y", sample(DType::u1, {17})}});
  }
}

TEST(Npz, WriterMisuseAndNoPartialFile) {
  std::string dir = test::scratch_dir("npz-misuse");
  std::string p = dir + "/m.npz";
  {
    NpzWriter w(p);
    w.add("a", sample(DType::f8, {3}));
    EXPECT_THROW(w.add("a", sample(DType::f8, {3})), std::logic_error);  // duplicate key
    w.begin("b", DType::i4, {4});
    EXPECT_THROW(w.write("0123456789abcdefX", 17), std::logic_error);  // more than 16 bytes
    w.write("0123456789", 10);
    EXPECT_THROW(w.end(), std::logic_error);     // 6 bytes short
    EXPECT_THROW(w.finish(), std::logic_error);  // member still open
    EXPECT_TRUE(test::file_exists(p + ".tmp"));
  }  // destroyed without finish(): the temporary is removed, nothing at the final path
  EXPECT_FALSE(test::file_exists(p));
  EXPECT_FALSE(test::file_exists(p + ".tmp"));
  expect_input_error([&] { NpzWriter w(dir + "/no/dir/x.npz"); },
                     {dir + "/no/dir/x.npz", "cannot create"});
}

TEST(Npz, ForcedZip64RoundTrip) {
  std::string dir = test::scratch_dir("npz-z64");
  auto ref = sample_set();
  for (bool compress : {false, true}) {
    std::string p = dir + "/z.npz";
    {
      NpzWriter w(p, compress);
      w.set_force_zip64(true);
      for (const auto& [k, a] : ref) w.add(k, a);
      w.finish();
    }
    std::string img = read_file(p);
    size_t eocd = img.size() - 22;
    ASSERT_EQ(rd32(img, eocd), 0x06054b50u);
    EXPECT_EQ(rd32(img, eocd + 16), 0xFFFFFFFFu);       // offset only in the ZIP64 record
    EXPECT_EQ(rd32(img, eocd - 20), 0x07064b50u);       // ZIP64 locator
    EXPECT_EQ(rd32(img, eocd - 20 - 56), 0x06064b50u);  // ZIP64 end record
    EXPECT_EQ(rd32(img, 18), 0xFFFFFFFFu);              // local header sizes in the extra field
    expect_archive(p, ref);
  }
}

// tests/data/zip64_python.npz was made once by Python 3 zipfile with zipfile.ZIP64_LIMIT = 64
// (so every size/offset above 64 goes to ZIP64 extra fields and the ZIP64 end records are
// written), members written by numpy.lib.format.write_array through ZipFile.open(..,
// force_zip64=True): a = arange(12, float32).reshape(3, 4) stored, b = int64 [5, -7, 2**40]
// stored, c = linspace(0, 1, 7) deflated.
TEST(Npz, ReadsPythonZip64Archive) {
  std::string p = std::string(HACM_SOURCE_DIR) + "/tests/data/zip64_python.npz";
  REQUIRE_FIXTURE(p);
  NpzReader r(p);
  EXPECT_EQ(r.keys(), (std::vector<std::string>{"a", "b", "c"}));
  NdArray a = r.require("a", DType::f4, 2);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 4}));
  std::vector<double> ar(12);
  for (int i = 0; i < 12; ++i) ar[size_t(i)] = i;
  EXPECT_CLOSE("a", a.to_f64(), ar, 0.0, 0.0);  // exact small integers
  EXPECT_EQ(r.get("b").to_i64(), (std::vector<int64_t>{5, -7, int64_t(1) << 40}));
  std::vector<double> cr(7);
  for (int i = 0; i < 7; ++i) cr[size_t(i)] = i / 6.0;
  // numpy's linspace computes i*(1/6) vs our i/6.0: last-bit differences only.
  EXPECT_CLOSE("c", r.get("c").to_f64(), cr, 0.0, 1e-15);
  for (const auto& k : r.keys()) r.verify(k);
}

// A stored-only zip built by hand, for archives our writer would never produce.
struct RawMember {
  std::string name, data;
  uint16_t method = 0, flags = 0;
};
std::string make_zip(const std::vector<RawMember>& ms) {
  auto p16 = [](std::string& s, unsigned v) { s += char(v & 0xff), s += char(v >> 8 & 0xff); };
  auto p32 = [&](std::string& s, uint32_t v) { p16(s, v & 0xffff), p16(s, v >> 16); };
  std::string out, cd;
  for (const auto& m : ms) {
    uint32_t crc =
        uint32_t(crc32(0, reinterpret_cast<const Bytef*>(m.data.data()), uInt(m.data.size())));
    uint32_t off = uint32_t(out.size());
    p32(out, 0x04034b50), p16(out, 20), p16(out, m.flags), p16(out, m.method), p32(out, 0);
    p32(out, crc), p32(out, uint32_t(m.data.size())), p32(out, uint32_t(m.data.size()));
    p16(out, unsigned(m.name.size())), p16(out, 0);
    out += m.name + m.data;
    p32(cd, 0x02014b50), p16(cd, 20), p16(cd, 20), p16(cd, m.flags), p16(cd, m.method), p32(cd, 0);
    p32(cd, crc), p32(cd, uint32_t(m.data.size())), p32(cd, uint32_t(m.data.size()));
    p16(cd, unsigned(m.name.size())), p16(cd, 0), p16(cd, 0), p16(cd, 0), p16(cd, 0), p32(cd, 0);
    p32(cd, off);
    cd += m.name;
  }
  uint32_t cd_off = uint32_t(out.size());
  out += cd;
  p32(out, 0x06054b50), p16(out, 0), p16(out, 0), p16(out, unsigned(ms.size())),
      p16(out, unsigned(ms.size())), p32(out, uint32_t(cd.size())), p32(out, cd_off), p16(out, 0);
  return out;
}
std::string npy_image(const NdArray& a) {
  return npy_make_header(a.dtype, a.shape) +
         std::string(reinterpret_cast<const char*>(a.bytes), a.nbytes());
}

TEST(Npz, HandBuiltArchives) {
  std::string dir = test::scratch_dir("npz-hand");
  std::string p = dir + "/h.npz";
  NdArray x = sample(DType::i4, {3});
  // Non-.npy members are ignored; a trailing archive comment is allowed.
  std::string img = make_zip({{"readme.txt", "hello"}, {"x.npy", npy_image(x)}});
  img[img.size() - 2] = 3;
  write_file(p, img + "abc");
  EXPECT_EQ(NpzReader(p).keys(), std::vector<std::string>{"x"});
  expect_same(NpzReader(p).get("x"), x, "hand x");

  std::string fortran = npy_image(x);
  fortran.replace(fortran.find("False"), 5, "True ");
  write_file(p, make_zip({{"x.npy", npy_image(x)}, {"f.npy", fortran}}));
  expect_input_error([&] { NpzReader(p).get("f"); }, {p + ":f", "Fortran"});
  expect_input_error([&] { NpzReader(p).header("f"); }, {p + ":f", "Fortran"});

  std::string cut = npy_image(x);
  cut.pop_back();
  write_file(p, make_zip({{"t.npy", cut}}));
  expect_input_error([&] { NpzReader(p).get("t"); }, {p + ":t", "truncated .npy data"});

  write_file(p, make_zip({{"e.npy", npy_image(x), 0, 1}}));
  expect_input_error([&] { NpzReader(p).get("e"); }, {p + ":e", "encrypted"});
  write_file(p, make_zip({{"b.npy", npy_image(x), 12, 0}}));
  expect_input_error([&] { NpzReader(p).get("b"); }, {p + ":b", "compression method 12"});
  write_file(p, make_zip({{"d.npy", npy_image(x)}, {"d.npy", npy_image(x)}}));
  expect_input_error([&] { NpzReader r(p); }, {p, "duplicate member"});
}

TEST(Npz, ReaderErrorsNameTheFile) {
  std::string dir = test::scratch_dir("npz-err");
  expect_input_error([&] { NpzReader r(dir + "/missing.npz"); },
                     {dir + "/missing.npz", "cannot open"});
  expect_input_error([&] { NpzReader r(dir); }, {dir, "not a regular file"});
  write_file(dir + "/empty.npz", "");
  expect_input_error([&] { NpzReader r(dir + "/empty.npz"); }, {dir + "/empty.npz", "not a zip"});
  write_file(dir + "/text.npz", std::string(1000, 'x'));
  expect_input_error([&] { NpzReader r(dir + "/text.npz"); }, {dir + "/text.npz", "not a zip"});

  std::string p = dir + "/a.npz";
  npz_save(p, sample_set());
  NpzReader r(p);
  expect_input_error([&] { r.get("nope"); },
                     {p, "'nope'", "available: b1, blocks.0.attn.qkv.weight, empty"});
  expect_input_error([&] { r.header("nope"); }, {p, "'nope'"});
  expect_input_error([&] { r.require("f4", 3); }, {p + ":f4", "expected 3 dimensions", "[3,4]"});
  expect_input_error([&] { r.require("f4", DType::f8, 2); },
                     {p + ":f4", "expected dtype f8", "found f4"});
  EXPECT_EQ(r.require("f4", DType::f4, 2).numel(), 12);

  // Every truncation of a valid archive is rejected (the end record lives at the end).
  std::string img = read_file(p);
  std::string q = dir + "/cut.npz";
  for (size_t n = 0; n < img.size(); n += (n < 64 || n + 200 > img.size()) ? 1 : 97) {
    write_file(q, img.substr(0, n));
    expect_input_error(
        [&] {
          NpzReader rr(q);
          for (auto& k : rr.keys()) rr.get(k);
        },
        {q});
  }
}

TEST(Npz, DeflatedCorruptionDetected) {
  std::string dir = test::scratch_dir("npz-crc");
  std::string p = dir + "/c.npz";
  npz_save(p, {{"x", sample(DType::f8, {500})}}, true);
  std::string img = read_file(p);
  // Wrong CRC in the central directory: the data inflates fine but does not match.
  std::string bad = img;
  size_t cd = img.rfind(std::string("PK\x01\x02", 4));
  bad[cd + 16] ^= 1;
  write_file(p, bad);
  expect_input_error([&] { NpzReader(p).get("x"); }, {p + ":x", "CRC-32 mismatch"});
  expect_input_error([&] { NpzReader(p).verify("x"); }, {p + ":x", "CRC-32 mismatch"});
  // Damaged compressed bytes: either zlib rejects them or the CRC does.
  size_t data = 30 + 5 + uint8_t(img[28]);  // local header + "x.npy" + its extra field
  int detected = 0;
  for (size_t i = data + 10; i < cd - 10; i += 37) {
    bad = img;
    bad[i] ^= 0x5a;
    write_file(p, bad);
    try {
      NpzReader(p).get("x");
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(p + ":x"), std::string::npos) << e.what();
      ++detected;
    }
  }
  EXPECT_GT(detected, 0);
  // Stored member with a wrong CRC: get() does not read the data to check, verify() does.
  npz_save(p, {{"x", sample(DType::f8, {500})}}, false);
  img = read_file(p);
  img[img.rfind(std::string("PK\x01\x02", 4)) + 16] ^= 1;
  write_file(p, img);
  EXPECT_EQ(NpzReader(p).get("x").numel(), 500);
  expect_input_error([&] { NpzReader(p).verify("x"); }, {p + ":x", "CRC-32 mismatch"});
}

// Every archive of the golden set (written by numpy.savez) opens, every member's CRC-32 checks
// and its header agrees with the array.
TEST(NpzReal, EveryGoldenArchive) {
  std::string dir = test::golden_dir();
  REQUIRE_FIXTURE(dir + "/weights_hacm.npz");
  std::vector<std::string> files;
  for (const char* f :
       {"feeder", "hacm_attention_block", "hacm_attention_block_fwd", "hacm_downstream",
        "hacm_embed", "hacm_forward", "hacm_forward_vel", "hacm_full", "hacm_grads",
        "hacm_hyperbolic", "hacm_mask", "hacm_spatial", "hacm_temporal", "mamp_forward",
        "weights_hacm", "weights_hacm_d64", "weights_heads", "weights_mamp"}) {
    files.push_back(dir + "/" + f + ".npz");
  }
  int members = 0, scalars = 0;
  std::set<DType> dtypes;
  for (const auto& f : files) {
    REQUIRE_FIXTURE(f);
    NpzReader r(f);
    ASSERT_FALSE(r.keys().empty()) << f;
    for (const auto& k : r.keys()) {
      NpyHeader h = r.header(k);
      NdArray a = r.get(k);
      EXPECT_EQ(a.dtype, h.dtype) << f << ":" << k;
      EXPECT_EQ(a.shape, h.shape) << f << ":" << k;
      r.verify(k);
      dtypes.insert(a.dtype);
      scalars += a.ndim() == 0;
      ++members;
    }
  }
  std::printf("  %zu golden archives, %d members, %d 0-d scalars\n", files.size(), members,
              scalars);
  EXPECT_GT(scalars, 0);
  EXPECT_TRUE(dtypes.count(DType::f4) && dtypes.count(DType::f8) && dtypes.count(DType::i8));

  NpzReader w(dir + "/weights_hacm.npz");
  NdArray qkv = w.require("blocks.0.attn.qkv.weight", DType::f4, 2);
  EXPECT_EQ(qkv.shape, (std::vector<int64_t>{768, 256}));
  std::vector<float> v = qkv.to_f32();
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }));
  NpzReader hyp(dir + "/hacm_hyperbolic.npz");
  std::set<DType> hd;
  for (const auto& k : hyp.keys()) hd.insert(hyp.header(k).dtype);
  EXPECT_TRUE(hd.count(DType::f8) && hd.count(DType::i8) && hd.count(DType::f4));
}

// NTU60_CS.npz (CTR-GCN layout; PROVENANCE.md): 11 test samples, labels 49..59 one-hot,
// non-zero frame counts 37, 46, 57, 68, 42, 66, 80, 76, 65, 111, 77; empty train split.
TEST(NpzReal, NtuSample) {
  std::string p = test::real("ntu/npz/NTU60_CS.npz");
  REQUIRE_FIXTURE(p);
  NpzReader r(p);
  NdArray x = r.require("x_test", DType::f4, 3);
  NdArray y = r.require("y_test", DType::f8, 2);
  EXPECT_EQ(x.shape, (std::vector<int64_t>{11, 111, 150}));
  EXPECT_EQ(y.shape, (std::vector<int64_t>{11, 60}));
  EXPECT_EQ(r.header("x_train").shape, (std::vector<int64_t>{0, 111, 150}));
  EXPECT_EQ(r.get("x_train").numel(), 0);
  EXPECT_EQ(r.get("y_train").shape, (std::vector<int64_t>{0, 60}));
  std::vector<double> xs = x.to_f64(), ys = y.to_f64();
  const int frames[11] = {37, 46, 57, 68, 42, 66, 80, 76, 65, 111, 77};
  for (int n = 0; n < 11; ++n) {
    int label = -1, ones = 0;
    for (int c = 0; c < 60; ++c) {
      double v = ys[size_t(n * 60 + c)];
      if (v == 1.0)
        label = c, ++ones;
      else
        EXPECT_EQ(v, 0.0);
    }
    EXPECT_EQ(ones, 1);
    EXPECT_EQ(label, 49 + n);
    int nz = 0;
    for (int t = 0; t < 111; ++t) {
      bool any = false;
      for (int j = 0; j < 150; ++j) any |= xs[size_t((n * 111 + t) * 150 + j)] != 0.0;
      nz += any;
    }
    EXPECT_EQ(nz, frames[n]) << "sample " << n;
  }
}

}  // namespace
}  // namespace hacm
