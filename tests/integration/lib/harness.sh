# Shared pieces of the bash-driven integration tests that run offloadd with a
# veth between two network namespaces (sourced, not executed).
#
# The sourcing script sets, before calling anything here:
#   NS_A, NS_B   namespace names (unique per run)
#   WORK         a private temporary directory (removed by cleanup)
# and gets: the pids array (every background process it starts), the
# passes/failures/skips counters with pass/fail/skip/note, cleanup (kills
# only those pids, removes the namespaces and WORK; keeps the logs in
# TEST_UNDECLARED_OUTPUTS_DIR when something failed), bg, wait_file, port,
# and the sockperf log readers.

pids=()
failures=0
passes=0
skips=0

pass() { passes=$((passes + 1)); echo "PASS $*"; }
fail() { failures=$((failures + 1)); echo "FAIL $*"; }
skip() { skips=$((skips + 1)); echo "SKIP $*"; }
note() { echo "     $*"; }

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
  if [[ $failures -gt 0 && -n ${TEST_UNDECLARED_OUTPUTS_DIR:-} ]]; then
    cp "$WORK"/*.log "$TEST_UNDECLARED_OUTPUTS_DIR"/ 2>/dev/null
  fi
  rm -rf "$WORK"
}

# bg LOG CMD...: starts CMD in the background (every wrapper execs, so $! is
# the application itself); sets BG_PID.
bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  BG_PID=$!
  pids+=("$BG_PID")
}

# wait_file FILE: polls up to 10 s for FILE to exist and be non-empty.
wait_file() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $1 ]] && return 0
    sleep 0.1  # poll interval
  done
  return 1
}

# port: the next test port in PORT (start from next_port).
port() { next_port=$((next_port + 1)); PORT=$next_port; }

# sockperf log readers: observations, messages sent.
sp_obs() { grep -ao 'Total [0-9]* observations' "$1" | grep -o '[0-9]*' | tail -1; }
sp_sent() { grep -ao 'Total of [0-9]* messages sent' "$1" | grep -o '[0-9]*' | tail -1; }
