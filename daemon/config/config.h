// Loading, defaulting and validating the daemon's configuration
// (`offload.v1.DaemonConfig` in protobuf text format).

#ifndef OFFLOAD_DAEMON_CONFIG_CONFIG_H_
#define OFFLOAD_DAEMON_CONFIG_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "offload/v1/config.pb.h"

namespace offload {
namespace config {

inline constexpr char kDefaultConfigFile[] = "/etc/offloadd/offloadd.conf";
inline constexpr char kDefaultRunDir[] = "/run/offloadd";
inline constexpr char kDefaultRulesFile[] = "/etc/offloadd/rules.conf";

// Parses `text` (protobuf text format). Errors are INVALID_ARGUMENT with
// "<source>:<line>:<column>: <problem>"; unknown fields are errors.
absl::StatusOr<v1::DaemonConfig> ParseConfig(const std::string& text, const std::string& source);

// Reads and parses `path`. NOT_FOUND if the file does not exist.
absl::StatusOr<v1::DaemonConfig> LoadConfigFile(const std::string& path);

// Fills every unset (zero/empty) field with its documented default.
void ApplyDefaults(v1::DaemonConfig* config);

// Checks ranges and consistency of a defaulted config. INVALID_ARGUMENT names
// the field, the bad value and the accepted range, e.g.
// "num_cores: 0 is out of range; use 1..64".
absl::Status ValidateConfig(const v1::DaemonConfig& config);

// Parses control_socket_mode ("0660") into a mode_t.
absl::StatusOr<unsigned> ParseSocketMode(const std::string& text);

}  // namespace config
}  // namespace offload

#endif  // OFFLOAD_DAEMON_CONFIG_CONFIG_H_
