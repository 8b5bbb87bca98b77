#!/usr/bin/env bash
# UDP multicast on the wire (issue 5): offloadd owning one end of a veth
# pair through AF_XDP, multicast applications under the `offload` launcher
# on that end, plain Linux multicast on the other.
#
#   ns A (offloadd, va 198.18.12.1/24) <--veth--> ns B (kernel, vb 198.18.12.2/24)
#   both: 224.0.0.0/4 routed on the veth
#
# Checks (PASS/FAIL/SKIP lines; any FAIL fails the test):
#   1 receive: two offloaded sockets in A (two processes) bound to one port
#     and joined to 239.1.2.3 each get every datagram a kernel sender in B
#     sends (300 at a low rate); the NIC and engine counted them in, the
#     socket rows say path engine with the group on the engine; one member
#     drops its membership half-way and then receives nothing more while the
#     other keeps receiving (the group stays steered; both sockets set
#     IP_MULTICAST_ALL 0, the engine's semantics, else Linux keeps
#     delivering to the port while any socket is a member); once both are gone
#     the group is unsteered (steered_flows back to where it was)
#   2 send, IP_MULTICAST_TTL 3, IP_MULTICAST_LOOP 0, IP_MULTICAST_IF set:
#     an offloaded sender in A -> a kernel receiver in B joined to the group
#     gets every datagram once, each with TTL 3; the NIC/engine counted
#     them out and the socket row counts them as multicast through the
#     engine, no loop copies
#   3 send with the defaults (TTL 1, loop on, no IP_MULTICAST_IF): the
#     kernel receiver in B gets every datagram once with TTL 1 through the
#     engine, and a kernel receiver in A joined to the group gets the
#     host-local copies (loop copies sent through the kernel with TTL 0,
#     counted in the socket row)
#   4 TTL 0: stays on the host (the kernel's loopback), nothing reaches B
#
# Usage: udp_multicast_test.sh OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD MCAST_PEER
# Needs root (namespaces, XDP).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 5 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD MCAST_PEER" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
OFFLOAD=$(realpath "$3")
LIBOFFLOAD=$(realpath "$4")
PEER=$(realpath "$5")

# pass/fail/skip/note, require_root, cleanup, bg, wait_file, port,
# setup_veth, start_daemon (lib/harness.sh).
source "$(dirname "$0")/../lib/harness.sh"
require_root udp_multicast "needs root (network namespaces, XDP)"
for tool in ip jq python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: harness needs $tool"
    exit 1
  fi
done

NS_A=ofm_A$$
NS_B=ofm_B$$
IP_A=198.18.12.1
IP_B=198.18.12.2
GROUP=239.1.2.3
WORK=$(mktemp -d /tmp/offload-mcast.XXXXXX)
chmod 755 "$WORK"
RUN=$WORK/run
mkdir -p "$RUN"

trap cleanup EXIT

IN_A=(ip netns exec "$NS_A")
IN_B=(ip netns exec "$NS_B")
OFF_A=(ip netns exec "$NS_A" env OFFLOAD_RUN_DIR="$RUN" OFFLOAD_LIBRARY="$LIBOFFLOAD" "$OFFLOAD" --)

ctl() { "$OFFLOADCTL" --socket "$RUN/control.sock" "$@"; }

