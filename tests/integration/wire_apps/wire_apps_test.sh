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
# Root; namespaces and addresses (198.18.6.0/24, 2001:db8:6::/64) exist
# only inside the test.
set -u
OFFLOADD=$(realpath "$1"); OFFLOADCTL=$(realpath "$2"); LAUNCHER=$(realpath "$3")
export OFFLOAD_LIBRARY=$(realpath "$4")
HERE=$(dirname "$(realpath "$0")")
PROBES=$HERE/probes.py; ECHO=$HERE/echo_server.py
[ -f "$PROBES" ] || PROBES=$(realpath tests/integration/wire_apps/probes.py)
[ -f "$ECHO" ] || ECHO=$(realpath tests/integration/wire_apps/echo_server.py)

NSA=owa$$; NSB=owb$$
WORK=$(mktemp -d /tmp/wire_apps.XXXXXX)
PIDS=()
PASS=0; FAIL=0
ok() { echo "PASS: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$NSA" 2>/dev/null; ip netns del "$NSB" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ] || ! command -v python3 >/dev/null; then
  echo "SKIP: needs root and python3"; exit 0
fi
ip netns add "$NSA" && ip netns add "$NSB" || { echo "FAIL: netns"; exit 1; }
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
start_daemon() {
  ip netns exec "$NSA" "$OFFLOADD" --config "$WORK/offloadd.conf" --run-dir "$WORK/run" \
    --rules "$WORK/rules.conf" >> "$WORK/offloadd.log" 2>&1 &
  DPID=$!; PIDS+=("$DPID")
  for _ in $(seq 100); do
    ip netns exec "$NSA" "$OFFLOADCTL" --socket "$WORK/run/control.sock" status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
ctl() { ip netns exec "$NSA" "$OFFLOADCTL" --socket "$WORK/run/control.sock" "$@"; }
start_echo() {  # port, connections
  ip netns exec "$NSB" python3 "$ECHO" 198.18.6.2 "$1" "$2" > "$WORK/echo.$1" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do grep -q listening "$WORK/echo.$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

start_daemon || { bad "offloadd did not start: $(tail -5 "$WORK/offloadd.log")"; exit 1; }
ok "offloadd owns va"

# 1. The socket API, kernel vs offload.
start_echo 7001 2 || bad "echo server"
timeout 60 ip netns exec "$NSA" python3 "$PROBES" 198.18.6.2 7001 7009 > "$WORK/kernel.out" 2>&1
start_echo 7002 2 || bad "echo server"
before=$(ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(e.get("rx_packets", 0)) for e in d.get("engines", [])))' 2>/dev/null || echo 0)
timeout 60 ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$PROBES" 198.18.6.2 7002 7009 \
  > "$WORK/offload.out" 2>&1
after=$(ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(e.get("rx_packets", 0)) for e in d.get("engines", [])))' 2>/dev/null || echo 0)
if diff -u "$WORK/kernel.out" "$WORK/offload.out"; then
  ok "socket API answers as the kernel's ($(wc -l < "$WORK/kernel.out") facts)"
else
  bad "socket API differs from the kernel's (above: - kernel, + offload)"
fi
grep -q "nb SO_ERROR: ECONNREFUSED" "$WORK/offload.out" && grep -q "echo: b'ping" "$WORK/offload.out" \
  && ok "probes ran (refused and echoed)" || bad "probes incomplete: $(cat "$WORK/offload.out")"
if [ "$after" -gt "$before" ] 2>/dev/null && [ $((after - before)) -ge 8 ]; then
  ok "the engine carried the connections ($((after - before)) packets received)"
else
  bad "the engine did not carry the connections (engine rx $before -> $after)"
fi

# 2. offloadd killed under a blocked reader: ECONNRESET, not a hang.
start_echo 7003 1 || bad "echo server"
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
BPID=$!; PIDS+=("$BPID")
for _ in $(seq 100); do grep -q connected "$WORK/blocked.out" && break; sleep 0.05; done
if ctl stats -v 2>/dev/null | grep -A1 "198.18.6.2:7003" | grep -q "offloaded (engine)"; then
  ok "stats show the connection on the engine"
else
  bad "stats do not show the connection on the engine: $(ctl stats -v 2>&1 | head -20)"
