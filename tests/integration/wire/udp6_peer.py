#!/usr/bin/env python3
"""UDP peer of either family for udp6_wire_test.sh (plain or under `offload`).

Every receive is libc's recvfrom() through ctypes (the interposed one under
`offload`), so the source address is checked as the application sees it:
family, msg_name length (sizeof(sockaddr_in6) = 28 for an AF_INET6 socket,
16 for AF_INET), sin6_flowinfo and sin6_scope_id (0 for a global peer).

server: binds --bind (AF_INET6 when it has a ':'; --v6only sets
        IPV6_V6ONLY to 1, else 0) on --port, writes "listening" to stdout,
        echoes every datagram to its source until --count datagrams or
        --idle seconds without one; prints one "src ADDR namelen N flow F
        scope S" line per new source, then "served N".
two:    one process, an AF_INET socket on 0.0.0.0 and a v6-only AF_INET6
        socket on :: of --port (with --dual: a dual-stack one, both with
        SO_REUSEADDR), both echoing; prints "listening", then
        "v4 from ADDR" / "v6 from ADDR" per new source, "served N" after
        --count datagrams.
client: sends --count datagrams of the cycled --sizes (each payload
        encodes its index) to every --dst HOST (port --port) in turn from
        one socket (AF_INET6 unless --v4), waits for each echo (--wait s,
        3 tries), checks payload, source, name length, flowinfo and scope;
        prints "ok N" or "FAIL ..." and exits non-zero on failure; with
        --hold FILE it then waits (up to 30 s) for FILE before closing.
"""
import argparse
import ctypes
import os
import select
import socket
import struct
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)


def payload(i, size):
    head = struct.pack("!I", i)
    body = bytes((i * 7 + k) & 0xFF for k in range(max(0, size - 4)))
    return (head + body)[:size]


def recv_from(sock, cap=70000):
    """libc recvfrom: (data, host, port, namelen, flowinfo, scope)."""
    buf = ctypes.create_string_buffer(cap)
    name = ctypes.create_string_buffer(128)
    namelen = ctypes.c_uint32(128)
    n = libc.recvfrom(sock.fileno(), buf, cap, 0, name, ctypes.byref(namelen))
    if n < 0:
        return None
    raw = name.raw[: namelen.value]
    fam = struct.unpack_from("=H", raw, 0)[0]
    port = struct.unpack_from("!H", raw, 2)[0]
    if fam == socket.AF_INET6:
        flow = struct.unpack_from("!I", raw, 4)[0]
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        scope = struct.unpack_from("=I", raw, 24)[0]
    else:
        flow = scope = 0
        host = socket.inet_ntop(socket.AF_INET, raw[4:8])
    return buf.raw[:n], host, port, namelen.value, flow, scope


def set_timeout(sock, seconds):
    # Blocking socket with SO_RCVTIMEO: libc's recvfrom waits at most that.
    tv = struct.pack("ll", int(seconds), int((seconds % 1) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)


def server(a):
    fam = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if a.v6only else 0)
    s.bind((a.bind, a.port))
    set_timeout(s, a.idle)
    print("listening", flush=True)
    n, seen = 0, set()
    while a.count == 0 or n < a.count:
        got = recv_from(s)
        if got is None:
            break
        data, host, port, namelen, flow, scope = got
        if host not in seen:
            seen.add(host)
            print(f"src {host} namelen {namelen} flow {flow} scope {scope}", flush=True)
        s.sendto(data, (host, port))
        n += 1
    print(f"served {n}", flush=True)


def two(a):
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if a.dual else 1)
    if a.dual:
        for s in (s4, s6):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The dual-stack socket first: Linux still gives IPv4 to the AF_INET one.
    for s, host in ((s6, "::"), (s4, "0.0.0.0")) if a.dual else ((s4, "0.0.0.0"), (s6, "::")):
        s.bind((host, a.port))
    print("listening", flush=True)
    n, seen = 0, set()
    deadline = time.monotonic() + a.idle
    while n < a.count and time.monotonic() < deadline:
        r, _, _ = select.select([s4, s6], [], [], 1)
        for s in r:
            got = recv_from(s)
            if got is None:
                continue
            data, host, port = got[:3]
            tag = "v4" if s is s4 else "v6"
            if (tag, host) not in seen:
                seen.add((tag, host))
                print(f"{tag} from {host} namelen {got[3]}", flush=True)
            s.sendto(data, (host, port))
            n += 1
    print(f"served {n}", flush=True)


def client(a):
    fam = socket.AF_INET if a.v4 else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_DGRAM)
    set_timeout(s, a.wait)
    sizes = [int(x) for x in a.sizes.split(",")]
    want_len = 16 if a.v4 else 28
    total = 0
    for dst in a.dst:
        want_host = socket.inet_ntop(fam, socket.inet_pton(fam, dst))
        for i in range(a.count):
            data = payload(i, sizes[i % len(sizes)])
            got = None
            for _ in range(3):
                s.sendto(data, (dst, a.port))
                got = recv_from(s)
                if got is not None:
                    break
            if got is None:
                print(f"FAIL no echo of #{i} ({len(data)} B) from {dst}", flush=True)
                return 1
            echo, host, port, namelen, flow, scope = got
            if echo != data:
                print(f"FAIL echo #{i} from {dst} differs ({len(echo)} B)", flush=True)
                return 1
            if (host, port, namelen, flow, scope) != (want_host, a.port, want_len, 0, 0):
                print(f"FAIL source {host} {port} namelen {namelen} flow {flow} scope {scope}"
                      f" (want {want_host} {a.port} {want_len} 0 0)", flush=True)
                return 1
            total += 1
    print(f"ok {total} name {s.getsockname()[0]}", flush=True)
    if a.hold:
        for _ in range(300):  # 30 s bound
            if os.path.exists(a.hold):
                break
            time.sleep(0.1)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "two", "client"])
    p.add_argument("--bind", default="::")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--idle", type=float, default=20)
    p.add_argument("--v6only", action="store_true")
    p.add_argument("--dual", action="store_true")
    p.add_argument("--v4", action="store_true")
    p.add_argument("--dst", action="append", default=[])
    p.add_argument("--sizes", default="1,64,512,1000,1452")
    p.add_argument("--wait", type=float, default=1)
    p.add_argument("--hold")
    a = p.parse_args()
    if a.mode == "server":
        server(a)
        return 0
    if a.mode == "two":
        two(a)
        return 0
    return client(a)


if __name__ == "__main__":
    sys.exit(main())
