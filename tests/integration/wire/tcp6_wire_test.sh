#!/usr/bin/env bash
# TCP over IPv6 on the wire (issue 18): offloadd owning one end of a veth
# pair through AF_XDP, applications under the `offload` launcher on that
# end, plain Linux on the other; addresses from 2001:db8::/32 (and
# 198.18.0.0/15) inside the test's namespaces only.
#
#   ns A (offloadd, va 198.18.12.1/24 2001:db8:12::1/64)
#     <--veth-->  ns B (kernel, vb 198.18.12.2/24 2001:db8:12::2/64)
#
# Checks (PASS/FAIL lines; any FAIL fails the test):
#   1 offloaded IPv6 client -> kernel IPv6 server: 4 MiB each way, every
#     byte checked on both sides; names as the kernel gives them; the
#     socket row says tcp6 on the engine; the engine's counters grew
#   2 kernel IPv6 client -> offloaded v6-only IPv6 server: the same
#   3 a dual-stack offloaded server (:: without IPV6_V6ONLY) serves a kernel
#     IPv4 client (seen as ::ffff:198.18.12.2) and a kernel IPv6 client, both
#     through the engine
#   4 an IPv4 listener and a v6-only IPv6 listener of one process on one
#     port each accept their own family's wire clients
#   5 neighbour discovery and ICMPv6 stay with the kernel: the kernel holds
#     the neighbour entry the engine asked for; B pings A's IPv6 address
#     (skipped without ping); no IPv6 frame reached the engine unserved
#
# Usage: tcp6_wire_test.sh OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD XFER
# Needs root (namespaces, XDP).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 5 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD XFER" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
OFFLOAD=$(realpath "$3")
LIBOFFLOAD=$(realpath "$4")
XFER=$(realpath "$5")

# require_root: a run without root reports this test skipped, not passed.
source "$(dirname "$0")/../lib/harness.sh"
require_root tcp6_wire "needs root (network namespaces, XDP)"
for tool in ip jq python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: harness needs $tool"; exit 1; }
done

NS_A=of6_A$$
NS_B=of6_B$$
WORK=$(mktemp -d /tmp/offload-tcp6wire.XXXXXX)
chmod 755 "$WORK"
RUN=$WORK/run
mkdir -p "$RUN"
trap cleanup EXIT

IN_A=(ip netns exec "$NS_A")
IN_B=(ip netns exec "$NS_B")
OFF_A=(ip netns exec "$NS_A" env OFFLOAD_RUN_DIR="$RUN" OFFLOAD_LIBRARY="$LIBOFFLOAD" "$OFFLOAD" --)
ctl() { "${IN_A[@]}" "$OFFLOADCTL" --socket "$RUN/control.sock" "$@"; }
engine_rx() {
  ctl --json stats 2>/dev/null | jq -r '[(.engines // [])[] | (.rx_packets // "0" | tonumber)] | add // 0' 2>/dev/null || echo 0
}
engine_counter() {
  ctl --json stats 2>/dev/null |
    jq -r --arg n "$1" '[(.engines // [])[] | (.counters[$n] // "0" | tonumber)] | add // 0' 2>/dev/null || echo -1
}

ip netns add "$NS_A" && ip netns add "$NS_B" || { echo "FAIL: netns"; exit 1; }
ip link add va netns "$NS_A" type veth peer name vb netns "$NS_B"
ip -n "$NS_A" addr add 198.18.12.1/24 dev va
ip -n "$NS_B" addr add 198.18.12.2/24 dev vb
# DAD left to run: offloadd starts once it finished (the condition below).
ip -n "$NS_A" addr add 2001:db8:12::1/64 dev va
ip -n "$NS_B" addr add 2001:db8:12::2/64 dev vb
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
dad_done() {  # NS DEV: the global address is there and nothing is tentative
  local out
  out=$(ip -n "$1" -6 addr show dev "$2")
  [[ $out == *2001:db8:12* && $out != *tentative* ]]
}
for _ in $(seq 100); do dad_done "$NS_A" va && dad_done "$NS_B" vb && break; sleep 0.1; done
dad_done "$NS_A" va && dad_done "$NS_B" vb || { echo "FAIL: DAD did not finish"; exit 1; }

