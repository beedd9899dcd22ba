// .npy format (numpy/lib/format.py): "\x93NUMPY", major, minor, header length (u16 for v1,
// u32 for v2/v3), then a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}
// padded with spaces and ended by '\n'. v3 only differs by declaring the dict UTF-8.
#include "core/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace hacm {

size_t NpyHeader::data_bytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t s : shape) n *= size_t(s);  // bounded by npy_parse_header's overflow check
  return n;
}

namespace {

const char kMagic[] = "\x93NUMPY";

// Recursive-descent reader for the restricted Python literal numpy writes.
class DictParser {
 public:
  DictParser(const char* p, size_t n, const std::string& where) : p_(p), end_(p + n), w_(where) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (have_descr) fail("duplicate key 'descr'");
        have_descr = true;
        if (peek() != '\'' && peek() != '"') fail("unsupported dtype: structured 'descr'");
        h.dtype = parse_descr(parse_string());
      } else if (key == "fortran_order") {
        if (have_fortran) fail("duplicate key 'fortran_order'");
        have_fortran = true;
        if (parse_bool()) fail("Fortran-ordered arrays are not supported (save C-ordered)");
      } else if (key == "shape") {
        if (have_shape) fail("duplicate key 'shape'");
        have_shape = true;
        h.shape = parse_shape();
      } else {
        fail("unexpected key '" + key + "' in header dict");
      }
      skip_ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}' in header dict");
    }
    ++p_;  // '}'
    skip_ws();
    if (p_ != end_) fail("trailing bytes after header dict");
    if (!have_descr || !have_fortran || !have_shape) {
      fail("header dict must have 'descr', 'fortran_order' and 'shape'");
    }
    return h;
  }

 private:
  const char* p_;
  const char* end_;
  const std::string& w_;

  [[noreturn]] void fail(const std::string& msg) { throw input_error(w_, 0, "bad .npy: " + msg); }
  int peek() const { return p_ < end_ ? (unsigned char)*p_ : -1; }
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  void expect(char c) {
    if (peek() != (unsigned char)c)
      fail(std::string("malformed header dict, expected '") + c + "'");
    ++p_;
  }
  std::string parse_string() {
    int q = peek();
    if (q != '\'' && q != '"') fail("malformed header dict, expected a quoted string");
    ++p_;
    std::string s;
    while (p_ < end_ && *p_ != q) {
      if (*p_ == '\\') fail("escape sequences are not supported in header strings");
      s += *p_++;
    }
    if (p_ == end_) fail("unterminated string in header dict");
    ++p_;
    return s;
  }
  bool parse_bool() {
    auto match = [&](const char* w) {
      size_t n = std::strlen(w);
      if (size_t(end_ - p_) >= n && std::memcmp(p_, w, n) == 0) return p_ += n, true;
      return false;
    };
    if (match("True")) return true;
    if (match("False")) return false;
    fail("'fortran_order' must be True or False");
  }
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("shape must be a tuple of non-negative integers");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (INT64_MAX - 9) / 10) fail("shape dimension too large");
        v = v * 10 + (*p_++ - '0');
      }
      if (peek() == 'L') ++p_;  // Python 2 long literal, written by old numpy
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      if (peek() != ')') fail("malformed shape tuple");
    }
    ++p_;
    return shape;
  }
  DType parse_descr(const std::string& d) {
    static const struct {
      const char* descr;
      DType t;
    } kTable[] = {{"<f4", DType::f4}, {"<f8", DType::f8}, {"<i4", DType::i4},
                  {"<i8", DType::i8}, {"|u1", DType::u1}, {"|b1", DType::b1}};
    for (const auto& e : kTable)
      if (d == e.descr) return e.t;
    if (!d.empty() && d[0] == '>') fail("big-endian dtype '" + d + "' is not supported");
    fail("unsupported dtype '" + d + "' (supported: <f4 <f8 <i4 <i8 |u1 |b1)");
  }
};

std::string shape_string(const std::vector<int64_t>& shape) {
  NdArray a;
  a.shape = shape;
  return a.shape_str();
}

uint32_t le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

