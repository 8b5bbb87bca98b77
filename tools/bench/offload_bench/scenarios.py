"""The benchmark scenarios, in report order. See base.py for the scenario
contract, sockperf.py, apps.py and ttcp_sweep.py for the scenarios
themselves."""

from offload_bench import sides
from offload_bench.apps import ConnectionRate, Nginx, Redis  # noqa: F401
from offload_bench.base import Context, Metric  # noqa: F401
from offload_bench.scale import IdleScale  # noqa: F401
from offload_bench.sockperf import (  # noqa: F401
    THROUGHPUT_SIZES, SockperfLatency, SockperfThroughput)
from offload_bench.ttcp_sweep import TtcpSweep  # noqa: F401


def all_scenarios():
    return [SockperfLatency("tcp", False), SockperfLatency("udp", False),
            SockperfLatency("tcp", False, split=True),
            SockperfLatency("udp", False, split=True),
            SockperfThroughput("tcp"), SockperfThroughput("udp"),
            SockperfLatency("tcp", True), SockperfLatency("udp", True),
            SockperfLatency("tcp", True, split=True),
            SockperfLatency("udp", True, split=True),
            ConnectionRate(), IdleScale(), Redis(), Nginx(), TtcpSweep()]


def bypass_seen(result):
    """True if a sample's process outputs show the OFFLOAD_DEBUG line."""
    return sides.bypass_seen(*result.get("_outputs", []))
