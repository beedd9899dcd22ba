// `repro prepare pku1|pku2`: PKU-MMD raw release -> PKUv1_XSub.npz / PKUv2_XSub.npz (and the
// XView file when the cross-view split is present), as MAMP's data/pku_v{1,2}/pku_gendata.py:
// clips seq[start:end] of each labelled action, first 300 frames, all-zero clips dropped, raw
// camera coordinates, 51 one-hot classes. Train = videos on line 2 of the split file, test = all
// other videos. Order: videos in sorted name order (MAMP walks os.listdir(), whose order is the
// file system's; sorting makes ours reproducible), the train part then the test part, clips of a
// video in label-line order.
//
// Pass 1 reads every video in parallel and spills its clips (frames x 150 float32) to an
// unlinked scratch file; pass 2 streams each split's npz padded to 300 frames.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/npz.h"
#include "core/ntu_pipeline.h"  // parallel_ordered, SpillFile
#include "core/pku.h"
#include "core/prepare.h"
#include "core/progress.h"

namespace hacm {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxFrames = 300;

struct VideoClips {
  std::vector<PkuClip> clips;
  int dropped = 0;
};

struct ClipRef {
  int video;
  int label;
  int frames;
  int64_t offset;
};

}  // namespace

std::vector<std::string> prepare_pku(const PrepareOptions& opt) {
  if (opt.dataset != "pku1" && opt.dataset != "pku2")
    throw InputError("prepare_pku: dataset must be pku1 or pku2, got '" + opt.dataset + "'");
  const int phase = opt.dataset == "pku1" ? 1 : 2;
  const std::string tag = phase == 1 ? "PKUv1" : "PKUv2";
  int threads =
      opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::error_code ec;
  if (!fs::is_directory(opt.raw_dir, ec))
    throw input_error(opt.raw_dir, 0, "not a directory (--raw)");
  const PkuLayout L = find_pku_layout(opt.raw_dir, phase);

  struct SplitDef {
    std::string name;
    std::set<std::string> train, listed;  // listed = train + test ids
  };
  std::vector<SplitDef> splits;
  auto add_split = [&](const std::string& name, const std::string& file) {
    PkuSplit s = read_pku_split(file, phase);
    SplitDef d{name, {s.train.begin(), s.train.end()}, {s.train.begin(), s.train.end()}};
    d.listed.insert(s.test.begin(), s.test.end());
    splits.push_back(std::move(d));
  };
  add_split("XSub", L.xsub_split);
  if (!L.xview_split.empty()) add_split("XView", L.xview_split);

  // ---- videos ----
  std::vector<std::string> ids;
  int64_t n_other = 0;
  for (fs::directory_iterator it(L.skeleton_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() < 5 || name.compare(name.size() - 4, 4, ".txt") != 0 ||
        !fs::is_regular_file(it->path()))
      continue;
    std::string id = name.substr(0, name.size() - 4);
    if (is_pku_video_id(id, phase))
      ids.push_back(id);
    else
      ++n_other;
  }
  if (ec) throw input_error(L.skeleton_dir, 0, "cannot list: " + ec.message());
  std::sort(ids.begin(), ids.end());
  if (n_other)
    std::fprintf(stderr,
                 "warning: %s: %lld .txt files in %s are not phase-%d video names; ignored\n",
                 opt.dataset.c_str(), (long long)n_other, L.skeleton_dir.c_str(), phase);
  if (ids.empty())
    throw input_error(L.skeleton_dir, 0, "no phase-" + std::to_string(phase) + " skeleton files");
  for (const auto& id : ids) {
    std::string lp = L.label_dir + "/" + id + ".txt";
    if (!fs::is_regular_file(lp, ec))
      throw input_error(lp, 0,
                        "label file missing for skeleton " + L.skeleton_dir + "/" + id + ".txt");
  }

  // ---- pass 1: read, cut, spill ----
  fs::create_directories(opt.out_dir, ec);
  if (!fs::is_directory(opt.out_dir))
    throw input_error(opt.out_dir, 0, "cannot create output directory");
  SpillFile spill(opt.out_dir);
  std::vector<ClipRef> clips;
  int64_t n_dropped = 0;
  {
    Progress bar(opt.dataset + " parse", int64_t(ids.size()), opt.progress);
    parallel_ordered<VideoClips>(
        int64_t(ids.size()), threads, int64_t(threads) * 2,
        [&](int64_t v) {
          opt.check_cancelled();
          const std::string& id = ids[size_t(v)];
          PkuSkeleton sk = read_pku_skeleton(L.skeleton_dir + "/" + id + ".txt");
          std::vector<PkuLabel> labels = read_pku_labels(L.label_dir + "/" + id + ".txt");
          VideoClips out;
          out.clips = pku_cut_clips(sk, labels, kMaxFrames, &out.dropped);
          return out;
        },
        [&](int64_t v, VideoClips&& vc) {
          bar.tick();
          n_dropped += vc.dropped;
          for (const PkuClip& c : vc.clips)
            clips.push_back({int(v), c.label, int(c.frames),
                             spill.append(c.x.data(), c.x.size() * sizeof(float))});
        });
  }
  if (n_dropped)
    std::fprintf(stderr, "note: %lld all-zero clips dropped (as MAMP does)\n",
                 (long long)n_dropped);
  if (clips.empty())
    throw input_error(opt.raw_dir, 0,
                      "no clips: every label file is empty or every clip is all zero");

  // ---- pass 2: one npz per split ----
  std::vector<std::string> written;
  std::vector<std::unique_ptr<NpzWriter>> writers;
  std::vector<float> pad(size_t(kMaxFrames) * kPkuValues);
  int64_t rows_written = 0;  // cancellation is polled every 256 rows
  for (const SplitDef& split : splits) {
    std::vector<char> is_train(ids.size());
    int64_t unlisted = 0;
    for (size_t v = 0; v < ids.size(); ++v) {
      is_train[v] = split.train.count(ids[v]) ? 1 : 0;
      unlisted += split.listed.count(ids[v]) ? 0 : 1;
    }
    if (unlisted)
      std::fprintf(stderr,
                   "warning: %s: %lld videos are on neither list of the %s split; they go to the "
                   "test set (as in MAMP)\n",
                   opt.dataset.c_str(), (long long)unlisted, split.name.c_str());
    std::vector<int64_t> part[2];
    for (size_t k = 0; k < clips.size(); ++k)
      part[is_train[size_t(clips[k].video)] ? 0 : 1].push_back(int64_t(k));
    std::string path = (fs::path(opt.out_dir) / (tag + "_" + split.name + ".npz")).string();
    writers.push_back(std::make_unique<NpzWriter>(path));
    NpzWriter& w = *writers.back();
    Progress bar("write " + tag + "_" + split.name + ".npz", int64_t(clips.size()), opt.progress);
    for (int p = 0; p < 2; ++p) {
      const std::string sfx = p == 0 ? "_train" : "_test";
      w.begin("x" + sfx, DType::f4, {int64_t(part[p].size()), kMaxFrames, kPkuValues});
      for (int64_t k : part[p]) {
        if (rows_written++ % 256 == 0) opt.check_cancelled();
        const ClipRef& c = clips[size_t(k)];
        size_t n = size_t(c.frames) * kPkuValues;
        spill.read(c.offset, pad.data(), n * sizeof(float));
        std::fill(pad.begin() + long(n), pad.end(), 0.f);
        w.write(pad.data(), pad.size() * sizeof(float));
        bar.tick();
      }
      w.end();
      NdArray y = NdArray::zeros(DType::f8, {int64_t(part[p].size()), kPkuClasses});  // one-hot
      for (size_t r = 0; r < part[p].size(); ++r)
        y.data<double>()[r * kPkuClasses + size_t(clips[size_t(part[p][r])].label)] = 1.0;
      w.add("y" + sfx, y);
    }
    written.push_back(path);
  }
  for (auto& w : writers) w->finish();
  return written;
}

}  // namespace hacm
