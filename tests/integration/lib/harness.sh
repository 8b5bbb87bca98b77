# Shared pieces of the bash-driven integration tests that run offloadd with a
# veth between two network namespaces (sourced, not executed).
#
# The sourcing script sets, before calling anything here:
#   NS_A, NS_B   namespace names (unique per run)
#   WORK         a private temporary directory (removed by cleanup)
# and gets: the pids array (every background process it starts), the
# passes/failures/skips counters with pass/fail/skip/note, require_root,
# cleanup (kills only those pids, removes the namespaces and WORK; keeps the
# logs in TEST_UNDECLARED_OUTPUTS_DIR when something failed), bg, wait_file,
# port, and the sockperf log readers; below, the daemon, namespace and
# listener helpers. Every integration script uses these instead of its own.

pids=()
failures=0
passes=0
skips=0

# Every pass/fail/skip is also kept as a JUnit <testcase>; junit_write puts
# them in bazel's XML_OUTPUT_FILE, so each check is counted on its own and a
# skipped one as skipped (tools/count_tests.py), not as a pass.
junit_cases=()
_xml_escape() {
  printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' |
    tr -d '\000-\010\013\014\016-\037'
}
_junit_case() {  # NAME INNER [ATTRS]
  local name
  name=$(_xml_escape "${1:0:300}")
  junit_cases+=("<testcase name=\"$name\" classname=\"${JUNIT_SUITE:-integration}\"${3:+ $3}>$2</testcase>")
}
pass() { passes=$((passes + 1)); echo "PASS $*"; _junit_case "$*" ""; }
fail() {
  local msg="$*"
  failures=$((failures + 1))
  echo "FAIL $msg"
  _junit_case "$msg" "<failure message=\"$(_xml_escape "${msg:0:500}")\"/>"
}
skip() { skips=$((skips + 1)); echo "SKIP $*"; _junit_case "$*" "<skipped/>" 'status="notrun"'; }
note() { echo "     $*"; }

# require_root SUITE REASON: when not root, records one skipped case
# (REASON) as SUITE's JUnit result and exits 0, so the run counts the test
# as skipped, not passed (tools/count_tests.py). Call it before anything
# that needs root.
require_root() {
  [[ $(id -u) -eq 0 ]] && return 0
  skip "$2"
  junit_write "$1"
  echo "$passes passed, $failures failed, $skips skipped"
  exit 0
}

# junit_write SUITE: writes the recorded cases to $XML_OUTPUT_FILE (when
# bazel set it); a no-op otherwise.
junit_write() {
  [[ -n ${XML_OUTPUT_FILE:-} ]] || return 0
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuites><testsuite name=\"$1\" tests=\"${#junit_cases[@]}\" failures=\"$failures\" skipped=\"$skips\">"
    printf '%s\n' "${junit_cases[@]}"
    echo '</testsuite></testsuites>'
  } >"$XML_OUTPUT_FILE"
}

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [[ -n ${NS_A:-} ]] && ip netns del "$NS_A" 2>/dev/null
  [[ -n ${NS_B:-} ]] && ip netns del "$NS_B" 2>/dev/null
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

# wait_file FILE: polls up to 10 s for FILE to exist and be non-empty. Only
# for files a program writes once it is ready (the port it bound, after
# listen): the readiness is the program's own word, not the file's mere
# existence.
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

