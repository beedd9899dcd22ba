// NTU RGB+D raw data: the .skeleton text parser, sample names (SsssCcccPpppRrrrAaaa), the
// official missing-skeleton lists (embedded, and readable from the official .txt files) and the
// split ID lists of the SGN/CTR-GCN/MAMP `seq_transformation.py` scripts.
// Also a small line scanner shared with the PKU-MMD reader (core/pku.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hacm {

inline constexpr int kNtuJoints = 25;
inline constexpr int64_t kNtu60Usable = 56578;    // 56,880 files - 302 missing
inline constexpr int64_t kNtu120Usable = 113945;  // 114,480 files - 535 missing

// ---- Text scanning (no iostreams; shared by the NTU and PKU readers) ----

// The whole file as bytes. Throws InputError (file, 0) when it cannot be read.
std::string read_file_bytes(const std::string& path);

// Walks a buffer line by line. Line ends: "\n", "\r\n" or a lone "\r" (Python's universal
// newlines, as the original scripts read the files). Line numbers are 1-based.
class LineScanner {
 public:
  LineScanner(const char* data, size_t size) : p_(data), end_(data + size) {}
  // The next line without its terminator; false at end of buffer.
  bool next(std::string_view* line);
  long line_no() const { return line_; }  // number of the line last returned
  bool at_end() const { return p_ >= end_; }

 private:
  const char* p_;
  const char* end_;
  long line_ = 0;
};

// Whitespace (space, tab, \v, \f) token walker over one line.
class Tokens {
 public:
  explicit Tokens(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}
  bool next(std::string_view* tok);  // false when no token is left
  bool empty();                      // true when only whitespace is left
  int count();                       // number of tokens left (consumes them)
  // The next token as a number (parse_f64 rules), scanned in one pass for plain decimals:
  // 1 parsed, 0 no token left, -1 not a number (last() is the token).
  int next_f64(double* v);
  // As next_f64; with v == nullptr the token is only checked to be a number.
  int next_number(double* v);
  std::string_view last() const { return last_; }

 private:
  const char* p_;
  const char* end_;
  std::string_view last_;
};

// Strict number parsing of a whole token (leading '+' allowed, surrounding spaces not).
// Doubles accept what Python's float() accepts for plain decimals, exponents, inf and nan.
bool parse_f64(std::string_view tok, double* v);
bool parse_i64(std::string_view tok, int64_t* v);
// A token trimmed of spaces/tabs/\r on both sides.
std::string_view trim(std::string_view s);

// At most 40 characters of `s` for an error message, non-printable bytes as '?', "..." if cut.
std::string excerpt(std::string_view s);

// ---- Sample names ----

struct NtuSampleName {
  int setup = 0, camera = 0, performer = 0, replication = 0, action = 0;  // all 1-based
  int label() const { return action - 1; }                                // 0-based class
};
// Parses exactly "SsssCcccPpppRrrrAaaa" (20 characters, each field 3 digits, values >= 1);
// an optional ".skeleton" suffix is accepted. False for anything else.
bool parse_ntu_name(std::string_view s, NtuSampleName* out);
bool is_ntu_name(std::string_view s);

// ---- Missing-skeleton lists ----

// The official lists (shahroudy/NTURGB-D, identical to the MAMP/CTR-GCN/CMD copies), sorted:
// 302 names for NTU-60 (S001-S017), 535 for NTU-120 (the 302 plus 233 from S018-S032).
const std::vector<std::string>& ntu_missing_samples(bool ntu120);
// Reads a list file: every line that is a sample name (after trimming) is taken, anything else
// (the official header sentences, blank lines) is skipped.
std::vector<std::string> parse_ntu_missing_list(const char* data, size_t size);
std::vector<std::string> read_ntu_missing_list(const std::string& path);

// ---- Splits (exact lists of MAMP/CTR-GCN data/ntu*/seq_transformation.py) ----

enum class NtuSplitKey { performer, camera, setup };
struct NtuSplit {
  std::string name;  // XSub | XView | XSet (output NTU60_<name>.npz / NTU120_<name>.npz)
  NtuSplitKey key;
  std::vector<int> train_ids, test_ids;  // in the order the original concatenates them
};
// NTU-60: XSub (performers), XView (cameras 2,3 / 1). NTU-120: XSub (53 train performers, the
// other 53 of 1..106 test), XSet (even setups train, odd test).
std::vector<NtuSplit> ntu_splits(bool ntu120);
int ntu_split_value(const NtuSampleName& n, NtuSplitKey key);
// Indices into `samples` as the original arranges them: for each id of the list in order, the
// samples with that id in their order in `samples` (np.hstack of np.where per id). Samples whose
// id is on neither list are left out.
void ntu_split_indices(const NtuSplit& split, const std::vector<NtuSampleName>& samples,
                       std::vector<int64_t>* train, std::vector<int64_t>* test);

// ---- .skeleton parsing ----

// One bodyID's appearances, collected as get_raw_skes_data.py does: joints stacked in the order
// of appearance; the original's interval is [first, first + count - 1] in kept-frame indices
// (it assumes the body is contiguous; so do we).
struct NtuBody {
  std::string id;          // Kinect tracking id (64-bit), kept as text as the original does
  int first = 0;           // kept-frame index (0-based, frames with 0 bodies skipped) of 1st use
  int count = 0;           // number of frames the body appears in
  std::vector<float> xyz;  // (count, 25, 3) camera-space metres (text -> double -> float32)
};

struct NtuSkeleton {
  int file_frames = 0;                // line 1
  std::vector<int> bodies_per_frame;  // (file_frames) body count of every frame in the file
  int kept_frames = 0;                // frames with at least one body
  std::vector<NtuBody> bodies;        // in order of first appearance (Python dict order)
};

// Parses a whole .skeleton image. `where` names the source in errors. Throws InputError
// "<where>:<line>: <what>" for a truncated file, a joint count other than 25, a non-numeric
// count or coordinate, a joint line with fewer than 7 fields, or a bodyID listed twice in one
// frame. Content after the last frame is ignored (as the original does).
NtuSkeleton parse_ntu_skeleton(const char* data, size_t size, const std::string& where);
NtuSkeleton read_ntu_skeleton(const std::string& path);

}  // namespace hacm
