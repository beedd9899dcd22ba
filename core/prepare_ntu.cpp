// `repro prepare ntu60|ntu120`: raw .skeleton files -> NTU60_XSub/XView.npz or
// NTU120_XSub/XSet.npz, as MAMP's data/ntu*/ scripts make them (pipeline A, ntu_pipeline.h).
//
// Pass 1 parses and processes every usable file in parallel (file order = the sorted names,
// which is the order of the original's skes_available_name.txt) and appends each sample's
// aligned rows (frames x 150 float32, not padded) to an unlinked scratch file; all input errors
// surface here, before any output exists. Pass 2 writes each split's npz, streaming the samples
// in the original's order (grouped by the ID lists) padded to 300 frames. Memory stays bounded
// (a reorder window of processed samples plus one padded sample).
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/npz.h"
#include "core/ntu.h"
#include "core/ntu_pipeline.h"
#include "core/prepare.h"
#include "core/progress.h"

namespace hacm {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxFrames = 300;

struct Found {
  std::string name, path;
  NtuSampleName id;
  uint64_t dev = 0, ino = 0;  // the file itself, whatever links led to it
};

bool stat_id(const std::string& p, uint64_t* dev, uint64_t* ino) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return false;
  *dev = uint64_t(st.st_dev), *ino = uint64_t(st.st_ino);
  return true;
}

struct Processed {
  NtuSkip skip = NtuSkip::none;
  int frames = 0;           // rows kept (<= 300)
  int original = 0;         // frames before the 300 cap
  std::vector<float> rows;  // (frames, 150)
};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Every *.skeleton under raw (recursively, following symlinked files) and every missing-list
// file (*missing_skeletons*.txt).
void scan(const std::string& raw, std::vector<Found>* files, std::vector<std::string>* lists) {
  std::error_code ec;
  if (!fs::is_directory(raw, ec)) throw input_error(raw, 0, "not a directory (--raw)");
  // Symlinked release folders are followed; each real directory is entered once (link cycles).
  fs::recursive_directory_iterator it(raw,
                                      fs::directory_options::skip_permission_denied |
                                          fs::directory_options::follow_directory_symlink,
                                      ec),
      end;
  if (ec) throw input_error(raw, 0, "cannot list: " + ec.message());
  std::set<std::pair<uint64_t, uint64_t>> dirs;
  uint64_t dev = 0, ino = 0;
  if (stat_id(raw, &dev, &ino)) dirs.insert({dev, ino});
  for (; it != end; it.increment(ec)) {
    if (ec) throw input_error(raw, 0, "cannot list: " + ec.message());
    const fs::path& p = it->path();
    if (fs::is_directory(p, ec)) {
      if (!stat_id(p.string(), &dev, &ino) || !dirs.insert({dev, ino}).second)
        it.disable_recursion_pending();
      continue;
    }
    std::string name = p.filename().string();
    if (!fs::is_regular_file(p, ec)) continue;
    if (ends_with(name, ".skeleton")) {
      Found f;
      if (parse_ntu_name(name, &f.id) && stat_id(p.string(), &f.dev, &f.ino)) {
        f.name = name.substr(0, 20);
        f.path = p.string();
        files->push_back(std::move(f));
      }
    } else if (ends_with(name, ".txt") && name.find("missing_skeletons") != std::string::npos) {
      lists->push_back(p.string());
    }
  }
}

}  // namespace

