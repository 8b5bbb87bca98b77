// SessionManager: statistics, thread offload, log levels and rule
// publication (the control-plane side; the data-path broker is in
// session_manager.cc).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/session/session_internal.h"
#include "daemon/session/session_manager.h"
#include "daemon/session/slot_reader.h"

namespace offload {
namespace session {

namespace {

bool LevelFromName(const std::string& name, shm::LogLevel* out) {
  static const struct {
    const char* name;
    shm::LogLevel level;
  } kLevels[] = {
      {"trace", shm::LogLevel::kFuncAll}, {"debug", shm::LogLevel::kDebug},
      {"info", shm::LogLevel::kInfo},     {"warn", shm::LogLevel::kWarn},
      {"error", shm::LogLevel::kError},   {"critical", shm::LogLevel::kPanic},
      {"off", shm::LogLevel::kPanic},
  };
  for (const auto& l : kLevels) {
    if (name == l.name) {
      *out = l.level;
      return true;
    }
  }
  return false;
}

}  // namespace

void SessionManager::FillSession(const Session& s, offload::v1::Session* out) {
  out->set_pid(s.pid);
  out->set_uid(s.uid);
  out->set_gid(s.gid);
  out->set_program(s.program);
  out->set_application_id(s.app_id);
  out->set_attached_unix_ms(s.attached_unix_ms);
  out->set_arena_bytes(s.arena.size());
  out->set_log_level(s.log_level);
}

std::vector<offload::v1::Session> SessionManager::ListSessions() const {
  absl::MutexLock l(&mu_);
  std::vector<offload::v1::Session> out;
  for (const auto& [fd, s] : sessions_) {
    if (!s->hello_done) continue;
    offload::v1::Session row;
    FillSession(*s, &row);
    uint32_t total = 0, offloaded = 0;
    ForEachValidSlot(s->arena.get(), max_sockets_, [&](const SlotCopy& c) {
      ++total;
      offloaded += c.path != shm::SocketPath::kKernel;
    });
    row.set_num_sockets(total);
    row.set_num_offloaded(offloaded);
    out.push_back(std::move(row));
  }
  return out;
}

absl::StatusOr<std::vector<offload::v1::ProcessStats>> SessionManager::GetStats(
    uint32_t pid, bool sockets) const {
  absl::MutexLock l(&mu_);
  // Sockets held by several processes: every holder (pid, fd, counters),
  // by inode, so each is listed once, under its lowest pid.
  struct Holder {
    uint32_t pid;
    int32_t fd;
    SlotCopy copy;
  };
  std::map<uint64_t, std::vector<Holder>> shared;
  if (sockets) {
    for (const auto& [fd, s] : sessions_) {
      if (!s->hello_done) continue;
      ForEachValidSlot(s->arena.get(), max_sockets_, [&](const SlotCopy& c) {
        if (c.shared && c.inode != 0) shared[c.inode].push_back({s->pid, c.fd, c});
      });
    }
  }
  std::vector<offload::v1::ProcessStats> out;
  for (const auto& [fd, s] : sessions_) {
    if (!s->hello_done || (pid != 0 && s->pid != pid)) continue;
    offload::v1::ProcessStats ps;
    FillSession(*s, ps.mutable_session());
    uint32_t total = 0, offloaded = 0;
    ForEachValidSlot(s->arena.get(), max_sockets_, [&](const SlotCopy& c) {
      ++total;
      offloaded += c.path != shm::SocketPath::kKernel;
      if (!sockets) return;
      auto it = c.shared ? shared.find(c.inode) : shared.end();
      if (it == shared.end()) {
        SlotToProto(c, ps.add_sockets());
        return;
      }
      uint32_t lowest = UINT32_MAX;
      for (const Holder& h : it->second) lowest = std::min(lowest, h.pid);
      // Listed under the lowest pid, or under this one when it is the
      // process asked about.
      if (s->pid != lowest && pid == 0) return;
      SlotCopy sum = c;
      for (const Holder& h : it->second) {
        if (!(h.pid == s->pid && h.fd == c.fd)) AddCounters(h.copy, &sum);
      }
      offload::v1::SocketStats* row = ps.add_sockets();
      SlotToProto(sum, row);
      for (const Holder& h : it->second) row->add_holders(absl::StrCat(h.pid, ":", h.fd));
    });
    ps.mutable_session()->set_num_sockets(total);
    ps.mutable_session()->set_num_offloaded(offloaded);
    out.push_back(std::move(ps));
  }
  if (pid != 0 && out.empty()) {
    return absl::NotFoundError(absl::StrCat("pid ", pid,
                                            " is not attached to offloadd; `offloadctl "
                                            "sessions` lists attached processes"));
  }
  return out;
}

absl::Status SessionManager::SetThreadOffload(uint32_t pid, uint32_t tid, bool offload) {
  absl::MutexLock l(&mu_);
  Session* s = FindByPid(pid);
  if (s == nullptr) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, " is not attached to offloadd"));
  }
  struct stat st;
  if (stat(absl::StrCat("/proc/", pid, "/task/", tid).c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("thread ", tid, " does not exist in pid ", pid,
                                            " (see /proc/", pid, "/task)"));
  }
  if (!s->threads.count(tid) && s->threads.size() >= shm::kMaxThreadEntries) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pid ", pid, " already has ", shm::kMaxThreadEntries, " thread-offload entries"));
  }
  s->threads[tid] = offload;
  shm::ThreadTable& t = s->header()->threads;
  // Seqlock write (abi.h SeqLock): odd while entries change.
  t.lock.seq.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  uint32_t n = 0;
  for (const auto& [id, on] : s->threads) t.entries[n++] = shm::ThreadEntry{id, on ? 1u : 0u};
  t.count = n;
  // Pairs with the client's acquire fence + re-read of seq.
  t.lock.seq.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<offload::v1::GetThreadOffloadResponse> SessionManager::GetThreadOffload(
    uint32_t pid, uint32_t tid) const {
  absl::MutexLock l(&mu_);
  Session* s = FindByPid(pid);
  if (s == nullptr) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, " is not attached to offloadd"));
  }
  offload::v1::GetThreadOffloadResponse r;
  auto it = s->threads.find(tid);
  r.set_explicitly_set(it != s->threads.end());
  r.set_offload(it == s->threads.end() ? true : it->second);
  return r;
}

