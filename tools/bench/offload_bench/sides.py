"""The two sides of every comparison: the kernel, and offload.

The kernel side runs a command as is. The offload side runs it under the
`offload` launcher (LD_PRELOAD of liboffload.so) with OFFLOAD_RUN_DIR
pointing at a private offloadd started for this run and pinned to its own
CPU. Binaries are found by option, environment, Bazel runfiles, the
repository's bazel-bin, then the installed paths.
"""

import os
import shutil
import signal
import tempfile

from offload_bench import procs

# tools/bench/offload_bench/sides.py -> repository root
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))


def _runfiles_candidates(rel):
    out = []
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        base = os.environ.get(var)
        if base:
            out.append(os.path.join(base, "offload", rel))
    return out


def find_binary(explicit, env_var, rel, installed):
    """First executable among: `explicit`, $env_var, runfiles/rel,
    REPO_ROOT/bazel-bin/rel, `installed` (a path or a PATH name).

    Returns (path or None, list of places looked at).
    """
    tried = []
    cands = []
    if explicit:
        cands.append(explicit)
    if os.environ.get(env_var):
        cands.append(os.environ[env_var])
    cands += _runfiles_candidates(rel)
    cands.append(os.path.join(REPO_ROOT, "bazel-bin", rel))
    for c in cands:
        tried.append(c)
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c), tried
    if installed:
        tried.append(installed)
        found = (installed if os.path.isabs(installed) and
                 os.access(installed, os.X_OK) else shutil.which(installed))
        if found:
            return found, tried
    return None, tried


def snapshot_binaries(paths):
    """Copies the binaries a run measures into a private directory, so a
    rebuild in the working tree during the run (a shared checkout) cannot
    swap one of them mid-run (a launcher whose liboffload.so speaks another
    ABI than the running daemon silently stays on the kernel).

    paths: {name: path or None}. The launcher's liboffload.so (found next
    to it, where the launcher looks first) is copied next to its copy.
    Returns (directory, {name: copied path or None}); the caller removes
    the directory.
    """
    d = tempfile.mkdtemp(prefix="offload-bench-bin-")
    out = {}
    for name, path in paths.items():
        if not path:
            out[name] = None
            continue
        dst = os.path.join(d, os.path.basename(path))
        shutil.copy2(os.path.realpath(path), dst)
        out[name] = dst
        if name == "launcher":
            lib = os.path.join(os.path.dirname(os.path.realpath(path)),
                               "liboffload.so")
            if os.path.exists(lib):
                shutil.copy2(lib, os.path.join(d, "liboffload.so"))
    return d, out


def _short_tempdir():
    """A private run directory whose socket paths fit sun_path (108 bytes),
    even when $TMPDIR is long (as under bazel test)."""
    d = tempfile.mkdtemp(prefix="offload-bench-run-")
    if len(os.path.join(d, "control.sock")) <= 90:
        return d
    os.rmdir(d)
    return tempfile.mkdtemp(prefix="offload-bench-run-", dir="/tmp")


class KernelSide:
    name = "kernel"
    debug_bypass = False

    def wrap(self, cmd):
        return list(cmd)

    def env(self):
        return {}

    def check(self):
        pass


class OffloadSide:
    """Runs commands under the launcher against a private daemon."""

    name = "offload"

    def __init__(self, registry, offloadd, launcher, daemon_cpu, debug_bypass,
                 extra_env=None):
        self.registry = registry
        self.offloadd = offloadd
        self.launcher = launcher
        self.daemon_cpu = daemon_cpu
        self.debug_bypass = debug_bypass
        self.extra_env = dict(extra_env or {})
        self.run_dir = _short_tempdir()
        self.daemon = None
        self.restarts = 0
        self.last_sample = "none"

    def start(self):
        """Starts offloadd and waits until it serves (wait_serving)."""
        self.daemon = self.registry.start(
            "offloadd", [self.offloadd, "--run-dir", self.run_dir],
            cpus=self.daemon_cpu)
        self.wait_serving("offloadd")

    def wait_serving(self, what):
        """Waits until the daemon's control socket accepts connections:
        offloadd opens it after its attach socket (engine.sock) listens
        (daemon/server/daemon.cc), so both are served then. The socket
        files alone say nothing (they exist from bind(), and after a
        crash)."""
        ctl = os.path.join(self.run_dir, "control.sock")
        procs.wait_until(lambda: procs.unix_socket_accepts(ctl), 15,
                         what + " to accept connections on " + ctl,
                         self.daemon)

    def check(self):
        """Raises BenchError if the daemon has died."""
        if self.daemon is None or not self.daemon.alive():
            raise procs.BenchError(self.death_report())

    def alive(self):
        return self.daemon is not None and self.daemon.alive()

    def death_report(self):
        """Says how the daemon ended and after which sample, with its log."""
        if self.daemon is None:
            return "offloadd is not running"
        rc = self.daemon.popen.returncode
        how = ("killed by %s" % signal.Signals(-rc).name if rc is not None
               and rc < 0 else "exited with status %s" % rc)
        return ("offloadd (pid %d) %s; last sample before: %s; its log "
                "(%s) ends:\n%s" % (self.daemon.pid, how, self.last_sample,
                                     self.daemon.log_path,
                                     procs.tail(self.daemon.output())))

    def restart(self):
        """Starts a new daemon after a crash (fresh run directory)."""
        self.restarts += 1
        if self.daemon is not None:
            self.registry.stop(self.daemon)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir = _short_tempdir()
        self.start()

    def wrap(self, cmd):
        return [self.launcher, "--app-id", "offload-bench", "--"] + list(cmd)

    def env(self):
        e = dict(self.extra_env)
        e["OFFLOAD_RUN_DIR"] = self.run_dir
        if self.debug_bypass:
            e["OFFLOAD_DEBUG"] = "1"
        return e

    def stop(self):
        if self.daemon is not None:
            self.registry.stop(self.daemon)
            self.daemon = None
        shutil.rmtree(self.run_dir, ignore_errors=True)


BYPASS_MARK = "enabled bypass on fd"


def bypass_seen(*texts):
    """True if any output shows the client library's OFFLOAD_DEBUG line."""
    return any(BYPASS_MARK in t for t in texts)
