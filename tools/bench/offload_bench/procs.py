"""Starting, waiting for and stopping the processes a benchmark run uses.

Every process is started through a Registry, which logs the exact command
line, pins it to CPUs with taskset, sends its output to a log file and, on
stop() or at exit, terminates it by pid (SIGTERM, then SIGKILL after a bounded
wait). Nothing is ever killed by name.
"""

import os
import shlex
import signal
import socket
import struct
import subprocess
import time


class BenchError(Exception):
    """A scenario could not run or produced invalid output."""


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that was free a moment ago (bind to 0, close).

    For servers that cannot bind port 0 themselves (sockperf, redis, nginx).
    Callers retry if the server then fails to bind.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_net_addr(ip):
    """An IPv4 address as /proc/net/tcp prints it (the __be32 as a native
    hex word: 127.0.0.1 -> 0100007F on little-endian hosts)."""
    return "%08X" % struct.unpack("=I", socket.inet_aton(ip))[0]


def _proc_net_has(port, proto, ip="127.0.0.1", pid=None):
    """True if /proc/[pid/]net/<proto> shows ip:port or *:port listening
    (TCP state 0A) or bound (UDP state 07). With `pid` the table of that
    process's network namespace is read (a server in another namespace)."""
    want_state = "0A" if proto == "tcp" else "07"
    want_addrs = (_proc_net_addr(ip), "00000000")
    path = ("/proc/%d/net/%s" % (pid, proto) if pid is not None
            else "/proc/net/" + proto)
    try:
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state = fields[1], fields[3]
                addr, hexport = local.split(":")
                if (int(hexport, 16) == port and state == want_state and
                        addr in want_addrs):
                    return True
    except (OSError, StopIteration):
        return False
    return False


class Proc:
    """One started process (see Registry.start)."""

    def __init__(self, name, popen, log_path, cmd):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.cmd = cmd

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def output(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Registry:
    """Owns every process of a run.

    log_dir: where <name>.log files go; commands: a list that receives each
    exact command line (written to commands.txt by the report).
    """

    def __init__(self, log_dir, commands):
        self.log_dir = log_dir
        self.commands = commands
        self.procs = []
        self.counter = 0

    def _log_path(self, name):
        self.counter += 1
        return os.path.join(self.log_dir, "%03d-%s.log" % (self.counter, name))

    def _record(self, cmd, env_extra, cpus):
        prefix = " ".join("%s=%s" % (k, shlex.quote(v))
                          for k, v in sorted(env_extra.items()))
        line = " ".join(shlex.quote(c) for c in self.pinned(cmd, cpus))
        self.commands.append((prefix + " " + line).strip())

    @staticmethod
    def pinned(cmd, cpus):
        return ["taskset", "-c", cpus] + list(cmd) if cpus else list(cmd)

    def start(self, name, cmd, cpus=None, env_extra=None, cwd=None):
        """Starts `cmd` in the background; returns a Proc."""
        env_extra = env_extra or {}
        env = dict(os.environ)
        env.update(env_extra)
        self._record(cmd, env_extra, cpus)
        log_path = self._log_path(name)
        log = open(log_path, "wb")
        try:
            popen = subprocess.Popen(self.pinned(cmd, cpus), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env,
                                     cwd=cwd)
        finally:
            log.close()
        proc = Proc(name, popen, log_path, cmd)
        self.procs.append(proc)
        return proc

    def run(self, name, cmd, timeout, cpus=None, env_extra=None, cwd=None):
        """Runs `cmd` to completion (at most `timeout` s); returns
        (exit code, output). A run that overstays is killed and raises."""
        proc = self.start(name, cmd, cpus=cpus, env_extra=env_extra, cwd=cwd)
        try:
            rc = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise BenchError("%s did not finish within %d s (killed); log: %s"
                             % (name, timeout, proc.log_path))
        self.procs.remove(proc)
        return rc, proc.output()

    def stop(self, proc, grace=5.0, sig=signal.SIGTERM):
        """`sig` (default SIGTERM), wait up to `grace` s, then SIGKILL; by
        pid only."""
        if proc.alive():
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait(timeout=grace)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            self.stop(proc)


def wait_until(predicate, timeout, what, proc=None):
    """Polls `predicate` every 20 ms for at most `timeout` s.

    Raises BenchError naming `what` on timeout, or at once if `proc` exits
    (with the tail of its log).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and not proc.alive():
            raise BenchError("%s exited (%s) while waiting for %s; log %s "
                             "ends:\n%s"
                             % (proc.name, exit_text(proc.popen.returncode),
                                what, proc.log_path, tail(proc.output())))
        time.sleep(0.02)
    raise BenchError("timed out after %.0f s waiting for %s" % (timeout, what))


def unix_socket_accepts(path):
    """True if the unix stream socket at `path` accepts a connection now.

    The socket file appears at bind(), before its server listens (or stays
    behind a dead one): a connect, not the file, says the server is up.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_listening(port, proto, timeout, proc, ip="127.0.0.1",
                   other_netns=False):
    """Waits until a socket is listening (tcp) or bound (udp) on ip:port.

    other_netns: `proc` runs in another network namespace; its own
    /proc/PID/net table is read instead of ours.
    """
    pid = proc.pid if other_netns else None
    wait_until(lambda: _proc_net_has(port, proto, ip, pid), timeout,
               "%s port %d on %s" % (proto, port, ip), proc)


def exit_text(returncode):
    """'status N' or 'killed by SIGNAME' for a Popen return code."""
    if returncode is not None and returncode < 0:
        try:
            return "killed by " + signal.Signals(-returncode).name
        except ValueError:
            return "killed by signal %d" % -returncode
    return "status %s" % returncode


def tail(text, lines=15):
    return "\n".join(text.rstrip().splitlines()[-lines:])
