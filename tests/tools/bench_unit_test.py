"""Unit tests of offload-bench's parsers, statistics and argument checks,
against outputs recorded from sockperf 3.7, redis-benchmark 7.0, wrk 4.1,
offload-connrate and ttcp, and of the ttcp sweep's report."""

import os
import shutil
import sys
import tempfile
import unittest

from offload_bench import options
from offload_bench import parse
from offload_bench import report
from offload_bench import scenarios
from offload_bench import sides
from offload_bench import stats
from offload_bench import ttcp_sweep

SOCKPERF_PINGPONG = """\
sockperf: == version #3.7-no.git ==
sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)

[ 0] IP = 127.0.0.1       PORT = 11111 # TCP
sockperf: Warmup stage (sending a few dummy messages)...
sockperf: Starting test...
sockperf: Test end (interrupted by timer)
sockperf: Test ended
sockperf: [Total Run] RunTime=1.000 sec; Warm up time=400 msec; SentMessages=49450; ReceivedMessages=49449
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=0.552 sec; SentMessages=29289; ReceivedMessages=29289
sockperf: \x1b[2;35m====> avg-latency=9.405 (std-dev=63.021)\x1b[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Latency is 9.405 usec
sockperf: \x1b[2;35mTotal 29289 observations\x1b[0m; each percentile contains 292.89 observations
sockperf: ---> <MAX> observation = 2571.248
sockperf: ---> percentile 50.000 =    6.795
sockperf: ---> <MIN> observation =    6.679
"""

FULL_LOG = SOCKPERF_PINGPONG + """\
------------------------------
packet, txTime(sec), rxTime(sec), latency(usec)
0, 2.424246366, 2.424259906, 6.770
1, 2.424259926, 2.424273507, 9.000
2, 2.424273527, 2.424287688, 7.080
3, 2.424287718, 2.424301278, 1000.5
------------------------------
"""

SOCKPERF_THROUGHPUT = """\
sockperf: Total of 473137 messages sent in 1.000 sec

sockperf: \x1b[2;35mNOTE: test was performed, using msg-size=1024.\x1b[0m
sockperf: Summary: Message Rate is 472911 [msg/sec]
sockperf: Summary: BandWidth is 461.827 MBps (3694.617 Mbps)
"""

SOCKPERF_ERROR = """\
sockperf: Starting test...
IP = 127.0.0.1       PORT = 45819 # TCP sockperf: ERROR: A connection was forcibly closed by a peer (errno=0 Success)
"""

REDIS_CSV = """\
"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","40816.33","0.157","0.040","0.135","0.295","0.543","2.647"
"GET","42553.19","0.145","0.032","0.127","0.223","0.607","4.583"
"""

REDIS_INFO = """\
# Commandstats\r
cmdstat_config|get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r
cmdstat_get:calls=2000,usec=260,usec_per_call=0.13,rejected_calls=0,failed_calls=0\r
cmdstat_set:calls=2000,usec=435,usec_per_call=0.22,rejected_calls=1,failed_calls=3\r
"""

WRK = """\
Running 1s test @ http://127.0.0.1:8080/small.html
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    98.12us   20.40us   1.20ms   90.00%
    Req/Sec    40.90k     1.20k   42.00k    80.00%
  Latency Distribution
     50%   96.00us
     75%  105.00us
     90%  120.00us
     99%    1.57ms
  40904 requests in 1.00s, 50.00MB read
Requests/sec:  40904.12
Transfer/sec:     50.00MB
"""


TTCP_T = """\
ttcp-t: buflen=1024, nbuf=4096, port=40001, sockbuf=8192  tcp  -> 127.0.0.1
ttcp-t: 4194304 bytes in 0.012500 real seconds = 327680.00 KB/sec = 2684.35 Mbit/s +++
ttcp-t: 4096 I/O calls, msec/call = 0.0031, calls/sec = 327680.00
ttcp-result role=t bytes=4194304 seconds=0.012500 mbit_per_s=2684.355 calls=4096 buflen=1024 sockbuf=8192 effective_sockbuf=16384
"""


