// Protocol stages on the Eigen reference backend (repro/reference_trainer.cpp), on the synthetic
// set through the Feeder: the checkpointed AdamW equals ref::AdamW bit for bit, a run stopped
// twice (mid-epoch, then across an epoch boundary) and resumed ends BITWISE equal to an
// uninterrupted one (parameters, optimiser state, curves, the linear probe after it), the loss
// falls over a short pretraining run (HA-CM released / corrected, MAMP), and unsupported stages
// are refused before any work.
//
// The trainer is torch-free but lives in the repro executable, which tests do not link; this
// file compiles its translation unit directly (a unique includer, so no duplicate symbols).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/prepare.h"
#include "repro/reference_trainer.cpp"  // NOLINT(build/include): see above
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm::repro {
namespace {

namespace fs = std::filesystem;

// Per-process scratch root (ctest runs the cases as parallel processes), removed at exit.
struct ScratchRoot {
  std::string path =
      (fs::temp_directory_path() / ("hacm_reftrain_" + std::to_string(::getpid()))).string();
  ~ScratchRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
std::string temp_dir(const std::string& name) {
  static ScratchRoot root;
  std::string d = root.path + "/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The runner's resolver for synthetic specs, generating into a directory shared by the tests.
std::string synthetic_file(const DatasetSpec& d) {
  static const std::string root = temp_dir("data");
  const std::string dir =
      root + "/synthetic_" + std::to_string(d.clips) + "_" + std::to_string(d.seed);
  const std::string file =
      dir + (d.split == "xsub" ? "/Synthetic_XSub.npz" : "/Synthetic_XView.npz");
  if (!fs::exists(file)) {
    PrepareOptions po;
    po.dataset = "synthetic";
    po.out_dir = dir;
    po.clips = d.clips;
    po.seed = d.seed;
    po.threads = 2;
    po.progress = false;
    prepare_synthetic(po);
  }
  return file;
}

Protocol tiny(const std::string& method_json, const std::string& stages_json, int clips = 120) {
  std::string text = R"({"dataset": {"kind": "synthetic", "clips": )" + std::to_string(clips) +
                     R"(, "seed": 3}, "method": )" + method_json +
                     R"(, "backend": "reference", "device": "cpu", "threads": 2, "stages": )" +
                     stages_json + "}";
  return parse_protocol(nlohmann::json::parse(text), "<test protocol>");
}

const char* kHacm = R"({"name": "hacm", "dim": 16, "heads": 2, "depth": 1, "decoder_depth": 1})";

struct RunOut {
  std::vector<nlohmann::json> results;
  bool stopped = false;
};

// Runs every stage of p as the runner does (one seed), the stop predicate polled before each
// step. Returns the stage results, or stopped = true when a RunStopped came out.
RunOut run_all(const Protocol& p, const std::string& dir, std::function<bool()> stop = nullptr) {
  ReferenceContext c;
  c.p = &p;
  c.seed = 0;
  c.seed_dir = dir;
  c.threads = 2;
  c.progress = false;
  c.dataset_file = synthetic_file;
  c.stop = std::move(stop);
  ReferenceParams pre;
  bool have = false;
  RunOut out;
  try {
    for (size_t i = 0; i < p.stages.size(); ++i)
      out.results.push_back(run_reference_stage(
          c, p.stages[i], "stage" + std::to_string(i) + "_" + p.stages[i].kind, pre, have));
  } catch (const RunStopped&) {
    out.stopped = true;
  }
  return out;
}

// Stop predicate: true from the (n+1)-th poll on (polled once per step).
std::function<bool()> stop_after(int n) {
  auto calls = std::make_shared<int>(0);
  return [calls, n]() { return ++*calls > n; };
}

bool bytes_equal(const NdArray& a, const NdArray& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.nbytes() == b.nbytes() &&
         std::memcmp(a.bytes, b.bytes, a.nbytes()) == 0;
}

// A checkpoint's progress: epochs done, steps into the next epoch (and optimiser steps).
void expect_progress(const std::string& ckpt, int64_t epoch, int64_t step,
                     int64_t optim_step = -1) {
  auto in = npz_load(ckpt);
  EXPECT_EQ(in.at("meta.epoch").at_i64(0), epoch);
  EXPECT_EQ(in.at("meta.step").at_i64(0), step);
  if (optim_step >= 0) {
    EXPECT_EQ(in.at("optim.step").at_i64(0), optim_step);
  }
}

// Two checkpoints hold the same members byte for byte (parameters, optim.*, meta.*); returns the
// number of parameter members.
int expect_same_checkpoint(const std::string& a, const std::string& b) {
  auto fa = npz_load(a), fb = npz_load(b);
  EXPECT_EQ(fa.size(), fb.size());
  int params = 0;
  for (const auto& [k, v] : fa) {
    if (!fb.count(k)) {
      ADD_FAILURE() << k << " missing in " << b;
      continue;
    }
    EXPECT_TRUE(bytes_equal(v, fb.at(k))) << k << " differs after resume";
    params += k.rfind("optim.", 0) != 0 && k.rfind("meta.", 0) != 0;
  }
  return params;
}

}  // namespace

TEST(ReferenceTraining, CheckpointedAdamWEqualsReferenceAdamWBitwise) {
  Rng rng(5);
  // Two parameters (decayed matrix, undecayed bias), gradients redrawn each step.
  Tensor<float> a({3, 4}), b({4}), ga({3, 4}), gb({4});
  for (auto* t : {&a, &b})
    for (auto& v : t->data) v = float(rng.normal());
  Tensor<float> a2 = a, b2 = b;
  Named p1 = {{"w", &a}, {"w.bias", &b}}, g1 = {{"w", &ga}, {"w.bias", &gb}};
  Named p2 = {{"w", &a2}, {"w.bias", &b2}}, g2 = {{"w", &ga}, {"w.bias", &gb}};
  auto r1 = ref::make_param_refs<float>(p1, g1, 0.05);
  ref::AdamW<float> reference(0.9, 0.95);
  CheckpointedAdamW mine(ref::make_param_refs<float>(p2, g2, 0.05), 0.9, 0.95);
  for (int it = 0; it < 25; ++it) {
    for (auto* t : {&ga, &gb})
      for (auto& v : t->data) v = float(rng.normal());
    reference.step(r1, 1e-2 * (1 + it % 3));
    mine.step(1e-2 * (1 + it % 3));
    if (it == 12) {  // save / load in the middle: the state survives a round trip exactly
      std::map<std::string, NdArray> st;
      mine.save(st, "optim.");
      CheckpointedAdamW fresh(ref::make_param_refs<float>(p2, g2, 0.05), 0.9, 0.95);
      fresh.load(st, "optim.", "<memory>");
      mine = fresh;
    }
  }
  // Same operations in the same order on the same floats: bitwise (atol = rtol = 0).
  EXPECT_CLOSE("weight after 25 steps", a2.data, a.data, 0.0, 0.0);
  EXPECT_CLOSE("bias after 25 steps", b2.data, b.data, 0.0, 0.0);
}

TEST(ReferenceTraining, StoppedAndResumedRunIsBitwiseIdentical) {
  // 2 pretraining epochs (7 steps of 8 clips each on this set), then a linear probe.
  Protocol p = tiny(kHacm,
                    R"([{"kind": "pretrain", "epochs": 2, "warmup_epochs": 1, "batch_size": 8},
                        {"kind": "linear", "epochs": 2, "batch_size": 16}])");
  const std::string full = temp_dir("full"), cut = temp_dir("cut");
  RunOut a = run_all(p, full);
  ASSERT_FALSE(a.stopped);
  ASSERT_EQ(a.results.size(), 2u);
  const int64_t steps = a.results[0]["steps_per_epoch"].get<int64_t>();
  ASSERT_GT(steps, 5);

  // Stop 5 steps into epoch 1, then again 3 steps into epoch 2, then finish.
  RunOut b1 = run_all(p, cut, stop_after(5));
  ASSERT_TRUE(b1.stopped);
  const std::string ck = cut + "/stage0_pretrain.ckpt.npz";
  expect_progress(ck, 0, 5, 5);
  RunOut b2 = run_all(p, cut, stop_after(int(steps - 5 + 3)));
  ASSERT_TRUE(b2.stopped);
  expect_progress(ck, 1, 3);
  RunOut b3 = run_all(p, cut);
  ASSERT_FALSE(b3.stopped);
  ASSERT_EQ(b3.results.size(), 2u);

  // The final checkpoints: every member (parameters, optim.*, meta.*) byte for byte.
  EXPECT_GT(expect_same_checkpoint(full + "/stage0_pretrain.ckpt.npz", ck),
            20);  // the whole model, not just a few tensors
  std::printf("  final loss uninterrupted %.17g, resumed %.17g\n",
              a.results[0]["final_loss"].get<double>(), b3.results[0]["final_loss"].get<double>());
  // Loss curves (doubles summed in the same order across the stop) and the probe: exactly equal.
  EXPECT_EQ(a.results[0]["curves"], b3.results[0]["curves"]);
  EXPECT_EQ(a.results[1]["curves"], b3.results[1]["curves"]);
  EXPECT_EQ(a.results[1]["top1_final"], b3.results[1]["top1_final"]);

  // Rerunning the finished pretraining stage loads its checkpoint and trains nothing (a stop
  // request from the first poll on would throw if it took a step).
  Protocol only_pretrain = p;
  only_pretrain.stages.resize(1);
  RunOut c = run_all(only_pretrain, cut, stop_after(0));
  EXPECT_FALSE(c.stopped);
  ASSERT_EQ(c.results.size(), 1u);
  EXPECT_EQ(c.results[0]["curves"], a.results[0]["curves"]);
}

// Mean loss of the first and the last epoch of a short pretraining run on the synthetic set.
void expect_loss_falls(const std::string& method, double min_drop) {
  // 120 clips, batch 16: 7 steps per epoch, 7 epochs = 49 AdamW steps (warmup 1 epoch, lr 1e-3).
  Protocol p = tiny(method, R"([{"kind": "pretrain", "epochs": 7, "warmup_epochs": 1,
                                 "batch_size": 16, "lr": 1e-3, "min_lr": 1e-4}])");
  RunOut r = run_all(p, temp_dir("loss"));
  ASSERT_EQ(r.results.size(), 1u);
  const auto& loss = r.results[0]["curves"]["loss"];
  const double first = loss.front().get<double>(), last = loss.back().get<double>();
  std::printf("  %s: epoch-1 mean loss %.4f, epoch-%zu mean loss %.4f (drop %.4f), %.1f ms/step\n",
              method.c_str(), first, loss.size(), last, first - last,
              r.results[0]["step_ms"].get<double>());
  EXPECT_LT(last, first - min_drop);
}

