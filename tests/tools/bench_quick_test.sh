#!/bin/bash
# Runs `offload-bench --quick` and checks that every scenario ran on every
# side and produced correct, parseable output (the bench itself verifies
# sockperf's message counts, redis' per-command counters, nginx's file
# content and wrk's error counters). No timing is asserted.
#
# Usage (from the sh_test args): bench_quick_test.sh kernel|offload
#   kernel   the kernel side only: tests the bench harness and the tools.
#   offload  both sides; //daemon:offloadd and //client:offload must be in
#            the runfiles, and the offload side must engage bypass.
set -u

MODE="${1:-kernel}"
RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
BENCH="$RUNFILES/tools/bench/offload-bench"
OUT="${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}/bench-quick-$MODE"
OFFLOADD="$RUNFILES/daemon/offloadd"
LAUNCHER="$RUNFILES/client/offload"
rm -rf "$OUT"

args=(--quick --out "$OUT" --connrate "$RUNFILES/tools/bench/offload-connrate"
      --hold "$RUNFILES/tools/bench/offload-hold" --ttcp "$RUNFILES/tools/ttcp/ttcp")
case "$MODE" in
  kernel)
    echo "offload side skipped in this target (see bench_quick_offload_test)"
    args+=(--offload off)
    want_offload=0
    ;;
  offload)
    if [[ ! -x "$OFFLOADD" || ! -x "$LAUNCHER" ]]; then
      echo "FAIL: $OFFLOADD or $LAUNCHER missing from the runfiles"
      exit 1
    fi
    echo "offload side: $LAUNCHER with $OFFLOADD"
    args+=(--offload on --offloadd "$OFFLOADD" --launcher "$LAUNCHER")
    want_offload=1
    ;;
  *)
    echo "usage: $0 kernel|offload"; exit 2 ;;
esac

python3 "$BENCH" "${args[@]}"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: offload-bench --quick exited with $rc; report follows"
  cat "$OUT/report.md" 2>/dev/null
  exit 1
fi

python3 - "$OUT" "$want_offload" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.environ.get("TEST_SRCDIR", ".."),
                                os.environ.get("TEST_WORKSPACE", "offload"),
                                "tools", "bench"))
from offload_bench import scenarios

out, want_offload = sys.argv[1], sys.argv[2] == "1"
errors = []
with open(os.path.join(out, "results.json")) as f:
    data = json.load(f)
samples = data["samples"]
sides = ["kernel"] + (["offload"] if want_offload else [])
for s in scenarios.all_scenarios():
    if hasattr(s, "prepare"):
        s.prepare(True)
    for side in sides:
        got = [x for x in samples if x["scenario"] == s.name and
               x["side"] == side]
        if not got:
            errors.append("%s/%s: no sample" % (s.name, side))
            continue
        for x in got:
            if not x["ok"]:
                errors.append("%s/%s: %s" % (s.name, side, x["error"]))
                continue
            for m in s.metrics:
                v = x["metrics"].get(m.key)
                if not isinstance(v, (int, float)) or v < 0 or (
                        v == 0 and not m.may_be_zero):
                    errors.append("%s/%s: metric %s = %r" % (
                        s.name, side, m.key, v))
if want_offload and not any(x.get("bypass") for x in samples
                            if x["side"] == "offload"):
    errors.append("offload side never printed 'enabled bypass on fd'")
report = open(os.path.join(out, "report.md")).read()
for needle in ("| pingpong-tcp | p50 latency |", "| redis | SET requests/s |",
               "| nginx | requests/s |", "| connrate-tcp |",
               "| scale-idle | ping-pong p50 beside 200 idle |",
               "## ttcp buffer-size sweep: C vs C++", "| 128 KiB |"):
    if needle not in report:
        errors.append("report.md lacks %r" % needle)
pngs = [p for p in os.listdir(os.path.join(out, "plots"))
        if p.endswith(".png")]
if len(pngs) < 9:
    errors.append("expected 9 plots, found %s" % pngs)
machine = open(os.path.join(out, "machine.txt")).read()
if "Architecture" not in machine:
    errors.append("machine.txt has no lscpu output")
commands = open(os.path.join(out, "commands.txt")).read()
for tool in ("sockperf ping-pong", "redis-benchmark", "wrk", "taskset -c",
             "--api cxx"):
    if tool not in commands:
        errors.append("commands.txt does not list %r" % tool)
# Cleanup: the run's temp dirs are gone and no process of the run survives.
import re
leftovers = set(re.findall(r"--run-dir (\S+)", commands))
leftovers |= {os.path.dirname(p) for p in
              re.findall(r"--full-log (\S+)", commands)}
for d in sorted(leftovers):
    if os.path.exists(d):
        errors.append("temp dir %s was not removed" % d)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if d in cmdline:
            errors.append("process %s still running: %s" % (pid, cmdline))
for e in errors:
    print("FAIL:", e)
if errors:
    sys.exit(1)
print("bench quick: %d samples checked, sides: %s" % (len(samples),
                                                     ", ".join(sides)))
PY
