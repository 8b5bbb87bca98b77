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
# carried them.
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
start_daemon "$NS_A" "$RUN" va || exit 1

pf=$WORK/rx.port
before=$(engine_rx)
bg "$WORK/rx.log" timeout -k 5 120 ip netns exec "$NS_A" env LD_PRELOAD="$LIBOFFLOAD" \
  OFFLOAD_RUN_DIR="$RUN" "$PROG" wire "$pf" "$COUNT"
RX=$BG_PID
if ! wait_file "$pf"; then
  fail "receiver did not start: $(tail -3 "$WORK/rx.log" | tr '\n' ' ')"
  junit_write udp_zcopy_wire_test
  exit 1
fi
RX_PORT=$(cat "$pf")

# The sender: datagram i is zcopy_prog's Payload(i, 1 + i*97 % 1400), sent
# once; the next only after the receiver's 4-byte ack of i.
timeout -k 5 120 ip netns exec "$NS_B" python3 - "$IP_A" "$RX_PORT" "$COUNT" >"$WORK/tx.log" 2>&1 <<'EOF'
import socket, struct, sys
dst = (sys.argv[1], int(sys.argv[2]))
count = int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
EOF
tx_rc=$?
wait "$RX"
rx_rc=$?
after=$(engine_rx)
if [[ $tx_rc -eq 0 && $rx_rc -eq 0 ]] && grep -q "^PASS wire" "$WORK/rx.log"; then
  pass "zero-copy receive and callback on the wire: $(grep '^wire:' "$WORK/rx.log")"
else
  fail "zero-copy on the wire: sender rc $tx_rc ($(tail -2 "$WORK/tx.log" | tr '\n' ' ')), receiver rc $rx_rc: $(tail -5 "$WORK/rx.log" | tr '\n' ' ')"
fi
if ((after - before >= COUNT)); then
  pass "the engine received $((after - before)) packets (>= $COUNT datagrams)"
else
  fail "the engine received $((after - before)) packets, expected >= $COUNT"
fi

junit_write udp_zcopy_wire_test
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
