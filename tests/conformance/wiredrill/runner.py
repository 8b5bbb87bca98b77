"""Runs one wire-drill script (script.py) in wire mode.

The runner sits in the peer's network namespace with an AF_PACKET socket on
the peer's veth (wire.py); the script's socket calls run in the DUT's
namespace through an agent process (agent.py) started with --agent-prefix
(e.g. the `offload` launcher, or nothing for the kernel reference). Events
run at their script times; an expected packet or a call's return must come
within --tolerance seconds of its time; a call expected to return at once
that returns late shifts the script's clock instead (virtual time, so a
loaded host delays a script rather than failing it). Exits 0 if the script passed, 1 if
it failed (the first mismatch is printed), 2 on a setup error.
"""
import argparse
import errno
import json
import os
import re
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import script as script_mod  # noqa: E402
import wire as wire_mod  # noqa: E402

SYMBOLS = {
    'AF_INET': 2, 'SOCK_STREAM': 1, 'IPPROTO_TCP': 6, 'SOL_SOCKET': 1, 'SOL_TCP': 6,
    'SO_REUSEADDR': 2, 'SO_KEEPALIVE': 9, 'SO_LINGER': 13, 'SO_RCVBUF': 8, 'SO_SNDBUF': 7,
    'TCP_NODELAY': 1, 'TCP_MAXSEG': 2, 'TCP_CORK': 3, 'TCP_KEEPIDLE': 4, 'TCP_KEEPINTVL': 5,
    'TCP_KEEPCNT': 6, 'TCP_INFO': 11, 'TCP_QUICKACK': 12, 'TCP_USER_TIMEOUT': 18,
    'TCP_INQ': 36, 'SHUT_RD': 0, 'SHUT_WR': 1, 'SHUT_RDWR': 2, 'MSG_MORE': 0x8000,
    'MSG_EOR': 0x80, 'MSG_DONTWAIT': 0x40, 'MSG_PEEK': 2, 'F_GETFL': 3, 'F_SETFL': 4,
    'O_RDWR': 2, 'O_NONBLOCK': 0x800, 'SIOCINQ': 0x541B, 'FIONREAD': 0x541B,
    'SIOCOUTQ': 0x5411, 'POLLIN': 1, 'POLLOUT': 4, 'POLLERR': 8, 'POLLHUP': 16,
    'POLLRDHUP': 0x2000, 'EPOLLIN': 1, 'EPOLLOUT': 4, 'EPOLLERR': 8, 'EPOLLHUP': 16,
    'EPOLLRDHUP': 0x2000, 'EPOLLET': 1 << 31, 'EPOLL_CTL_ADD': 1, 'EPOLL_CTL_MOD': 3,
    'TCP_ESTABLISHED': 1, 'TCP_SYN_SENT': 2, 'TCP_CLOSE': 7, 'TCP_CLOSE_WAIT': 8,
    'SIOCOUTQNSD': 0x894B, 'TCP_CM_INQ': 36, 'SO_ERROR': 4, 'ETIMEDOUT': 110, 'ECONNRESET': 104,
}


class Fail(Exception):
    pass


def value(tok):
    tok = tok.strip()
    if '|' in tok:
        v = 0
        for part in tok.split('|'):
            v |= value(part)
        return v
    if re.match(r'^-?(0x[0-9a-fA-F]+|\d+)$', tok):
        return int(tok, 0)
    if tok in SYMBOLS:
        return SYMBOLS[tok]
    raise Fail('unknown symbol ' + tok)


def fields(tok):
    """'{a=1, b=X}' -> {'a': 1, 'b': X}."""
    out = {}
    for part in tok.strip()[1:-1].split(','):
        if '=' in part:
            k, v = part.split('=', 1)
            out[k.strip()] = value(v)
    return out


