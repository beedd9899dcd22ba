// .npz (zip of .npy members) reading and writing, as numpy.savez / savez_compressed make them.
// Reader: the file is memory-mapped; stored members are used in place (zero copy, so a 20 GB
// NTU-120 file works in little RAM), deflated members are inflated with zlib. ZIP64 supported.
// Writer: members may be streamed chunk by chunk with bounded memory; the archive is written to
// a temporary file and renamed on finish(), so a failure leaves no partial output.
#pragma once
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ndarray.h"
#include "core/npy.h"

namespace hacm {

class NpzReader {
 public:
  explicit NpzReader(const std::string& path);  // throws InputError (missing file, not a zip, ...)
  // An archive image already in memory (`size` bytes at `data`, caller keeps it alive while this
  // reader and its arrays live); `name` stands for the path in messages. Used by the fuzzer.
  NpzReader(const uint8_t* data, size_t size, const std::string& name);
  ~NpzReader();
  NpzReader(const NpzReader&) = delete;
  NpzReader& operator=(const NpzReader&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> keys() const;  // member names without ".npy", archive order
  bool has(const std::string& key) const;
  // Header (dtype, shape) of a member without loading its data.
  NpyHeader header(const std::string& key) const;
  // The member as an array: a view into the mapping for stored members (copy-on-write: edits stay
  // in this process; `bytes` may be unaligned), a heap copy for deflated ones. Throws InputError
  // naming file and key when the key is missing.
  NdArray get(const std::string& key) const;
  // get() plus checks: dtype (if given) and number of dimensions (if >= 0); the message names
  // file, key, expected and found.
  NdArray require(const std::string& key, int ndim = -1) const;
  NdArray require(const std::string& key, DType dtype, int ndim = -1) const;
  // Reads the whole member and checks its CRC-32 (get() checks it only for deflated members,
  // since reading a 20 GB stored member just to open it would be too slow). Throws InputError.
  void verify(const std::string& key) const;

 private:
  struct Member;
  std::string path_;
  std::shared_ptr<void> mapping_;  // munmap on last release
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::vector<std::shared_ptr<Member>> members_;
  std::map<std::string, size_t> index_;  // key -> members_ position
  void parse();
  const Member& find(const std::string& key) const;
};

class NpzWriter {
 public:
  // compress = true writes deflated members (savez_compressed); default stored (savez).
  explicit NpzWriter(const std::string& path, bool compress = false);
  ~NpzWriter();  // removes the temporary file unless finish() succeeded
  NpzWriter(const NpzWriter&) = delete;
  NpzWriter& operator=(const NpzWriter&) = delete;

  void add(const std::string& key, const NdArray& a);
  // Streaming member: exactly prod(shape)*dtype_size bytes must be written before end().
  void begin(const std::string& key, DType dtype, const std::vector<int64_t>& shape);
  void write(const void* data, size_t nbytes);
  void end();
  // Central directory, flush, rename to the final path.
  void finish();
  // Testing aid: write ZIP64 extra fields and end records even when nothing needs them (they are
  // otherwise used only where a size or offset may pass 4 GiB). Call before the first member.
  void set_force_zip64(bool on);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: every member of an archive loaded (views for stored members).
std::map<std::string, NdArray> npz_load(const std::string& path);
void npz_save(const std::string& path, const std::map<std::string, NdArray>& arrays,
              bool compress = false);

}  // namespace hacm
