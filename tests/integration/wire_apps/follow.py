"""Run by wire_apps_test.sh under `offload`: measures how long a route or
neighbour change made with `ip` takes to reach new offloaded connections.

  follow.py HOST PORT WANT   (WANT: engine | fail)

Prints "ready", then reads one line from stdin: the wall-clock time in ms
at which the change was made. Then it opens one connection after another
(1 s budget each: connect, echo a byte) until one ends as WANT, at most
10 s, and prints every attempt and the result line
"RESULT <WANT|never> <ms from the change to the start of that attempt>
<ms to the start of the attempt before it>".

An attempt's outcome: "fail" (no echo), "kernel" (the kernel has the
connection established: /proc/net/tcp lists it), or "engine" (echoed, and
the kernel's table has no established connection on our port: liboffload's
kernel shadow of an engine connection is bound, never connected)."""

import socket
import sys
import time


def kernel_established(local_port):
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            port = int(fields[1].split(":")[1], 16)
            if port == local_port and fields[3] == "01":
                return True
    return False


def attempt(host, port):
    try:
        s = socket.create_connection((host, port), timeout=1)
    except OSError:
        return "fail"
    with s:
        try:
            s.sendall(b"f")
            if s.recv(1) != b"f":
                return "fail"
        except OSError:
            return "fail"
        return "kernel" if kernel_established(s.getsockname()[1]) else "engine"


def main():
    host, port, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print("ready", flush=True)
    changed_ms = int(sys.stdin.readline())
    prev = None
    while True:
        start = time.time() * 1000 - changed_ms
        if start > 10000:
            print("RESULT never", flush=True)
            return
        got = attempt(host, port)
        print("attempt at +%.0f ms: %s" % (start, got), flush=True)
        if got == want:
            print("RESULT %s %.0f %s" % (want, start, "-" if prev is None else "%.0f" % prev),
                  flush=True)
            return
        prev = start


if __name__ == "__main__":
    main()
