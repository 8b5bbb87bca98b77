#!/usr/bin/env bash
# Wire interop suite: offloadd owning one end of a veth pair through AF_XDP,
# applications run under the `offload` launcher on that end, plain Linux
# (kernel TCP) on the other end, and -- in the last check -- offloadd on both.
#
#   ns A (offloadd, va 198.18.7.1/24) <--veth--> ns B (kernel, vb 198.18.7.2/24)
#
# Checks (each prints PASS/FAIL/SKIP lines; any FAIL fails the test):
#   1 offloaded client -> kernel server: sockperf ping-pong and throughput
#   2 kernel client -> offloaded server (passive open): the same
#   3 1 GiB each way byte-verified with ttcp
#   4 byte-verified transfers each way under 1 % (64 MiB) and 5 % (16 MiB)
#     random loss (iptables in B), next to kernel<->kernel references
#     and under ~2 % reordering (64 MiB; offloadd started with OFFLOADD_FAULT
#     holding frames back in both directions; the kernel references reordered
#     by an HTB slow class fed by a random cls_bpf filter on both egresses)
#   5 kernel traffic (ICMP, ARP, TCP from a process not under offload) works
#     while offloadd runs, after kill -9 and after a restart
#   6 nginx + wrk and redis-server + redis-benchmark, offloaded side on either end
#   7 offloadd in both namespaces: ttcp both ways and sockperf ping-pong
# Proof that the engine carried an offloaded transfer: the NIC queue counters
# of `offloadctl --json stats` grew by at least the packets (or bytes) the
# application exchanged, and a socket row of the application showed path
# "engine" while it ran. Latency (sockperf p50) is printed next to a
# kernel<->kernel run over the same veth; it is reported, never asserted.
#
# Usage: interop_test.sh OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD TTCP ICMP_PING
# Needs root (namespaces, XDP, iptables).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 6 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD TTCP ICMP_PING" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
OFFLOAD=$(realpath "$3")
LIBOFFLOAD=$(realpath "$4")
TTCP=$(realpath "$5")
ICMP_PING=$(realpath "$6")

# pass/fail/skip/note, require_root, cleanup, bg, wait_file, port, sp_obs,
# sp_sent, stop_pid, wait_listen, ctl, start_daemon (lib/harness.sh).
source "$(dirname "$0")/../lib/harness.sh"
require_root interop "needs root (network namespaces, XDP, iptables)"
for tool in ip jq python3 ss; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: harness needs $tool"
    exit 1
  fi
done

NS_A=ofi_intA$$
NS_B=ofi_intB$$
IP_A=198.18.7.1
IP_B=198.18.7.2
WORK=$(mktemp -d /tmp/offload-interop.XXXXXX)
chmod 755 "$WORK"
RUN_A=$WORK/run-a
RUN_B=$WORK/run-b
mkdir -p "$RUN_A" "$RUN_B"
daemon_a=-1
daemon_b=-1

trap cleanup EXIT

# Runs a command inside a namespace: plain (kernel) or under the launcher,
# attached to the daemon of that namespace's run directory.
IN_A=(ip netns exec "$NS_A")
IN_B=(ip netns exec "$NS_B")
OFF_A=(ip netns exec "$NS_A" env OFFLOAD_RUN_DIR="$RUN_A" OFFLOAD_LIBRARY="$LIBOFFLOAD" "$OFFLOAD" --)
OFF_B=(ip netns exec "$NS_B" env OFFLOAD_RUN_DIR="$RUN_B" OFFLOAD_LIBRARY="$LIBOFFLOAD" "$OFFLOAD" --)

