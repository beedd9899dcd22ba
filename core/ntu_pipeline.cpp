// SGN / CTR-GCN / MAMP NTU pipeline (see ntu_pipeline.h). Every arithmetic step is float32 in
// the same order as numpy does it, so outputs match the original bit for bit.
#include "core/ntu_pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace hacm {

// ---- numpy-exact reductions ----

template <class T>
static T pairwise(const T* a, int64_t n, int64_t stride) {
  // numpy/core/src/umath/loops_utils.h: *_pairwise_sum (PW_BLOCKSIZE 128, 8-way unrolled).
  if (n < 8) {
    T res = T(0);
    for (int64_t i = 0; i < n; ++i) res += a[i * stride];
    return res;
  }
  if (n <= 128) {
    T r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k * stride];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int k = 0; k < 8; ++k) r[k] += a[(i + k) * stride];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i * stride];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise(a, n2, stride) + pairwise(a + n2 * stride, n - n2, stride);
}

float np_pairwise_sum(const float* a, int64_t n, int64_t stride) {
  return 0.0f + pairwise(a, n, stride);  // the reduction starts from add's identity
}
double np_pairwise_sum(const double* a, int64_t n, int64_t stride) {
  return 0.0 + pairwise(a, n, stride);
}

float np_var_sum3(const float* x, int64_t rows) {
  // Reduction over axis 0 of a (rows, 3) array: numpy walks the rows, adding each row to the
  // 3 accumulators (not pairwise). The count is a Python int, cast to float32 by the division.
  float s[3] = {0.f, 0.f, 0.f};
  for (int64_t r = 0; r < rows; ++r)
    for (int c = 0; c < 3; ++c) s[c] += x[r * 3 + c];
  const float cnt = float(rows);
  float mean[3], q[3] = {0.f, 0.f, 0.f};
  for (int c = 0; c < 3; ++c) mean[c] = s[c] / cnt;
  for (int64_t r = 0; r < rows; ++r)
    for (int c = 0; c < 3; ++c) {
      float d = x[r * 3 + c] - mean[c];
      q[c] += d * d;
    }
  float v[3];
  for (int c = 0; c < 3; ++c) v[c] = q[c] / cnt;
  return np_pairwise_sum(v, 3);
}

// ---- pipeline ----

const char* ntu_skip_reason(NtuSkip s) {
  switch (s) {
    case NtuSkip::none:
      return "ok";
    case NtuSkip::no_bodies:
      return "no frame has a body";
    case NtuSkip::no_bodies_left:
      return "every bodyID lasts 11 frames or fewer";
    case NtuSkip::actor1_never_seen:
      return "the main actor is zero in every frame";
  }
  return "?";
}

namespace {

constexpr int kLenThres = 11;              // noise_len_thres
constexpr double kSpreadThres1 = 0.8;      // noise_spr_thres1
constexpr double kSpreadThres2 = 0.69754;  // noise_spr_thres2

struct Cand {
  int body;      // index into NtuSkeleton::bodies
  float motion;  // float32, as np.sum(np.var(...)) returns
};

// get_valid_frames_by_spread: a frame is valid when (max x - min x) <= 0.8 (max y - min y).
// Both ranges are float32; `0.8 * float32_scalar` is float64 under numpy 1.x scalar promotion,
// so the comparison is done in double. NaN anywhere makes the comparison false (numpy's max/min
// propagate NaN).
bool spread_valid(const float* j /*(25,3)*/) {
  float xmax = j[0], xmin = j[0], ymax = j[1], ymin = j[1];
  bool nan = std::isnan(j[0]) || std::isnan(j[1]);
  for (int k = 1; k < kNtuJoints; ++k) {
    float x = j[k * 3], y = j[k * 3 + 1];
    nan |= std::isnan(x) || std::isnan(y);
    xmax = std::max(xmax, x), xmin = std::min(xmin, x);
    ymax = std::max(ymax, y), ymin = std::min(ymin, y);
  }
  if (nan) return false;
  float dx = xmax - xmin, dy = ymax - ymin;
  return double(dx) <= kSpreadThres1 * double(dy);
}

void put_body(const NtuBody& b, float* joints, int width, int col) {
  for (int f = 0; f < b.count; ++f)
    std::memcpy(joints + size_t(b.first + f) * width + col, b.xyz.data() + size_t(f) * 75,
                75 * sizeof(float));
}

// remove_missing_frames: keep rows whose (pairwise float32) sum is not 0.
void drop_zero_rows(NtuSequence* s) {
  const int w = 75 * s->actors;
  int kept = 0;
  for (int f = 0; f < s->frames; ++f) {
    const float* row = s->joints.data() + size_t(f) * w;
    if (np_pairwise_sum(row, w) != 0.0f) {
      if (kept != f) std::memmove(s->joints.data() + size_t(kept) * w, row, w * sizeof(float));
      ++kept;
    }
  }
  s->frames = kept;
  s->joints.resize(size_t(kept) * w);
}

void one_actor(const NtuBody& b, int frames, NtuSequence* out) {
  out->actors = 1;
  out->frames = frames;
  out->joints.assign(size_t(frames) * 75, 0.f);
  put_body(b, out->joints.data(), 75, 0);
}

}  // namespace

