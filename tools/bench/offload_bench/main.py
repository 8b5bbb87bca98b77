"""offload-bench entry point: argument parsing and the interleaved loop."""

import datetime
import os
import resource
import shutil
import signal
import sys
import tempfile
import time

from offload_bench import options
from offload_bench import parse
from offload_bench import procs
from offload_bench import report
from offload_bench import scenarios as scen
from offload_bench import sides
from offload_bench import wire
from offload_bench import wire_net
from offload_bench import wire_sides

def pick_cpus(args, notes):
    allowed = sorted(os.sched_getaffinity(0))
    daemon = args.daemon_cpu or str(allowed[0])
    if args.bench_cpus:
        bench = args.bench_cpus
    elif len(allowed) >= 2:
        bench = str(allowed[1])
    else:
        bench = str(allowed[0])
        notes.append("only one CPU available: offloadd and the benchmark "
                     "share it")
    return daemon, bench


def split_cpus(daemon_cpu, bench_cpus):
    """A CPU for the client of the split placement: the daemon's if it is
    not a benchmark CPU, else another allowed one; None if there is none."""
    bench = set()
    for part in bench_cpus.split(","):
        lo, _, hi = part.partition("-")
        bench.update(range(int(lo), int(hi or lo) + 1))
    cands = [daemon_cpu.split(",")[0].split("-")[0]] + [
        str(c) for c in sorted(os.sched_getaffinity(0))]
    for c in cands:
        if c.isdigit() and int(c) not in bench:
            return c
    return None


REQUIRED_TOOLS = {
    "pingpong": ["sockperf"], "underload": ["sockperf"],
    "throughput": ["sockperf"], "redis": ["redis-server", "redis-benchmark"],
    "nginx": ["nginx", "wrk"], "connrate": [], "ttcp": [], "scale": [],
    "wire": ["sockperf", "ip", "ethtool"],
}


def missing_tools(scenario_list):
    need = {"taskset"}
    for s in scenario_list:
        need.update(REQUIRED_TOOLS[s.name.split("-")[0]])
    return sorted(t for t in need if shutil.which(t) is None)


def run_sample(ctx, scenario, side, rep):
    sample = {"scenario": scenario.name, "side": side.name, "rep": rep,
              "ok": False, "metrics": {}, "error": None, "bypass": False}
    t0 = time.monotonic()
    try:
        result = scenario.run(ctx, side)
        sample["bypass"] = scen.bypass_seen(result)
        sample["metrics"] = {k: v for k, v in result.items()
                             if not k.startswith("_")}
        sample["ok"] = True
    except (procs.BenchError, parse.ParseError, OSError) as e:
        sample["error"] = str(e)
    sample["seconds"] = round(time.monotonic() - t0, 3)
    return sample


MAX_DAEMON_RESTARTS = 3


def failed_sample(scenario, side, rep, error):
    return {"scenario": scenario, "side": side, "rep": rep, "ok": False,
            "metrics": {}, "error": error, "bypass": False}


def ensure_daemon(offload, samples, restart=True):
    """Records a crashed daemon as a failure and restarts it (at most
    MAX_DAEMON_RESTARTS times). Returns False once it gives up."""
    if offload.alive():
        return True
    if getattr(offload, "given_up", False):
        return False
    report_text = offload.death_report()
    print("offload-bench: " + report_text.splitlines()[0], flush=True)
    samples.append(failed_sample("offloadd", "offload", 0, report_text))
    if not restart or offload.restarts >= MAX_DAEMON_RESTARTS:
        offload.given_up = True
        return False
    offload.restart()
    return True


def engine_checks(scenario_list, samples):
    """--wire: a failed 'engine-check' sample for every scenario whose
    offload side ran but moved no packet through offloadd's NIC queues
    (its sockets stayed in the kernel)."""
    out = []
    for s in scenario_list:
        got = [x for x in samples if x["scenario"] == s.name and
               x["side"] == "offload" and x["ok"] and
               "nic_rx_pkts" in x["metrics"]]
        if got and not any(x["metrics"]["nic_rx_pkts"] > 0 and
                           x["metrics"]["nic_tx_pkts"] > 0 for x in got):
            out.append(failed_sample(
                "engine-check", "offload", 0,
                "%s: the offload side ran, but offloadd's NIC queues moved "
                "no packets during it (offloadctl stats): its TCP went "
                "through the kernel, not the engine" % s.name))
    return out


def describe(sample, scenario):
    if not sample["ok"]:
        return "FAILED: " + sample["error"].splitlines()[0]
    if hasattr(scenario, "describe"):
        return scenario.describe(sample["metrics"])
    parts = []
    for m in scenario.metrics:
        v = sample["metrics"].get(m.key)
        if v is not None:
            parts.append("%s=%s %s" % (m.key, report._fmt(v), m.unit))
    if sample["side"] == "offload" and sample["bypass"]:
        parts.append("(bypass seen)")
    return " ".join(parts)


