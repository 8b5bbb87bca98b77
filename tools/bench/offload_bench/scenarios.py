"""The benchmark scenarios. Each runs one sample on one side.

A scenario has a name, the metrics it reports (with units and whether lower
is better) and run(ctx, side) -> {metric: value}, raising BenchError or
ParseError when the run fails or its output is not correct. Servers and
clients both run on the side being measured, pinned to the benchmark CPUs;
every process is stopped by pid before run() returns.
"""

import os
import shutil
import signal
import socket
import tempfile

from offload_bench import parse
from offload_bench import procs
from offload_bench import sides
from offload_bench import stats


class Metric:
    def __init__(self, key, label, unit, lower_is_better):
        self.key = key
        self.label = label
        self.unit = unit
        self.lower_is_better = lower_is_better


class Context:
    """What every scenario needs: the process registry, CPUs, durations."""

    def __init__(self, registry, bench_cpus, quick, duration, tools, tmpdir):
        self.registry = registry
        self.bench_cpus = bench_cpus
        self.quick = quick
        self.duration = duration  # seconds per client run
        self.tools = tools        # name -> path (offload-connrate)
        self.tmpdir = tmpdir
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

    def run_client(self, side, name, cmd, timeout=None):
        """Runs a client to completion within `timeout` s (default: the run
        duration + 30 s); returns its output or raises BenchError."""
        side.check()
        rc, out = self.registry.run("%s-%s" % (name, side.name),
                                    side.wrap(cmd), timeout or self.timeout(),
                                    cpus=self.bench_cpus,
                                    env_extra=side.env())
        if rc != 0:
            raise procs.BenchError("%s exited (%s):\n%s"
                                   % (cmd[0], procs.exit_text(rc),
                                      procs.tail(out)))
        return out


def _with_server(ctx, side, name, cmd_for_port, proto, body):
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


class SockperfLatency:
    """sockperf ping-pong (or under-load at a fixed rate) at 64 B;
    percentiles from --full-log (sockperf's latency is half the RTT)."""

    def __init__(self, proto, under_load):
        self.proto = proto
        self.under_load = under_load
        kind = "underload" if under_load else "pingpong"
        self.name = "%s-%s" % (kind, proto)
        self.title = ("sockperf %s %s, 64 B%s" %
                      ("under-load" if under_load else "ping-pong",
                       proto.upper(), ", fixed rate" if under_load else ""))
        self.metrics = [Metric("p50", "p50 latency", "usec", True),
                        Metric("p99", "p99 latency", "usec", True),
                        Metric("p99.9", "p99.9 latency", "usec", True)]

    def rate(self, ctx):
        # sockperf replies to every 100th message: at 10 000 msg/s even a
        # short run yields enough observations after the 400 ms warm-up.
        return 10000

    def run(self, ctx, side):
        proto_flag = ["--tcp"] if self.proto == "tcp" else []
        log = tempfile.NamedTemporaryFile(prefix="sockperf-", suffix=".csv",
                                          dir=ctx.tmpdir, delete=False)
        log.close()

        def client(port, server):
            cmd = ["sockperf", "under-load" if self.under_load else "ping-pong",
                   "-i", "127.0.0.1", "-p", str(port), "-m", "64",
                   "-t", str(ctx.duration), "--full-log", log.name] + proto_flag
            if self.under_load:
                cmd.append("--mps=%d" % self.rate(ctx))
            out = ctx.run_client(side, self.name, cmd)
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
            return _with_server(
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
            [Metric("rx_%d" % s, "received msg/s @ %s" % _size_label(s),
                    "msg/s", False) for s in THROUGHPUT_SIZES] +
            [Metric("msgs_%d" % s, "sent msg/s @ %s" % _size_label(s),
                    "msg/s", False) for s in THROUGHPUT_SIZES])
        if proto == "udp":
            # UDP may drop; a high send rate with little delivered is no win.
            self.metrics += [
                Metric("delivered_%d" % s, "delivered @ %s" % _size_label(s),
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

            _with_server(
                ctx, side, name,
                lambda port, s=s: ["sockperf", "server", "-i", "127.0.0.1",
                                   "-p", str(port), "-m",
                                   str(max(65507, self.size(s)))] + proto_flag,
                self.proto, client)
        return out


def _size_label(s):
    return "64 KiB" if s == 65536 else ("1 KiB" if s == 1024 else "%d B" % s)


class ConnectionRate:
    """offload-connrate: connect/accept/close cycles per second."""

    name = "connrate-tcp"
    title = "TCP connection rate (connect, accept, close)"
    metrics = [Metric("conn_per_s", "connections/s", "conn/s", False)]

    def run(self, ctx, side):
        tool = ctx.tools["offload-connrate"]
        count = 2000 if ctx.quick else 1000000

        def client(port, server):
            out = ctx.run_client(side, self.name,
                                 [tool, "client", "--port", str(port),
                                  "--count", str(count), "--duration",
                                  str(ctx.duration)])
            r = parse.connrate(out)
            return {"conn_per_s": r["conn_per_s"],
                    "_outputs": [out, server.output()]}

        return _with_server(
            ctx, side, self.name,
            lambda port: [tool, "server", "--port", str(port),
                          "--idle-timeout", str(ctx.timeout())],
            "tcp", client)


def _redis_command(port, *args):
    """Sends one command over RESP (kernel socket) and returns the reply
    as text (bulk string) or raises BenchError."""
    req = "*%d\r\n" % len(args) + "".join(
        "$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                n = int(head[1:])
                if n < 0 or len(rest) >= n + 2:
                    return rest[:max(n, 0)].decode(errors="replace")
            elif data.endswith(b"\r\n"):
                return data.decode(errors="replace")
    raise procs.BenchError("redis closed the connection without a reply")


class Redis:
    """redis-benchmark SET/GET against a fresh redis-server per sample;
    every request must be counted by the server's INFO commandstats."""

    name = "redis"
    title = "redis-benchmark SET/GET, 50 clients"
    metrics = [Metric("set_rps", "SET requests/s", "req/s", False),
               Metric("get_rps", "GET requests/s", "req/s", False),
               Metric("get_p99_ms", "GET p99 latency", "ms", True)]

    timeout_floor = 60

    def run(self, ctx, side):
        n = 5000 if ctx.quick else 200000

        def bench(port, server):
            out = ctx.run_client(side, self.name,
                                 ["redis-benchmark", "-h", "127.0.0.1", "-p",
                                  str(port), "-n", str(n), "-c", "50", "-t",
                                  "set,get", "--csv"],
                                 # Count-bounded: allow 2n requests at a slow
                                 # 4 000/s before calling it stuck.
                                 timeout=max(self.timeout_floor, 2 * n / 4000))
            for line in out.splitlines():
                if line.startswith("Error") or "ERR" in line:
                    raise parse.ParseError("redis-benchmark: " + line)
            result = parse.redis_benchmark_csv(out, ["SET", "GET"])
            info = parse.redis_info(_redis_command(port, "INFO",
                                                   "commandstats"))
            for cmd in ("set", "get"):
                calls, rejected, failed = parse.redis_command_calls(info, cmd)
                if calls < n or rejected or failed:
                    raise parse.ParseError(
                        "redis-server counted %d %s calls (%d rejected, %d "
                        "failed); redis-benchmark sent %d"
                        % (calls, cmd.upper(), rejected, failed, n))
            result["_outputs"] = [out, server.output()]
            return result

        return _with_server(
            ctx, side, self.name,
            lambda port: ["redis-server", "--port", str(port), "--bind",
                          "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--daemonize", "no", "--protected-mode", "no"],
            "tcp", bench)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
    }}
}}
"""

SMALL_FILE_SIZE = 1024


def _http_get(port, path):
    """(status, body) of a plain HTTP/1.0 GET over a kernel socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path)
                  .encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise procs.BenchError("nginx sent no HTTP status line")
    return status, body


