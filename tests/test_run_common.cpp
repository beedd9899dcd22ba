// The runner's backend-neutral evaluation counts (repro/run_common.h): top-1 / top-5 with ties
// going to the label, the confusion matrix, and the per-class record of finish_eval.
#include <gtest/gtest.h>

#include <vector>

#include "repro/run_common.h"

using namespace hacm::repro;

TEST(EvalCounts, TopKTiesAndConfusion) {
  // 4 clips, 6 classes.
  const std::vector<float> logits = {
      5, 1, 0, 0, 0, 0,  // label 0: top-1
      5, 4, 3, 2, 1, 0,  // label 5: rank 6 -> neither; predicted 0
      1, 1, 0, 0, 0, 0,  // label 1: tie with class 0 -> counts as top-1 (predicted 1)
      0, 9, 8, 7, 6, 5,  // label 5: rank 5 -> top-5 only; predicted 1
  };
  const std::vector<int64_t> labels = {0, 5, 1, 5};
  EvalCounts c(6);
  c.add(logits.data(), 2, 6, labels.data());  // two batches
  c.add(logits.data() + 12, 2, 6, labels.data() + 2);
  EvalResult r = c.result();
  EXPECT_DOUBLE_EQ(r.top1, 50.0);
  EXPECT_DOUBLE_EQ(r.top5, 75.0);
  ASSERT_EQ(r.classes, 6);
  std::vector<int64_t> want(36, 0);
  want[0 * 6 + 0] = 1, want[5 * 6 + 0] = 1, want[1 * 6 + 1] = 1, want[5 * 6 + 1] = 1;
  EXPECT_EQ(r.confusion, want);
  EXPECT_THROW(c.add(logits.data(), 1, 5, labels.data()), std::logic_error);

  nlohmann::json j = finish_eval(nlohmann::json::object(), {r}, "finetune", 1.0);
  ASSERT_TRUE(j.contains("per_class_top1_final"));
  EXPECT_DOUBLE_EQ(j["per_class_top1_final"][0].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(j["per_class_top1_final"][5].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["per_class_top1_final"][2].get<double>(), 0.0);  // no clips of class 2
  EXPECT_EQ(j["confusion_final"][5][1].get<int64_t>(), 1);
  // Evaluations restored from a checkpoint's curves carry no matrix: no per-class keys.
  nlohmann::json k =
      finish_eval(nlohmann::json::object(),
                  {eval_from_curves({{"top1", {10.0}}, {"top5", {20.0}}}, 0)}, "linear", 1.0);
  EXPECT_FALSE(k.contains("confusion_final"));
  EXPECT_DOUBLE_EQ(k["top1_final"].get<double>(), 10.0);
}