# nic_snap RUN: "rx_pkts tx_pkts rx_bytes tx_bytes eng_rx eng_tx", summed
# over the daemon's NIC queues and engines.
nic_snap() {
  ctl "$1" --json stats 2>/dev/null | jq -r '
    def sum(f): (map(f // "0" | tonumber) | add) // 0;
    [((.nics // []) | sum(.rx_packets), sum(.tx_packets), sum(.rx_bytes), sum(.tx_bytes)),
     ((.engines // []) | sum(.rx_packets), sum(.tx_packets))] | @tsv' 2>/dev/null ||
    echo "-1 -1 -1 -1 -1 -1"
}

# tcp_snap RUN: the engine TCP counters below, summed over engines (tab-separated).
TCP_KEYS=(retrans_segs fast_retransmits sack_recoveries rto_timeouts tail_loss_probes
          reorder_timeouts lost_retransmits dsacks_received recovery_undos rto_undos
          reordering_seen ooo_segments)
tcp_snap() {
  ctl "$1" --json stats 2>/dev/null | jq -r --argjson k "$(printf '%s\n' "${TCP_KEYS[@]}" | jq -R . | jq -s .)" '
    [$k[] as $n | ([(.engines // [])[] | (.counters["tcp." + $n] // "0" | tonumber)] | add // 0)]
    | @tsv' 2>/dev/null
}
# tcp_note BEFORE AFTER: a note with the non-zero TCP counter deltas.
tcp_note() {
  local -a b=($1) a=($2)
  local out="" i d
  for ((i = 0; i < ${#TCP_KEYS[@]}; i++)); do
    d=$((${a[i]:-0} - ${b[i]:-0}))
    [[ $d -ne 0 ]] && out="$out ${TCP_KEYS[i]} $d,"
  done
  note "engine TCP counters:${out:- none moved}"
}

# nic_delta BEFORE AFTER: per-field difference of two nic_snap lines (sets D_*).
nic_delta() {
  local -a b=($1) a=($2)
  D_RXP=$((a[0] - b[0])); D_TXP=$((a[1] - b[1]))
  D_RXB=$((a[2] - b[2])); D_TXB=$((a[3] - b[3]))
  D_ERX=$((a[4] - b[4])); D_ETX=$((a[5] - b[5]))
}

# run_watch RUN LOG CMD...: runs CMD (bounded by `timeout`) in the background
# and, while it runs, polls the daemon of RUN for a socket row with path
# "engine". Returns CMD's exit status; sets ENGINE_SEEN (0/1) and PATHS_SEEN
# (the distinct socket paths observed, for diagnostics).
run_watch() {
  local run=$1 log=$2
  shift 2
  bg "$log" timeout -k 5 150 "$@"
  local pid=$BG_PID paths
  ENGINE_SEEN=0
  PATHS_SEEN=""
  while kill -0 "$pid" 2>/dev/null; do
    paths=$(ctl "$run" --json stats -v 2>/dev/null |
            jq -r '[(.processes // [])[] | (.sockets // [])[] | (.path // "?")] | unique | join(",")' 2>/dev/null)
    if [[ -n $paths ]]; then
      PATHS_SEEN="$PATHS_SEEN $paths"
      if [[ ,$paths, == *,engine,* ]]; then
        ENGINE_SEEN=1
        break
      fi
    fi
    sleep 0.1  # poll interval; the loop ends with the command (bounded by timeout)
  done
  wait "$pid"
  local rc=$?
  PATHS_SEEN=$(tr ' ' '\n' <<<"$PATHS_SEEN" | tr ',' '\n' | sort -u | grep -v '^$' | paste -sd, -)
  return $rc
}

# expect_engine NAME RUN BEFORE MIN_PKTS MIN_RX_BYTES MIN_TX_BYTES
# [MIN_RX_PKTS MIN_TX_PKTS]: asserts that, since the nic_snap BEFORE, the NIC
# queues and engines of RUN's daemon carried at least MIN_PKTS packets each
# way (or MIN_RX_PKTS received and MIN_TX_PKTS sent) and the given bytes, and
# that a socket row showed path engine (ENGINE_SEEN). Counters are re-read
# for up to 5 s: data an application wrote before exiting may still be in
# flight.
expect_engine() {
  local name=$1 run=$2 before=$3 min_pkts=$4 min_rxb=$5 min_txb=$6 i ok=0
  local min_rxp=${7:-$4} min_txp=${8:-$4}
  for ((i = 0; i < 50; i++)); do
    nic_delta "$before" "$(nic_snap "$run")"
    if ((D_RXP >= min_rxp && D_TXP >= min_txp && D_ERX >= min_rxp && D_ETX >= min_txp &&
         D_RXB >= min_rxb && D_TXB >= min_txb)); then
      ok=1
      break
    fi
    sleep 0.1  # poll interval
  done
  # A transfer shorter than the 0.1 s poll can end before any socket row is
  # seen; then the counters alone prove it (they only count steered flows).
  local path_ok=$ENGINE_SEEN
  if [[ -z $PATHS_SEEN ]]; then
    path_ok=1
    PATHS_SEEN="none sampled (too short), counters only"
  elif ((path_ok == 0 && ok == 1)); then
    # The 0.1 s sampling can see only the listener (path pipe) of a short
    # passive transfer; the counters grow only for steered (engine) flows.
    path_ok=1
    PATHS_SEEN="$PATHS_SEEN (the engine socket ended between samples; counters prove it)"
  fi
  local detail="nic rx ${D_RXP} pkts/${D_RXB} B, tx ${D_TXP} pkts/${D_TXB} B; engine rx ${D_ERX} tx ${D_ETX}; want >= ${min_rxp} pkts in and ${min_txp} out, rx >= ${min_rxb} B, tx >= ${min_txb} B; socket paths seen: ${PATHS_SEEN:-none}"
  if ((ok == 1 && path_ok == 1)); then
    pass "$name: carried by the engine ($detail)"
  else
    fail "$name: not carried by the engine ($detail)"
  fi
}

# daemon_a_alive WHEN: FAILs when offloadd (A) died since the last check
# (printing how and its log) and restarts it so the remaining checks run.
daemon_a_alive() {
  local when=$1 st
  if [[ $daemon_a -gt 0 ]] && ! kill -0 "$daemon_a" 2>/dev/null; then
    wait "$daemon_a"
    st=$?
    fail "offloadd (A) died during $when (wait status $st$( ((st > 128)) && echo ", signal $((st - 128))")); its log:"
    tail -20 "$WORK/offloadd-$NS_A.log" | sed 's/^/     | /'
    daemon_a=-1
    if start_daemon "$NS_A" "$RUN_A" va; then
      daemon_a=$DAEMON_PID
      note "offloadd (A) restarted (pid $daemon_a) for the remaining checks"
    fi
  fi
}

# Ports: random base, distinct per use, below the namespaces' ephemeral range
# (32768-60999): namespaces are private, and a connection's ephemeral port in
# TIME-WAIT refuses a later bind of the same port, on the kernel as under
# offload (a sockperf server once failed to bind 38644 that way).
next_port=$((10000 + RANDOM % 20000))

# sp_p50 LOG: the p50 of a sockperf latency run.
sp_p50() { grep -a 'percentile 50.000' "$1" | awk '{print $NF}' | tail -1; }

# ttcp_run NAME RX_CMD_PREFIX RX_IP TX_CMD_PREFIX BYTES [RUN_FOR_PROOF DIRECTION]
# A verified ttcp transfer of BYTES (64 KiB writes) from TX to RX listening on
# RX_IP. With RUN and DIRECTION ("tx" or "rx": which side is offloaded by that
# daemon) the engine proof is asserted too.
ttcp_run() {
  local name=$1 rx_ns_prefix=$2 rx_ip=$3 tx_prefix=$4 bytes=$5 run=${6:-} dir=${7:-}
  local -a rxp txp txo
  read -r -a rxp <<<"$rx_ns_prefix"
  read -r -a txp <<<"$tx_prefix"
  read -r -a txo <<<"${TTCP_TX_OPTS:-}"  # extra transmitter options
  local pf=$WORK/ttcp-port.$RANDOM
  rm -f "$pf"
  local nbuf=$((bytes / 65536))
  local before tcp_before
  [[ -n $run ]] && before=$(nic_snap "$run") && tcp_before=$(tcp_snap "$run")
  bg "$WORK/ttcp-r.log" timeout -k 5 150 "${rxp[@]}" "$TTCP" -r -V -l 64k -p 0 --bind "$rx_ip" \
    --port-file "$pf" --timeout 30
  local rx_pid=$BG_PID
  if ! wait_file "$pf"; then
    fail "$name: receiver did not listen: $(cat "$WORK/ttcp-r.log")"
    stop_pid "$rx_pid"
    return
  fi
  local t0=$SECONDS rc_t rc_r
  if [[ -n $run && $dir == tx ]]; then
    run_watch "$run" "$WORK/ttcp-t.log" "${txp[@]}" "$TTCP" -t "${txo[@]}" -l 64k -n "$nbuf" -p "$(cat "$pf")" "$rx_ip"
    rc_t=$?
  else
    timeout -k 5 150 "${txp[@]}" "$TTCP" -t "${txo[@]}" -l 64k -n "$nbuf" -p "$(cat "$pf")" "$rx_ip" \
      >"$WORK/ttcp-t.log" 2>&1 &
    local tpid=$!
    pids+=("$tpid")
    if [[ -n $run ]]; then
      # Passive side offloaded: watch the receiver's socket rows meanwhile.
      ENGINE_SEEN=0
      PATHS_SEEN=""
      local paths
      while kill -0 "$tpid" 2>/dev/null; do
        paths=$(ctl "$run" --json stats -v 2>/dev/null |
                jq -r '[(.processes // [])[] | (.sockets // [])[] | (.path // "?")] | unique | join(",")' 2>/dev/null)
        [[ -n $paths ]] && PATHS_SEEN="$PATHS_SEEN,$paths"
        if [[ ,$paths, == *,engine,* ]]; then ENGINE_SEEN=1; break; fi
        sleep 0.1  # poll interval; bounded by the transmitter's timeout
      done
      PATHS_SEEN=$(tr ',' '\n' <<<"$PATHS_SEEN" | sort -u | grep -v '^$' | paste -sd, -)
    fi
    wait "$tpid"
    rc_t=$?
  fi
  wait "$rx_pid"
  rc_r=$?
  local secs=$((SECONDS - t0))
  local got
  got=$(grep -ao 'ttcp-result role=r bytes=[0-9]*' "$WORK/ttcp-r.log" | grep -o '[0-9]*$')
  if [[ $rc_t -eq 0 && $rc_r -eq 0 && ${got:-0} -eq $bytes ]]; then
    pass "$name: $bytes bytes verified in ~${secs}s ($(grep -ao 'mbit_per_s=[0-9.]*' "$WORK/ttcp-r.log"))"
  else
    fail "$name: transmitter rc $rc_t, receiver rc $rc_r, received ${got:-?} of $bytes bytes"
    note "transmitter: $(tail -3 "$WORK/ttcp-t.log" | tr '\n' ' ')"
    note "receiver: $(tail -3 "$WORK/ttcp-r.log" | tr '\n' ' ')"
  fi
  if [[ -n $run ]]; then
    tcp_note "$tcp_before" "$(tcp_snap "$run")"
    # At least one segment per 64 KiB write carries the data; the ACKs
    # coming back can be far fewer (a kernel peer with GRO acknowledges a
    # whole aggregate, and more so on a busy machine): at least one per
    # 1 MiB.
    local packets=$((bytes / 65536)) acks=$((bytes / 1048576))
    if [[ $dir == tx ]]; then
      expect_engine "$name" "$run" "$before" "$packets" 0 "$bytes" "$acks" "$packets"
    else
      expect_engine "$name" "$run" "$before" "$packets" "$bytes" 0 "$packets" "$acks"
    fi
  fi
}

echo "== setup: $NS_A ($IP_A, offloadd) <-> $NS_B ($IP_B, kernel); work dir $WORK"
if ! setup_veth; then
  echo "FAIL setup: cannot create namespaces/veth"
  exit 1
fi

have_sockperf=1
command -v sockperf >/dev/null || have_sockperf=0

# ---- kernel <-> kernel latency over the same veth (report only) --------------
kernel_p50=n/a
if ((have_sockperf)); then
  port
  bg "$WORK/sp-kk-srv.log" "${IN_B[@]}" sockperf server --tcp -i "$IP_B" -p "$PORT"
  kk_srv=$BG_PID
  if wait_listen "$NS_B" "$PORT"; then
    timeout -k 5 30 "${IN_A[@]}" sockperf ping-pong --tcp -i "$IP_B" -p "$PORT" -t 3 \
      >"$WORK/sp-kk.log" 2>&1
    kernel_p50=$(sp_p50 "$WORK/sp-kk.log")
  fi
  stop_pid "$kk_srv"
fi

if ! start_daemon "$NS_A" "$RUN_A" va; then
  echo "FAIL setup: offloadd"
  exit 1
fi
daemon_a=$DAEMON_PID
note "offloadd (A) pid $daemon_a: $(ctl "$RUN_A" status 2>&1 | grep -i -m1 'va')"

# ---- 1 and 2: sockperf ----------------------------------------------------------
offload_p50=n/a
passive_p50=n/a
# sockperf_pair NAME SERVER_PREFIX SERVER_NS SERVER_IP CLIENT_PREFIX SIDE
# SIDE = client|server: which one is offloaded (under daemon A).
sockperf_pair() {
  local name=$1 srv_prefix=$2 srv_ns=$3 srv_ip=$4 cli_prefix=$5 side=$6
  local -a sp cp
  read -r -a sp <<<"$srv_prefix"
  read -r -a cp <<<"$cli_prefix"
  port
  bg "$WORK/sp-srv.log" "${sp[@]}" sockperf server --tcp -i "$srv_ip" -p "$PORT"
  local srv=$BG_PID
  if ! wait_listen "$srv_ns" "$PORT"; then
    fail "$name: sockperf server did not listen: $(tail -3 "$WORK/sp-srv.log")"
    stop_pid "$srv"
    return
  fi
  local before rc obs sent
  # Ping-pong.
  before=$(nic_snap "$RUN_A")
  # Offloaded server: its accepted socket's row is watched while the kernel
  # client runs.
  run_watch "$RUN_A" "$WORK/sp-pp.log" "${cp[@]}" sockperf ping-pong --tcp -i "$srv_ip" -p "$PORT" -t 3
  rc=$?
  obs=$(sp_obs "$WORK/sp-pp.log")
  if [[ $rc -eq 0 && ${obs:-0} -gt 0 ]]; then
    pass "$name ping-pong: $obs round trips, p50 $(sp_p50 "$WORK/sp-pp.log") us"
    LAST_P50=$(sp_p50 "$WORK/sp-pp.log")
  else
    fail "$name ping-pong: rc $rc, observations ${obs:-none}: $(tail -5 "$WORK/sp-pp.log" | tr '\n' ' ')"
  fi
  # Each round trip is one request and one reply segment each way.
  expect_engine "$name ping-pong" "$RUN_A" "$before" "${obs:-1}" 0 0
  # Throughput, 100-byte messages.
  before=$(nic_snap "$RUN_A")
  run_watch "$RUN_A" "$WORK/sp-tp.log" "${cp[@]}" sockperf throughput --tcp -i "$srv_ip" -p "$PORT" -m 100 -t 3
  rc=$?
  sent=$(sp_sent "$WORK/sp-tp.log")
  if [[ $rc -eq 0 && ${sent:-0} -gt 0 ]]; then
    pass "$name throughput: $sent messages of 100 B sent ($(grep -ao 'BandWidth is [0-9.]* MBps' "$WORK/sp-tp.log" | head -1))"
  else
    fail "$name throughput: rc $rc, messages ${sent:-none}: $(tail -5 "$WORK/sp-tp.log" | tr '\n' ' ')"
  fi
  local bytes=$(( ${sent:-0} * 100 ))
  if [[ $side == client ]]; then
    expect_engine "$name throughput" "$RUN_A" "$before" 1 0 "$bytes"
  else
    expect_engine "$name throughput" "$RUN_A" "$before" 1 "$bytes" 0
  fi
  stop_pid "$srv"
}

echo "== 1. offloaded client (A) -> kernel server (B): sockperf"
if ((have_sockperf)); then
  LAST_P50=n/a
  sockperf_pair "1 offloaded client" "${IN_B[*]}" "$NS_B" "$IP_B" "${OFF_A[*]}" client
  offload_p50=$LAST_P50
else
  skip "1: sockperf not installed"
fi

daemon_a_alive "check 1"
echo "== 2. kernel client (B) -> offloaded server (A): sockperf"
if ((have_sockperf)); then
  LAST_P50=n/a
  sockperf_pair "2 offloaded server" "${OFF_A[*]}" "$NS_A" "$IP_A" "${IN_B[*]}" server
  passive_p50=$LAST_P50
else
  skip "2: sockperf not installed"
fi

daemon_a_alive "check 2"
echo "== 3. 1 GiB each way, every byte verified (ttcp)"
ttcp_run "3 offloaded tx A -> kernel rx B, 1 GiB" "${IN_B[*]}" "$IP_B" "${OFF_A[*]}" $((1 << 30)) "$RUN_A" tx
ttcp_run "3 kernel tx B -> offloaded rx A, 1 GiB" "${OFF_A[*]}" "$IP_A" "${IN_B[*]}" $((1 << 30)) "$RUN_A" rx

daemon_a_alive "check 3"
echo "== 4. verified transfers each way under random loss (iptables in B, both directions)"
# 64 MiB at 1 %, 16 MiB at 5 % (to stay in time); the same transfer between
# kernels runs under the same loss as a reference (reported, not compared).
# The A -> B reference runs twice: with CUBIC, the engine's congestion
# control (like for like), and with the namespace's default (BBR on many
# hosts, which hardly reacts to random loss and is far faster here).
KERNEL_CC=$(ip netns exec "$NS_A" sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo "?")
if command -v iptables >/dev/null; then
  for spec in 0.01:64 0.05:16; do
    prob=${spec%%:*}
    mib=${spec##*:}
    rules_ok=1
    for chain in INPUT OUTPUT; do
      ip netns exec "$NS_B" iptables -A "$chain" -p tcp -m statistic --mode random \
        --probability "$prob" -j DROP || rules_ok=0
    done
    if ((rules_ok)); then
      ttcp_run "4 loss $prob: offloaded tx A -> kernel rx B, $mib MiB" "${IN_B[*]}" "$IP_B" "${OFF_A[*]}" $((mib << 20)) "$RUN_A" tx
      ttcp_run "4 loss $prob: kernel tx B -> offloaded rx A, $mib MiB" "${OFF_A[*]}" "$IP_A" "${IN_B[*]}" $((mib << 20)) "$RUN_A" rx
      TTCP_TX_OPTS="--congestion cubic" \
        ttcp_run "4 loss $prob: reference kernel tx A (cubic, as the engine) -> kernel rx B, $mib MiB" "${IN_B[*]}" "$IP_B" "${IN_A[*]}" $((mib << 20))
      if [[ $KERNEL_CC != cubic ]]; then
        ttcp_run "4 loss $prob: reference kernel tx A ($KERNEL_CC, the namespace default) -> kernel rx B, $mib MiB" "${IN_B[*]}" "$IP_B" "${IN_A[*]}" $((mib << 20))
      fi
      ttcp_run "4 loss $prob: reference kernel tx B -> kernel rx A, $mib MiB" "${IN_A[*]}" "$IP_A" "${IN_B[*]}" $((mib << 20))
      drops=$(ip netns exec "$NS_B" iptables -L -v -n -x | awk '/DROP/ && /statistic/ {s += $1} END {print s + 0}')
      if ((drops > 0)); then
        pass "4 loss $prob: loss was really injected ($drops packets dropped)"
      else
        fail "4 loss $prob: no packet was dropped"
      fi
    else
      fail "4 loss $prob: cannot install the iptables statistic rules"
    fi
    for chain in INPUT OUTPUT; do
      ip netns exec "$NS_B" iptables -D "$chain" -p tcp -m statistic --mode random \
        --probability "$prob" -j DROP 2>/dev/null
    done
  done
else
  skip "4: iptables not installed"
fi

# fault_snap RUN: "rx_reorders tx_reorders rx_drops tx_drops" injected by
# OFFLOADD_FAULT, summed over the daemon's NIC queues.
fault_snap() {
  ctl "$1" --json stats 2>/dev/null | jq -r '
    def sum(f): (map(f // "0" | tonumber) | add) // 0;
    (.nics // []) | [sum(.fault_rx_reorders), sum(.fault_tx_reorders),
                     sum(.fault_rx_drops), sum(.fault_tx_drops)] | @tsv' 2>/dev/null ||
    echo "-1 -1 -1 -1"
}

# ofo NS: the kernel's count of segments that arrived out of order in NS
# (TcpExtTCPOFOQueue), or -1 without nstat.
ofo() {
  command -v nstat >/dev/null || { echo -1; return; }
  ip netns exec "$1" nstat -az TcpExtTCPOFOQueue 2>/dev/null |
    awk '$1 == "TcpExtTCPOFOQueue" {v = $2} END {print v + 0}'
}

# reorder_qdisc NS DEV add|del: on DEV's egress, HTB with a fast default class
# and a slow one (100 Mbit/s) that a classic-BPF cls_bpf filter fills with a
# random 2 % of the packets (ld rand; jge 2%: no match; else class 1:2). The
# slow class's packets wait for tokens while later ones overtake them. There
# is no netem in this kernel. TSO/GSO are off meanwhile so that the qdisc
# sees frames, as the engine sends them, not 64 KiB GSO packets.
REORDER_BPF="4,32 0 0 4294963256,53 1 0 $(((1 << 32) / 50)),6 0 0 65538,6 0 0 0"
reorder_qdisc() {
  local ns=$1 dev=$2 op=$3
  if [[ $op == del ]]; then
    ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null
    ip netns exec "$ns" ethtool -K "$dev" tso on gso on >/dev/null 2>&1  # vb: tso stays off (tx off)
    return 0
  fi
  ip netns exec "$ns" ethtool -K "$dev" tso off gso off >/dev/null 2>&1
  ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: htb default 1 &&
    ip netns exec "$ns" tc class add dev "$dev" parent 1: classid 1:1 htb rate 20gbit quantum 60000 &&
    ip netns exec "$ns" tc class add dev "$dev" parent 1: classid 1:2 htb rate 100mbit \
      ceil 100mbit quantum 1514 &&
    ip netns exec "$ns" tc filter add dev "$dev" parent 1: protocol ip prio 1 bpf \
      bytecode "$REORDER_BPF"
}

# slow_pkts NS DEV: packets the slow class sent.
slow_pkts() {
  ip netns exec "$1" tc -s class show dev "$2" 2>/dev/null |
    awk '/class htb 1:2 / {f = 1} f && /Sent/ {print $4; exit}'
}

daemon_a_alive "check 4 (loss)"
echo "== 4. verified transfers each way under ~2 % reordering (64 MiB)"
# offloadd (A) restarted with its NIC queues holding 2 % of the frames each
# way for up to 3 later frames or 200 us; the kernel side sees the result.
REORDER_FAULT="rx_reorder=0.02,tx_reorder=0.02,reorder_depth=3,reorder_us=200,seed=$$"
stop_pid "$daemon_a"
daemon_a=-1
if start_daemon "$NS_A" "$RUN_A" va "$REORDER_FAULT"; then
  daemon_a=$DAEMON_PID
  if grep -q 'OFFLOADD_FAULT is set' "$WORK/offloadd-$NS_A.log"; then
    pass "4 reorder: offloadd warns that it injects faults"
  else
    fail "4 reorder: no OFFLOADD_FAULT warning in offloadd's log"
  fi
  mib=64
  f0=$(fault_snap "$RUN_A")
  o0=$(ofo "$NS_B")
  ttcp_run "4 reorder: offloaded tx A -> kernel rx B, $mib MiB" "${IN_B[*]}" "$IP_B" "${OFF_A[*]}" $((mib << 20)) "$RUN_A" tx
  f1=$(fault_snap "$RUN_A")
  o1=$(ofo "$NS_B")
  ttcp_run "4 reorder: kernel tx B -> offloaded rx A, $mib MiB" "${OFF_A[*]}" "$IP_A" "${IN_B[*]}" $((mib << 20)) "$RUN_A" rx
  f2=$(fault_snap "$RUN_A")
  read -r -a F0 <<<"$f0"
  read -r -a F1 <<<"$f1"
  read -r -a F2 <<<"$f2"
  tx_held=$((F1[1] - F0[1]))
  rx_held=$((F2[0] - F1[0]))
  if ((F0[0] >= 0 && tx_held > 0)); then
    pass "4 reorder: offloaded tx reordered $tx_held frames (kernel B queued $((o1 - o0)) segments out of order)"
  else
    fail "4 reorder: offloaded tx: no frame was reordered (fault counters $f0 -> $f1)"
  fi
  if ((F1[0] >= 0 && rx_held > 0)); then
    pass "4 reorder: offloaded rx reordered $rx_held frames"
  else
    fail "4 reorder: offloaded rx: no frame was reordered (fault counters $f1 -> $f2)"
  fi
  if ((F2[2] != 0 || F2[3] != 0)); then
    fail "4 reorder: frames were dropped although only reordering was asked for ($f2)"
  fi
else
  fail "4 reorder: offloadd (A) did not start with OFFLOADD_FAULT=$REORDER_FAULT"
fi
# Back to a daemon without faults for the remaining checks.
stop_pid "$daemon_a"
daemon_a=-1
if start_daemon "$NS_A" "$RUN_A" va; then
  daemon_a=$DAEMON_PID
else
  fail "4 reorder: offloadd (A) did not restart without faults"
fi

if command -v tc >/dev/null && reorder_qdisc "$NS_A" va add && reorder_qdisc "$NS_B" vb add; then
  o0=$(ofo "$NS_B")
  TTCP_TX_OPTS="--congestion cubic" \
    ttcp_run "4 reorder: reference kernel tx A (cubic, as the engine) -> kernel rx B, 64 MiB" "${IN_B[*]}" "$IP_B" "${IN_A[*]}" $((64 << 20))
  o1=$(ofo "$NS_A")
  ttcp_run "4 reorder: reference kernel tx B -> kernel rx A, 64 MiB" "${IN_A[*]}" "$IP_A" "${IN_B[*]}" $((64 << 20))
  o2=$(ofo "$NS_A")
  ob=$(($(ofo "$NS_B") - o0))
  slow_a=$(slow_pkts "$NS_A" va)
  slow_b=$(slow_pkts "$NS_B" vb)
  if ((${slow_a:-0} > 0 && ${slow_b:-0} > 0)); then
    pass "4 reorder: reference reordering injected (slow class sent $slow_a packets on va, $slow_b on vb; out-of-order segments queued: B $ob, A $((o2 - o1)))"
  else
    fail "4 reorder: the reference reorder qdisc classified nothing (va ${slow_a:-?}, vb ${slow_b:-?})"
  fi
else
  skip "4 reorder: kernel references (tc HTB + cls_bpf reorder qdisc not available)"
fi
reorder_qdisc "$NS_A" va del
reorder_qdisc "$NS_B" vb del

daemon_a_alive "check 4"
echo "== 6. real applications"
# nginx + wrk. nginx_wrk NAME SERVER_PREFIX CLIENT_PREFIX SERVER_IP SERVER_NS
nginx_wrk() {
  local name=$1 srv_prefix=$2 cli_prefix=$3 srv_ip=$4 srv_ns=$5
  local -a sp cp
  read -r -a sp <<<"$srv_prefix"
  read -r -a cp <<<"$cli_prefix"
  port
  local w=$WORK/nginx-$PORT
  mkdir -p "$w/www"
  head -c 4096 /dev/urandom | base64 >"$w/www/index.html"
  cat >"$w/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $w/nginx.pid;
error_log $w/error.log;
events { worker_connections 512; }
http {
  client_body_temp_path $w/body;
  proxy_temp_path $w/proxy;
  fastcgi_temp_path $w/fastcgi;
  log_format st '\$status';
  access_log $w/access.log st;
  server { listen $srv_ip:$PORT; root $w/www; }
}
EOF
  bg "$WORK/nginx.log" "${sp[@]}" nginx -p "$w" -e "$w/error.log" -c "$w/nginx.conf"
  local srv=$BG_PID
  if ! wait_listen "$srv_ns" "$PORT"; then
    fail "$name: nginx did not listen: $(cat "$WORK/nginx.log" "$w/error.log" 2>/dev/null | tail -5)"
    stop_pid "$srv"
    return
  fi
  local before rc
  before=$(nic_snap "$RUN_A")
  run_watch "$RUN_A" "$WORK/wrk.log" "${cp[@]}" wrk -d 3 -c 20 -t 1 "http://$srv_ip:$PORT/index.html"
  rc=$?
  local reqs logged=0 i
  reqs=$(grep -ao '[0-9]* requests in' "$WORK/wrk.log" | grep -o '^[0-9]*')
  # nginx logs each request once its response is sent: wait (5 s) for the log
  # to catch up with what wrk counted.
  for ((i = 0; i < 50; i++)); do
    logged=$(wc -l <"$w/access.log" 2>/dev/null || echo 0)
    ((logged >= ${reqs:-1})) && break
    sleep 0.1  # poll interval
  done
  local non200
  non200=$(grep -vc '^200$' "$w/access.log" 2>/dev/null)
  if [[ $rc -eq 0 && ${reqs:-0} -gt 0 ]] && ! grep -aq 'Socket errors\|Non-2xx' "$WORK/wrk.log" &&
     ((logged >= reqs && ${non200:-1} == 0)); then
    pass "$name: $reqs requests, all 200, no socket errors ($(grep -a 'Requests/sec' "$WORK/wrk.log" | tr -s ' '))"
  else
    fail "$name: wrk rc $rc, requests ${reqs:-?}, nginx logged $logged (non-200: ${non200:-?}): $(grep -a 'errors\|Non-2xx\|requests in' "$WORK/wrk.log" | tr '\n' ' ')"
  fi
  expect_engine "$name" "$RUN_A" "$before" "${reqs:-1}" 0 0
  stop_pid "$srv"
}

# redis_bench NAME SERVER_PREFIX CLIENT_PREFIX SERVER_IP SERVER_NS
redis_bench() {
  local name=$1 srv_prefix=$2 cli_prefix=$3 srv_ip=$4 srv_ns=$5
  local -a sp cp
  read -r -a sp <<<"$srv_prefix"
  read -r -a cp <<<"$cli_prefix"
  port
  local w=$WORK/redis-$PORT
  mkdir -p "$w"
  bg "$WORK/redis-server.log" "${sp[@]}" redis-server --bind "$srv_ip" --port "$PORT" --save '' \
    --appendonly no --protected-mode no --dir "$w"
  local srv=$BG_PID
  if ! wait_listen "$srv_ns" "$PORT"; then
    fail "$name: redis-server did not listen: $(tail -5 "$WORK/redis-server.log")"
    stop_pid "$srv"
    return
  fi
  local before rc
  before=$(nic_snap "$RUN_A")
  run_watch "$RUN_A" "$WORK/redis-benchmark.log" "${cp[@]}" redis-benchmark -h "$srv_ip" -p "$PORT" \
    -n 20000 -c 20 -q -t set,get
  rc=$?
  # Every request must have reached the server: its own command counters
  # (asked through the kernel, from the server's namespace, not under offload).
  local stats sets gets
  stats=$(timeout 10 ip netns exec "$srv_ns" redis-cli -h "$srv_ip" -p "$PORT" info commandstats 2>&1)
  sets=$(grep -ao 'cmdstat_set:calls=[0-9]*' <<<"$stats" | grep -o '[0-9]*$')
  gets=$(grep -ao 'cmdstat_get:calls=[0-9]*' <<<"$stats" | grep -o '[0-9]*$')
  # -q rewrites a progress line with \r; the final lines are
  # "SET: N requests per second, p50=...".
  local summary
  summary=$(tr '\r' '\n' <"$WORK/redis-benchmark.log" | grep -a '^[SG]ET: .*requests per second' | sed 's/ *$//')
  if [[ $rc -eq 0 ]] && grep -q '^SET: ' <<<"$summary" && grep -q '^GET: ' <<<"$summary" &&
     ((${sets:-0} == 20000 && ${gets:-0} == 20000)); then
    pass "$name: 20000 SET + 20000 GET all processed ($(paste -sd';' - <<<"$summary"))"
  else
    fail "$name: redis-benchmark rc $rc, server counted SET ${sets:-?} GET ${gets:-?} of 20000: $(tr '\r' '\n' <"$WORK/redis-benchmark.log" | grep -v '^$' | tail -4 | paste -sd' ' -)"
  fi
  expect_engine "$name" "$RUN_A" "$before" 40000 0 0
  stop_pid "$srv"
}

if command -v nginx >/dev/null && command -v wrk >/dev/null; then
  nginx_wrk "6 nginx offloaded (A) <- wrk kernel (B)" "${OFF_A[*]}" "${IN_B[*]}" "$IP_A" "$NS_A"
  nginx_wrk "6 nginx kernel (B) <- wrk offloaded (A)" "${IN_B[*]}" "${OFF_A[*]}" "$IP_B" "$NS_B"
else
  skip "6 nginx/wrk: $(command -v nginx >/dev/null || echo 'nginx') $(command -v wrk >/dev/null || echo 'wrk') not installed"
fi
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null; then
  redis_bench "6 redis offloaded (A) <- redis-benchmark kernel (B)" "${OFF_A[*]}" "${IN_B[*]}" "$IP_A" "$NS_A"
  redis_bench "6 redis kernel (B) <- redis-benchmark offloaded (A)" "${IN_B[*]}" "${OFF_A[*]}" "$IP_B" "$NS_B"
else
  skip "6 redis: redis-server/redis-benchmark/redis-cli not installed"
fi

daemon_a_alive "check 6"
echo "== 5. kernel traffic beside offloadd: running, after kill -9, after restart"
# kernel_checks WHEN: ICMP both ways and ARP resolution from flushed
# neighbour tables, and a verified kernel TCP transfer by processes not under
# offload, both directions.
kernel_checks() {
  local when=$1 out
  ip -n "$NS_A" neigh flush dev va
  ip -n "$NS_B" neigh flush dev vb
  if out=$(timeout 20 ip netns exec "$NS_B" python3 "$ICMP_PING" "$IP_A" 3 2 2>&1); then
    pass "5 $when: ICMP B -> A after neighbour flush"
  else
    fail "5 $when: ICMP B -> A: $out"
  fi
  if out=$(timeout 20 ip netns exec "$NS_A" python3 "$ICMP_PING" "$IP_B" 3 2 2>&1); then
    pass "5 $when: ICMP A -> B"
  else
    fail "5 $when: ICMP A -> B: $out"
  fi
  local na nb
  na=$(ip -n "$NS_A" neigh show "$IP_B" dev va)
  nb=$(ip -n "$NS_B" neigh show "$IP_A" dev vb)
  if [[ $na == *lladdr* && $nb == *lladdr* ]]; then
    pass "5 $when: ARP resolved both ways (A: $na; B: $nb)"
  else
    fail "5 $when: ARP not resolved (A: '${na}'; B: '${nb}')"
  fi
  ttcp_run "5 $when: kernel TCP B -> A (not under offload), 16 MiB" "${IN_A[*]}" "$IP_A" "${IN_B[*]}" $((16 << 20))
  ttcp_run "5 $when: kernel TCP A -> B (not under offload), 16 MiB" "${IN_B[*]}" "$IP_B" "${IN_A[*]}" $((16 << 20))
}
kernel_checks "offloadd running"
kill -KILL "$daemon_a"
wait "$daemon_a" 2>/dev/null
daemon_a=-1
note "offloadd killed with SIGKILL; XDP on va: $(ip -n "$NS_A" link show va | grep -o 'prog/xdp[^ ]* id [0-9]*' || echo none)"
kernel_checks "after kill -9"
if start_daemon "$NS_A" "$RUN_A" va; then
  daemon_a=$DAEMON_PID
  pass "5 offloadd restarted after kill -9"
  kernel_checks "after restart"
  ttcp_run "5 after restart: offloaded tx A -> kernel rx B, 16 MiB" "${IN_B[*]}" "$IP_B" "${OFF_A[*]}" $((16 << 20)) "$RUN_A" tx
else
  fail "5 offloadd did not restart after kill -9"
fi

daemon_a_alive "check 5"
echo "== 7. offloaded (A) <-> offloaded (B): two daemons"
if [[ $daemon_a -gt 0 ]] && start_daemon "$NS_B" "$RUN_B" vb; then
  daemon_b=$DAEMON_PID
  ttcp_run "7 offloaded tx A -> offloaded rx B, 64 MiB" "${OFF_B[*]}" "$IP_B" "${OFF_A[*]}" $((64 << 20)) "$RUN_A" tx
  ttcp_run "7 (daemon B view) offloaded tx B -> offloaded rx A, 64 MiB" "${OFF_A[*]}" "$IP_A" "${OFF_B[*]}" $((64 << 20)) "$RUN_B" tx
  if ((have_sockperf)); then
    port
    bg "$WORK/sp7-srv.log" "${OFF_B[@]}" sockperf server --tcp -i "$IP_B" -p "$PORT"
    srv=$BG_PID
    if wait_listen "$NS_B" "$PORT"; then
      before_a=$(nic_snap "$RUN_A")
      before_b=$(nic_snap "$RUN_B")
      run_watch "$RUN_A" "$WORK/sp7.log" "${OFF_A[@]}" sockperf ping-pong --tcp -i "$IP_B" -p "$PORT" -t 3
      rc=$?
      seen_a=$ENGINE_SEEN
      paths_a=$PATHS_SEEN
      obs=$(sp_obs "$WORK/sp7.log")
      if [[ $rc -eq 0 && ${obs:-0} -gt 0 ]]; then
        pass "7 sockperf ping-pong offloaded <-> offloaded: $obs round trips, p50 $(sp_p50 "$WORK/sp7.log") us"
        twin_p50=$(sp_p50 "$WORK/sp7.log")
      else
        fail "7 sockperf ping-pong offloaded <-> offloaded: rc $rc: $(tail -5 "$WORK/sp7.log" | tr '\n' ' ')"
      fi
      ENGINE_SEEN=$seen_a PATHS_SEEN=$paths_a
      expect_engine "7 ping-pong (daemon A)" "$RUN_A" "$before_a" "${obs:-1}" 0 0
      # Daemon B's socket rows are not sampled here; its counters are.
      ENGINE_SEEN=1 PATHS_SEEN="(not sampled)"
      expect_engine "7 ping-pong (daemon B)" "$RUN_B" "$before_b" "${obs:-1}" 0 0
    else
      fail "7 sockperf server under offload in B did not listen: $(tail -3 "$WORK/sp7-srv.log")"
    fi
    stop_pid "$srv"
  else
    skip "7 sockperf: not installed"
  fi
else
  fail "7 second offloadd in B did not start"
fi

daemon_a_alive "check 7"
if [[ $daemon_b -gt 0 ]] && ! kill -0 "$daemon_b" 2>/dev/null; then
  fail "offloadd (B) died during check 7; its log:"
  tail -20 "$WORK/offloadd-$NS_B.log" | sed 's/^/     | /'
fi
stop_pid "$daemon_b"
stop_pid "$daemon_a"

echo "== latency report (sockperf TCP ping-pong p50, usec; not asserted)"
echo "   kernel A <-> kernel B over the veth : ${kernel_p50:-n/a}"
echo "   offloaded client A -> kernel B      : ${offload_p50:-n/a}"
echo "   kernel client B -> offloaded A      : ${passive_p50:-n/a}"
echo "   offloaded A <-> offloaded B         : ${twin_p50:-n/a}"
echo "== $passes passed, $failures failed, $skips skipped"
[[ $failures -eq 0 ]]
