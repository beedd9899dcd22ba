// Reference checkpoints: float32 npz round trip with state_dict names, and clear errors.
#include <string>

#include "core/error.h"
#include "reference/checkpoint.h"
#include "reference/gradcheck.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using hacm::ref::Tensor;

// Saved as float32: values round to float once, then load back exactly.
TEST(ReferenceCheckpoint, RoundTripIsFloat32Exact) {
  Rng rng(41);
  ref::Checkpoint<double> ck;
  ck.tensors["blocks.0.attn.qkv.weight"] = ref::randn({6, 2}, rng);
  ck.tensors["pos_embed"] = ref::randn({1, 1, 3, 2}, rng);
  const std::string path = test::scratch_dir("ref_ckpt") + "/ck.npz";
  ref::save_checkpoint(path, ck);
  auto back = ref::load_checkpoint<double>(path);
  ASSERT_EQ(back.tensors.size(), 2u);
  for (const auto& [name, t] : ck.tensors) {
    std::vector<double> want;
    for (double v : t.data) want.push_back(double(float(v)));
    EXPECT_EQ(back.at(name).shape, t.shape);
    EXPECT_CLOSE(name, back.at(name).data, want, 0.0, 0.0);
  }
}

// Missing tensors and wrong shapes name the file and the key.
TEST(ReferenceCheckpoint, ErrorsNameFileAndKey) {
  ref::Checkpoint<double> ck;
  ck.source = "weights.npz";
  ck.tensors["norm.weight"] = Tensor<double>({4});
  try {
    ck.at("norm.bias");
    FAIL() << "no throw";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("weights.npz"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("norm.bias"), std::string::npos);
  }
  EXPECT_THROW(ck.at("norm.weight", {5}), InputError);
  EXPECT_NO_THROW(ck.at("norm.weight", {4}));
}
