#!/bin/bash
# Applications' TCP sockets on the wire, end to end, as a user sees them:
# offloadd owns a veth in namespace A (AF_XDP), a kernel peer lives in
# namespace B. Checks, with unmodified python programs under `offload`:
#   - the socket API answers exactly as the kernel's (probes.py prints the
#     same lines under offload and without): non-blocking connect, poll,
#     SO_ERROR, refused connects, second connect, half close;
#   - the connections really went through the engine (offloadctl stats);
#   - a connection whose offloadd is killed (-9) reads as reset instead of
#     hanging, and the daemon restarts on the interface without manual steps;
#   - IPv6 on the wire (issue 18): an AF_INET6 connection to the peer goes
#     through the engine and stats list it offloaded as tcp6; a dual-stack
#     offloaded listener takes a wire IPv4 and a wire IPv6 client through
#     the engine.
#   - iperf3 -c (TCP, then -u) from an offloaded client to a kernel server
#     picks the message sizes kernel<->kernel picks (TCP_MAXSEG, the socket
#     buffers it reads, the UDP datagram from the control connection's MSS)
#     and loses no more datagrams than the kernel does (issue 16);
#   - a route or a neighbour changed with `ip` while offloadd runs applies
#     to the next offloaded connection, no restart (issue 16); the delay is
#     measured and printed, not gated (the wait is bounded at 10 s).
# Root; namespaces and addresses (198.18.6.0/24, 2001:db8:6::/64) exist
# only inside the test.
set -u
OFFLOADD=$(realpath "$1"); OFFLOADCTL=$(realpath "$2"); LAUNCHER=$(realpath "$3")
export OFFLOAD_LIBRARY=$(realpath "$4")
HERE=$(dirname "$(realpath "$0")")
PROBES=$HERE/probes.py; ECHO=$HERE/echo_server.py
[ -f "$PROBES" ] || PROBES=$(realpath tests/integration/wire_apps/probes.py)
[ -f "$ECHO" ] || ECHO=$(realpath tests/integration/wire_apps/echo_server.py)

# require_root: a run without root reports this test skipped, not passed.
source "$(dirname "$0")/../lib/harness.sh"
require_root wire_apps "needs root (network namespaces, XDP)"

NSA=owa$$; NSB=owb$$
NS_A=$NSA; NS_B=$NSB  # the harness's cleanup removes them
WORK=$(mktemp -d /tmp/wire_apps.XXXXXX)
JUNIT_SUITE=wire_apps
trap cleanup EXIT

if ! command -v python3 >/dev/null; then
  skip "needs python3"; junit_write wire_apps; exit 0
fi
ip netns add "$NSA" && ip netns add "$NSB" || { fail "netns"; junit_write wire_apps; exit 1; }
ip link add va netns "$NSA" type veth peer name vb netns "$NSB"
ip -n "$NSA" addr add 198.18.6.1/24 dev va; ip -n "$NSB" addr add 198.18.6.2/24 dev vb
ip -n "$NSA" addr add 2001:db8:6::1/64 dev va nodad; ip -n "$NSB" addr add 2001:db8:6::2/64 dev vb nodad
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set va up; ip -n "$NSB" link set vb up
# vb keeps TX checksum offload on (the veth default): offloadd accepts its
# partial checksums.

cat > "$WORK/offloadd.conf" <<EOC
interfaces { name: "va" driver: DRIVER_AF_XDP }
num_cores: 1
EOC
: > "$WORK/rules.conf"
# offloadd on va, through the harness (waits for the control socket to
# answer); DPID is its pid.
start_daemon_va() {
  launch_daemon "$NSA" "$WORK/run" "$WORK/offloadd.log" \
    --config "$WORK/offloadd.conf" --rules "$WORK/rules.conf" || return 1
  DPID=$DAEMON_PID
}
ctl() { ip netns exec "$NSA" "$OFFLOADCTL" --socket "$WORK/run/control.sock" "$@"; }
start_echo() {  # port, connections
  ip netns exec "$NSB" python3 "$ECHO" 198.18.6.2 "$1" "$2" > "$WORK/echo.$1" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do grep -q listening "$WORK/echo.$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

start_daemon_va || { fail "offloadd did not start: $(tail -5 "$WORK/offloadd.log")"; junit_write wire_apps; exit 1; }
pass "offloadd owns va"

# 1. The socket API, kernel vs offload.
start_echo 7001 2 || fail "echo server"
timeout 60 ip netns exec "$NSA" python3 "$PROBES" 198.18.6.2 7001 7009 > "$WORK/kernel.out" 2>&1
start_echo 7002 2 || fail "echo server"
before=$(ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(e.get("rx_packets", 0)) for e in d.get("engines", [])))' 2>/dev/null || echo 0)
timeout 60 ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$PROBES" 198.18.6.2 7002 7009 \
  > "$WORK/offload.out" 2>&1
