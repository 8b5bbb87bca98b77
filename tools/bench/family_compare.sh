#!/bin/bash
# Same-host TCP ping-pong p50 (64 B) and 100 B throughput over IPv4
# (127.0.0.1) and IPv6 (::1), on the kernel and offloaded, interleaved in
# one run (issue 18's acceptance: IPv6 within 10 % of IPv4, same ratios to
# the kernel). sockperf 3.7 has no IPv6, so this uses offload-pingpong.
#
#   tools/bench/family_compare.sh [REPS [SECONDS]]   (default 5 reps, 5 s)
#
# Needs `bazel build //daemon:offloadd //client:liboffload.so
# //tools/bench:offload-pingpong`. offloadd runs on CPU 0, client and server
# share CPU 1 (the bench's "one core" placement) when there are 2 CPUs.
# Prints one line per sample and a table of medians and ratios. Exit status
# 0, or 1 with the failing sample's output.
set -eu
REPS=${1:-5}
SECS=${2:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/bazel-bin
PP=$BIN/tools/bench/offload-pingpong
LIB=$BIN/client/liboffload.so
DAEMON=$BIN/daemon/offloadd
for f in "$PP" "$LIB" "$DAEMON" "$BIN/cli/offloadctl"; do
  [ -f "$f" ] || { echo "missing $f (bazel build it first)" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/family-compare.XXXXXX)
DPID=
SPID=
SAMPLE=0
cleanup() {
  if [ -n "$SPID" ]; then kill -KILL "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; fi
  if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
NCPU=$(nproc)
DCPU=0
BCPU=$((NCPU > 1 ? 1 : 0))
mkdir -p "$TMP/run"
: > "$TMP/rules.conf"
taskset -c $DCPU "$DAEMON" --run-dir "$TMP/run" --rules "$TMP/rules.conf" > "$TMP/offloadd.log" 2>&1 &
DPID=$!
# Ready when its control socket answers (after the attach socket listens),
# not when the socket file exists (it does from bind()).
up=0
for _ in $(seq 100); do
  "$BIN/cli/offloadctl" --socket "$TMP/run/control.sock" status >/dev/null 2>&1 && { up=1; break; }
  sleep 0.1  # poll interval
done
[ "$up" = 1 ] || { echo "offloadd did not start" >&2; cat "$TMP/offloadd.log" >&2; exit 1; }

ADDR4=127.0.0.1
ADDR6=::1
SRV_IN=()
CLI_IN=()
SERVER_OFFLOADED=1
source "$ROOT/tools/bench/family_sample.sh"

echo "side family p50_us msg_per_s_100B   (reps $REPS, $SECS s each)"
for rep in $(seq "$REPS"); do
  for side in kernel offload; do
    for fam in ipv4 ipv6; do run $side $fam; done
  done
done
python3 "$ROOT/tools/bench/family_summary.py" "$TMP/samples"
