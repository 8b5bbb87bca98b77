"""Writes a run's results folder: report.md, results.json, commands.txt,
machine.txt and gnuplot PNGs (with their .dat/.gp sources)."""

import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess

from offload_bench import scenarios as scen
from offload_bench import stats


def _cmd_output(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(unavailable: %s)" % e


def source_revision(repo):
    """'<commit> (+N uncommitted changes)' of the repository, if it is one."""
    head = _cmd_output(["git", "-C", repo, "rev-parse", "HEAD"])
    if "unavailable" in head or "fatal" in head:
        return "not a git checkout: " + repo
    dirty = _cmd_output(["git", "-C", repo, "status", "--porcelain"])
    n = len([l for l in dirty.splitlines() if l.strip()])
    return "%s (%d uncommitted changes in %s)" % (head, n, repo)


def sha256(path):
    """Hex SHA-256 of a file (identifies the exact binaries measured)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        return "(unreadable: %s)" % e
    return "%s  %s" % (h.hexdigest(), os.path.realpath(path))


def machine_description(notes):
    """Text describing the machine, software versions and pinning."""
    parts = [("date (UTC)", datetime.datetime.utcnow().isoformat() + "Z"),
             ("uname -a", _cmd_output(["uname", "-a"])),
             ("python", platform.python_version())]
    try:
        with open("/etc/os-release") as f:
            parts.append(("os-release", f.read().strip()))
    except OSError:
        pass
    for name, cmd in (("sockperf", ["sockperf", "--version"]),
                      ("redis-server", ["redis-server", "--version"]),
                      ("redis-benchmark", ["redis-benchmark", "--version"]),
                      ("nginx", ["nginx", "-v"]),
                      ("wrk", ["wrk", "--version"]),
                      ("gnuplot", ["gnuplot", "--version"])):
        parts.append((name, _cmd_output(cmd).splitlines()[0:2]))
    gov = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    if os.path.exists(gov):
        with open(gov) as f:
            parts.append(("cpu0 governor", f.read().strip()))
    parts.append(("lscpu", _cmd_output(["lscpu"])))
    parts += list(notes)
    out = []
    for k, v in parts:
        if isinstance(v, list):
            v = "\n".join(v)
        out.append("== %s ==\n%s\n" % (k, v))
    return "\n".join(out)


def _fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.1f" % v
    return "%.3g" % v


def summarize(scenario_list, samples):
    """Rows: (scenario, metric, {side: (median, min, max, rel, n)}, ratio,
    verdict)."""
    rows = []
    for s in scenario_list:
        for m in s.metrics:
            per_side = {}
            for side in ("kernel", "offload"):
                vals = [x["metrics"][m.key] for x in samples
                        if x["scenario"] == s.name and x["side"] == side and
                        x["ok"] and m.key in x["metrics"]]
                lo, hi, rel = stats.spread(vals)
                per_side[side] = (stats.median(vals), lo, hi, rel, len(vals))
            r = stats.ratio(per_side["offload"][0], per_side["kernel"][0])
            verdict = ""
            if r is not None:
                better = r < 1 if m.lower_is_better else r > 1
                verdict = "better" if better else "worse"
                if abs(r - 1) < 0.02:
                    verdict = "same"
            rows.append((s, m, per_side, r, verdict))
    return rows


def write_report(outdir, run_info, scenario_list, samples, plots, notes):
    rows = summarize(scenario_list, samples)
    L = []
    L.append("# offload-bench report\n")
    L.append("- started: %s, finished: %s" % (run_info["started"],
                                             run_info["finished"]))
    L.append("- mode: %s; %d repetition(s) per side, %d s per client run; "
             "order per repetition: kernel, offload" %
             ("quick (correctness only, timings meaningless)"
              if run_info["quick"] else "full", run_info["reps"],
              run_info["duration"]))
    L.append("- CPUs: benchmark processes on %s; offloadd on %s" %
             (run_info["bench_cpus"], run_info["daemon_cpu"]))
    L.append("- offload side: %s" % run_info["offload_status"])
    if run_info.get("wire"):
        w = run_info["wire"]
        L.append("- wire: veth va (%s/24, namespace %s, owned by offloadd "
                 "through AF_XDP) <-> vb (%s/24, namespace %s, kernel, TX "
                 "checksum offload off); the measured client runs in %s "
                 "(kernel side: plain; offload side: under the launcher), "
                 "the kernel server in %s (reverse: the other way round)"
                 % (w["ip_a"], w["ns_a"], w["ip_b"], w["ns_b"], w["ns_a"],
                    w["ns_b"]))
    if run_info.get("offload_env"):
        L.append("- offload side environment: %s" % " ".join(
            "%s=%s" % kv for kv in sorted(run_info["offload_env"].items())))
    if run_info.get("inherited_env"):
        L.append("- inherited by both sides: %s" % " ".join(
            "%s=%s" % kv for kv in sorted(run_info["inherited_env"].items())))
    for n in notes:
        L.append("- note: %s" % n)
    L.append("")
    L.append("## Results\n")
    L.append("Median over the repetitions; spread is (max − min) / median. "
             "The ratio is offload / kernel: below 1 is better for latency, "
             "above 1 is better for rates.\n")
    L.append("| scenario | metric | unit | kernel median | kernel spread | "
             "offload median | offload spread | offload/kernel | |")
    L.append("|---|---|---|---:|---:|---:|---:|---:|---|")
    for s, m, ps, r, verdict in rows:
        if not getattr(s, "in_main_table", True):
            continue  # a scenario with its own section (below)
        k, o = ps["kernel"], ps["offload"]
        L.append("| %s | %s | %s | %s (n=%d) | %s | %s (n=%d) | %s | %s | %s |"
                 % (s.name, m.label, m.unit, _fmt(k[0]), k[4],
                    "%.1f%%" % k[3] if k[3] is not None else "–",
                    _fmt(o[0]), o[4],
                    "%.1f%%" % o[3] if o[3] is not None else "–",
                    "%.3f" % r if r is not None else "–", verdict))
    L.append("")
    for s in scenario_list:
        if hasattr(s, "report_lines"):
            L += s.report_lines(samples)
    L += _acceptance_section(rows)
    failed = [x for x in samples if not x["ok"]]
    L.append("## Failures\n")
    if not failed:
        L.append("None: every sample ran and its output was checked.\n")
    else:
        for x in failed:
            L.append("- %s, %s, repetition %d:\n\n```\n%s\n```\n" %
                     (x["scenario"], x["side"], x["rep"] + 1, x["error"]))
    if any(x["side"] == "offload" for x in samples):
        L.append("## Offload engaged\n")
        L.append("Whether the client library reported `enabled bypass on fd "
                 "N` (only checked when OFFLOAD_DEBUG=1 was set, i.e. in "
                 "--quick mode or with --debug-bypass).\n")
        for s in scenario_list:
            if not getattr(s, "uses_sockets", True):
                continue
            seen = [x["bypass"] for x in samples
                    if x["scenario"] == s.name and x["side"] == "offload"
                    and x["ok"]]
            if not run_info["bypass_checked"]:
                verdict = "not checked"
            elif not seen:
                verdict = "n/a (no successful sample)"
            else:
                verdict = ("yes" if any(seen) else
                           "no (every socket stayed in the kernel)")
            L.append("- %s: %s" % (s.name, verdict))
        L.append("")
    L += _engine_section(scenario_list, samples)
    if plots:
        L.append("## Plots\n")
        for title, png in plots:
            L.append("### %s\n\n![%s](%s)\n" % (title, title, png))
    L.append("## Files\n")
    L.append("- `results.json`: every sample with all metrics and errors")
    L.append("- `commands.txt`: the exact commands, in the order they ran")
    L.append("- `machine.txt`: lscpu, kernel, software versions")
    L.append("- `logs/`: the output of every process")
    L.append("- `plots/`: PNGs with their gnuplot scripts and data")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    return rows


def _acceptance_section(rows):
    """--wire: issue 5's acceptance criteria against this run's medians
    (reported, not asserted), or [] when none of their scenarios ran."""
    from offload_bench import wire  # wire imports base; avoid a cycle
    found = {(s.name, m.key): (ps, r) for s, m, ps, r, _ in rows}
    L = []
    for name, key, what, op, bound, text in wire.ACCEPTANCE:
        if (name, key) not in found:
            continue
        ps, r = found[(name, key)]
        value = r if what == "ratio" else ps["offload"][0]
        if value is None:
            verdict = "not measured"
        else:
            met = {"<=": value <= bound, ">=": value >= bound,
                   "<": value < bound}[op]
            verdict = "met" if met else "NOT met"
        L.append("| %s | %s %s | %s %s %.3g | %s | %s |" % (
            text, name, key, "offload/kernel" if what == "ratio" else
            "offload", op, bound, _fmt(value) if value is not None else "–",
            verdict))
    if not L:
        return []
    return (["## Acceptance (issue 5)\n",
             "Reported, not asserted; valid only if every offload row of "
             "\"Through the engine\" below says yes.\n",
             "| criterion | measured | bound | this run | |",
             "|---|---|---|---:|---|"] + L + [""])


def _engine_section(scenario_list, samples):
    """--wire: the packets offloadd's NIC queues and engine moved during the
    samples of each side (median of the per-sample deltas), or [] when no
    sample recorded them."""
    keys = ("nic_rx_pkts", "nic_tx_pkts", "engine_rx_pkts", "engine_tx_pkts")
    if not any(keys[0] in x["metrics"] for x in samples):
        return []
    L = ["## Through the engine (wire)\n",
         "Packets offloadd's NIC queues (AF_XDP on va) and engine moved "
         "during each sample, from `offloadctl stats` before and after it; "
         "median per sample. The offload side's traffic must show here; the "
         "kernel side's is XDP_PASSed to the kernel and should not.\n",
         "| scenario | side | NIC rx pkts | NIC tx pkts | engine rx pkts | "
         "engine tx pkts | through the engine |",
         "|---|---|---:|---:|---:|---:|---|"]
    for s in scenario_list:
        for side in ("kernel", "offload"):
            got = [x["metrics"] for x in samples
                   if x["scenario"] == s.name and x["side"] == side and
                   x["ok"] and keys[0] in x["metrics"]]
            if not got:
                continue
            med = [stats.median([m[k] for m in got]) for k in keys]
            through = all(m["nic_rx_pkts"] > 0 and m["nic_tx_pkts"] > 0
                          for m in got)
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                (s.name, side) + tuple(_fmt(v) for v in med) +
                ("yes" if through else "no",)))
    L.append("")
    return L


def write_json(outdir, run_info, samples):
    clean = [{k: v for k, v in x.items() if k != "outputs"} for x in samples]
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"run": run_info, "samples": clean}, f, indent=1)


def _gnuplot(plot_dir, base, script):
    gp = os.path.join(plot_dir, base + ".gp")
    with open(gp, "w") as f:
        f.write(script)
    p = subprocess.run(["gnuplot", gp], cwd=plot_dir, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(p.stdout.decode(errors="replace"))
    return os.path.join("plots", base + ".png")


def make_plots(outdir, scenario_list, samples, latencies):
    """Writes PNGs; returns [(title, relative path)] and notes on failure."""
    if shutil.which("gnuplot") is None:
        return [], ["gnuplot not found: no plots (apt-get install gnuplot-nox)"]
    plot_dir = os.path.join(outdir, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    plots, notes = [], []
    for s in scenario_list:
        if not isinstance(s, scen.SockperfLatency):
            continue
        curves = {}
        for side in ("kernel", "offload"):
            lists = latencies.get((s.name, side))
            if lists:
                curves[side] = dict(stats.curve(sorted(
                    v for l in lists for v in l)))
        if not curves:
            continue
        base = "latency-" + s.name
        with open(os.path.join(plot_dir, base + ".dat"), "w") as f:
            f.write("# percentile x=1/(1-p) kernel_usec offload_usec\n")
            for p in stats.CURVE_PERCENTILES:
                x = 1.0 / (1.0 - p / 100.0)
                f.write("%g %g %s %s\n" % (
                    p, x, curves.get("kernel", {}).get(p, "?"),
                    curves.get("offload", {}).get(p, "?")))
        script = """set terminal pngcairo size 900,560
set output '{base}.png'
set title "{title}: latency by percentile (all repetitions pooled)"
set datafile missing "?"
set logscale x
set logscale y
set xtics ("50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)
set xlabel "percentile"
set ylabel "latency (usec, half round trip)"
set grid
set key top left
plot '{base}.dat' using 2:3 with linespoints title "kernel", \\
     '{base}.dat' using 2:4 with linespoints title "offload"
""".format(base=base, title=s.title)
        try:
            plots.append((s.title, _gnuplot(plot_dir, base, script)))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            notes.append("plot %s failed: %s" % (base, e))
    for s in scenario_list:
        if hasattr(s, "plots"):
            p, n = s.plots(plot_dir, samples, _gnuplot)
            plots += p
            notes += n
    for s in scenario_list:
        if not isinstance(s, scen.SockperfThroughput):
            continue
        base = "throughput-" + s.proto
        rows = []
        for size in scen.THROUGHPUT_SIZES:
            row = [s.size(size)]
            for side in ("kernel", "offload"):
                vals = [x["metrics"]["rx_%d" % size] for x in samples
                        if x["scenario"] == s.name and x["side"] == side and
                        x["ok"] and "rx_%d" % size in x["metrics"]]
                lo, hi, _ = stats.spread(vals)
                m = stats.median(vals)
                row += [m, lo, hi] if m is not None else ["?", "?", "?"]
            rows.append(row)
        if all(r[1] == "?" and r[4] == "?" for r in rows):
            continue
        with open(os.path.join(plot_dir, base + ".dat"), "w") as f:
            f.write("# size kernel_median min max offload_median min max\n")
            for r in rows:
                f.write(" ".join(str(v) for v in r) + "\n")
        script = """set terminal pngcairo size 900,560
set output '{base}.png'
set title "{title}: messages received per second by size (median, min-max)"
set datafile missing "?"
set logscale x 2
set logscale y
set xlabel "message size (bytes)"
set ylabel "messages received/s"
set grid
plot '{base}.dat' using 1:2:3:4 with yerrorlines title "kernel", \\
     '{base}.dat' using 1:5:6:7 with yerrorlines title "offload"
""".format(base=base, title=s.title)
        try:
            plots.append((s.title, _gnuplot(plot_dir, base, script)))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            notes.append("plot %s failed: %s" % (base, e))
    return plots, notes
