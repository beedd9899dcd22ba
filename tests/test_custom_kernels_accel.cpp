// The custom-kernel switches (accelerated/custom_kernels.h): the global one, each kernel alone,
// and the parsing of --kernels-off / HACM_CUSTOM_KERNELS_OFF. Runs anywhere (no kernel runs).
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "accelerated/custom_kernels.h"

using namespace hacm::accel;

namespace {
// Every kernel's switch, in the enum's order.
std::string state() {
  std::string s;
  for (size_t i = 0; i < custom_kernel_names().size(); ++i)
    s += custom_kernel(Kernel(i)) ? '1' : '0';
  return s;
}
}  // namespace

TEST(CustomKernels, SwitchesAloneAndTogether) {
  set_custom_kernels(true);
  set_custom_kernels_off("");
  EXPECT_EQ(state(), "1111111111");
  set_custom_kernels_off("add_layer_norm,fused_adamw");
  EXPECT_EQ(state(), "1011101111");
  EXPECT_TRUE(custom_kernel(Kernel::kLayerNorm));
  EXPECT_FALSE(custom_kernel(Kernel::kAddLayerNorm));
  EXPECT_FALSE(custom_kernel(Kernel::kFusedAdamW));
  set_custom_kernels(false);  // the global switch wins
  EXPECT_EQ(state(), "0000000000");
  set_custom_kernels(true);
  set_custom_kernels_off("expmap_projection,");  // a trailing comma is harmless
  EXPECT_EQ(state(), "1111011111");
  set_custom_kernels_off("fused_adamw,layer_norm");
  EXPECT_EQ(custom_kernels_off(), "layer_norm,fused_adamw");  // the enum's order
  set_custom_kernels_off("");
  EXPECT_EQ(state(), "1111111111");
}

TEST(CustomKernels, UnknownNameIsAClearError) {
  set_custom_kernels_off("layer_norm");
  try {
    set_custom_kernels_off("layer_norm,flash");
    FAIL() << "an unknown name was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown kernel 'flash'"), std::string::npos) << m;
    EXPECT_NE(m.find("fused_adamw"), std::string::npos) << m;  // lists the known names
  }
  EXPECT_FALSE(custom_kernel(Kernel::kLayerNorm));  // a failed call changes nothing
  set_custom_kernels_off("");
}

TEST(CustomKernels, NamesMatchTheEnum) {
  ASSERT_EQ(custom_kernel_names().size(), 10u);
  EXPECT_EQ(custom_kernel_names()[size_t(Kernel::kLayerNorm)], "layer_norm");
  EXPECT_EQ(custom_kernel_names()[size_t(Kernel::kFusedAdamW)], "fused_adamw");
  EXPECT_EQ(custom_kernel_names()[size_t(Kernel::kAttentionForward)], "attention_forward");
  EXPECT_EQ(custom_kernel_names()[size_t(Kernel::kAttentionTraining)], "attention_training");
  EXPECT_EQ(custom_kernel_names()[size_t(Kernel::kAttentionMma)], "attention_mma");
  EXPECT_EQ(custom_kernel_names()[size_t(Kernel::kAttentionMmaBackward)], "attention_mma_backward");
}

// HACM_CUSTOM_KERNELS_OFF is read on first use (in a fresh process: the "threadsafe" death-test
// style re-runs this binary for the statement); an unknown name there throws on first use.
TEST(CustomKernelsDeathTest, EnvironmentVariable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("HACM_CUSTOM_KERNELS_OFF", "column_sum,linear_gelu", 1);
        std::exit(state() == "1100111111" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("HACM_CUSTOM_KERNELS_OFF", "bogus", 1);
        try {
          (void)custom_kernel(Kernel::kLayerNorm);
        } catch (const std::invalid_argument&) {
          std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "");
}