std::vector<std::string> prepare_ntu(const PrepareOptions& opt) {
  if (opt.dataset != "ntu60" && opt.dataset != "ntu120")
    throw InputError("prepare_ntu: dataset must be ntu60 or ntu120, got '" + opt.dataset + "'");
  const bool ntu120 = opt.dataset == "ntu120";
  const int max_setup = ntu120 ? 32 : 17, max_action = ntu120 ? 120 : 60;
  const int64_t expected = ntu120 ? kNtu120Usable : kNtu60Usable;
  const int classes = ntu120 ? 120 : 60;
  const std::string tag = ntu120 ? "NTU120" : "NTU60";
  int threads =
      opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));

  // ---- collect names ----
  std::vector<Found> all;
  std::vector<std::string> lists;
  scan(opt.raw_dir, &all, &lists);
  std::set<std::string> missing;
  for (const auto& n : ntu_missing_samples(ntu120)) missing.insert(n);
  for (const auto& l : lists)
    for (const auto& n : read_ntu_missing_list(l)) missing.insert(n);
  std::sort(all.begin(), all.end(), [](const Found& a, const Found& b) { return a.name < b.name; });
  std::vector<Found> files;
  int64_t n_missing = 0, n_other = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0 && all[i].name == all[i - 1].name) {
      if (all[i].dev == all[i - 1].dev && all[i].ino == all[i - 1].ino) continue;  // same file
      throw input_error(all[i].path, 0,
                        "sample " + all[i].name + " found twice (also " + all[i - 1].path + ")");
    }
    if (all[i].id.setup > max_setup || all[i].id.action > max_action) {
      ++n_other;
      continue;
    }
    if (missing.count(all[i].name)) {
      ++n_missing;
      continue;
    }
    files.push_back(all[i]);
  }
  if (files.empty())
    throw input_error(
        opt.raw_dir, 0,
        "no usable " + opt.dataset + " .skeleton files (found " + std::to_string(all.size()) +
            " .skeleton files: " + std::to_string(n_missing) + " on the missing-skeleton list, " +
            std::to_string(n_other) + " outside " + opt.dataset + ")");
  if (int64_t(files.size()) != expected)
    std::fprintf(stderr,
                 "warning: %s: found %lld usable .skeleton files, the full release has %lld "
                 "(%lld skipped as missing-skeleton samples, %lld outside %s)\n",
                 opt.dataset.c_str(), (long long)files.size(), (long long)expected,
                 (long long)n_missing, (long long)n_other, opt.dataset.c_str());

  // ---- pass 1: parse + pipeline, spill aligned rows ----
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  if (!fs::is_directory(opt.out_dir))
    throw input_error(opt.out_dir, 0, "cannot create output directory");
  SpillFile spill(opt.out_dir);
  std::vector<NtuSampleName> kept;
  std::vector<int64_t> offset;
  std::vector<int> frames;
  std::vector<std::string> skipped;
  int64_t n_truncated = 0;
  {
    Progress bar(opt.dataset + " parse", int64_t(files.size()), opt.progress);
    parallel_ordered<Processed>(
        int64_t(files.size()), threads, int64_t(threads) * 8,
        [&](int64_t i) {
          opt.check_cancelled();
          Processed p;
          NtuSkeleton sk = read_ntu_skeleton(files[size_t(i)].path);
          NtuSequence seq;
          p.skip = ntu_sgn_pipeline(sk, &seq);
          if (p.skip != NtuSkip::none) return p;
          p.original = seq.frames;
          p.rows.resize(size_t(kMaxFrames) * 150);
          p.frames = ntu_align(seq, ntu120, p.rows.data(), kMaxFrames);
          p.rows.resize(size_t(p.frames) * 150);
          return p;
        },
        [&](int64_t i, Processed&& p) {
          bar.tick();
          const Found& f = files[size_t(i)];
          if (p.skip != NtuSkip::none) {
            skipped.push_back(f.name + " (" + ntu_skip_reason(p.skip) + ")");
            return;
          }
          if (p.original > kMaxFrames) ++n_truncated;
          kept.push_back(f.id);
          frames.push_back(p.frames);
          offset.push_back(spill.append(p.rows.data(), p.rows.size() * sizeof(float)));
        });
  }
  for (size_t k = 0; k < skipped.size() && k < 10; ++k)
    std::fprintf(stderr, "warning: skipped %s: the original pipeline cannot process it\n",
                 skipped[k].c_str());
  if (skipped.size() > 10)
    std::fprintf(stderr, "warning: ... %zu samples skipped in all\n", skipped.size());
  if (n_truncated)
    std::fprintf(stderr,
                 "warning: %lld sequences longer than 300 frames were cut to their first 300\n",
                 (long long)n_truncated);
  if (kept.empty()) throw input_error(opt.raw_dir, 0, "no sample survived the pipeline");

  // ---- pass 2: one npz per split ----
  // Every writer is finished (renamed into place) only after all were written.
  std::vector<std::string> written;
  std::vector<std::unique_ptr<NpzWriter>> writers;
  std::vector<float> pad(size_t(kMaxFrames) * 150);
  int64_t rows_written = 0;  // cancellation is polled every 256 rows
  for (const NtuSplit& split : ntu_splits(ntu120)) {
    std::vector<int64_t> idx[2];
    ntu_split_indices(split, kept, &idx[0], &idx[1]);
    std::string path = (fs::path(opt.out_dir) / (tag + "_" + split.name + ".npz")).string();
    writers.push_back(std::make_unique<NpzWriter>(path));
    NpzWriter& w = *writers.back();
    Progress bar("write " + tag + "_" + split.name + ".npz", int64_t(idx[0].size() + idx[1].size()),
                 opt.progress);
    for (int part = 0; part < 2; ++part) {
      const auto& ix = idx[part];
      const std::string sfx = part == 0 ? "_train" : "_test";
      w.begin("x" + sfx, DType::f4, {int64_t(ix.size()), kMaxFrames, 150});
      for (int64_t i : ix) {
        if (rows_written++ % 256 == 0) opt.check_cancelled();
        size_t n = size_t(frames[size_t(i)]) * 150;
        spill.read(offset[size_t(i)], pad.data(), n * sizeof(float));
        std::fill(pad.begin() + long(n), pad.end(), 0.f);
        w.write(pad.data(), pad.size() * sizeof(float));
        bar.tick();
      }
      w.end();
      NdArray y = NdArray::zeros(DType::f8, {int64_t(ix.size()), classes});  // one-hot float64
      for (size_t r = 0; r < ix.size(); ++r)
        y.data<double>()[r * size_t(classes) + size_t(kept[size_t(ix[r])].label())] = 1.0;
      w.add("y" + sfx, y);
    }
    written.push_back(path);
  }
  for (auto& w : writers) w->finish();
  return written;
}

}  // namespace hacm
