"""Parses a wire-drill script: packetdrill's line syntax, a subset.

A script is a list of timed events, one per line ('//' starts a comment):

  TIME  syscall(ARGS) = RESULT [ERRNO (text)]     run in the DUT namespace
  TIME  < FLAGS SEQ:END(LEN) [ack N] [win W] [<OPTIONS>]   injected by the peer
  TIME  > FLAGS SEQ:END(LEN) [ack N] [win W] [<OPTIONS>]   expected from the DUT

TIME is absolute seconds ("0.100"), relative to the previous event ("+0.1"),
or a blocking call's start and end ("+0...0.2": starts now and returns 0.2 s
later; "0.1...0.3": absolute); a '+' after it counts from its start. FLAGS use
packetdrill's letters (S F R P . for ACK). Sequence numbers of '>' packets
are relative to the DUT's ISN; of '<' packets as written (the peer's ISN is
the script's), and a '<' packet's ack is relative to the DUT's ISN.
OPTIONS: mss N, wscale N, sackOK, sack A:B ..., TS val V ecr E, nop.
Syscall arguments are parsed loosely: ints, names, '...', [list], {k=v}.
"""
import re

FLAG_BITS = {'F': 0x01, 'S': 0x02, 'R': 0x04, 'P': 0x08, '.': 0x10}


class ScriptError(Exception):
    pass


class Event:
    def __init__(self, line_no, start, end, kind, text):
        self.line_no, self.start, self.end, self.kind, self.text = line_no, start, end, kind, text
        self.packet = None   # for '<' / '>'
        self.call = None     # (name, args, expected_ret, expected_errno)


def _split_args(s):
    out, depth, cur = [], 0, ''
    for ch in s:
        if ch in '[{(':
            depth += 1
        elif ch in ']})':
            depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur.strip())
            cur = ''
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _parse_options(s):
    opts = []
    for item in [x.strip() for x in s.split(',') if x.strip()]:
        w = item.split()
        if w[0] == 'nop' or w[0] == 'eol':
            continue
        if w[0] == 'mss':
            opts.append(('mss', int(w[1])))
        elif w[0] == 'wscale':
            opts.append(('wscale', int(w[1])))
        elif w[0] == 'sackOK':
            opts.append(('sackOK', None))
        elif w[0] == 'TS':
            opts.append(('TS', (int(w[2]), int(w[4]))))
        elif w[0] == 'sack':
            blocks = [tuple(int(x) for x in b.split(':')) for b in w[1:]]
            opts.append(('sack', blocks))
        else:
            raise ScriptError('unknown TCP option ' + item)
    return opts


PKT_RE = re.compile(r'^([<>])\s+([SFRP.]+)\s+(\d+):(\d+)\((\d+)\)(.*)$')


def _parse_packet(direction_text):
    m = PKT_RE.match(direction_text)
    if not m:
        raise ScriptError('bad packet: ' + direction_text)
    d, flags, seq, end, length, rest = m.groups()
    p = {'dir': d, 'flags': sum(FLAG_BITS[c] for c in flags), 'seq': int(seq),
         'len': int(length), 'ack': None, 'win': None, 'opts': None}
    if int(end) - int(seq) != int(length):
        raise ScriptError('sequence range and length disagree: ' + direction_text)
    om = re.search(r'<(.*)>', rest)
    if om:
        p['opts'] = _parse_options(om.group(1))
        rest = rest[:om.start()]
    am = re.search(r'\back\s+(\d+)', rest)
    if am:
        p['ack'] = int(am.group(1))
    wm = re.search(r'\bwin\s+(\d+)', rest)
    if wm:
        p['win'] = int(wm.group(1))
    return p


CALL_RE = re.compile(r'^(\w+)\((.*)\)\s*=\s*(-?\d+|\S+)\s*(\w+)?.*$')


def parse(text):
    events, last = [], 0.0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split('//')[0].strip()
        if not line:
            continue
        num = r'\+?(?:\d+\.?\d*|\.\d+)'
        tm = re.match(r'^(%s)(?:\.\.\.(%s))?\s+(.*)$' % (num, num), line)
        if not tm:
            raise ScriptError('line %d: no time: %s' % (no, raw))
        t, t_end, body = tm.groups()
        start = last + float(t[1:]) if t.startswith('+') else float(t)
        end = None
        if t_end is not None:
            # As packetdrill: after a relative start the end is relative to
            # it; the next '+' counts from the start, not the end.
            rel = t.startswith('+') or t_end.startswith('+')
            end = start + float(t_end.lstrip('+')) if rel else float(t_end)
        last = start
        if body[0] in '<>':
            ev = Event(no, start, end, 'packet', body)
            ev.packet = _parse_packet(body)
        else:
            m = CALL_RE.match(body)
            if not m:
                raise ScriptError('line %d: bad syscall: %s' % (no, raw))
            name, args, ret, err = m.groups()
            ev = Event(no, start, end, 'call', body)
            ev.call = (name, _split_args(args), ret, err)
        events.append(ev)
    return events