after=$(ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(e.get("rx_packets", 0)) for e in d.get("engines", [])))' 2>/dev/null || echo 0)
if diff -u "$WORK/kernel.out" "$WORK/offload.out"; then
  pass "socket API answers as the kernel's ($(wc -l < "$WORK/kernel.out") facts)"
else
  fail "socket API differs from the kernel's (above: - kernel, + offload)"
fi
grep -q "nb SO_ERROR: ECONNREFUSED" "$WORK/offload.out" && grep -q "echo: b'ping" "$WORK/offload.out" \
  && pass "probes ran (refused and echoed)" || fail "probes incomplete: $(cat "$WORK/offload.out")"
if [ "$after" -gt "$before" ] 2>/dev/null && [ $((after - before)) -ge 8 ]; then
  pass "the engine carried the connections ($((after - before)) packets received)"
else
  fail "the engine did not carry the connections (engine rx $before -> $after)"
fi

# 2. offloadd killed under a blocked reader: ECONNRESET, not a hang.
start_echo 7003 1 || fail "echo server"
cat > "$WORK/blocked.py" <<'EOP'
import socket, sys
s = socket.create_connection(("198.18.6.2", 7003))
print("connected", flush=True)
try:
    print("recv:", s.recv(100), flush=True)
except OSError as e:
    print("recv error:", e.errno, flush=True)
EOP
ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$WORK/blocked.py" > "$WORK/blocked.out" 2>&1 &
BPID=$!; pids+=("$BPID")
for _ in $(seq 100); do grep -q connected "$WORK/blocked.out" && break; sleep 0.05; done
if ctl stats -v 2>/dev/null | grep -A1 "198.18.6.2:7003" | grep -q "offloaded (engine)"; then
  pass "stats show the connection on the engine"
else
  fail "stats do not show the connection on the engine: $(ctl stats -v 2>&1 | head -20)"
