#include "cli/commands.h"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>

#include "cli/client.h"
#include "cli/format.h"
#include "cli/help_text.h"
#include "google/protobuf/util/json_util.h"

namespace offload {
namespace cli {
namespace {

struct Command {
  const char* usage;  // full help text of the command
  // Runs the command with its own arguments (after the command name).
  std::function<int(const std::vector<std::string>& args)> run;
};

class Offloadctl {
 public:
  Offloadctl(FILE* out, FILE* err) : out_(out), err_(err) {}
  int Main(const std::vector<std::string>& args);

 private:
  int Usage(const std::string& problem, const char* usage) {
    std::fprintf(err_, "offloadctl: %s\n\n%s", problem.c_str(), usage);
    return kExitUsage;
  }
  // Connects (once). Returns an exit code != 0 on failure (message printed).
  int Connect();
  // Prints a failed RPC as the daemon worded it and returns the exit code.
  int RpcFailed(const grpc::Status& status);
  // Prints `msg` as JSON when --json, else `text`.
  void Print(const google::protobuf::Message& msg, const std::string& text);
  std::unique_ptr<grpc::ClientContext> Context();

  int Status(const std::vector<std::string>& args);
  int Rules(const std::vector<std::string>& args);
  int AddRule(const std::vector<std::string>& args);
  int DelRule(const std::vector<std::string>& args);
  int Reload(const std::vector<std::string>& args);
  int Sessions(const std::vector<std::string>& args);
  int Stats(const std::vector<std::string>& args);
  int ThreadOffload(const std::vector<std::string>& args);
  int LogLevel(const std::vector<std::string>& args);

  std::map<std::string, Command> Commands();

  FILE* out_;
  FILE* err_;
  std::string socket_;
  bool json_ = false;
  std::unique_ptr<v1::Control::Stub> stub_;
};

bool ParseUint(const std::string& s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xffffffffu) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool IsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

std::map<std::string, Command> Offloadctl::Commands() {
  auto bind = [this](int (Offloadctl::*fn)(const std::vector<std::string>&)) {
    return [this, fn](const std::vector<std::string>& a) { return (this->*fn)(a); };
  };
  return {
      {"status", {kStatusUsage, bind(&Offloadctl::Status)}},
      {"rules", {kRulesUsage, bind(&Offloadctl::Rules)}},
      {"add-rule", {kAddRuleUsage, bind(&Offloadctl::AddRule)}},
      {"del-rule", {kDelRuleUsage, bind(&Offloadctl::DelRule)}},
      {"reload", {kReloadUsage, bind(&Offloadctl::Reload)}},
      {"sessions", {kSessionsUsage, bind(&Offloadctl::Sessions)}},
      {"stats", {kStatsUsage, bind(&Offloadctl::Stats)}},
      {"thread-offload", {kThreadUsage, bind(&Offloadctl::ThreadOffload)}},
      {"log-level", {kLogLevelUsage, bind(&Offloadctl::LogLevel)}},
  };
}

int Offloadctl::Main(const std::vector<std::string>& args) {
  if (const char* dir = std::getenv("OFFLOAD_RUN_DIR"); dir != nullptr && *dir != '\0') {
    socket_ = std::string(dir) + "/control.sock";
  } else if (const char* vdir = std::getenv("VMA_RUN_DIR"); vdir != nullptr && *vdir != '\0') {
    socket_ = std::string(vdir) + "/control.sock";
  } else {
    socket_ = kDefaultSocket;
  }
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--socket" || a == "-s") {
      if (i + 1 >= args.size()) return Usage("--socket needs a path", kMainUsage);
      socket_ = args[++i];
    } else if (a.rfind("--socket=", 0) == 0) {
      socket_ = a.substr(9);
    } else if (a == "--json") {
      json_ = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kMainUsage, out_);
      return kExitOk;
    } else if (!a.empty() && a[0] == '-') {
      return Usage("unknown option '" + a + "'", kMainUsage);
    } else {
      break;
    }
  }
  if (i == args.size()) return Usage("missing command", kMainUsage);
  const std::string name = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  // Global options are also accepted after the command.
  std::vector<std::string> own;
  for (size_t j = 0; j < rest.size(); ++j) {
    if (rest[j] == "--json") {
      json_ = true;
    } else if (rest[j] == "--socket" && j + 1 < rest.size()) {
      socket_ = rest[++j];
    } else if (rest[j].rfind("--socket=", 0) == 0) {
      socket_ = rest[j].substr(9);
    } else {
      own.push_back(rest[j]);
    }
  }
  std::map<std::string, Command> commands = Commands();
  if (name == "help") {
    if (own.empty()) {
      std::fputs(kMainUsage, out_);
      return kExitOk;
    }
    auto it = commands.find(own[0]);
    if (it == commands.end()) return Usage("no command '" + own[0] + "'", kMainUsage);
    std::fputs(it->second.usage, out_);
    return kExitOk;
  }
  auto it = commands.find(name);
  if (it == commands.end()) return Usage("unknown command '" + name + "'", kMainUsage);
  if (IsHelp(own)) {
    std::fputs(it->second.usage, out_);
    return kExitOk;
  }
  return it->second.run(own);
}

