#!/bin/bash
# Wire TCP ping-pong p50 (64 B) and 100 B throughput over IPv4 and IPv6, on
# the kernel and offloaded, interleaved in one run (issue 18's acceptance:
# wire IPv6 with the same ratios to the kernel as IPv4). Two network
# namespaces joined by a veth: offloadd owns va in A (AF_XDP); the
# offload-pingpong server runs on the kernel in B; the client runs in A,
# plain (kernel) or under liboffload (engine). sockperf 3.7 has no IPv6.
#
#   tools/bench/wire_family_compare.sh [--udp] [REPS [SECONDS]]   (default 5 reps, 5 s)
#
# --udp: the same over UDP (family_udp_pingpong: 64 B ping-pong p50, and
# 100 B echoes per second with 16 in flight); the offloaded client's
# AF_INET/AF_INET6 socket goes through the engine.
#
# Root. Needs `bazel build //daemon:offloadd //client:liboffload.so
# //tools/bench:offload-pingpong` (--udp: //tools/bench:family_udp_pingpong). offloadd on CPU 0, client and server on
# CPU 1 when there are 2 CPUs. Addresses 198.18.14.0/24 and 2001:db8:14::/64
# exist only in the two namespaces, which are removed at exit.
set -eu
PROTO=tcp
if [ "${1:-}" = --udp ]; then PROTO=udp; shift; fi
REPS=${1:-5}
SECS=${2:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/bazel-bin
PP=$BIN/tools/bench/offload-pingpong
[ $PROTO = udp ] && PP=$BIN/tools/bench/family_udp_pingpong
LIB=$BIN/client/liboffload.so
DAEMON=$BIN/daemon/offloadd
for f in "$PP" "$LIB" "$DAEMON"; do
  [ -f "$f" ] || { echo "missing $f (bazel build it first)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (namespaces, XDP)" >&2; exit 2; }
NSA=ofwb_A$$
NSB=ofwb_B$$
TMP=$(mktemp -d /tmp/wire-family-compare.XXXXXX)
chmod 755 "$TMP"
DPID=
SPID=
SAMPLE=0
cleanup() {
  if [ -n "$SPID" ]; then kill -KILL "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; fi
  if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; fi
  ip netns del "$NSA" 2>/dev/null || true
  ip netns del "$NSB" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
NCPU=$(nproc)
DCPU=0
BCPU=$((NCPU > 1 ? 1 : 0))
ip netns add "$NSA"
ip netns add "$NSB"
ip link add va netns "$NSA" type veth peer name vb netns "$NSB"
ip -n "$NSA" addr add 198.18.14.1/24 dev va
ip -n "$NSB" addr add 198.18.14.2/24 dev vb
ip -n "$NSA" addr add 2001:db8:14::1/64 dev va nodad
ip -n "$NSB" addr add 2001:db8:14::2/64 dev vb nodad
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set va up
ip -n "$NSB" link set vb up
mkdir -p "$TMP/run"
: > "$TMP/rules.conf"
cat > "$TMP/offloadd.conf" <<EOC
interfaces { name: "va" driver: DRIVER_AF_XDP }
num_cores: 1
EOC
ip netns exec "$NSA" taskset -c $DCPU "$DAEMON" --config "$TMP/offloadd.conf" --run-dir "$TMP/run" \
  --rules "$TMP/rules.conf" > "$TMP/offloadd.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$TMP/run/engine.sock" ] && break; sleep 0.1; done
[ -S "$TMP/run/engine.sock" ] || { echo "offloadd did not start" >&2; cat "$TMP/offloadd.log" >&2; exit 1; }

ADDR4=198.18.14.2
ADDR6=2001:db8:14::2
SRV_IN=(ip netns exec "$NSB")
CLI_IN=(ip netns exec "$NSA")
SERVER_OFFLOADED=0
source "$ROOT/tools/bench/family_sample.sh"

echo "side family p50_us msg_per_s_100B   (wire $PROTO, reps $REPS, $SECS s each)"
for rep in $(seq "$REPS"); do
  for side in kernel offload; do
    for fam in ipv4 ipv6; do run $side $fam; done
  done
done
# The offloaded samples went through the engine: its received packets.
ip netns exec "$NSA" "$BIN/cli/offloadctl" --socket "$TMP/run/control.sock" --json stats 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("engines", []); c=lambda n: sum(int(x.get("counters", {}).get(n, 0)) for x in e); print("engine rx_packets:", sum(int(x.get("rx_packets", 0)) for x in e), "udp.in:", c("udp.in"), "udp.ipv6_in:", c("udp.ipv6_in"))' || true
python3 "$ROOT/tools/bench/family_summary.py" "$TMP/samples"
