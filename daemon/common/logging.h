// Daemon logging setup (spdlog): one logger, to stderr or to a file.

#ifndef OFFLOAD_DAEMON_COMMON_LOGGING_H_
#define OFFLOAD_DAEMON_COMMON_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace offload {

// Parses "trace", "debug", "info", "warn"/"warning", "error", "critical",
// "off". INVALID_ARGUMENT names the accepted values.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view name);

// Canonical name of a level ("info", ...).
std::string LogLevelName(spdlog::level::level_enum level);

// Replaces a single "%d" in `pattern` with `pid`. INVALID_ARGUMENT if the
// pattern has more than one "%d" or any other '%' conversion.
absl::StatusOr<std::string> ExpandPidPattern(std::string_view pattern, int pid);

// Installs the default logger: stderr when `file` is empty, else the file
// (appended; "%d" expanded). Returns the path actually used ("" = stderr).
absl::StatusOr<std::string> InitLogging(std::string_view level, std::string_view file);

}  // namespace offload

#endif  // OFFLOAD_DAEMON_COMMON_LOGGING_H_
