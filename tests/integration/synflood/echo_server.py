"""A blocking TCP echo server (run under `offload`): listens on PORT with
backlog 128, writes READY to stdout, then echoes each accepted connection's
first message and closes it. Serves at most 100 connections."""
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', port))
s.listen(128)
print('READY', flush=True)
for _ in range(100):
    c, _ = s.accept()
    c.sendall(c.recv(100))
    c.close()
