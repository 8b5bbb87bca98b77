#include "client/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client/attach.h"
#include "client/config.h"

namespace offload {
namespace client {

namespace {

int g_log_fd = -1;
bool g_explicit_level = false;

void WriteLine(int fd, const char* buf, size_t n) { (void)syscall(SYS_write, fd, buf, n); }

void VLog(int fd, const char* fmt, va_list ap) {
  char buf[512];
  int n = 0;
  if (Config().log_details) {
    n = snprintf(buf, sizeof(buf), "offload[%d:%ld]: ", getpid(), syscall(SYS_gettid));
  } else {
    n = snprintf(buf, sizeof(buf), "offload: ");
  }
  const int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
  n = m < 0 ? n : (n + m > static_cast<int>(sizeof(buf)) - 2 ? sizeof(buf) - 2 : n + m);
  buf[n++] = '\n';
  WriteLine(fd, buf, n);
}

}  // namespace

void InitLog() {
  g_explicit_level = getenv("OFFLOAD_TRACELEVEL") != nullptr || getenv("VMA_TRACELEVEL") != nullptr;
  const char* pattern = Config().log_file;
  if (pattern[0] == '\0') return;
  char path[300];
  const char* pct = strstr(pattern, "%d");
  if (pct != nullptr && strstr(pct + 2, "%") == nullptr) {
    snprintf(path, sizeof(path), "%.*s%d%s", static_cast<int>(pct - pattern), pattern, getpid(),
             pct + 2);
  } else {
    snprintf(path, sizeof(path), "%s", pattern);
  }
  g_log_fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path,
                                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
}

int LogLevel() {
  const int daemon_level = DaemonLogLevel();
  return daemon_level >= 0 ? daemon_level : Config().trace_level;
}

void Log(int level, const char* fmt, ...) {
  if (level > LogLevel()) return;
  int fd = g_log_fd;
  if (fd < 0) {
    if (!g_explicit_level) return;
    fd = 2;
  }
  va_list ap;
  va_start(ap, fmt);
  VLog(fd, fmt, ap);
  va_end(ap);
}

void DebugLine(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VLog(2, fmt, ap);
  va_end(ap);
}

}  // namespace client
}  // namespace offload
