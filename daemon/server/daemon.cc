#include "daemon/server/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/common/errors.h"
#include "daemon/config/config.h"
#include "daemon/server/session_data_plane.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace server {
namespace {

// mkdir -p with mode 0755 for created components.
absl::Status MakeDirs(const std::string& path) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "cannot create run directory " + partial);
    }
  }
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(path + " is not a directory");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Create(const v1::DaemonConfig& config,
                                                       const std::string& config_file) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->config_ = config;

  // Handled signals are consumed through a signalfd by Run(); block them in
  // this thread before any other thread is created so all threads inherit it.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (::pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return absl::InternalError("pthread_sigmask failed");
  }
  d->signal_fd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
  if (!d->signal_fd_.valid()) return ErrnoStatus(errno, "signalfd");
  // Writes to a closed peer must return EPIPE, never kill the daemon.
  ::signal(SIGPIPE, SIG_IGN);

  if (absl::Status s = MakeDirs(config.run_dir()); !s.ok()) return s;
  if (absl::Status s = d->LockRunDir(); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<rules::RuleStore>> rules =
      rules::RuleStore::Create(config.rules_file());
  if (!rules.ok()) return rules.status();
  d->rules_ = std::move(*rules);
  spdlog::info("{} rules loaded from {}", d->rules_->Snapshot()->rules.size(),
               config.rules_file().empty() ? "(no file)" : config.rules_file());

  // The wire path first: it is the part most likely to be refused (privileges,
  // interface names), and nothing is serving clients yet.
  if (config.interfaces_size() > 0) {
    absl::StatusOr<std::unique_ptr<wire::WirePlane>> wire = wire::WirePlane::Create(config);
    if (!wire.ok()) return wire.status();
    d->wire_ = std::move(*wire);
  }

  // Same-host data path: the attach socket and the pipe broker.
  absl::StatusOr<std::unique_ptr<session::SessionManager>> sessions =
      session::SessionManager::Create(config, d->rules_.get());
  if (!sessions.ok()) return sessions.status();
  d->sessions_ = std::move(*sessions);
  // TCP sockets routed through the offloaded interface go to the engines.
  if (d->wire_ != nullptr) d->sessions_->SetWirePlane(d->wire_.get());
  if (absl::Status s = d->sessions_->Start(); !s.ok()) return s;
  d->data_plane_ = std::make_unique<SessionDataPlane>(d->sessions_.get(), d->wire_.get());

  absl::StatusOr<unsigned> mode = config::ParseSocketMode(config.control_socket_mode());
  if (!mode.ok()) return mode.status();
  control::DaemonInfo info;
  info.config = config;
  info.config_file = config_file;
  info.started = std::chrono::steady_clock::now();
  d->service_ = std::make_unique<control::ControlService>(std::move(info), d->rules_.get(),
                                                          d->data_plane_.get(), &d->peers_);
  absl::StatusOr<std::unique_ptr<control::ControlServer>> control = control::ControlServer::Start(
      config.run_dir() + "/control.sock", *mode, d->service_.get(), &d->peers_);
  if (!control.ok()) return control.status();
  d->control_ = std::move(*control);
  return d;
}

absl::Status Daemon::LockRunDir() {
  const std::string path = config_.run_dir() + "/offloadd.lock";
  lock_fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_fd_.valid()) return ErrnoStatus(errno, "cannot open lock file " + path);
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoStatus(errno, "flock " + path);
    char buf[32] = {};
    const ssize_t n = ::pread(lock_fd_.get(), buf, sizeof(buf) - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return absl::FailedPreconditionError(
        "another offloadd (pid " + pid + ") is already serving " + config_.run_dir() +
        "; stop it first (systemctl stop offloadd, or kill " + pid +
        "), or give this one another --run-dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_.get(), 0) != 0 ||
      ::pwrite(lock_fd_.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    spdlog::warn("cannot record pid in {}: {}", path, std::strerror(errno));
  }
  return absl::OkStatus();
}

absl::Status Daemon::Run() {
  spdlog::info("offloadd {} ready (pid {}, run dir {}, {} mode)", control::kVersion, ::getpid(),
               config_.run_dir(),
               config_.interfaces_size() == 0 ? "same-host" : "same-host+wire");
  while (true) {
    signalfd_siginfo si{};
    const ssize_t n = ::read(signal_fd_.get(), &si, sizeof(si));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read signalfd");
    }
    if (n != sizeof(si)) continue;
    if (si.ssi_signo == SIGHUP) {
      absl::StatusOr<size_t> count = rules_->Reload();
      if (count.ok()) {
        spdlog::info("SIGHUP: reloaded {} rules from {}", *count, rules_->rules_file());
      } else {
        spdlog::error("SIGHUP: rules not reloaded, keeping the current table: {}",
                      std::string(count.status().message()));
      }
      continue;
    }
    spdlog::info("{} received (from pid {}): shutting down", strsignal(static_cast<int>(si.ssi_signo)),
                 si.ssi_pid);
    break;
  }
  Shutdown();
  spdlog::info("offloadd stopped");
  return absl::OkStatus();
}

void Daemon::Shutdown() {
  // Control first (no rule changes after this), then the data path.
  if (control_ != nullptr) control_->Stop();
  if (sessions_ != nullptr) sessions_->Stop();
  // Engines stopped, flows unsteered, XDP program detached.
  if (wire_ != nullptr) wire_->Stop();
}

Daemon::~Daemon() {
  Shutdown();
  control_.reset();
  service_.reset();
  data_plane_.reset();
  sessions_.reset();  // before rules_: it subscribed to the store
  wire_.reset();
}

}  // namespace server
}  // namespace offload
