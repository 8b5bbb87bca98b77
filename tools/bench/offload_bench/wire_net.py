"""The network of the --wire scenarios: two namespaces joined by a veth.

Namespace A (obw<pid>a) holds "va" with 198.18.9.1/24, the interface
offloadd owns through AF_XDP; namespace B (obw<pid>b) holds its peer "vb"
with 198.18.9.2/24, a plain kernel host. The names carry the pid of the
bench, so concurrent runs never collide, and a set left by a bench that was
killed (SIGKILL: no cleanup ran) is removed at the next start because its
pid is gone. Addresses exist only inside the namespaces.

Checksums: a veth "offloads" transmit checksums to no hardware, so frames a
kernel socket sends carry only the pseudo-header sum (CHECKSUM_PARTIAL). An
AF_XDP receiver sees them that way, while every real NIC delivers complete
checksums. offloadd accepts them on a veth, but TX checksum offload is still
turned off on vb, the kernel host's end, so that B computes complete
checksums in both arms of a comparison (as before that acceptance).
"""

import errno
import os
import subprocess

from offload_bench import procs

PREFIX = "obw"
SUBNET = "198.18.9"
IP_A = SUBNET + ".1"
IP_B = SUBNET + ".2"
# The segmentation/coalescing offloads of a veth (software only). Off on
# both ends for the bulk scenario: the engine segments to the MSS itself,
# so a kernel baseline with 64 KiB GSO super-packets would compare unlike
# work per packet.
SEGMENTATION_FEATURES = ("tso", "gso", "gro")
_CMD_TIMEOUT = 20


def _run(cmd, check=True):
    """Runs a setup command (bounded); returns its output. Raises
    BenchError with the output when `check` and it fails."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=_CMD_TIMEOUT,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise procs.BenchError("%s: %s" % (" ".join(cmd), e))
    out = p.stdout.decode(errors="replace")
    if check and p.returncode != 0:
        raise procs.BenchError("%s failed (status %d): %s"
                               % (" ".join(cmd), p.returncode, out.strip()))
    return out


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno != errno.ESRCH
    return True


def remove_orphans(prefix=PREFIX):
    """Deletes namespaces <prefix><pid>{a,b} whose bench process is gone.
    Returns the names removed."""
    removed = []
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return removed
    for name in sorted(names):
        digits = name[len(prefix):-1]
        if (not name.startswith(prefix) or name[-1:] not in ("a", "b") or
                not digits.isdigit()):
            continue
        if not _pid_alive(int(digits)):
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


class WireNet:
    """Owns the two namespaces and the veth between them.

    create() builds everything (or raises BenchError after undoing what it
    did); destroy() removes both namespaces (the veth goes with them) and
    may be called any number of times.
    """

    def __init__(self, commands, prefix=PREFIX):
        self.commands = commands  # receives every setup command line
        pid = os.getpid()
        self.ns_a = "%s%da" % (prefix, pid)
        self.ns_b = "%s%db" % (prefix, pid)
        self.ip_a = IP_A
        self.ip_b = IP_B
        self.prefix = prefix
        self.created = False

    def _cmd(self, cmd, check=True):
        self.commands.append(" ".join(cmd))
        return _run(cmd, check)

    def create(self):
        if os.geteuid() != 0:
            raise procs.BenchError("--wire needs root (network namespaces, "
                                   "veth, XDP); run it with sudo")
        removed = remove_orphans(self.prefix)
        for ns in (self.ns_a, self.ns_b):  # same pid, earlier crash
            if os.path.exists("/run/netns/" + ns):
                self._cmd(["ip", "netns", "del", ns], check=False)
                removed.append(ns)
        self.stale_removed = removed
        self.created = True
        try:
            a, b = self.ns_a, self.ns_b
            for cmd in (
                    ["ip", "netns", "add", a],
                    ["ip", "netns", "add", b],
                    ["ip", "-n", a, "link", "add", "va", "type", "veth",
                     "peer", "name", "vb", "netns", b],
                    ["ip", "-n", a, "addr", "add", self.ip_a + "/24", "dev",
                     "va"],
                    ["ip", "-n", b, "addr", "add", self.ip_b + "/24", "dev",
                     "vb"],
                    ["ip", "-n", a, "link", "set", "lo", "up"],
                    ["ip", "-n", b, "link", "set", "lo", "up"],
                    ["ip", "-n", a, "link", "set", "va", "up"],
                    ["ip", "-n", b, "link", "set", "vb", "up"],
                    self.in_b(["ethtool", "-K", "vb", "tx", "off"])):
                self._cmd(cmd)
        except procs.BenchError:
            self.destroy()
            raise

    def destroy(self):
        if not self.created:
            return
        for ns in (self.ns_a, self.ns_b):
            if os.path.exists("/run/netns/" + ns):
                self._cmd(["ip", "netns", "del", ns], check=False)
        self.created = False

    def in_a(self, cmd):
        return ["ip", "netns", "exec", self.ns_a] + list(cmd)

    def in_b(self, cmd):
        return ["ip", "netns", "exec", self.ns_b] + list(cmd)

    def set_segmentation(self, on):
        """Turns TSO, GSO and GRO on or off on both va and vb."""
        state = "on" if on else "off"
        args = []
        for f in SEGMENTATION_FEATURES:
            args += [f, state]
        self._cmd(self.in_a(["ethtool", "-K", "va"] + args))
        self._cmd(self.in_b(["ethtool", "-K", "vb"] + args))

    def segmentation_state(self):
        """{'va': {'tso': 'on', ...}, 'vb': {...}} as ethtool -k reports."""
        names = {"tso": "tcp-segmentation-offload",
                 "gso": "generic-segmentation-offload",
                 "gro": "generic-receive-offload"}
        out = {}
        for dev, wrap in (("va", self.in_a), ("vb", self.in_b)):
            text = self._cmd(wrap(["ethtool", "-k", dev]))
            state = {}
            for line in text.splitlines():
                key, _, value = line.strip().partition(": ")
                for short, long_name in names.items():
                    if key == long_name:
                        state[short] = value.split()[0] if value else "?"
            out[dev] = state
        return out

    def restore_segmentation(self, state):
        """Sets the features back to a segmentation_state() snapshot."""
        for dev, wrap in (("va", self.in_a), ("vb", self.in_b)):
            args = []
            for feature, value in sorted(state.get(dev, {}).items()):
                if value in ("on", "off"):
                    args += [feature, value]
            if args:
                self._cmd(wrap(["ethtool", "-K", dev] + args), check=False)