fi
kill -9 "$DPID"
for _ in $(seq 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.05; done
if grep -q "recv error: 104" "$WORK/blocked.out"; then
  ok "blocked recv got ECONNRESET when offloadd died"
else
  bad "blocked recv after kill -9: $(cat "$WORK/blocked.out")"
fi

# 3. Restart after kill -9: the interface is taken over again, and works.
start_daemon && ok "offloadd restarted on va after kill -9" || bad "no restart: $(tail -5 "$WORK/offloadd.log")"
start_echo 7004 2 || bad "echo server"
timeout 60 ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$PROBES" 198.18.6.2 7004 7009 \
  > "$WORK/offload2.out" 2>&1
diff -q "$WORK/kernel.out" "$WORK/offload2.out" >/dev/null && ok "offloaded connections work after the restart" \
  || bad "after restart: $(cat "$WORK/offload2.out")"
start_echo 7005 1 && timeout 20 ip netns exec "$NSA" python3 -c "import socket; s = socket.create_connection((\"198.18.6.2\", 7005)); s.sendall(b\"k\"); assert s.recv(1) == b\"k\"" && ok "a kernel TCP connection (no offload) works while offloadd runs" \
  || bad "a kernel TCP connection failed while offloadd runs"

# 4. IPv6 on the wire goes through the engine (issue 18).
start_echo6() {  # port
  ip netns exec "$NSB" python3 "$ECHO" 2001:db8:6::2 "$1" 1 > "$WORK/echo6.$1" 2>&1 &
  PIDS+=("$!")
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
start_echo6 7006 || bad "IPv6 echo server"
mkfifo "$WORK/v6in"
ip netns exec "$NSA" "$LAUNCHER" --run-dir "$WORK/run" -- python3 "$WORK/v6client.py" 7006 \
  < "$WORK/v6in" > "$WORK/v6client.out" 2>&1 &
V6PID=$!; PIDS+=("$V6PID")
exec 8> "$WORK/v6in"
for _ in $(seq 200); do grep -q "echo6:" "$WORK/v6client.out" && break; sleep 0.05; done
grep -q "echo6: b'six'" "$WORK/v6client.out" && ok "an AF_INET6 connection on the wire works" \
  || bad "AF_INET6 connection on the wire: $(cat "$WORK/v6client.out")"
if ctl stats -v 2>/dev/null | grep -A1 -E "tcp6 [a-z]+ +\[2001:db8:6::1\]" \
    | grep -q "offloaded (engine)"; then
  ok "stats list the IPv6 connection offloaded (engine) as tcp6"
else
  bad "stats do not show the IPv6 connection on the engine: $(ctl stats -v 2>&1 | grep -A2 tcp6)"
fi
grep -q "name 2001:db8:6::1 peer 2001:db8:6::2" "$WORK/v6client.out" \
  && ok "getsockname/getpeername of the IPv6 connection are the kernel's" \
  || bad "IPv6 names: $(cat "$WORK/v6client.out")"
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
PIDS+=("$!")
for _ in $(seq 200); do grep -q listening "$WORK/dual.out" && break; sleep 0.05; done
rx0=$(erx)
if timeout 20 ip netns exec "$NSB" python3 -c "import socket; s = socket.create_connection((\"198.18.6.1\", 7007)); s.sendall(b\"d\"); assert s.recv(1) == b\"d\""; then
  for _ in $(seq 100); do grep -q "^peer" "$WORK/dual.out" && break; sleep 0.05; done
  grep -q "peer ::ffff:198.18.6.2" "$WORK/dual.out" && ok "a dual-stack offloaded listener serves a wire IPv4 client (as ::ffff:198.18.6.2)" \
    || bad "dual-stack listener: $(cat "$WORK/dual.out")"
else
  bad "a wire IPv4 client could not reach the dual-stack offloaded listener: $(cat "$WORK/dual.out")"
fi
rx1=$(erx)
if timeout 20 ip netns exec "$NSB" python3 -c "import socket; s = socket.create_connection((\"2001:db8:6::1\", 7007)); s.sendall(b\"e\"); assert s.recv(1) == b\"e\""; then
  for _ in $(seq 100); do grep -q "^peer 2001" "$WORK/dual.out" && break; sleep 0.05; done
  grep -q "peer 2001:db8:6::2" "$WORK/dual.out" && ok "the dual-stack offloaded listener serves a wire IPv6 client (as 2001:db8:6::2)" \
    || bad "dual-stack listener, IPv6 client: $(cat "$WORK/dual.out")"
else
  bad "a wire IPv6 client could not reach the dual-stack offloaded listener: $(cat "$WORK/dual.out")"
fi
rx2=$(erx)
[ $((rx1 - rx0)) -ge 3 ] && [ $((rx2 - rx1)) -ge 3 ] \
  && ok "the engine carried both clients of the dual-stack listener (rx +$((rx1 - rx0)), +$((rx2 - rx1)))" \
  || bad "the dual-stack listener's clients did not go through the engine (rx $rx0 -> $rx1 -> $rx2)" 

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
