// offloadctl's help texts: the overview and one per command (commands.cc
// prints them for --help, `help COMMAND` and usage errors).
#ifndef OFFLOAD_CLI_HELP_TEXT_H_
#define OFFLOAD_CLI_HELP_TEXT_H_

namespace offload {
namespace cli {

inline constexpr char kMainUsage[] = R"(Usage: offloadctl [--socket PATH] [--json] COMMAND [ARGS...]

Controls a running offloadd: offload rules, per-thread offload, statistics.

Commands:
  status                           version, uptime, configuration, interfaces
  rules                            the offload rules in match order, with ids
  add-rule "RULE" [--position N] [--persist]
                                   add a rule (on top unless --position)
  del-rule ID [--persist]          delete a rule by id
  reload                           re-read the rules file
  sessions                         processes attached to offloadd
  stats [-p PID] [-v]              socket and engine counters (vma_stats-like)
  thread-offload PID TID [on|off]  show or set offload for one thread
  log-level LEVEL [-p PID]         set the daemon's (or a process's) log level
  help [COMMAND]                   help for one command

Options:
  --socket PATH   control socket (default /run/offloadd/control.sock,
                  or $OFFLOAD_RUN_DIR/control.sock)
  --json          print replies as JSON
  -h, --help      this help

Exit codes: 0 ok, 1 rejected by the daemon, 2 usage error, 3 daemon unreachable.

Examples:
  offloadctl add-rule "use os tcp_server *:5001"     # keep port 5001 on the kernel
  offloadctl add-rule "use offload tcp_client 10.0.0.0/8:*" --position 2 --persist
  offloadctl stats -p 1234 -v
)";

inline constexpr char kStatusUsage[] = R"(Usage: offloadctl status

Shows the daemon's version, pid, uptime, mode (same-host or wire), effective
configuration, rule-table version, attached processes and interfaces.
)";
inline constexpr char kRulesUsage[] = R"(Usage: offloadctl rules

Lists the offload rules in match order (first match wins; a socket no rule
matches is offloaded). ID is what del-rule takes; ORIGIN is file:line or
"runtime" for rules added with add-rule.
)";
inline constexpr char kAddRuleUsage[] = R"(Usage: offloadctl add-rule "RULE" [--position N] [--persist]
                             [--app PROGRAM] [--app-id ID]

Adds one rule (libvma.conf grammar). Sockets that running processes create
from now on follow it. The rule goes on top (VMA add_conf_rule semantics)
unless --position N (1-based) is given.

  RULE           use <offload|vma|os> <role> <address>
                   roles: tcp_server <laddr[/prefix]|*>:<port[-port]|*>
                          tcp_client <raddr>:<rport>[:<laddr>:<lport>]
                          udp_sender <raddr>:<rport>
                          udp_receiver <laddr>:<lport>
                          udp_connect <raddr>:<rport>[:<laddr>:<lport>]
  --position N   place the rule at position N (1 = top)
  --persist      also rewrite the rules file so a restart keeps the rule
  --app PROGRAM  only for programs matching this glob (application-id)
  --app-id ID    only for processes with OFFLOAD_APPLICATION_ID=ID

Examples:
  offloadctl add-rule "use os tcp_server *:5001"
  offloadctl add-rule "use vma tcp_client 192.168.1.0/24:*:*:*" --persist
)";
inline constexpr char kDelRuleUsage[] = R"(Usage: offloadctl del-rule ID [--persist]

Deletes the rule with id ID (see `offloadctl rules`). --persist also rewrites
the rules file.
)";
inline constexpr char kReloadUsage[] = R"(Usage: offloadctl reload

Re-reads the rules file (like SIGHUP). Rules added at run time without
--persist are dropped. On a parse error the current rules stay.
)";
inline constexpr char kSessionsUsage[] = R"(Usage: offloadctl sessions

Lists the processes attached to offloadd (pid, user, program, sockets).
)";
inline constexpr char kStatsUsage[] = R"(Usage: offloadctl stats [-p PID] [-v]

Shows counters: per process, and with -v per socket (bytes, messages, EAGAIN,
errors, poll hits, receive queue, drops, and for sockets served by the kernel
the reason); engine and NIC counters when the wire path runs.

  -p, --pid PID   only this process
  -v, --verbose   per-socket rows
)";
inline constexpr char kThreadUsage[] = R"(Usage: offloadctl thread-offload PID TID [on|off]

Shows (without on|off) or sets whether sockets that thread TID of process PID
creates from now on are offloaded (VMA thread_offload semantics). Threads
follow OFFLOAD_OFFLOADED_SOCKETS (default on) until set.
)";
inline constexpr char kLogLevelUsage[] = R"(Usage: offloadctl log-level LEVEL [-p PID]

Sets the log level of the daemon, or with -p of one attached process.
LEVEL: trace, debug, info, warn, error, critical, off.
)";

}  // namespace cli
}  // namespace offload

#endif  // OFFLOAD_CLI_HELP_TEXT_H_
