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
for f in "$PP" "$LIB" "$DAEMON"; do
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
for _ in $(seq 100); do [ -S "$TMP/run/engine.sock" ] && break; sleep 0.1; done
[ -S "$TMP/run/engine.sock" ] || { echo "offloadd did not start" >&2; cat "$TMP/offloadd.log" >&2; exit 1; }

# run SIDE FAMILY [TRIES]: one sample of both tests; appends "side fam p50 tput".
run() {
  local side=$1 fam=$2 tries=${3:-0} addr env=()
  [ "$fam" = ipv4 ] && addr=127.0.0.1 || addr=::1
  [ "$side" = offload ] && env=(LD_PRELOAD="$LIB" OFFLOAD_RUN_DIR="$TMP/run" OFFLOAD_DEBUG=1)
  local port=$((10000 + RANDOM % 20000))
  SAMPLE=$((SAMPLE + 1))
  local out=$TMP/server.$SAMPLE.out  # a fresh file: no earlier server's line
  env "${env[@]}" taskset -c $BCPU "$PP" server "$addr" $port > "$out" 2>&1 &
  SPID=$!
  # Until the server listens, or exits (its port was taken); 30 s at most.
  for _ in $(seq 600); do
    grep -q listening "$out" 2>/dev/null && break
    kill -0 $SPID 2>/dev/null || break
    sleep 0.05
  done
  if ! grep -q listening "$out" 2>/dev/null; then
    kill -KILL $SPID 2>/dev/null || true
    wait $SPID 2>/dev/null || true
    SPID=
    [ "$tries" -lt 5 ] || { echo "no server could listen:" >&2; cat "$out" >&2; exit 1; }
    run "$side" "$fam" $((tries + 1))
    return
  fi
  local pp tp
  pp=$(env "${env[@]}" taskset -c $BCPU "$PP" pingpong "$addr" $port 64 "$SECS" 2> "$TMP/c1.err") ||
    { echo "pingpong failed ($side $fam):" >&2; cat "$TMP/c1.err" "$out" >&2; exit 1; }
  tp=$(env "${env[@]}" taskset -c $BCPU "$PP" throughput "$addr" $port 100 "$SECS" 2> "$TMP/c2.err") ||
    { echo "throughput failed ($side $fam):" >&2; cat "$TMP/c2.err" "$out" >&2; exit 1; }
  kill $SPID 2>/dev/null || true
  wait $SPID 2>/dev/null || true
  SPID=
  if [ "$side" = offload ] && ! grep -q "enabled bypass" "$TMP/c1.err"; then
    echo "offload side was not offloaded ($fam):" >&2; cat "$TMP/c1.err" >&2; exit 1
  fi
  local p50 rate
  p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<< "$pp")
  rate=$(sed -n 's/.*msg_per_s=\([0-9.]*\).*/\1/p' <<< "$tp")
  [ -n "$p50" ] && [ -n "$rate" ] || { echo "bad output: $pp / $tp" >&2; exit 1; }
  echo "$side $fam $p50 $rate" | tee -a "$TMP/samples"
}

echo "side family p50_us msg_per_s_100B   (reps $REPS, $SECS s each)"
for rep in $(seq "$REPS"); do
  for side in kernel offload; do
    for fam in ipv4 ipv6; do run $side $fam; done
  done
done
python3 "$ROOT/tools/bench/family_summary.py" "$TMP/samples"
