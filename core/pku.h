// PKU-MMD (phase 1 and 2) raw files: per-frame skeleton text, `class,start,end,confidence`
// labels, the official split files, the directory layout, and clip cutting as MAMP's
// data/pku_v{1,2}/pku_gendata.py does it.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hacm {

inline constexpr int kPkuClasses = 51;
inline constexpr int kPkuValues = 150;  // per frame: 2 bodies x 25 joints x xyz

// A long video's skeleton: one line per frame, 150 numbers (body 2 all zeros when absent).
struct PkuSkeleton {
  int64_t frames = 0;
  std::vector<double> values;  // (frames, 150), float64 as np.loadtxt reads them
};
// Blank lines are skipped (as np.loadtxt does); every other line must hold exactly 150 numbers.
// Throws InputError "<where>:<line>: ..." otherwise.
PkuSkeleton parse_pku_skeleton(const char* data, size_t size, const std::string& where);
PkuSkeleton read_pku_skeleton(const std::string& path);

// One action instance: `class,start,end,confidence`, integers; class 1..51, start/end >= 0.
struct PkuLabel {
  int cls = 0;  // 1-based
  int64_t start = 0, end = 0;
  int64_t confidence = 0;
};
std::vector<PkuLabel> parse_pku_labels(const char* data, size_t size, const std::string& where);
std::vector<PkuLabel> read_pku_labels(const std::string& path);

// Video ids: phase 1 "0002-L" (4 digits, -L|-M|-R), phase 2 "A01N01-L". phase 0 = either.
bool is_pku_video_id(std::string_view id, int phase);

// Split file: line 1 a header ("Training videos:"), line 2 the training ids separated by ","
// (the official files use ", " with a trailing ", "), line 3 a header ("Validataion videos:",
// misspelt in the official files), line 4 the test ids. Ids that are not video ids of `phase`,
// or that are on both lists, are errors naming the file and line.
struct PkuSplit {
  std::vector<std::string> train, test;
};
PkuSplit parse_pku_split(const char* data, size_t size, const std::string& where, int phase);
PkuSplit read_pku_split(const std::string& path, int phase);

// One clip as MAMP cuts it: seq[start:end] (the 1-based label numbers used as a 0-based slice,
// so the first labelled frame is dropped and the clip has end - start frames, clamped to the
// video), kept only if its float64 sum is not 0, first `max_frames` frames, cast to float32.
// No centring, no rotation.
struct PkuClip {
  int label = 0;         // 0-based class
  int label_index = 0;   // line number among the label rows (0-based), MAMP's "<file>_<idx>"
  int64_t frames = 0;    // rows in x (<= max_frames)
  int64_t length = 0;    // end - start after clamping (before the 300-frame cap)
  std::vector<float> x;  // (frames, 150)
};
std::vector<PkuClip> pku_cut_clips(const PkuSkeleton& sk, const std::vector<PkuLabel>& labels,
                                   int max_frames = 300, int* dropped_all_zero = nullptr);

// Where the files of a release are under DIR (first candidate that exists wins):
//   skeletons: PKU_Skeleton_Renew/ | skeleton/ | Skeleton/ | Skeleton_v2/ | skeleton_v2/
//   labels:    Train_Label_PKU_final/ | label/ | Label/ | Label_PKUMMD_v2/ | Label_v2/ |
//              Train_Label_PKU_final_v2/
//   splits:    for X in subject|view: Split/cross-X.txt, Split/cross_X.txt, cross-X.txt,
//              cross_X.txt, and for phase 2 first the *_v2.txt names (cross_X_v2.txt) in
//              Split/ and DIR.
// Missing skeleton/label dirs or cross-subject file: InputError naming what was looked for.
struct PkuLayout {
  std::string skeleton_dir, label_dir, xsub_split, xview_split;  // xview_split may be empty
};
PkuLayout find_pku_layout(const std::string& raw_dir, int phase);

}  // namespace hacm
