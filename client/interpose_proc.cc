// The exported process-creation entry points: exec, posix_spawn, system
// and popen. An offloaded socket that survives into the new program (no
// FD_CLOEXEC) is held by it from then on: offloadd is told first
// (sharing.cc), and the new program adopts it if it runs with the library.
// Every function is noexcept and otherwise passes straight to libc.

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include <vector>

#include "client/libc.h"
#include "client/ops.h"

using offload::client::Real;
namespace oc = offload::client;

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().execve(path, argv, envp);
}

EXPORT int execv(const char* path, char* const argv[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().execv(path, argv);
}

EXPORT int execvp(const char* file, char* const argv[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().execvp(file, argv);
}

EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().execvpe(file, argv, envp);
}

EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().fexecve(fd, argv, envp);
}

namespace {
// The arguments of execl/execle/execlp up to the terminating null pointer;
// `envp` (execle) follows it.
std::vector<char*> ArgList(const char* arg0, va_list ap, char*** envp) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(arg0));
  while (argv.back() != nullptr) argv.push_back(va_arg(ap, char*));
  if (envp != nullptr) *envp = va_arg(ap, char**);
  return argv;
}
}  // namespace

EXPORT int execl(const char* path, const char* arg, ...) noexcept {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> argv = ArgList(arg, ap, nullptr);
  va_end(ap);
  return execv(path, argv.data());
}

EXPORT int execlp(const char* file, const char* arg, ...) noexcept {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> argv = ArgList(arg, ap, nullptr);
  va_end(ap);
  return execvp(file, argv.data());
}

EXPORT int execle(const char* path, const char* arg, ...) noexcept {
  va_list ap;
  va_start(ap, arg);
  char** envp = nullptr;
  std::vector<char*> argv = ArgList(arg, ap, &envp);
  va_end(ap);
  return execve(path, argv.data(), envp);
}

EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                       const posix_spawnattr_t* attr, char* const argv[],
                       char* const envp[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().posix_spawn(pid, path, fa, attr, argv, envp);
}

EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                        const posix_spawnattr_t* attr, char* const argv[],
                        char* const envp[]) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().posix_spawnp(pid, file, fa, attr, argv, envp);
}

EXPORT int system(const char* command) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().system(command);
}

EXPORT FILE* popen(const char* command, const char* type) noexcept {
  oc::ShareSurvivorsBeforeExec();
  return Real().popen(command, type);
}
