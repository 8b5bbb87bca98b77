"""Kernel-side peer for wire_apps_test.sh: echoes every connection until EOF
(one thread per connection), then closes. Exits after --max connections."""

import socket
import sys
import threading


def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)


def main():
    host, port, max_conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    l = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(16)
    print("listening", flush=True)
    threads = []
    for _ in range(max_conns):
        c, _ = l.accept()
        t = threading.Thread(target=serve, args=(c,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(30)


if __name__ == "__main__":
    main()