fi
kill -9 "$DPID"
for _ in $(seq 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.05; done
if grep -q "recv error: 104" "$WORK/blocked.out"; then
  pass "blocked recv got ECONNRESET when offloadd died"
else
  fail "blocked recv after kill -9: $(cat "$WORK/blocked.out")"
fi

# 3. Restart after kill -9: the interface is taken over again, and works.
start_daemon_va && pass "offloadd restarted on va after kill -9" || fail "no restart: $(tail -5 "$WORK/offloadd.log")"
start_echo 7004 2 || fail "echo server"
timeout 60 ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$PROBES" 198.18.6.2 7004 7009 \
  > "$WORK/offload2.out" 2>&1
diff -q "$WORK/kernel.out" "$WORK/offload2.out" >/dev/null && pass "offloaded connections work after the restart" \
  || fail "after restart: $(cat "$WORK/offload2.out")"
start_echo 7005 1 && timeout 20 ip netns exec "$NSA" python3 -c "import socket; s = socket.create_connection((\"198.18.6.2\", 7005)); s.sendall(b\"k\"); assert s.recv(1) == b\"k\"" && pass "a kernel TCP connection (no offload) works while offloadd runs" \
  || fail "a kernel TCP connection failed while offloadd runs"

# 4. IPv6 on the wire goes through the engine (issue 18).
start_echo6() {  # port
  ip netns exec "$NSB" python3 "$ECHO" 2001:db8:6::2 "$1" 1 > "$WORK/echo6.$1" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do grep -q listening "$WORK/echo6.$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
cat > "$WORK/v6client.py" <<'EOP'
import socket, sys
s = socket.create_connection(("2001:db8:6::2", int(sys.argv[1])), timeout=10)
s.sendall(b"six")
print("echo6:", s.recv(100), flush=True)
print("name", s.getsockname()[0], "peer", s.getpeername()[0], flush=True)
sys.stdin.readline()  # held open until the test has read the stats
EOP
start_echo6 7006 || fail "IPv6 echo server"
mkfifo "$WORK/v6in"
ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$WORK/v6client.py" 7006 \
  < "$WORK/v6in" > "$WORK/v6client.out" 2>&1 &
V6PID=$!; pids+=("$V6PID")
exec 8> "$WORK/v6in"
for _ in $(seq 200); do grep -q "echo6:" "$WORK/v6client.out" && break; sleep 0.05; done
grep -q "echo6: b'six'" "$WORK/v6client.out" && pass "an AF_INET6 connection on the wire works" \
  || fail "AF_INET6 connection on the wire: $(cat "$WORK/v6client.out")"
if ctl stats -v 2>/dev/null | grep -A1 -E "tcp6 [a-z]+ +\[2001:db8:6::1\]" \
    | grep -q "offloaded (engine)"; then
  pass "stats list the IPv6 connection offloaded (engine) as tcp6"
else
  fail "stats do not show the IPv6 connection on the engine: $(ctl stats -v 2>&1 | grep -A2 tcp6)"
fi
grep -q "name 2001:db8:6::1 peer 2001:db8:6::2" "$WORK/v6client.out" \
  && pass "getsockname/getpeername of the IPv6 connection are the kernel's" \
  || fail "IPv6 names: $(cat "$WORK/v6client.out")"
exec 8>&-
wait "$V6PID" 2>/dev/null

# 5. A dual-stack offloaded listener (python's create_server, dualstack)
#    serves a wire IPv4 and a wire IPv6 client through the engine.
cat > "$WORK/dual.py" <<'EOP'
import socket
l = socket.create_server(("", 7007), family=socket.AF_INET6, dualstack_ipv6=True)
print("listening", flush=True)
for _ in range(2):
    c, peer = l.accept()
    c.sendall(c.recv(100))
    print("peer", peer[0], flush=True)
EOP
erx() { ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(e.get("rx_packets", 0)) for e in d.get("engines", [])))' 2>/dev/null || echo 0; }
ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$WORK/dual.py" > "$WORK/dual.out" 2>&1 &
pids+=("$!")
for _ in $(seq 200); do grep -q listening "$WORK/dual.out" && break; sleep 0.05; done
rx0=$(erx)
if timeout 20 ip netns exec "$NSB" python3 -c "import socket; s = socket.create_connection((\"198.18.6.1\", 7007)); s.sendall(b\"d\"); assert s.recv(1) == b\"d\""; then
  for _ in $(seq 100); do grep -q "^peer" "$WORK/dual.out" && break; sleep 0.05; done
  grep -q "peer ::ffff:198.18.6.2" "$WORK/dual.out" && pass "a dual-stack offloaded listener serves a wire IPv4 client (as ::ffff:198.18.6.2)" \
    || fail "dual-stack listener: $(cat "$WORK/dual.out")"
else
  fail "a wire IPv4 client could not reach the dual-stack offloaded listener: $(cat "$WORK/dual.out")"
fi
rx1=$(erx)
if timeout 20 ip netns exec "$NSB" python3 -c "import socket; s = socket.create_connection((\"2001:db8:6::1\", 7007)); s.sendall(b\"e\"); assert s.recv(1) == b\"e\""; then
  for _ in $(seq 100); do grep -q "^peer 2001" "$WORK/dual.out" && break; sleep 0.05; done
  grep -q "peer 2001:db8:6::2" "$WORK/dual.out" && pass "the dual-stack offloaded listener serves a wire IPv6 client (as 2001:db8:6::2)" \
    || fail "dual-stack listener, IPv6 client: $(cat "$WORK/dual.out")"
else
  fail "a wire IPv6 client could not reach the dual-stack offloaded listener: $(cat "$WORK/dual.out")"
fi
rx2=$(erx)
[ $((rx1 - rx0)) -ge 3 ] && [ $((rx2 - rx1)) -ge 3 ] \
  && pass "the engine carried both clients of the dual-stack listener (rx +$((rx1 - rx0)), +$((rx2 - rx1)))" \
  || fail "the dual-stack listener's clients did not go through the engine (rx $rx0 -> $rx1 -> $rx2)" 

# 6. iperf3 -c, offloaded client -> kernel server (issue 16): the same sizes
#    as kernel<->kernel, and no more UDP loss. Bounded: -t 2 each.
iperf_facts() {  # json file -> "mss sndbuf rcvbuf blksize lost packets"
  python3 - "$1" <<'EOP'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("unreadable", e); sys.exit(0)
if d.get("error"):
    print("error", d["error"]); sys.exit(0)
s, e = d.get("start", {}), d.get("end", {}).get("sum", {})
print(s.get("tcp_mss_default", "-"), s.get("sndbuf_actual", "-"), s.get("rcvbuf_actual", "-"),
      s.get("test_start", {}).get("blksize", "-"), e.get("lost_packets", "-"), e.get("packets", "-"))
EOP
}
engine_tx() {
  ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(e.get("tx_packets", 0)) for e in d.get("engines", [])))' 2>/dev/null || echo 0
}
if ! command -v iperf3 >/dev/null; then
  echo "SKIP: iperf3 not installed (tools/bootstrap.sh)"
