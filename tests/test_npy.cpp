// .npy reader/writer and NdArray helpers: round trips for every dtype and shape kind, the three
// format versions, and every rejection path (each must be an InputError naming the source).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ndarray.h"
#include "core/npy.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

using test::expect_input_error;
using test::write_file;

// Runs f, expecting an InputError whose message contains every fragment.
std::vector<uint8_t> bytes_of(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

// A hand-made .npy image: magic, version, length field, dict padded to 64 and '\n', data.
std::vector<uint8_t> make_npy(int major, const std::string& dict, const std::string& data) {
  size_t prefix = major == 1 ? 10 : 12;
  std::string d = dict;
  while ((prefix + d.size() + 1) % 64) d += ' ';
  d += '\n';
  std::string out("\x93NUMPY", 6);
  out += char(major);
  out += char(0);
  size_t n = d.size();
  out += char(n & 0xff);
  out += char(n >> 8 & 0xff);
  if (major != 1) {
    out += char(n >> 16 & 0xff);
    out += char(n >> 24 & 0xff);
  }
  return bytes_of(out + d + data);
}

// Deterministic array of any dtype: element i = f(i) in that dtype.
NdArray sample(DType t, const std::vector<int64_t>& shape) {
  NdArray a = NdArray::zeros(t, shape);
  for (int64_t i = 0; i < a.numel(); ++i) {
    double v = (i % 7) * 1.25 - 3.0 + i;
    switch (t) {
      case DType::f4:
        a.data<float>()[i] = float(v);
        break;
      case DType::f8:
        a.data<double>()[i] = v / 3.0;
        break;
      case DType::i4:
        a.data<int32_t>()[i] = int32_t(-i * 1000003);
        break;
      case DType::i8:
        a.data<int64_t>()[i] = (int64_t(1) << 40) - i;
        break;
      case DType::u1:
        a.data<uint8_t>()[i] = uint8_t(i * 37);
        break;
      case DType::b1:
        a.data<bool>()[i] = (i % 3) == 0;
        break;
    }
  }
  return a;
}

const DType kAll[] = {DType::f4, DType::f8, DType::i4, DType::i8, DType::u1, DType::b1};
const std::vector<std::vector<int64_t>> kShapes = {{}, {5}, {2, 3, 4}, {0, 111, 150}, {3, 0}};

void expect_same(const NdArray& got, const NdArray& ref, const std::string& what) {
  EXPECT_EQ(got.dtype, ref.dtype) << what;
  EXPECT_EQ(got.shape, ref.shape) << what;
  ASSERT_EQ(got.nbytes(), ref.nbytes()) << what;
  // Exact: the bytes are copied, no arithmetic.
  EXPECT_CLOSE(what, got.to_f64(), ref.to_f64(), 0.0, 0.0);
  if (got.nbytes()) {
    EXPECT_EQ(0, std::memcmp(got.bytes, ref.bytes, got.nbytes())) << what;
  }
}

TEST(Npy, RoundTripEveryDtypeAndShape) {
  std::string dir = test::scratch_dir("npy-rt");
  for (DType t : kAll) {
    for (const auto& shape : kShapes) {
      NdArray a = sample(t, shape);
      std::string what = std::string(dtype_name(t)) + a.shape_str();
      std::string path = dir + "/a.npy";
      npy_save(path, a);
      EXPECT_FALSE(test::file_exists(path + ".tmp"));
      expect_same(npy_load(path), a, what + " file");
      std::string img = npy_make_header(t, shape);
      img.append(reinterpret_cast<const char*>(a.bytes), a.nbytes());
      auto buf = bytes_of(img);
      expect_same(npy_parse(buf.data(), buf.size(), "mem"), a, what + " mem");
    }
  }
}

TEST(Npy, HeaderLayoutMatchesNumpy) {
  std::string h = npy_make_header(DType::f4, {5});
  EXPECT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h[6], 1);  // version 1
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(h.find("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"), std::string::npos);
  EXPECT_NE(npy_make_header(DType::u1, {}).find("'|u1'"), std::string::npos);
  EXPECT_NE(npy_make_header(DType::b1, {}).find("'shape': ()"), std::string::npos);
  EXPECT_NE(npy_make_header(DType::i8, {2, 3}).find("'shape': (2, 3)"), std::string::npos);
  NpyHeader p = npy_parse_header(reinterpret_cast<const uint8_t*>(h.data()), h.size(), "h");
  EXPECT_EQ(p.data_offset, h.size());
  EXPECT_EQ(p.data_bytes(), 20u);
}

TEST(Npy, VersionTwoChosenForHugeDict) {
  std::vector<int64_t> shape(23000, 1);  // dict > 65535 bytes
  std::string h = npy_make_header(DType::f8, shape);
  EXPECT_EQ(h[6], 2);
  EXPECT_EQ(h.size() % 64, 0u);
  h += std::string(8, '\0');
  NdArray a = npy_parse(reinterpret_cast<const uint8_t*>(h.data()), h.size(), "big");
  EXPECT_EQ(a.ndim(), 23000);
  EXPECT_EQ(a.numel(), 1);
}

