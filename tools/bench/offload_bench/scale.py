"""The scale scenario: N idle connections held by one client and one server
process, a ping-pong beside them, and what each connection costs.

offload-hold (tools/bench/hold_main.cc) does the work; this file runs it for
each N and turns its line into metrics per N.
"""

import resource

from offload_bench import base
from offload_bench import parse
from offload_bench import procs

# Connections held per sample. The descriptors of both processes must fit
# the hard RLIMIT_NOFILE the bench runs under (it cannot raise it without
# CAP_SYS_RESOURCE): larger N are dropped, and the report says so.
SIZES = [1000, 10000, 100000]
QUICK_SIZES = [200]


def sizes(quick):
    """The N this machine can run, and the ones it cannot (fd limit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = QUICK_SIZES if quick else SIZES
    if hard == resource.RLIM_INFINITY:
        return want, []
    fit = [n for n in want if n + 512 <= hard]
    skipped = [n for n in want if n + 512 > hard]
    # Still measure at the largest N that fits, if a wanted one does not.
    if skipped and (not fit or fit[-1] < hard - 1024):
        fit.append((hard - 1024) // 1000 * 1000)
    return fit, skipped


class IdleScale:
    """Per N: the ping-pong's p50/p99 beside N idle connections, connect
    time, descriptors and PSS per connection (client + server + offloadd),
    and the watched processes' CPU while everything is idle."""

    name = "scale-idle"
    title = ("N idle TCP connections (one client, one server process) with "
             "a 64 B ping-pong beside them")

    def __init__(self):
        self._sizes = None
        self.metrics = []

    def prepare(self, quick):
        self._sizes, self.skipped = sizes(quick)
        self.metrics = []
        for n in self._sizes:
            self.metrics += [
                base.Metric("p50_%d" % n, "ping-pong p50 beside %d idle" % n,
                            "usec", True),
                base.Metric("p99_%d" % n, "ping-pong p99 beside %d idle" % n,
                            "usec", True),
                base.Metric("connect_%d" % n, "connect %d (one by one)" % n,
                            "s", True),
                base.Metric("fds_%d" % n, "client fds per connection @ %d" % n,
                            "fd", True),
                base.Metric("pss_%d" % n, "PSS growth per connection @ %d" % n,
                            "KiB", True, may_be_zero=True),
            ]
        if self._sizes:
            self.metrics.append(base.Metric(
                "idle_cpu", "server (+ offloadd) CPU while %d idle"
                % self._sizes[-1], "%", True, may_be_zero=True))

    def run(self, ctx, side):
        if self._sizes is None:
            self.prepare(ctx.quick)
        if not self._sizes:
            raise procs.BenchError("the descriptor limit allows no size")
        tool = ctx.tools["offload-hold"]
        out = {"_outputs": []}
        for n in self._sizes:
            def client(port, server, n=n):
                watch = ["--watch-pid", str(server.pid)]
                daemon = getattr(side, "daemon", None)
                if daemon is not None:
                    watch += ["--watch-pid", str(daemon.pid)]
                text = ctx.run_client(
                    side, "%s-%d" % (self.name, n),
                    [tool, "client", "--port", str(port), "--conns", str(n),
                     "--duration", str(min(ctx.duration, 3)), "--idle", "1"]
                    + watch, timeout=ctx.timeout() + n // 500)
                r = parse.hold(text, n)
                out["p50_%d" % n] = r["p50_us"]
                out["p99_%d" % n] = r["p99_us"]
                out["connect_%d" % n] = r["connect_s"]
                out["fds_%d" % n] = r["fds_per_conn"]
                out["pss_%d" % n] = r["pss_kib_per_conn"]
                if n == self._sizes[-1]:
                    out["idle_cpu"] = r["watch_cpu_pct"]
                out["_outputs"] += [text, server.output()]

            base.with_server(
                ctx, side, "%s-%d" % (self.name, n),
                lambda port: [tool, "server", "--port", str(port),
                              "--idle-timeout", str(ctx.timeout() + n // 500)],
                "tcp", client)
        return out
