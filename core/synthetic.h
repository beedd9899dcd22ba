// Embedded synthetic skeleton dataset: NTU-layout clips generated from a seed, no download.
//
// 14 classes in 4 families; every class has a time-reversed twin (same poses, same per-joint
// statistics, opposite temporal order), and the classes of a family differ in the direction of
// the motion relative to the person's own body, whose facing is uniformly random. A linear
// classifier on raw coordinates mostly recovers the number of persons and the family, while a
// model that relates the motion to the body separates the classes.
// See docs/synthetic.md for the classes, the nuisance factors and the measured difficulty.
//
// Determinism: all motion is computed in double with our Rng (core/rng.h) and rounded to float32
// at the end; clip i uses Rng::derive(seed, i) and subject s uses its own derived Rng, so the
// output is identical for any thread count and chunking.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hacm {

constexpr int kSyntheticFrames = 300;   // padded length (as NTU)
constexpr int kSyntheticValues = 150;   // [person 2][joint 25][xyz]
constexpr int kSyntheticSubjects = 40;  // subject ids 1..40
constexpr int kSyntheticCameras = 3;    // camera ids 1..3
// Bumped whenever the generated values change for a given seed: cached data sets are keyed by it
// (`repro run` work dirs) and result records carry it, so old files are never silently reused.
constexpr int kSyntheticGenerator = 3;

int synthetic_num_classes();
const char* synthetic_class_name(int label);
bool synthetic_two_person(int label);

// Cross-subject: NTU-60's 20 training subject ids; cross-view: cameras 2 and 3 train.
bool synthetic_xsub_train(int subject);
bool synthetic_xview_train(int camera);

struct SyntheticMeta {
  int label = 0;
  int subject = 1;   // person 1 (1-based)
  int subject2 = 0;  // person 2 (0 = one-person clip); same XSub side as person 1
  int camera = 1;    // 1-based
  int length = 0;    // valid frames (<= 300)
};

// Label / subject / camera / length of clip `index` without generating its motion.
SyntheticMeta synthetic_meta(uint64_t seed, int64_t index);
// Generate clip `index`: out [300][150] float32 = [frame][person][joint][xyz], centred on person
// 1's spine-mid of frame 0 (as NTU's seq_translation), zero after `length` frames and zero for
// the second person of one-person clips. Returns the same meta as synthetic_meta().
SyntheticMeta synthetic_clip(uint64_t seed, int64_t index, float* out);

}  // namespace hacm
