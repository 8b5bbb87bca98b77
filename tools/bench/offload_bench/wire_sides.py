"""The two sides of the --wire comparison, both in namespace A.

The kernel side runs a command as is inside namespace A; its TCP goes
through A's kernel stack and va. The offload side runs it there under the
`offload` launcher, against a private offloadd that owns va through AF_XDP
(its own run directory, one engine, pinned to the daemon CPU), so its TCP
runs in the engine. The daemon runs for the whole bench, during the kernel
samples too: both sides see the same XDP program on va (kernel flows are
XDP_PASSed) and the same machine load.
"""

import os
import re
import shutil
import subprocess
import tempfile

from offload_bench import procs
from offload_bench import sides

DAEMON_CONFIG = """\
# offload-bench --wire: one engine on the offloaded veth end.
interfaces { name: "va" driver: DRIVER_AF_XDP }
num_cores: 1
"""

_NIC_RE = re.compile(r"^nic (\S+) queue \d+: rx (\d+) pkts (\d+) bytes, "
                     r"tx (\d+) pkts (\d+) bytes", re.M)
_ENGINE_RE = re.compile(r"^engine \d+ \(cpu [^)]*\): .* rx (\d+) tx (\d+) ",
                        re.M)


def parse_engine_stats(text):
    """Sums the packet counters of `offloadctl stats` output.

    Returns {'nic_rx_pkts', 'nic_tx_pkts', 'nic_rx_bytes', 'nic_tx_bytes',
    'engine_rx_pkts', 'engine_tx_pkts'}; raises BenchError if the output has
    no NIC line (the daemon does not own an interface).
    """
    nics = _NIC_RE.findall(text)
    if not nics:
        raise procs.BenchError("offloadctl stats shows no NIC queue: the "
                               "daemon does not own an interface:\n"
                               + procs.tail(text))
    out = {"nic_rx_pkts": 0, "nic_rx_bytes": 0, "nic_tx_pkts": 0,
           "nic_tx_bytes": 0, "engine_rx_pkts": 0, "engine_tx_pkts": 0}
    for _, rxp, rxb, txp, txb in nics:
        out["nic_rx_pkts"] += int(rxp)
        out["nic_rx_bytes"] += int(rxb)
        out["nic_tx_pkts"] += int(txp)
        out["nic_tx_bytes"] += int(txb)
    for rx, tx in _ENGINE_RE.findall(text):
        out["engine_rx_pkts"] += int(rx)
        out["engine_tx_pkts"] += int(tx)
    return out


class WireKernelSide(sides.KernelSide):
    """Plain kernel sockets inside namespace A."""

    def __init__(self, net):
        self.net = net

    def wrap(self, cmd):
        return self.net.in_a(cmd)


class WireOffloadSide(sides.OffloadSide):
    """Commands under the launcher in namespace A, against an offloadd that
    owns va. offloadctl (optional) reads its packet counters."""

    def __init__(self, registry, offloadd, launcher, daemon_cpu, debug_bypass,
                 extra_env, net, offloadctl):
        super().__init__(registry, offloadd, launcher, daemon_cpu,
                         debug_bypass, extra_env)
        self.net = net
        self.offloadctl = offloadctl
        self.conf_dir = tempfile.mkdtemp(prefix="offload-bench-conf-")
        self.config_path = os.path.join(self.conf_dir, "offloadd.conf")
        self.rules_path = os.path.join(self.conf_dir, "rules.conf")
        with open(self.config_path, "w") as f:
            f.write(DAEMON_CONFIG)
        with open(self.rules_path, "w") as f:
            f.write("# empty: every socket is offloaded (the default)\n")

    def start(self):
        """Starts offloadd in namespace A and waits until it serves (the
        interface is attached before the attach socket appears)."""
        self.daemon = self.registry.start(
            "offloadd", self.net.in_a(
                [self.offloadd, "--config", self.config_path, "--rules",
                 self.rules_path, "--run-dir", self.run_dir]),
            cpus=self.daemon_cpu)
        self.wait_serving("offloadd (attaching va)")
        if self.offloadctl:
            # The statistics this side reads come through offloadctl: wait
            # until it gets an answer, not only a connection.
            cmd = [self.offloadctl, "--socket",
                   os.path.join(self.run_dir, "control.sock"), "status"]
            def answers():
                try:
                    return subprocess.run(
                        cmd, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                        timeout=10).returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    return False
            procs.wait_until(answers, 15, "offloadctl status to answer",
                             self.daemon)

    def wrap(self, cmd):
        return self.net.in_a(super().wrap(cmd))

    def counters(self):
        """Current packet counters (parse_engine_stats), or None without
        offloadctl. Raises BenchError if offloadctl fails."""
        if not self.offloadctl:
            return None
        cmd = [self.offloadctl, "--socket",
               os.path.join(self.run_dir, "control.sock"), "stats"]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=10,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise procs.BenchError("%s: %s" % (" ".join(cmd), e))
        text = p.stdout.decode(errors="replace")
        if p.returncode != 0:
            raise procs.BenchError("offloadctl stats failed (status %d): %s"
                                   % (p.returncode, procs.tail(text)))
        return parse_engine_stats(text)

    def cpu_ticks(self):
        """utime + stime of the daemon (all threads), in clock ticks."""
        with open("/proc/%d/stat" % self.daemon.pid) as f:
            stat = f.read()
        # Fields after "(comm) ": state is field 3, utime 14, stime 15.
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])

    def stop(self):
        super().stop()
        shutil.rmtree(self.conf_dir, ignore_errors=True)