def main(argv):
    args = options.parse_args(argv)
    if args.list:
        for s in (wire.wire_scenarios() if args.wire
                  else scen.all_scenarios()):
            print("%-26s %s" % (s.name, s.title))
        return 0
    notes = []
    for s in args.scenario_list:
        if getattr(s, "skipped", None):
            notes.append("%s: %s connections not measured: the hard "
                         "RLIMIT_NOFILE (%d) cannot hold them (raising it "
                         "needs CAP_SYS_RESOURCE)" % (
                             s.name, ", ".join(str(n) for n in s.skipped),
                             resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    missing = missing_tools(args.scenario_list)
    if missing:
        print("offload-bench: missing programs: %s (Debian: sockperf "
              "redis-server redis-tools nginx-light wrk util-linux)"
              % ", ".join(missing), file=sys.stderr)
        return 1
    connrate, tried = sides.find_binary(
        args.connrate, "OFFLOAD_BENCH_CONNRATE",
        "tools/bench/offload-connrate", "offload-connrate")
    if connrate is None and any(s.name == "connrate-tcp"
                                for s in args.scenario_list):
        print("offload-bench: offload-connrate not found (looked at %s); "
              "build it: bazel build //tools/bench:offload-connrate"
              % ", ".join(tried), file=sys.stderr)
        return 1

    hold, tried = sides.find_binary(
        args.hold, "OFFLOAD_BENCH_HOLD", "tools/bench/offload-hold",
        "offload-hold")
    if hold is None and any(s.name == "scale-idle"
                            for s in args.scenario_list):
        print("offload-bench: offload-hold not found (looked at %s); "
              "build it: bazel build //tools/bench:offload-hold"
              % ", ".join(tried), file=sys.stderr)
        return 1

    ttcp, tried = sides.find_binary(args.ttcp, "OFFLOAD_BENCH_TTCP",
                                    "tools/ttcp/ttcp", "ttcp")
    if ttcp is None and any(s.name == "ttcp-sweep"
                            for s in args.scenario_list):
        print("offload-bench: ttcp not found (looked at %s); build it: "
              "bazel build //tools/ttcp:ttcp" % ", ".join(tried),
              file=sys.stderr)
        return 1

    started = datetime.datetime.utcnow()
    outdir = args.out or os.path.join(
        os.getcwd(), "results", started.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    commands = []
    registry = procs.Registry(os.path.join(outdir, "logs"), commands)
    tmpdir = tempfile.mkdtemp(prefix="offload-bench-")
    daemon_cpu, bench_cpus = pick_cpus(args, notes)
    net = wire_net.WireNet(commands) if args.wire else None
    tools = {"offload-connrate": connrate, "ttcp": ttcp, "offload-hold": hold}
    ctx = None
    bin_dir = None
    binary_hashes = []  # of the measured copies, taken before removal

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)

    side_list = []
    offload = None
    offload_status = "off (--offload=off)"
    samples = []
    interrupted = False
    try:
        if net is not None:
            net.create()
            if net.stale_removed:
                notes.append("removed stale namespaces of dead runs: "
                             + ", ".join(net.stale_removed))
            side_list.append(wire_sides.WireKernelSide(net))
        else:
            side_list.append(sides.KernelSide())
        if args.offload != "off":
            offloadd, t1 = sides.find_binary(args.offloadd,
                                             "OFFLOAD_BENCH_OFFLOADD",
                                             "daemon/offloadd",
                                             "/usr/sbin/offloadd")
            launcher, t2 = sides.find_binary(args.launcher,
                                             "OFFLOAD_BENCH_LAUNCHER",
                                             "client/offload",
                                             "/usr/bin/offload")
            offloadctl = None
            if net is not None:
                offloadctl, _ = sides.find_binary(
                    args.offloadctl, "OFFLOAD_BENCH_OFFLOADCTL",
                    "cli/offloadctl", "/usr/bin/offloadctl")
                if offloadctl is None:
                    notes.append("offloadctl not found: the engine packet "
                                 "counters were not recorded")
            if offloadd and launcher:
                bin_dir, copies = sides.snapshot_binaries(
                    {"offloadd": offloadd, "launcher": launcher,
                     "offloadctl": offloadctl})
                notes.append("measured copies (in %s, removed after the run) "
                             "of %s" % (bin_dir, ", ".join(
                                 p for p in (offloadd, launcher, offloadctl)
                                 if p)))
                offloadd = copies["offloadd"]
                launcher = copies["launcher"]
                offloadctl = copies["offloadctl"]
                for name in ("offloadd", os.path.basename(launcher),
                             "liboffload.so"):
                    path = os.path.join(bin_dir, name)
                    if os.path.exists(path):
                        binary_hashes.append(("sha256 " + name,
                                              report.sha256(path)))
            if offloadd and launcher and net is not None:
                offload = wire_sides.WireOffloadSide(
                    registry, offloadd, launcher, daemon_cpu,
                    args.quick or args.debug_bypass, args.offload_env_map,
                    net, offloadctl)
            elif offloadd and launcher:
                offload = sides.OffloadSide(
                    registry, offloadd, launcher, daemon_cpu,
                    args.quick or args.debug_bypass, args.offload_env_map)
            if offload is not None:
                offload.start()
                side_list.append(offload)
                offload_status = "%s with %s (daemon pid %d)" % (
                    launcher, offloadd, offload.daemon.pid)
            else:
                what = "offloadd" if not offloadd else "the offload launcher"
                looked = t1 if not offloadd else t2
                if args.offload == "on":
                    print("offload-bench: --offload=on but %s was not found "
                          "(looked at %s)" % (what, ", ".join(looked)),
                          file=sys.stderr)
                    return 1
                offload_status = ("SKIPPED: %s not found (looked at %s); "
                                  "kernel side only" % (what,
                                                        ", ".join(looked)))
        if net is not None:
            ctx = wire.WireContext(registry, bench_cpus, args.quick,
                                   args.duration, tools, tmpdir, net, offload)
        else:
            ctx = scen.Context(registry, bench_cpus, args.quick,
                               args.duration, tools, tmpdir)
            ctx.split_cpus = split_cpus(daemon_cpu, bench_cpus)
        print("offload-bench: results in %s" % outdir)
        print("offload-bench: offload side: %s" % offload_status)
        for s in args.scenario_list:
            for rep in range(args.reps):
                for side in side_list:
                    if side.name not in getattr(s, "sides", (side.name,)):
                        continue
                    if side is offload and not ensure_daemon(offload,
                                                             samples):
                        sample = failed_sample(
                            s.name, side.name, rep,
                            "not run: offloadd crashed %d times; giving up "
                            "on the offload side" % (offload.restarts + 1))
                    else:
                        sample = run_sample(ctx, s, side, rep)
                    if side is offload:
                        offload.last_sample = "%s repetition %d" % (s.name,
                                                                    rep + 1)
                    samples.append(sample)
                    print("[%s] rep %d/%d %-7s %s" % (
                        s.name, rep + 1, args.reps, side.name,
                        describe(sample, s)), flush=True)
        if offload is not None:
            ensure_daemon(offload, samples, restart=False)
    except procs.BenchError as e:
        print("offload-bench: %s" % e, file=sys.stderr)
        notes.append("run aborted: %s" % str(e).splitlines()[0])
        samples.append({"scenario": "setup", "side": "offload", "rep": 0,
                        "ok": False, "metrics": {}, "error": str(e),
                        "bypass": False})
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted: partial results")
    finally:
        registry.stop_all()
        if offload is not None:
            offload.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
        if bin_dir is not None:
            shutil.rmtree(bin_dir, ignore_errors=True)
        if net is not None:
            net.destroy()

    if (offload is not None and offload.debug_bypass and
            not any(x["bypass"] for x in samples if x["side"] == "offload")):
        samples.append({
            "scenario": "bypass-check", "side": "offload", "rep": 0,
            "ok": False, "metrics": {}, "bypass": False,
            "error": "the offload side ran, but no process printed 'offload: "
                     "enabled bypass on fd N' with OFFLOAD_DEBUG=1: nothing "
                     "was offloaded"})
    if net is not None and offload is not None:
        samples += engine_checks(args.scenario_list, samples)
    run_info = {
        "started": started.isoformat() + "Z",
        "finished": datetime.datetime.utcnow().isoformat() + "Z",
        "quick": args.quick, "reps": args.reps, "duration": args.duration,
        "bench_cpus": bench_cpus, "daemon_cpu": daemon_cpu,
        "offload_status": offload_status,
        "bypass_checked": bool(offload is not None and offload.debug_bypass),
        "offload_env": args.offload_env_map,
        "inherited_env": {k: v for k, v in os.environ.items()
                          if k.startswith(("OFFLOAD_", "VMA_"))},
        "argv": ["offload-bench"] + list(argv),
        "wire": None if net is None else {
            "ns_a": net.ns_a, "ns_b": net.ns_b, "ip_a": net.ip_a,
            "ip_b": net.ip_b},
    }
    plots = []
    if not args.no_plots and ctx is not None:
        plots, plot_notes = report.make_plots(outdir, args.scenario_list,
                                              samples, ctx.latencies)
        notes += plot_notes
    report.write_json(outdir, run_info, samples)
    report.write_report(outdir, run_info, args.scenario_list, samples, plots,
                        notes)
    with open(os.path.join(outdir, "commands.txt"), "w") as f:
        f.write("# " + " ".join(run_info["argv"]) + "\n")
        f.write("\n".join(commands) + "\n")
    machine_notes = [
        ("pinning", "offloadd: CPU %s; benchmark: CPU %s"
         % (daemon_cpu, bench_cpus)),
        ("offload side", offload_status),
        ("source", report.source_revision(sides.REPO_ROOT))]
    machine_notes += binary_hashes
    with open(os.path.join(outdir, "machine.txt"), "w") as f:
        f.write(report.machine_description(machine_notes))
    failed = [x for x in samples if not x["ok"]]
    print("offload-bench: %d samples, %d failed; report: %s" % (
        len(samples), len(failed), os.path.join(outdir, "report.md")))
    if interrupted:
        return 130
    return 1 if failed else 0