cat >"$WORK/offloadd.conf" <<EOC
interfaces { name: "va" driver: DRIVER_AF_XDP }
num_cores: 1
EOC
: >"$WORK/rules.conf"
launch_daemon "$NS_A" "$RUN" "$WORK/offloadd.log" --config "$WORK/offloadd.conf" \
  --rules "$WORK/rules.conf" || { echo "FAIL: offloadd did not start"; exit 1; }

BYTES=$((4 * 1024 * 1024))
wait_listening() { for _ in $(seq 200); do grep -q listening "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# 1. Offloaded IPv6 client -> kernel server.
bg "$WORK/s1.log" "${IN_B[@]}" python3 "$XFER" server 2001:db8:12::2 7101 1 --v6only
wait_listening "$WORK/s1.log" || fail "kernel IPv6 server did not listen"
rx0=$(engine_rx)
bg "$WORK/c1.log" timeout -k 5 120 "${OFF_A[@]}" python3 "$XFER" client 2001:db8:12::2 7101 "$BYTES" \
  "$WORK/release1"
C1=$BG_PID
for _ in $(seq 600); do grep -q sent "$WORK/c1.log" && break; kill -0 "$C1" 2>/dev/null || break; sleep 0.1; done
# The connection is held open: its socket row, as offloadctl shows it.
rows=$(ctl stats -v 2>/dev/null | grep -A1 -E "tcp6 [a-z]+ +\[2001:db8:12::1\]:[0-9]+ -> \[2001:db8:12::2\]:7101" || true)
touch "$WORK/release1"
wait "$C1"; st=$?
rx1=$(engine_rx)
grep -q "ok $BYTES name 2001:db8:12::1 peer 2001:db8:12::2" "$WORK/c1.log" && [[ $st -eq 0 ]] \
  && pass "offloaded IPv6 client: $BYTES B echoed and verified, names as the kernel's" \
  || fail "offloaded IPv6 client: $(cat "$WORK/c1.log")"
for _ in $(seq 100); do grep -q "^peer" "$WORK/s1.log" && break; sleep 0.05; done
grep -q "peer 2001:db8:12::1 ok $BYTES" "$WORK/s1.log" && pass "kernel IPv6 server received the $BYTES B intact" \
  || fail "kernel IPv6 server: $(cat "$WORK/s1.log")"
grep -q "offloaded (engine)" <<<"$rows" && pass "stats -v listed the connection as tcp6, offloaded (engine)" \
  || fail "stats -v rows: ${rows:-none seen}"
(( rx1 - rx0 > 1000 )) && pass "the engine received $((rx1 - rx0)) packets for it" \
  || fail "the engine did not carry it (rx $rx0 -> $rx1)"

# 2. Kernel IPv6 client -> offloaded v6-only server.
bg "$WORK/s2.log" "${OFF_A[@]}" python3 "$XFER" server :: 7102 1 --v6only
wait_listening "$WORK/s2.log" || fail "offloaded IPv6 server did not listen"
rx0=$(engine_rx)
timeout -k 5 120 "${IN_B[@]}" python3 "$XFER" client 2001:db8:12::1 7102 "$BYTES" >"$WORK/c2.log" 2>&1; st=$?
rx1=$(engine_rx)
for _ in $(seq 100); do grep -q "^peer" "$WORK/s2.log" && break; sleep 0.05; done
[[ $st -eq 0 ]] && grep -q "peer 2001:db8:12::2 ok $BYTES" "$WORK/s2.log" \
  && pass "offloaded v6-only server: $BYTES B each way verified (client: $(cat "$WORK/c2.log"))" \
  || fail "offloaded v6-only server: client $(cat "$WORK/c2.log") server $(cat "$WORK/s2.log")"
(( rx1 - rx0 > 1000 )) && pass "the engine received $((rx1 - rx0)) packets for it" \
  || fail "the engine did not carry it (rx $rx0 -> $rx1)"

# 3. Dual-stack offloaded server: a kernel IPv4 and a kernel IPv6 client.
bg "$WORK/s3.log" "${OFF_A[@]}" python3 "$XFER" server :: 7103 2 --dual
wait_listening "$WORK/s3.log" || fail "offloaded dual-stack server did not listen"
for fam in 198.18.12.1 2001:db8:12::1; do
  rx0=$(engine_rx)
  timeout -k 5 120 "${IN_B[@]}" python3 "$XFER" client "$fam" 7103 $((BYTES / 4)) >"$WORK/c3.log" 2>&1; st=$?
  rx1=$(engine_rx)
  [[ $st -eq 0 ]] && (( rx1 - rx0 > 200 )) \
    && pass "dual-stack offloaded server, kernel client to $fam: verified, engine rx +$((rx1 - rx0))" \
    || fail "dual-stack server, client to $fam: $(cat "$WORK/c3.log"), engine rx $rx0 -> $rx1"
done
for _ in $(seq 100); do [[ $(grep -c "^peer" "$WORK/s3.log") -ge 2 ]] && break; sleep 0.05; done
grep -q "peer ::ffff:198.18.12.2 ok" "$WORK/s3.log" && grep -q "peer 2001:db8:12::2 ok" "$WORK/s3.log" \
  && pass "the dual-stack server saw ::ffff:198.18.12.2 and 2001:db8:12::2, data intact" \
  || fail "dual-stack server: $(cat "$WORK/s3.log")"

# 4. One offloaded process listening on 0.0.0.0:7104 (AF_INET) and on
#    [::]:7104 with IPV6_V6ONLY (nginx's `listen 80; listen [::]:80
#    ipv6only=on`): each socket accepts its own family's wire clients.
cat >"$WORK/two.py" <<'EOP'
import select, socket
l4 = socket.socket(socket.AF_INET)
l4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l4.bind(("0.0.0.0", 7104)); l4.listen(8)
l6 = socket.socket(socket.AF_INET6)
l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
l6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l6.bind(("::", 7104)); l6.listen(8)
print("listening", flush=True)
for _ in range(2):
    r, _, _ = select.select([l4, l6], [], [], 60)
    for l in r:
        c, peer = l.accept()
        c.sendall(c.recv(10))
        print("accepted on", "v4" if l is l4 else "v6", "from", peer[0], flush=True)
EOP
bg "$WORK/two.log" "${OFF_A[@]}" python3 "$WORK/two.py"
wait_listening "$WORK/two.log" || fail "two-listener server did not listen"
for dst in 198.18.12.1 2001:db8:12::1; do
  timeout -k 5 30 "${IN_B[@]}" python3 -c "import socket; s = socket.create_connection((\"$dst\", 7104)); s.sendall(b\"t\"); assert s.recv(1) == b\"t\"" \
    || fail "client to $dst:7104"
done
for _ in $(seq 100); do [[ $(grep -c "^accepted" "$WORK/two.log") -ge 2 ]] && break; sleep 0.05; done
grep -q "accepted on v4 from 198.18.12.2" "$WORK/two.log" && grep -q "accepted on v6 from 2001:db8:12::2" "$WORK/two.log" \
  && pass "an IPv4 and a v6-only listener on one port each accept their own family" \
  || fail "two listeners on one port: $(cat "$WORK/two.log")"

# 5. ICMPv6 and neighbour discovery stay with the kernel.
neigh=$(ip -n "$NS_A" -6 neigh show dev va 2001:db8:12::2)
[[ $neigh == *lladdr* ]] && pass "the kernel resolved the engine's IPv6 next hop by ND ($neigh)" \
  || fail "no kernel neighbour entry for 2001:db8:12::2: $neigh"
if command -v ping >/dev/null; then
  "${IN_B[@]}" ping -6 -c 2 -W 2 2001:db8:12::1 >"$WORK/ping.log" 2>&1 \
    && pass "ICMPv6 echo to the offloaded interface answered by the kernel" \
    || fail "ping -6: $(cat "$WORK/ping.log")"
else
  # No ping here: one ICMPv6 echo from a raw socket (the kernel fills in
  # the ICMPv6 checksum).
  "${IN_B[@]}" python3 - 2001:db8:12::1 >"$WORK/ping.log" 2>&1 <<'EOP' \
    && pass "ICMPv6 echo to the offloaded interface answered by the kernel" \
    || fail "ICMPv6 echo: $(cat "$WORK/ping.log")"
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(5)
s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4f66, 1) + b"offload", (sys.argv[1], 0))
while True:
    data, peer = s.recvfrom(1500)
    if data[0] == 129 and data[4:6] == b"\x4f\x66":
        print("echo reply from", peer[0]); break