TEST(ReferenceTraining, ReleasedPretrainingLossFalls) {
  // Measured drop 0.93 (1.646 -> 0.715); the margin is half of it.
  expect_loss_falls(kHacm, 0.45);
}

TEST(ReferenceTraining, CorrectedPretrainingLossFalls) {
  expect_loss_falls(
      R"({"name": "hacm", "variant": "corrected", "dim": 16, "heads": 2, "depth": 1,
          "decoder_depth": 1, "keep_ratio": 0.2})",
      0.5);  // measured drop 1.06 (1.756 -> 0.691); margin about half
}

TEST(ReferenceTraining, MampPretrainingLossFalls) {
  expect_loss_falls(R"({"name": "mamp", "dim": 16, "heads": 2, "depth": 1, "decoder_depth": 1})",
                    0.7);  // measured drop 1.39 (2.181 -> 0.791); margin about half
}

TEST(ReferenceTraining, LinearProbeLearnsOnAFrozenEncoder) {
  Protocol p = tiny(kHacm, R"([{"kind": "linear", "epochs": 4, "batch_size": 16}])");
  RunOut r = run_all(p, temp_dir("linear"));
  ASSERT_EQ(r.results.size(), 1u);
  const auto& loss = r.results[0]["curves"]["loss"];
  std::printf("  probe loss per epoch: %s, top-1 %.2f %%\n", loss.dump().c_str(),
              r.results[0]["top1_final"].get<double>());
  EXPECT_EQ(r.results[0]["encoder"], "random init");
  EXPECT_LT(loss.back().get<double>(), loss.front().get<double>());
  EXPECT_TRUE(r.results[0].contains("top1_final"));
}