class ParseTest(unittest.TestCase):

    def test_ttcp_result(self):
        t = parse.ttcp(TTCP_T, "t")
        self.assertEqual(t["bytes"], 4194304)
        self.assertAlmostEqual(t["mbit_per_s"], 2684.355)
        self.assertEqual((t["calls"], t["buflen"], t["sockbuf"],
                          t["effective_sockbuf"]), (4096, 1024, 8192, 16384))
        with self.assertRaisesRegex(parse.ParseError, "role=r"):
            parse.ttcp(TTCP_T, "r")
        with self.assertRaisesRegex(parse.ParseError, "moved no data"):
            parse.ttcp(TTCP_T.replace("bytes=4194304", "bytes=0"), "t")

    def test_full_log_latencies_sorted(self):
        self.assertEqual(parse.sockperf_full_log(FULL_LOG),
                         [6.77, 7.08, 9.0, 1000.5])

    def test_full_log_without_rows_fails(self):
        with self.assertRaisesRegex(parse.ParseError, "no observation table"):
            parse.sockperf_full_log(SOCKPERF_PINGPONG)
        with self.assertRaisesRegex(parse.ParseError, "zero observations"):
            parse.sockperf_full_log(
                "packet, txTime(sec), rxTime(sec), latency(usec)\n")

    def test_latency_summary(self):
        s = parse.sockperf_latency_summary(SOCKPERF_PINGPONG)
        self.assertEqual(s["observations"], 29289)
        self.assertEqual(s["dropped"], 0)
        self.assertAlmostEqual(s["avg_usec"], 9.405)

    def test_latency_summary_rejects_errors_and_empty(self):
        with self.assertRaisesRegex(parse.ParseError, "forcibly closed"):
            parse.sockperf_latency_summary(SOCKPERF_PINGPONG + SOCKPERF_ERROR)
        with self.assertRaisesRegex(parse.ParseError, "0 observations"):
            parse.sockperf_latency_summary(
                SOCKPERF_PINGPONG.replace("Total 29289", "Total 0"))

    def test_no_valid_observations_names_counts(self):
        text = ("sockperf: [Total Run] RunTime=1.004 sec; Warm up time=400 "
                "msec; SentMessages=1998; ReceivedMessages=19\n"
                "sockperf: No valid observations found. Try tune parameters\n")
        with self.assertRaisesRegex(parse.ParseError,
                                    r"no valid observations \(sent 1998, "
                                    r"received 19 replies\)"):
            parse.sockperf_latency_summary(text)

    def test_throughput(self):
        t = parse.sockperf_throughput(SOCKPERF_THROUGHPUT)
        self.assertEqual(t["msg_per_s"], 472911.0)
        self.assertAlmostEqual(t["mbyte_per_s"], 461.827)
        with self.assertRaises(parse.ParseError):
            parse.sockperf_throughput(SOCKPERF_ERROR)
        with self.assertRaisesRegex(parse.ParseError, "rate is 0"):
            parse.sockperf_throughput(
                SOCKPERF_THROUGHPUT.replace("472911", "0"))

    def test_server_received(self):
        text = ("sockperf: Test end (interrupted by user)\n"
                "sockperf: Total 106113 messages received and handled\n")
        self.assertEqual(parse.sockperf_server_received(text), 106113)
        with self.assertRaisesRegex(parse.ParseError, "SIGINT"):
            parse.sockperf_server_received("sockperf: [SERVER] listen on:\n")

    def test_connrate(self):
        r = parse.connrate("connrate: connections=2000 seconds=0.085 "
                           "conn_per_s=23529.4\n")
        self.assertEqual(r["connections"], 2000)
        self.assertAlmostEqual(r["conn_per_s"], 23529.4)
        with self.assertRaises(parse.ParseError):
            parse.connrate("offload-connrate: cycle 1: connect: refused\n")

    def test_redis_csv(self):
        r = parse.redis_benchmark_csv(REDIS_CSV, ["SET", "GET"])
        self.assertAlmostEqual(r["set_rps"], 40816.33)
        self.assertAlmostEqual(r["get_p99_ms"], 0.607)
        with self.assertRaisesRegex(parse.ParseError, "no result for INCR"):
            parse.redis_benchmark_csv(REDIS_CSV, ["INCR"])

    def test_redis_info_counts_failures(self):
        info = parse.redis_info(REDIS_INFO)
        self.assertEqual(parse.redis_command_calls(info, "get"), (2000, 0, 0))
        self.assertEqual(parse.redis_command_calls(info, "set"), (2000, 1, 3))
        self.assertEqual(parse.redis_command_calls(info, "del"), (0, 0, 0))

    def test_wrk(self):
        w = parse.wrk(WRK)
        self.assertEqual(w["requests"], 40904)
        self.assertAlmostEqual(w["req_per_s"], 40904.12)
        self.assertAlmostEqual(w["p50_ms"], 0.096)
        self.assertAlmostEqual(w["p99_ms"], 1.57)

    def test_wrk_errors_fail(self):
        with self.assertRaisesRegex(parse.ParseError, "Socket errors"):
            parse.wrk(WRK + "  Socket errors: connect 0, read 3, write 0, "
                      "timeout 0\n")
        with self.assertRaisesRegex(parse.ParseError, "Non-2xx"):
            parse.wrk(WRK + "  Non-2xx or 3xx responses: 12\n")


