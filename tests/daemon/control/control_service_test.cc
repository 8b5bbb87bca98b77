// The control service over a real Unix socket and gRPC: status mapping,
// authorization from SO_PEERCRED, rule calls, and the data-plane routing.

#include "daemon/control/control_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/client.h"
#include "daemon/control/control_server.h"
#include "daemon/control/status_mapping.h"

namespace offload {
namespace control {
namespace {

TEST(StatusMapping, CodesAndMessagesPassThrough) {
  const absl::Status cases[] = {
      absl::InvalidArgumentError("bad rule"), absl::NotFoundError("no such rule"),
      absl::PermissionDeniedError("join the group"), absl::FailedPreconditionError("no file"),
      absl::ResourceExhaustedError("full"), absl::UnavailableError("down"),
  };
  for (const absl::Status& s : cases) {
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(s.code()));
    EXPECT_EQ(g.error_message(), std::string(s.message()));
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(PeerAuth, RootAndOwnUserMayMutate) {
  ucred root{1, 0, 0};
  EXPECT_TRUE(AuthorizeMutation(root, "add-rule").ok());
  ucred self{getpid(), geteuid(), getegid()};
  EXPECT_TRUE(AuthorizeMutation(self, "add-rule").ok());
}

TEST(PeerAuth, OthersAreToldWhichGroupToJoin) {
  if (geteuid() == 65534) GTEST_SKIP() << "running as nobody";
  ucred nobody{1, 65534, 65534};
  absl::Status s = AuthorizeMutation(nobody, "add-rule", "offload-test-no-such-group");
  ASSERT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  const std::string msg(s.message());
  EXPECT_NE(msg.find("add-rule needs root or membership in the 'offload-test-no-such-group'"),
            std::string::npos) << msg;
  EXPECT_NE(msg.find("groupadd"), std::string::npos) << msg;
}

TEST(PeerAuth, PrimaryGroupCounts) {
  EXPECT_TRUE(ProcessInGroup(getpid(), 1234, 1234));
  // Supplementary groups come from /proc/<pid>/status.
  gid_t groups[64];
  const int n = getgroups(64, groups);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(ProcessInGroup(getpid(), 987653, groups[i]));
  EXPECT_FALSE(ProcessInGroup(getpid(), 1, 987654));
}

TEST(PeerRegistry, FindsByGrpcPeerName) {
  PeerRegistry r;
  r.Put(7, ucred{42, 1000, 1000});
  ASSERT_TRUE(r.Find("fd:7").has_value());
  EXPECT_EQ(r.Find("fd:7")->pid, 42);
  EXPECT_FALSE(r.Find("fd:8").has_value());
  EXPECT_FALSE(r.Find("unix:/x").has_value());
  EXPECT_FALSE(r.Find("fd:7x").has_value());
  r.Put(7, ucred{43, 0, 0});  // fd reused by a new connection
  EXPECT_EQ(r.Find("fd:7")->pid, 43);
}

// A data plane that records what the service asked of it.
class RecordingDataPlane : public NoDataPlane {
 public:
  uint32_t AbiVersion() const override { return 7; }
  absl::Status SetThreadOffload(uint32_t pid, uint32_t tid, bool offload) override {
    last_pid = pid;
    last_tid = tid;
    last_offload = offload;
    return absl::OkStatus();
  }
  uint32_t last_pid = 0, last_tid = 0;
  bool last_offload = true;
};

class ControlServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/control_service_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    rules_ = *rules::RuleStore::Create(dir_ + "/rules.conf");
    DaemonInfo info;
    info.config.set_run_dir(dir_);
    info.started = std::chrono::steady_clock::now();
    service_ = std::make_unique<ControlService>(info, rules_.get(), &plane_, &peers_);
    auto server = ControlServer::Start(dir_ + "/control.sock", 0600, service_.get(), &peers_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_TRUE(cli::ProbeSocket(dir_ + "/control.sock").ok());
    stub_ = cli::MakeStub(dir_ + "/control.sock");
  }
  void TearDown() override {
    server_.reset();
    ::unlink((dir_ + "/rules.conf").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
  std::unique_ptr<rules::RuleStore> rules_;
  RecordingDataPlane plane_;
  PeerRegistry peers_;
  std::unique_ptr<ControlService> service_;
  std::unique_ptr<ControlServer> server_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

TEST_F(ControlServiceTest, StatusReportsDaemonFacts) {
  grpc::ClientContext ctx;
  v1::GetStatusResponse resp;
  ASSERT_TRUE(stub_->GetStatus(&ctx, v1::GetStatusRequest(), &resp).ok());
  EXPECT_EQ(resp.version(), kVersion);
  EXPECT_EQ(resp.pid(), static_cast<uint32_t>(getpid()));
  EXPECT_EQ(resp.abi_version(), 7u);
  EXPECT_EQ(resp.mode(), "same-host");
  EXPECT_EQ(resp.config().run_dir(), dir_);
}

TEST_F(ControlServiceTest, AddListDeleteThroughGrpc) {
  v1::AddRuleRequest add;
  add.set_line("use os tcp_server *:5001");
  v1::AddRuleResponse added;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->AddRule(&ctx, add, &added).ok());
  }
  EXPECT_EQ(added.rule().position(), 1u);
  EXPECT_EQ(added.rule().role(), v1::ROLE_TCP_SERVER);
  EXPECT_EQ(added.rule().transport(), v1::TRANSPORT_OS);
  v1::ListRulesResponse list;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListRules(&ctx, v1::ListRulesRequest(), &list).ok());
  }
  ASSERT_EQ(list.rules_size(), 1);
  EXPECT_EQ(list.rules(0).text(), "use os tcp_server *:5001");
  EXPECT_EQ(list.rules(0).origin(), "runtime");

  add.set_line("use os tcp_server");
  grpc::ClientContext ctx2;
  grpc::Status bad = stub_->AddRule(&ctx2, add, &added);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("column 18"), std::string::npos) << bad.error_message();

  v1::DeleteRuleRequest del;
  del.set_id(list.rules(0).id());
  v1::DeleteRuleResponse deleted;
  grpc::ClientContext ctx3;
  ASSERT_TRUE(stub_->DeleteRule(&ctx3, del, &deleted).ok());
  EXPECT_TRUE(rules_->Snapshot()->rules.empty());
}

TEST_F(ControlServiceTest, ThreadOffloadReachesTheDataPlane) {
  v1::SetThreadOffloadRequest req;
  req.set_pid(100);
  req.set_tid(101);
  req.set_offload(false);
  v1::SetThreadOffloadResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->SetThreadOffload(&ctx, req, &resp).ok());
  EXPECT_EQ(plane_.last_pid, 100u);
  EXPECT_EQ(plane_.last_tid, 101u);
  EXPECT_FALSE(plane_.last_offload);
}

TEST_F(ControlServiceTest, UnknownProcessIsNotFound) {
  v1::GetStatsRequest req;
  req.set_pid(424242);
  v1::GetStatsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->GetStats(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("424242"), std::string::npos);
}

TEST_F(ControlServiceTest, LogLevelValidatesAndReportsPrevious) {
  v1::SetLogLevelRequest req;
  req.set_level("loud");
  v1::SetLogLevelResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->SetLogLevel(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("trace, debug, info"), std::string::npos);
  req.set_level("warn");
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->SetLogLevel(&ctx2, req, &resp).ok());
  EXPECT_FALSE(resp.previous().empty());
}

}  // namespace
}  // namespace control
}  // namespace offload
