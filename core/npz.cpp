// .npz = ZIP archive of .npy members (PKWARE APPNOTE 6.3: local headers, central directory,
// end-of-central-directory record, ZIP64 extensions). Only what numpy.savez/savez_compressed
// produce is supported: one disk, methods 0 (stored) and 8 (deflate), no encryption.
#include "core/npz.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include "core/error.h"

namespace hacm {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                   kEocd64Sig = 0x06064b50, kLocatorSig = 0x07064b50;
constexpr uint32_t kSat32 = 0xFFFFFFFFu;  // "see the ZIP64 extra field"
constexpr uint16_t kSat16 = 0xFFFF;
// Fixed DOS date (1980-01-01 00:00): archives are byte-identical across runs.
constexpr uint16_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;

uint16_t rd16(const uint8_t* p) {
  return uint16_t(p[0] | p[1] << 8);
}
uint32_t rd32(const uint8_t* p) {
  return rd16(p) | uint32_t(rd16(p + 2)) << 16;
}
uint64_t rd64(const uint8_t* p) {
  return rd32(p) | uint64_t(rd32(p + 4)) << 32;
}

void put16(std::string& s, uint16_t v) {
  s += char(v & 0xff);
  s += char(v >> 8);
}
void put32(std::string& s, uint32_t v) {
  put16(s, uint16_t(v & 0xffff));
  put16(s, uint16_t(v >> 16));
}
void put64(std::string& s, uint64_t v) {
  put32(s, uint32_t(v & kSat32));
  put32(s, uint32_t(v >> 32));
}

// zlib's crc32 takes a 32-bit length.
uint32_t crc_update(uint32_t crc, const uint8_t* p, size_t n) {
  while (n) {
    uInt k = uInt(std::min<size_t>(n, 1u << 30));
    crc = uint32_t(crc32(crc, p, k));
    p += k, n -= k;
  }
  return crc;
}

std::string list_keys(const std::vector<std::string>& keys) {
  std::string s;
  size_t shown = std::min<size_t>(keys.size(), 40);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + keys[i];
  if (keys.size() > shown) s += ", ... (" + std::to_string(keys.size() - shown) + " more)";
  return keys.empty() ? "none" : s;
}

// Raw-deflate decoder over a member's compressed bytes, with a running CRC of the output.
class Inflater {
 public:
  Inflater(const uint8_t* src, uint64_t n, const std::string& where)
      : in_(src), left_(n), w_(where) {
    if (inflateInit2(&zs_, -15) != Z_OK) throw std::runtime_error(where + ": inflateInit2 failed");
  }
  ~Inflater() { inflateEnd(&zs_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Up to n bytes of output; fewer only at the end of the stream.
  size_t read(uint8_t* dst, size_t n) {
    size_t got = 0;
    while (got < n && !done_) {
      if (zs_.avail_in == 0 && left_) {
        uInt k = uInt(std::min<uint64_t>(left_, 1u << 30));
        zs_.next_in = const_cast<Bytef*>(in_);
        zs_.avail_in = k;
        in_ += k, left_ -= k;
      }
      uInt want = uInt(std::min<size_t>(n - got, 1u << 30));
      zs_.next_out = dst + got;
      zs_.avail_out = want;
      int r = inflate(&zs_, Z_NO_FLUSH);
      size_t produced = want - zs_.avail_out;
      crc_ = crc_update(crc_, dst + got, produced);
      got += produced;
      if (r == Z_STREAM_END) {
        done_ = true;
      } else if (r == Z_BUF_ERROR && zs_.avail_in == 0 && left_ == 0) {
        throw input_error(w_, 0, "truncated deflate stream");
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        throw input_error(w_, 0,
                          std::string("corrupt deflate stream: ") + (zs_.msg ? zs_.msg : "?"));
      }
    }
    return got;
  }
  // Reads and discards n bytes; false if the stream ended first.
  bool skip(uint64_t n) {
    uint8_t scratch[16384];
    while (n) {
      size_t k = std::min<uint64_t>(n, sizeof(scratch));
      if (read(scratch, k) != k) return false;
      n -= k;
    }
    return true;
  }
  bool at_end() {
    uint8_t b;
    return read(&b, 1) == 0;
  }
  uint32_t crc() const { return crc_; }

 private:
  z_stream zs_{};
  const uint8_t* in_;
  uint64_t left_;
  const std::string& w_;
  bool done_ = false;
  uint32_t crc_ = 0;
};

}  // namespace

struct NpzReader::Member {
  std::string name, key;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0, lho = 0;
  uint64_t data_start = 0;  // archive offset of the member's first byte (the .npy magic)
};

NpzReader::NpzReader(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw input_error(path, 0, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw input_error(path, 0, "not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    // Private writable mapping: views of stored members are copy-on-write, so a caller that edits
    // an array in place changes only its own pages, never the file. MAP_NORESERVE keeps a 20 GB
    // mapping from being charged against memory; read-only is the fallback.
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw input_error(path, 0, std::string("cannot map: ") + std::strerror(e));
    size_t n = size_;
    mapping_ = std::shared_ptr<void>(p, [n](void* q) { ::munmap(q, n); });
    base_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
  parse();
}

NpzReader::NpzReader(const uint8_t* data, size_t size, const std::string& name)
    : path_(name), base_(data), size_(size) {
  parse();
}

NpzReader::~NpzReader() = default;

void NpzReader::parse() {
  auto fail = [&](const std::string& msg) { throw input_error(path_, 0, msg); };
  const uint8_t* b = base_;
  if (size_ < 22) fail("not a zip archive (too short for an end-of-central-directory record)");
  // The EOCD record ends the file, followed only by its comment (<= 65535 bytes).
  size_t lo = size_ > 22 + 65535 ? size_ - 22 - 65535 : 0;
  size_t eocd = SIZE_MAX;
  for (size_t pos = size_ - 22 + 1; pos-- > lo;) {
    if (rd32(b + pos) == kEocdSig && pos + 22 + rd16(b + pos + 20) == size_) {
      eocd = pos;
      break;
    }
  }
  if (eocd == SIZE_MAX) {
    fail("not a zip archive or truncated (no end-of-central-directory record)");
  }
  if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0) fail("multi-disk zip not supported");
  uint64_t entries = rd16(b + eocd + 10);
  uint64_t cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
  uint64_t cd_limit = eocd;  // the central directory must end before this offset
  if (eocd >= 20 && rd32(b + eocd - 20) == kLocatorSig) {
    const uint8_t* loc = b + eocd - 20;
    uint64_t rec = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1) fail("multi-disk zip not supported");
    if (rec > eocd - 20 || eocd - 20 - rec < 56 || rd32(b + rec) != kEocd64Sig) {
      fail("corrupt zip: bad ZIP64 end-of-central-directory record");
    }
    if (rd32(b + rec + 16) != 0 || rd32(b + rec + 20) != 0) fail("multi-disk zip not supported");
    entries = rd64(b + rec + 32);
    cd_size = rd64(b + rec + 40);
    cd_off = rd64(b + rec + 48);
    cd_limit = rec;
  } else if (entries == kSat16 || cd_size == kSat32 || cd_off == kSat32) {
    fail("corrupt zip: ZIP64 end-of-central-directory locator missing");
  }
  if (cd_off > cd_limit || cd_size > cd_limit - cd_off) {
    fail("truncated or corrupt zip: central directory outside the file");
  }
  if (entries > cd_size / 46) fail("corrupt zip: central directory too small for its entries");

  const uint8_t* p = b + cd_off;
  const uint8_t* cd_end = p + cd_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (cd_end - p < 46 || rd32(p) != kCentralSig) fail("corrupt zip: bad central directory entry");
    auto m = std::make_shared<Member>();
    m->flags = rd16(p + 8);
    m->method = rd16(p + 10);
    m->crc = rd32(p + 16);
    m->csize = rd32(p + 20);
    m->usize = rd32(p + 24);
    size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
    uint16_t disk = rd16(p + 34);
    m->lho = rd32(p + 42);
    if (size_t(cd_end - p) - 46 < nlen + xlen + clen) fail("corrupt zip: central entry overflows");
    m->name.assign(reinterpret_cast<const char*>(p + 46), nlen);
    // ZIP64 extra field (id 1): 8-byte values for exactly the saturated 32-bit fields, in order.
    bool need_u = m->usize == kSat32, need_c = m->csize == kSat32, need_o = m->lho == kSat32;
    const uint8_t* x = p + 46 + nlen;
    const uint8_t* xend = x + xlen;
    while (xend - x >= 4) {
      uint16_t id = rd16(x), sz = rd16(x + 2);
      if (size_t(xend - x) - 4 < sz)
        fail("corrupt zip: extra field overflows in '" + m->name + "'");
      if (id == 1) {
        const uint8_t* q = x + 4;
        size_t avail = sz;
        auto take = [&](uint64_t& v) {
          if (avail < 8) fail("corrupt zip: short ZIP64 extra field in '" + m->name + "'");
          v = rd64(q), q += 8, avail -= 8;
        };
        if (need_u) take(m->usize), need_u = false;
        if (need_c) take(m->csize), need_c = false;
        if (need_o) take(m->lho), need_o = false;
      }
      x += 4 + sz;
    }
    if (need_u || need_c || need_o)
      fail("corrupt zip: ZIP64 extra field missing for '" + m->name + "'");
    if (disk != 0 && disk != kSat16) fail("multi-disk zip not supported");
    p += 46 + nlen + xlen + clen;

    // Local header: its own name/extra lengths decide where the data starts.
    if (m->lho > size_ || size_ - m->lho < 30 || rd32(b + m->lho) != kLocalSig) {
      fail("truncated or corrupt zip: bad local header for '" + m->name + "'");
    }
    m->data_start = m->lho + 30 + rd16(b + m->lho + 26) + rd16(b + m->lho + 28);
    if (m->data_start > size_ || m->csize > size_ - m->data_start) {
      fail("truncated zip: member '" + m->name + "' extends past the end of the file");
    }
    if (m->name.size() > 4 && m->name.compare(m->name.size() - 4, 4, ".npy") == 0) {
      m->key = m->name.substr(0, m->name.size() - 4);
      if (!index_.emplace(m->key, members_.size()).second) {
        fail("corrupt zip: duplicate member '" + m->name + "'");
      }
      members_.push_back(std::move(m));
    }
  }
}

std::vector<std::string> NpzReader::keys() const {
  std::vector<std::string> k;
  k.reserve(members_.size());
  for (const auto& m : members_) k.push_back(m->key);
  return k;
}

bool NpzReader::has(const std::string& key) const {
  return index_.count(key) != 0;
}

const NpzReader::Member& NpzReader::find(const std::string& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) {
    throw input_error(path_, 0, "no array '" + key + "' (available: " + list_keys(keys()) + ")");
  }
  const Member& m = *members_[it->second];
  std::string where = path_ + ":" + key;
  if (m.flags & 1) throw input_error(where, 0, "encrypted zip members are not supported");
  if (m.method != 0 && m.method != 8) {
    throw input_error(where, 0,
                      "unsupported zip compression method " + std::to_string(m.method) +
                          " (only stored and deflate)");
  }
  if (m.method == 0 && m.csize != m.usize) {
    throw input_error(where, 0, "corrupt zip: stored member with different sizes");
  }
  // Deflate cannot expand more than ~1032:1; a larger claim is corrupt and would make us
  // allocate from a lie.
  if (m.method == 8 && m.usize / 1032 > m.csize + 64) {
    throw input_error(where, 0, "corrupt zip: impossible uncompressed size");
  }
  return m;
}

