#include "accelerated/precision.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAContext.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace hacm::accel {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "tf32") return Precision::kTf32;
  if (name == "bf16") return Precision::kBf16;
  throw std::invalid_argument("unknown precision \"" + name + "\" (fp32 | tf32 | bf16)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kTf32:
      return "tf32";
    case Precision::kBf16:
      return "bf16";
  }
  return "?";
}

std::string device_description(c10::Device device) {
  if (!device.is_cuda()) {
    // The processor and the vector instructions torch's CPU kernels dispatch to: results of the
    // accelerated backend on the CPU differ in the last bits between capabilities (e.g. AVX2 and
    // AVX512 kernels sum in different orders), so a result says which it used.
    std::string model;
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; model.empty() && std::getline(cpuinfo, line);)
      if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
        model = line.substr(line.find(':') + 2);
    return "cpu (" + (model.empty() ? std::string("unknown processor") : model) +
           "; torch kernels " + at::get_cpu_capability() + ")";
  }
  const int index = device.has_index() ? device.index() : at::cuda::current_device();
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(index);
  char text[320];
  std::snprintf(text, sizeof text, "%s (sm_%d%d, %.1f GiB)", p->name, p->major, p->minor,
                double(p->totalGlobalMem) / double(1ull << 30));
  return text;
}

void set_matmul_precision(Precision p) {
  at::globalContext().setAllowTF32CuBLAS(p == Precision::kTf32);
  at::globalContext().setAllowTF32CuDNN(p == Precision::kTf32);
}

Autocast::Autocast(Precision p, c10::Device device, bool cache)
    : on_(p == Precision::kBf16), type_(device.type()) {
  if (!on_) return;
  prev_enabled_ = at::autocast::is_autocast_enabled(type_);
  prev_cache_ = at::autocast::is_autocast_cache_enabled();
  prev_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::set_autocast_cache_enabled(cache);
}

Autocast::~Autocast() {
  if (!on_) return;
  at::autocast::set_autocast_enabled(type_, prev_enabled_);
  at::autocast::set_autocast_dtype(type_, prev_dtype_);
  at::autocast::set_autocast_cache_enabled(prev_cache_);
  if (!prev_enabled_) at::autocast::clear_cache();
}

}  // namespace hacm::accel
