"""The DUT side of a wire-drill run: executes socket calls for the runner.

Runs in the DUT's network namespace, plainly (the kernel reference) or under
the `offload` launcher (liboffload.so interposes every call made here, since
the calls go through libc via ctypes exactly as a C program's would).
Protocol: one JSON object per line on stdin, {"id", "call", "args"}; one
reply per line on stdout, {"id", "ret", "errno", "value", "t"} where t is
CLOCK_MONOTONIC at return. Each call runs on its own thread, so a blocking
call does not hold the others up. Stops at EOF on stdin.
"""
import ctypes
import ctypes.util
import json
import os
import socket
import struct
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
out_lock = threading.Lock()


def sockaddr_in(ip, port):
    return struct.pack('=H', socket.AF_INET) + struct.pack('!H4s8x', port, socket.inet_aton(ip))


TCP_INFO_FIELDS = ['state', 'ca_state', 'retransmits', 'probes', 'backoff', 'options',
                   'wscale', 'delivery_rate_app_limited']


def tcp_info(buf):
    b = bytes(buf)
    d = dict(zip(TCP_INFO_FIELDS, b[:8]))
    d['snd_wscale'], d['rcv_wscale'] = d['wscale'] & 0xf, d['wscale'] >> 4
    names = ['rto', 'ato', 'snd_mss', 'rcv_mss', 'unacked', 'sacked', 'lost', 'retrans',
             'fackets', 'last_data_sent', 'last_ack_sent', 'last_data_recv', 'last_ack_recv',
             'pmtu', 'rcv_ssthresh', 'rtt', 'rttvar', 'snd_ssthresh', 'snd_cwnd', 'advmss',
             'reordering', 'rcv_rtt', 'rcv_space', 'total_retrans']
    vals = struct.unpack_from('=%dI' % len(names), b, 8)
    d.update(zip(names, vals))
    return d


class IoVec(ctypes.Structure):
    _fields_ = [('iov_base', ctypes.c_void_p), ('iov_len', ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [('msg_name', ctypes.c_void_p), ('msg_namelen', ctypes.c_uint32),
                ('msg_iov', ctypes.POINTER(IoVec)), ('msg_iovlen', ctypes.c_size_t),
                ('msg_control', ctypes.c_void_p), ('msg_controllen', ctypes.c_size_t),
                ('msg_flags', ctypes.c_int)]


def run(call, a):
    """Returns (ret, value)."""
    if call == 'socket':
        return libc.socket(a[0], a[1], a[2]), None
    if call == 'setsockopt':
        fd, level, opt, kind, v = a
        if kind == 'linger':
            data = struct.pack('ii', v[0], v[1])
        else:
            data = struct.pack('i', v)
        return libc.setsockopt(fd, level, opt, data, len(data)), None
    if call == 'getsockopt':
        fd, level, opt, kind = a
        size = 232 if kind == 'tcp_info' else 4
        buf = ctypes.create_string_buffer(size)
        ln = ctypes.c_uint32(size)
        r = libc.getsockopt(fd, level, opt, buf, ctypes.byref(ln))
        if r != 0:
            return r, None
        return r, tcp_info(buf) if kind == 'tcp_info' else struct.unpack('i', buf.raw[:4])[0]
    if call == 'bind' or call == 'connect':
        sa = sockaddr_in(a[1], a[2])
        return getattr(libc, call)(a[0], sa, len(sa)), None
    if call == 'listen':
        return libc.listen(a[0], a[1]), None
    if call == 'accept':
        return libc.accept(a[0], None, None), None
    if call in ('read', 'recv'):
        buf = ctypes.create_string_buffer(max(a[1], 1))
        if call == 'read':
            return libc.read(a[0], buf, a[1]), None
        return libc.recv(a[0], buf, a[1], a[2]), None
    if call == 'recvmsg':
        fd, n, flags = a
        buf = ctypes.create_string_buffer(max(n, 1))
        ctl = ctypes.create_string_buffer(64)
        iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), n)
        mh = MsgHdr(None, 0, ctypes.pointer(iov), 1, ctypes.cast(ctl, ctypes.c_void_p), 64, 0)
        r = libc.recvmsg(fd, ctypes.byref(mh), flags)
        cmsgs = []
        off = 0
        raw = ctl.raw[:mh.msg_controllen]
        while off + 16 <= len(raw):
            ln, level, typ = struct.unpack_from('=Qii', raw, off)
            if ln < 16:
                break
            data = struct.unpack_from('=i', raw, off + 16)[0] if ln >= 20 else None
            cmsgs.append([level, typ, data])
            off += (ln + 7) & ~7
        return r, cmsgs
    if call in ('write', 'send'):
        data = b'x' * a[1]
        if call == 'write':
            return libc.write(a[0], data, a[1]), None
        return libc.send(a[0], data, a[1], a[2]), None
    if call == 'close':
        return libc.close(a[0]), None
    if call == 'shutdown':
        return libc.shutdown(a[0], a[1]), None
    if call == 'fcntl':
        return libc.fcntl(a[0], a[1], ctypes.c_long(a[2])), None
    if call == 'ioctl':
        v = ctypes.c_int(0)
        r = libc.ioctl(a[0], ctypes.c_ulong(a[1]), ctypes.byref(v))
        return r, v.value
    if call == 'poll':
        pfd = struct.pack('ihh', a[0], a[1], 0)
        buf = ctypes.create_string_buffer(pfd, len(pfd))
        r = libc.poll(buf, 1, a[2])
        return r, struct.unpack('ihh', buf.raw)[2]
    if call == 'epoll_create':
        return libc.epoll_create1(0), None
    if call == 'epoll_ctl':
        ev = struct.pack('=IQ', a[3], a[2])
        return libc.epoll_ctl(a[0], a[1], a[2], ev), None
    if call == 'epoll_wait':
        buf = ctypes.create_string_buffer(12 * 8)
        r = libc.epoll_wait(a[0], buf, 8, a[1])
        evs = [struct.unpack_from('=IQ', buf.raw, 12 * i)[0] for i in range(max(r, 0))]
        return r, evs
    raise ValueError('unsupported call ' + call)


def serve(cmd):
    try:
        ctypes.set_errno(0)
        ret, value = run(cmd['call'], cmd['args'])
        err = ctypes.get_errno() if ret is not None and ret < 0 else 0
    except Exception as e:  # reported, not fatal: the runner fails the script
        ret, value, err = None, 'agent error: %s' % e, 0
    reply = {'id': cmd['id'], 'ret': ret, 'errno': err, 'value': value, 't': time.monotonic()}
    with out_lock:
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


def main():
    # One socket first: under `offload` this attaches to offloadd before the
    # script's clock starts (the attach is not part of any script's timing).
    libc.close(libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0))
    sys.stdout.write(json.dumps({'ready': True, 't': time.monotonic(), 'pid': os.getpid()}) + '\n')
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        threading.Thread(target=serve, args=(cmd,), daemon=True).start()


if __name__ == '__main__':
    main()
