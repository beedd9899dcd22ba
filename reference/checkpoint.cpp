#include "reference/checkpoint.h"

#include "core/error.h"
#include "core/npz.h"

namespace hacm::ref {

template <class T>
const Tensor<T>& Checkpoint<T>::at(const std::string& name,
                                   const std::vector<int64_t>& shape) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw input_error(source, 0, "missing tensor '" + name + "'");
  if (!shape.empty() && it->second.shape != shape)
    throw input_error(source, 0,
                      "tensor '" + name + "' has shape " + shape_str(it->second.shape) +
                          ", expected " + shape_str(shape));
  return it->second;
}

template <class T>
Checkpoint<T> load_checkpoint(const std::string& path) {
  NpzReader r(path);
  Checkpoint<T> ck;
  ck.source = path;
  for (const std::string& k : r.keys()) {
    NpyHeader h = r.header(k);
    if (h.dtype != DType::f4 && h.dtype != DType::f8) continue;  // scalars/ids are not weights
    ck.tensors.emplace(k, from_ndarray<T>(r.get(k)));
  }
  return ck;
}

template <class T>
Checkpoint<T> checkpoint_from_arrays(const std::map<std::string, NdArray>& arrays,
                                     const std::string& source) {
  Checkpoint<T> ck;
  ck.source = source;
  for (const auto& [k, a] : arrays)
    if (a.dtype == DType::f4 || a.dtype == DType::f8) ck.tensors.emplace(k, from_ndarray<T>(a));
  return ck;
}

template <class T>
void save_checkpoint(const std::string& path, const Checkpoint<T>& ck) {
  NpzWriter w(path);
  for (const auto& [name, t] : ck.tensors) {
    std::vector<float> f(t.data.begin(), t.data.end());
    w.add(name, NdArray::from<float>(t.shape, f));
  }
  w.finish();
}

template struct Checkpoint<float>;
template struct Checkpoint<double>;
template Checkpoint<float> load_checkpoint(const std::string&);
template Checkpoint<double> load_checkpoint(const std::string&);
template Checkpoint<float> checkpoint_from_arrays(const std::map<std::string, NdArray>&,
                                                  const std::string&);
template Checkpoint<double> checkpoint_from_arrays(const std::map<std::string, NdArray>&,
                                                   const std::string&);
template void save_checkpoint(const std::string&, const Checkpoint<float>&);
template void save_checkpoint(const std::string&, const Checkpoint<double>&);

}  // namespace hacm::ref
