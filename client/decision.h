// The offload decision for a socket: thread toggles, process-local rules
// (extra API add_conf_rule), then the rule table the daemon publishes in the
// arena (rules::Match, first match wins, default offload).
//
// Thread safety: all functions are thread-safe.

#ifndef OFFLOAD_CLIENT_DECISION_H_
#define OFFLOAD_CLIENT_DECISION_H_

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>

#include "client/socket.h"
#include "rules/rules.h"

namespace offload {
namespace client {

// Offload state of the calling thread for new sockets: the extra API's
// thread_offload(), else the daemon's table (offloadctl thread-offload),
// else OFFLOAD_OFFLOADED_SOCKETS.
bool ThreadOffloadEnabled();
// Extra API: sets the state of pthread `tid` in this process.
void SetLocalThreadOffload(pthread_t tid, bool offload);

// Decides for `s` in `role`. Returns true to offload; otherwise sets
// s->fallback / s->rule_id. Attaches to the daemon if needed.
// `local`/`remote` may be null, either family.
bool Decide(Socket* s, rules::Role role, const InetName* local, const InetName* remote);

// A setsockopt() the offload paths cannot honour keeps a socket that is not
// decided yet on the kernel. Returns true for such an option and writes what
// it was into `detail` (shown by offloadctl stats -v): socket options the
// engine does not implement (SO_BINDTODEVICE, IP_TRANSPARENT, TCP_MD5SIG...)
// and a TCP_CONGESTION other than "cubic", the engine's congestion control
// (an application that asks for BBR gets it from the kernel).
bool OptionKeepsKernel(int level, int name, const void* val, socklen_t len, char* detail,
                       size_t detail_size);

// Extra API add_conf_rule: parses one `use ...` line into the process-local
// table (checked before the published one). Returns 0 or -1.
int AddLocalRule(const char* line);

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_DECISION_H_
