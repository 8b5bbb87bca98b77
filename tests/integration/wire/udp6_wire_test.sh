#!/usr/bin/env bash
# AF_INET6 UDP on the wire (issue 18): offloadd owning one end of a veth
# pair through AF_XDP, UDP applications under the `offload` launcher on
# that end, plain Linux UDP on the other; addresses from 2001:db8::/32 and
# 198.18.0.0/15 inside the test's own namespaces (prefix u6w), ports
# 10000-30000.
#
#   ns A (offloadd, va 198.18.13.1/24 2001:db8:13::1/64)
#     <--veth-->  ns B (kernel, vb 198.18.13.2/24 2001:db8:13::2/64)
#
# Checks (PASS/FAIL lines; any FAIL fails the test):
#   1 an offloaded AF_INET6 client -> kernel IPv6 echo server: datagrams
#     of 1..1452 B byte-verified, recvfrom's source as Linux gives it
#     (sockaddr_in6, name length 28, flowinfo 0, scope 0); the same socket
#     to a v4-mapped kernel IPv4 server (::ffff:198.18.13.2); the engine's
#     udp.ipv6_out / udp.ipv6_in / udp.out / udp.in grew by at least what
#     was sent; `offloadctl stats -v` showed the socket as udp6 on the
#     engine
#   2 an offloaded dual-stack :: server: a kernel IPv6 client and a kernel
#     IPv4 client, both echoed (kernel clients verify), the server saw
#     2001:db8:13::2 and ::ffff:198.18.13.2 (name length 28), the engine's
#     counters grew by both
#   3 one offloaded process with 0.0.0.0:P (AF_INET) and a v6-only [::]:P:
#     each socket gets its own family's datagrams, through the engine; the
#     same with SO_REUSEADDR and a dual-stack [::]:P (Linux gives IPv4 to
#     the AF_INET socket)
#   4 a datagram larger than the engine's IPv6 payload (3000 B) goes
#     through the kernel (fragmented) and still echoes intact; the engine
#     dropped no zero-checksum or multicast IPv6 datagram
#
# Usage: udp6_wire_test.sh OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD PEER
# Needs root (namespaces, XDP).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 5 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD PEER" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
OFFLOAD=$(realpath "$3")
LIBOFFLOAD=$(realpath "$4")
PEER=$(realpath "$5")

source "$(dirname "$0")/../lib/harness.sh"
require_root udp6_wire "needs root (network namespaces, XDP)"
for tool in ip jq python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: harness needs $tool"; exit 1; }
done

NS_A=u6w_A$$
NS_B=u6w_B$$
WORK=$(mktemp -d /tmp/offload-udp6wire.XXXXXX)
chmod 755 "$WORK"
RUN=$WORK/run
mkdir -p "$RUN"
trap cleanup EXIT