EOP
fi
[[ $(engine_counter ip.drop.ipv6_extension_header) -eq 0 && $(engine_counter ip.rx_ipv6_not_offloaded) -eq 0 ]] \
  && pass "no IPv6 frame reached the engine that it could not serve" \
  || fail "misdirected IPv6 frames: ext $(engine_counter ip.drop.ipv6_extension_header) other $(engine_counter ip.rx_ipv6_not_offloaded)"

# 6a. A link-local client of an offloaded dual-stack listener: the XDP
#     program leaves fe80::/10 to the kernel, whose listening socket the
#     application also accepts from (the engine serves global addresses).
ll_a=$(ip -n "$NS_A" -6 -o addr show dev va scope link | awk '{print $4}' | cut -d/ -f1 | head -1)
bg "$WORK/s7.log" "${OFF_A[@]}" python3 "$XFER" server :: 7107 1 --dual
wait_listening "$WORK/s7.log" || fail "offloaded dual-stack server (7107) did not listen"
timeout -k 5 60 "${IN_B[@]}" python3 "$XFER" client "$ll_a%vb" 7107 65536 >"$WORK/c7.log" 2>&1; st=$?
for _ in $(seq 100); do grep -q "^peer" "$WORK/s7.log" && break; sleep 0.05; done
[[ -n $ll_a && $st -eq 0 ]] && grep -q "peer fe80::.* ok 65536" "$WORK/s7.log" \
  && pass "a link-local client ($ll_a%vb) of an offloaded :: listener is served (by the kernel)" \
  || fail "link-local client to [$ll_a]:7107: client $(cat "$WORK/c7.log") server $(cat "$WORK/s7.log")"