class Nginx:
    """nginx (generated config, one process, a 1 KiB file) + wrk."""

    name = "nginx"
    title = "nginx static 1 KiB file, wrk"
    metrics = [Metric("req_per_s", "requests/s", "req/s", False),
               Metric("p50_ms", "p50 latency", "ms", True),
               Metric("p99_ms", "p99 latency", "ms", True)]

    def run(self, ctx, side):
        d = tempfile.mkdtemp(prefix="nginx-", dir=ctx.tmpdir)
        try:
            os.makedirs(os.path.join(d, "www"))
            os.makedirs(os.path.join(d, "tmp"))
            content = bytes((i * 7 + 13) % 95 + 32
                            for i in range(SMALL_FILE_SIZE))
            with open(os.path.join(d, "www", "small.html"), "wb") as f:
                f.write(content)
            conns = 4 if ctx.quick else 32

            def conf_for(port):
                path = os.path.join(d, "nginx-%d.conf" % port)
                with open(path, "w") as f:
                    f.write(NGINX_CONF.format(dir=d, port=port))
                # Errors go to stderr, i.e. into this sample's log file.
                return ["nginx", "-p", d, "-e", "stderr", "-c", path]

            def bench(port, server):
                status, body = _http_get(port, "/small.html")
                if status != 200 or body != content:
                    raise parse.ParseError(
                        "nginx returned status %d and %d bytes; expected 200 "
                        "and the %d-byte file" % (status, len(body),
                                                  len(content)))
                out = ctx.run_client(
                    side, self.name,
                    ["wrk", "-t", "1", "-c", str(conns), "-d",
                     "%ds" % ctx.duration, "--timeout", "5s", "--latency",
                     "http://127.0.0.1:%d/small.html" % port])
                result = parse.wrk(out)
                result["_outputs"] = [out, server.output()]
                return result

            return _with_server(ctx, side, self.name, conf_for, "tcp", bench)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def all_scenarios():
    return [SockperfLatency("tcp", False), SockperfLatency("udp", False),
            SockperfThroughput("tcp"), SockperfThroughput("udp"),
            SockperfLatency("tcp", True), SockperfLatency("udp", True),
            ConnectionRate(), Redis(), Nginx()]


def bypass_seen(result):
    return sides.bypass_seen(*result.get("_outputs", []))
