#include <gtest/gtest.h>
#include "absl/status/status.h"
#include "spdlog/spdlog.h"
TEST(Smoke, Works) { EXPECT_TRUE(absl::OkStatus().ok()); spdlog::info("hi"); }