TEST(Npy, ParsesVersionsOneTwoThree) {
  std::string data(24, '\0');
  for (int i = 0; i < 6; ++i) {
    float v = float(i) - 2.5f;
    std::memcpy(&data[4 * i], &v, 4);
  }
  for (int major : {1, 2, 3}) {
    auto img = make_npy(major, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data);
    NdArray a = npy_parse(img.data(), img.size(), "v" + std::to_string(major));
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    // Exact: stored float32 values converted to double.
    EXPECT_CLOSE("v" + std::to_string(major), a.to_f64(),
                 (std::vector<double>{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}), 0.0, 0.0);
  }
  // Other spellings Python's literal syntax allows: double quotes, key order, no trailing comma,
  // Python 2 long suffix, no spaces.
  auto img = make_npy(1, "{\"shape\":(3L,),\"fortran_order\":False,\"descr\":\"<i8\"}",
                      std::string(24, '\x01'));
  NdArray b = npy_parse(img.data(), img.size(), "alt");
  EXPECT_EQ(b.dtype, DType::i8);
  EXPECT_EQ(b.shape, std::vector<int64_t>{3});
  EXPECT_EQ(b.at_i64(2), 0x0101010101010101LL);
}

TEST(Npy, ZeroDimScalarAndZeroSize) {
  auto img = make_npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                      std::string("\0\0\0\0\0\0\x08\x40", 8));
  NdArray s = npy_parse(img.data(), img.size(), "scalar");
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.at_f64(0), 3.0);
  auto z = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 111, 150), }", "");
  NdArray e = npy_parse(z.data(), z.size(), "empty");
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.nbytes(), 0u);
  EXPECT_EQ(e.shape_str(), "[0,111,150]");
  EXPECT_TRUE(e.to_f32().empty());
}

