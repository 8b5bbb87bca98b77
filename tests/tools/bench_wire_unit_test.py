"""Unit tests of offload-bench's --wire parts that need no root: the
offloadctl stats parser, the /proc/net address form, the engine check, the
report's engine table and the --wire option handling. Run by
bench_wire_test.sh before the root run."""

import io
import contextlib
import os
import socket
import unittest

from offload_bench import main
from offload_bench import options
from offload_bench import procs
from offload_bench import report
from offload_bench import wire
from offload_bench import wire_net
from offload_bench import wire_sides

# Recorded from `offloadctl stats` of an offloadd owning va.
STATS = """\
no processes attached
engine 0 (cpu 0): loops 43447 busy 84 sleeps 85 wakeups 1 rx 120 tx 118 flows 1
nic va queue 0: rx 130 pkts 9100 bytes, tx 125 pkts 8750 bytes, drops rx 0 tx 0, steered flows 1
nic va queue 1: rx 5 pkts 300 bytes, tx 2 pkts 120 bytes, drops rx 0 tx 0, steered flows 0
"""


def sample(scenario, side, **metrics):
    return {"scenario": scenario, "side": side, "rep": 0, "ok": True,
            "metrics": metrics, "error": None, "bypass": False}


class EngineStatsTest(unittest.TestCase):
    def test_sums_queues_and_engines(self):
        c = wire_sides.parse_engine_stats(STATS)
        self.assertEqual(c["nic_rx_pkts"], 135)
        self.assertEqual(c["nic_tx_pkts"], 127)
        self.assertEqual(c["nic_rx_bytes"], 9400)
        self.assertEqual(c["engine_rx_pkts"], 120)
        self.assertEqual(c["engine_tx_pkts"], 118)

    def test_no_nic_is_an_error(self):
        with self.assertRaisesRegex(procs.BenchError, "no NIC queue"):
            wire_sides.parse_engine_stats("no processes attached\n")


class ProcNetTest(unittest.TestCase):
    def test_address_form(self):
        if socket.htonl(1) == 1:
            self.skipTest("big-endian host")
        self.assertEqual(procs._proc_net_addr("127.0.0.1"), "0100007F")
        self.assertEqual(procs._proc_net_addr("198.18.9.2"), "020912C6")

    def test_listener_found_through_pid_table(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            self.assertTrue(procs._proc_net_has(port, "tcp", "127.0.0.1",
                                                os.getpid()))
            self.assertFalse(procs._proc_net_has(port, "tcp", "198.18.9.2",
                                                 os.getpid()))
        self.assertFalse(procs._proc_net_has(port, "tcp", "127.0.0.1",
                                             os.getpid()))


class EngineCheckTest(unittest.TestCase):
    def test_offload_without_packets_fails(self):
        scen = wire.wire_scenarios()
        samples = [sample("wire-pingpong-tcp", "kernel", nic_rx_pkts=0.0,
                          nic_tx_pkts=0.0),
                   sample("wire-pingpong-tcp", "offload", nic_rx_pkts=0.0,
                          nic_tx_pkts=0.0),
                   sample("wire-throughput-tcp", "offload",
                          nic_rx_pkts=9.0, nic_tx_pkts=7.0)]
        failed = main.engine_checks(scen, samples)
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["scenario"], "engine-check")
        self.assertIn("wire-pingpong-tcp", failed[0]["error"])
        self.assertFalse(failed[0]["ok"])

    def test_report_table(self):
        scen = wire.wire_scenarios()
        samples = [sample("wire-bulk-tcp", "kernel", nic_rx_pkts=0.0,
                          nic_tx_pkts=0.0, engine_rx_pkts=0.0,
                          engine_tx_pkts=0.0),
                   sample("wire-bulk-tcp", "offload", nic_rx_pkts=5000.0,
                          nic_tx_pkts=2500.0, engine_rx_pkts=5000.0,
                          engine_tx_pkts=2500.0)]
        text = "\n".join(report._engine_section(scen, samples))
        self.assertIn("| wire-bulk-tcp | kernel | 0 | 0 | 0 | 0 | no |", text)
        self.assertIn("| wire-bulk-tcp | offload | 5,000 | 2,500 | 5,000 | "
                      "2,500 | yes |", text)
        self.assertEqual(report._engine_section(scen, []), [])


class AcceptanceTest(unittest.TestCase):
    def rows(self, kernel, offload):
        out = []
        for s in wire.wire_scenarios():
            for m in s.metrics:
                ps = {"kernel": (kernel, kernel, kernel, 0.0, 1),
                      "offload": (offload, offload, offload, 0.0, 1)}
                out.append((s, m, ps, offload / kernel, ""))
        return out

    def test_verdicts_follow_the_bounds(self):
        # Every metric 0.5 of the kernel: latency met, throughput not; idle
        # CPU 0.5 % met.
        text = "\n".join(report._acceptance_section(self.rows(1.0, 0.5)))
        self.assertIn("| wire-pingpong-tcp p50 | offload/kernel <= 0.667 | "
                      "0.5 | met |", text)
        self.assertIn("| wire-throughput-tcp rx_msgs | offload/kernel >= 2 "
                      "| 0.5 | NOT met |", text)
        self.assertIn("| wire-idle-cpu idle_cpu | offload < 1 | 0.5 | met |",
                      text)
        text = "\n".join(report._acceptance_section(self.rows(1.0, 3.0)))
        self.assertIn("| 3 | NOT met |", text)  # p50 three times worse
        self.assertIn("| wire-throughput-tcp rx_msgs | offload/kernel >= 2 "
                      "| 3 | met |", text)

    def test_absent_without_wire_rows(self):
        self.assertEqual(report._acceptance_section([]), [])


class WireOptionsTest(unittest.TestCase):
    def test_wire_scenarios_selectable_loopback_ones_not(self):
        a = options.parse_args(["--wire", "--scenarios",
                             "wire-pingpong-tcp,wire-idle-cpu"])
        self.assertEqual([s.name for s in a.scenario_list],
                         ["wire-pingpong-tcp", "wire-idle-cpu"])
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit):
                options.parse_args(["--wire", "--scenarios", "redis"])
            with self.assertRaises(SystemExit):
                options.parse_args(["--scenarios", "wire-bulk-tcp"])

    def test_names_distinct_and_tools_known(self):
        names = [s.name for s in wire.wire_scenarios()]
        self.assertEqual(len(names), len(set(names)))
        for n in names:
            self.assertTrue(n.startswith("wire-"))

    def test_namespace_names_carry_the_pid(self):
        net = wire_net.WireNet([])
        self.assertEqual(net.ns_a, "obw%da" % os.getpid())
        self.assertEqual(net.in_b(["x"]), ["ip", "netns", "exec", net.ns_b,
                                           "x"])
        net.destroy()  # never created: nothing to do, nothing recorded
        self.assertEqual(net.commands, [])


if __name__ == "__main__":
    unittest.main()
