// NTU RGB+D (Kinect v2) 25-joint skeleton: joint names, the bone list every repo uses for the
// bone stream, a kinematic parent tree (for generating poses), and HA-CM's 18 kept + 7 root
// ("null") joint split. All indices are 0-based.
#pragma once
#include <array>
#include <cstdint>

namespace hacm {

constexpr int kNtuJoints = 25;
constexpr int kKeptJoints = 18;
constexpr int kRootJoints = 7;

enum NtuJoint : int {
  kSpineBase = 0,
  kSpineMid = 1,
  kNeck = 2,
  kHead = 3,
  kShoulderL = 4,
  kElbowL = 5,
  kWristL = 6,
  kHandL = 7,
  kShoulderR = 8,
  kElbowR = 9,
  kWristR = 10,
  kHandR = 11,
  kHipL = 12,
  kKneeL = 13,
  kAnkleL = 14,
  kFootL = 15,
  kHipR = 16,
  kKneeR = 17,
  kAnkleR = 18,
  kFootR = 19,
  kSpineShoulder = 20,
  kHandTipL = 21,
  kThumbL = 22,
  kHandTipR = 23,
  kThumbR = 24,
};

// Kinect v2 joint names, e.g. "SpineBase", "HandTipLeft".
const char* ntu_joint_name(int j);

// The (child, parent) bone pairs of MAMP's feeder_ntu.py (25 pairs; (20,20) is the self-loop of
// the spine-shoulder "root"). Note hand tip -> thumb -> hand, as in the authors' list.
const std::array<std::pair<int, int>, kNtuJoints>& ntu_bones();

// A kinematic tree rooted at the spine base (parent of 0 is -1): hand tip and thumb hang off
// the hand. Parents come before children in ntu_fk_order().
const std::array<int, kNtuJoints>& ntu_parents();
const std::array<int, kNtuJoints>& ntu_fk_order();

// Left/right mirror partner of each joint (spine/head joints map to themselves).
const std::array<int, kNtuJoints>& ntu_mirror();

// HA-CM split (model_hacm/transformer.py): kept joints in token order, root/null joints in the
// order the model concatenates them.
const std::array<int, kKeptJoints>& hacm_kept_joints();  // 2,3,5,6,7,9,...,24
const std::array<int, kRootJoints>& hacm_root_joints();  // 0,1,4,8,12,16,20

// Split one clip in model layout x [C=3, T, V=25, M] into kept [M, T, 18, 3] and root
// [M, T, 7, 3] (the per-person [T, V, C] order the model uses after permute(0,4,2,3,1)).
// Output buffers are caller-provided; either may be null to skip it.
void split_joints(const float* x, int T, int M, float* kept, float* root);

}  // namespace hacm