absl::Status SessionManager::SetProcessLogLevel(uint32_t pid, const std::string& level) {
  shm::LogLevel lv;
  if (!LevelFromName(level, &lv)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", level, "'; use trace, debug, info, warn, error, critical or off"));
  }
  absl::MutexLock l(&mu_);
  Session* s = FindByPid(pid);
  if (s == nullptr) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, " is not attached to offloadd"));
  }
  s->log_level = level;
  // Relaxed: the client polls it when it logs; no data depends on it.
  s->header()->log_level.store(static_cast<uint32_t>(lv), std::memory_order_relaxed);
  return absl::OkStatus();
}

void SessionManager::PublishRules(const std::vector<rules::Rule>& rules, uint64_t version) {
  absl::MutexLock l(&mu_);
  published_rules_ = rules;
  if (published_rules_.size() > shm::kMaxPublishedRules) {
    published_rules_.resize(shm::kMaxPublishedRules);
  }
  rules_version_ = version;
  for (auto& [fd, s] : sessions_) {
    if (s->hello_done) WriteRules(s.get());
  }
}

void SessionManager::WriteRules(Session* s) {
  shm::PublishedRules& p = s->header()->rules;
  // Seqlock write (abi.h SeqLock).
  p.lock.seq.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(static_cast<void*>(p.rules), published_rules_.data(),
              published_rules_.size() * sizeof(rules::Rule));
  p.count = static_cast<uint32_t>(published_rules_.size());
  p.version = rules_version_;
  // Pairs with the client's acquire fence + re-read of seq.
  p.lock.seq.fetch_add(1, std::memory_order_release);
}

}  // namespace session
}  // namespace offload
