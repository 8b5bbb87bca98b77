// RuleStore: the daemon's authoritative, versioned rule table.
//
// Rules come from the rules file (loaded at start, on SIGHUP and on
// `offloadctl reload`) and from run-time additions (`offloadctl add-rule`,
// placed on top by default like VMA's add_conf_rule). Every change bumps the
// version and notifies subscribers (the session manager republishes the table
// to every attached process).
//
// Thread safety: all methods are thread-safe. Subscribers are called after
// the change, outside the store's lock, in the thread that made the change.

#ifndef OFFLOAD_DAEMON_RULES_RULE_STORE_H_
#define OFFLOAD_DAEMON_RULES_RULE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rules/rules.h"

namespace offload {
namespace rules {

// An immutable view of the table at one version.
struct RuleSnapshot {
  std::vector<Rule> rules;           // match order; ids are unique and stable
  std::vector<std::string> origins;  // parallel to rules: "<file>:<line>" or "runtime"
  uint64_t version = 0;
};

class RuleStore {
 public:
  using Listener = std::function<void(std::shared_ptr<const RuleSnapshot>)>;

  // Creates a store backed by `rules_file` ("" = no file: run-time rules only,
  // and --persist is refused). A missing file gives an empty table; a file
  // that does not parse is an INVALID_ARGUMENT naming file, line and column.
  static absl::StatusOr<std::unique_ptr<RuleStore>> Create(std::string rules_file);

  std::shared_ptr<const RuleSnapshot> Snapshot() const;

  // Parses `line` (one `use ...` statement) and inserts it at 1-based
  // `position` (0 = top). `program`/`app_id` select an application-id section
  // ("" = "*"). With `persist`, rewrites the rules file atomically.
  // Errors: INVALID_ARGUMENT (parse error with column, bad position),
  // RESOURCE_EXHAUSTED (table full), FAILED_PRECONDITION (persist without a
  // rules file), or the I/O error of the rewrite (the table change stays).
  absl::StatusOr<Rule> Add(const std::string& line, uint32_t position, bool persist,
                           const std::string& program, const std::string& app_id);

  // Removes the rule with `id`. NOT_FOUND names the id and how to list ids.
  absl::Status Delete(uint32_t id, bool persist);

  // Replaces the table with the rules file's content (run-time rules that were
  // not persisted are dropped). On a parse error the old table stays.
  // Returns the number of rules loaded.
  absl::StatusOr<size_t> Reload();

  const std::string& rules_file() const { return rules_file_; }

  // `listener` is called after every change (not for the current state).
  void Subscribe(Listener listener);

 private:
  explicit RuleStore(std::string rules_file) : rules_file_(std::move(rules_file)) {}

  // Reads and parses the rules file into `*out`.
  absl::Status LoadFile(std::shared_ptr<RuleSnapshot>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteFile(const RuleSnapshot& snapshot) const;
  // Installs `next` as the current table and notifies listeners.
  void Publish(std::shared_ptr<RuleSnapshot> next) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string rules_file_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const RuleSnapshot> current_ ABSL_GUARDED_BY(mu_);
  uint32_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_version_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
  // Serializes writers so versions are published in order.
  absl::Mutex write_mu_;
};

}  // namespace rules
}  // namespace offload

#endif  // OFFLOAD_DAEMON_RULES_RULE_STORE_H_
