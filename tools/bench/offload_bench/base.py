"""What every scenario shares: metric descriptions, the run context and
starting a server on a fresh port around a client run.

A scenario has a name, a title, the metrics it reports (with units and
whether lower is better) and run(ctx, side) -> {metric: value}, raising
BenchError or ParseError when the run fails or its output is not correct.
Servers and clients both run on the side being measured, pinned to the
benchmark CPUs; every process is stopped by pid before run() returns.
"""

import socket

from offload_bench import procs


class Metric:
    def __init__(self, key, label, unit, lower_is_better, may_be_zero=False):
        self.key = key
        self.label = label
        self.unit = unit
        self.lower_is_better = lower_is_better
        # 0 is a real reading (an idle CPU, memory that did not grow).
        self.may_be_zero = may_be_zero


class Context:
    """What every scenario needs: the process registry, CPUs, durations."""

    def __init__(self, registry, bench_cpus, quick, duration, tools, tmpdir):
        self.registry = registry
        self.bench_cpus = bench_cpus
        self.quick = quick
        self.duration = duration  # seconds per client run
        self.tools = tools        # name -> path (offload-connrate)
        self.tmpdir = tmpdir
        # A CPU other than the benchmark's, for the client of the "split"
        # placement (server and client on separate cores); None if there is
        # none. offloadd may run there: same-host pipes do not need it.
        self.split_cpus = None
        # (scenario, side) -> list of latency lists (one per sample), for
        # the percentile-curve plots.
        self.latencies = {}

    def timeout(self):
        return self.duration + 30

    def start_server(self, side, name, cmd, port, proto="tcp"):
        side.check()
        p = self.registry.start("%s-%s" % (name, side.name), side.wrap(cmd),
                                cpus=self.bench_cpus, env_extra=side.env())
        procs.wait_listening(port, proto, 15, p)
        return p

    def run_client(self, side, name, cmd, timeout=None, cpus=None):
        """Runs a client to completion within `timeout` s (default: the run
        duration + 30 s), pinned to `cpus` (default: the benchmark CPUs);
        returns its output or raises BenchError."""
        side.check()
        rc, out = self.registry.run("%s-%s" % (name, side.name),
                                    side.wrap(cmd), timeout or self.timeout(),
                                    cpus=cpus or self.bench_cpus,
                                    env_extra=side.env())
        if rc != 0:
            raise procs.BenchError("%s exited (%s):\n%s"
                                   % (cmd[0], procs.exit_text(rc),
                                      procs.tail(out)))
        return out


def with_server(ctx, side, name, cmd_for_port, proto, body):
    """Starts a server on a fresh port (retrying a port taken meanwhile),
    runs body(port, server), and stops the server by pid."""
    last = None
    for _ in range(3):
        port = procs.free_port(socket.SOCK_DGRAM if proto == "udp"
                               else socket.SOCK_STREAM)
        try:
            server = ctx.start_server(side, name, cmd_for_port(port), port,
                                      proto)
        except procs.BenchError as e:
            # Retry only if another process took the port in between.
            if "in use" not in str(e):
                raise
            last = e
            continue
        try:
            result = body(port, server)
            # body may stop the server itself (it is then unregistered).
            if server in ctx.registry.procs and not server.alive():
                raise procs.BenchError("%s server died during the run:\n%s"
                                       % (name, procs.tail(server.output())))
            return result
        finally:
            ctx.registry.stop(server)
    raise last
