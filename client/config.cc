#include "client/config.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace offload {
namespace client {

namespace {

ClientConfig g_config;

const char* Env(const char* name) {
  char buf[96];
  snprintf(buf, sizeof(buf), "OFFLOAD_%s", name);
  const char* v = getenv(buf);
  if (v != nullptr) return v;
  snprintf(buf, sizeof(buf), "VMA_%s", name);
  return getenv(buf);
}

void EnvInt(const char* name, int64_t* out) {
  const char* v = Env(name);
  if (v == nullptr || *v == '\0') return;
  char* end = nullptr;
  const long long x = strtoll(v, &end, 10);
  if (end != nullptr && *end == '\0') *out = x;
}

void EnvStr(const char* name, char* out, size_t size) {
  const char* v = Env(name);
  if (v != nullptr) snprintf(out, size, "%s", v);
}

}  // namespace

const ClientConfig& Config() { return g_config; }

void LoadConfig() {
  ClientConfig c;
  int64_t v = c.trace_level;
  EnvInt("TRACELEVEL", &v);
  c.trace_level = static_cast<int>(v < 0 ? 0 : (v > 6 ? 6 : v));
  EnvStr("LOG_FILE", c.log_file, sizeof(c.log_file));
  v = 0;
  EnvInt("LOG_DETAILS", &v);
  c.log_details = static_cast<int>(v);
  v = 0;
  EnvInt("DEBUG", &v);
  c.debug = v != 0;
  EnvStr("APPLICATION_ID", c.application_id, sizeof(c.application_id));
  v = 1;
  EnvInt("OFFLOADED_SOCKETS", &v);
  c.offloaded_sockets = v != 0;
  EnvInt("RX_POLL", &c.rx_poll);
  EnvInt("SELECT_POLL", &c.select_poll_us);
  v = c.udp_os_ratio;
  EnvInt("RX_UDP_POLL_OS_RATIO", &v);
  c.udp_os_ratio = v < 1 ? 1 : static_cast<int>(v);
  v = c.select_os_ratio;
  EnvInt("SELECT_POLL_OS_RATIO", &v);
  c.select_os_ratio = v < 1 ? 1 : static_cast<int>(v);
  EnvInt("SPIN_YIELD_NS", &c.spin_yield_ns);
  EnvInt("RX_SLIP", &c.rx_slip);
  if (c.rx_slip < 0) c.rx_slip = 0;
  EnvStr("STATS_FILE", c.stats_file, sizeof(c.stats_file));
  EnvStr("RUN_DIR", c.run_dir, sizeof(c.run_dir));
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/comm",
                                          O_RDONLY | O_CLOEXEC));
  if (fd >= 0) {
    const ssize_t n = syscall(SYS_read, fd, c.program, sizeof(c.program) - 1);
    syscall(SYS_close, fd);
    if (n > 0) {
      c.program[n] = '\0';
      char* nl = strchr(c.program, '\n');
      if (nl != nullptr) *nl = '\0';
    }
  }
  g_config = c;
}

}  // namespace client
}  // namespace offload
