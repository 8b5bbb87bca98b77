#!/usr/bin/env bash
# UDP on the wire (issue 5): offloadd owning one end of a veth pair through
# AF_XDP, UDP applications under the `offload` launcher on that end, plain
# Linux UDP on the other.
#
#   ns A (offloadd, va 198.18.11.1/24) <--veth--> ns B (kernel, vb 198.18.11.2/24)
#
# Checks (PASS/FAIL/SKIP lines; any FAIL fails the test):
#   1 offloaded echo client -> kernel echo server: payloads 1..1472 B through
#     the engine, 3000/9000 B through the kernel (fragmented), every echo
#     byte-compared and its recvfrom source checked; unconnected, then
#     connected; the same socket first talks to a kernel server on 127.0.0.1
#     (not on the wire) through its shadow
#   2 kernel echo client -> offloaded echo server (receive side, replies);
#     vb keeps its TX checksum offload on, and the engine's stack counters
#     show partial checksums accepted and none dropped
#   3 a full RX ring drops and counts: the socket row's `drops` grew, and
#     drained + dropped datagrams account for what the engine received
#   4 sockperf UDP ping-pong and throughput (-m 100), offloaded client vs a
#     kernel server and kernel client vs an offloaded server, each next to a
#     kernel<->kernel run in the same test (p50 and msg/s reported, never
#     asserted)
# Proof that the engine carried the traffic: the NIC queue and engine
# packet counters of `offloadctl --json stats` grew by at least the
# datagrams that had to use it, and the application's socket row showed
# path "engine".
#
# Usage: udp_wire_test.sh OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD UDP_ECHO
# Needs root (namespaces, XDP).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 5 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD UDP_ECHO" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
OFFLOAD=$(realpath "$3")
LIBOFFLOAD=$(realpath "$4")
ECHO=$(realpath "$5")

# pass/fail/skip/note, require_root, cleanup, bg, wait_file, port, sp_obs,
# sp_sent, setup_veth, start_daemon (lib/harness.sh).
source "$(dirname "$0")/../lib/harness.sh"
require_root udp_wire "needs root (network namespaces, XDP)"
for tool in ip jq python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: harness needs $tool"
    exit 1
  fi
done

NS_A=ofu_A$$
NS_B=ofu_B$$
IP_A=198.18.11.1
IP_B=198.18.11.2
WORK=$(mktemp -d /tmp/offload-udpwire.XXXXXX)
chmod 755 "$WORK"
RUN=$WORK/run
mkdir -p "$RUN"

trap cleanup EXIT

IN_A=(ip netns exec "$NS_A")
IN_B=(ip netns exec "$NS_B")
OFF_A=(ip netns exec "$NS_A" env OFFLOAD_RUN_DIR="$RUN" OFFLOAD_LIBRARY="$LIBOFFLOAD" "$OFFLOAD" --)

ctl() { "$OFFLOADCTL" --socket "$RUN/control.sock" "$@"; }

