// Human-readable rendering of control-plane replies (tables like vma_stats).

#ifndef OFFLOAD_CLI_FORMAT_H_
#define OFFLOAD_CLI_FORMAT_H_

#include <string>

#include "offload/v1/control.pb.h"

namespace offload {
namespace cli {

std::string FormatStatus(const v1::GetStatusResponse& status);
std::string FormatRules(const v1::ListRulesResponse& rules);
std::string FormatSessions(const v1::ListSessionsResponse& sessions);
// `verbose` adds the per-socket rows (like vma_stats -v 1 ... -v 3).
std::string FormatStats(const v1::GetStatsResponse& stats, bool verbose);
std::string FallbackReasonText(v1::FallbackReason reason);

}  // namespace cli
}  // namespace offload

#endif  // OFFLOAD_CLI_FORMAT_H_
