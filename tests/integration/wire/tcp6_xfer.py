"""Byte-verified TCP transfers for tcp6_wire_test.sh, over IPv4 or IPv6.

  server ADDR PORT CONNS [--dual|--v6only]: accepts CONNS connections (one
      thread each); each sends a stream of the pattern that the server
      checks byte by byte and echoes; prints "peer ADDR ok BYTES" per
      connection (or "peer ADDR BAD ...").
  client ADDR PORT BYTES [HOLD_FILE]: connects, sends BYTES of the pattern
      while reading the echo, checks every echoed byte; prints "ok BYTES name
      LOCAL peer PEER" or "BAD ...". With HOLD_FILE, prints "sent" once the
      data is out and holds the connection open until that file exists.
      Exit status 0 only on ok.
"""

import os
import socket
import sys
import threading
import time


def pattern(off, n):
    return bytes(((off + i) * 7 + 3) & 0xFF for i in range(n))


PAT = pattern(0, (1 << 16) + 256)


def chunk(off, n):
    # The pattern repeats every 256 bytes; PAT covers any 64 KiB window.
    start = off % 256
    return PAT[start:start + n]


def serve(c, peer):
    got = 0
    bad = None
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            if bad is None and d != chunk(got, len(d)):
                bad = got
            got += len(d)
            c.sendall(d)
    print("peer", peer, "ok" if bad is None else "BAD at %d" % bad, got, flush=True)


def server(addr, port, conns, mode):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if mode == "--dual" else 1)
    l.bind((addr, port))
    l.listen(16)
    print("listening", flush=True)
    threads = []
    for _ in range(conns):
        c, peer = l.accept()
        t = threading.Thread(target=serve, args=(c, peer[0]))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(120)


def client(addr, port, total, hold):
    s = socket.create_connection((addr, port), timeout=60)
    name, peer = s.getsockname()[0], s.getpeername()[0]
    err = []

    def send():
        off = 0
        while off < total:
            n = min(65536, total - off)
            s.sendall(chunk(off, n))
            off += n
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=send)
    t.start()
    got = 0
    while True:
        d = s.recv(65536)
        if not d:
            break
        if not err and d != chunk(got, len(d)):
            err.append(got)
        got += len(d)
        if got == total and hold:
            print("sent", flush=True)
            for _ in range(600):  # 60 s at most
                if os.path.exists(hold):
                    break
                time.sleep(0.1)
    t.join(60)
    if err or got != total:
        print("BAD echo at", err, "got", got, "of", total, flush=True)
        return 1
    print("ok", got, "name", name, "peer", peer, flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "")
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                        sys.argv[5] if len(sys.argv) > 5 else ""))