# nic_snap: "nic_rx nic_tx engine_rx engine_tx" packets.
nic_snap() {
  ctl --json stats 2>/dev/null | jq -r '
    def sum(f): (map(f // "0" | tonumber) | add) // 0;
    [((.nics // []) | sum(.rx_packets), sum(.tx_packets)),
     ((.engines // []) | sum(.rx_packets), sum(.tx_packets))] | @tsv' 2>/dev/null ||
    echo "-1 -1 -1 -1"
}
nic_delta() {
  local -a b=($1) a=($2)
  D_RX=$((a[0] - b[0])); D_TX=$((a[1] - b[1])); D_ERX=$((a[2] - b[2])); D_ETX=$((a[3] - b[3]))
}

# engine_counter NAME: the stack counter NAME summed over the engines.
engine_counter() {
  ctl --json stats 2>/dev/null |
    jq -r --arg n "$1" '[(.engines // [])[] | (.counters[$n] // "0" | tonumber)] | add // 0' \
      2>/dev/null || echo -1
}

# socket_rows: JSON array of the offloaded processes' socket rows.
socket_rows() {
  ctl --json stats -v 2>/dev/null | jq -c '[(.processes // [])[] | (.sockets // [])[]]' 2>/dev/null
}

# run_watch LOG CMD...: runs CMD (bounded by timeout) and polls the socket
# rows meanwhile; returns CMD's status, ENGINE_SEEN=1 if a row had path
# engine. A command shorter than the poll may end before any row is seen:
# then ENGINE_SEEN=2 (the counters, which count steered flows only, prove it).
run_watch() {
  local log=$1
  shift
  bg "$log" timeout -k 5 60 "$@"
  local pid=$BG_PID rows any=0
  ENGINE_SEEN=0
  while kill -0 "$pid" 2>/dev/null; do
    rows=$(socket_rows)
    [[ -n $rows && $rows != "[]" ]] && any=1
    if [[ $ENGINE_SEEN -eq 0 ]] && jq -e 'any(.[]; .path == "engine")' <<<"$rows" >/dev/null 2>&1; then
      ENGINE_SEEN=1
    fi
    sleep 0.1  # poll interval; bounded by the command's timeout
  done
  ((any == 0)) && ENGINE_SEEN=2
  wait "$pid"
}

# expect_engine NAME BEFORE MIN_RX MIN_TX: the NIC queues and the engine
# carried at least MIN_RX packets in and MIN_TX out since BEFORE (re-read
# for up to 5 s), and a socket row showed path engine.
expect_engine() {
  local name=$1 before=$2 min_rx=$3 min_tx=$4 i ok=0
  for ((i = 0; i < 50; i++)); do
    nic_delta "$before" "$(nic_snap)"
    if ((D_RX >= min_rx && D_ERX >= min_rx && D_TX >= min_tx && D_ETX >= min_tx)); then
      ok=1
      break
    fi
    sleep 0.1  # poll interval
  done
  local seen=yes
  ((ENGINE_SEEN == 0)) && seen=no
  ((ENGINE_SEEN == 2)) && seen="no row sampled (too short), counters only"
  local detail="nic rx $D_RX tx $D_TX, engine rx $D_ERX tx $D_ETX (want rx >= $min_rx, tx >= $min_tx); socket path engine seen: $seen"
  if ((ok == 1 && ENGINE_SEEN != 0)); then
    pass "$name: carried by the engine ($detail)"
  else
    fail "$name: not carried by the engine ($detail)"
  fi
}

next_port=$((10000 + RANDOM % 20000))

# echo_server LOG PREFIX... -- ARGS: starts udp_echo.py server, waits for its
# port; sets SRV_PID and SRV_PORT.
echo_server() {
  local log=$1
  shift
  local pf=$WORK/pf.$RANDOM
  bg "$log" timeout -k 5 90 "$@" python3 "$ECHO" server --port-file "$pf" --idle 15 "${ECHO_ARGS[@]}"
  SRV_PID=$BG_PID
  if ! wait_file "$pf"; then
    SRV_PORT=0
    return 1
  fi
  SRV_PORT=$(cat "$pf")
}

# ---- setup --------------------------------------------------------------
# vb keeps TX checksum offload on (the veth default): its datagrams reach
# AF_XDP with only the pseudo-header sum, which offloadd accepts on a veth.
if ! setup_veth --vb-tx-csum; then
  echo "FAIL setup: cannot create namespaces/veth"
  exit 1
fi

start_daemon "$NS_A" "$RUN" va || exit 1
DAEMON=$DAEMON_PID

# ---- 1: offloaded client -> kernel server ---------------------------------
ECHO_ARGS=(--bind "$IP_B")
echo_server "$WORK/echo-b.log" "${IN_B[@]}" || fail "echo server in B did not start"
B_PORT=$SRV_PORT
ECHO_ARGS=(--bind 127.0.0.1)
echo_server "$WORK/echo-lo.log" "${IN_A[@]}" || fail "loopback echo server in A did not start"
LO_PORT=$SRV_PORT

# 200 datagrams; sizes cycle through 7 values, 5 of which fit the engine's MTU.
SIZES=1,14,100,1000,1472,3000,9000
for mode in unconnected connected; do
  extra=()
  [[ $mode == connected ]] && extra=(--connect)
  before=$(nic_snap)
  run_watch "$WORK/client-$mode.log" "${OFF_A[@]}" python3 "$ECHO" client --dst "$IP_B:$B_PORT" \
    --count 200 --sizes "$SIZES" --also "127.0.0.1:$LO_PORT" "${extra[@]}"
  rc=$?
  if [[ $rc -eq 0 ]] && grep -q '^ok 200' "$WORK/client-$mode.log"; then
    pass "offloaded client ($mode) -> kernel server: 200 echoes verified (sizes $SIZES), source addresses right, loopback side channel through the kernel"
  else
    fail "offloaded client ($mode) -> kernel server: rc $rc: $(tail -3 "$WORK/client-$mode.log" | tr '\n' ' ')"
  fi
  # 200 * 5/7 datagrams fit the MTU: >= 142 each way through the engine.
  expect_engine "offloaded client ($mode)" "$before" 142 142
done

# ---- 2: kernel client -> offloaded server ---------------------------------
ECHO_ARGS=()
if echo_server "$WORK/echo-a.log" "${OFF_A[@]}"; then
  A_PORT=$SRV_PORT
  before=$(nic_snap)
  ENGINE_SEEN=0
  socket_rows | jq -e 'any(.[]; .path == "engine")' >/dev/null 2>&1 && ENGINE_SEEN=1
  timeout -k 5 60 "${IN_B[@]}" python3 "$ECHO" client --dst "$IP_A:$A_PORT" --count 200 \
    --sizes 1,14,100,1000,1472 >"$WORK/client-b.log" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]] && grep -q '^ok 200' "$WORK/client-b.log"; then
    pass "kernel client -> offloaded server: 200 echoes verified"
  else
    fail "kernel client -> offloaded server: rc $rc: $(tail -3 "$WORK/client-b.log" | tr '\n' ' ')"
  fi
  expect_engine "offloaded server" "$before" 200 200
  kill -TERM "$SRV_PID" 2>/dev/null
else
  fail "offloaded echo server in A did not start: $(tail -3 "$WORK/echo-a.log")"
fi

# ---- 2b: vb's partial checksums were accepted, nothing dropped for checksums
partial=$(engine_counter ip.rx_checksum_partial)
bad=$(engine_counter ip.rx_checksum_errors)
if [[ $partial -gt 0 && $bad -eq 0 ]]; then
  pass "veth peer with TX checksum offload on: $partial partial checksums accepted, 0 checksum drops"
else
  fail "veth peer with TX checksum offload on: partial checksums accepted $partial, checksum drops $bad"
fi

# ---- 3: a full RX ring drops and counts -----------------------------------
pf=$WORK/sink.port
go=$WORK/sink.go
stop=$WORK/sink.stop
bg "$WORK/sink.log" timeout -k 5 60 "${OFF_A[@]}" python3 "$ECHO" sink --port-file "$pf" \
  --go-file "$go" --stop-file "$stop" --idle 30
SINK=$BG_PID
if wait_file "$pf"; then
  SINK_PORT=$(cat "$pf")
  before=$(nic_snap)
  # 3000 x 1000 B as fast as the kernel sends them: ~3 MB against a 256 KiB ring.
  timeout -k 5 60 "${IN_B[@]}" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3000):
    s.sendto(b'x' * 1000, ('$IP_A', $SINK_PORT))
" >"$WORK/blast.log" 2>&1
  nic_delta "$before" "$(nic_snap)"
  received=$D_ERX
  touch "$go"
  wait_file "$WORK/sink.log"
  for ((i = 0; i < 50; i++)); do
    grep -q '^drained' "$WORK/sink.log" && break
    sleep 0.1  # poll interval
  done
  drained=$(grep -o '^drained [0-9]*' "$WORK/sink.log" | grep -o '[0-9]*$')
  drops=$(socket_rows | jq '[.[] | (.drops // "0" | tonumber)] | add // 0')
  touch "$stop"
  wait "$SINK"
  if [[ -n $drained && $drained -gt 0 && ${drops:-0} -gt 0 && $((drained + drops)) -le 3000 &&
        $((drained + drops)) -ge $((received * 9 / 10)) ]]; then
    pass "full RX ring: $drained datagrams kept, $drops dropped and counted in the socket's drops (engine received $received of 3000)"
  else
    fail "full RX ring: drained ${drained:-?}, socket drops ${drops:-?}, engine received $received of 3000"
  fi
else
  fail "sink did not start: $(tail -3 "$WORK/sink.log")"
fi

# ---- 4: sockperf -----------------------------------------------------------
declare -A P50 RATE
sp_p50() { grep -a 'percentile 50.000' "$1" | awk '{print $NF}' | tail -1; }
sp_rate() { grep -ao 'Message Rate is [0-9]*' "$1" | grep -o '[0-9]*$' | tail -1; }

# sp_pair NAME SERVER_PREFIX SERVER_BIND CLIENT_PREFIX DST_IP OFFLOADED_SIDE(client|server|none)
sp_pair() {
  local name=$1 srv_prefix=$2 srv_bind=$3 cli_prefix=$4 srv_ip=$5 side=$6
  local -a sp cp
  read -r -a sp <<<"$srv_prefix"
  read -r -a cp <<<"$cli_prefix"
  port
  bg "$WORK/sp-$name-srv.log" timeout -k 5 60 "${sp[@]}" sockperf server -i "$srv_bind" -p "$PORT"
  local srv=$BG_PID i
  # Up once it says it blocks on its socket (bounded).
  for ((i = 0; i < 100; i++)); do
    grep -qa 'to block on socket' "$WORK/sp-$name-srv.log" && break
    sleep 0.1  # poll interval
  done
  local before
  before=$(nic_snap)
  ENGINE_SEEN=0
  local pp=$WORK/sp-$name-pp.log tp=$WORK/sp-$name-tp.log
  if [[ $side == client ]]; then
    run_watch "$pp" "${cp[@]}" sockperf ping-pong -i "$srv_ip" -p "$PORT" -t 3
  else
    timeout -k 5 60 "${cp[@]}" sockperf ping-pong -i "$srv_ip" -p "$PORT" -t 3 >"$pp" 2>&1
    [[ $side == server ]] && socket_rows | jq -e 'any(.[]; .path == "engine")' >/dev/null 2>&1 &&
      ENGINE_SEEN=1
  fi
  timeout -k 5 60 "${cp[@]}" sockperf throughput -i "$srv_ip" -p "$PORT" -t 3 -m 100 >"$tp" 2>&1
  kill -TERM "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
  local obs sent
  obs=$(sp_obs "$pp")
  sent=$(sp_sent "$tp")
  P50[$name]=$(sp_p50 "$pp")
  RATE[$name]=$(sp_rate "$tp")
  if [[ ${obs:-0} -gt 0 && ${sent:-0} -gt 0 ]]; then
    pass "sockperf $name: ping-pong $obs observations (p50 ${P50[$name]} us), throughput ${RATE[$name]} msg/s"
  else
    fail "sockperf $name: ping-pong $(tail -2 "$pp" | tr '\n' ' '); throughput $(tail -2 "$tp" | tr '\n' ' ')"
    return
  fi
  if [[ $side == client ]]; then
    # Every ping and every throughput message left through the engine.
    expect_engine "sockperf $name" "$before" "$obs" $((obs + sent))
  elif [[ $side == server ]]; then
    # Every ping came in and every pong left through the engine; throughput
    # messages only need to arrive (the sender may outrun the veth).
    expect_engine "sockperf $name" "$before" "$obs" "$obs"
  fi
}

if command -v sockperf >/dev/null; then
  # Client in A, server in B: kernel reference, then the client offloaded.
  sp_pair kernel-client-A "${IN_B[*]}" "$IP_B" "${IN_A[*]}" "$IP_B" none
  sp_pair offloaded-client-A "${IN_B[*]}" "$IP_B" "${OFF_A[*]}" "$IP_B" client
  # Server in A (bound to INADDR_ANY), client in B: the same, server offloaded.
  sp_pair kernel-server-A "${IN_A[*]}" 0.0.0.0 "${IN_B[*]}" "$IP_A" none
  sp_pair offloaded-server-A "${OFF_A[*]}" 0.0.0.0 "${IN_B[*]}" "$IP_A" server
  echo "     sockperf UDP, same run (reported, not asserted):"
  printf '     %-34s %10s %12s\n' "pair" "p50 (us)" "msg/s (100 B)"
  for k in kernel-client-A offloaded-client-A kernel-server-A offloaded-server-A; do
    printf '     %-34s %10s %12s\n' "$k" "${P50[$k]:-n/a}" "${RATE[$k]:-n/a}"
  done
else
  skip "sockperf not installed"
fi

if ! kill -0 "$DAEMON" 2>/dev/null; then
  fail "offloadd died during the test: $(tail -5 "$WORK/offloadd-$NS_A.log" | tr '\n' ' ')"
fi
echo "summary: $passes passed, $failures failed, $skips skipped"
((failures == 0))
