"""Application scenarios: connection rate (offload-connrate), redis
(redis-benchmark) and nginx (wrk)."""

import os
import pwd
import shutil
import socket
import tempfile

from offload_bench import base
from offload_bench import parse
from offload_bench import procs


CONNECTORS = [1, 4, 16]


class ConnectionRate:
    """offload-connrate: connect/accept/close cycles per second, from 1, 4
    and 16 concurrent connectors (threads of one client process) against
    one accepting server."""

    name = "connrate-tcp"
    title = "TCP connection rate (connect, accept, close)"
    metrics = [base.Metric("conn_per_s" if k == 1 else "conn_per_s_%d" % k,
                           "connections/s" if k == 1 else
                           "connections/s, %d connectors" % k, "conn/s",
                           False) for k in CONNECTORS]

    def run(self, ctx, side):
        tool = ctx.tools["offload-connrate"]
        count = 2000 if ctx.quick else 1000000
        out = {"_outputs": []}
        for k in CONNECTORS:
            def client(port, server, k=k):
                text = ctx.run_client(side, "%s-%d" % (self.name, k),
                                      [tool, "client", "--port", str(port),
                                       "--count", str(count), "--duration",
                                       str(ctx.duration), "--connectors",
                                       str(k)])
                r = parse.connrate(text)
                out["conn_per_s" if k == 1 else "conn_per_s_%d" % k] = \
                    r["conn_per_s"]
                out["_outputs"] += [text, server.output()]

            base.with_server(
                ctx, side, "%s-%d" % (self.name, k),
                lambda port: [tool, "server", "--port", str(port),
                              "--idle-timeout", str(ctx.timeout())],
                "tcp", client)
        return out


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
    metrics = [base.Metric("set_rps", "SET requests/s", "req/s", False),
               base.Metric("get_rps", "GET requests/s", "req/s", False),
               base.Metric("get_p99_ms", "GET p99 latency", "ms", True)]

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

        return base.with_server(
            ctx, side, self.name,
            lambda port: ["redis-server", "--port", str(port), "--bind",
                          "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--daemonize", "no", "--protected-mode", "no"],
            "tcp", bench)


NGINX_CONF = """\
daemon off;
worker_processes 2;
user {user};
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
    """nginx (generated config, a master and 2 worker processes: the master
    listens, the workers accept; a 1 KiB file) + wrk."""

    name = "nginx"
    title = "nginx static 1 KiB file, wrk"
    metrics = [base.Metric("req_per_s", "requests/s", "req/s", False),
               base.Metric("p50_ms", "p50 latency", "ms", True),
               base.Metric("p99_ms", "p99 latency", "ms", True)]

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
                    # Workers as the bench's own user (as root, nginx would
                    # switch them to nobody, who cannot read the temp dir).
                    f.write(NGINX_CONF.format(dir=d, port=port,
                                              user=pwd.getpwuid(os.getuid()).pw_name))
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

            return base.with_server(ctx, side, self.name, conf_for, "tcp", bench)
        finally:
            shutil.rmtree(d, ignore_errors=True)
