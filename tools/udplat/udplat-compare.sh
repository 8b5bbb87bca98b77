#!/usr/bin/env bash
# Zero-copy receive and the receive callback against the copying path, in
# one run: offload-udplat ping-pong (64 B), throughput (1 KiB) and the
# receive path's own cost (rxcost, 64 B and 1 KiB), each receive mode REPS
# times, interleaved, under liboffload.so with a running offloadd. Prints
# every run and the medians with their ratio to copy (of the same library).
#
#   tools/udplat/udplat-compare.sh UDPLAT LIBS RUN_DIR [REPS] [EXTRA...]
#
# LIBS: one liboffload.so, or NAME=PATH[,NAME=PATH...] to compare builds
#   (before / after) interleaved in the same run.
# EXTRA: more offload-udplat options for every run (--busy, --cpus 0,1;
#   --cpus 0,0 puts server and client on one CPU).
# RX_MODES (environment): the receive modes, default
#   "copy zcopy zcopy:16 callback" (zcopy:N: zcopy with --free-batch N).
# TESTS (environment): default "pingpong throughput rxcost".
#
# Never used as a gate: the numbers depend on the machine. Every run is
# bounded (timeout 120 s).
set -uo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 UDPLAT LIBS RUN_DIR [REPS] [EXTRA...]" >&2
  exit 2
fi
UDPLAT=$1 LIBS=$2 RUN=$3 REPS=${4:-5}
shift 4 2>/dev/null || shift $#
EXTRA=("$@")
read -r -a MODES <<<"${RX_MODES:-copy zcopy zcopy:16 callback}"
TESTS=" ${TESTS:-pingpong throughput rxcost} "
names=() paths=()
IFS=, read -r -a specs <<<"$LIBS"
for spec in "${specs[@]}"; do
  if [[ $spec == *=* ]]; then names+=("${spec%%=*}") paths+=("${spec#*=}"); else names+=(lib) paths+=("$spec"); fi
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() {  # LIB_INDEX MODE RX SIZE COUNT: one run, its line prefixed with lib=NAME
  local rx=${3%%:*} batch=()
  [[ $3 == *:* ]] && batch=(--free-batch "${3#*:}")
  local line
  line=$(LD_PRELOAD=${paths[$1]} OFFLOAD_RUN_DIR=$RUN timeout -k 5 120 "$UDPLAT" --mode "$2" \
    --rx "$rx" "${batch[@]}" --size "$4" --count "$5" --warmup 10000 "${EXTRA[@]}")
  local rc=$?
  [[ $rc -ne 0 ]] && line="FAILED rc=$rc mode=$2 rx=$3 size=$4 ${line}"
  echo "lib=${names[$1]} $line" | tee -a "$out"
}

rxname() { [[ $1 == *:* ]] && echo "zcopyb${1#*:}" || echo "$1"; }

for ((r = 1; r <= REPS; r++)); do
  for i in "${!names[@]}"; do
    if [[ $TESTS == *" pingpong "* ]]; then
      for rx in "${MODES[@]}"; do run "$i" pingpong "$rx" 64 200000; done
    fi
    if [[ $TESTS == *" throughput "* ]]; then
      for rx in "${MODES[@]}"; do run "$i" throughput "$rx" 1024 2000000; done
    fi
    if [[ $TESTS == *" rxcost "* ]]; then
      for rx in "${MODES[@]}"; do
        for size in 64 1024; do run "$i" rxcost "$rx" "$size" 1000000; done
      done
    fi
  done
done

# median LIB MODE RX SIZE KEY: the median of KEY over those runs ("nan": none).
median() {
  grep "^lib=$1 udplat mode=$2 rx=$3 size=$4 " "$out" | grep -o " $5=[0-9.]*" | cut -d= -f2 |
    sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
                   else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# spread LIB MODE RX SIZE KEY: min-max of KEY over those runs.
spread() {
  grep "^lib=$1 udplat mode=$2 rx=$3 size=$4 " "$out" | grep -o " $5=[0-9.]*" | cut -d= -f2 |
    sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR) print lo "-" hi}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0 || b == "nan" || a == "nan") print "-"; else printf "%.2f", a / b}'; }

echo
echo "medians of $REPS runs (options: ${EXTRA[*]:-none}); ratio = mode / copy of the same lib"
grep -c "^lib=.* FAILED" "$out" | sed 's/^/failed runs: /'
for name in "${names[@]}"; do
  for spec in "pingpong 64 rtt_p50_us" "pingpong 64 rtt_p99_us" "pingpong 64 roundtrips_per_s" \
    "throughput 1024 recv_msg_per_s" "throughput 1024 recv_cpu_ns_per_msg" "throughput 1024 dropped" \
    "rxcost 64 rx_ns_best" "rxcost 64 rx_ns_per_msg" "rxcost 1024 rx_ns_best" "rxcost 1024 rx_ns_per_msg"; do
    read -r mode size key <<<"$spec"
    c=$(median "$name" "$mode" copy "$size" "$key")
    for rx in "${MODES[@]}"; do
      rn=$(rxname "$rx")
      m=$(median "$name" "$mode" "$rn" "$size" "$key")
      [[ $m == nan ]] && continue
      printf '%-6s %-10s %5s B %-16s %-9s %12s  ratio %-5s  range %s\n' "$name" "$mode" "$size" "$key" \
        "$rn" "$m" "$(ratio "$m" "$c")" "$(spread "$name" "$mode" "$rn" "$size" "$key")"
    done
  done
done