namespace {

// Header of a deflated member: inflates only the magic, lengths and dict.
NpyHeader inflate_header(Inflater& inf, uint64_t usize, const std::string& where,
                         std::vector<uint8_t>& head) {
  head.resize(std::min<uint64_t>(usize, 12));
  head.resize(inf.read(head.data(), head.size()));
  size_t total = head.size();
  if (total >= 10 && head[6] == 1)
    total = 10 + size_t(rd16(&head[8]));
  else if (total >= 12 && (head[6] == 2 || head[6] == 3))
    total = 12 + size_t(rd32(&head[8]));
  total = std::min<uint64_t>(total, usize);
  if (total > head.size()) {
    size_t have = head.size();
    head.resize(total);
    head.resize(have + inf.read(head.data() + have, total - have));
  }
  return npy_parse_header(head.data(), head.size(), where);
}

}  // namespace

NpyHeader NpzReader::header(const std::string& key) const {
  const Member& m = find(key);
  std::string where = path_ + ":" + key;
  if (m.method == 0) return npy_parse_header(base_ + m.data_start, m.csize, where);
  Inflater inf(base_ + m.data_start, m.csize, where);
  std::vector<uint8_t> head;
  return inflate_header(inf, m.usize, where, head);
}

NdArray NpzReader::get(const std::string& key) const {
  const Member& m = find(key);
  std::string where = path_ + ":" + key;
  auto truncated = [&](const NpyHeader& h, uint64_t have) {
    NdArray s;
    s.shape = h.shape;
    return input_error(where, 0,
                       "truncated .npy data: shape " + s.shape_str() + " needs " +
                           std::to_string(h.data_bytes()) + " bytes, found " +
                           std::to_string(have));
  };
  if (m.method == 0) {
    const uint8_t* src = base_ + m.data_start;
    NpyHeader h = npy_parse_header(src, m.csize, where);
    if (m.csize - h.data_offset < h.data_bytes()) throw truncated(h, m.csize - h.data_offset);
    NdArray a;
    a.dtype = h.dtype;
    a.shape = h.shape;
    a.owner = mapping_;  // the view keeps the mapping alive
    a.bytes = const_cast<uint8_t*>(src + h.data_offset);
    return a;
  }
  Inflater inf(base_ + m.data_start, m.csize, where);
  std::vector<uint8_t> head;
  NpyHeader h = inflate_header(inf, m.usize, where, head);
  if (m.usize - h.data_offset < h.data_bytes()) throw truncated(h, m.usize - h.data_offset);
  NdArray a = NdArray::zeros(h.dtype, h.shape);
  size_t need = h.data_bytes();
  bool ok = inf.read(a.bytes, need) == need &&
            inf.skip(m.usize - h.data_offset - need);  // numpy writes no trailing bytes; be lenient
  if (!ok || !inf.at_end()) {
    throw input_error(where, 0, "corrupt zip: inflated size differs from the recorded size");
  }
  if (inf.crc() != m.crc) throw input_error(where, 0, "corrupt zip: CRC-32 mismatch");
  return a;
}

