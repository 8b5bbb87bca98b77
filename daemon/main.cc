// offloadd: the offload daemon. See `offloadd --help`.

#include <getopt.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon/common/logging.h"
#include "daemon/config/config.h"
#include "daemon/control/control_service.h"
#include "daemon/server/daemon.h"
#include "google/protobuf/text_format.h"
#include "spdlog/spdlog.h"

namespace {

constexpr char kUsage[] = R"(Usage: offloadd [OPTIONS]

offloadd owns the offload data path: processes that load liboffload.so (for
example through `offload CMD`) attach to it and their TCP/UDP sockets bypass
the kernel. With no NIC configured it accelerates connections between
processes on this host through shared memory; name interfaces in the config
file to offload traffic on the wire as well.

Options:
  -c, --config FILE        daemon configuration, a DaemonConfig in protobuf text
                           format (default /etc/offloadd/offloadd.conf; when the
                           default file is absent the built-in defaults apply)
  -r, --run-dir DIR        where engine.sock and control.sock live
                           (default /run/offloadd; overrides run_dir)
      --rules FILE         offload rules, libvma.conf grammar
                           (default /etc/offloadd/rules.conf; overrides rules_file)
  -l, --log-level LEVEL    trace, debug, info, warn, error, critical or off
      --log-file FILE      log to FILE instead of stderr; a single %d becomes
                           the pid
      --control-mode MODE  permissions of control.sock, octal (default 0660;
                           0666 lets every user read status and statistics)
      --check-config       validate the configuration, print the effective
                           settings and exit (0 when valid)
  -V, --version            print the version and exit
  -h, --help               print this help and exit

Signals: SIGTERM/SIGINT stop cleanly (sockets removed); SIGHUP reloads the
rules file.

Environment:
  OFFLOADD_FAULT           tests only: inject loss and reordering on the NIC
                           queues, e.g. "rx_loss=0.01,tx_reorder=0.02,
                           reorder_depth=3,reorder_us=200,seed=1" (keys: rx_loss
                           tx_loss loss rx_reorder tx_reorder reorder
                           reorder_depth reorder_us seed; see
                           daemon/nic/README.md). A malformed value stops
                           start-up; counters in `offloadctl stats`.

Examples:
  systemctl start offloadd                   # as a service
  offloadd --run-dir /tmp/off &              # a private instance, no root needed
  offloadctl --socket /tmp/off/control.sock status
  OFFLOAD_RUN_DIR=/tmp/off offload -- sockperf server -p 11111
)";

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "offloadd: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  enum { kRules = 256, kLogFile, kControlMode, kCheckConfig };
  static const option kOptions[] = {
      {"config", required_argument, nullptr, 'c'},
      {"run-dir", required_argument, nullptr, 'r'},
      {"rules", required_argument, nullptr, kRules},
      {"log-level", required_argument, nullptr, 'l'},
      {"log-file", required_argument, nullptr, kLogFile},
      {"control-mode", required_argument, nullptr, kControlMode},
      {"check-config", no_argument, nullptr, kCheckConfig},
      {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  std::string config_file;
  bool config_explicit = false;
  std::string run_dir, rules_file, log_level, log_file, control_mode;
  bool rules_set = false;
  bool check_only = false;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, ":c:r:l:Vh", kOptions, nullptr)) != -1) {
    switch (opt) {
      case 'c': config_file = optarg; config_explicit = true; break;
      case 'r': run_dir = optarg; break;
      case kRules: rules_file = optarg; rules_set = true; break;
      case 'l': log_level = optarg; break;
      case kLogFile: log_file = optarg; break;
      case kControlMode: control_mode = optarg; break;
      case kCheckConfig: check_only = true; break;
      case 'V': std::printf("offloadd %s\n", offload::control::kVersion); return 0;
      case 'h': std::fputs(kUsage, stdout); return 0;
      case ':':
        return Fail(std::string("option ") + argv[optind - 1] + " needs a value; see --help", 2);
      default:
        return Fail(std::string("unknown option ") + argv[optind - 1] + "; see --help", 2);
    }
  }
  if (optind < argc) {
    return Fail(std::string("unexpected argument '") + argv[optind] + "'; see --help", 2);
  }

  offload::v1::DaemonConfig config;
  std::string used_config;
  if (!config_explicit) config_file = offload::config::kDefaultConfigFile;
  if (config_explicit || ::access(config_file.c_str(), F_OK) == 0) {
    absl::StatusOr<offload::v1::DaemonConfig> loaded =
        offload::config::LoadConfigFile(config_file);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()), 1);
    config = *loaded;
    used_config = config_file;
  }
  if (!run_dir.empty()) config.set_run_dir(run_dir);
  if (rules_set) config.set_rules_file(rules_file);
  if (!log_level.empty()) config.set_log_level(log_level);
  if (!log_file.empty()) config.set_log_file(log_file);
  if (!control_mode.empty()) config.set_control_socket_mode(control_mode);
  // A private instance (--run-dir given, no config) must not pick up the
  // system rules file implicitly.
  if (!rules_set && used_config.empty() && !run_dir.empty() && config.rules_file().empty()) {
    config.set_rules_file(run_dir + "/rules.conf");
  }
  offload::config::ApplyDefaults(&config);
  if (absl::Status s = offload::config::ValidateConfig(config); !s.ok()) {
    return Fail((used_config.empty() ? "" : used_config + ": ") + std::string(s.message()), 1);
  }
  if (check_only) {
    std::string text;
    google::protobuf::TextFormat::PrintToString(config, &text);
    std::printf("# effective configuration%s\n%s",
                used_config.empty() ? " (built-in defaults)" : (" from " + used_config).c_str(),
                text.c_str());
    return 0;
  }

  absl::StatusOr<std::string> log_path = offload::InitLogging(config.log_level(), config.log_file());
  if (!log_path.ok()) return Fail(std::string(log_path.status().message()), 1);

  // Every connection on the wire holds a descriptor (its shadow socket)
  // until TIME-WAIT ends: take the whole hard limit (offloadd.service sets
  // LimitNOFILE; a shell's default soft limit is 1024).
  if (struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  absl::StatusOr<std::unique_ptr<offload::server::Daemon>> daemon =
      offload::server::Daemon::Create(config, used_config);
  if (!daemon.ok()) {
    spdlog::critical("cannot start: {}", std::string(daemon.status().message()));
    if (!log_path->empty()) Fail(std::string(daemon.status().message()), 1);
    return 1;
  }
  absl::Status s = (*daemon)->Run();
  daemon->reset();
  if (!s.ok()) {
    spdlog::critical("{}", std::string(s.message()));
    return 1;
  }
  return 0;
}
