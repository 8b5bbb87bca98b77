#!/usr/bin/env bash
# End-to-end test of the control plane: the real offloadd, driven by the real
# offloadctl, on a temporary run directory. When run as root, the daemon runs
# as an unprivileged user ("daemon") and a caller outside root/offload
# ("nobody") is checked to be refused.
#
# Usage: control_plane_test.sh OFFLOADD OFFLOADCTL
set -uo pipefail

OFFLOADD_SRC=$1
OFFLOADCTL_SRC=$2
# pass/fail, junit_write, cleanup (only our pids; removes WORK) and
# launch_daemon come from the shared harness.
source "$(dirname "$0")/../lib/harness.sh"
JUNIT_SUITE=control_plane
work=$(mktemp -d /tmp/offload-ctl-test.XXXXXX)
chmod 755 "$work"
WORK=$work
trap cleanup EXIT

# Binaries under /root are not reachable for other users: use copies.
cp "$OFFLOADD_SRC" "$work/offloadd"
cp "$OFFLOADCTL_SRC" "$work/offloadctl"
chmod 755 "$work/offloadd" "$work/offloadctl"
OFFLOADD=$work/offloadd
OFFLOADCTL=$work/offloadctl

if [[ $(id -u) -eq 0 ]] && id daemon >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
  AS_DAEMON=(setpriv --reuid=daemon --regid=daemon --clear-groups --)
  AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  privileged=1
else
  AS_DAEMON=()
  AS_NOBODY=()
  privileged=0
  echo "note: not root; the daemon runs as $(id -un) and the 'nobody' checks are skipped"
fi

# expect NAME WANT_RC WANT_SUBSTRING CMD...  (substring of stdout+stderr)
expect() {
  local name=$1 want_rc=$2 want=$3
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want_rc ]]; then
    fail "$name: exit $rc, want $want_rc; output: $out"
  elif [[ -n $want && $out != *"$want"* ]]; then
    fail "$name: output lacks '$want': $out"
  else
    pass "$name"
  fi
}

# wait_for COND_CMD...: polls a condition for at most 10 s.
wait_for() {
  local i
  for i in $(seq 1 200); do
    if "$@"; then return 0; fi
    sleep 0.05
  done
  return 1
}

# start_daemon RUN_DIR [ARGS...]: starts offloadd (no config: same host
# only; rules from RUN_DIR/rules.conf, the default) as the daemon user, and
# waits for its control socket to answer; sets daemon_pid.
DAEMON_AS=("${AS_DAEMON[@]}")
start_daemon() {
  local dir=$1
  shift
  mkdir -p "$dir"
  [[ $privileged -eq 1 ]] && chown daemon:daemon "$dir"
  launch_daemon "" "$dir" "$dir.log" "$@" || {
    fail "offloadd did not answer on $dir/control.sock; log: $(cat "$dir.log")"
    return 1
  }
  daemon_pid=$DAEMON_PID
}

CTL=("$work/offloadctl")

# --- no daemon ------------------------------------------------------------
expect "not running: message and exit 3" 3 \
  "offloadd is not running (no control socket at $work/none/control.sock); start it with: systemctl start offloadd" \
  "${CTL[@]}" --socket "$work/none/control.sock" status

expect "usage error exits 2" 2 "unknown command" "${CTL[@]}" frobnicate
expect "help per subcommand" 0 "--position N" "${CTL[@]}" add-rule --help
expect "daemon --help teaches" 0 "Signals:" "$work/offloadd" --help
expect "bad config is named" 1 "num_cores" \
  bash -c "echo 'num_cores: 99' > '$work/bad.conf'; '$work/offloadd' --config '$work/bad.conf' --check-config"

# --- round trip -----------------------------------------------------------
run=$work/run
start_daemon "$run" --control-mode 0666 || { junit_write control_plane; exit 1; }
S=(--socket "$run/control.sock")

expect "add-rule on top" 0 "added rule 1 at position 1: use os tcp_server *:5001" \
  "${CTL[@]}" "${S[@]}" add-rule "use os tcp_server *:5001"
expect "rules lists it" 0 "use os tcp_server *:5001" "${CTL[@]}" "${S[@]}" rules
expect "malformed rule: exit 1 with column and expectation" 1 \
  "column 5: unexpected 'foo', expected offload, vma or os" \
  "${CTL[@]}" "${S[@]}" add-rule "use foo tcp_server *:1"
expect "add-rule at position, persisted" 0 "at position 2" \
  "${CTL[@]}" "${S[@]}" add-rule "use vma tcp_client 192.168.1.0/24:*:*:*" --position 2 --persist
if grep -q "use offload tcp_client 192.168.1.0/24:\*:\*:\*" "$run/rules.conf" 2>/dev/null; then
  pass "persist wrote the rules file"
