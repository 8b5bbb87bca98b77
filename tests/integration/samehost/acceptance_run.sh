#!/bin/bash
# Same-host offload acceptance figures, kernel and offload side by side in
# one run (not a CI test: it prints numbers, it asserts nothing).
#
#   tests/integration/samehost/acceptance_run.sh [SECONDS]
#
# Needs: bazel build //daemon:offloadd //client:liboffload.so //client:offload
# sockperf, redis-server, redis-benchmark. Server on CPU 0, client on CPU 1.
# sockperf ping-pong runs with --mps=2000000: with the default (max) sockperf
# sizes its sequence table for kernel-like rates and aborts with
# "_seqN > m_maxSequenceNo" on a faster transport.
set -u
T=${1:-5}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=$ROOT/bazel-bin
RUN=$(mktemp -d /tmp/offload-accept.XXXXXX)
OFF="env OFFLOAD_RUN_DIR=$RUN LD_PRELOAD=$BIN/client/liboffload.so"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$RUN"; }
trap cleanup EXIT

taskset -c 0 "$BIN/daemon/offloadd" --run-dir "$RUN/run" --rules "$RUN/rules.conf" \
  --config /dev/null >"$RUN/offloadd.log" 2>&1 &
DPID=$!
PIDS+=($DPID)
export OFFLOAD_RUN_DIR=$RUN/run
OFF="env OFFLOAD_RUN_DIR=$RUN/run LD_PRELOAD=$BIN/client/liboffload.so"
# Ready when its control socket answers (after the attach socket listens).
for i in $(seq 100); do
  "$BIN/cli/offloadctl" --socket "$RUN/run/control.sock" status >/dev/null 2>&1 && break
  sleep 0.05  # poll interval
done

port=$((10000 + RANDOM % 20000))
sp() {  # sp SIDE SERVER_ARGS -- CLIENT_ARGS
  local side=$1; shift
  local pre=""; [ "$side" = offload ] && pre=$OFF
  port=$((port + 1))
  local sargs=() cargs=() seen=0
  for a in "$@"; do if [ "$a" = "--" ]; then seen=1; elif [ $seen = 0 ]; then sargs+=("$a"); else cargs+=("$a"); fi; done
  $pre taskset -c 0 sockperf server -i 127.0.0.1 -p $port "${sargs[@]}" >"$RUN/srv.$port" 2>&1 &
  local spid=$!
  for i in $(seq 100); do grep -q "Warmup\|listen" "$RUN/srv.$port" 2>/dev/null && break; sleep 0.05; done
  sleep 0.2
  $pre taskset -c 1 sockperf "${cargs[@]}" -i 127.0.0.1 -p $port -t "$T" 2>&1 |
    grep -E "percentile (50|99)\.000|Summary: (Message Rate|Latency is)|ERROR|valid" |
    sed -e "s/^sockperf: /  [$side] /" -e 's/\x1b\[[0-9;]*m//g'
  kill $spid 2>/dev/null; wait $spid 2>/dev/null
}

for proto in tcp udp; do
  flag=""; [ $proto = tcp ] && flag=--tcp
  echo "== ping-pong $proto (64 B): sockperf ping-pong $flag -m 64 --mps=2000000 -t $T"
  for side in kernel offload; do sp $side $flag -- ping-pong $flag -m 64 --mps=2000000; done
  echo "== under-load $proto (64 B, 10000 msg/s): sockperf under-load $flag -m 64 --mps=10000"
  for side in kernel offload; do sp $side $flag -- under-load $flag -m 64 --mps=10000; done
done
echo "== throughput tcp (100 B): sockperf throughput --tcp -m 100"
for side in kernel offload; do sp $side --tcp -- throughput --tcp -m 100; done
echo "== throughput udp (100 B): sockperf throughput -m 100"
for side in kernel offload; do sp $side -- throughput -m 100; done

for P in "" "-P 16"; do
  echo "== redis-benchmark -c 50 -n 200000 -t set,get $P"
  for side in kernel offload; do
    pre=""; [ "$side" = offload ] && pre=$OFF
    port=$((port + 1))
    $pre taskset -c 0 redis-server --port $port --save "" --appendonly no >"$RUN/redis.$port" 2>&1 &
    rpid=$!
    for i in $(seq 100); do grep -q "Ready to accept" "$RUN/redis.$port" && break; sleep 0.05; done
    $pre taskset -c 1 redis-benchmark -p $port -c 50 -n 200000 -q -t set,get $P 2>&1 | tr '\r' '\n' |
      grep -E "per second|rror" | sed "s/^/  [$side] /"
    # Every request succeeded: the server processed all 400000 (+ the
    # benchmark's CONFIG GETs).
    echo "  [$side] server: $($pre redis-cli -p $port info stats | tr -d '\r' | grep total_commands_processed)"
    kill $rpid; wait $rpid 2>/dev/null
  done
done

echo "== idle: blocked server + idle client + offloadd, CPU over 10 s"
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
$OFF "$BIN/tests/integration/samehost/semantics_prog" idle 12 >"$RUN/idle.log" 2>&1 &
ipid=$!
sleep 1
a0=$(ticks $ipid); d0=$(ticks $DPID); sleep 10; a1=$(ticks $ipid); d1=$(ticks $DPID)
hz=$(getconf CLK_TCK)
echo "  $(cat "$RUN/idle.log"): app $(( (a1 - a0) * 1000 / hz )) ms + daemon $(( (d1 - d0) * 1000 / hz )) ms CPU in 10 s"
wait $ipid

echo "== daemon stopped: the same applications through the kernel"
kill $DPID; wait $DPID 2>/dev/null
sp offload --tcp -- ping-pong --tcp -m 64 --mps=2000000
$OFF "$BIN/tests/integration/samehost/semantics_prog" checks >"$RUN/absent.log" 2>&1 &&
  echo "  semantics checks without daemon: all pass" || cat "$RUN/absent.log"