class StatsTest(unittest.TestCase):

    def test_percentile_nearest_rank(self):
        v = list(range(1, 101))
        self.assertEqual(stats.percentile(v, 50), 50)
        self.assertEqual(stats.percentile(v, 99), 99)
        self.assertEqual(stats.percentile(v, 99.9), 100)
        self.assertEqual(stats.percentile(v, 0), 1)
        self.assertIsNone(stats.percentile([], 50))

    def test_median_spread_ratio(self):
        self.assertEqual(stats.median([3, 1, 2]), 2)
        self.assertEqual(stats.median([4, 1, 2, 3]), 2.5)
        lo, hi, rel = stats.spread([9, 10, 11])
        self.assertEqual((lo, hi), (9, 11))
        self.assertAlmostEqual(rel, 20.0)
        self.assertAlmostEqual(stats.ratio(5, 10), 0.5)
        self.assertIsNone(stats.ratio(5, None))
        self.assertIsNone(stats.ratio(None, 10))


class ReportTest(unittest.TestCase):

    def test_summary_direction_of_better(self):
        lat = scenarios.SockperfLatency("tcp", False)
        conn = scenarios.ConnectionRate()
        samples = []
        for side, p50, rate in (("kernel", 10.0, 100.0),
                                ("offload", 5.0, 50.0)):
            samples.append({"scenario": lat.name, "side": side, "ok": True,
                            "metrics": {"p50": p50, "p99": p50,
                                        "p99.9": p50}})
            samples.append({"scenario": conn.name, "side": side, "ok": True,
                            "metrics": {"conn_per_s": rate}})
        rows = report.summarize([lat, conn], samples)
        by_key = {(s.name, m.key): (r, v) for s, m, _, r, v in rows}
        self.assertEqual(by_key[(lat.name, "p50")], (0.5, "better"))
        self.assertEqual(by_key[(conn.name, "conn_per_s")], (0.5, "worse"))

    def test_failed_samples_do_not_count(self):
        conn = scenarios.ConnectionRate()
        samples = [{"scenario": conn.name, "side": "kernel", "ok": False,
                    "metrics": {"conn_per_s": 1.0}, "error": "x"}]
        rows = report.summarize([conn], samples)
        self.assertEqual(rows[0][2]["kernel"][4], 0)


