// PKU-MMD readers and MAMP-style clip cutting (see pku.h).
#include "core/pku.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/ntu.h"           // LineScanner, Tokens, parse_f64/i64, read_file_bytes, excerpt
#include "core/ntu_pipeline.h"  // np_pairwise_sum

namespace hacm {

namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

PkuSkeleton parse_pku_skeleton(const char* data, size_t size, const std::string& where) {
  PkuSkeleton sk;
  // ~12 bytes per number in the real files; reserve a little over, never more than the input
  // could hold.
  sk.values.reserve(size / 10 + kPkuValues);
  LineScanner sc(data, size);
  std::string_view line;
  while (sc.next(&line)) {
    Tokens t(line);
    if (t.empty()) continue;  // np.loadtxt skips blank lines
    size_t base = sk.values.size();
    sk.values.resize(base + kPkuValues);
    double* row = sk.values.data() + base;
    int k = 0;
    for (; k < kPkuValues; ++k) {
      int r = t.next_f64(&row[k]);
      if (r == 0) break;
      if (r < 0)
        throw input_error(where, sc.line_no(), "non-numeric value '" + excerpt(t.last()) + "'");
    }
    if (k < kPkuValues || !t.empty()) {
      int n = k + t.count();
      throw input_error(where, sc.line_no(),
                        "frame line has " + std::to_string(n) + " values, expected 150");
    }
    ++sk.frames;
  }
  return sk;
}

PkuSkeleton read_pku_skeleton(const std::string& path) {
  std::string buf = read_file_bytes(path);
  return parse_pku_skeleton(buf.data(), buf.size(), path);
}

std::vector<PkuLabel> parse_pku_labels(const char* data, size_t size, const std::string& where) {
  std::vector<PkuLabel> out;
  LineScanner sc(data, size);
  std::string_view line;
  while (sc.next(&line)) {
    if (trim(line).empty()) continue;
    int64_t f[4] = {0, 0, 0, 0};
    int n = 0;
    size_t pos = 0;
    for (;;) {
      size_t comma = line.find(',', pos);
      std::string_view field =
          trim(line.substr(pos, comma == std::string_view::npos ? line.npos : comma - pos));
      if (n >= 4)
        throw input_error(where, sc.line_no(),
                          "label line has more than 4 fields: '" + excerpt(line) + "'");
      if (!parse_i64(field, &f[n]))
        throw input_error(where, sc.line_no(),
                          "label field " + std::to_string(n + 1) + " is not an integer: '" +
                              excerpt(field) + "' (expected class,start,end,confidence)");
      ++n;
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    if (n < 3)
      throw input_error(
          where, sc.line_no(),
          "label line has " + std::to_string(n) + " fields, expected class,start,end,confidence");
    if (f[0] < 1 || f[0] > kPkuClasses)
      throw input_error(where, sc.line_no(), "class " + std::to_string(f[0]) + " outside 1..51");
    if (f[1] < 0 || f[2] < 0)
      throw input_error(where, sc.line_no(), "negative frame number in '" + excerpt(line) + "'");
    out.push_back({int(f[0]), f[1], f[2], f[3]});
  }
  return out;
}

std::vector<PkuLabel> read_pku_labels(const std::string& path) {
  std::string buf = read_file_bytes(path);
  return parse_pku_labels(buf.data(), buf.size(), path);
}

bool is_pku_video_id(std::string_view id, int phase) {
  auto digits = [&](size_t at, size_t n) {
    for (size_t i = at; i < at + n; ++i)
      if (id[i] < '0' || id[i] > '9') return false;
    return true;
  };
  auto side = [&](size_t at) {
    return id[at] == '-' && (id[at + 1] == 'L' || id[at + 1] == 'M' || id[at + 1] == 'R');
  };
  bool p1 = id.size() == 6 && digits(0, 4) && side(4);
  bool p2 =
      id.size() == 8 && id[0] == 'A' && digits(1, 2) && id[3] == 'N' && digits(4, 2) && side(6);
  return phase == 1 ? p1 : phase == 2 ? p2 : (p1 || p2);
}

PkuSplit parse_pku_split(const char* data, size_t size, const std::string& where, int phase) {
  PkuSplit s;
  LineScanner sc(data, size);
  std::string_view line;
  std::set<std::string> train_set;
  auto ids = [&](std::vector<std::string>* out, bool is_test) {
    size_t pos = 0;
    for (;;) {
      size_t comma = line.find(',', pos);
      std::string_view id =
          trim(line.substr(pos, comma == std::string_view::npos ? line.npos : comma - pos));
      if (!id.empty()) {
        if (!is_pku_video_id(id, phase))
          throw input_error(where, sc.line_no(),
                            "unknown video id '" + excerpt(id) + "' (expected phase-" +
                                std::to_string(phase) + " ids like " +
                                (phase == 2 ? "A01N01-L" : "0002-L") + ")");
        if (is_test && train_set.count(std::string(id)))
          throw input_error(where, sc.line_no(),
                            "video id " + std::string(id) + " is on both lists");
        out->emplace_back(id);
        if (!is_test) train_set.emplace(id);
      }
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  };
  auto header = [&](const char* what) {
    if (!sc.next(&line))
      throw input_error(where, sc.line_no() + 1, std::string("missing ") + what + " line");
    Tokens t(line);
    std::string_view tok;
    if (t.next(&tok) && is_pku_video_id(trim(tok.substr(0, tok.find(','))), 0))
      throw input_error(where, sc.line_no(),
                        std::string("expected a header line (") + what + "), found video ids");
  };
  header("'Training videos:'");
  if (!sc.next(&line)) throw input_error(where, sc.line_no() + 1, "missing the training id line");
  ids(&s.train, false);
  if (s.train.empty()) throw input_error(where, sc.line_no(), "no training video ids");
  if (sc.next(&line)) {  // header of the validation list, then the list (optional)
    Tokens t(line);
    std::string_view tok;
    if (t.next(&tok) && is_pku_video_id(trim(tok.substr(0, tok.find(','))), 0))
      throw input_error(where, sc.line_no(), "expected a header line ('Validataion videos:')");
    if (sc.next(&line)) ids(&s.test, true);
  }
  while (sc.next(&line))
    if (!trim(line).empty())
      throw input_error(where, sc.line_no(), "unexpected content after the test ids");
  return s;
}

PkuSplit read_pku_split(const std::string& path, int phase) {
  std::string buf = read_file_bytes(path);
  return parse_pku_split(buf.data(), buf.size(), path, phase);
}

std::vector<PkuClip> pku_cut_clips(const PkuSkeleton& sk, const std::vector<PkuLabel>& labels,
                                   int max_frames, int* dropped_all_zero) {
  std::vector<PkuClip> clips;
  int dropped = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const PkuLabel& l = labels[i];
    // Python slice seq[start:end] on non-negative bounds: clamp both to the video length.
    int64_t s = std::min(l.start, sk.frames), e = std::min(l.end, sk.frames);
    int64_t len = std::max<int64_t>(0, e - s);
    const double* src = sk.values.data() + s * kPkuValues;
    // inst_data.sum() != 0 (float64 pairwise over the flattened clip).
    if (len == 0 || np_pairwise_sum(src, len * kPkuValues) == 0.0) {
      ++dropped;
      continue;
    }
    PkuClip c;
    c.label = l.cls - 1;
    c.label_index = int(i);
    c.length = len;
    c.frames = std::min<int64_t>(len, max_frames);
    c.x.resize(size_t(c.frames) * kPkuValues);
    for (size_t k = 0; k < c.x.size(); ++k) c.x[k] = float(src[k]);
    clips.push_back(std::move(c));
  }
  if (dropped_all_zero) *dropped_all_zero = dropped;
  return clips;
}

PkuLayout find_pku_layout(const std::string& raw_dir, int phase) {
  PkuLayout L;
  auto first_dir = [&](std::initializer_list<const char*> names, const char* what) {
    std::string tried;
    for (const char* n : names) {
      std::string p = raw_dir + "/" + n;
      if (is_dir(p)) return p;
      tried += std::string(tried.empty() ? "" : ", ") + n + "/";
    }
    throw input_error(raw_dir, 0,
                      std::string("no ") + what + " directory (looked for " + tried + ")");
  };
  L.skeleton_dir = first_dir(
      {"PKU_Skeleton_Renew", "skeleton", "Skeleton", "Skeleton_v2", "skeleton_v2"}, "skeleton");
  L.label_dir = first_dir({"Train_Label_PKU_final", "label", "Label", "Label_PKUMMD_v2", "Label_v2",
                           "Train_Label_PKU_final_v2"},
                          "label");
  auto split = [&](const std::string& x) {
    std::vector<std::string> names;
    if (phase == 2)
      for (const char* d : {"Split/", ""})
        names.push_back(std::string(d) + "cross_" + x + "_v2.txt");
    for (const char* d : {"Split/", ""}) {
      names.push_back(std::string(d) + "cross-" + x + ".txt");
      names.push_back(std::string(d) + "cross_" + x + ".txt");
    }
    for (const auto& n : names)
      if (is_file(raw_dir + "/" + n)) return raw_dir + "/" + n;
    return std::string();
  };
  L.xsub_split = split("subject");
  L.xview_split = split("view");
  if (L.xsub_split.empty())
    throw input_error(
        raw_dir, 0,
        std::string("no cross-subject split file (looked for Split/cross-subject.txt, "
                    "Split/cross_subject.txt, cross-subject.txt, cross_subject.txt") +
            (phase == 2 ? ", cross_subject_v2.txt" : "") + ")");
  return L;
}

}  // namespace hacm