else
  fail "persist did not write $run/rules.conf: $(cat "$run/rules.conf" 2>&1)"
fi
expect "position past the end is refused" 1 "past the end" \
  "${CTL[@]}" "${S[@]}" add-rule "use os udp_sender *:9" --position 9
expect "json output" 0 '"text": "use os tcp_server *:5001"' "${CTL[@]}" "${S[@]}" --json rules
expect "del-rule" 0 "deleted rule 1" "${CTL[@]}" "${S[@]}" del-rule 1
expect "del-rule unknown id" 1 "no rule with id 1" "${CTL[@]}" "${S[@]}" del-rule 1
out=$("${CTL[@]}" "${S[@]}" rules)
if [[ $out != *"tcp_server *:5001"* && $out == *"192.168.1.0/24"* ]]; then
  pass "rules after delete"
else
  fail "rules after delete: $out"
fi

# reload from the file (runtime, non-persisted rules dropped)
expect "add a runtime rule" 0 "" "${CTL[@]}" "${S[@]}" add-rule "use os udp_receiver *:7000"
expect "reload" 0 "reloaded 2 rules" "${CTL[@]}" "${S[@]}" reload
out=$("${CTL[@]}" "${S[@]}" rules)
[[ $out != *"udp_receiver"* ]] && pass "reload dropped the runtime rule" || fail "reload: $out"

# SIGHUP reloads too
printf 'use os tcp_server *:6000\nuse os tcp_server *:6001\n' >"$run/rules.conf"
kill -HUP "$daemon_pid"
if wait_for bash -c "'$work/offloadctl' --socket '$run/control.sock' rules | grep -q 6001"; then
  pass "SIGHUP reloads the rules file"
else
  fail "SIGHUP did not reload"
fi

expect "status" 0 "mode:        same-host" "${CTL[@]}" "${S[@]}" status
expect "stats with nothing attached" 0 "no processes attached" "${CTL[@]}" "${S[@]}" stats
expect "thread-offload of an unattached pid" 1 "is not attached" \
  "${CTL[@]}" "${S[@]}" thread-offload 999999 1 off

# --- permissions ----------------------------------------------------------
if [[ $privileged -eq 1 ]]; then
  if getent group offload >/dev/null; then
    echo "note: group 'offload' exists on this host; nobody is not a member"
  fi
  expect "nobody may read status" 0 "offloadd" "${AS_NOBODY[@]}" "${CTL[@]}" "${S[@]}" status
  expect "nobody may not add rules (PERMISSION_DENIED names the group)" 1 \
    "needs root or membership in the 'offload' group" \
    "${AS_NOBODY[@]}" "${CTL[@]}" "${S[@]}" add-rule "use os tcp_server *:1"
  expect "nobody may not reload" 1 "'offload' group" \
    "${AS_NOBODY[@]}" "${CTL[@]}" "${S[@]}" reload
  expect "root may add rules to a daemon run by another user" 0 "added rule" \
    "${CTL[@]}" "${S[@]}" add-rule "use os tcp_server *:2"
else
  skip "permission checks as nobody (need root and the users daemon and nobody)"
fi

# --- one daemon per run dir; restart after crash -------------------------
expect "second instance refused" 1 "already serving $run" \
  "${AS_DAEMON[@]}" "$work/offloadd" --run-dir "$run"
kill -9 "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
[[ -S $run/control.sock ]] && pass "kill -9 leaves a stale socket" || fail "no stale socket?"
expect "stale socket: reported as not running" 3 "is not running" "${CTL[@]}" "${S[@]}" status
start_daemon "$run" --control-mode 0666 || { junit_write control_plane; exit 1; }
expect "restart after kill -9 serves again" 0 "offloadd" "${CTL[@]}" "${S[@]}" status
out=$("${CTL[@]}" "${S[@]}" rules)
[[ $out == *"tcp_server *:6001"* ]] && pass "restart keeps the file's rules" || fail "after restart: $out"
kill -TERM "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
[[ ! -e $run/control.sock ]] && pass "SIGTERM removes control.sock" || fail "control.sock left after SIGTERM"

# --- default socket mode: only root/owner/offload can connect -------------
if [[ $privileged -eq 1 ]]; then
  run2=$work/run2
  start_daemon "$run2" || { junit_write control_plane; exit 1; }
  mode=$(stat -c %a "$run2/control.sock")
  [[ $mode == 660 ]] && pass "control.sock is 0660 by default" || fail "control.sock mode $mode"
  expect "nobody cannot connect to a 0660 socket" 1 "'offload' group" \
    "${AS_NOBODY[@]}" "${CTL[@]}" --socket "$run2/control.sock" status
else
  skip "default 0660 control socket refuses nobody (needs root)"
fi

junit_write control_plane
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
