"""Frames on the peer's veth: builds the script's '<' packets and parses the
DUT's, through one AF_PACKET socket bound to the interface (the peer's
namespace). IPv4 and TCP only; checksums are computed for what we send and
not verified on what we receive (a veth leaves a kernel sender's partial)."""
import select
import socket
import struct
import time

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35


def csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def encode_options(opts):
    """Linux's layouts for the options a script names (nops to align)."""
    out = b''
    for kind, v in opts or []:
        if kind == 'mss':
            out += struct.pack('!BBH', 2, 4, v)
        elif kind == 'wscale':
            out += struct.pack('!BBBB', 1, 3, 3, v)
        elif kind == 'sackOK':
            out += struct.pack('!BBBB', 1, 1, 4, 2)
        elif kind == 'TS':
            out += struct.pack('!BBBBII', 1, 1, 8, 10, v[0] & 0xffffffff, v[1] & 0xffffffff)
        elif kind == 'sack':
            out += struct.pack('!BBBB', 1, 1, 5, 2 + 8 * len(v))
            for a, b in v:
                out += struct.pack('!II', a & 0xffffffff, b & 0xffffffff)
    while len(out) % 4:
        out += b'\1'
    return out


def decode_options(b):
    opts, i = [], 0
    while i < len(b):
        k = b[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(b) or b[i + 1] < 2:
            break
        ln = b[i + 1]
        v = b[i + 2:i + ln]
        if k == 2 and ln == 4:
            opts.append(('mss', struct.unpack('!H', v)[0]))
        elif k == 3 and ln == 3:
            opts.append(('wscale', v[0]))
        elif k == 4:
            opts.append(('sackOK', None))
        elif k == 8 and ln == 10:
            opts.append(('TS', struct.unpack('!II', v)))
        elif k == 5:
            opts.append(('sack', [struct.unpack('!II', v[j:j + 8]) for j in range(0, len(v), 8)]))
        i += ln
    return opts


class Wire:
    def __init__(self, ifname, our_mac, dut_mac, our_ip, dut_ip):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        # Arrival times from the kernel (SO_TIMESTAMPNS, CLOCK_REALTIME),
        # mapped onto CLOCK_MONOTONIC: a runner descheduled on a loaded host
        # still sees when a frame really arrived.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.clock_offset = time.time() - time.monotonic()
        self.our_mac, self.dut_mac = our_mac, dut_mac
        self.our_ip, self.dut_ip = socket.inet_aton(our_ip), socket.inet_aton(dut_ip)
        self.ip_id = 1

    def send_tcp(self, sport, dport, seq, ack, flags, win, opts, payload_len):
        o = encode_options(opts)
        payload = b'p' * payload_len
        hl = 20 + len(o)
        tcp = struct.pack('!HHIIBBHHH', sport, dport, seq & 0xffffffff, ack & 0xffffffff,
                          (hl // 4) << 4, flags, win, 0, 0) + o + payload
        pseudo = self.our_ip + self.dut_ip + struct.pack('!BBH', 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack('!H', csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), self.ip_id, 0x4000, 64, 6, 0,
                         self.our_ip, self.dut_ip)
        self.ip_id = (self.ip_id + 1) & 0xffff
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        self.sock.send(self.dut_mac + self.our_mac + b'\x08\x00' + ip + tcp)

    def recv_tcp(self, deadline):
        """The next TCP segment from the DUT to us, as a dict, or None at
        the deadline (time.monotonic())."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            frame, anc, _, addr = self.sock.recvmsg(65600, 64)
            arrival = time.monotonic()
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack('qq', data[:16])
                    arrival = min(arrival, sec + nsec / 1e9 - self.clock_offset)
            if addr[2] == socket.PACKET_OUTGOING or len(frame) < 54:
                continue
            if frame[12:14] != b'\x08\x00' or frame[23] != 6:
                continue
            ihl = (frame[14] & 0xf) * 4
            if frame[26:30] != self.dut_ip or frame[30:34] != self.our_ip:
                continue
            tot = struct.unpack('!H', frame[16:18])[0]
            t = 14 + ihl
            sport, dport, seq, ack, off, flags, win = struct.unpack('!HHIIBBH', frame[t:t + 16])
            thl = (off >> 4) * 4
            return {'t': arrival, 'sport': sport, 'dport': dport, 'seq': seq,
                    'ack': ack, 'flags': flags, 'win': win,
                    'opts': decode_options(frame[t + 20:t + thl]),
                    'len': tot - ihl - thl}