class TtcpSweepTest(unittest.TestCase):

    def sample(self, side, rep, values):
        """A sample where every point has values[api] Mbit/s."""
        sweep = ttcp_sweep.TtcpSweep()
        return {"scenario": sweep.name, "side": side, "rep": rep, "ok": True,
                "metrics": {ttcp_sweep.key(api, q, s): values[api]
                            for q in ttcp_sweep.QUEUES
                            for s in ttcp_sweep.SIZES
                            for api in ttcp_sweep.APIS}}

    def test_counts_are_bounded(self):
        for s in ttcp_sweep.SIZES:
            for quick in (False, True):
                n = ttcp_sweep.probe_nbuf(s, quick)
                self.assertGreaterEqual(n, 1)
                self.assertLessEqual(n, ttcp_sweep.PROBE_CALLS)
                self.assertLessEqual(n * s, ttcp_sweep.PROBE_BYTES)
            for seconds in (1e-9, 0.001, 1.0, 1000.0):
                n = ttcp_sweep.scaled_nbuf(s, 1000, seconds)
                self.assertGreaterEqual(n, 1)
                self.assertLessEqual(n, ttcp_sweep.MAX_CALLS)
                self.assertLessEqual(n * s, ttcp_sweep.MAX_BYTES)
        # 1000 buffers in 0.1 s: 5000 take the target 0.5 s, but never fewer
        # than a tenth of the probe's count.
        self.assertEqual(ttcp_sweep.scaled_nbuf(1, 1000, 0.1),
                         ttcp_sweep.PROBE_CALLS // 10)
        self.assertEqual(ttcp_sweep.scaled_nbuf(1, 10 ** 6, 0.1), 5 * 10 ** 6)
        self.assertEqual(ttcp_sweep.scaled_nbuf(128 << 10, 10 ** 6, 0.001),
                         ttcp_sweep.MAX_BYTES // (128 << 10))
        self.assertEqual(len(ttcp_sweep.SIZES), 18)
        self.assertEqual(ttcp_sweep.SIZES[-1], 128 << 10)

    def test_ratio_table_and_verdicts(self):
        sweep = ttcp_sweep.TtcpSweep()
        samples = [self.sample("kernel", r, {"c": 100.0, "cxx": v})
                   for r, v in enumerate((99.0, 101.0, 100.0))]
        samples += [self.sample("offload", r, {"c": 100.0, "cxx": 90.0})
                    for r in range(3)]
        # A failed sample never enters the medians.
        bad = self.sample("kernel", 3, {"c": 1.0, "cxx": 1000.0})
        bad["ok"] = False
        samples.append(bad)
        med = sweep.medians(samples)
        self.assertEqual(med[("kernel", "cxx", 8192, 1)][0], 100.0)
        self.assertEqual(med[("kernel", "cxx", 8192, 1)][2], 3)
        self.assertAlmostEqual(sweep.ratio(med, "offload", 65536, 4), 0.9)
        text = "\n".join(sweep.report_lines(samples))
        self.assertIn("| 1 B | 100 (±0%, n=3) | 100 (±2%, n=3) | 1.000 | "
                      "1.000 |", text)
        self.assertIn("| 0.900 (!) | 0.900 (!) |", text)
        self.assertIn("- kernel: C++/C (medians) within 3 % at 36 of 36 "
                      "points", text)
        self.assertIn("- offload: C++/C (paired) within 3 % at 0 of 36 "
                      "points", text)
        # Repetition 0 ran on a slow machine for both APIs and repetition 1
        # has an outlier: the ratio of medians mixes repetitions and reports
        # 0.8, the median of the per-repetition ratios does not.
        drift = [self.sample("kernel", r, v) for r, v in enumerate(
            ({"c": 50.0, "cxx": 50.0}, {"c": 100.0, "cxx": 80.0},
             {"c": 100.0, "cxx": 100.0}))]
        med = sweep.medians(drift)
        self.assertAlmostEqual(sweep.ratio(med, "kernel", 8192, 1), 0.8)
        self.assertEqual(sweep.paired_ratio(drift, "kernel", 8192, 1), 1.0)
        self.assertIn("median 0.900",
                      sweep.describe(samples[-2]["metrics"]))

    def test_plots(self):
        if shutil.which("gnuplot") is None:
            self.skipTest("no gnuplot")
        sweep = ttcp_sweep.TtcpSweep()
        samples = [self.sample("kernel", 0, {"c": 100.0, "cxx": 101.0}),
                   self.sample("offload", 0, {"c": 900.0, "cxx": 880.0})]
        with tempfile.TemporaryDirectory() as d:
            plots, notes = sweep.plots(d, samples, report._gnuplot)
            self.assertEqual(notes, [])
            self.assertEqual([p for _, p in plots],
                             ["plots/ttcp-sweep-q8.png",
                              "plots/ttcp-sweep-q64.png",
                              "plots/ttcp-sweep-ratio.png"])
            for _, p in plots:
                self.assertGreater(os.path.getsize(
                    os.path.join(d, os.path.basename(p))), 0)
            with open(os.path.join(d, "ttcp-sweep-ratio.dat")) as f:
                lines = f.read().splitlines()
            self.assertEqual(lines[0], "# buffer_bytes kernel_8_KiB_queue "
                             "kernel_64_KiB_queue offload_8_KiB_queue "
                             "offload_64_KiB_queue")
            self.assertEqual(lines[1], "1 1.01 1.01 0.977778 0.977778")

    def test_not_in_the_main_table(self):
        sweep = ttcp_sweep.TtcpSweep()
        self.assertFalse(sweep.in_main_table)
        self.assertEqual(len(sweep.metrics), 72)
        self.assertIn(sweep.name, [s.name for s in
                                   scenarios.all_scenarios()])


class ArgsTest(unittest.TestCase):

    def test_usage_errors_exit_2(self):
        for argv in (["--reps", "0"], ["--scenarios", "nope"],
                     ["--duration", "x"], ["--offload", "maybe"]):
            with self.assertRaises(SystemExit) as cm:
                stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
                try:
                    options.parse_args(argv)
                finally:
                    sys.stderr.close()
                    sys.stderr = stderr
            self.assertEqual(cm.exception.code, 2, argv)

    def test_offload_env(self):
        a = options.parse_args(["--offload-env", "OFFLOAD_RX_POLL=0",
                             "--offload-env", "VMA_X=a=b"])
        self.assertEqual(a.offload_env_map,
                         {"OFFLOAD_RX_POLL": "0", "VMA_X": "a=b"})
        for bad in ("foo", "=1", "A B=1"):
            with self.assertRaises(SystemExit):
                stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
                try:
                    options.parse_args(["--offload-env", bad])
                finally:
                    sys.stderr.close()
                    sys.stderr = stderr

    def test_quick_defaults(self):
        a = options.parse_args(["--quick"])
        self.assertEqual((a.reps, a.duration), (1, 2))
        a = options.parse_args(["--scenarios", "redis,nginx"])
        self.assertEqual([s.name for s in a.scenario_list], ["redis", "nginx"])
        self.assertEqual((a.reps, a.duration), (5, 5))


class FindBinaryTest(unittest.TestCase):

    def test_explicit_then_env_then_installed(self):
        with tempfile.TemporaryDirectory() as d:
            exe = os.path.join(d, "tool")
            with open(exe, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(exe, 0o755)
            path, _ = sides.find_binary(exe, "NO_SUCH_VAR_X", "no/such", None)
            self.assertEqual(path, exe)
            os.environ["OFFLOAD_BENCH_TEST_VAR"] = exe
            path, _ = sides.find_binary(None, "OFFLOAD_BENCH_TEST_VAR",
                                        "no/such", None)
            self.assertEqual(path, exe)
            del os.environ["OFFLOAD_BENCH_TEST_VAR"]
            path, tried = sides.find_binary(None, "NO_SUCH_VAR_X",
                                            "no/such/thing",
                                            "/no/such/installed")
            self.assertIsNone(path)
            self.assertIn("/no/such/installed", tried)

    def test_bypass_mark(self):
        self.assertTrue(sides.bypass_seen("x", "offload: enabled bypass on "
                                          "fd 5\n"))
        self.assertFalse(sides.bypass_seen("sockperf: Test ended"))


if __name__ == "__main__":
    unittest.main()
