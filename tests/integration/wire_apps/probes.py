"""Socket-API probes run by wire_apps_test.sh, once under `offload` and once
on the kernel; both runs must print the same lines. Each line is a fact an
application can observe."""

import errno
import select
import socket
import sys


def name(e):
    return errno.errorcode.get(e, str(e)) if e else "0"


def nonblocking_connect(host, port):
    s = socket.socket()
    s.setblocking(False)
    first = s.connect_ex((host, port))
    # Linux may finish a same-subnet handshake before connect() returns; an
    # engine may too. Both answers are correct: normalise.
    print("nb connect:", "EINPROGRESS-or-0" if first in (0, errno.EINPROGRESS) else name(first))
    p = select.poll()
    p.register(s, select.POLLOUT)
    ev = p.poll(10000)
    print("nb poll:", sorted(e for _, e in ev))
    print("nb SO_ERROR:", name(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
    second = s.connect_ex((host, port))
    if first == 0 and second == errno.EISCONN:
        second = 0  # connect() returned 0 the first time: the outcome was reported then
    print("nb connect again:", name(second))
    return s


def main():
    host, open_port, closed_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = nonblocking_connect(host, open_port)
    s.setblocking(True)
    s.sendall(b"ping\n")
    print("echo:", s.recv(100))
    s.close()
    nonblocking_connect(host, closed_port).close()
    b = socket.socket()
    try:
        b.connect((host, closed_port))
        print("blocking connect: 0")
    except OSError as e:
        print("blocking connect:", name(e.errno))
    b.close()
    # Half close: our FIN reaches the peer, which answers and closes.
    h = socket.create_connection((host, open_port))
    h.sendall(b"half\n")
    h.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = h.recv(100)
        if not chunk:
            break
        data += chunk
    print("half close:", data, "then EOF")
    h.close()


if __name__ == "__main__":
    main()
