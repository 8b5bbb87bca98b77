#!/bin/bash
# Applications' TCP sockets on the wire, end to end, as a user sees them:
# offloadd owns a veth in namespace A (AF_XDP), a kernel peer lives in
# namespace B. Checks, with unmodified python programs under `offload`:
#   - the socket API answers exactly as the kernel's (probes.py prints the
#     same lines under offload and without): non-blocking connect, poll,
#     SO_ERROR, refused connects, second connect, half close;
#   - the connections really went through the engine (offloadctl stats);
#   - a connection whose offloadd is killed (-9) reads as reset instead of
#     hanging, and the daemon restarts on the interface without manual steps.
# Root; namespaces and addresses (198.18.6.0/24) exist only inside the test.
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

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