void NpzReader::verify(const std::string& key) const {
  const Member& m = find(key);
  if (m.method == 8) {
    get(key);  // inflating checks sizes and CRC
    return;
  }
  if (crc_update(0, base_ + m.data_start, m.csize) != m.crc) {
    throw input_error(path_ + ":" + key, 0, "corrupt zip: CRC-32 mismatch");
  }
}

NdArray NpzReader::require(const std::string& key, int ndim) const {
  NdArray a = get(key);
  if (ndim >= 0 && a.ndim() != ndim) {
    throw input_error(
        path_ + ":" + key, 0,
        "expected " + std::to_string(ndim) + " dimensions, found shape " + a.shape_str());
  }
  return a;
}

NdArray NpzReader::require(const std::string& key, DType dtype, int ndim) const {
  NdArray a = require(key, ndim);
  if (a.dtype != dtype) {
    throw input_error(path_ + ":" + key, 0,
                      std::string("expected dtype ") + dtype_name(dtype) + ", found " +
                          dtype_name(a.dtype) + " (shape " + a.shape_str() + ")");
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Writer

struct NpzWriter::Impl {
  struct Entry {
    std::string name;
    uint32_t crc = 0;
    uint64_t csize = 0, usize = 0, lho = 0;
    bool zip64_local = false;
  };
  std::string path, tmp;
  bool compress = false, force64 = false, finished = false;
  int fd = -1;
  uint64_t pos = 0;  // bytes handed to put() so far (= offset of the next byte)
  std::string buf;   // not yet written to fd
  std::vector<Entry> entries;
  std::set<std::string> names;
  // Member being streamed.
  bool open = false;
  Entry cur;
  uint64_t declared = 0, written = 0;  // uncompressed bytes (npy header included)
  z_stream zs{};
  bool zinit = false;
  std::string zout;

  [[noreturn]] void io_fail(const std::string& what) {
    throw std::runtime_error(path + ": " + what + ": " + std::strerror(errno));
  }
  void flush() {
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t r = ::write(fd, buf.data() + off, buf.size() - off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) io_fail("write failed");
      off += size_t(r);
    }
    buf.clear();
  }
  void put(const void* p, size_t n) {
    constexpr size_t kBuf = size_t(1) << 20;
    if (buf.size() + n > kBuf) flush();
    if (n >= kBuf) {
      buf.assign(static_cast<const char*>(p), n);  // large block: one copy, then straight out
      flush();
    } else {
      buf.append(static_cast<const char*>(p), n);
    }
    pos += n;
  }
  void put(const std::string& s) { put(s.data(), s.size()); }
  void patch(uint64_t off, const std::string& bytes) {
    flush();
    if (::pwrite(fd, bytes.data(), bytes.size(), off_t(off)) != ssize_t(bytes.size())) {
      io_fail("write failed");
    }
  }
  // Feeds uncompressed member bytes to the file (stored) or the deflater.
  void member_bytes(const uint8_t* p, size_t n, int flush_mode) {
    cur.crc = crc_update(cur.crc, p, n);
    written += n;
    if (!compress) {
      put(p, n);
      cur.csize += n;
      return;
    }
    zout.resize(size_t(1) << 18);
    do {
      uInt k = uInt(std::min<size_t>(n, 1u << 30));
      zs.next_in = const_cast<Bytef*>(p);
      zs.avail_in = k;
      p += k, n -= k;
      int fm = n ? Z_NO_FLUSH : flush_mode;
      int r;
      do {
        zs.next_out = reinterpret_cast<Bytef*>(&zout[0]);
        zs.avail_out = uInt(zout.size());
        r = deflate(&zs, fm);
        if (r == Z_STREAM_ERROR) throw std::runtime_error(path + ": deflate failed");
        size_t out = zout.size() - zs.avail_out;
        put(zout.data(), out);
        cur.csize += out;
      } while (zs.avail_out == 0 || (fm == Z_FINISH && r != Z_STREAM_END));
    } while (n);
  }
};

NpzWriter::NpzWriter(const std::string& path, bool compress) : impl_(new Impl) {
  impl_->path = path;
  impl_->tmp = path + ".tmp";
  impl_->compress = compress;
  impl_->fd = ::open(impl_->tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (impl_->fd < 0) {
    throw input_error(path, 0, std::string("cannot create: ") + std::strerror(errno));
  }
}

NpzWriter::~NpzWriter() {
  if (impl_->zinit) deflateEnd(&impl_->zs);
  if (impl_->fd >= 0) ::close(impl_->fd);
  if (!impl_->finished) ::unlink(impl_->tmp.c_str());
}

void NpzWriter::set_force_zip64(bool on) {
  if (impl_->pos) throw std::logic_error("NpzWriter::set_force_zip64 after the first member");
  impl_->force64 = on;
}

void NpzWriter::begin(const std::string& key, DType dtype, const std::vector<int64_t>& shape) {
  Impl& s = *impl_;
  if (s.finished || s.open) throw std::logic_error("NpzWriter::begin: " + s.path + ": bad state");
  std::string name = key + ".npy";
  if (name.size() > 65535) throw std::invalid_argument("NpzWriter: key too long");
  if (!s.names.insert(name).second) {
    throw std::logic_error("NpzWriter: " + s.path + ": duplicate key '" + key + "'");
  }
  std::string npy = npy_make_header(dtype, shape);
  NpyHeader h;
  h.dtype = dtype;
  h.shape = shape;
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("NpzWriter: negative dimension for '" + key + "'");
  s.cur = Impl::Entry{};
  s.cur.name = name;
  s.cur.lho = s.pos;
  s.cur.usize = npy.size() + h.data_bytes();
  s.declared = s.cur.usize;
  s.written = 0;
  // A local ZIP64 extra is needed when a size may not fit 32 bits; deflate may expand
  // incompressible data slightly, so leave a margin for that.
  uint64_t worst = s.compress ? s.cur.usize + s.cur.usize / 1000 + 4096 : s.cur.usize;
  s.cur.zip64_local = s.force64 || worst >= kSat32;
  bool utf8 = std::any_of(name.begin(), name.end(), [](char c) { return c & 0x80; });

  std::string lh;
  put32(lh, kLocalSig);
  put16(lh, s.cur.zip64_local ? 45 : 20);  // version needed
  put16(lh, utf8 ? (1 << 11) : 0);         // flags: bit 11 = UTF-8 name
  put16(lh, s.compress ? 8 : 0);
  put16(lh, kDosTime);
  put16(lh, kDosDate);
  put32(lh, 0);                                               // CRC-32, patched in end()
  uint32_t csize32 = s.compress ? 0 : uint32_t(s.cur.usize);  // deflated size patched in end()
  put32(lh, s.cur.zip64_local ? kSat32 : csize32);
  put32(lh, s.cur.zip64_local ? kSat32 : uint32_t(s.cur.usize));
  put16(lh, uint16_t(name.size()));
  // Stored members: pad the local extra field (zipalign's block 0xD935: u16 alignment, zeros) so
  // the array data lands on a 64-byte file offset (the .npy header is a multiple of 64), making
  // the reader's zero-copy views aligned like heap arrays.
  size_t x64 = s.cur.zip64_local ? 20 : 0, pad = 0;
  if (!s.compress) {
    pad = size_t(64 - (s.cur.lho + 30 + name.size() + x64) % 64) % 64;
    if (pad && pad < 6) pad += 64;
  }
  put16(lh, uint16_t(x64 + pad));
  lh += name;
  if (s.cur.zip64_local) {
    put16(lh, 1);
    put16(lh, 16);
    put64(lh, s.cur.usize);
    put64(lh, s.compress ? 0 : s.cur.usize);
  }
  if (pad) {
    put16(lh, 0xD935);
    put16(lh, uint16_t(pad - 4));
    put16(lh, 64);
    lh.append(pad - 6, '\0');
  }
  s.put(lh);
  if (s.compress) {
    s.zs = z_stream{};
    // Level 6 = zlib's default, as used by zipfile for savez_compressed.
    if (deflateInit2(&s.zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw std::runtime_error(s.path + ": deflateInit2 failed");
    }
    s.zinit = true;
  }
  s.open = true;
  s.member_bytes(reinterpret_cast<const uint8_t*>(npy.data()), npy.size(), Z_NO_FLUSH);
}

void NpzWriter::write(const void* data, size_t nbytes) {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("NpzWriter::write without begin()");
  if (nbytes > s.declared - s.written) {
    throw std::logic_error("NpzWriter::write: " + s.cur.name + ": more bytes than the shape holds");
  }
  s.member_bytes(static_cast<const uint8_t*>(data), nbytes, Z_NO_FLUSH);
}

void NpzWriter::end() {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("NpzWriter::end without begin()");
  if (s.written != s.declared) {
    throw std::logic_error("NpzWriter::end: " + s.cur.name + ": " + std::to_string(s.written) +
                           " of " + std::to_string(s.declared) + " bytes written");
  }
  if (s.compress) {
    s.member_bytes(nullptr, 0, Z_FINISH);
    deflateEnd(&s.zs);
    s.zinit = false;
  }
  // The stored size was already right; patch CRC (and the deflated size).
  std::string crc;
  put32(crc, s.cur.crc);
  s.patch(s.cur.lho + 14, crc);
  if (s.compress) {
    std::string sz;
    if (s.cur.zip64_local) {
      put64(sz, s.cur.csize);
      s.patch(s.cur.lho + 30 + s.cur.name.size() + 4 + 8, sz);
    } else {
      if (s.cur.csize >= kSat32) throw std::runtime_error(s.path + ": deflated size overflow");
      put32(sz, uint32_t(s.cur.csize));
      s.patch(s.cur.lho + 18, sz);
    }
  }
  s.entries.push_back(s.cur);
  s.open = false;
}

void NpzWriter::add(const std::string& key, const NdArray& a) {
  begin(key, a.dtype, a.shape);
  if (a.nbytes()) write(a.bytes, a.nbytes());
  end();
}

void NpzWriter::finish() {
  Impl& s = *impl_;
  if (s.open) throw std::logic_error("NpzWriter::finish with a member still open");
  if (s.finished) return;
  uint64_t cd_off = s.pos;
  bool any64 = s.force64;
  for (const auto& e : s.entries) {
    bool u64 = s.force64 || e.usize >= kSat32, c64 = s.force64 || e.csize >= kSat32,
         o64 = s.force64 || e.lho >= kSat32;
    bool z64 = u64 || c64 || o64 || e.zip64_local;
    any64 |= z64;
    bool utf8 = std::any_of(e.name.begin(), e.name.end(), [](char c) { return c & 0x80; });
    std::string x;
    if (u64) put64(x, e.usize);
    if (c64) put64(x, e.csize);
    if (o64) put64(x, e.lho);
    std::string c;
    put32(c, kCentralSig);
    put16(c, (3 << 8) | (z64 ? 45 : 20));  // made by: Unix
    put16(c, z64 ? 45 : 20);
    put16(c, utf8 ? (1 << 11) : 0);
    put16(c, s.compress ? 8 : 0);
    put16(c, kDosTime);
    put16(c, kDosDate);
    put32(c, e.crc);
    put32(c, c64 ? kSat32 : uint32_t(e.csize));
    put32(c, u64 ? kSat32 : uint32_t(e.usize));
    put16(c, uint16_t(e.name.size()));
    put16(c, uint16_t(x.empty() ? 0 : 4 + x.size()));
    put16(c, 0);               // comment length
    put16(c, 0);               // disk
    put16(c, 0);               // internal attributes
    put32(c, 0100644u << 16);  // external attributes: regular file rw-r--r--
    put32(c, o64 ? kSat32 : uint32_t(e.lho));
    c += e.name;
    if (!x.empty()) {
      put16(c, 1);
      put16(c, uint16_t(x.size()));
      c += x;
    }
    s.put(c);
  }
  uint64_t cd_size = s.pos - cd_off, n = s.entries.size();
  bool eocd64 = any64 || n >= kSat16 || cd_size >= kSat32 || cd_off >= kSat32;
  std::string t;
  if (eocd64) {
    uint64_t rec = s.pos;
    put32(t, kEocd64Sig);
    put64(t, 44);  // size of the rest of this record
    put16(t, (3 << 8) | 45);
    put16(t, 45);
    put32(t, 0);
    put32(t, 0);
    put64(t, n);
    put64(t, n);
    put64(t, cd_size);
    put64(t, cd_off);
    put32(t, kLocatorSig);
    put32(t, 0);
    put64(t, rec);
    put32(t, 1);
  }
  put32(t, kEocdSig);
  put16(t, 0);
  put16(t, 0);
  put16(t, eocd64 && (s.force64 || n >= kSat16) ? kSat16 : uint16_t(n));
  put16(t, eocd64 && (s.force64 || n >= kSat16) ? kSat16 : uint16_t(n));
  put32(t, eocd64 && (s.force64 || cd_size >= kSat32) ? kSat32 : uint32_t(cd_size));
  put32(t, eocd64 && (s.force64 || cd_off >= kSat32) ? kSat32 : uint32_t(cd_off));
  put16(t, 0);
  s.put(t);
  s.flush();
  int fd = s.fd;
  s.fd = -1;
  if (::close(fd) != 0) s.io_fail("close failed");
  if (std::rename(s.tmp.c_str(), s.path.c_str()) != 0) s.io_fail("rename failed");
  s.finished = true;
}

std::map<std::string, NdArray> npz_load(const std::string& path) {
  NpzReader r(path);
  std::map<std::string, NdArray> out;
  for (const auto& k : r.keys()) out.emplace(k, r.get(k));
  return out;
}

void npz_save(const std::string& path, const std::map<std::string, NdArray>& arrays,
              bool compress) {
  NpzWriter w(path, compress);
  for (const auto& [k, a] : arrays) w.add(k, a);
  w.finish();
}

}  // namespace hacm