TEST(Npy, RejectsWithMessageNamingSource) {
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  auto parse = [](const std::vector<uint8_t>& b) {
    return [b] { npy_parse(b.data(), b.size(), "src.npy"); };
  };
  expect_input_error(parse(bytes_of("PK\x03\x04 not npy at all")), {"src.npy", "bad magic"});
  expect_input_error(parse(bytes_of("\x93NUMPY")), {"src.npy", "bad magic"});
  auto v4 = make_npy(1, ok_dict, std::string(8, '\0'));
  v4[6] = 4;
  expect_input_error(parse(v4), {"src.npy", "version 4.0"});
  auto trunc_hdr = make_npy(1, ok_dict, "");
  trunc_hdr.resize(40);
  expect_input_error(parse(trunc_hdr), {"src.npy", "truncated .npy header"});
  expect_input_error(parse(make_npy(1, ok_dict, std::string(7, '\0'))),
                     {"src.npy", "truncated .npy data", "needs 8 bytes, found 7"});
  expect_input_error(parse(make_npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                                    std::string(8, '\0'))),
                     {"src.npy", "Fortran"});
  expect_input_error(parse(make_npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                                    std::string(8, '\0'))),
                     {"src.npy", "big-endian", ">f4"});
  for (const char* d : {"<f2", "<u4", "|i1", "<U3", "|O", "<c8", "<b1"}) {
    expect_input_error(
        parse(make_npy(
            1, std::string("{'descr': '") + d + "', 'fortran_order': False, 'shape': (2,), }",
            std::string(64, '\0'))),
        {"src.npy", "unsupported dtype", d});
  }
  expect_input_error(
      parse(make_npy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", "")),
      {"src.npy", "structured"});
  // Malformed dicts.
  for (const char* d : {"{'descr': '<f4', 'fortran_order': False}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }",
                        "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,), }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk",
                        "{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }",
                        "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)",
                        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
                        "['descr', '<f4']", ""}) {
    expect_input_error(parse(make_npy(1, d, std::string(8, '\0'))), {"src.npy", "bad .npy"});
  }
  expect_input_error(
      parse(make_npy(
          1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", "")),
      {"src.npy", "overflows"});
}

TEST(Npy, LoadSaveFileErrors) {
  std::string dir = test::scratch_dir("npy-err");
  expect_input_error([&] { npy_load(dir + "/missing.npy"); },
                     {dir + "/missing.npy", "cannot open"});
  expect_input_error([&] { npy_load(dir); }, {dir, "not a regular file"});
  std::string p = dir + "/cut.npy";
  npy_save(p, sample(DType::f8, {10}));
  std::string img;
  {
    std::ifstream f(p, std::ios::binary);
    img.assign(std::istreambuf_iterator<char>(f), {});
  }
  for (size_t cut : {size_t(0), size_t(9), size_t(50), img.size() - 1}) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(img.data(), std::streamsize(cut));
    expect_input_error([&] { npy_load(p); }, {p});
  }
  expect_input_error([&] { npy_save(dir + "/no/such/dir/x.npy", sample(DType::f4, {2})); },
                     {dir + "/no/such/dir/x.npy", "cannot create"});
}

TEST(NdArray, Helpers) {
  EXPECT_EQ(dtype_size(DType::f4), 4u);
  EXPECT_EQ(dtype_size(DType::f8), 8u);
  EXPECT_EQ(dtype_size(DType::i4), 4u);
  EXPECT_EQ(dtype_size(DType::i8), 8u);
  EXPECT_EQ(dtype_size(DType::u1), 1u);
  EXPECT_EQ(dtype_size(DType::b1), 1u);
  EXPECT_STREQ(dtype_name(DType::i8), "i8");
  EXPECT_STREQ(dtype_name(DType::b1), "b1");
  NdArray z = NdArray::zeros(DType::i4, {2, 3});
  EXPECT_EQ(z.shape_str(), "[2,3]");
  EXPECT_EQ(z.nbytes(), 24u);
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(z.at_i64(i), 0);
  EXPECT_EQ(NdArray::zeros(DType::f4, {}).shape_str(), "[]");
  EXPECT_THROW(NdArray::zeros(DType::f4, {-1}), std::invalid_argument);

  NdArray f = NdArray::from<float>({4}, std::vector<float>{1.5f, -2.5f, 3e9f, NAN});
  EXPECT_EQ(f.dtype, DType::f4);
  EXPECT_EQ(f.at_f64(1), -2.5);
  EXPECT_EQ(f.at_i64(0), 1);  // truncation toward zero
  EXPECT_EQ(f.at_i64(1), -2);
  EXPECT_EQ(f.at_i64(2), 3000000000LL);
  EXPECT_EQ(f.at_i64(3), INT64_MIN);  // NaN, as numpy on x86
  EXPECT_THROW(f.at_f64(4), std::out_of_range);
  EXPECT_THROW(f.at_i64(-1), std::out_of_range);

  NdArray d = NdArray::from<double>({3}, std::vector<double>{0.1, 1e300, -7});
  std::vector<float> d32 = d.to_f32();
  EXPECT_EQ(d32[0], 0.1f);
  EXPECT_TRUE(std::isinf(d32[1]));
  EXPECT_EQ(d.to_i64()[2], -7);
  EXPECT_EQ(d.to_i64()[1], INT64_MAX);  // saturates

  const bool bits[3] = {false, true, false};
  NdArray b = NdArray::from<bool>({3}, bits);
  EXPECT_EQ(b.dtype, DType::b1);
  EXPECT_EQ(b.to_i64(), (std::vector<int64_t>{0, 1, 0}));
}

TEST(NdArray, ConversionsEveryDtypeAndUnalignedViews) {
  const int64_t ref_i[] = {-3, 0, 7, 100};
  for (DType t : kAll) {
    NdArray a = NdArray::zeros(t, {4});
    for (int i = 0; i < 4; ++i) {
      int64_t v = ref_i[i];
      if (t == DType::u1) v = std::abs(v);
      if (t == DType::b1) v = v != 0;
      switch (t) {
        case DType::f4:
          a.data<float>()[i] = float(v);
          break;
        case DType::f8:
          a.data<double>()[i] = double(v);
          break;
        case DType::i4:
          a.data<int32_t>()[i] = int32_t(v);
          break;
        case DType::i8:
          a.data<int64_t>()[i] = v;
          break;
        case DType::u1:
          a.data<uint8_t>()[i] = uint8_t(v);
          break;
        case DType::b1:
          a.data<uint8_t>()[i] = uint8_t(v);
          break;
      }
    }
    // The same bytes one byte off alignment, as a stored .npz member may be.
    std::vector<uint8_t> shifted(a.nbytes() + 1);
    std::memcpy(shifted.data() + 1, a.bytes, a.nbytes());
    NdArray view = a;
    view.owner.reset();
    view.bytes = shifted.data() + 1;
    std::vector<double> expect;
    for (int i = 0; i < 4; ++i) expect.push_back(a.at_f64(i));
    // Exact: small integers are representable in every dtype.
    EXPECT_CLOSE(std::string("view ") + dtype_name(t), view.to_f64(), expect, 0.0, 0.0);
    EXPECT_CLOSE(std::string("f32 ") + dtype_name(t), view.to_f32(), expect, 0.0, 0.0);
    EXPECT_CLOSE(std::string("i64 ") + dtype_name(t), view.to_i64(), expect, 0.0, 0.0);
    EXPECT_EQ(view.at_i64(3), int64_t(expect[3]));
  }
}

}  // namespace
}  // namespace hacm
