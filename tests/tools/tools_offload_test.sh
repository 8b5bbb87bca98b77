#!/bin/bash
# The test programs through the offloaded path: starts a private offloadd
# (same-host mode, no privileges), then runs offload-grind (TCP and UDP,
# every alignment), offload-cmd (matched and mismatched scripts), ttcp (plain
# sockets and the typed C++ API) with verification and offload-connrate with
# both ends under the offload launcher. Checks the results and that the client library reported
# "enabled bypass" (OFFLOAD_DEBUG=1), i.e. the data really took the offload
# path. Every process is started here and killed by pid on exit.
set -u
# launch_daemon (the one way tests start offloadd); this script keeps its
# own pass/fail/cleanup, defined below.
source "$(dirname "$0")/../integration/lib/harness.sh"

RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
OFFLOADD="$RUNFILES/daemon/offloadd"
OFFLOADCTL="$RUNFILES/cli/offloadctl"
LAUNCHER="$RUNFILES/client/offload"
GRIND="$RUNFILES/tools/grind/offload-grind"
CMD="$RUNFILES/tools/cmd/offload-cmd"
TTCP="$RUNFILES/tools/ttcp/ttcp"
CONNRATE="$RUNFILES/tools/bench/offload-connrate"
WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/tools_offload.XXXXXX")"
# Short path: Unix socket paths are limited to 108 bytes, Bazel's TMPDIR is
# longer.
RUN_DIR="$(mktemp -d /tmp/offload-tools.XXXXXX)"
PIDS=()
FAILURES=0

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$WORK" "$RUN_DIR"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok:   $*"; }
show() { for f in "$@"; do echo "--- $f"; tail -n 20 "$f"; done; }

# Ready when its control socket answers (offloadd opens it after the
# attach socket listens); the socket files alone exist from bind().
up=0
launch_daemon "" "$RUN_DIR" "$WORK/offloadd.log" && up=1
PIDS+=("$DAEMON_PID")
if ((!up)); then
  echo "FAIL: offloadd did not come up in $RUN_DIR"
  show "$WORK/offloadd.log"
  exit 1
fi
export OFFLOAD_RUN_DIR="$RUN_DIR" OFFLOAD_DEBUG=1
OFF=("$LAUNCHER" --)

