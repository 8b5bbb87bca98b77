#!/usr/bin/env python3
"""Minimal ICMP echo (the image has no ping(8)): icmp_ping.py DEST [COUNT] [TIMEOUT_S].

Sends COUNT echo requests over a raw socket (root) and exits 0 when every one
got its reply (matching identifier and sequence) within TIMEOUT_S, 1 otherwise.
Prints one line per reply and a summary.
"""
import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> int:
    dest = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    received = 0
    for seq in range(1, count + 1):
        payload = b"offload-interop-%d" % seq
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq)
        sent_at = time.monotonic()
        sock.sendto(header + payload, (dest, 0))
        deadline = sent_at + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                print("no reply from %s seq %d" % (dest, seq))
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                continue
            packet, addr = sock.recvfrom(2048)
            ihl = (packet[0] & 0x0F) * 4
            icmp_type, _, _, r_id, r_seq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
            if icmp_type == 0 and r_id == ident and r_seq == seq and addr[0] == dest:
                received += 1
                print("reply from %s seq %d time %.3f ms" %
                      (dest, seq, (time.monotonic() - sent_at) * 1e3))
                break
    print("%d/%d replies from %s" % (received, count, dest))
    return 0 if received == count else 1


if __name__ == "__main__":
    sys.exit(main())