TEST(ReferenceTraining, EveryStageKindIsAcceptedOnlyCudaIsRefused) {
  Protocol ok = tiny(kHacm, R"([{"kind": "pretrain", "epochs": 1}, {"kind": "linear"},
                                {"kind": "finetune"}, {"kind": "semi"},
                                {"kind": "transfer", "dataset": {"kind": "synthetic", "clips": 60,
                                                                 "seed": 4}}])");
  EXPECT_NO_THROW(check_reference_protocol(ok));
  Protocol gpu = ok;
  gpu.device = "cuda";
  test::expect_input_error([&] { check_reference_protocol(gpu); },
                           {"<test protocol>", "device", "cuda", "reference"});
}

const char* kHacm2 = R"({"name": "hacm", "dim": 16, "heads": 2, "depth": 2, "decoder_depth": 1})";

// Fine-tuning from a random init on the synthetic set (14 classes, chance 7.1 %), with drop-path
// and dropout on: the loss falls and the test accuracy ends well above chance.
TEST(ReferenceTraining, FinetuneLearnsFromScratch) {
  Protocol p = tiny(kHacm2, R"([{"kind": "finetune", "epochs": 12, "warmup_epochs": 1,
                                 "batch_size": 16, "lr": 1e-3, "min_lr": 1e-4,
                                 "drop_path": 0.1, "dropout": 0.1, "eval_every": 3}])",
                    240);
  RunOut r = run_all(p, temp_dir("finetune"));
  ASSERT_EQ(r.results.size(), 1u);
  const auto& res = r.results[0];
  const auto& loss = res["curves"]["loss"];
  std::printf("  fine-tune loss per epoch %s, top-1 %s (final %.2f %%), %.1f ms/step\n",
              loss.dump().c_str(), res["curves"]["top1"].dump().c_str(),
              res["top1_final"].get<double>(), res["step_ms"].get<double>());
  EXPECT_EQ(res["kind"], "finetune");
  EXPECT_EQ(res["from"], "scratch");
  EXPECT_EQ(res["curves"]["top1"].size(), 4u);  // epochs 3, 6, 9, 12
  // Measured (synthetic generator 3, 2026-11-23): loss 2.971 -> 1.857 (drop 1.11), top-1 23.3 %
  // (chance + 16.2 points; 15.8 % after 6 epochs, hence 12); the margins are about half of that.
  EXPECT_LT(loss.back().get<double>(), loss.front().get<double>() - 0.5);
  EXPECT_GT(res["top1_final"].get<double>(), 100.0 / 14 + 8.0);
}

