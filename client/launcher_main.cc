// offload: runs a command with liboffload.so preloaded.
//
//   offload [--debug] [--app-id ID] [--no-offload] [--run-dir DIR] -- CMD ARGS...
//
// Sets LD_PRELOAD (keeping what was there) and the OFFLOAD_* environment,
// then execs CMD. The library is looked up next to this binary (installed
// layout and the Bazel runfiles tree), then in the usual library
// directories.

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

constexpr char kUsage[] =
    "usage: offload [options] [--] COMMAND [ARGS...]\n"
    "\n"
    "Runs COMMAND with its TCP and UDP sockets accelerated by offloadd. No\n"
    "recompilation: liboffload.so is preloaded and takes over the socket calls.\n"
    "Sockets between accelerated processes on this host become shared-memory\n"
    "pipes; everything else (kernel peers, other hosts, `use os` rules) keeps\n"
    "working through the kernel. Without a running offloadd the command runs\n"
    "exactly as without this launcher.\n"
    "\n"
    "options:\n"
    "  --debug          print 'offload: enabled bypass on fd N' for every\n"
    "                   accelerated socket (OFFLOAD_DEBUG=1)\n"
    "  --app-id ID      application id matched by 'application-id' sections of\n"
    "                   the rules (OFFLOAD_APPLICATION_ID)\n"
    "  --no-offload     start with offload off: only threads that call\n"
    "                   thread_offload(1, ...) are accelerated\n"
    "                   (OFFLOAD_OFFLOADED_SOCKETS=0)\n"
    "  --run-dir DIR    offloadd's run directory (default /run/offloadd;\n"
    "                   OFFLOAD_RUN_DIR)\n"
    "  --trace LEVEL    log level 0..6 to stderr (OFFLOAD_TRACELEVEL)\n"
    "  --help           this text\n"
    "\n"
    "examples:\n"
    "  offload -- sockperf server --tcp -p 11111\n"
    "  offload --debug -- nc -l 1234\n"
    "  offload --app-id web -- redis-server --port 6380\n"
    "\n"
    "more knobs (environment): OFFLOAD_RX_POLL, OFFLOAD_SELECT_POLL, OFFLOAD_RX_SLIP,\n"
    "OFFLOAD_LOG_FILE (%d = pid), OFFLOAD_STATS_FILE; VMA_* names also work.\n"
    "See what is accelerated: offloadctl stats -p PID\n";

bool Exists(const std::string& p) { return access(p.c_str(), R_OK) == 0; }

std::string FindLibrary(const char* argv0) {
  if (const char* env = getenv("OFFLOAD_LIBRARY")) return env;
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::vector<std::string> dirs;
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    dirs.push_back(dir);
    dirs.push_back(dir + "/../lib");
    dirs.push_back(dir + "/../lib/offload");
    dirs.push_back(std::string(self) + ".runfiles/__main__/client");
  }
  if (argv0 != nullptr && strchr(argv0, '/') != nullptr) {
    std::string a(argv0);
    dirs.push_back(a + ".runfiles/__main__/client");
  }
  dirs.push_back("/usr/lib/offload");
  dirs.push_back("/usr/local/lib");
  dirs.push_back("/usr/lib");
  for (const auto& d : dirs) {
    const std::string p = d + "/liboffload.so";
    if (Exists(p)) {
      char real[PATH_MAX];
      if (realpath(p.c_str(), real) != nullptr) return real;
      return p;
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* env) {
      if (i + 1 >= argc) {
        fprintf(stderr, "offload: %s needs a value\n\n%s", a.c_str(), kUsage);
        exit(2);
      }
      setenv(env, argv[++i], 1);
    };
    if (a == "--") {
      ++i;
      break;
    } else if (a == "--help" || a == "-h") {
      fputs(kUsage, stdout);
      return 0;
    } else if (a == "--debug") {
      setenv("OFFLOAD_DEBUG", "1", 1);
    } else if (a == "--no-offload") {
      setenv("OFFLOAD_OFFLOADED_SOCKETS", "0", 1);
    } else if (a == "--app-id") {
      value("OFFLOAD_APPLICATION_ID");
    } else if (a == "--run-dir") {
      value("OFFLOAD_RUN_DIR");
    } else if (a == "--trace") {
      value("OFFLOAD_TRACELEVEL");
    } else if (a.size() > 1 && a[0] == '-') {
      fprintf(stderr, "offload: unknown option %s\n\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      break;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "offload: no command given\n\n%s", kUsage);
    return 2;
  }
  const std::string lib = FindLibrary(argv[0]);
  if (lib.empty()) {
    fprintf(stderr,
            "offload: cannot find liboffload.so next to %s or in /usr/lib/offload; set "
            "OFFLOAD_LIBRARY=/path/to/liboffload.so\n",
            argv[0]);
    return 2;
  }
  std::string preload = lib;
  if (const char* old = getenv("LD_PRELOAD"); old != nullptr && *old != '\0') {
    preload += ":";
    preload += old;
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  fprintf(stderr, "offload: cannot run %s: %s\n", argv[i], strerror(errno));
  return 127;
}
