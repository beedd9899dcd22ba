// Speed of the raw-dataset preparation on the real fixture files (replicated).
//   BM_NtuParsePipeline/<i>  parse + SGN pipeline + align of one real file from memory
//   BM_NtuFromDisk           read + parse + pipeline over 200 replicated files (page cache warm)
//   BM_PrepareNtu60/<t>      the whole `prepare ntu60` on 600 replicated files, t = 1..16 threads
//                            (directory scan, pipeline, scratch spill, both npz written)
//   BM_PkuParseCut           parse a PKU-MMD skeleton + labels and cut its clips
// Goal (issue): <= 0.4 ms per NTU file per core, 20x the original Python's 7.7-8.1 ms.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/ntu.h"
#include "core/ntu_pipeline.h"
#include "core/pku.h"
#include "core/prepare.h"

namespace {

namespace fs = std::filesystem;
using namespace hacm;

std::string real_dir() {
  const char* e = std::getenv("HACM_REAL_DATA_DIR");
  return (e && *e) ? std::string(e) : std::string(HACM_SOURCE_DIR) + "/../shared/data/real";
}

const std::vector<std::string>& ntu_files() {
  static const std::vector<std::string> names = {"S001C001P001R001A001", "S001C003P008R002A058",
                                                 "S017C003P020R002A059", "S018C001P008R002A061",
                                                 "S032C003P106R001A070"};
  return names;
}

std::string ntu_path(const std::string& n) {
  return real_dir() + "/ntu/" + n + ".skeleton";
}

void BM_NtuParsePipeline(benchmark::State& st) {
  const std::string name = ntu_files()[size_t(st.range(0))];
  std::string path = ntu_path(name);
  if (!fs::exists(path)) {
    st.SkipWithError(("fixture missing: " + path).c_str());
    return;
  }
  std::string buf = read_file_bytes(path);
  std::vector<float> out(300 * 150);
  for (auto _ : st) {
    NtuSkeleton sk = parse_ntu_skeleton(buf.data(), buf.size(), path);
    NtuSequence seq;
    ntu_sgn_pipeline(sk, &seq);
    benchmark::DoNotOptimize(ntu_align(seq, false, out.data()));
  }
  st.SetLabel(name + " " + std::to_string(buf.size() / 1024) + " KiB");
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(buf.size()));
}
BENCHMARK(BM_NtuParsePipeline)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);

// A directory of n copies of the real files under distinct NTU-60 names (all usable).
std::string replicated_dir(int n) {
  std::string dir = (fs::temp_directory_path() / ("hacm-bench-ntu-" + std::to_string(n))).string();
  if (fs::exists(dir + "/done")) return dir;
  fs::remove_all(dir);
  fs::create_directories(dir + "/raw");
  for (int i = 0; i < n; ++i) {
    const std::string& src = ntu_files()[size_t(i) % 3];  // the NTU-60 ones (S001, S017)
    char name[64];
    // Performers 1..40 and actions 1..60 spread the samples over both splits.
    std::snprintf(name, sizeof name, "S%03dC%03dP%03dR%03dA%03d.skeleton", 1 + (i / 600) % 17,
                  1 + i % 3, 1 + (i / 3) % 40, 1 + (i / 120) % 2, 1 + (i / 240) % 60);
    fs::copy_file(ntu_path(src), dir + "/raw/" + name, fs::copy_options::overwrite_existing);
  }
  std::ofstream(dir + "/done") << "ok";
  return dir;
}

void BM_NtuFromDisk(benchmark::State& st) {
  if (!fs::exists(ntu_path(ntu_files()[0]))) {
    st.SkipWithError("fixtures missing");
    return;
  }
  std::string dir = replicated_dir(200) + "/raw";
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(dir)) files.push_back(e.path().string());
  std::vector<float> out(300 * 150);
  for (auto _ : st) {
    for (const auto& f : files) {
      NtuSequence seq;
      ntu_sgn_pipeline(read_ntu_skeleton(f), &seq);
      benchmark::DoNotOptimize(ntu_align(seq, false, out.data()));
    }
  }
  st.SetItemsProcessed(st.iterations() * int64_t(files.size()));
}
BENCHMARK(BM_NtuFromDisk)->Unit(benchmark::kMillisecond);

void BM_PrepareNtu60(benchmark::State& st) {
  if (!fs::exists(ntu_path(ntu_files()[0]))) {
    st.SkipWithError("fixtures missing");
    return;
  }
  const int n = 600;
  std::string dir = replicated_dir(n);
  PrepareOptions o;
  o.dataset = "ntu60";
  o.raw_dir = dir + "/raw";
  o.out_dir = dir + "/out";
  o.threads = int(st.range(0));
  o.progress = false;
  for (auto _ : st) benchmark::DoNotOptimize(prepare_ntu(o));
  st.SetItemsProcessed(st.iterations() * n);
  st.counters["threads"] = double(o.threads);
}
BENCHMARK(BM_PrepareNtu60)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_PkuParseCut(benchmark::State& st) {
  std::string sk = real_dir() + "/pku_mmd/PKU_Skeleton_Renew/0016-L.txt";
  std::string lb = real_dir() + "/pku_mmd/Train_Label_PKU_final/0016-L.txt";
  if (!fs::exists(sk) || !fs::exists(lb)) {
    st.SkipWithError("fixtures missing");
    return;
  }
  std::string sbuf = read_file_bytes(sk), lbuf = read_file_bytes(lb);
  for (auto _ : st) {
    PkuSkeleton s = parse_pku_skeleton(sbuf.data(), sbuf.size(), sk);
    auto labels = parse_pku_labels(lbuf.data(), lbuf.size(), lb);
    benchmark::DoNotOptimize(pku_cut_clips(s, labels));
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(sbuf.size()));
}
BENCHMARK(BM_PkuParseCut)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
