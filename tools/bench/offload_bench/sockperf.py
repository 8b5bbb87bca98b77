"""sockperf scenarios: ping-pong and under-load latency, throughput."""

import os
import signal
import tempfile

from offload_bench import base
from offload_bench import parse
from offload_bench import procs
from offload_bench import stats


SPLIT_PINGPONG_MPS = 500000


class SockperfLatency:
    """sockperf ping-pong (or under-load at a fixed rate) at 64 B;
    percentiles from --full-log (sockperf's latency is half the RTT)."""

    def __init__(self, proto, under_load, split=False):
        self.proto = proto
        self.under_load = under_load
        # split: the client on another core than the server ("shared", the
        # default, pins both to the benchmark CPU).
        self.split = split
        kind = "underload" if under_load else "pingpong"
        self.name = "%s-%s%s" % (kind, proto, "-split" if split else "")
        self.title = ("sockperf %s %s, 64 B%s%s" %
                      ("under-load" if under_load else "ping-pong",
                       proto.upper(), ", fixed rate" if under_load else "",
                       ", client and server on separate cores" if split
                       else ", client and server on one core"))
        self.metrics = [base.Metric("p50", "p50 latency", "usec", True),
                        base.Metric("p99", "p99 latency", "usec", True),
                        base.Metric("p99.9", "p99.9 latency", "usec", True)]

    def rate(self, ctx):
        # sockperf replies to every 100th message: at 10 000 msg/s even a
        # short run yields enough observations after the 400 ms warm-up.
        return 10000

    def run(self, ctx, side):
        proto_flag = ["--tcp"] if self.proto == "tcp" else []
        log = tempfile.NamedTemporaryFile(prefix="sockperf-", suffix=".csv",
                                          dir=ctx.tmpdir, delete=False)
        log.close()

        # sockperf under-load counts only the replies it matches after its
        # warm-up (one message in 100 is answered): on a loaded machine a
        # 2 s run can end with none (seen on the kernel and under offload
        # alike), so it runs at least 5 s.
        # Ping-pong: at least 3 s, for the same reason (a 2 s quick run on a
        # loaded machine once ended with no valid observation, kernel and
        # offload alike).
        duration = max(ctx.duration, 5) if self.under_load else max(ctx.duration, 3)
        cpus = None
        if self.split:
            if ctx.split_cpus is None:
                raise procs.BenchError(
                    "the split placement needs a second CPU")
            cpus = ctx.split_cpus

        def client(port, server):
            cmd = ["sockperf", "under-load" if self.under_load else "ping-pong",
                   "-i", "127.0.0.1", "-p", str(port), "-m", "64",
                   "-t", str(duration), "--full-log", log.name] + proto_flag
            if self.under_load:
                cmd.append("--mps=%d" % self.rate(ctx))
            elif self.split:
                # Sub-microsecond round trips outrun sockperf's sequence
                # table at --mps=max ("_seqN > m_maxSequenceNo"): at most
                # one message every 2 us, which a round trip still fits.
                cmd.append("--mps=%d" % SPLIT_PINGPONG_MPS)
            out = ctx.run_client(side, self.name, cmd, cpus=cpus)
            summary = parse.sockperf_latency_summary(out)
            with open(log.name, errors="replace") as f:
                lat = parse.sockperf_full_log(f.read())
            if self.proto == "tcp" and summary["dropped"]:
                raise parse.ParseError("sockperf counted %d dropped TCP "
                                       "messages" % summary["dropped"])
            ctx.latencies.setdefault((self.name, side.name), []).append(lat)
            return {"p50": stats.percentile(lat, 50),
                    "p99": stats.percentile(lat, 99),
                    "p99.9": stats.percentile(lat, 99.9),
                    "observations": float(len(lat)),
                    "dropped": float(summary["dropped"]),
                    "_outputs": [out, server.output()]}

        try:
            return base.with_server(
                ctx, side, self.name,
                lambda port: ["sockperf", "server", "-i", "127.0.0.1", "-p",
                              str(port)] + proto_flag,
                self.proto, client)
        finally:
            os.unlink(log.name)


THROUGHPUT_SIZES = [64, 100, 1024, 65536]


class SockperfThroughput:
    """sockperf throughput at 64 B, 100 B, 1 KiB and 64 KiB (65507 B for
    UDP, the largest IPv4 datagram). Reports the rate the sender achieved and
    the rate the server received (its count at SIGINT / the run time): for
    UDP only the latter is delivered work."""

    def __init__(self, proto):
        self.proto = proto
        self.name = "throughput-%s" % proto
        self.title = "sockperf throughput %s" % proto.upper()
        self.metrics = (
            [base.Metric("rx_%d" % s, "received msg/s @ %s" % _size_label(s),
                    "msg/s", False) for s in THROUGHPUT_SIZES] +
            [base.Metric("msgs_%d" % s, "sent msg/s @ %s" % _size_label(s),
                    "msg/s", False) for s in THROUGHPUT_SIZES])
        if proto == "udp":
            # UDP may drop; a high send rate with little delivered is no win.
            self.metrics += [
                base.Metric("delivered_%d" % s, "delivered @ %s" % _size_label(s),
                       "%", False) for s in THROUGHPUT_SIZES]

    def size(self, s):
        return min(s, 65507) if self.proto == "udp" else s

    def run(self, ctx, side):
        # A fresh server per size: a sockperf TCP server still draining the
        # previous client's backlog may reset the next connection.
        proto_flag = ["--tcp"] if self.proto == "tcp" else []
        out = {"_outputs": []}
        for s in THROUGHPUT_SIZES:
            name = "%s-%d" % (self.name, s)

            def client(port, server, s=s, name=name):
                text = ctx.run_client(
                    side, name,
                    ["sockperf", "throughput", "-i", "127.0.0.1", "-p",
                     str(port), "-m", str(self.size(s)), "-t",
                     str(ctx.duration)] + proto_flag)
                out["msgs_%d" % s] = parse.sockperf_throughput(text)[
                    "msg_per_s"]
                # SIGINT makes the server print how many it received.
                ctx.registry.stop(server, sig=signal.SIGINT)
                received = parse.sockperf_server_received(server.output())
                if received <= 0:
                    raise parse.ParseError("sockperf server received nothing")
                out["rx_%d" % s] = received / float(ctx.duration)
                if self.proto == "udp":
                    out["delivered_%d" % s] = min(
                        100.0, 100.0 * out["rx_%d" % s] / out["msgs_%d" % s])
                out["_outputs"] += [text, server.output()]

            base.with_server(
                ctx, side, name,
                lambda port, s=s: ["sockperf", "server", "-i", "127.0.0.1",
                                   "-p", str(port), "-m",
                                   str(max(65507, self.size(s)))] + proto_flag,
                self.proto, client)
        return out


def _size_label(s):
    return "64 KiB" if s == 65536 else ("1 KiB" if s == 1024 else "%d B" % s)
