// `repro prepare synthetic`: write Synthetic_XSub.npz and Synthetic_XView.npz in NTU's layout
// (x_* float32 (N,300,150), y_* one-hot float64) plus int64 metadata members subject_*,
// subject2_*, camera_*, length_*. Clips are generated in chunks on worker threads and streamed to
// the archive, so memory stays bounded and the bytes do not depend on the thread count.
#include <algorithm>
#include <exception>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/npz.h"
#include "core/prepare.h"
#include "core/progress.h"
#include "core/synthetic.h"

namespace hacm {
namespace {

constexpr int64_t kChunk = 128;  // clips generated per round

void write_split(NpzWriter& w, const std::string& split, const std::vector<int64_t>& idx,
                 const std::vector<SyntheticMeta>& meta, const PrepareOptions& opt,
                 Progress& progress) {
  const int64_t n = int64_t(idx.size());
  const int64_t per = int64_t(kSyntheticFrames) * kSyntheticValues;
  w.begin("x_" + split, DType::f4, {n, kSyntheticFrames, kSyntheticValues});
  std::vector<float> buf(size_t(std::min(n, kChunk) * per));
  const int threads = std::max(1, opt.threads);
  for (int64_t lo = 0; lo < n; lo += kChunk) {
    opt.check_cancelled();
    const int64_t cnt = std::min(kChunk, n - lo);
    std::vector<std::exception_ptr> err(static_cast<size_t>(threads));
    auto work = [&](int wkr) {
      try {
        for (int64_t k = wkr; k < cnt; k += threads) {
          synthetic_clip(opt.seed, idx[size_t(lo + k)], buf.data() + k * per);
          progress.tick();
        }
      } catch (...) {
        err[size_t(wkr)] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    for (auto& e : err)
      if (e) std::rethrow_exception(e);
    w.write(buf.data(), size_t(cnt * per) * sizeof(float));
  }
  w.end();

  const int k = synthetic_num_classes();
  std::vector<double> y(size_t(n * k), 0.0);
  const size_t nn = static_cast<size_t>(n);
  std::vector<int64_t> subj(nn), subj2(nn), cam(nn), len(nn);
  for (int64_t i = 0; i < n; ++i) {
    const SyntheticMeta& m = meta[size_t(idx[size_t(i)])];
    y[size_t(i * k + m.label)] = 1.0;
    subj[size_t(i)] = m.subject, subj2[size_t(i)] = m.subject2;
    cam[size_t(i)] = m.camera, len[size_t(i)] = m.length;
  }
  w.add("y_" + split, NdArray::from<double>({n, k}, y));
  w.add("subject_" + split, NdArray::from<int64_t>({n}, subj));
  w.add("subject2_" + split, NdArray::from<int64_t>({n}, subj2));
  w.add("camera_" + split, NdArray::from<int64_t>({n}, cam));
  w.add("length_" + split, NdArray::from<int64_t>({n}, len));
}

}  // namespace

std::vector<std::string> prepare_synthetic(const PrepareOptions& opt) {
  if (opt.clips <= 0) throw InputError("prepare synthetic: --clips must be positive");
  if (opt.out_dir.empty()) throw InputError("prepare synthetic: --out DIR is required");
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  if (ec) throw input_error(opt.out_dir, 0, "cannot create output directory: " + ec.message());

  std::vector<SyntheticMeta> meta(size_t(opt.clips));
  for (int64_t i = 0; i < opt.clips; ++i) meta[size_t(i)] = synthetic_meta(opt.seed, i);

  Progress progress("synthetic", 2 * opt.clips, opt.progress);
  std::vector<std::string> files;
  for (const char* protocol : {"XSub", "XView"}) {
    const bool xsub = protocol[1] == 'S';
    std::vector<int64_t> train, test;
    for (int64_t i = 0; i < opt.clips; ++i) {
      const SyntheticMeta& m = meta[size_t(i)];
      const bool is_train =
          xsub ? synthetic_xsub_train(m.subject) : synthetic_xview_train(m.camera);
      (is_train ? train : test).push_back(i);
    }
    const std::string path = opt.out_dir + "/Synthetic_" + protocol + ".npz";
    NpzWriter w(path);
    write_split(w, "train", train, meta, opt, progress);
    write_split(w, "test", test, meta, opt, progress);
    w.finish();
    files.push_back(path);
  }
  progress.finish();
  return files;
}

}  // namespace hacm
