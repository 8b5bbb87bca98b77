#!/bin/bash
# End-to-end test of the test-program binaries over loopback: --help, usage
# errors (exit 2), and real server/client runs (grind TCP+UDP, cmd matched
# and mismatched scripts, ttcp on both APIs, connrate). Every server is started by this
# script, waited for through its --port-file, and killed by pid on exit.
set -u

RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
GRIND="$RUNFILES/tools/grind/offload-grind"
CMD="$RUNFILES/tools/cmd/offload-cmd"
TTCP="$RUNFILES/tools/ttcp/ttcp"
CONNRATE="$RUNFILES/tools/bench/offload-connrate"
WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/tools_cli.XXXXXX")"
PIDS=()
FAILURES=0

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok:   $*"; }

# expect_exit CODE NAME -- CMD...: runs CMD, checks its exit status.
expect_exit() {
  local want="$1" name="$2"; shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local got=$?
  if [[ "$got" == "$want" ]]; then pass "$name (exit $got)"; else
    fail "$name: exit $got, want $want"; cat "$WORK/out" "$WORK/err"; fi
}

# expect_grep FILE PATTERN NAME
expect_grep() {
  if grep -qF -- "$2" "$1"; then pass "$3"; else
    fail "$3: '$2' not in $1:"; cat "$1"; fi
}