NtuSkip ntu_denoise(const NtuSkeleton& sk, NtuSequence* out) {
  const int T = sk.kept_frames;
  if (T == 0 || sk.bodies.empty()) return NtuSkip::no_bodies;
  if (sk.bodies.size() == 1) {  // bypasses all denoising, keeps every frame
    one_actor(sk.bodies[0], T, out);
    return NtuSkip::none;
  }
  // Motion of every bodyID over all its frames (get_raw_skes_data, only for >1 bodyIDs).
  std::vector<Cand> live;
  for (size_t b = 0; b < sk.bodies.size(); ++b) {
    const NtuBody& body = sk.bodies[b];
    if (body.count <= kLenThres) continue;  // denoising_by_length
    live.push_back({int(b), np_var_sum3(body.xyz.data(), int64_t(body.count) * kNtuJoints)});
  }
  if (live.size() > 1) {
    // denoising_by_spread: walks the bodies left after the length filter in order, stopping as
    // soon as only one is left; drops a body whose noisy-frame ratio is >= 0.69754, else lowers
    // its motion to that of its valid frames.
    std::vector<Cand> walk = live;
    std::vector<float> valid_xyz;
    for (const Cand& c : walk) {
      if (live.size() == 1) break;
      const NtuBody& body = sk.bodies[size_t(c.body)];
      valid_xyz.clear();
      int n_valid = 0;
      for (int f = 0; f < body.count; ++f) {
        const float* j = body.xyz.data() + size_t(f) * 75;
        if (spread_valid(j)) {
          valid_xyz.insert(valid_xyz.end(), j, j + 75);
          ++n_valid;
        }
      }
      int n_noise = body.count - n_valid;
      if (n_noise == 0) continue;
      double ratio = double(n_noise) / double(body.count);
      auto it =
          std::find_if(live.begin(), live.end(), [&](const Cand& x) { return x.body == c.body; });
      if (ratio >= kSpreadThres2) {
        live.erase(it);
      } else {
        float m = np_var_sum3(valid_xyz.data(), int64_t(n_valid) * kNtuJoints);
        if (m < it->motion) it->motion = m;  // Python min(motion, m) keeps the first on ties
      }
    }
  }
  if (live.empty()) return NtuSkip::no_bodies_left;
  if (live.size() == 1) {  // one actor left: 75 columns, frames outside its interval dropped
    one_actor(sk.bodies[size_t(live[0].body)], T, out);
    drop_zero_rows(out);
    return NtuSkip::none;
  }
  // sorted(..., key=motion, reverse=True) is stable: ties keep first-appearance order.
  std::stable_sort(live.begin(), live.end(),
                   [](const Cand& a, const Cand& b) { return a.motion > b.motion; });
  // get_two_actors_points
  out->actors = 2;
  out->frames = T;
  out->joints.assign(size_t(T) * 150, 0.f);
  const NtuBody& a1 = sk.bodies[size_t(live[0].body)];
  int s1 = a1.first, e1 = a1.first + a1.count - 1;
  put_body(a1, out->joints.data(), 150, 0);
  int s2 = 0, e2 = 0;  // the original's "virtual" initial interval of actor 2
  for (size_t k = 1; k < live.size(); ++k) {
    const NtuBody& b = sk.bodies[size_t(live[k].body)];
    int s = b.first, e = b.first + b.count - 1;
    if (std::min(e1, e) - std::max(s1, s) <= 0) {  // no overlap with actor 1: joins its slot
      put_body(b, out->joints.data(), 150, 0);
      s1 = std::min(s, s1), e1 = std::max(e, e1);
    } else if (std::min(e2, e) - std::max(s2, s) <= 0) {  // no overlap with actor 2
      put_body(b, out->joints.data(), 150, 75);
      s2 = std::min(s, s2), e2 = std::max(e, e2);
    }  // else discarded
  }
  drop_zero_rows(out);
  return NtuSkip::none;
}

