"""offload-bench's command line: the description --help prints, and the
options checked against the scenarios that exist (plain or --wire)."""

import argparse

from offload_bench import scenarios as scen
from offload_bench import wire


DESCRIPTION = """\
Runs every scenario with and without offload in the same run, interleaved
(kernel, offload, kernel, offload, ...), and writes a results folder with a
Markdown report of medians, spreads and offload/kernel ratios, PNG plots, the
machine description and the exact commands.

Scenarios (--list): sockperf ping-pong and under-load latency (p50/p99/p99.9
from --full-log), sockperf throughput at 64 B/100 B/1 KiB/64 KiB, TCP and UDP;
TCP connection rate; redis-benchmark against redis-server; nginx + wrk;
the ttcp buffer-size sweep (1 B to 128 KiB buffers, 8 KiB and 64 KiB socket
queues), C sockets vs the typed C++ socket API (ttcp --api c|cxx).
Everything binds to 127.0.0.1. offloadd is pinned to one CPU, the benchmark
processes to another.

The offload side needs offloadd and the offload launcher: found via
--offloadd/--launcher, $OFFLOAD_BENCH_OFFLOADD/$OFFLOAD_BENCH_LAUNCHER, the
repository's bazel-bin (daemon/offloadd, client/offload) or /usr/sbin/offloadd
and /usr/bin/offload. If they are missing and --offload=auto, only the kernel
side runs (and the report says so).

--wire (root) runs the NIC scenarios instead: TCP ping-pong, 100 B
throughput, bulk 64 KiB (TSO/GSO/GRO off) and a reverse ping-pong between
two network namespaces joined by a veth, with offloadd owning the namespace
A end (va) through AF_XDP; plus the idle CPU of that daemon. The kernel side
is a plain client in A, the offload side the same client under the launcher;
the server is a kernel process in namespace B. Each sample records the
packets offloadd's NIC queues moved (offloadctl stats), and the run fails if
the offload side never went through the engine.

--quick runs each scenario once per side for 2 s: a correctness check (every
tool ran, its output parsed, servers counted every request), not a
measurement.

exit status: 0 every sample ran and passed its checks; 1 a sample failed
(see report.md, "Failures"); 2 usage error.
"""


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="offload-bench", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, 2 s runs, small counts; checks output")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per side (default 5; quick: 1)")
    ap.add_argument("--duration", type=int, default=None,
                    help="seconds per client run (default 5; quick: 2)")
    ap.add_argument("--scenarios", default="all",
                    help="comma-separated scenario names (default: all)")
    ap.add_argument("--list", action="store_true",
                    help="list the scenarios and exit")
    ap.add_argument("--out", default=None,
                    help="results folder (default: results/<UTC timestamp> "
                         "under the current directory)")
    ap.add_argument("--offload", choices=["auto", "on", "off"], default="auto",
                    help="auto: run the offload side if its binaries exist; "
                         "on: fail if they do not; off: kernel only")
    ap.add_argument("--offloadd", default=None, help="path of offloadd")
    ap.add_argument("--launcher", default=None,
                    help="path of the offload launcher")
    ap.add_argument("--connrate", default=None,
                    help="path of offload-connrate")
    ap.add_argument("--hold", default=None,
                    help="path of offload-hold (the scale-idle scenario)")
    ap.add_argument("--ttcp", default=None,
                    help="path of ttcp (the ttcp-sweep scenario)")
    ap.add_argument("--daemon-cpu", default=None,
                    help="CPU list for offloadd (default: first allowed CPU)")
    ap.add_argument("--bench-cpus", default=None,
                    help="CPU list for servers and clients (default: the "
                         "second allowed CPU)")
    ap.add_argument("--debug-bypass", action="store_true",
                    help="set OFFLOAD_DEBUG=1 on the offload side and record "
                         "whether sockets were offloaded (always on in "
                         "--quick)")
    ap.add_argument("--offload-env", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="extra environment for the offload side only, e.g. "
                         "OFFLOAD_RX_POLL=0 (repeatable; recorded in the "
                         "report)")
    ap.add_argument("--offloadctl", default=None,
                    help="path of offloadctl (--wire: engine packet counters)")
    ap.add_argument("--wire", action="store_true",
                    help="NIC scenarios: TCP over a veth between two network "
                         "namespaces, offloadd owning one end (root)")
    ap.add_argument("--no-plots", action="store_true", help="skip gnuplot")
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = 1 if args.quick else 5
    if args.duration is None:
        # sockperf spends 400 ms warming up; 2 s leave a usable window even
        # on a busy machine.
        args.duration = 2 if args.quick else 5
    args.offload_env_map = {}
    for kv in args.offload_env:
        key, sep, value = kv.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum():
            ap.error("--offload-env expects KEY=VALUE, got %r" % kv)
        args.offload_env_map[key] = value
    if not 1 <= args.reps <= 100:
        ap.error("--reps must be in [1, 100]")
    if not 1 <= args.duration <= 300:
        ap.error("--duration must be in [1, 300] seconds")
    known = {s.name: s for s in (wire.wire_scenarios() if args.wire
                                 else scen.all_scenarios())}
    for s in known.values():
        if hasattr(s, "prepare"):
            s.prepare(args.quick)  # metrics that depend on --quick
    if args.scenarios == "all":
        args.scenario_list = list(known.values())
    else:
        args.scenario_list = []
        for name in args.scenarios.split(","):
            if name not in known:
                ap.error("unknown scenario %r; known: %s"
                         % (name, ", ".join(known)))
            args.scenario_list.append(known[name])
    return args