# ---- daemons, namespaces and listeners (used by interop/ and sharing/) ----
# These need OFFLOADD and OFFLOADCTL (absolute paths) set by the caller. A
# script that defines a function of the same name after sourcing this file
# keeps its own.

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL; reaps it. Only for pids
# this script started.
stop_pid() {
  local pid=$1 i
  [[ $pid -gt 0 ]] || return 0
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1  # poll interval
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# in_ns NS CMD...: CMD inside namespace NS, or here when NS is empty.
in_ns() {
  local ns=$1
  shift
  if [[ -n $ns ]]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# wait_listen NS PORT: polls up to 10 s for a TCP listener on PORT in NS
# (empty NS: this namespace).
wait_listen() {
  local ns=$1 port=$2 i
  for ((i = 0; i < 100; i++)); do
    in_ns "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN && return 0
    sleep 0.1  # poll interval
  done
  return 1
}

# ctl RUN ARGS...: offloadctl against the daemon of run directory RUN.
ctl() {
  local run=$1
  shift
  "$OFFLOADCTL" --socket "$run/control.sock" "$@"
}

# launch_daemon NS RUN LOG [ARGS...]: starts "$OFFLOADD" --run-dir RUN
# ARGS... in NS (empty: this namespace), prefixed by the DAEMON_AS command
# when the caller set that array (for example setpriv to another user),
# appending its output to LOG; then waits up to 10 s for its control socket
# to answer (offloadctl status: a socket file alone may be stale) or for it
# to exit (30 s bound). Sets DAEMON_PID. The one way every integration script starts
# offloadd.
launch_daemon() {
  local ns=$1 run=$2 log=$3 i
  shift 3
  mkdir -p "$run"
  local -a prefix=()
  [[ -n $ns ]] && prefix=(ip netns exec "$ns")
  [[ -n ${DAEMON_AS+x} ]] && prefix+=("${DAEMON_AS[@]}")
  "${prefix[@]}" env ${DAEMON_FAULT:+OFFLOADD_FAULT="$DAEMON_FAULT"} \
    "$OFFLOADD" --run-dir "$run" "$@" >>"$log" 2>&1 &
  DAEMON_PID=$!
  pids+=("$DAEMON_PID")
  for ((i = 0; i < 300; i++)); do  # 30 s bound, for a loaded machine
    # offloadctl itself: a script may define its own ctl.
    "$OFFLOADCTL" --socket "$run/control.sock" status >/dev/null 2>&1 && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1  # poll interval
  done
  echo "offloadd in ${ns:-this namespace} did not come up:"
  tail -20 "$log"
  return 1
}

# start_daemon NS RUN IFNAME [FAULT]: launch_daemon in NS owning IFNAME
# (empty: same-host offload only, no NIC), with OFFLOADD_FAULT=FAULT in its
# environment when given. Config, rules and log are
# $WORK/offloadd-NS.{conf,log}, $WORK/rules-NS.conf (NS "host" when empty);
# the log is appended to across restarts.
start_daemon() {
  local ns=$1 run=$2 ifname=$3 tag=${1:-host}
  if [[ -n $ifname ]]; then
    printf 'interfaces { name: "%s" driver: DRIVER_AF_XDP }\nnum_cores: 1\n' "$ifname" \
      >"$WORK/offloadd-$tag.conf"
  else
    : >"$WORK/offloadd-$tag.conf"
  fi
  [[ -e $WORK/rules-$tag.conf ]] || : >"$WORK/rules-$tag.conf"
  DAEMON_FAULT=${4:-} launch_daemon "$ns" "$run" "$WORK/offloadd-$tag.log" \
    --config "$WORK/offloadd-$tag.conf" --rules "$WORK/rules-$tag.conf"
}

# setup_veth [--vb-tx-csum]: namespaces NS_A (IP_A on va) and NS_B (IP_B
# on vb), /24, joined by a veth pair, lo up; vb's TX checksum offload off
# (veth hands CHECKSUM_PARTIAL packets to the peer and AF_XDP sees them
# unfinished) unless --vb-tx-csum keeps the veth default. Returns non-zero
# when the namespaces cannot be made.
setup_veth() {
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
  ip netns add "$NS_A" && ip netns add "$NS_B" &&
    ip link add va netns "$NS_A" type veth peer name vb netns "$NS_B" &&
    ip -n "$NS_A" addr add "$IP_A/24" dev va && ip -n "$NS_B" addr add "$IP_B/24" dev vb &&
    ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
    ip -n "$NS_A" link set va up && ip -n "$NS_B" link set vb up || return 1
  [[ ${1:-} == --vb-tx-csum ]] && return 0
  ip netns exec "$NS_B" ethtool -K vb tx off >/dev/null 2>&1 ||
    echo "note: ethtool -K vb tx off failed (ethtool missing?)"
  return 0
}

# sock_rows RUN: one line per socket of every attached process:
# "pid program fd protocol state offloaded path local remote".
sock_rows() {
  ctl "$1" --json stats -v 2>/dev/null | jq -r '
    (.processes // [])[] | .session as $s | (.sockets // [])[] |
    [$s.pid, $s.program, .fd, .protocol, .state, .offloaded, (.path // "-"), .local, .remote] |
    map(tostring) | join(" ")' 2>/dev/null
}
