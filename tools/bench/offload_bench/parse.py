"""Parsers for the output of the tools the benchmark drives.

Each parser takes the tool's text output and returns a dict of numbers, or
raises ParseError with a message that says what was missing. Pure functions:
they are unit-tested against recorded outputs in tests/tools.
"""

import csv
import io
import re


class ParseError(Exception):
    """The output did not have the expected shape or reported an error."""


_FLOAT = r"([0-9]+(?:\.[0-9]+)?)"


def _strip_ansi(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def sockperf_full_log(text):
    """Latencies (usec, ascending) from a sockperf --full-log file.

    The file holds sockperf's summary, then a CSV header
    'packet, txTime(sec), rxTime(sec), latency(usec)' and one row per
    observation. sockperf's latency is half the round trip.
    """
    lat = []
    in_rows = False
    for line in text.splitlines():
        if not in_rows:
            if line.startswith("packet,") and "latency" in line:
                in_rows = True
            continue
        parts = line.split(",")
        if len(parts) != 4:
            continue  # the trailing '-----' line
        try:
            lat.append(float(parts[3]))
        except ValueError:
            raise ParseError("bad latency value in full log: %r" % line)
    if not in_rows:
        raise ParseError("no observation table in the sockperf full log")
    if not lat:
        raise ParseError("sockperf full log has zero observations")
    lat.sort()
    return lat


def sockperf_latency_summary(text):
    """Checks a ping-pong / under-load client output; returns its summary.

    Returns {'observations', 'avg_usec', 'dropped', 'duplicated',
    'out_of_order'}. Raises ParseError if sockperf printed an error or no
    observations.
    """
    t = _strip_ansi(text)
    _check_sockperf_errors(t)
    obs = re.findall(r"Total ([0-9]+) observations", t)
    if not obs:
        runs = re.findall(r"SentMessages=([0-9]+); ReceivedMessages=([0-9]+)",
                          t)
        detail = (" (sent %s, received %s replies)" % runs[-1]) if runs else ""
        if "No valid observations" in t:
            raise ParseError("sockperf found no valid observations" + detail)
        raise ParseError("sockperf printed no 'Total N observations' line" +
                         detail)
    n = int(obs[-1])
    if n <= 0:
        raise ParseError("sockperf made 0 observations")
    avg = re.findall(r"avg-latency=" + _FLOAT, t)
    m = re.findall(r"# dropped messages = ([0-9]+); # duplicated messages = "
                   r"([0-9]+); # out-of-order messages = ([0-9]+)", t)
    if not avg or not m:
        raise ParseError("sockperf summary lacks avg-latency or drop counts")
    d, dup, ooo = (int(x) for x in m[-1])
    return {"observations": n, "avg_usec": float(avg[-1]), "dropped": d,
            "duplicated": dup, "out_of_order": ooo}


def sockperf_throughput(text):
    """{'msg_per_s', 'mbyte_per_s'} from a sockperf throughput client."""
    t = _strip_ansi(text)
    _check_sockperf_errors(t)
    rate = re.findall(r"Message Rate is ([0-9]+) \[msg/sec\]", t)
    bw = re.findall(r"BandWidth is " + _FLOAT + r" MBps", t)
    if not rate or not bw:
        raise ParseError("sockperf printed no 'Message Rate' / 'BandWidth'")
    r = int(rate[-1])
    if r <= 0:
        raise ParseError("sockperf message rate is 0")
    return {"msg_per_s": float(r), "mbyte_per_s": float(bw[-1])}


def sockperf_server_received(text):
    """Messages a sockperf server received, from the summary it prints when
    stopped with SIGINT ('Total N messages received and handled')."""
    t = _strip_ansi(text)
    m = re.findall(r"Total ([0-9]+) messages received", t)
    if not m:
        raise ParseError("sockperf server printed no 'Total N messages "
                         "received' line (was it stopped with SIGINT?)")
    return int(m[-1])


def _check_sockperf_errors(t):
    for line in t.splitlines():
        low = line.lower()
        if "error" in low and "errors=0" not in low:
            raise ParseError("sockperf reported: " + line.strip())


def connrate(text):
    """{'conn_per_s', 'connections'} from offload-connrate client output."""
    m = re.search(r"connrate: connections=([0-9]+) seconds=" + _FLOAT +
                  r" conn_per_s=" + _FLOAT, text)
    if not m:
        raise ParseError("offload-connrate printed no result line")
    n = int(m.group(1))
    if n <= 0:
        raise ParseError("offload-connrate completed 0 connections")
    return {"connections": n, "conn_per_s": float(m.group(3))}


def hold(text, conns):
    """The key=value fields of offload-hold's client line, as floats; the
    line must say every one of `conns` idle connections echoed its byte."""
    m = re.search(r"^hold: (.*)$", text, re.M)
    if not m:
        raise ParseError("offload-hold printed no result line")
    fields = {}
    for kv in m.group(1).split():
        key, _, value = kv.partition("=")
        try:
            fields[key] = float(value)
        except ValueError:
            raise ParseError("offload-hold: bad field %r" % kv)
    for key in ("conns", "connect_s", "p50_us", "p99_us", "fds_per_conn",
                "pss_kib_per_conn", "watch_cpu_pct", "echoed"):
        if key not in fields:
            raise ParseError("offload-hold: no %s in %r" % (key, m.group(0)))
    if int(fields["conns"]) != conns or int(fields["echoed"]) != conns:
        raise ParseError("offload-hold held %d and echoed %d of %d connections"
                         % (fields["conns"], fields["echoed"], conns))
    return fields


def redis_benchmark_csv(text, tests):
    """{'<test>_rps', '<test>_p50_ms', '<test>_p99_ms'} from --csv output.

    `tests` lists the expected test names (e.g. ['SET', 'GET']); each must
    have a row with a positive rate.
    """
    rows = {}
    body = "\n".join(l for l in text.splitlines() if l.startswith('"'))
    reader = csv.reader(io.StringIO(body))
    header = None
    for row in reader:
        if not row:
            continue
        if row[0] == "test":
            header = row
            continue
        rows[row[0]] = row
    out = {}
    for t in tests:
        row = rows.get(t)
        if row is None:
            raise ParseError("redis-benchmark printed no result for " + t)
        fields = dict(zip(header or [], row))
        try:
            rps = float(fields.get("rps", row[1]))
        except ValueError:
            raise ParseError("bad rps for %s: %r" % (t, row))
        if rps <= 0:
            raise ParseError("redis-benchmark %s rate is 0" % t)
        key = t.lower()
        out[key + "_rps"] = rps
        for src, dst in (("p50_latency_ms", "_p50_ms"),
                         ("p99_latency_ms", "_p99_ms")):
            if src in fields:
                out[key + dst] = float(fields[src])
    return out


def redis_info(text):
    """Flat dict of 'key' -> value from a Redis INFO reply."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k.strip()] = v.strip()
    return out


def redis_command_calls(info, command):
    """(calls, rejected, failed) of `command` from INFO commandstats."""
    v = info.get("cmdstat_" + command)
    if v is None:
        return 0, 0, 0
    fields = dict(kv.split("=", 1) for kv in v.split(",") if "=" in kv)
    return (int(fields.get("calls", 0)), int(fields.get("rejected_calls", 0)),
            int(fields.get("failed_calls", 0)))


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value, unit):
    return float(value) * _UNITS[unit]


def wrk(text):
    """{'req_per_s', 'requests', 'p50_ms', 'p99_ms'} from wrk --latency.

    Raises ParseError on socket errors or non-2xx/3xx responses.
    """
    m = re.search(r"Requests/sec:\s+" + _FLOAT, text)
    n = re.search(r"([0-9]+) requests in", text)
    if not m or not n:
        raise ParseError("wrk printed no 'Requests/sec' line")
    if "Socket errors" in text:
        line = [l for l in text.splitlines() if "Socket errors" in l][0]
        raise ParseError("wrk: " + line.strip())
    if "Non-2xx or 3xx responses" in text:
        line = [l for l in text.splitlines() if "Non-2xx" in l][0]
        raise ParseError("wrk: " + line.strip())
    out = {"req_per_s": float(m.group(1)), "requests": int(n.group(1))}
    if out["requests"] <= 0:
        raise ParseError("wrk completed 0 requests")
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        p = re.search(r"^\s+" + pct + r"%\s+" + _FLOAT + r"(us|ms|s|m)\b",
                      text, re.M)
        if p:
            out[key] = _ms(p.group(1), p.group(2))
    return out


_TTCP_RESULT = re.compile(
    r"ttcp-result role=([tr]) bytes=([0-9]+) seconds=" + _FLOAT +
    r" mbit_per_s=" + _FLOAT + r" calls=([0-9]+) buflen=([0-9]+) "
    r"sockbuf=([0-9]+) effective_sockbuf=(-?[0-9]+)")


def ttcp(text, role):
    """{'bytes', 'seconds', 'mbit_per_s', 'calls', 'buflen', 'sockbuf',
    'effective_sockbuf'} from the 'ttcp-result' line of `role` ('t' or
    'r')."""
    for m in _TTCP_RESULT.finditer(text):
        if m.group(1) != role:
            continue
        out = {"bytes": int(m.group(2)), "seconds": float(m.group(3)),
               "mbit_per_s": float(m.group(4)), "calls": int(m.group(5)),
               "buflen": int(m.group(6)), "sockbuf": int(m.group(7)),
               "effective_sockbuf": int(m.group(8))}
        if out["bytes"] <= 0 or out["mbit_per_s"] <= 0:
            raise ParseError("ttcp-%s moved no data: %s" % (role, m.group(0)))
        return out
    raise ParseError("ttcp printed no 'ttcp-result role=%s' line" % role)
