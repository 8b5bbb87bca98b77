// offloadctl: command-line client of offloadd's control service.

#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return offload::cli::RunOffloadctl(args, stdout, stderr);
}
