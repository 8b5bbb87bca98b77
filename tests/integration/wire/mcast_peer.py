#!/usr/bin/env python3
"""UDP multicast peer for udp_multicast_test.sh (runs plain or under `offload`).

recv: binds --bind:--port (SO_REUSEADDR; port 0 picks one), joins --group
      on --ifaddr (IP_ADD_MEMBERSHIP, ip_mreq), asks for each datagram's
      TTL (IP_RECVTTL), writes the port to --port-file and receives. Each
      payload is "<index>:<sender tag>". It prints "got N distinct D dups U
      ttl T1,T2.. src A:P" once --count datagrams arrived or --idle seconds
      passed without one. With --drop-after K it drops the membership after
      K datagrams (with --mc-all 0, IP_MULTICAST_ALL 0: only its own
      memberships count, as on the engine), keeps reading for --settle seconds (datagrams already
      queued, printed as "queued N"), then counts what still arrives for
      --after seconds ("after-drop N"). Finally it waits (up to --idle s)
      for --stop-file so its statistics can be read while it exists.
send: sends --count datagrams of --size bytes to --group:--port, one every
      --interval seconds, with IP_MULTICAST_TTL --ttl, IP_MULTICAST_LOOP
      --loop and IP_MULTICAST_IF --ifaddr when given (else the defaults);
      waits for --go-file first if given; prints "sent N". Then waits for
      --stop-file like recv.
"""
import argparse
import os
import socket
import struct
import sys
import time

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux <linux/in.h>
IP_TTL = getattr(socket, "IP_TTL", 2)
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)


def wait_for(path, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.05)  # poll interval
    return False


def write_port(path, port):
    with open(path + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(path + ".tmp", path)


def mreq(group, ifaddr):
    return socket.inet_aton(group) + socket.inet_aton(ifaddr or "0.0.0.0")


def recv_one(s, timeout):
    s.settimeout(timeout)
    try:
        data, anc, _, src = s.recvmsg(70000, socket.CMSG_SPACE(4))
    except socket.timeout:
        return None, None, None
    ttl = None
    for level, kind, val in anc:
        if level == socket.IPPROTO_IP and kind == IP_TTL:
            ttl = struct.unpack("i", val[:4])[0]
    return data, src, ttl


def recv(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.bind, args.port))
    if args.mc_all >= 0:
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, args.mc_all)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(args.group, args.ifaddr))
    if args.recv_ttl:
        # Kernel receivers only: the option asks for a control message the
        # offload path does not carry, so it sends an offloaded socket back
        # to the kernel (client/README.md).
        s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    write_port(args.port_file, s.getsockname()[1])
    seen = set()
    dups = 0
    ttls = set()
    srcs = set()
    n = 0
    while args.count == 0 or n < args.count:
        data, src, ttl = recv_one(s, args.idle)
        if data is None:
            break
        n += 1
        key = data.split(b":", 1)[0]
        if key in seen:
            dups += 1
        seen.add(key)
        if ttl is not None:
            ttls.add(ttl)
        srcs.add("%s:%d" % src)
        if args.drop_after and n == args.drop_after:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP,
                         mreq(args.group, args.ifaddr))
            print("dropped after %d" % n, flush=True)
            queued = 0
            end = time.monotonic() + args.settle
            while time.monotonic() < end:
                data, _, _ = recv_one(s, max(0.01, end - time.monotonic()))
                if data is not None:
                    queued += 1
            print("queued %d" % queued, flush=True)
            after = 0
            end = time.monotonic() + args.after
            while time.monotonic() < end:
                data, _, _ = recv_one(s, max(0.01, end - time.monotonic()))
                if data is not None:
                    after += 1
            print("after-drop %d" % after, flush=True)
            break
    print("got %d distinct %d dups %d ttl %s src %s" %
          (n, len(seen), dups, ",".join(str(t) for t in sorted(ttls)) or "-",
           ",".join(sorted(srcs)) or "-"), flush=True)
    if args.stop_file:
        wait_for(args.stop_file, args.idle)
    return 0


def send(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.ttl >= 0:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, args.ttl)
    if args.loop >= 0:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, args.loop)
    if args.ifaddr:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.ifaddr))
    if args.go_file and not wait_for(args.go_file, args.idle):
        print("FAIL no go file")
        return 1
    pad = b"x" * args.size
    for i in range(args.count):
        data = (b"%d:%s:" % (i, args.tag.encode()) + pad)[:max(args.size, 8)]
        s.sendto(data, (args.group, args.port))
        time.sleep(args.interval)
    print("sent %d" % args.count, flush=True)
    if args.stop_file:
        wait_for(args.stop_file, args.idle)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["recv", "send"])
    p.add_argument("--group", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bind", default="")
    p.add_argument("--ifaddr", default="")
    p.add_argument("--port-file", default="")
    p.add_argument("--go-file", default="")
    p.add_argument("--stop-file", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--drop-after", type=int, default=0)
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--after", type=float, default=1.0)
    p.add_argument("--ttl", type=int, default=-1)
    p.add_argument("--loop", type=int, default=-1)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--interval", type=float, default=0.002)
    p.add_argument("--tag", default="s")
    p.add_argument("--mc-all", type=int, default=-1)
    p.add_argument("--recv-ttl", action="store_true", help="report each datagram's TTL")
    args = p.parse_args()
    return {"recv": recv, "send": send}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