# nic_snap: "nic_rx nic_tx engine_rx engine_tx steered_flows".
nic_snap() {
  ctl --json stats 2>/dev/null | jq -r '
    def sum(f): (map(f // "0" | tonumber) | add) // 0;
    [((.nics // []) | sum(.rx_packets), sum(.tx_packets)),
     ((.engines // []) | sum(.rx_packets), sum(.tx_packets)),
     ((.nics // []) | sum(.steered_flows))] | @tsv' 2>/dev/null ||
    echo "-1 -1 -1 -1 -1"
}
nic_delta() {
  local -a b=($1) a=($2)
  D_RX=$((a[0] - b[0])); D_TX=$((a[1] - b[1])); D_ERX=$((a[2] - b[2])); D_ETX=$((a[3] - b[3]))
  STEERED=${a[4]}
}

# socket_rows: JSON array of the offloaded processes' socket rows.
socket_rows() {
  ctl --json stats -v 2>/dev/null | jq -c '[(.processes // [])[] | (.sockets // [])[]]' 2>/dev/null
}
# row_sum FIELD: sum of FIELD over the UDP socket rows.
row_sum() {
  socket_rows | jq --arg f "$1" '[.[] | select(.protocol == "udp") | (.[$f] // "0" | tonumber)] | add // 0' 2>/dev/null || echo 0
}

# wait_line LOG REGEX: polls up to 20 s for a line in LOG.
wait_line() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1  # poll interval
  done
  return 1
}

# got LOG: "N distinct dups ttls" from a recv log's "got" line.
got() { sed -n 's/^got \([0-9]*\) distinct \([0-9]*\) dups \([0-9]*\) ttl \([^ ]*\) .*/\1 \2 \3 \4/p' "$1" | tail -1; }

next_port=$((10000 + RANDOM % 20000))

# ---- setup --------------------------------------------------------------
if ! { setup_veth &&
       ip -n "$NS_A" route add 224.0.0.0/4 dev va && ip -n "$NS_B" route add 224.0.0.0/4 dev vb; }; then
  echo "FAIL setup: cannot create namespaces/veth"
  exit 1
fi

start_daemon "$NS_A" "$RUN" va || exit 1
DAEMON=$DAEMON_PID

# ---- 1: offloaded receivers <- kernel sender ------------------------------
port
P1=$PORT
base=$(nic_snap)
stop1=$WORK/stop1
bg "$WORK/r1.log" timeout -k 5 60 "${OFF_A[@]}" python3 "$PEER" recv --group "$GROUP" \
  --port "$P1" --ifaddr "$IP_A" --port-file "$WORK/r1.port" --count 300 --drop-after 100 --mc-all 0 \
  --settle 0.3 --after 0.8 --stop-file "$stop1" --idle 20
R1=$BG_PID
bg "$WORK/r2.log" timeout -k 5 60 "${OFF_A[@]}" python3 "$PEER" recv --group "$GROUP" \
  --port "$P1" --port-file "$WORK/r2.port" --count 300 --mc-all 0 --stop-file "$stop1" --idle 20
R2=$BG_PID
if wait_file "$WORK/r1.port" && wait_file "$WORK/r2.port"; then
  # Both rows on the engine with the group joined there before sending.
  for ((i = 0; i < 50; i++)); do
    [[ $(row_sum multicast_groups_engine) -ge 2 ]] && break
    sleep 0.1  # poll interval
  done
  groups_engine=$(row_sum multicast_groups_engine)
  nic_delta "$base" "$(nic_snap)"
  steered_joined=$STEERED
  before=$(nic_snap)
  timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" send --group "$GROUP" --port "$P1" \
    --ifaddr "$IP_B" --count 300 --interval 0.005 >"$WORK/s1.log" 2>&1
  wait_line "$WORK/r2.log" '^got' || true
  wait_line "$WORK/r1.log" '^got' || true
  nic_delta "$before" "$(nic_snap)"
  engine_rows=$(socket_rows | jq '[.[] | select(.path == "engine")] | length' 2>/dev/null)
  read -r n2 d2 u2 _ <<<"$(got "$WORK/r2.log")"
  if [[ ${n2:-0} -eq 300 && ${d2:-0} -eq 300 && ${u2:-1} -eq 0 ]]; then
    pass "receive: the member that stayed got all 300 datagrams of $GROUP from the kernel sender in B, no duplicates"
  else
    fail "receive: member 2 got '${n2:-?} distinct ${d2:-?} dups ${u2:-?}' of 300: $(tail -n 2 "$WORK/r2.log" | tr '\n' ' ')"
  fi
  if ((groups_engine >= 2 && ${engine_rows:-0} >= 2 && D_RX >= 300 && D_ERX >= 300)); then
    pass "receive: carried by the engine (groups joined on the engine $groups_engine, rows on path engine $engine_rows, nic rx $D_RX, engine rx $D_ERX)"
  else
    fail "receive: not shown on the engine (groups joined on the engine $groups_engine, rows on path engine ${engine_rows:-?}, nic rx $D_RX, engine rx $D_ERX; want >= 2, >= 2, >= 300, >= 300)"
  fi
  q1=$(sed -n 's/^queued \([0-9]*\)/\1/p' "$WORK/r1.log")
  a1=$(sed -n 's/^after-drop \([0-9]*\)/\1/p' "$WORK/r1.log")
  if grep -q '^dropped after 100' "$WORK/r1.log" && [[ ${a1:-1} -eq 0 ]]; then
    pass "drop membership: member 1 received nothing in 0.8 s after IP_DROP_MEMBERSHIP (queued before the drop: ${q1:-?}) while the other member kept receiving"
  else
    fail "drop membership: member 1 after-drop '${a1:-?}' (queued ${q1:-?}): $(tr '\n' ' ' <"$WORK/r1.log")"
  fi
  touch "$stop1"
  wait "$R1" 2>/dev/null
  wait "$R2" 2>/dev/null
  # The last member gone: the group is unsteered.
  b=(${base})
  for ((i = 0; i < 50; i++)); do
    nic_delta "$base" "$(nic_snap)"
    ((STEERED <= b[4])) && break
    sleep 0.1  # poll interval
  done
  if ((steered_joined > b[4] && STEERED <= b[4])); then
    pass "unsteer: steered flows $((b[4])) -> $steered_joined with members -> $STEERED after they closed"
  else
    fail "unsteer: steered flows $((b[4])) -> $steered_joined with members -> $STEERED after they closed"
  fi
else
  fail "receive: offloaded receivers did not start: $(tail -n 2 "$WORK/r1.log" "$WORK/r2.log" | tr '\n' ' ')"
fi

# send_case NAME COUNT SENDER_ARGS... : an offloaded sender in A, a kernel
# receiver in B and one in A, all on a fresh port; sets N_B/D_B/U_B/TTL_B,
# N_A (local receiver), ROW_ENGINE/ROW_KERNEL/ROW_LOOP and the NIC deltas.
send_case() {
  local name=$1 count=$2
  shift 2
  port
  local p=$PORT stop=$WORK/stop-$name go=$WORK/go-$name
  bg "$WORK/$name-rb.log" timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" recv --group "$GROUP" \
    --port "$p" --ifaddr "$IP_B" --port-file "$WORK/$name-rb.port" --count "$count" --idle 3 --recv-ttl
  local rb=$BG_PID
  bg "$WORK/$name-ra.log" timeout -k 5 60 "${IN_A[@]}" python3 "$PEER" recv --group "$GROUP" \
    --port "$p" --ifaddr "$IP_A" --port-file "$WORK/$name-ra.port" --count "$count" --idle 3 --recv-ttl
  local ra=$BG_PID
  wait_file "$WORK/$name-rb.port"
  wait_file "$WORK/$name-ra.port"
  local before
  before=$(nic_snap)
  bg "$WORK/$name-s.log" timeout -k 5 60 "${OFF_A[@]}" python3 "$PEER" send --group "$GROUP" \
    --port "$p" --count "$count" --interval 0.002 --stop-file "$stop" --idle 20 "$@"
  local s=$BG_PID
  wait_line "$WORK/$name-s.log" '^(sent|FAIL)'
  wait "$rb" 2>/dev/null
  wait "$ra" 2>/dev/null
  nic_delta "$before" "$(nic_snap)"
  ROW_ENGINE=$(row_sum multicast_tx_engine)
  ROW_KERNEL=$(row_sum multicast_tx_kernel)
  ROW_LOOP=$(row_sum multicast_loop_copies)
  touch "$stop"
  wait "$s" 2>/dev/null
  read -r N_B D_B U_B TTL_B <<<"$(got "$WORK/$name-rb.log")"
  read -r N_A _ _ _ <<<"$(got "$WORK/$name-ra.log")"
}

# ---- 2: offloaded sender, TTL 3, loop off, IP_MULTICAST_IF -----------------
send_case ttl3 200 --ttl 3 --loop 0 --ifaddr "$IP_A"
if [[ ${N_B:-0} -eq 200 && ${D_B:-0} -eq 200 && ${U_B:-1} -eq 0 && ${TTL_B:-} == 3 ]]; then
  pass "send TTL 3, loop off: the kernel receiver in B got all 200 datagrams once, TTL 3"
else
  fail "send TTL 3, loop off: B got '${N_B:-?} distinct ${D_B:-?} dups ${U_B:-?} ttl ${TTL_B:-?}': $(tail -n 2 "$WORK/ttl3-rb.log" "$WORK/ttl3-s.log" | tr '\n' ' ')"
fi
if ((ROW_ENGINE == 200 && ROW_LOOP == 0 && D_TX >= 200 && D_ETX >= 200)) && [[ ${N_A:-0} -eq 0 ]]; then
  pass "send TTL 3, loop off: through the engine (socket row: multicast tx engine $ROW_ENGINE, kernel $ROW_KERNEL, loop copies $ROW_LOOP; nic tx $D_TX, engine tx $D_ETX); no copy for the local receiver in A"
else
  fail "send TTL 3, loop off: socket row multicast tx engine $ROW_ENGINE kernel $ROW_KERNEL loop $ROW_LOOP, nic tx $D_TX engine tx $D_ETX, local receiver got ${N_A:-?} (want 200, 0, >= 200, >= 200, 0)"
fi

# ---- 3: offloaded sender with the defaults (TTL 1, loop on) ----------------
send_case defaults 200
if [[ ${N_B:-0} -eq 200 && ${D_B:-0} -eq 200 && ${U_B:-1} -eq 0 && ${TTL_B:-} == 1 ]]; then
  pass "send defaults: the kernel receiver in B got all 200 datagrams once, TTL 1"
else
  fail "send defaults: B got '${N_B:-?} distinct ${D_B:-?} dups ${U_B:-?} ttl ${TTL_B:-?}': $(tail -n 2 "$WORK/defaults-rb.log" "$WORK/defaults-s.log" | tr '\n' ' ')"
fi
if ((ROW_ENGINE == 200 && ROW_LOOP == 200 && D_ETX >= 200)) && [[ ${N_A:-0} -eq 200 ]]; then
  pass "send defaults, loop on: wire copies through the engine ($ROW_ENGINE, engine tx $D_ETX), host-local copies through the kernel ($ROW_LOOP loop copies); the kernel receiver in A got all 200"
else
  fail "send defaults, loop on: socket row multicast tx engine $ROW_ENGINE kernel $ROW_KERNEL loop $ROW_LOOP, engine tx $D_ETX, local receiver in A got ${N_A:-?} (want 200, 200, >= 200, 200)"
fi

# ---- 4: TTL 0 stays on the host ---------------------------------------------
send_case ttl0 50 --ttl 0
if [[ ${N_B:-0} -eq 0 && ${N_A:-0} -eq 50 && $ROW_ENGINE -eq 0 && $ROW_KERNEL -eq 50 ]]; then
  pass "send TTL 0: host only (local receiver in A got 50, B got 0, 50 sent through the kernel)"
else
  fail "send TTL 0: A got ${N_A:-?}, B got ${N_B:-?}, socket row multicast tx engine $ROW_ENGINE kernel $ROW_KERNEL (want 50, 0, 0, 50)"
fi

if ! kill -0 "$DAEMON" 2>/dev/null; then
  fail "offloadd died during the test: $(tail -5 "$WORK/offloadd-$NS_A.log" | tr '\n' ' ')"
fi
echo "summary: $passes passed, $failures failed, $skips skipped"
((failures == 0))