else
  # Datagrams namespace B's kernel dropped for a full socket buffer.
  rcvbuf_errors() {
    ip netns exec "$NSB" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp
  }
  ip netns exec "$NSB" iperf3 -s -B 198.18.6.2 -p 7010 > "$WORK/iperf3-s.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do ip netns exec "$NSB" ss -Hltn | grep -q ':7010 ' && break; sleep 0.05; done
  for proto in tcp udp; do
    extra=(); [ "$proto" = udp ] && extra=(-u -b 50M)
    timeout -k 5 30 ip netns exec "$NSA" iperf3 -c 198.18.6.2 -p 7010 -t 2 -J "${extra[@]}" \
      > "$WORK/iperf3-kernel-$proto.json" 2>&1
    tx0=$(engine_tx)
    timeout -k 5 30 ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- \
      iperf3 -c 198.18.6.2 -p 7010 -t 2 -J "${extra[@]}" > "$WORK/iperf3-offload-$proto.json" 2>&1
    tx1=$(engine_tx)
    read -r k_mss k_snd k_rcv k_blk k_lost k_pkts <<< "$(iperf_facts "$WORK/iperf3-kernel-$proto.json")"
    read -r o_mss o_snd o_rcv o_blk o_lost o_pkts <<< "$(iperf_facts "$WORK/iperf3-offload-$proto.json")"
    echo "iperf3 $proto kernel: mss $k_mss sndbuf $k_snd rcvbuf $k_rcv blksize $k_blk lost $k_lost/$k_pkts"
    echo "iperf3 $proto offload: mss $o_mss sndbuf $o_snd rcvbuf $o_rcv blksize $o_blk lost $o_lost/$o_pkts (engine tx $((tx1 - tx0)) frames)"
    if [ "$k_mss" = error ] || [ "$o_mss" = error ] || [ "$k_mss" = unreadable ] || [ "$o_mss" = unreadable ]; then
      fail "iperf3 $proto did not run: $(head -c 300 "$WORK/iperf3-kernel-$proto.json") / $(head -c 300 "$WORK/iperf3-offload-$proto.json")"
      continue
    fi
    [ "$k_mss $k_snd $k_rcv $k_blk" = "$o_mss $o_snd $o_rcv $o_blk" ] \
      && pass "iperf3 $proto: offloaded client picks the kernel's sizes (mss $o_mss, buffers $o_snd/$o_rcv, blksize $o_blk)" \
      || fail "iperf3 $proto sizes differ: kernel mss/sndbuf/rcvbuf/blksize $k_mss/$k_snd/$k_rcv/$k_blk, offload $o_mss/$o_snd/$o_rcv/$o_blk"
    # The engine carried it (the control connection and the data).
    [ $((tx1 - tx0)) -ge 1000 ] && pass "iperf3 $proto: carried by the engine" \
      || fail "iperf3 $proto: the engine sent $((tx1 - tx0)) frames (not offloaded?)"
    if [ "$proto" = udp ]; then
      # No more loss than the kernel's: compared as a fraction, with one
      # percentage point for a host shared with other builds. A receiver
      # that is not scheduled for a while overflows its socket buffer
      # whoever sends (B's UDP RcvbufErrors count those); a defect of ours
      # loses on every run, so the offloaded client gets up to three runs
      # and the fewest losses count.
      udp_loss_ok() {
        python3 -c "import sys; kl,kp,ol,op=map(float,sys.argv[1:]); sys.exit(0 if op>0 and ol/op <= kl/max(kp,1)+0.01 else 1)" \
          "$k_lost" "$k_pkts" "$o_lost" "$o_pkts" 2>/dev/null
      }
      for attempt in 2 3; do
        udp_loss_ok && break
        rcvbuf0=$(rcvbuf_errors)
        timeout -k 5 30 ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- \
          iperf3 -c 198.18.6.2 -p 7010 -t 2 -J "${extra[@]}" > "$WORK/iperf3-offload-$proto-$attempt.json" 2>&1
        echo "iperf3 udp offload run $attempt: the receiver's socket buffer overflowed $(( $(rcvbuf_errors) - rcvbuf0 )) times before"
        read -r _ _ _ _ a_lost a_pkts <<< "$(iperf_facts "$WORK/iperf3-offload-$proto-$attempt.json")"
        echo "iperf3 udp offload run $attempt: lost $a_lost/$a_pkts"
        if [[ "$a_lost" =~ ^[0-9]+$ && "$a_pkts" =~ ^[0-9]+$ && "$a_pkts" -gt 0 ]] &&
           { ! [[ "$o_lost" =~ ^[0-9]+$ ]] || [ $((a_lost * o_pkts)) -lt $((o_lost * a_pkts)) ]; }; then
          o_lost=$a_lost o_pkts=$a_pkts
        fi
      done
      if udp_loss_ok; then
        pass "iperf3 udp: offload lost $o_lost of $o_pkts datagrams, the kernel $k_lost of $k_pkts"
      else
        fail "iperf3 udp: offload lost $o_lost of $o_pkts datagrams, the kernel $k_lost of $k_pkts"
      fi
    fi
  done
