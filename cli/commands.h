// offloadctl's commands: parse the command line, call the daemon, print.

#ifndef OFFLOAD_CLI_COMMANDS_H_
#define OFFLOAD_CLI_COMMANDS_H_

#include <cstdio>
#include <string>
#include <vector>

namespace offload {
namespace cli {

// Runs offloadctl with `args` (argv without the program name), printing
// results to `out` and diagnostics to `err`. Returns the process exit code
// (see ExitCode in client.h).
int RunOffloadctl(const std::vector<std::string>& args, FILE* out, FILE* err);

}  // namespace cli
}  // namespace offload

#endif  // OFFLOAD_CLI_COMMANDS_H_
