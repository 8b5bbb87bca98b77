#include "daemon/config/config.h"

#include <net/if.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/common/errors.h"
#include "daemon/common/logging.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace offload {
namespace config {
namespace {

// Collects the first error the text-format parser reports, with position.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      // The parser's positions are 0-based.
      error_ = std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
    }
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& error() const { return error_; }

 private:
  bool has_error_ = false;
  std::string error_;
};

absl::Status OutOfRange(const std::string& field, uint64_t value, const std::string& range) {
  return absl::InvalidArgumentError(field + ": " + std::to_string(value) +
                                    " is out of range; use " + range);
}

}  // namespace

absl::StatusOr<v1::DaemonConfig> ParseConfig(const std::string& text, const std::string& source) {
  v1::DaemonConfig config;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(source + ":" + errors.error() +
                                      " (the file is a DaemonConfig in protobuf text format; "
                                      "see /etc/offloadd/offloadd.conf for every field)");
  }
  return config;
}

absl::StatusOr<v1::DaemonConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno, "cannot read config file " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseConfig(buffer.str(), path);
}

void ApplyDefaults(v1::DaemonConfig* c) {
  if (c->run_dir().empty()) c->set_run_dir(kDefaultRunDir);
  if (c->rules_file().empty()) c->set_rules_file(kDefaultRulesFile);
  if (c->log_level().empty()) c->set_log_level("info");
  if (c->control_socket_mode().empty()) c->set_control_socket_mode("0660");
  if (c->num_cores() == 0) c->set_num_cores(1);
  if (c->max_concurrency() == 0) c->set_max_concurrency(65536);
  if (c->max_num_buffers() == 0) c->set_max_num_buffers(16384);
  if (c->rcvbuf() == 0) c->set_rcvbuf(256 * 1024);
  if (c->sndbuf() == 0) c->set_sndbuf(256 * 1024);
  if (c->engine_poll_us() == 0) c->set_engine_poll_us(50);
  if (c->max_sockets_per_process() == 0) c->set_max_sockets_per_process(131072);
  if (c->arena_bytes() == 0) c->set_arena_bytes(64ull << 20);
}

absl::StatusOr<unsigned> ParseSocketMode(const std::string& text) {
  unsigned mode = 0;
  if (text.empty() || text.size() > 4) {
    return absl::InvalidArgumentError("control_socket_mode: '" + text +
                                      "' is not an octal mode; use e.g. \"0660\"");
  }
  for (char ch : text) {
    if (ch < '0' || ch > '7') {
      return absl::InvalidArgumentError("control_socket_mode: '" + text +
                                        "' is not an octal mode; use e.g. \"0660\"");
    }
    mode = mode * 8 + static_cast<unsigned>(ch - '0');
  }
  if (mode > 0777) {
    return absl::InvalidArgumentError("control_socket_mode: '" + text +
                                      "' has bits beyond 0777");
  }
  if ((mode & 0600) != 0600) {
    return absl::InvalidArgumentError("control_socket_mode: '" + text +
                                      "' must let the owner read and write (0600 at least)");
  }
  return mode;
}

absl::Status ValidateConfig(const v1::DaemonConfig& c) {
  if (c.run_dir().empty() || c.run_dir()[0] != '/') {
    return absl::InvalidArgumentError("run_dir: '" + c.run_dir() + "' must be an absolute path");
  }
  // sun_path holds 108 bytes; the longest name we put there is control.sock.
  if (c.run_dir().size() + sizeof("/control.sock") > 108) {
    return absl::InvalidArgumentError("run_dir: '" + c.run_dir() +
                                      "' is too long for a Unix socket path (max 94 bytes)");
  }
  if (!c.rules_file().empty() && c.rules_file()[0] != '/') {
    return absl::InvalidArgumentError("rules_file: '" + c.rules_file() +
                                      "' must be an absolute path");
  }
  if (absl::Status s = ParseLogLevel(c.log_level()).status(); !s.ok()) {
    return absl::InvalidArgumentError("log_level: " + std::string(s.message()));
  }
  if (!c.log_file().empty()) {
    if (absl::Status s = ExpandPidPattern(c.log_file(), 1).status(); !s.ok()) {
      return absl::InvalidArgumentError("log_file: " + std::string(s.message()));
    }
  }
  if (absl::Status s = ParseSocketMode(c.control_socket_mode()).status(); !s.ok()) return s;
  if (c.num_cores() < 1 || c.num_cores() > 64) return OutOfRange("num_cores", c.num_cores(), "1..64");
  if (c.max_concurrency() < 1 || c.max_concurrency() > (1u << 22)) {
    return OutOfRange("max_concurrency", c.max_concurrency(), "1..4194304");
  }
  if (c.max_num_buffers() < 64 || c.max_num_buffers() > (1u << 24)) {
    return OutOfRange("max_num_buffers", c.max_num_buffers(), "64..16777216");
  }
  for (const auto& [name, value] : {std::pair<const char*, uint32_t>{"rcvbuf", c.rcvbuf()},
                                    std::pair<const char*, uint32_t>{"sndbuf", c.sndbuf()}}) {
    if (value < 4096 || value > (64u << 20)) return OutOfRange(name, value, "4096..67108864 bytes");
  }
  if (c.engine_poll_us() > 1000000) {
    return OutOfRange("engine_poll_us", c.engine_poll_us(), "0..1000000 microseconds");
  }
  if (c.max_sockets_per_process() < 1 || c.max_sockets_per_process() > 1000000) {
    return OutOfRange("max_sockets_per_process", c.max_sockets_per_process(), "1..1000000");
  }
  if (c.arena_bytes() < (1ull << 20) || c.arena_bytes() > (16ull << 30)) {
    return OutOfRange("arena_bytes", c.arena_bytes(), "1048576..17179869184 (1 MiB..16 GiB)");
  }
  for (uint32_t cpu : c.cpu_affinity()) {
    if (cpu >= 4096) return OutOfRange("cpu_affinity", cpu, "0..4095");
  }
  std::set<std::string> names;
  for (int i = 0; i < c.interfaces_size(); ++i) {
    const v1::InterfaceConfig& ifc = c.interfaces(i);
    const std::string field = "interfaces[" + std::to_string(i) + "]";
    if (ifc.name().empty()) return absl::InvalidArgumentError(field + ".name: must be set");
    if (ifc.name().size() >= IFNAMSIZ) {
      return absl::InvalidArgumentError(field + ".name: '" + ifc.name() +
                                        "' is longer than an interface name can be (15)");
    }
    if (!names.insert(ifc.name()).second) {
      return absl::InvalidArgumentError(field + ".name: '" + ifc.name() + "' is listed twice");
    }
    if (ifc.queues() > 64) return OutOfRange(field + ".queues", ifc.queues(), "0..64");
  }
  return absl::OkStatus();
}

}  // namespace config
}  // namespace offload