NtuSkip ntu_translate(NtuSequence* seq) {
  const int w = 75 * seq->actors;
  float* J = seq->joints.data();
  std::vector<int> miss1, miss2;
  if (seq->actors == 2) {
    for (int f = 0; f < seq->frames; ++f) {
      if (np_pairwise_sum(J + size_t(f) * w, 75) == 0.0f) miss1.push_back(f);
      if (np_pairwise_sum(J + size_t(f) * w + 75, 75) == 0.0f) miss2.push_back(f);
    }
  }
  int i = 0;  // first frame where actor 1 has any non-zero value
  for (; i < seq->frames; ++i) {
    const float* row = J + size_t(i) * w;
    bool nz = false;
    for (int k = 0; k < 75 && !nz; ++k) nz = row[k] != 0.0f;
    if (nz) break;
  }
  if (i == seq->frames) return NtuSkip::actor1_never_seen;
  const float o[3] = {J[size_t(i) * w + 3], J[size_t(i) * w + 4], J[size_t(i) * w + 5]};
  for (int f = 0; f < seq->frames; ++f) {
    float* row = J + size_t(f) * w;
    for (int k = 0; k < w; k += 3) {
      row[k] -= o[0];
      row[k + 1] -= o[1];
      row[k + 2] -= o[2];
    }
  }
  for (int f : miss1) std::fill_n(J + size_t(f) * w, 75, 0.f);
  for (int f : miss2) std::fill_n(J + size_t(f) * w + 75, 75, 0.f);
  return NtuSkip::none;
}

NtuSkip ntu_sgn_pipeline(const NtuSkeleton& sk, NtuSequence* out) {
  NtuSkip s = ntu_denoise(sk, out);
  if (s != NtuSkip::none) return s;
  return ntu_translate(out);
}

int ntu_align(const NtuSequence& seq, bool ntu120, float* out, int max_frames) {
  const int rows = std::min(seq.frames, max_frames);
  const int w = 75 * seq.actors;
  for (int f = 0; f < rows; ++f) {
    const float* src = seq.joints.data() + size_t(f) * w;
    float* dst = out + size_t(f) * 150;
    if (seq.actors == 2) {
      std::memcpy(dst, src, 150 * sizeof(float));
    } else {
      std::memcpy(dst, src, 75 * sizeof(float));
      if (ntu120)
        std::memcpy(dst + 75, src, 75 * sizeof(float));
      else
        std::fill_n(dst + 75, 75, 0.f);
    }
  }
  std::fill(out + size_t(rows) * 150, out + size_t(max_frames) * 150, 0.f);
  return rows;
}

// ---- SpillFile ----

SpillFile::SpillFile(const std::string& dir) {
  std::string tmpl = (dir.empty() ? std::string(".") : dir) + "/.hacm-spill-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back(0);
  fd_ = ::mkstemp(name.data());
  if (fd_ < 0)
    throw std::runtime_error("cannot create a scratch file in " + dir + ": " +
                             std::strerror(errno));
  path_ = name.data();
  ::unlink(path_.c_str());
  buf_.reserve(size_t(8) << 20);
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

void SpillFile::flush() {
  size_t off = 0;
  while (off < buf_.size()) {
    ssize_t w = ::pwrite(fd_, buf_.data() + off, buf_.size() - off, off_t(flushed_ + int64_t(off)));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("scratch file write failed (" + path_ +
                               "): " + std::strerror(errno));
    }
    off += size_t(w);
  }
  flushed_ += int64_t(buf_.size());
  buf_.clear();
}

int64_t SpillFile::append(const void* data, size_t nbytes) {
  int64_t at = size_;
  const char* p = static_cast<const char*>(data);
  if (buf_.size() + nbytes > buf_.capacity()) flush();
  if (nbytes >= buf_.capacity()) {
    buf_.assign(p, p + nbytes);
    flush();
  } else {
    buf_.insert(buf_.end(), p, p + nbytes);
  }
  size_ += int64_t(nbytes);
  return at;
}

void SpillFile::read(int64_t offset, void* dst, size_t nbytes) {
  if (!buf_.empty()) flush();
  char* p = static_cast<char*>(dst);
  size_t got = 0;
  while (got < nbytes) {
    ssize_t r = ::pread(fd_, p + got, nbytes - got, off_t(offset + int64_t(got)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      throw std::runtime_error("scratch file read failed (" + path_ +
                               "): " + (r < 0 ? std::strerror(errno) : "short read"));
    got += size_t(r);
  }
}

}  // namespace hacm
