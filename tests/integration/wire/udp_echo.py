#!/usr/bin/env python3
"""UDP echo peer for udp_wire_test.sh (runs plain or under `offload`).

server: binds --bind (port 0 unless --port), writes the port to --port-file,
        echoes every datagram back to its source until --count datagrams
        (or --idle seconds without one), then prints "served N".
sink:   binds like server, writes the port file, waits (up to --idle s)
        for --go-file, then reads every datagram already queued without
        blocking, prints "drained N", and waits for --stop-file (so its
        statistics can be read while it still exists).
client: sends --count datagrams of varied sizes (--sizes, comma list,
        cycled; each payload encodes its index) to --dst, waits for each
        echo (1 s per try, 3 tries), checks payload and that recvfrom
        reports --dst as the source; with --connect it uses connect() +
        send()/recv(). With --also HOST:PORT it first exchanges one datagram
        with that second echo server from the same socket. Prints
        "ok N" or "FAIL ..." and exits non-zero on failure.
"""
import argparse
import socket
import struct
import sys
import time


def payload(i, size):
    head = struct.pack("!I", i)
    body = bytes((i + k) & 0xFF for k in range(max(0, size - 4)))
    return (head + body)[:size] if size >= 4 else head[:size]


def exchange(sock, data, dst, connected):
    for _ in range(3):
        if connected:
            sock.send(data)
        else:
            sock.sendto(data, dst)
        try:
            if connected:
                got, src = sock.recv(70000), dst
            else:
                got, src = sock.recvfrom(70000)
        except socket.timeout:
            continue
        return got, src
    return None, None


def server(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.bind, args.port))
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    s.settimeout(args.idle)
    n = 0
    while args.count == 0 or n < args.count:
        try:
            data, src = s.recvfrom(70000)
        except socket.timeout:
            break
        s.sendto(data, src)
        n += 1
    print("served %d" % n, flush=True)
    return 0


def wait_for(path, secs):
    import os
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.05)  # poll interval
    return False


def sink(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.bind, args.port))
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    if not wait_for(args.go_file, args.idle):
        print("FAIL no go file")
        return 1
    s.setblocking(False)
    n = 0
    while True:
        try:
            s.recvfrom(70000)
        except BlockingIOError:
            break
        n += 1
    print("drained %d" % n, flush=True)
    wait_for(args.stop_file, args.idle)
    return 0


def client(args):
    host, port = args.dst.rsplit(":", 1)
    dst = (host, int(port))
    sizes = [int(x) for x in args.sizes.split(",")]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    if args.bind:
        s.bind((args.bind, 0))
    if args.also:
        ahost, aport = args.also.rsplit(":", 1)
        adst = (ahost, int(aport))
        got, src = exchange(s, b"side-channel", adst, False)
        if got != b"side-channel" or src != adst:
            print("FAIL side channel to %s: got %r from %r" % (args.also, got, src))
            return 1
    if args.connect:
        s.connect(dst)
    for i in range(args.count):
        data = payload(i, sizes[i % len(sizes)])
        got, src = exchange(s, data, dst, args.connect)
        if got is None:
            print("FAIL no echo for datagram %d (%d bytes)" % (i, len(data)))
            return 1
        if got != data:
            print("FAIL datagram %d: sent %d bytes, echo %d bytes differs" % (i, len(data), len(got)))
            return 1
        if src != dst:
            print("FAIL datagram %d: source %r, expected %r" % (i, src, dst))
            return 1
    print("ok %d" % args.count, flush=True)
    # Keep the socket open a moment: the test samples `offloadctl stats`
    # every 0.1 s to see its row on the engine, and a run of small echoes
    # can otherwise end between two samples.
    time.sleep(0.5)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client", "sink"])
    p.add_argument("--go-file", default="")
    p.add_argument("--stop-file", default="")
    p.add_argument("--bind", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--idle", type=float, default=20.0)
    p.add_argument("--dst", default="")
    p.add_argument("--sizes", default="1,14,100,1000,1472")
    p.add_argument("--connect", action="store_true")
    p.add_argument("--also", default="")
    args = p.parse_args()
    return {"server": server, "client": client, "sink": sink}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
