"""The benchmark scenarios, in report order. See base.py for the scenario
contract, sockperf.py and apps.py for the scenarios themselves."""

from offload_bench import sides
from offload_bench.apps import ConnectionRate, Nginx, Redis  # noqa: F401
from offload_bench.base import Context, Metric  # noqa: F401
from offload_bench.sockperf import (  # noqa: F401
    THROUGHPUT_SIZES, SockperfLatency, SockperfThroughput)


def all_scenarios():
    return [SockperfLatency("tcp", False), SockperfLatency("udp", False),
            SockperfThroughput("tcp"), SockperfThroughput("udp"),
            SockperfLatency("tcp", True), SockperfLatency("udp", True),
            ConnectionRate(), Redis(), Nginx()]


def bypass_seen(result):
    """True if a sample's process outputs show the OFFLOAD_DEBUG line."""
    return sides.bypass_seen(*result.get("_outputs", []))
