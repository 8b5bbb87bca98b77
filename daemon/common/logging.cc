#include "daemon/common/logging.h"

#include <unistd.h>

#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace offload {

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn" || name == "warning") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  return absl::InvalidArgumentError("unknown log level '" + std::string(name) +
      "'; use trace, debug, info, warn, error, critical or off");
}

std::string LogLevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

absl::StatusOr<std::string> ExpandPidPattern(std::string_view pattern, int pid) {
  std::string out;
  bool seen = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      out += pattern[i];
      continue;
    }
    if (i + 1 < pattern.size() && pattern[i + 1] == 'd' && !seen) {
      out += std::to_string(pid);
      seen = true;
      ++i;
      continue;
    }
    return absl::InvalidArgumentError("log file '" + std::string(pattern) +
        "': only a single %d (replaced by the pid) is allowed");
  }
  return out;
}

absl::StatusOr<std::string> InitLogging(std::string_view level, std::string_view file) {
  absl::StatusOr<spdlog::level::level_enum> lvl = ParseLogLevel(level.empty() ? "info" : level);
  if (!lvl.ok()) return lvl.status();
  std::shared_ptr<spdlog::logger> logger;
  std::string path;
  if (file.empty()) {
    logger = spdlog::stderr_logger_mt("offloadd");
  } else {
    absl::StatusOr<std::string> expanded = ExpandPidPattern(file, getpid());
    if (!expanded.ok()) return expanded.status();
    path = *expanded;
    try {  // spdlog reports file errors by exception; contain them here.
      logger = spdlog::basic_logger_mt("offloadd", path);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::InvalidArgumentError(
          "cannot open log file '" + path + "': " + e.what());
    }
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  logger->set_level(*lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return path;
}

}  // namespace offload
