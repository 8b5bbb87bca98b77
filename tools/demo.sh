#!/usr/bin/env bash
# The main job, end to end: installs what is missing, builds offload, starts
# offloadd (same-host mode, in a private run directory), and runs a real,
# unmodified application — sockperf — over the kernel's loopback and then
# under `offload`, side by side, and prints the comparison. Then shows the
# control plane steering a running process with a rule.
#
#   bash tools/demo.sh            # about a minute
#   DEMO_SECONDS=10 bash tools/demo.sh
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${DEMO_SECONDS:-4}

if [[ $(id -u) -eq 0 ]]; then
  bash tools/bootstrap.sh || exit 1
fi
echo "== building"
bazel build //daemon:offloadd //cli:offloadctl //client:liboffload.so //client:offload 2>&1 |
  grep -E '^(ERROR|INFO: Build)' || true
bin=$(bazel info bazel-bin 2>/dev/null)
for f in daemon/offloadd cli/offloadctl client/liboffload.so client/offload; do
  [[ -x $bin/$f ]] || { echo "demo: $bin/$f was not built" >&2; exit 1; }
done

run=$(mktemp -d /tmp/offload-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$run"
}
trap cleanup EXIT
ctl() { "$bin/cli/offloadctl" --socket "$run/control.sock" "$@"; }
export OFFLOAD_RUN_DIR=$run

# Two cores: server on one, client on the other.
cpus=$(nproc)
srv_cpu=0
cli_cpu=$((cpus > 1 ? 1 : 0))

echo "== starting offloadd (same-host mode) in $run"
"$bin/daemon/offloadd" --run-dir "$run" --log-file "$run/offloadd.log" &
pids+=($!)
for _ in $(seq 1 100); do ctl status >/dev/null 2>&1 && break; sleep 0.05; done
ctl status | sed 's/^/   /'

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_case LABEL PREFIX... -- runs a sockperf server and the two client modes.
# Sets RESULT_<LABEL>_{p50,p99,rate}.
declare -A result
run_case() {
  local label=$1
  shift
  local port
  port=$(free_port)
  taskset -c $srv_cpu "$@" sockperf server --tcp -i 127.0.0.1 -p "$port" >"$run/server-$label.log" 2>&1 &
  local spid=$!
  pids+=($spid)
  for _ in $(seq 1 100); do grep -q "listen on" "$run/server-$label.log" 2>/dev/null && break; sleep 0.05; done
  local pp tp
  # --mps: with its default (max) rate sockperf sizes its sequence table for
  # kernel-like rates and aborts ("_seqN > m_maxSequenceNo") on a faster path.
  pp=$(taskset -c $cli_cpu timeout $((secs + 20)) "$@" sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" \
         -t "$secs" --mps=2000000 2>&1)
  tp=$(taskset -c $cli_cpu timeout $((secs + 20)) "$@" sockperf throughput --tcp -i 127.0.0.1 -p "$port" -t "$secs" -m 100 2>&1)
  if [[ $label == offload ]]; then
    echo "   while it runs, offloadctl sees:"
    ctl stats | sed 's/^/     /'
  fi
  kill "$spid" 2>/dev/null
  wait "$spid" 2>/dev/null
  result[$label,p50]=$(grep -oP 'percentile 50.000 =\s*\K[0-9.]+' <<<"$pp")
  result[$label,p99]=$(grep -oP 'percentile 99.000 =\s*\K[0-9.]+' <<<"$pp")
  result[$label,rate]=$(grep -oP 'Message Rate is \K[0-9]+' <<<"$tp")
  if [[ -z ${result[$label,p50]} || -z ${result[$label,rate]} ]]; then
    echo "   ($label run did not complete; sockperf said:)"
    grep -iE 'error|warn' <<<"$pp$tp" | head -5 | sed 's/^/     /'
  fi
}

echo "== sockperf over the kernel (loopback TCP), ${secs}s per test"
run_case kernel env
echo "== the same sockperf binaries under offload"
run_case offload "$bin/client/offload" --
ratio() { python3 -c "import sys; a,b=sys.argv[1:]; print(f'{float(a)/float(b):.1f}x' if a and b and float(b) else 'n/a')" "$1" "$2"; }
echo
echo "== result (same machine, same run; latency is sockperf's one-way estimate)"
printf '   %-34s %12s %12s %10s\n' "metric" "kernel" "offload" "gain"
printf '   %-34s %12s %12s %10s\n' "TCP ping-pong p50 latency (usec)" "${result[kernel,p50]:-?}" "${result[offload,p50]:-?}" "$(ratio "${result[kernel,p50]}" "${result[offload,p50]}")"
printf '   %-34s %12s %12s %10s\n' "TCP ping-pong p99 latency (usec)" "${result[kernel,p99]:-?}" "${result[offload,p99]:-?}" "$(ratio "${result[kernel,p99]}" "${result[offload,p99]}")"
printf '   %-34s %12s %12s %10s\n' "TCP throughput, 100 B msgs (msg/s)" "${result[kernel,rate]:-?}" "${result[offload,rate]:-?}" "$(ratio "${result[offload,rate]}" "${result[kernel,rate]}")"

echo
echo "== the control plane: a rule added at run time steers new sockets"
port=$(free_port)
ctl add-rule "use os tcp_server *:$port" | sed 's/^/   /'
"$bin/client/offload" -- sockperf server --tcp -i 127.0.0.1 -p "$port" >"$run/server-rule.log" 2>&1 &
spid=$!
pids+=($spid)
for _ in $(seq 1 100); do grep -q "listen on" "$run/server-rule.log" 2>/dev/null && break; sleep 0.05; done
echo "   a server on port $port under offload is now served by the kernel:"
ctl stats -p "$spid" | grep -E 'kernel|offloaded|fd ' | sed 's/^/     /'
kill "$spid" 2>/dev/null
echo
echo "== done. Try it yourself: offloadd --help, offloadctl --help, offload --help; README.md"
