// The authors' per-clip preprocessing (MAMP/HA-CM feeder_ntu.py + feeder/tools.py; hacm-spec §2.3):
// valid-frame count -> temporal crop (train: random p and offset; test: centre crop) -> linear
// resize to the window -> (train) random rotation R = Rz*Ry*Rx -> (optional) velocity.
//
// Layouts:
//  * stored clip (npz x row): [T=300][M=2][V=25][C=3] float32 (ClipLayout::kTMVC);
//  * authors' clip data_numpy: [C=3][T][V=25][M=2] (ClipLayout::kCTVM; golden feeder.npz `data`);
//  * output (model input, one clip of x5 [N,3,W,25,2]): [C=3][W][V=25][M=2].
// Randomness: the draws (p, bias, angles) are separate from the transform so tests can inject
// them; draw_train() takes them from our own Rng in the authors' order (p, bias, angles).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/ndarray.h"
#include "core/rng.h"

namespace hacm {

constexpr int kFeederC = 3, kFeederV = 25, kFeederM = 2;

struct FeederConfig {
  int window = 72;                  // W: output frames (72 for HA-CM, 120 for MAMP)
  double p_min = 0.5, p_max = 1.0;  // train crop fraction p ~ U(p_min, p_max)
  double p_test = 0.95;             // test centre-crop fraction
  int64_t min_crop = 64;            // train crop length lower bound (then capped at valid)
  bool random_rot = true;           // train only
  double rot_theta = 0.3;           // angles ~ U(-theta, theta)
  bool vel = false;                 // d[t] = x[t+1] - x[t], d[W-1] = 0
};

struct FeederDraws {
  double p = 1.0;       // crop fraction (informational for test mode)
  int64_t bias = 0;     // first cropped frame
  int64_t length = 0;   // cropped frames [bias, bias+length); 0 = empty clip (output zeros)
  bool rotate = false;  // apply R(angles)
  double angles[3] = {0, 0, 0};  // (ax, ay, az) in radians
};

enum class ClipLayout { kTMVC, kCTVM };
enum class FeederStage { kCrop, kRotate, kFull };  // stop after crop+resize / rotation / vel

// Number of frames whose sum over all values is non-zero (the authors' valid_frame_num).
// clip: T frames in `layout` (V=25, M=2, C=3). Sums in double.
int64_t valid_frame_count(const float* clip, ClipLayout layout, int64_t T);

// Train crop length: min(max(floor(valid*p), min_crop), valid).
int64_t train_crop_length(int64_t valid, double p, int64_t min_crop);
// Draws for a training clip: p = U(p_min,p_max), bias = integer in [0, valid-len], then the three
// angles U(-theta,theta) if random_rot (always drawn when random_rot, so streams stay aligned).
FeederDraws draw_train(Rng& rng, int64_t valid, const FeederConfig& cfg);
// Test-mode draws: bias = int((1-p)*valid/2), crop [bias, valid-bias), no rotation.
FeederDraws test_draws(int64_t valid, const FeederConfig& cfg);

// R = Rz*Ry*Rx (row-major 3x3) for angles (ax, ay, az), as tools._rot builds it.
void rotation_matrix(const double angles[3], double R[9]);

// Apply crop+resize (+ rotation if d.rotate) (+ vel if cfg.vel) to one clip of T frames.
// out: [3][W][25][2], written entirely (no prior zeroing needed). `stop` ends early for tests.
// The double overload computes in double (golden *_f64); the float overload computes the
// interpolation weights, rotation and arithmetic in float32 like the authors' torch.float code.
void feeder_apply(const float* clip, ClipLayout layout, int64_t T, const FeederDraws& d,
                  const FeederConfig& cfg, float* out, FeederStage stop = FeederStage::kFull);
void feeder_apply(const float* clip, ClipLayout layout, int64_t T, const FeederDraws& d,
                  const FeederConfig& cfg, double* out, FeederStage stop = FeederStage::kFull);

// A split of a prepared .npz (x_<split> (N,T,150) float32, y_<split> (N,K) one-hot), served
// clip by clip in model layout. The arrays are views into the memory-mapped file.
class Feeder {
 public:
  // split: "train" or "test"; train = random crop/rotation, else centre crop.
  Feeder(const std::string& npz_path, const std::string& split, const FeederConfig& cfg,
         bool train);
  // x: (N, T, 150) float32; y: (N, K) one-hot (any float dtype) or (N,) integer labels.
  Feeder(NdArray x, NdArray y, const FeederConfig& cfg, bool train, const std::string& what = "");

  int64_t size() const { return n_; }
  int64_t frames() const { return t_; }
  int num_classes() const { return k_; }
  int window() const { return cfg_.window; }
  bool train() const { return train_; }
  const FeederConfig& config() const { return cfg_; }
  int64_t label(int64_t i) const { return labels_[size_t(i)]; }
  int64_t valid(int64_t i) const { return valid_[size_t(i)]; }
  const float* clip(int64_t i) const { return x_.data<float>() + i * t_ * 150; }  // [T][150]

  // Draws for clip i: train -> from rng, test -> centre crop (rng untouched).
  FeederDraws draws(int64_t i, Rng& rng) const;
  // One clip -> out [3, W, 25, 2].
  void get(int64_t i, Rng& rng, float* out) const;
  // Clips idx[0..B) -> out [B, 3, W, 25, 2], labels[B] (nullable). Clip b uses
  // Rng::derive(seed, idx[b]) so the result is independent of `threads`.
  void get_batch(const int64_t* idx, int64_t B, uint64_t seed, float* out, int64_t* labels,
                 int threads = 1) const;

 private:
  void init(const std::string& what);
  NdArray x_, y_;
  FeederConfig cfg_;
  bool train_;
  int64_t n_ = 0, t_ = 0;
  int k_ = 0;
  std::vector<int64_t> labels_, valid_;
};

}  // namespace hacm