IN_A=(ip netns exec "$NS_A")
IN_B=(ip netns exec "$NS_B")
OFF_A=(ip netns exec "$NS_A" env OFFLOAD_RUN_DIR="$RUN" OFFLOAD_LIBRARY="$LIBOFFLOAD" "$OFFLOAD" --)
ctl() { "${IN_A[@]}" "$OFFLOADCTL" --socket "$RUN/control.sock" "$@"; }
# engine_counter NAME: the stack counter NAME summed over the engines.
engine_counter() {
  ctl --json stats 2>/dev/null |
    jq -r --arg n "$1" '[(.engines // [])[] | (.counters[$n] // "0" | tonumber)] | add // 0' 2>/dev/null || echo -1
}
# counters: "udp.in udp.out udp.ipv6_in udp.ipv6_out"
counters() {
  echo "$(engine_counter udp.in) $(engine_counter udp.out) $(engine_counter udp.ipv6_in) $(engine_counter udp.ipv6_out)"
}
# delta BEFORE AFTER: sets D_IN D_OUT D_IN6 D_OUT6.
delta() {
  local -a b=($1) a=($2)
  D_IN=$((a[0] - b[0])); D_OUT=$((a[1] - b[1])); D_IN6=$((a[2] - b[2])); D_OUT6=$((a[3] - b[3]))
}
# wait_word LOG WORD: the program's own word that it is ready (10 s bound).
wait_word() { for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

ip netns add "$NS_A" && ip netns add "$NS_B" || { echo "FAIL: netns"; exit 1; }
ip link add va netns "$NS_A" type veth peer name vb netns "$NS_B"
ip -n "$NS_A" addr add 198.18.13.1/24 dev va
ip -n "$NS_B" addr add 198.18.13.2/24 dev vb
ip -n "$NS_A" addr add 2001:db8:13::1/64 dev va
ip -n "$NS_B" addr add 2001:db8:13::2/64 dev vb
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
dad_done() {  # NS DEV: the global address is there and nothing is tentative
  local out
  out=$(ip -n "$1" -6 addr show dev "$2")
  [[ $out == *2001:db8:13* && $out != *tentative* ]]
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

N=200  # datagrams per destination

# 1. Offloaded AF_INET6 client -> kernel IPv6 server, then (same socket) a
#    kernel IPv4 server through a v4-mapped destination.
bg "$WORK/s6.log" timeout -k 5 90 "${IN_B[@]}" python3 "$PEER" server --bind 2001:db8:13::2 --port 20101 --v6only
wait_word "$WORK/s6.log" listening || fail "kernel IPv6 server did not start"
bg "$WORK/s4.log" timeout -k 5 90 "${IN_B[@]}" python3 "$PEER" server --bind 198.18.13.2 --port 20101
wait_word "$WORK/s4.log" listening || fail "kernel IPv4 server did not start"
c0=$(counters)
bg "$WORK/c1.log" timeout -k 5 90 "${OFF_A[@]}" python3 "$PEER" client --port 20101 --count $N \
  --dst 2001:db8:13::2 --dst ::ffff:198.18.13.2 --hold "$WORK/release1"
C1=$BG_PID
wait_word "$WORK/c1.log" "^ok\|FAIL" || true
rows=$(ctl stats -v 2>/dev/null | grep -A1 -E "udp6 " || true)
touch "$WORK/release1"
wait "$C1"; st=$?
delta "$c0" "$(counters)"
[[ $st -eq 0 ]] && grep -q "^ok $((2 * N))" "$WORK/c1.log" \
  && pass "offloaded AF_INET6 client: $N datagrams each to 2001:db8:13::2 and ::ffff:198.18.13.2 echoed, bytes and sources (sockaddr_in6, length 28, flowinfo 0, scope 0) verified" \
  || fail "offloaded AF_INET6 client: $(cat "$WORK/c1.log")"
((D_OUT6 >= N && D_IN6 >= N)) \
  && pass "the engine carried the IPv6 datagrams (udp.ipv6_out +$D_OUT6, udp.ipv6_in +$D_IN6, want >= $N)" \
  || fail "IPv6 datagrams not through the engine: udp.ipv6_out +$D_OUT6 udp.ipv6_in +$D_IN6"
((D_OUT - D_OUT6 >= N && D_IN - D_IN6 >= N)) \
  && pass "the engine carried the v4-mapped peer's datagrams as IPv4 (udp.out-ipv6 +$((D_OUT - D_OUT6)), udp.in-ipv6 +$((D_IN - D_IN6)))" \
  || fail "v4-mapped datagrams not through the engine: udp.out +$D_OUT udp.in +$D_IN"
grep -q "offloaded (engine)" <<<"$rows" \
  && pass "stats -v showed the socket as udp6, offloaded (engine): $(tr -s ' \n' ' ' <<<"$rows")" \
  || fail "stats -v rows: ${rows:-none seen}; $(ctl stats -v 2>&1 | tail -15)"

# 2. Offloaded dual-stack :: server; kernel IPv6 and IPv4 clients.
bg "$WORK/s2.log" timeout -k 5 90 "${OFF_A[@]}" python3 "$PEER" server --bind :: --port 20102 --count $((2 * N))
wait_word "$WORK/s2.log" listening || fail "offloaded dual-stack server did not start"
for dst in 2001:db8:13::1 198.18.13.1; do
  c0=$(counters)
  v4=()
  [[ $dst == *.* ]] && v4=(--v4)
  timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" client "${v4[@]}" --port 20102 --count $N --dst "$dst" \
    >"$WORK/c2.log" 2>&1; st=$?
  delta "$c0" "$(counters)"
  if [[ $dst == *:* ]]; then got_in=$D_IN6; got_out=$D_OUT6; else got_in=$((D_IN - D_IN6)); got_out=$((D_OUT - D_OUT6)); fi
  [[ $st -eq 0 ]] && ((got_in >= N && got_out >= N)) \
    && pass "dual-stack offloaded server, kernel client to $dst: $N echoes verified; engine in +$got_in out +$got_out of that family" \
    || fail "dual-stack server, client to $dst: $(cat "$WORK/c2.log"); engine in +$got_in out +$got_out"
done
wait_word "$WORK/s2.log" "^served" || true
grep -q "src 2001:db8:13::2 namelen 28 flow 0 scope 0" "$WORK/s2.log" &&
  grep -q "src ::ffff:198.18.13.2 namelen 28 flow 0 scope 0" "$WORK/s2.log" \
  && pass "the dual-stack server saw 2001:db8:13::2 and ::ffff:198.18.13.2 as sockaddr_in6 (length 28)" \
  || fail "dual-stack server sources: $(cat "$WORK/s2.log")"

# 3. 0.0.0.0:P (AF_INET) and a v6-only [::]:P in one offloaded process.
bg "$WORK/two.log" timeout -k 5 90 "${OFF_A[@]}" python3 "$PEER" two --port 20103 --count $((2 * N)) --idle 60
wait_word "$WORK/two.log" listening || fail "two-socket server did not start"
c0=$(counters)
timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" client --v4 --port 20103 --count $N --dst 198.18.13.1 >"$WORK/c3a.log" 2>&1; st4=$?
timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" client --port 20103 --count $N --dst 2001:db8:13::1 >"$WORK/c3b.log" 2>&1; st6=$?
delta "$c0" "$(counters)"
wait_word "$WORK/two.log" "^served" || true
[[ $st4 -eq 0 && $st6 -eq 0 ]] && grep -q "v4 from 198.18.13.2 namelen 16" "$WORK/two.log" &&
  grep -q "v6 from 2001:db8:13::2 namelen 28" "$WORK/two.log" && ((D_IN6 >= N && D_IN - D_IN6 >= N)) \
  && pass "0.0.0.0:20103 and v6-only [::]:20103 each served their own family through the engine (in: IPv6 +$D_IN6, IPv4 +$((D_IN - D_IN6)))" \
  || fail "two sockets on one port: v4 $(cat "$WORK/c3a.log") v6 $(cat "$WORK/c3b.log") server $(cat "$WORK/two.log"); in +$D_IN ipv6 +$D_IN6; $(grep -i udp "$WORK/offloadd.log" | tail -3)"

# 3b. SO_REUSEADDR, 0.0.0.0:P and a dual-stack [::]:P.
bg "$WORK/two2.log" timeout -k 5 90 "${OFF_A[@]}" python3 "$PEER" two --dual --port 20105 --count $((2 * N)) --idle 60
wait_word "$WORK/two2.log" listening || fail "reuse two-socket server did not start"
c0=$(counters)
timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" client --v4 --port 20105 --count $N --dst 198.18.13.1 >"$WORK/c3c.log" 2>&1; st4=$?
timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" client --port 20105 --count $N --dst 2001:db8:13::1 >"$WORK/c3d.log" 2>&1; st6=$?
delta "$c0" "$(counters)"
wait_word "$WORK/two2.log" "^served" || true
[[ $st4 -eq 0 && $st6 -eq 0 ]] && grep -q "v4 from 198.18.13.2 namelen 16" "$WORK/two2.log" &&
  grep -q "v6 from 2001:db8:13::2 namelen 28" "$WORK/two2.log" && ! grep -q "v6 from ::ffff" "$WORK/two2.log" &&
  ((D_IN6 >= N && D_IN - D_IN6 >= N)) \
  && pass "SO_REUSEADDR 0.0.0.0:20105 and dual-stack [::]:20105: IPv4 to the AF_INET socket, IPv6 to the other, through the engine (in: IPv6 +$D_IN6, IPv4 +$((D_IN - D_IN6)))" \
  || fail "reuse two sockets: v4 $(cat "$WORK/c3c.log") v6 $(cat "$WORK/c3d.log") server $(cat "$WORK/two2.log"); in +$D_IN ipv6 +$D_IN6; $(grep -i udp "$WORK/offloadd.log" | tail -3)"

# 4. Larger than the engine's IPv6 payload: the kernel fragments it.
bg "$WORK/s4b.log" timeout -k 5 60 "${IN_B[@]}" python3 "$PEER" server --bind 2001:db8:13::2 --port 20104 --v6only
wait_word "$WORK/s4b.log" listening || fail "kernel IPv6 server (20104) did not start"
timeout -k 5 60 "${OFF_A[@]}" python3 "$PEER" client --port 20104 --count 6 --sizes 1452,1453,3000 \
  --dst 2001:db8:13::2 >"$WORK/c4.log" 2>&1 \
  && pass "1453 and 3000 B datagrams (over the engine's IPv6 payload) went through the kernel and echoed intact" \
  || fail "large IPv6 datagrams: $(cat "$WORK/c4.log")"
z=$(engine_counter udp.drop.ipv6_zero_checksum)
m=$(engine_counter udp.drop.ipv6_multicast_not_offloaded)
x=$(engine_counter ip.rx_ipv6_not_offloaded)
[[ $z -eq 0 && $m -eq 0 && $x -eq 0 ]] \
  && pass "no zero-checksum, multicast or unserved IPv6 datagram reached the engine" \
  || fail "engine drops: zero checksum $z, multicast $m, not offloaded $x"

junit_write udp6_wire
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
