// RuleStore: positions, ids, versions, persist (atomic rewrite), reload.

#include "daemon/rules/rule_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace offload {
namespace rules {
namespace {

class RuleStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rule_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/rules.conf";
  }
  void TearDown() override {
    ::unlink(file_.c_str());
    ::rmdir(dir_.c_str());
  }
  void Write(const std::string& text) { std::ofstream(file_) << text; }
  std::string Read() {
    std::ifstream in(file_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::vector<std::string> Texts(const RuleStore& store) {
    std::vector<std::string> out;
    for (const Rule& r : store.Snapshot()->rules) out.push_back(FormatRule(r));
    return out;
  }
  std::string dir_;
  std::string file_;
};

TEST_F(RuleStoreTest, MissingFileGivesEmptyTable) {
  auto store = RuleStore::Create(file_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->Snapshot()->rules.empty());
}

TEST_F(RuleStoreTest, BadFileIsRejectedWithPosition) {
  Write("use os tcp_server *:1\nuse bogus tcp_server *:2\n");
  auto store = RuleStore::Create(file_);
  ASSERT_FALSE(store.ok());
  const std::string msg(store.status().message());
  EXPECT_NE(msg.find("rules.conf: line 2, column 5"), std::string::npos) << msg;
}

TEST_F(RuleStoreTest, AddGoesOnTopOrAtPosition) {
  Write("use os tcp_server *:1\nuse os tcp_server *:2\n");
  auto store = *RuleStore::Create(file_);
  const uint64_t v0 = store->Snapshot()->version;
  ASSERT_TRUE(store->Add("use os tcp_server *:3", 0, false, "", "").ok());
  ASSERT_TRUE(store->Add("use os tcp_server *:4", 3, false, "", "").ok());
  ASSERT_TRUE(store->Add("use os tcp_server *:5", 5, false, "redis*", "A").ok());
  EXPECT_EQ(Texts(*store),
            (std::vector<std::string>{"use os tcp_server *:3", "use os tcp_server *:1",
                                      "use os tcp_server *:4", "use os tcp_server *:2",
                                      "use os tcp_server *:5"}));
  EXPECT_EQ(store->Snapshot()->version, v0 + 3);
  EXPECT_STREQ(store->Snapshot()->rules[4].program, "redis*");
  EXPECT_EQ(store->Snapshot()->origins[0], "runtime");
  EXPECT_EQ(store->Snapshot()->origins[1], file_ + ":1");
}

TEST_F(RuleStoreTest, AddRejectsBadRuleAndPosition) {
  auto store = *RuleStore::Create(file_);
  absl::StatusOr<Rule> r = store->Add("use foo tcp_server *:1", 0, false, "", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("column 5"), std::string::npos);
  EXPECT_NE(std::string(r.status().message()).find("offload, vma or os"), std::string::npos);
  r = store->Add("use os tcp_server *:1", 3, false, "", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("use 1..1"), std::string::npos);
  EXPECT_TRUE(store->Snapshot()->rules.empty());
}

TEST_F(RuleStoreTest, IdsAreStableAcrossInsertsAndDelete) {
  auto store = *RuleStore::Create(file_);
  const uint32_t a = store->Add("use os tcp_server *:1", 0, false, "", "")->id;
  const uint32_t b = store->Add("use os tcp_server *:2", 0, false, "", "")->id;
  EXPECT_NE(a, b);
  ASSERT_TRUE(store->Delete(a, false).ok());
  ASSERT_EQ(store->Snapshot()->rules.size(), 1u);
  EXPECT_EQ(store->Snapshot()->rules[0].id, b);
  absl::Status s = store->Delete(a, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
}

TEST_F(RuleStoreTest, PersistRewritesFileAndSurvivesRestart) {
  Write("application-id redis-server *\nuse os tcp_server *:6379\n");
  {
    auto store = *RuleStore::Create(file_);
    ASSERT_TRUE(store->Add("use os udp_receiver *:5000", 0, true, "", "").ok());
  }
  auto again = *RuleStore::Create(file_);
  EXPECT_EQ(Texts(*again), (std::vector<std::string>{"use os udp_receiver *:5000",
                                                     "use os tcp_server *:6379"}));
  EXPECT_STREQ(again->Snapshot()->rules[1].program, "redis-server");
  EXPECT_STREQ(again->Snapshot()->rules[0].program, "*");
  // No temporary file is left behind.
  EXPECT_NE(access((file_ + ".tmp." + std::to_string(getpid())).c_str(), F_OK), 0);
}

TEST_F(RuleStoreTest, PersistWithoutFileIsAPrecondition) {
  auto store = *RuleStore::Create("");
  absl::StatusOr<Rule> r = store->Add("use os tcp_server *:1", 0, true, "", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Snapshot()->rules.size(), 1u);  // applied, not persisted
}

TEST_F(RuleStoreTest, ReloadReplacesRuntimeRulesAndKeepsTableOnError) {
  Write("use os tcp_server *:1\n");
  auto store = *RuleStore::Create(file_);
  ASSERT_TRUE(store->Add("use os tcp_server *:2", 0, false, "", "").ok());
  ASSERT_EQ(*store->Reload(), 1u);
  EXPECT_EQ(Texts(*store), (std::vector<std::string>{"use os tcp_server *:1"}));
  Write("use os tcp_server *:1\nnonsense\n");
  absl::StatusOr<size_t> n = store->Reload();
  ASSERT_FALSE(n.ok());
  EXPECT_NE(std::string(n.status().message()).find("line 2"), std::string::npos);
  EXPECT_EQ(Texts(*store), (std::vector<std::string>{"use os tcp_server *:1"}));
}

TEST_F(RuleStoreTest, SubscribersSeeEveryChange) {
  auto store = *RuleStore::Create(file_);
  std::vector<uint64_t> versions;
  store->Subscribe([&](std::shared_ptr<const RuleSnapshot> s) { versions.push_back(s->version); });
  const uint32_t id = store->Add("use os tcp_server *:1", 0, false, "", "")->id;
  ASSERT_TRUE(store->Delete(id, false).ok());
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_LT(versions[0], versions[1]);
  EXPECT_EQ(versions[1], store->Snapshot()->version);
}

}  // namespace
}  // namespace rules
}  // namespace offload