class Runner:
    def __init__(self, a):
        self.a = a
        self.tol = a.tolerance
        self.wire = wire_mod.Wire(a.peer_if, bytes.fromhex(a.peer_mac.replace(':', '')),
                                  bytes.fromhex(a.dut_mac.replace(':', '')), a.remote_ip,
                                  a.dut_ip)
        cmd = ['ip', 'netns', 'exec', a.dut_ns] + a.agent_prefix.split() + [
            sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'agent.py')]
        self.agent = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.agent.stdout.readline()  # waits for the agent, no fixed sleep
        if not ready:
            raise Fail('the agent did not start')
        self.fds = {}
        self.next_id = 0
        self.pending = {}     # id -> (event, expected)
        self.replies = {}
        self.local_isn = None
        self.dut_port = a.lport
        self.ts_map = {}
        self.last_tsval = 0
        self.peer_next = 0  # the peer's next sequence number (for the final RST)

    # --- time ---
    def at(self, t):
        return self.t0 + t

    def sleep_until(self, t):
        d = self.at(t) - time.monotonic()
        if d > 0:
            time.sleep(d)

    # --- agent ---
    def send_call(self, call, args):
        self.next_id += 1
        self.agent.stdin.write(json.dumps({'id': self.next_id, 'call': call, 'args': args}) + '\n')
        self.agent.stdin.flush()
        return self.next_id

    def wait_reply(self, cid, deadline):
        while cid not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.agent.stdout], [], [], left)
            if r:
                line = self.agent.stdout.readline()
                if not line:
                    raise Fail('the agent died')
                rep = json.loads(line)
                self.replies[rep['id']] = rep
        return self.replies.pop(cid)

    def fd(self, tok):
        v = value(tok)
        if v not in self.fds:
            raise Fail('fd %d was never returned' % v)
        return self.fds[v]

    def call_args(self, name, args):
        """Script arguments -> (agent args, check function for 'value')."""
        A = self.a
        check = None
        if name == 'socket':
            return [2, value(args[1]), value(args[2])], None
        if name in ('bind', 'connect'):
            ip, port = (A.dut_ip, A.lport) if name == 'bind' else (A.remote_ip, A.rport)
            return [self.fd(args[0]), ip, port], None
        if name == 'listen':
            return [self.fd(args[0]), value(args[1])], None
        if name == 'accept':
            return [self.fd(args[0])], None
        if name in ('read', 'write'):
            return [self.fd(args[0]), value(args[2])], None
        if name in ('send', 'recv'):
            return [self.fd(args[0]), value(args[2]), value(args[3])], None
        if name in ('close', 'epoll_create'):
            return ([self.fd(args[0])] if name == 'close' else []), None
        if name == 'shutdown':
            return [self.fd(args[0]), value(args[1])], None
        if name == 'fcntl':
            return [self.fd(args[0]), value(args[1]), value(args[2]) if len(args) > 2 else 0], None
        if name == 'setsockopt':
            v = args[3]
            if v.startswith('{'):
                f = fields(v)
                return [self.fd(args[0]), value(args[1]), value(args[2]), 'linger',
                        [f.get('onoff', 0), f.get('linger', 0)]], None
            return [self.fd(args[0]), value(args[1]), value(args[2]), 'int', value(v[1:-1])], None
        if name == 'getsockopt':
            v = args[3]
            if v.startswith('{'):
                want = {k[5:] if k.startswith('tcpi_') else k: x for k, x in fields(v).items()}
                return [self.fd(args[0]), value(args[1]), value(args[2]), 'tcp_info'], \
                    lambda got: [k for k in want if got.get(k) != want[k]] and \
                    'tcp_info %s, expected %s' % ({k: got.get(k) for k in want}, want)
            want = value(v[1:-1])
            return [self.fd(args[0]), value(args[1]), value(args[2]), 'int'], \
                lambda got: got != want and 'value %s, expected %s' % (got, want)
        if name == 'recvmsg':
            # recvmsg(FD, {msg_iov(1)=[{..., LEN}], msg_control=[{cmsg_level=L,
            # cmsg_type=T, cmsg_data=V}]}, FLAGS): one int control message
            # expected, or msg_control=[] for none.
            m = re.search(r'\{\.\.\.,\s*(\d+)\}', args[1])
            if not m:
                raise Fail('recvmsg needs msg_iov(1)=[{..., LEN}]')
            want = []
            cm = re.search(r'cmsg_level=(\w+),\s*cmsg_type=(\w+),\s*cmsg_data=(\w+)', args[1])
            if cm:
                want = [[value(cm.group(1)), value(cm.group(2)), value(cm.group(3))]]
            return [self.fd(args[0]), int(m.group(1)), value(args[2])], \
                lambda got: got != want and 'control messages %s, expected %s' % (got, want)
        if name == 'ioctl':
            want = value(args[2][1:-1])
            return [self.fd(args[0]), value(args[1])], \
                lambda got: got != want and 'value %s, expected %s' % (got, want)
        if name == 'poll':
            f = fields(args[0][1:-1])
            return [self.fds[f['fd']], f['events'], value(args[2])], \
                lambda got: got != f.get('revents', 0) and 'revents %#x, expected %#x' % (
                    got, f.get('revents', 0))
        if name == 'epoll_ctl':
            f = fields(args[3])
            return [self.fd(args[0]), value(args[1]), self.fd(args[2]), f['events']], None
        if name == 'epoll_wait':
            want = fields(args[1]).get('events') if args[1].startswith('{') else None
            return [self.fd(args[0]), value(args[3])], \
                lambda got: want is not None and got and got != [want] and 'events %s, expected %#x' % (
                    got, want)
        raise Fail('unsupported call ' + name)

    def start_call(self, ev):
        name, args, ret, err = ev.call
        agent_args, check = self.call_args(name, args)
        cid = self.send_call(name, agent_args)
        return cid, check

    def finish_call(self, ev, cid, check, end):
        name, args, ret, err = ev.call
        rep = self.wait_reply(cid, self.at(end) + self.tol + 1.0)
        if rep is None:
            raise Fail('line %d: %s did not return by %.3f' % (ev.line_no, name, end))
        got_t = rep['t'] - self.t0
        if ev.end is None and got_t > end:
            # Virtual time: a call expected to return at once that the host
            # was slow to run (a loaded machine) moves the script's clock
            # forward instead of failing it; what follows is timed from it.
            self.t0 += got_t - end
        elif abs(got_t - end) > self.tol:
            raise Fail('line %d: %s returned at %.3f, expected %.3f' % (
                ev.line_no, name, got_t, end))
        want = value(ret)
        if rep['ret'] is None:
            raise Fail('line %d: %s' % (ev.line_no, rep['value']))
        if name in ('socket', 'accept', 'epoll_create') and want >= 0 and rep['ret'] >= 0:
            self.fds[want] = rep['ret']
        elif rep['ret'] != want:
            e = errno.errorcode.get(rep['errno'], rep['errno'])
            raise Fail('line %d: %s returned %s (%s), expected %s %s' % (
                ev.line_no, name, rep['ret'], e, ret, err or ''))
        if want == -1 and err and errno.errorcode.get(rep['errno']) != err:
            raise Fail('line %d: %s failed with %s, expected %s' % (
                ev.line_no, name, errno.errorcode.get(rep['errno']), err))
        if check is not None and want >= 0:
            msg = check(rep['value'])
            if msg:
                raise Fail('line %d: %s: %s' % (ev.line_no, name, msg))

    # --- packets ---
    def inject(self, ev):
        p = ev.packet
        ack = p['ack'] + (self.local_isn or 0) if p['ack'] is not None else 0
        opts = []
        for kind, v in p['opts'] or []:
            if kind == 'TS':
                ecr = self.ts_map.get(v[1], self.last_tsval) if v[1] != 0 else 0
                v = (v[0], ecr)
            elif kind == 'sack':
                v = [(a + (self.local_isn or 0), b + (self.local_isn or 0)) for a, b in v]
            opts.append((kind, v))
        win = p['win'] if p['win'] is not None else 65535
        flags = p['flags'] | (0x10 if p['ack'] is not None else 0)
        self.wire.send_tcp(self.a.rport, self.dut_port, p['seq'], ack, flags, win, opts, p['len'])
        nxt = p['seq'] + p['len'] + (1 if p['flags'] & 0x03 else 0)
        self.peer_next = max(self.peer_next, nxt)

    def expect(self, ev):
        p = ev.packet
        log = os.environ.get('WIREDRILL_TRACE')
        deadline = self.at(ev.start) + self.tol + (0.5 if p['len'] > 0 else 0)
        got = None
        total = 0
        while True:
            seg = self.wire.recv_tcp(deadline)
            if seg is None:
                raise Fail('line %d: expected %s, none arrived by %.3f' % (
                    ev.line_no, ev.text, ev.start + self.tol))
            if log:
                print('  sniffed %.3f %s' % (seg['t'] - self.t0, seg))
            if seg['dport'] != self.a.rport:
                continue  # another connection's leftovers
            if seg['flags'] & 0x02:  # every SYN starts a new local sequence space
                self.local_isn = seg['seq'] - p['seq']
                self.dut_port = seg['sport']
            if got is None:
                got = seg
            total += seg['len']
            # Like packetdrill, consecutive segments make up a scripted
            # TSO-sized packet (the last one's flags count).
            if total >= p['len']:
                got = dict(seg, seq=got['seq'], len=total, t=got['t'])
                break
        t = got['t'] - self.t0
        if t < ev.start - self.tol:
            raise Fail('line %d: %s arrived early at %.3f' % (ev.line_no, ev.text, t))
        for kind, v in got['opts']:
            if kind == 'TS':
                self.last_tsval = v[0]
                for k2, v2 in p['opts'] or []:
                    if k2 == 'TS':
                        self.ts_map[v2[0]] = v[0]
        isn = self.local_isn or 0
        problems = []
        if got['flags'] & 0x1f != p['flags'] | (0x10 if p['ack'] is not None else 0):
            problems.append('flags %#x' % got['flags'])
        if (got['seq'] - isn) & 0xffffffff != p['seq']:
            problems.append('seq %d' % ((got['seq'] - isn) & 0xffffffff))
        if got['len'] != p['len']:
            problems.append('len %d' % got['len'])
        if p['ack'] is not None and got['ack'] != p['ack'] & 0xffffffff:
            problems.append('ack %d' % got['ack'])
        if p['win'] is not None and got['win'] != p['win']:
            problems.append('win %d' % got['win'])
        if p['opts'] is not None:
            want = [(k, v) for k, v in p['opts'] if k not in ('TS', 'sack')]
            have = [(k, v) for k, v in got['opts'] if k not in ('TS', 'sack')]
            want_ts = any(k == 'TS' for k, _ in p['opts'])
            have_ts = any(k == 'TS' for k, _ in got['opts'])
            if sorted(map(str, want)) != sorted(map(str, have)) or want_ts != have_ts:
                problems.append('options %s' % got['opts'])
            # SACK blocks of a '>' packet acknowledge the peer's sequence
            # space, written as is.
            want_sack = [v for k, v in p['opts'] if k == 'sack']
            have_sack = [[tuple(b) for b in v] for k, v in got['opts'] if k == 'sack']
            if want_sack and [list(map(tuple, w)) for w in want_sack] != have_sack:
                problems.append('sack %s' % have_sack)
        if problems:
            raise Fail('line %d: expected %s, got %s at %.3f' % (
                ev.line_no, ev.text, ', '.join(problems), t))

    def run(self, events):
        self.t0 = time.monotonic() + 0.05
        blocking = []  # (end, event, cid, check)
        for ev in events:
            while blocking and blocking[0][0] < ev.start:
                end, bev, cid, check = blocking.pop(0)
                self.finish_call(bev, cid, check, end)
            self.sleep_until(ev.start)
            if ev.kind == 'packet':
                if ev.packet['dir'] == '<':
                    self.inject(ev)
                else:
                    self.expect(ev)
                continue
            cid, check = self.start_call(ev)
            if ev.end is not None:
                blocking.append((ev.end, ev, cid, check))
                blocking.sort(key=lambda b: b[0])
            else:
                self.finish_call(ev, cid, check, ev.start)
        for end, bev, cid, check in blocking:
            self.finish_call(bev, cid, check, end)
        # Reset the DUT's connection so the next script starts clean.
        if self.local_isn is not None:
            self.wire.send_tcp(self.a.rport, self.dut_port, self.peer_next, 0, 0x04, 0, [], 0)

    def close(self):
        try:
            self.agent.stdin.close()
            self.agent.wait(timeout=10)
        except Exception:  # the agent is ours: end it by pid
            self.agent.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('script')
    for opt in ('dut-ns', 'peer-if', 'dut-ip', 'remote-ip', 'dut-mac', 'peer-mac'):
        ap.add_argument('--' + opt, required=True)
    ap.add_argument('--lport', type=int, required=True)
    ap.add_argument('--rport', type=int, required=True)
    ap.add_argument('--tolerance', type=float, default=0.06)
    ap.add_argument('--agent-prefix', default='')
    a = ap.parse_args()
    try:
        events = script_mod.parse(open(a.script).read())
    except script_mod.ScriptError as e:
        print('%s: %s' % (a.script, e))
        return 2
    r = Runner(a)
    try:
        r.run(events)
    except Fail as e:
        print('FAIL %s: %s' % (os.path.basename(a.script), e))
        return 1
    finally:
        r.close()
    print('PASS %s' % os.path.basename(a.script))
    return 0


if __name__ == '__main__':
    sys.exit(main())