fi

# 7. Routes and neighbours followed live (issue 16): one offloaded process
#    (follow.py) starts, the change is made with `ip`, then it opens
#    connections until one takes the new path; the delay from the change to
#    that connection's start is printed (not gated; bounded at 10 s).
FOLLOW=$HERE/follow.py
[ -f "$FOLLOW" ] || FOLLOW=$(realpath tests/integration/wire_apps/follow.py)
start_echo_at() {  # host port connections
  ip netns exec "$NSB" python3 "$ECHO" "$1" "$2" "$3" > "$WORK/echo.$2" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do grep -q listening "$WORK/echo.$2" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
# follow NAME HOST PORT WANT CHANGE...: runs the change once follow.py is
# ready; sets FOLLOWED to "<want|never> <ms> <ms before>".
follow() {
  local name=$1 host=$2 port=$3 want=$4 fpid
  shift 4
  rm -f "$WORK/follow.in"; mkfifo "$WORK/follow.in"
  ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$FOLLOW" "$host" "$port" "$want" \
    < "$WORK/follow.in" > "$WORK/follow.$name" 2>&1 &
  fpid=$!; pids+=("$fpid")
  exec 9> "$WORK/follow.in"
  for _ in $(seq 200); do grep -q ready "$WORK/follow.$name" && break; sleep 0.05; done
  "$@"
  echo "$(date +%s%3N)" >&9
  exec 9>&-
  for _ in $(seq 300); do grep -q RESULT "$WORK/follow.$name" && break; sleep 0.05; done
  kill "$fpid" 2>/dev/null
  FOLLOWED=$(grep RESULT "$WORK/follow.$name" | cut -d' ' -f2-)
  [ -n "$FOLLOWED" ] || FOLLOWED="never"
  sed 's/^/  /' "$WORK/follow.$name" | grep -v ready
}
# Route: 198.18.9.2 lives behind B; A has no route there until `ip route add`.
ip -n "$NSB" addr add 198.18.9.2/32 dev vb
start_echo_at 198.18.9.2 7011 200 || fail "echo server behind the new route"
follow route-add 198.18.9.2 7011 engine ip -n "$NSA" route add 198.18.9.0/24 via 198.18.6.2 dev va
set -- $FOLLOWED
[ "$1" = engine ] && pass "a route added with ip while offloadd runs carries offloaded connections: the first started $2 ms after the change (the one before at ${3} ms)" \
  || fail "route added while running: no engine connection through it within 10 s"
follow route-del 198.18.9.2 7011 fail ip -n "$NSA" route del 198.18.9.0/24
set -- $FOLLOWED
[ "$1" = fail ] && pass "a route deleted with ip: the first connection started $2 ms after the change failed" \
  || fail "the deleted route still carried connections 10 s later"
# Neighbour: a permanent entry with a MAC no one has, then the right one.
start_echo_at 198.18.6.2 7012 200 || fail "echo server for the neighbour change"
mac_b=$(ip -n "$NSB" -br link show vb | awk '{print $3}')
follow neigh-wrong 198.18.6.2 7012 fail \
  ip -n "$NSA" neigh replace 198.18.6.2 lladdr 02:00:00:00:06:99 nud permanent dev va
set -- $FOLLOWED
[ "$1" = fail ] && pass "a neighbour entry replaced with ip (a MAC no one has) applies: the first connection started $2 ms after it failed" \
  || fail "a wrong permanent neighbour entry was ignored for 10 s"
follow neigh-right 198.18.6.2 7012 engine \
  ip -n "$NSA" neigh replace 198.18.6.2 lladdr "$mac_b" nud permanent dev va
set -- $FOLLOWED
[ "$1" = engine ] && pass "the neighbour entry corrected with ip carries offloaded connections: the first started $2 ms after the change" \
  || fail "the corrected neighbour entry did not carry an engine connection within 10 s"
ip -n "$NSA" neigh del 198.18.6.2 dev va 2>/dev/null

junit_write wire_apps
echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
