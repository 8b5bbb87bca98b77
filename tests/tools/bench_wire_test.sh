#!/bin/bash
# Runs `offload-bench --wire --quick` (root: namespaces, veth, XDP) and
# checks that every wire scenario ran on both sides with parseable output,
# that the report carries the ratio table, that the offload side's traffic
# went through offloadd's NIC queues and engine (offloadctl packet counters
# grew during its samples) while the kernel side's did not, and that the
# namespaces, temp dirs and processes of the run are gone afterwards. No
# timing or throughput is asserted. bench_wire_unit_test.py (the parts that
# need no root) runs first.
set -u

RUNFILES="${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-offload}"
# The parts that need no root first: parsers, engine check, options.
if ! PYTHONPATH="$RUNFILES/tools/bench" PYTHONDONTWRITEBYTECODE=1 \
    python3 "$RUNFILES/tests/tools/bench_wire_unit_test.py" -v; then
  echo "FAIL: bench_wire_unit_test.py"
  exit 1
fi

# require_root: a run without root reports the wire part skipped, not
# passed (the unit tests above passed).
source "$(dirname "$0")/../integration/lib/harness.sh"
if [[ $(id -u) -ne 0 ]]; then
  pass "offload-bench parsers, engine check and options (bench_wire_unit_test.py)"
  require_root bench_wire "offload-bench --wire needs root (namespaces, veth, XDP)"
fi

BENCH="$RUNFILES/tools/bench/offload-bench"
OUT="${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}/bench-wire-quick"
rm -rf "$OUT"
for f in daemon/offloadd client/offload cli/offloadctl; do
  if [[ ! -x "$RUNFILES/$f" ]]; then
    echo "FAIL: $RUNFILES/$f missing from the runfiles"
    exit 1
  fi
done

python3 "$BENCH" --wire --quick --out "$OUT" --offload on \
  --offloadd "$RUNFILES/daemon/offloadd" \
  --launcher "$RUNFILES/client/offload" \
  --offloadctl "$RUNFILES/cli/offloadctl"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: offload-bench --wire --quick exited with $rc; report follows"
  cat "$OUT/report.md" 2>/dev/null
  exit 1
fi

python3 - "$OUT" <<'PY'
import json, os, re, sys
sys.path.insert(0, os.path.join(os.environ.get("TEST_SRCDIR", ".."),
                                os.environ.get("TEST_WORKSPACE", "offload"),
                                "tools", "bench"))
from offload_bench import wire

out = sys.argv[1]
errors = []
with open(os.path.join(out, "results.json")) as f:
    data = json.load(f)
samples = data["samples"]
for s in wire.wire_scenarios():
    for side in getattr(s, "sides", ("kernel", "offload")):
        got = [x for x in samples if x["scenario"] == s.name and
               x["side"] == side]
        if not got:
            errors.append("%s/%s: no sample" % (s.name, side))
        for x in got:
            if not x["ok"]:
                errors.append("%s/%s: %s" % (s.name, side, x["error"]))
                continue
            for m in s.metrics:
                v = x["metrics"].get(m.key)
                ok = isinstance(v, (int, float)) and (
                    v >= 0 if m.key == "idle_cpu" else v > 0)
                if not ok:
                    errors.append("%s/%s: metric %s = %r"
                                  % (s.name, side, m.key, v))
    if not getattr(s, "uses_sockets", True):
        continue
    # Through the engine: the offload side's packets crossed offloadd's NIC
    # queues and engine; the kernel side's were passed to the kernel.
    def counters(side):
        return [x["metrics"] for x in samples if x["scenario"] == s.name
                and x["side"] == side and x["ok"]]
    for m in counters("offload"):
        for k in wire.COUNTER_KEYS:
            if not m.get(k, 0) > 0:
                errors.append("%s/offload: %s = %r (not through the engine)"
                              % (s.name, k, m.get(k)))
    off = min([m.get("nic_rx_pkts", 0) for m in counters("offload")] or [0])
    for m in counters("kernel"):
        if "nic_rx_pkts" not in m:
            errors.append("%s/kernel: no packet counters" % s.name)
        elif m["nic_rx_pkts"] * 10 > off:
            errors.append("%s/kernel: %d NIC rx pkts vs %d on the offload "
                          "side: the kernel baseline went through the engine"
                          % (s.name, m["nic_rx_pkts"], off))
report = open(os.path.join(out, "report.md")).read()
for needle in ("| wire-pingpong-tcp | p50 latency |",
               "| wire-throughput-tcp | received msg/s @ 100 B |",
               "| wire-bulk-tcp | received MB/s |",
               "| wire-pingpong-tcp-reverse | p50 latency |",
               "| wire-idle-cpu | idle CPU of offloadd |",
               "## Through the engine (wire)",
               "| wire-pingpong-tcp | offload |"):
    if needle not in report:
        errors.append("report.md lacks %r" % needle)
if not re.search(r"\| wire-pingpong-tcp \| p50 latency \|.*\| [0-9.]+ \| "
                 r"(better|worse|same) \|", report):
    errors.append("report.md has no offload/kernel ratio for ping-pong p50")
commands = open(os.path.join(out, "commands.txt")).read()
for needle in ("ethtool -K vb tx off", "ethtool -K va tso off gso off gro off",
               "sockperf ping-pong", "--full-log", "taskset -c"):
    if needle not in commands:
        errors.append("commands.txt does not list %r" % needle)
# Cleanup: namespaces, temp dirs and processes of the run are gone.
w = data["run"]["wire"]
for ns in (w["ns_a"], w["ns_b"]):
    if os.path.exists("/run/netns/" + ns):
        errors.append("namespace %s was not removed" % ns)
dirs = set(re.findall(r"--run-dir (\S+)", commands))
dirs |= {os.path.dirname(p) for p in re.findall(r"--config (\S+)", commands)}
dirs |= {os.path.dirname(p) for p in re.findall(r"--full-log (\S+)",
                                                commands)}
for d in sorted(dirs):
    if os.path.exists(d):
        errors.append("temp dir %s was not removed" % d)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(
                    errors="replace")
        except OSError:
            continue
        if d in cmdline:
            errors.append("process %s still running: %s" % (pid, cmdline))
for e in errors:
    print("FAIL:", e)
if errors:
    sys.exit(1)
print("bench wire quick: %d samples checked" % len(samples))
PY
