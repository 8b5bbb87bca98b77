#include "daemon/rules/rule_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "daemon/common/errors.h"
#include "daemon/common/unique_fd.h"

namespace offload {
namespace rules {

absl::StatusOr<std::unique_ptr<RuleStore>> RuleStore::Create(std::string rules_file) {
  std::unique_ptr<RuleStore> store(new RuleStore(std::move(rules_file)));
  std::shared_ptr<RuleSnapshot> snapshot;
  {
    absl::MutexLock lock(&store->mu_);
    absl::Status s = store->LoadFile(&snapshot);
    if (!s.ok()) return s;
    store->current_ = snapshot;
  }
  return store;
}

std::shared_ptr<const RuleSnapshot> RuleStore::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status RuleStore::LoadFile(std::shared_ptr<RuleSnapshot>* out) {
  auto snapshot = std::make_shared<RuleSnapshot>();
  snapshot->version = next_version_++;
  if (!rules_file_.empty()) {
    std::ifstream in(rules_file_);
    if (in) {
      std::stringstream buffer;
      buffer << in.rdbuf();
      ParseError error;
      std::vector<Rule> parsed;
      if (!ParseRules(buffer.str(), &parsed, &error)) {
        return absl::InvalidArgumentError(rules_file_ + ": " + error.ToString());
      }
      if (parsed.size() > kMaxRules) {
        return absl::ResourceExhaustedError(rules_file_ + ": " + std::to_string(parsed.size()) +
                                            " rules; at most " + std::to_string(kMaxRules));
      }
      for (Rule& r : parsed) {
        r.id = next_id_++;
        snapshot->origins.push_back(rules_file_ + ":" + std::to_string(r.line));
        snapshot->rules.push_back(r);
      }
    } else if (errno != ENOENT) {
      return ErrnoStatus(errno, "cannot read rules file " + rules_file_);
    }
  }
  *out = std::move(snapshot);
  return absl::OkStatus();
}

absl::Status RuleStore::WriteFile(const RuleSnapshot& snapshot) const {
  if (rules_file_.empty()) {
    return absl::FailedPreconditionError(
        "no rules file is configured (set rules_file in offloadd.conf or pass --rules); "
        "the rule was applied but not persisted");
  }
  const std::string header =
      "# offload rules (libvma.conf grammar), rewritten by offloadd when a rule was\n"
      "# added or deleted with --persist. First match wins; the default is offload.\n"
      "#   use <offload|vma|os> <tcp_server|tcp_client|udp_sender|udp_receiver|udp_connect> "
      "<addr[/prefix]|*>:<port[-port]|*>[...]\n";
  const std::string text = FormatRules(snapshot.rules, header);
  const std::string tmp = rules_file_ + ".tmp." + std::to_string(getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(errno, "cannot write " + tmp);
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoStatus(err, "cannot write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot sync " + tmp);
  }
  fd.reset();
  if (::rename(tmp.c_str(), rules_file_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot replace " + rules_file_);
  }
  return absl::OkStatus();
}

void RuleStore::Publish(std::shared_ptr<RuleSnapshot> next) {
  std::vector<Listener> listeners;
  {
    absl::MutexLock lock(&mu_);
    current_ = next;
    listeners = listeners_;
  }
  for (const Listener& l : listeners) l(next);
}

absl::StatusOr<Rule> RuleStore::Add(const std::string& line, uint32_t position, bool persist,
                                    const std::string& program, const std::string& app_id) {
  Rule rule;
  ParseError error;
  if (!ParseRuleLine(line, 1, &rule, &error)) {
    return absl::InvalidArgumentError("rule '" + line + "': column " +
                                      std::to_string(error.column) + ": " +
                                      (error.token.empty() ? "unexpected end of rule"
                                                           : "unexpected '" + error.token + "'") +
                                      ", expected " + error.expected);
  }
  rule.line = 0;
  for (const auto& [value, dst, what] :
       {std::tuple<const std::string&, char*, const char*>{program, rule.program, "program"},
        std::tuple<const std::string&, char*, const char*>{app_id, rule.app_id, "application id"}}) {
    if (value.size() >= kMaxGlobLen) {
      return absl::InvalidArgumentError(std::string(what) + " '" + value +
                                        "' is longer than 63 characters");
    }
    if (!value.empty()) {
      std::memcpy(dst, value.data(), value.size());
      dst[value.size()] = '\0';
    }
  }
  absl::MutexLock write_lock(&write_mu_);
  auto next = std::make_shared<RuleSnapshot>();
  {
    absl::MutexLock lock(&mu_);
    *next = *current_;
    if (next->rules.size() >= kMaxRules) {
      return absl::ResourceExhaustedError("the rule table is full (" +
                                          std::to_string(kMaxRules) +
                                          " rules); delete some with offloadctl del-rule");
    }
    if (position > next->rules.size() + 1) {
      return absl::InvalidArgumentError(
          "position " + std::to_string(position) + " is past the end: the table has " +
          std::to_string(next->rules.size()) + " rules, so use 1.." +
          std::to_string(next->rules.size() + 1) + " (or 0 for the top)");
    }
    rule.id = next_id_++;
    next->version = next_version_++;
  }
  const size_t index = position == 0 ? 0 : position - 1;
  next->rules.insert(next->rules.begin() + static_cast<std::ptrdiff_t>(index), rule);
  next->origins.insert(next->origins.begin() + static_cast<std::ptrdiff_t>(index), "runtime");
  Publish(next);
  if (persist) {
    if (absl::Status s = WriteFile(*next); !s.ok()) return s;
  }
  return rule;
}

absl::Status RuleStore::Delete(uint32_t id, bool persist) {
  absl::MutexLock write_lock(&write_mu_);
  auto next = std::make_shared<RuleSnapshot>();
  {
    absl::MutexLock lock(&mu_);
    *next = *current_;
    size_t i = 0;
    while (i < next->rules.size() && next->rules[i].id != id) ++i;
    if (i == next->rules.size()) {
      return absl::NotFoundError("no rule with id " + std::to_string(id) +
                                 "; `offloadctl rules` lists the ids");
    }
    next->rules.erase(next->rules.begin() + static_cast<std::ptrdiff_t>(i));
    next->origins.erase(next->origins.begin() + static_cast<std::ptrdiff_t>(i));
    next->version = next_version_++;
  }
  Publish(next);
  if (persist) return WriteFile(*next);
  return absl::OkStatus();
}

absl::StatusOr<size_t> RuleStore::Reload() {
  absl::MutexLock write_lock(&write_mu_);
  std::shared_ptr<RuleSnapshot> next;
  {
    absl::MutexLock lock(&mu_);
    if (rules_file_.empty()) {
      return absl::FailedPreconditionError("no rules file is configured; nothing to reload");
    }
    if (::access(rules_file_.c_str(), R_OK) != 0) {
      return ErrnoStatus(errno, "cannot reload rules from " + rules_file_);
    }
    if (absl::Status s = LoadFile(&next); !s.ok()) return s;
  }
  const size_t n = next->rules.size();
  Publish(next);
  return n;
}

void RuleStore::Subscribe(Listener listener) {
  absl::MutexLock lock(&mu_);
  listeners_.push_back(std::move(listener));
}

}  // namespace rules
}  // namespace offload