int Offloadctl::Connect() {
  if (stub_ != nullptr) return kExitOk;
  absl::Status s = ProbeSocket(socket_);
  if (!s.ok()) {
    std::fprintf(err_, "offloadctl: %s\n", std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kPermissionDenied ? kExitRejected : kExitUnreachable;
  }
  stub_ = MakeStub(socket_);
  return kExitOk;
}

std::unique_ptr<grpc::ClientContext> Offloadctl::Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

int Offloadctl::RpcFailed(const grpc::Status& status) {
  std::fprintf(err_, "offloadctl: %s\n", status.error_message().c_str());
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return kExitUnreachable;
  }
  return kExitRejected;
}

void Offloadctl::Print(const google::protobuf::Message& msg, const std::string& text) {
  if (!json_) {
    std::fputs(text.c_str(), out_);
    return;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(msg, &json, options).ok()) json = "{}\n";
  std::fputs(json.c_str(), out_);
}

int Offloadctl::Status(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("status takes no arguments", kStatusUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::GetStatusResponse resp;
  grpc::Status s = stub_->GetStatus(Context().get(), v1::GetStatusRequest(), &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, FormatStatus(resp));
  return kExitOk;
}

int Offloadctl::Rules(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("rules takes no arguments", kRulesUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::ListRulesResponse resp;
  grpc::Status s = stub_->ListRules(Context().get(), v1::ListRulesRequest(), &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, FormatRules(resp));
  return kExitOk;
}

int Offloadctl::AddRule(const std::vector<std::string>& args) {
  v1::AddRuleRequest req;
  bool have_line = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--position" || a == "--app" || a == "--app-id") {
      if (i + 1 >= args.size()) return Usage(a + " needs a value", kAddRuleUsage);
      const std::string& v = args[++i];
      if (a == "--position") {
        uint32_t pos = 0;
        if (!ParseUint(v, &pos) || pos == 0) {
          return Usage("--position takes a number >= 1, not '" + v + "'", kAddRuleUsage);
        }
        req.set_position(pos);
      } else if (a == "--app") {
        req.set_program(v);
      } else {
        req.set_application_id(v);
      }
    } else if (a == "--persist") {
      req.set_persist(true);
    } else if (!a.empty() && a[0] == '-' && a.size() > 1) {
      return Usage("unknown option '" + a + "'", kAddRuleUsage);
    } else if (!have_line) {
      req.set_line(a);
      have_line = true;
    } else {
      return Usage("unexpected '" + a + "': quote the rule as one argument", kAddRuleUsage);
    }
  }
  if (!have_line) return Usage("missing the rule", kAddRuleUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::AddRuleResponse resp;
  grpc::Status s = stub_->AddRule(Context().get(), req, &resp);
  if (!s.ok()) return RpcFailed(s);
  char text[512];
  std::snprintf(text, sizeof(text), "added rule %u at position %u: %s%s\n", resp.rule().id(),
                resp.rule().position(), resp.rule().text().c_str(),
                req.persist() ? " (persisted)" : "");
  Print(resp, text);
  return kExitOk;
}

int Offloadctl::DelRule(const std::vector<std::string>& args) {
  v1::DeleteRuleRequest req;
  bool have_id = false;
  for (const std::string& a : args) {
    if (a == "--persist") {
      req.set_persist(true);
    } else if (!have_id) {
      uint32_t id = 0;
      if (!ParseUint(a, &id)) return Usage("rule id must be a number, not '" + a + "'", kDelRuleUsage);
      req.set_id(id);
      have_id = true;
    } else {
      return Usage("unexpected '" + a + "'", kDelRuleUsage);
    }
  }
  if (!have_id) return Usage("missing the rule id (see `offloadctl rules`)", kDelRuleUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::DeleteRuleResponse resp;
  grpc::Status s = stub_->DeleteRule(Context().get(), req, &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, "deleted rule " + std::to_string(req.id()) + (req.persist() ? " (persisted)\n" : "\n"));
  return kExitOk;
}

int Offloadctl::Reload(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("reload takes no arguments", kReloadUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::ReloadRulesResponse resp;
  grpc::Status s = stub_->ReloadRules(Context().get(), v1::ReloadRulesRequest(), &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, "reloaded " + std::to_string(resp.num_rules()) + " rules from " +
                  resp.rules_file() + "\n");
  return kExitOk;
}

int Offloadctl::Sessions(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("sessions takes no arguments", kSessionsUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::ListSessionsResponse resp;
  grpc::Status s = stub_->ListSessions(Context().get(), v1::ListSessionsRequest(), &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, FormatSessions(resp));
  return kExitOk;
}

int Offloadctl::Stats(const std::vector<std::string>& args) {
  v1::GetStatsRequest req;
  bool verbose = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-p" || a == "--pid") {
      uint32_t pid = 0;
      if (i + 1 >= args.size() || !ParseUint(args[i + 1], &pid) || pid == 0) {
        return Usage("-p takes a process id", kStatsUsage);
      }
      req.set_pid(pid);
      ++i;
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else {
      return Usage("unexpected '" + a + "'", kStatsUsage);
    }
  }
  // Per-socket rows for -v, for one process, and for JSON consumers.
  req.set_sockets(verbose || req.pid() != 0 || json_);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::GetStatsResponse resp;
  grpc::Status s = stub_->GetStats(Context().get(), req, &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, FormatStats(resp, verbose || req.pid() != 0));
  return kExitOk;
}

int Offloadctl::ThreadOffload(const std::vector<std::string>& args) {
  if (args.size() != 2 && args.size() != 3) {
    return Usage("thread-offload takes PID TID and optionally on|off", kThreadUsage);
  }
  uint32_t pid = 0;
  uint32_t tid = 0;
  if (!ParseUint(args[0], &pid) || pid == 0) return Usage("bad PID '" + args[0] + "'", kThreadUsage);
  if (!ParseUint(args[1], &tid) || tid == 0) return Usage("bad TID '" + args[1] + "'", kThreadUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  if (args.size() == 2) {
    v1::GetThreadOffloadRequest req;
    req.set_pid(pid);
    req.set_tid(tid);
    v1::GetThreadOffloadResponse resp;
    grpc::Status s = stub_->GetThreadOffload(Context().get(), req, &resp);
    if (!s.ok()) return RpcFailed(s);
    Print(resp, "thread " + args[1] + " of process " + args[0] + ": offload " +
                    (resp.offload() ? "on" : "off") +
                    (resp.explicitly_set() ? "\n" : " (process default)\n"));
    return kExitOk;
  }
  if (args[2] != "on" && args[2] != "off") {
    return Usage("the last argument must be on or off, not '" + args[2] + "'", kThreadUsage);
  }
  v1::SetThreadOffloadRequest req;
  req.set_pid(pid);
  req.set_tid(tid);
  req.set_offload(args[2] == "on");
  v1::SetThreadOffloadResponse resp;
  grpc::Status s = stub_->SetThreadOffload(Context().get(), req, &resp);
  if (!s.ok()) return RpcFailed(s);
  Print(resp, "thread " + args[1] + " of process " + args[0] + ": offload " + args[2] + "\n");
  return kExitOk;
}

int Offloadctl::LogLevel(const std::vector<std::string>& args) {
  v1::SetLogLevelRequest req;
  bool have_level = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-p" || args[i] == "--pid") {
      uint32_t pid = 0;
      if (i + 1 >= args.size() || !ParseUint(args[i + 1], &pid) || pid == 0) {
        return Usage("-p takes a process id", kLogLevelUsage);
      }
      req.set_pid(pid);
      ++i;
    } else if (!have_level) {
      req.set_level(args[i]);
      have_level = true;
    } else {
      return Usage("unexpected '" + args[i] + "'", kLogLevelUsage);
    }
  }
  if (!have_level) return Usage("missing LEVEL", kLogLevelUsage);
  if (int rc = Connect(); rc != kExitOk) return rc;
  v1::SetLogLevelResponse resp;
  grpc::Status s = stub_->SetLogLevel(Context().get(), req, &resp);
  if (!s.ok()) return RpcFailed(s);
  std::string text = "log level of " +
                     (req.pid() == 0 ? std::string("offloadd") : "process " + std::to_string(req.pid())) +
                     " set to " + req.level();
  if (!resp.previous().empty()) text += " (was " + resp.previous() + ")";
  Print(resp, text + "\n");
  return kExitOk;
}

}  // namespace

int RunOffloadctl(const std::vector<std::string>& args, FILE* out, FILE* err) {
  Offloadctl ctl(out, err);
  return ctl.Main(args);
}

}  // namespace cli
}  // namespace offload