# 6. The interface's IPv6 address replaced with `ip` while offloadd runs
#    (as when DAD finishes after it started, or an address is renumbered):
#    the next offloaded connection leaves from the new address, through the
#    engine, with no restart.
ip -n "$NS_A" addr del 2001:db8:12::1/64 dev va
ip -n "$NS_A" addr add 2001:db8:12::11/64 dev va nodad
seen=0
for _ in $(seq 200); do  # the daemon's own word that it follows (20 s bound)
  grep -q "IPv6 address is now 2001:db8:12::11/64" "$WORK/offloadd.log" && { seen=1; break; }
  sleep 0.1
done
((seen)) && pass "offloadd followed the new IPv6 address: $(grep -o "va's IPv6 address is now [^ ]* (was [^)]*)" "$WORK/offloadd.log" | tail -1)" \
  || fail "offloadd did not log the new IPv6 address: $(tail -5 "$WORK/offloadd.log")"
bg "$WORK/s6.log" "${IN_B[@]}" python3 "$XFER" server 2001:db8:12::2 7106 1 --v6only
wait_listening "$WORK/s6.log" || fail "kernel IPv6 server (7106) did not listen"
rx0=$(engine_rx)
timeout -k 5 120 "${OFF_A[@]}" python3 "$XFER" client 2001:db8:12::2 7106 $((BYTES / 4)) >"$WORK/c6.log" 2>&1; st=$?
rx1=$(engine_rx)
[[ $st -eq 0 ]] && grep -q "name 2001:db8:12::11 peer 2001:db8:12::2" "$WORK/c6.log" && (( rx1 - rx0 > 200 )) \
  && pass "after the address change an offloaded IPv6 client leaves from 2001:db8:12::11 through the engine (rx +$((rx1 - rx0)))" \
  || fail "after the address change: client $(cat "$WORK/c6.log"), engine rx $rx0 -> $rx1"

junit_write tcp6_wire
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