// Pretraining, then fine-tuning from it with drop-path and dropout at the authors' rates, stopped
// mid-epoch and again across an epoch boundary: the resumed run ends byte for byte equal to the
// uninterrupted one (parameters, BN running statistics, AdamW state, curves, accuracy).
TEST(ReferenceTraining, FinetuneStoppedAndResumedIsBitwiseIdentical) {
  Protocol p = tiny(kHacm2, R"([{"kind": "pretrain", "epochs": 1, "batch_size": 16},
                                {"kind": "finetune", "epochs": 2, "warmup_epochs": 1,
                                 "batch_size": 8, "drop_path": 0.3, "dropout": 0.3}])");
  const std::string full = temp_dir("ft_full"), cut = temp_dir("ft_cut");
  RunOut a = run_all(p, full);
  ASSERT_FALSE(a.stopped);
  ASSERT_EQ(a.results.size(), 2u);
  EXPECT_EQ(a.results[1]["from"], "pretrain");
  const int64_t pre_steps = a.results[0]["steps_per_epoch"].get<int64_t>();
  const int64_t steps = a.results[1]["steps_per_epoch"].get<int64_t>();
  ASSERT_GT(steps, 4);
  // Stop 3 steps into fine-tuning epoch 1 (after the pretraining steps), then 2 steps into
  // epoch 2 (a rerun polls from the fine-tuning step it stopped at), then finish.
  RunOut b1 = run_all(p, cut, stop_after(int(pre_steps + 3)));
  ASSERT_TRUE(b1.stopped);
  const std::string ck = cut + "/stage1_finetune.ckpt.npz";
  expect_progress(ck, 0, 3, 3);
  RunOut b2 = run_all(p, cut, stop_after(int(steps - 3 + 2)));
  ASSERT_TRUE(b2.stopped);
  expect_progress(ck, 1, 2);
  RunOut b3 = run_all(p, cut);
  ASSERT_FALSE(b3.stopped);
  ASSERT_EQ(b3.results.size(), 2u);
  EXPECT_TRUE(npz_load(ck).count("head.bn.running_var"));
  EXPECT_GT(expect_same_checkpoint(full + "/stage1_finetune.ckpt.npz", ck),
            30);  // encoder + head, not just a few tensors
  EXPECT_EQ(a.results[1]["curves"], b3.results[1]["curves"]);
  EXPECT_EQ(a.results[1]["top1_final"], b3.results[1]["top1_final"]);
}

// Semi-supervised: the labelled subset is the first int(N·fraction) of the permutation from
// mix(seed, 5000), recorded in the result; transfer trains on its own dataset.
TEST(ReferenceTraining, SemiSubsetAndTransferDataset) {
  Protocol p = tiny(kHacm, R"([{"kind": "semi", "fraction": 0.25, "epochs": 1, "batch_size": 8},
                               {"kind": "transfer", "epochs": 1, "batch_size": 8,
                                "dataset": {"kind": "synthetic", "clips": 60, "seed": 4}}])");
  RunOut r = run_all(p, temp_dir("semi"));
  ASSERT_EQ(r.results.size(), 2u);
  const auto& semi = r.results[0];
  const std::string file = synthetic_file(p.dataset);
  Feeder train(file, "train", FeederConfig(), true);
  const int64_t n = int64_t(double(train.size()) * 0.25);
  std::vector<int64_t> perm = permutation(train.size(), mix(0, 5000));
  EXPECT_EQ(semi["subset_size"].get<int64_t>(), n);
  EXPECT_EQ(semi["subset_ids"].get<std::vector<int64_t>>(),
            std::vector<int64_t>(perm.begin(), perm.begin() + n));
  EXPECT_EQ(semi["steps_per_epoch"].get<int64_t>(), n / 8);
  EXPECT_EQ(r.results[1]["kind"], "transfer");
  EXPECT_EQ(r.results[1]["dataset"], synthetic_file(p.stages[1].dataset));
  EXPECT_TRUE(r.results[1].contains("top1_final"));
}

}  // namespace hacm::repro