# start_server NAME PORTFILE CMD...: starts CMD in the background, waits
# (bounded) for PORTFILE, prints nothing; sets PORT and SERVER_PID.
start_server() {
  local name="$1" pf="$2"; shift 2
  rm -f "$pf"
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 200); do
    [[ -s "$pf" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [[ ! -s "$pf" ]]; then
    fail "$name did not start"; cat "$WORK/$name.out" "$WORK/$name.err"
    PORT=0; return 1
  fi
  PORT="$(cat "$pf")"
}

# wait_server NAME WANT: waits for the last server, checks its exit status.
wait_server() {
  wait "$SERVER_PID"; local got=$?
  if [[ "$got" == "$2" ]]; then pass "$1 server exit $got"; else
    fail "$1 server exit $got, want $2"; cat "$WORK/$1.out" "$WORK/$1.err"; fi
}

# --- help and usage errors ---------------------------------------------
for b in "$GRIND" "$CMD" "$TTCP" "$CONNRATE"; do
  expect_exit 0 "$(basename "$b") --help" -- "$b" --help
  expect_grep "$WORK/out" "usage:" "$(basename "$b") --help prints usage"
  expect_exit 2 "$(basename "$b") --no-such-flag" -- "$b" --no-such-flag
  expect_grep "$WORK/err" "unknown option" "$(basename "$b") names the bad flag"
done
expect_exit 2 "grind without mode" -- "$GRIND"
expect_exit 2 "grind client without port" -- "$GRIND" client
expect_exit 2 "grind --start 0" -- "$GRIND" client --port 9 --start 0
expect_exit 2 "grind end < start" -- "$GRIND" client --port 9 --start 10 --end 5
expect_grep "$WORK/err" "--end must be in" "grind explains the bad range"
expect_exit 2 "grind udp too large" -- "$GRIND" client --port 9 --udp --end 70000
expect_exit 2 "grind bad host" -- "$GRIND" client --port 9 --host 300.1.1.1
expect_grep "$WORK/err" "not an IPv4 address" "grind explains the bad host"
expect_exit 2 "grind --port abc" -- "$GRIND" server --port abc
expect_exit 2 "cmd without mode" -- "$CMD"
expect_exit 2 "cmd check with one file" -- "$CMD" check a
expect_exit 2 "cmd missing script" -- "$CMD" server --script "$WORK/nope.txt"
expect_grep "$WORK/err" "cannot read script" "cmd explains the missing script"
printf 'send 10 1 A\nrecv 10 two B\n' >"$WORK/syntax.txt"
expect_exit 2 "cmd syntax error" -- "$CMD" server --script "$WORK/syntax.txt"
expect_grep "$WORK/err" "syntax.txt:2:9: expected a repeat count" \
  "cmd syntax error names file:line:column"
expect_exit 2 "ttcp without -t/-r" -- "$TTCP"
expect_exit 2 "ttcp -t without host" -- "$TTCP" -t -p 9
expect_exit 2 "ttcp -l abc" -- "$TTCP" -r -l abc
expect_exit 2 "ttcp --api bogus" -- "$TTCP" -r --api bogus
expect_grep "$WORK/err" "--api expects c or cxx" "ttcp names the bad --api"
expect_exit 2 "ttcp --api cxx bad --bind" -- "$TTCP" -r --api cxx --bind nowhere
expect_exit 2 "connrate client without port" -- "$CONNRATE" client

# --- offload-grind ------------------------------------------------------
for proto in tcp udp; do
  flag=""; [[ $proto == udp ]] && flag="--udp"
  if start_server "grind-$proto" "$WORK/grind.port" \
      "$GRIND" server --port 0 --port-file "$WORK/grind.port" --timeout 30; then
    expect_exit 0 "grind $proto client" -- "$GRIND" client --port "$PORT" \
      $flag --start 1 --end 3000 --increment 97 --wraps 1 --timeout 30
    expect_grep "$WORK/out" "LOOKS GOOD" "grind $proto client LOOKS GOOD"
    wait_server "grind-$proto" 0
    expect_grep "$WORK/grind-$proto.out" "LOOKS GOOD" "grind $proto server LOOKS GOOD"
  fi
done

# --- offload-cmd ----------------------------------------------------------
printf '# client\nsend 512 20 A\nrecv 64 1 z\n' >"$WORK/client.txt"
printf 'recv 1024 10 A   # same bytes, other boundaries\nsend 32 2 z\n' \
  >"$WORK/server.txt"
printf 'recv 1024 10 B\nsend 32 2 z\n' >"$WORK/server_bad.txt"
expect_exit 0 "cmd check agrees" -- "$CMD" check "$WORK/client.txt" "$WORK/server.txt"
expect_exit 1 "cmd check disagrees" -- "$CMD" check "$WORK/client.txt" "$WORK/server_bad.txt"
expect_grep "$WORK/err" "client.txt:2 sends 'A' but" "cmd check names the lines"
if start_server cmd-ok "$WORK/cmd.port" "$CMD" server --script "$WORK/server.txt" \
    --port-file "$WORK/cmd.port" --timeout 10; then
  expect_exit 0 "cmd matched pair" -- "$CMD" client --script "$WORK/client.txt" \
    --port "$PORT" --timeout 10
  expect_grep "$WORK/out" "CONVERSATION OK" "cmd client conversation ok"
  wait_server cmd-ok 0
fi
if start_server cmd-bad "$WORK/cmd.port" "$CMD" server \
    --script "$WORK/server_bad.txt" --port-file "$WORK/cmd.port" --timeout 10; then
  expect_exit 1 "cmd mismatched pair (client)" -- "$CMD" client \
    --script "$WORK/client.txt" --port "$PORT" --timeout 10
  wait_server cmd-bad 1
  expect_grep "$WORK/cmd-bad.err" \
    "server_bad.txt:1: recv 1024 10 B: byte 0 of message 1 is 'A', expected 'B'" \
    "cmd mismatch message names line, byte and both characters"
fi

# --- ttcp -------------------------------------------------------------------
if start_server ttcp "$WORK/ttcp.port" "$TTCP" -r -p 0 -V -l 4k \
    --port-file "$WORK/ttcp.port"; then
  expect_exit 0 "ttcp -t" -- "$TTCP" -t -l 16k -n 512 -b 256k -p "$PORT" 127.0.0.1
  expect_grep "$WORK/out" "ttcp-result role=t bytes=8388608" "ttcp-t result line"
  wait_server ttcp 0
  expect_grep "$WORK/ttcp.out" "ttcp-result role=r bytes=8388608" "ttcp-r got every byte"
fi
# The same on the typed C++ socket API, and each API against the other.
for apis in "cxx cxx" "c cxx" "cxx c"; do
  read -r rx tx <<<"$apis"
  if start_server "ttcp-$rx-$tx" "$WORK/ttcp.port" "$TTCP" -r -p 0 -V -l 4k \
      --api "$rx" --port-file "$WORK/ttcp.port"; then
    expect_exit 0 "ttcp -t --api $tx to --api $rx" -- "$TTCP" -t -l 16k \
      -n 512 -b 256k -p "$PORT" --api "$tx" 127.0.0.1
    expect_grep "$WORK/out" "ttcp-result role=t bytes=8388608" \
      "ttcp-t --api $tx result line"
    wait_server "ttcp-$rx-$tx" 0
    expect_grep "$WORK/ttcp-$rx-$tx.out" "ttcp-result role=r bytes=8388608" \
      "ttcp-r --api $rx got every byte"
  fi
done

# --- offload-connrate -------------------------------------------------------
if start_server connrate "$WORK/cr.port" "$CONNRATE" server --port 0 \
    --port-file "$WORK/cr.port" --count 300 --idle-timeout 30; then
  expect_exit 0 "connrate client" -- "$CONNRATE" client --port "$PORT" --count 300
  expect_grep "$WORK/out" "connrate: connections=300 " "connrate counted 300 cycles"
  wait_server connrate 0
  expect_grep "$WORK/connrate.out" "served 300 connections" "connrate server served 300"
fi

if (( FAILURES > 0 )); then echo "$FAILURES check(s) failed"; exit 1; fi
echo "all checks passed"
