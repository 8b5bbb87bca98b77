#!/usr/bin/env bash
# Zero-copy receive and the receive callback against the copying path, in
# one run: offload-udplat ping-pong (64 B), throughput (1 KiB) and the
# receive path's own cost (rxcost, 64 B and 1 KiB), each receive mode REPS
# times, interleaved, under liboffload.so with a running offloadd. Prints
# every run and the medians with their ratio to copy.
#
#   tools/udplat/udplat-compare.sh UDPLAT LIBOFFLOAD RUN_DIR [REPS] [EXTRA...]
#
# EXTRA: more offload-udplat options for every run (--busy, --cpus 0,1).
#
# Never used as a gate: the numbers depend on the machine.
set -uo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 UDPLAT LIBOFFLOAD RUN_DIR [REPS] [EXTRA...]" >&2
  exit 2
fi
UDPLAT=$1 LIB=$2 RUN=$3 REPS=${4:-5}
shift 4 2>/dev/null || shift $#
EXTRA=("$@")
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() {  # MODE RX SIZE COUNT
  LD_PRELOAD=$LIB OFFLOAD_RUN_DIR=$RUN timeout -k 5 120 "$UDPLAT" --mode "$1" --rx "$2" \
    --size "$3" --count "$4" --warmup 10000 "${EXTRA[@]}"
}

for ((r = 1; r <= REPS; r++)); do
  for rx in copy zcopy callback; do
    run pingpong "$rx" 64 200000 | tee -a "$out" || echo "FAILED pingpong $rx" | tee -a "$out"
  done
  for rx in copy zcopy callback; do
    run throughput "$rx" 1024 2000000 | tee -a "$out" || echo "FAILED throughput $rx" | tee -a "$out"
  done
  for rx in copy zcopy callback; do
    for size in 64 1024; do
      run rxcost "$rx" "$size" 1000000 | tee -a "$out" || echo "FAILED rxcost $rx" | tee -a "$out"
    done
  done
done

# median KEY MODE RX: the median of KEY over the runs of MODE/RX.
median() {
  grep "mode=$2 rx=$3 " "$out" | grep -o "$1=[0-9.]*" | cut -d= -f2 | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
         else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "medians of $REPS runs (options: ${EXTRA[*]:-none}); ratio = mode / copy"
for key in rtt_p50_us rtt_p99_us roundtrips_per_s; do
  c=$(median "$key" pingpong copy)
  for rx in copy zcopy callback; do
    m=$(median "$key" pingpong "$rx")
    printf 'pingpong 64 B   %-16s %-8s %12s  ratio %s\n' "$key" "$rx" "$m" \
      "$(awk -v a="$m" -v b="$c" 'BEGIN {printf "%.2f", a / b}')"
  done
done
# rx_ns_best: each run's cheapest burst, which preemption cannot inflate
# (on a shared machine the mean is mostly the scheduler's).
for key in rx_ns_per_msg rx_ns_best; do
  for size in 64 1024; do
    c=$(grep "mode=rxcost rx=copy size=$size " "$out" | grep -o "$key=[0-9.]*" | cut -d= -f2 |
        sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    for rx in copy zcopy callback; do
      m=$(grep "mode=rxcost rx=$rx size=$size " "$out" | grep -o "$key=[0-9.]*" | cut -d= -f2 |
          sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
      printf 'rxcost %-5s B   %-16s %-8s %12s  ratio %s\n' "$size" "$key" "$rx" "$m" \
        "$(awk -v a="$m" -v b="$c" 'BEGIN {printf "%.2f", a / b}')"
    done
  done
done
for key in recv_msg_per_s dropped; do
  c=$(median "$key" throughput copy)
  for rx in copy zcopy callback; do
    m=$(median "$key" throughput "$rx")
    printf 'throughput 1 KiB %-15s %-8s %12s  ratio %s\n' "$key" "$rx" "$m" \
      "$(awk -v a="$m" -v b="$c" 'BEGIN {if (b == 0) print "-"; else printf "%.2f", a / b}')"
  done
done
