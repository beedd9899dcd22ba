// Protocol parsing: defaults are the authors' values, errors name the key path, sha256 is right.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/protocol.h"

using namespace hacm;
using nlohmann::json;

namespace {
std::string error_of(const json& j) {
  try {
    parse_protocol(j, "p.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Protocol, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).substr(0, 16), "41edece42d63e8d9");
}

TEST(Protocol, AuthorsDefaults) {
  json j = {{"dataset", {{"kind", "synthetic"}}},
            {"stages", {{{"kind", "pretrain"}}, {{"kind", "linear"}}, {{"kind", "finetune"}}}}};
  Protocol p = parse_protocol(j, "p.json");
  EXPECT_EQ(p.method.name, "hacm");
  EXPECT_EQ(p.method.variant, "released");
  EXPECT_EQ(p.method.frames, 72);
  EXPECT_EQ(p.method.t_patch, 3);
  const StageSpec& pre = p.stages[0];
  EXPECT_EQ(pre.batch_size, 64);
  EXPECT_DOUBLE_EQ(pre.lr, 1e-3);
  EXPECT_DOUBLE_EQ(pre.min_lr, 5e-4);
  EXPECT_DOUBLE_EQ(pre.beta2, 0.95);
  EXPECT_DOUBLE_EQ(pre.warmup_epochs, 20);
  const StageSpec& lin = p.stages[1];
  EXPECT_EQ(lin.epochs, 100);
  EXPECT_DOUBLE_EQ(lin.lr, 0.1);
  EXPECT_EQ(lin.batch_size, 256);
  EXPECT_EQ(lin.from, "pretrain");
  EXPECT_EQ(p.data_device, "auto");
  const StageSpec& ft = p.stages[2];
  EXPECT_DOUBLE_EQ(ft.lr, 3e-4);
  EXPECT_DOUBLE_EQ(ft.layer_decay, 0.8);
  EXPECT_DOUBLE_EQ(ft.label_smoothing, 0.1);
  EXPECT_DOUBLE_EQ(ft.drop_path, 0.3);
  // Per-dataset settings: NTU-120 uses velocity input and MAMP's tau 0.75 / decoder depth 5.
  json k = {{"dataset", {{"kind", "synthetic"}, {"name", "synthetic"}}},
            {"method", {{"name", "mamp"}}},
            {"stages", {{{"kind", "pretrain"}}}}};
  Protocol m = parse_protocol(k, "m.json");
  EXPECT_EQ(m.method.frames, 120);
  EXPECT_EQ(m.method.t_patch, 4);
  EXPECT_EQ(m.stages[0].batch_size, 128);
}

TEST(Protocol, ErrorsNameTheKeyPath) {
  json base = {{"dataset", {{"kind", "synthetic"}}}, {"stages", {{{"kind", "pretrain"}}}}};
  json j = base;
  j["stages"][0]["epochs"] = -3;
  EXPECT_NE(error_of(j).find("stages[0].epochs: -3 is out of range"), std::string::npos)
      << error_of(j);
  j = base;
  j["dataset"]["clips"] = "many";
  EXPECT_NE(error_of(j).find("dataset.clips: must be an integer"), std::string::npos)
      << error_of(j);
  j = base;
  j["method"] = {{"variant", "improved"}};
  EXPECT_NE(error_of(j).find("method.variant: 'improved' is not one of"), std::string::npos)
      << error_of(j);
  j = base;
  j["method"] = {{"keep_ratio", 0.2}};
  EXPECT_NE(error_of(j).find("released variant hard-codes"), std::string::npos) << error_of(j);
  j = base;
  j["extra"] = 1;
  EXPECT_NE(error_of(j).find("p.json: extra: unknown key"), std::string::npos) << error_of(j);
  j = base;
  j["stages"] = {{{"kind", "linear"}}, {{"kind", "pretrain"}}};
  EXPECT_NE(error_of(j).find("stages[1].kind: pretrain must be the first stage"), std::string::npos)
      << error_of(j);
  j = base;
  j["stages"] = {{{"kind", "transfer"}}};
  EXPECT_NE(error_of(j).find("stages[0].dataset: missing"), std::string::npos) << error_of(j);
  j = base;
  j["data_device"] = "gpu";
  EXPECT_NE(error_of(j).find("data_device: 'gpu' is not one of"), std::string::npos) << error_of(j);
  j = base;
  j["backend"] = "reference";
  j["data_device"] = "device";
  EXPECT_NE(error_of(j).find("data_device: the reference backend reads clips on the host only"),
            std::string::npos)
      << error_of(j);
  j = base;
  j["custom_kernels"] = "yes";
  EXPECT_NE(error_of(j).find("custom_kernels:"), std::string::npos) << error_of(j);
  j = base;
  j["backend"] = "reference";
  j["custom_kernels"] = false;
  EXPECT_NE(
      error_of(j).find("custom_kernels: custom CUDA kernels are an accelerated-backend option"),
      std::string::npos)
      << error_of(j);
  j = base;
  j["custom_kernels"] = false;
  EXPECT_EQ(error_of(j), "");
  EXPECT_EQ(error_of(base), "");
}