NpyHeader npy_parse_header(const uint8_t* buf, size_t len, const std::string& where) {
  if (len < 10 || std::memcmp(buf, kMagic, 6) != 0) {
    throw input_error(where, 0, "not an .npy file (bad magic)");
  }
  int major = buf[6], minor = buf[7];
  if (major < 1 || major > 3 || minor != 0) {
    throw input_error(
        where, 0,
        "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor));
  }
  size_t prefix = major == 1 ? 10 : 12;
  if (len < prefix) throw input_error(where, 0, "truncated .npy header");
  size_t hlen = major == 1 ? size_t(buf[8] | buf[9] << 8) : size_t(le32(buf + 8));
  if (hlen > len - prefix) throw input_error(where, 0, "truncated .npy header");
  NpyHeader h = DictParser(reinterpret_cast<const char*>(buf + prefix), hlen, where).parse();
  // Zero dimensions are skipped so the product of the others is still bounded: numel() and
  // data_bytes() must not overflow for shapes like (0, 2**62, 2**62).
  size_t n = dtype_size(h.dtype);
  for (int64_t s : h.shape) {
    if (s != 0 && (__builtin_mul_overflow(n, size_t(s), &n) || n > (size_t(1) << 62))) {
      throw input_error(where, 0, "bad .npy: array size overflows");
    }
  }
  h.data_offset = prefix + hlen;
  return h;
}

NdArray npy_parse(const uint8_t* buf, size_t len, const std::string& where) {
  NpyHeader h = npy_parse_header(buf, len, where);
  size_t need = h.data_bytes();
  if (len - h.data_offset < need) {
    throw input_error(where, 0,
                      "truncated .npy data: shape " + shape_string(h.shape) + " needs " +
                          std::to_string(need) + " bytes, found " +
                          std::to_string(len - h.data_offset));
  }
  NdArray a = NdArray::zeros(h.dtype, h.shape);
  if (need) std::memcpy(a.bytes, buf + h.data_offset, need);
  return a;
}

std::string npy_make_header(DType dtype, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '";
  dict += (dtype == DType::u1 || dtype == DType::b1) ? "|" : "<";
  dict += dtype_name(dtype);
  dict += "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(shape[i]);
  }
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  // Pad with spaces so magic + lengths + dict + '\n' is a multiple of 64 (numpy's alignment);
  // version 2 (u32 length) only when the dict does not fit a u16.
  auto padded_len = [&](size_t prefix) {
    return (prefix + dict.size() + 1 + 63) / 64 * 64 - prefix;
  };
  size_t prefix = padded_len(10) <= 65535 ? 10 : 12;
  size_t hlen = padded_len(prefix);
  dict.append(hlen - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, 6);
  out += char(prefix == 10 ? 1 : 2);
  out += char(0);
  out += char(hlen & 0xff);
  out += char((hlen >> 8) & 0xff);
  if (prefix == 12) {
    out += char((hlen >> 16) & 0xff);
    out += char((hlen >> 24) & 0xff);
  }
  return out + dict;
}

namespace {

// Reads exactly n bytes; false on EOF.
bool read_full(int fd, void* dst, size_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n) {
    ssize_t r = ::read(fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r, n -= size_t(r);
  }
  return true;
}

}  // namespace

NdArray npy_load(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw input_error(path, 0, std::string("cannot open: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    throw input_error(path, 0, "not a regular file");
  }
  size_t size = size_t(st.st_size);
  // Header first (at most 10 + 65535 bytes for v1; v2/v3 headers can be longer).
  std::vector<uint8_t> head(std::min<size_t>(size, 12));
  if (!read_full(fd, head.data(), head.size())) throw input_error(path, 0, "read error");
  size_t hdr_total = head.size();
  if (head.size() >= 10 && std::memcmp(head.data(), kMagic, 6) == 0) {
    hdr_total = head[6] == 1 ? 10 + size_t(head[8] | head[9] << 8)
                             : (head.size() >= 12 ? 12 + size_t(le32(&head[8])) : head.size());
    hdr_total = std::min(hdr_total, size);
    head.resize(hdr_total);
    if (hdr_total > 12 && !read_full(fd, head.data() + 12, hdr_total - 12)) {
      throw input_error(path, 0, "read error");
    }
  }
  NpyHeader h = npy_parse_header(head.data(), head.size(), path);
  size_t need = h.data_bytes();
  if (size - h.data_offset < need) {
    throw input_error(path, 0,
                      "truncated .npy data: shape " + shape_string(h.shape) + " needs " +
                          std::to_string(need) + " bytes, found " +
                          std::to_string(size - h.data_offset));
  }
  NdArray a = NdArray::zeros(h.dtype, h.shape);
  if (need && !read_full(fd, a.bytes, need)) throw input_error(path, 0, "read error");
  return a;
}

void npy_save(const std::string& path, const NdArray& a) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw input_error(path, 0, std::string("cannot create: ") + std::strerror(errno));
  std::string header = npy_make_header(a.dtype, a.shape);
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  if (ok && a.nbytes()) ok = std::fwrite(a.bytes, 1, a.nbytes(), f) == a.nbytes();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": write failed: " + std::strerror(e));
  }
}

}  // namespace hacm
