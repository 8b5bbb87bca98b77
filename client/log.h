// Client logging: to OFFLOAD_LOG_FILE (a single %d becomes the pid) or to
// stderr. Never on a data fast path; never allocates.
//
// Levels as OFFLOAD_TRACELEVEL: 0 panic, 1 error, 2 warn, 3 info, 4 debug,
// 5 func, 6 func_all.
//
// Thread safety: any thread; one write(2) per line.

#ifndef OFFLOAD_CLIENT_LOG_H_
#define OFFLOAD_CLIENT_LOG_H_

namespace offload {
namespace client {

// Opens the log file if configured. Called once after LoadConfig().
void InitLog();

// The effective level: the environment's, or the daemon's override
// (offloadctl log-level -p PID) once attached.
int LogLevel();

// Logs when `level` <= LogLevel(). Without OFFLOAD_LOG_FILE, lines go to
// stderr only if OFFLOAD_TRACELEVEL was set explicitly: the application's
// stderr stays clean by default.
void Log(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Unconditional line to stderr (OFFLOAD_DEBUG output).
void DebugLine(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_LOG_H_