# start_server NAME PORTFILE CMD...: background CMD, bounded wait for the
# port file; sets PORT and SERVER_PID.
start_server() {
  local name="$1" pf="$2"; shift 2
  rm -f "$pf"
  "$@" >"$WORK/$name.out" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 300); do
    [[ -s "$pf" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [[ ! -s "$pf" ]]; then
    fail "$name did not start"; show "$WORK/$name.out"; PORT=0; return 1
  fi
  PORT="$(cat "$pf")"
}

# check NAME WANT_SERVER WANT_CLIENT CLIENT_RC: waits for the server and
# compares both exit codes.
check() {
  local name="$1" want_s="$2" want_c="$3" got_c="$4"
  wait "$SERVER_PID"; local got_s=$?
  if [[ "$got_s" == "$want_s" && "$got_c" == "$want_c" ]]; then
    pass "$name (server $got_s, client $got_c)"
  else
    fail "$name: server exit $got_s (want $want_s), client $got_c (want $want_c)"
    show "$WORK/$name.out" "$WORK/$name.client"
  fi
}

expect_grep() {
  if grep -qF -- "$2" "$1"; then pass "$3"; else
    fail "$3: '$2' not in $(basename "$1")"; show "$1"; fi
}

for proto in tcp udp; do
  flag=""; [[ $proto == udp ]] && flag="--udp"
  if start_server "grind-$proto" "$WORK/p" "${OFF[@]}" "$GRIND" server \
      --port 0 --port-file "$WORK/p" --timeout 30; then
    "${OFF[@]}" "$GRIND" client --port "$PORT" $flag --start 1 --end 3000 \
      --increment 97 --wraps 1 --timeout 30 >"$WORK/grind-$proto.client" 2>&1
    check "grind-$proto" 0 0 $?
    expect_grep "$WORK/grind-$proto.out" "LOOKS GOOD" "grind $proto LOOKS GOOD"
    expect_grep "$WORK/grind-$proto.client" "enabled bypass on fd" \
      "grind $proto client offloaded"
    expect_grep "$WORK/grind-$proto.out" "enabled bypass on fd" \
      "grind $proto server offloaded"
  fi
done

printf 'send 512 20 A\nrecv 64 1 z\nsend 100000 3 q\n' >"$WORK/c.txt"
printf 'recv 1024 10 A\nsend 32 2 z\nrecv 300000 1 q\n' >"$WORK/s.txt"
printf 'recv 1024 10 B\nsend 32 2 z\n' >"$WORK/bad.txt"
if start_server cmd-ok "$WORK/p" "${OFF[@]}" "$CMD" server --script \
    "$WORK/s.txt" --port-file "$WORK/p" --timeout 10; then
  "${OFF[@]}" "$CMD" client --script "$WORK/c.txt" --port "$PORT" \
    --timeout 10 >"$WORK/cmd-ok.client" 2>&1
  check cmd-ok 0 0 $?
  expect_grep "$WORK/cmd-ok.client" "CONVERSATION OK" "cmd conversation ok"
fi
if start_server cmd-bad "$WORK/p" "${OFF[@]}" "$CMD" server --script \
    "$WORK/bad.txt" --port-file "$WORK/p" --timeout 10; then
  "${OFF[@]}" "$CMD" client --script "$WORK/c.txt" --port "$PORT" \
    --timeout 10 >"$WORK/cmd-bad.client" 2>&1
  check cmd-bad 1 1 $?
  expect_grep "$WORK/cmd-bad.out" "byte 0 of message 1 is 'A', expected 'B'" \
    "cmd mismatch detected through offload"
fi

if start_server ttcp "$WORK/p" "${OFF[@]}" "$TTCP" -r -p 0 -V -l 4k \
    --port-file "$WORK/p"; then
  "${OFF[@]}" "$TTCP" -t -l 16k -n 512 -p "$PORT" 127.0.0.1 \
    >"$WORK/ttcp.client" 2>&1
  check ttcp 0 0 $?
  expect_grep "$WORK/ttcp.out" "ttcp-result role=r bytes=8388608" \
    "ttcp received and verified every byte"
fi

# ttcp on the typed C++ socket API: its calls are the interposed ones too.
if start_server ttcp-cxx "$WORK/p" "${OFF[@]}" "$TTCP" -r -p 0 -V -l 4k \
    --api cxx --port-file "$WORK/p"; then
  "${OFF[@]}" "$TTCP" -t -l 16k -n 512 -p "$PORT" --api cxx 127.0.0.1 \
    >"$WORK/ttcp-cxx.client" 2>&1
  check ttcp-cxx 0 0 $?
  expect_grep "$WORK/ttcp-cxx.out" "ttcp-result role=r bytes=8388608" \
    "ttcp --api cxx received and verified every byte"
  expect_grep "$WORK/ttcp-cxx.client" "enabled bypass on fd" \
    "ttcp --api cxx transmitter was offloaded"
fi

if start_server connrate "$WORK/p" "${OFF[@]}" "$CONNRATE" server --port 0 \
    --port-file "$WORK/p" --count 100 --idle-timeout 30; then
  "${OFF[@]}" "$CONNRATE" client --port "$PORT" --count 100 --duration 60 \
    >"$WORK/connrate.client" 2>&1
  check connrate 0 0 $?
  expect_grep "$WORK/connrate.client" "connrate: connections=100 " \
    "connrate completed 100 cycles"
fi

if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
  fail "offloadd died during the test"; show "$WORK/offloadd.log"
fi
if (( FAILURES > 0 )); then echo "$FAILURES check(s) failed"; exit 1; fi
echo "all checks passed"
