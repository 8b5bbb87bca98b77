# One sample of the family comparisons (sourced by family_compare.sh and
# wire_family_compare.sh). The caller sets PP, LIB, TMP, BCPU, SECS, SAMPLE,
# SPID, the addresses ADDR4 / ADDR6, the command prefixes SRV_IN / CLI_IN
# (arrays, e.g. `ip netns exec NS`; may be empty) and SERVER_OFFLOADED (1:
# the server runs under liboffload too, 0: on the kernel).

# run SIDE FAMILY [TRIES]: one sample of both tests; appends "side fam p50 tput".
run() {
  local side=$1 fam=$2 tries=${3:-0} addr env=() senv=()
  [ "$fam" = ipv4 ] && addr=$ADDR4 || addr=$ADDR6
  [ "$side" = offload ] && env=(LD_PRELOAD="$LIB" OFFLOAD_RUN_DIR="$TMP/run" OFFLOAD_DEBUG=1)
  [ "$SERVER_OFFLOADED" = 1 ] && senv=("${env[@]}")
  local port=$((10000 + RANDOM % 20000))
  SAMPLE=$((SAMPLE + 1))
  local out=$TMP/server.$SAMPLE.out  # a fresh file: no earlier server's line
  "${SRV_IN[@]}" env "${senv[@]}" taskset -c $BCPU "$PP" server "$addr" $port > "$out" 2>&1 &
  SPID=$!
  # Until the server listens, or exits (its port was taken); 30 s at most.
  for _ in $(seq 600); do
    grep -q listening "$out" 2>/dev/null && break
    kill -0 $SPID 2>/dev/null || break
    sleep 0.05
  done
  if ! grep -q listening "$out" 2>/dev/null; then
    kill -KILL $SPID 2>/dev/null || true
    wait $SPID 2>/dev/null || true
    SPID=
    [ "$tries" -lt 5 ] || { echo "no server could listen:" >&2; cat "$out" >&2; exit 1; }
    run "$side" "$fam" $((tries + 1))
    return
  fi
  local pp tp
  pp=$("${CLI_IN[@]}" env "${env[@]}" taskset -c $BCPU "$PP" pingpong "$addr" $port 64 "$SECS" \
       2> "$TMP/c1.err") ||
    { echo "pingpong failed ($side $fam):" >&2; cat "$TMP/c1.err" "$out" >&2; exit 1; }
  tp=$("${CLI_IN[@]}" env "${env[@]}" taskset -c $BCPU "$PP" throughput "$addr" $port 100 "$SECS" \
       2> "$TMP/c2.err") ||
    { echo "throughput failed ($side $fam):" >&2; cat "$TMP/c2.err" "$out" >&2; exit 1; }
  kill $SPID 2>/dev/null || true
  wait $SPID 2>/dev/null || true
  SPID=
  if [ "$side" = offload ] && ! grep -q "enabled bypass" "$TMP/c1.err"; then
    echo "offload side was not offloaded ($fam):" >&2; cat "$TMP/c1.err" >&2; exit 1
  fi
  local p50 rate
  p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<< "$pp")
  rate=$(sed -n 's/.*msg_per_s=\([0-9.]*\).*/\1/p' <<< "$tp")
  [ -n "$p50" ] && [ -n "$rate" ] || { echo "bad output: $pp / $tp" >&2; exit 1; }
  echo "$side $fam $p50 $rate" | tee -a "$TMP/samples"
}
