#!/usr/bin/env bash
# The extra API's zero-copy receive and receive callback on the wire:
# offloadd owns one end of a veth pair through AF_XDP, an offloaded UDP
# receiver (zcopy_prog wire) takes a kernel sender's datagrams from the
# engine's RX ring in place.
#
#   ns A (offloadd, va 198.18.190.1/24) <--veth--> ns B (kernel, vb 198.18.190.2/24)
#
# The sender (Python, ns B) sends 400 datagrams of 1..1400 bytes, each after
# the receiver acked the one before (no drops, no timing). The receiver
# takes the first 200 with recvfrom_zcopy (OFFLOAD_MSG_ZCOPY on every one:
# the engine's ring is its only ring), holding up to 4 and freeing them
# newest first, then registers a callback that drops (and acks, from inside
# the callback) the odd ones and passes the even ones to recvfrom_zcopy;
# every byte and source address is checked. The engine's counters show it
# carried them. Then the same for an AF_INET6 socket on :: and an IPv6
# sender (2001:db8:190::/64).
#
# Usage: udp_zcopy_wire_test.sh OFFLOADD OFFLOADCTL LIBOFFLOAD ZCOPY_PROG
# Needs root (namespaces, XDP).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 4 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL LIBOFFLOAD ZCOPY_PROG" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
LIBOFFLOAD=$(realpath "$3")
PROG=$(realpath "$4")

# pass/fail/skip, require_root, cleanup (kills only our pids, deletes the
# namespaces), bg, wait_file, start_daemon, setup_veth, ctl.
source "$(dirname "$0")/../lib/harness.sh"
require_root udp_zcopy_wire "needs root (network namespaces, XDP)"
for tool in ip jq python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: harness needs $tool"
    exit 1
  fi
done

NS_A=h19A$$
NS_B=h19B$$
IP_A=198.18.190.1
IP_B=198.18.190.2
WORK=$(mktemp -d /tmp/offload-zcwire.XXXXXX)
chmod 755 "$WORK"
RUN=$WORK/run
mkdir -p "$RUN"
trap cleanup EXIT

COUNT=400

engine_rx() {
  ctl "$RUN" --json stats 2>/dev/null |
    jq -r '[(.engines // [])[] | (.rx_packets // "0" | tonumber)] | add // 0' 2>/dev/null ||
    echo -1
}

if ! setup_veth; then
  echo "FAIL setup: cannot create namespaces/veth"
  exit 1
fi
# IPv6 too (documentation prefix, inside the namespaces only; nodad: no
# duplicate can exist on a private veth).
ip -n "$NS_A" addr add 2001:db8:190::1/64 dev va nodad
ip -n "$NS_B" addr add 2001:db8:190::2/64 dev vb nodad
start_daemon "$NS_A" "$RUN" va || exit 1

# run_case CHECK DST FAMILY: zcopy_prog CHECK in A, the Python sender in B.
run_case() {
  local check=$1 dst=$2 family=$3
  local pf=$WORK/rx-$check.port
  local before after tx_rc rx_rc
  before=$(engine_rx)
  bg "$WORK/rx-$check.log" timeout -k 5 120 ip netns exec "$NS_A" env LD_PRELOAD="$LIBOFFLOAD" \
    OFFLOAD_RUN_DIR="$RUN" "$PROG" "$check" "$pf" "$COUNT"
  local rx=$BG_PID
  if ! wait_file "$pf"; then
    fail "$check: receiver did not start: $(tail -3 "$WORK/rx-$check.log" | tr '\n' ' ')"
    return
  fi
  # The sender: datagram i is zcopy_prog's Payload(i, 1 + i*97 % 1400),
  # sent once; the next only after the receiver's 4-byte ack of i.
  timeout -k 5 120 ip netns exec "$NS_B" python3 - "$dst" "$(cat "$pf")" "$COUNT" "$family" \
    >"$WORK/tx-$check.log" 2>&1 <<'EOF2'
import socket, struct, sys
dst = (sys.argv[1], int(sys.argv[2]))
count = int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if sys.argv[4] == "6" else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)  # a lost datagram or ack fails the run instead of hanging
def payload(seq, size):
    p = bytearray(((seq * 131 + i * 7) & 0xff) for i in range(size))
    if size >= 4:
        p[0:4] = struct.pack('<I', seq)
    return bytes(p)
for i in range(count):
    s.sendto(payload(i, 1 + (i * 97) % 1400), dst)
    ack, src = s.recvfrom(64)
    if len(ack) != 4 or struct.unpack('<I', ack)[0] != i:
        print('bad ack for', i, ack)
        sys.exit(1)
print('sent', count)
EOF2
  tx_rc=$?
  wait "$rx"
  rx_rc=$?
  after=$(engine_rx)
  if [[ $tx_rc -eq 0 && $rx_rc -eq 0 ]] && grep -q "^PASS $check" "$WORK/rx-$check.log"; then
    pass "$check: zero-copy receive and callback on the wire: $(grep '^wire:' "$WORK/rx-$check.log")"
  else
    fail "$check: zero-copy on the wire: sender rc $tx_rc ($(tail -2 "$WORK/tx-$check.log" | tr '\n' ' ')), receiver rc $rx_rc: $(tail -5 "$WORK/rx-$check.log" | tr '\n' ' ')"
  fi
  if ((after - before >= COUNT)); then
    pass "$check: the engine received $((after - before)) packets (>= $COUNT datagrams)"
  else
    fail "$check: the engine received $((after - before)) packets, expected >= $COUNT"
  fi
}

run_case wire "$IP_A" 4
# An AF_INET6 socket on :: and an IPv6 sender: the engine's records carry
# the 16-byte source in front of each datagram.
run_case wire6 2001:db8:190::1 6

junit_write udp_zcopy_wire_test
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
