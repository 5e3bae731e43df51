#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hand-made seeds for the libFuzzer targets in tests/fuzz/.

usage: seeds.py TARGET DIR

Writes a few well-formed inputs for TARGET into DIR, in the input format
documented at the top of tests/fuzz/TARGET.c.  tools/fuzz regenerates
them before every run; the fuzzer's own corpus grows beside them.
"""
import os
import struct
import sys


def write_all(out, seeds):
    os.makedirs(out, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


# ---- fuzz_virtq_blk ----

def virtq_blk():
    # A 16-entry queue (descriptors at 0x100, avail at 0x200, used at
    # 0x300) holding IN, OUT, GET_ID (through an indirect table at 0x900),
    # FLUSH and DISCARD requests on a 128-sector disk.
    def desc(ram, table, i, addr, ln, flags, nxt):
        struct.pack_into('<QIHH', ram, table + 16 * i, addr, ln, flags, nxt)

    def seed(flags, heads, fill):
        ram = bytearray(0x1000)
        fill(ram)
        struct.pack_into('<HH', ram, 0x200, 0, len(heads))
        for k, h in enumerate(heads):
            struct.pack_into('<H', ram, 0x204 + 2 * k, h)
        hdr = struct.pack('<BBHHHI', 4, flags, 0x100 // 16, 0x200 // 2,
                          0x300 // 4, 128)
        return hdr + bytes(ram)

    N, W, I = 1, 2, 4

    def requests(ram):
        # IN sector 1: header 0x400, 512 bytes at 0xa00, status 0x800
        struct.pack_into('<IIQ', ram, 0x400, 0, 0, 1)
        desc(ram, 0x100, 0, 0x400, 16, N, 1)
        desc(ram, 0x100, 1, 0xa00, 512, N | W, 2)
        desc(ram, 0x100, 2, 0x800, 1, W, 0)
        # OUT sector 2 with the data in the header's buffer
        struct.pack_into('<IIQ', ram, 0x410, 1, 0, 2)
        desc(ram, 0x100, 3, 0x410, 16 + 512, N, 4)
        desc(ram, 0x100, 4, 0x801, 1, W, 0)
        # GET_ID through an indirect table
        struct.pack_into('<IIQ', ram, 0x620, 8, 0, 0)
        desc(ram, 0x100, 5, 0x900, 48, I, 0)
        desc(ram, 0x900, 0, 0x620, 16, N, 1)
        desc(ram, 0x900, 1, 0x840, 20, N | W, 2)
        desc(ram, 0x900, 2, 0x802, 1, W, 0)
        # FLUSH
        struct.pack_into('<IIQ', ram, 0x630, 4, 0, 0)
        desc(ram, 0x100, 6, 0x630, 16, N, 7)
        desc(ram, 0x100, 7, 0x803, 1, W, 0)
        # DISCARD of sectors 8..15, segment after the header
        struct.pack_into('<IIQQII', ram, 0x640, 11, 0, 0, 8, 8, 0)
        desc(ram, 0x100, 8, 0x640, 32, N, 9)
        desc(ram, 0x100, 9, 0x804, 1, W, 0)

    return {
        'requests': seed(3, [0, 3, 5, 6, 8], requests),
        'requests-ro-noindirect': seed(4, [0, 3, 5, 6, 8], requests),
        'loop': seed(1, [0], lambda ram: desc(ram, 0x100, 0, 0x400, 16, N, 0)),
    }


# ---- fuzz_vsock: opcodes are indexes into ops[] in fuzz_vsock.c ----

OP_TX, OP_RX, OP_EVQ, OP_NOTIFY, OP_RAW, OP_MMIO, OP_RESET = 0, 3, 5, 6, 7, 8, 9
OP_EXPIRE, OP_HCONNECT, OP_HSEND, OP_HREAD, OP_HSHUT = 10, 11, 12, 14, 15
OP_HCLOSE, OP_LISTEN, OP_ACCEPT, OP_UNLISTEN, OP_BURST, OP_FDLIMIT = range(16, 22)

REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
KNOWN, LISTENER, RAW_PORTS, GUESS = range(4)  # port choices


def tx(op, ports=KNOWN, port_byte=0, plen=0, layout=1, indirect=False,
       shut=3, fill=0x61, extra=b''):
    """A guest packet with valid CIDs and honest credit (plen over 65535:
    a multiple of 4, up to 262140)."""
    mode = ports << 5
    lay = layout | (8 if indirect else 0)
    if plen > 0xffff:
        lay |= 0x80
        plen //= 4
    credit = {1: 0, 2: 1, 3: 2}[shut] if op == SHUTDOWN else 0
    return (bytes([OP_TX, op - 1, mode, lay, credit]) +
            struct.pack('<HB', plen, fill) + bytes([port_byte]) + extra)


def rx(count, shape=0, how=0):
    """count (1-8) rx buffers of one shape (0: 44 + 4096 bytes), kicked."""
    return bytes([OP_RX, count - 1, how]) + bytes([shape]) * count


def hsend_connect(host, port_sel=0):  # ports 1024, 5000, 0, 4294967295
    return bytes([OP_HSEND, host, 0, port_sel])


def hsend_data(host, n, fill=0x62):
    return bytes([OP_HSEND, host, 4, fill & 0xfe]) + struct.pack('<H', n)


def hread(host, n=4096):
    return bytes([OP_HREAD, host]) + struct.pack('<H', n // 4)


def vsock():
    full = bytes([0x03, 6, 6, 2])  # EVENT_IDX, INDIRECT; 64-entry queues
    host_session = (
        full + rx(8) +
        bytes([OP_HCONNECT]) + hsend_connect(0) +    # REQUEST to 1024
        tx(RESPONSE) +                               # accepted
        hread(0) +                                   # "OK 1073741824\n"
        hsend_data(0, 3000) +                        # host to guest
        tx(RW, plen=2000) + hread(0) +               # guest to host
        tx(RW, plen=300, layout=2, extra=bytes([2, 10, 20, 30])) +
        tx(CREDIT_REQUEST) + rx(4) +
        bytes([OP_HSHUT, 0, 0]) +                    # host half-close
        tx(SHUTDOWN, shut=3) + hread(0) +            # guest closes
        bytes([OP_HCLOSE, 0]))
    guest_session = (
        full + rx(8) +
        bytes([OP_LISTEN, 0 | 2 << 2]) +             # PATH_5000
        tx(REQUEST, ports=LISTENER, port_byte=0) +   # guest 1000 -> 5000
        bytes([OP_ACCEPT, 0]) +
        tx(RW, plen=5000, layout=4, indirect=True) + hread(0, 8000) +
        hsend_data(0, 20000) + rx(8) +
        tx(CREDIT_UPDATE) + rx(8) +
        tx(SHUTDOWN, shut=2) +                       # guest stops sending
        bytes([OP_HCLOSE, 0]) +                      # host closes: SHUTDOWN
        tx(RST) + bytes([OP_UNLISTEN, 0]))
    timers = (
        bytes([0x03 | 0x08, 4, 4, 1]) +                 # close timeout 0
        rx(8) + bytes([OP_HCONNECT]) +
        bytes([OP_HSEND, 0, 1]) +                       # half a line
        bytes([OP_HCONNECT]) + hsend_connect(1, 1) +    # REQUEST, unanswered
        bytes([OP_EXPIRE, 3]) +                         # line timeout
        bytes([OP_EXPIRE, 4]) +                         # connect timeout
        hread(0) + bytes([OP_HCLOSE, 0]) +
        bytes([OP_HCONNECT]) + hsend_connect(1, 0) +
        tx(RESPONSE, port_byte=1) +                     # the newest pair
        bytes([OP_HCLOSE, 1]) +                         # SHUTDOWN, then RST
        bytes([OP_EXPIRE, 1]))
    hostile = (
        # a header over three pieces, zero-length pieces, a huge buffer
        full + bytes([OP_RX, 2, 0, 5, 2, 10, 20, 14, 100, 7, 50, 4]) +
        tx(RW, ports=RAW_PORTS, plen=10, extra=struct.pack('<II', 7, 9)) +
        tx(REQUEST, ports=GUESS, layout=3, extra=bytes([10])) +
        bytes([OP_EVQ, 0]) + bytes([OP_NOTIFY, 3]) +
        bytes([OP_RESET, 0x01, 3, 3, 0]) + rx(2) +
        tx(RW, plen=10, layout=5, extra=bytes([0x87])) +  # len 18: reset
        bytes([OP_RESET, 0x02, 5, 5, 1]) + rx(3, shape=2) +
        bytes([OP_RAW, 0x01 | 2 << 2, 0, 0x81]) + struct.pack('<IHH', 64, 2, 0))
    # The host program stops reading: the socket fills, then the device's
    # buffer; it reads a little (a partial flush), the guest sends more.
    backpressure = (
        full + rx(8) +
        bytes([OP_LISTEN, 1 | 2 << 2]) +             # PATH_5001
        tx(REQUEST, ports=LISTENER, port_byte=1 << 2) +
        bytes([OP_ACCEPT, 1]) +
        tx(RW, plen=240000) + tx(CREDIT_REQUEST) +
        hread(0, 50000) + tx(RW, plen=60000) + tx(CREDIT_REQUEST) +
        hread(0, 20000) + tx(RW, plen=60000) + rx(8) +
        hread(0, 200000) + hread(0, 200000) + tx(CREDIT_REQUEST) +
        tx(SHUTDOWN, shut=3) + hread(0, 200000))
    # 256 guest connections (every slot), then one more from each side.
    crowd = (
        bytes([0x03, 7, 8, 1]) + rx(8, shape=2) * 8 +  # 64 header-only
        bytes([OP_LISTEN, 2 | 0x10]) +               # PATH_5002, backlog 512
        bytes([OP_BURST, 127, 2]) + struct.pack('<H', 0) +
        bytes([OP_BURST, 127, 2]) + struct.pack('<H', 128) +
        bytes([OP_BURST, 3, 2]) + struct.pack('<H', 256) +
        bytes([OP_HCONNECT]) + hsend_connect(0) + hread(0))
    # Out of fds: the device cannot accept until a connection closes.
    no_fds = (
        full + rx(8) +
        bytes([OP_HCONNECT]) + hsend_connect(0) +    # REQUEST to 1024
        bytes([OP_FDLIMIT, 1]) +
        bytes([OP_HCONNECT]) +                       # the last fd: EMFILE
        bytes([OP_HCLOSE, 0]) +                      # the first one goes
        hsend_connect(0, 1) + hread(0))
    # Bulk data both ways on a host-initiated connection (the bytes are
    # checked), over rx chains of odd shapes and split tx chains.
    host_bulk = (
        full + rx(8) +
        bytes([OP_HCONNECT]) + hsend_connect(0) + tx(RESPONSE) + hread(0) +
        hsend_data(0, 60000) +
        # a header over five pieces; zero-length pieces; 60 bytes; huge
        bytes([OP_RX, 3, 0, 5, 3, 10, 20, 14, 7, 200, 7, 99, 1, 0x10, 0x20,
               4]) +
        tx(CREDIT_UPDATE) + rx(8) + rx(8, shape=0x20) +  # indirect
        tx(RW, plen=240000, layout=2, extra=bytes([4, 100, 200, 50, 7, 9])) +
        hread(0, 240000) +
        tx(RW, plen=70000, layout=3, extra=bytes([20])) +
        tx(RW, plen=3000, layout=4, indirect=True) + hread(0, 100000) +
        tx(RW, plen=500, layout=5, extra=bytes([100])) +  # len: 400 of 500
        hread(0, 1000) +
        tx(CREDIT_UPDATE) + rx(8) + hread(0, 100000))
    return {
        'vsock-host-bulk': host_bulk,
        'vsock-crowd': crowd,
        'vsock-no-fds': no_fds,
        'vsock-backpressure': backpressure,
        'vsock-host-session': host_session,
        'vsock-guest-session': guest_session,
        'vsock-timers': timers,
        'vsock-hostile': hostile,
    }


# ---- fuzz_agent_client ----

HELLO_OK, ERROR, STARTED, STDOUT, STDERR, EXIT = 2, 5, 17, 20, 21, 22
PONG, DATA, DATA_END, FILE_OK = 4, 34, 35, 36


def frame(typ, fid, payload=b''):
    return struct.pack('<IHHI', len(payload), typ, 0, fid) + payload


def string(text):
    return struct.pack('<I', len(text)) + text


def agent_client():
    hello = frame(HELLO_OK, 0, struct.pack('<I', 1) + string(b'hutch-agent 0.1'))

    def run(fid, code=0, out=b'hello\n', err=b'warning\n'):
        return (frame(STARTED, fid, struct.pack('<I', 1234)) +
                frame(STDOUT, fid, out) + frame(STDERR, fid, err) +
                frame(EXIT, fid, struct.pack('<iiB', code, 0, 0)))

    def get(fid, data=b'guest file\n'):
        return (frame(FILE_OK, fid, struct.pack('<IQ', 0o644, len(data))) +
                frame(DATA, fid, data[:4]) + frame(DATA, fid, data[4:]) +
                frame(DATA_END, fid))

    put_ok = frame(FILE_OK, 3, struct.pack('<Q', 20))
    error = frame(ERROR, 1, struct.pack('<i', 2) +
                  string(b'\x1b]0;title\x07no such \xe2\x80\xae file \xc3\xa9'))
    return {
        'agent-hello': bytes([0, 32]) + hello,
        'agent-exec': bytes([1, 0]) + run(1, code=3),
        'agent-exec-stdin-signals': bytes([0x81, 0x26]) + run(1),
        'agent-exec-error': bytes([1, 0]) + error,
        'agent-exec-stalled': bytes([0x39, 0]) + frame(STARTED, 1, b'\0' * 4),
        'agent-get': bytes([2, 0]) + get(1),
        'agent-put': bytes([3, 20]) + frame(FILE_OK, 1, struct.pack('<Q', 20)),
        'agent-recv': bytes([4, 0]) + frame(PONG, 0, b'ping') + hello +
                      frame(STDOUT, 9, b'x' * 100),
        'agent-session': bytes([5, 20]) + hello + run(1) + get(2) + put_ok,
        'agent-two-execs': bytes([6, 0]) + frame(STARTED, 1, b'\0' * 4) +
                           frame(STARTED, 2, b'\0' * 4) + frame(STDOUT, 1, b'one') +
                           frame(STDOUT, 2, b'two') +
                           frame(EXIT, 2, b'\0' * 9) + frame(EXIT, 1, b'\0' * 9),
        'agent-text': bytes([7, 40]) +
                      'plain, é, \u202e, \x1b[2J, \x9b'.encode() + b'\xc0\xaf\xed\xa0\x80',
    }


# ---- fuzz_snapshot ----

def snapshot():
    import zlib

    def sstr(t):
        b = t.encode()
        return struct.pack('<I', len(b)) + b

    def section(tag, inst, payload):
        return tag + struct.pack('<IQ', inst, len(payload)) + payload

    def state(sections, major=1):
        body = b'HUTCHSNP' + struct.pack('<HHI', major, 0, 0) + b''.join(sections)
        return body + struct.pack('<I', zlib.crc32(body))

    conf = section(b'CONF', 0, struct.pack('<I', 1) + bytes(range(16)) +
                   sstr('x86_64') + struct.pack('<IQI', 1, 256, 1) +
                   sstr('virtio-rng') + sstr('') + b'\0')
    uart = section(b'SERL', 0, struct.pack('<I', 1) + bytes([1, 3, 8, 0, 1, 1, 0, 0, 2]) + b'ab')
    # A transport: DRIVER_OK, two queues of 16 at the fake RAM's start.
    queue = struct.pack('<HQQQBHHHB', 16, 0x1000, 0x2000, 0x3000, 1, 0, 0, 0, 0)
    transport = (struct.pack('<IIQIQIIIII', 1, 4, (1 << 28) | (1 << 29), 15,
                             (1 << 32) | (1 << 29), 0, 0, 0, 0, 0) +
                 struct.pack('<H', 2) + queue + queue)
    dev = section(b'DEV ', 0, transport)
    return {
        'conf-uart-dev': b'\1' + state([conf, uart, dev]),
        'bad-crc': b'\0' + state([conf]),
        'major-2': b'\1' + state([conf], major=2),
    }


# ---- fuzz_net ----

def net():
    gw, me = bytes.fromhex('52550a000202'), bytes.fromhex('525400123456')

    def ip4(proto, src, dst, l4):
        hdr = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 0, 0x4000,
                          64, proto, 0, bytes(map(int, src.split('.'))),
                          bytes(map(int, dst.split('.'))))
        return hdr + l4

    def udp(sport, dport, payload):
        return struct.pack('>HHHH', sport, dport, 8 + len(payload), 0) + payload

    def tcp(sport, dport, flags, payload=b''):
        return struct.pack('>HHIIBBHHH', sport, dport, 16, 32, 5 << 4, flags,
                           65535, 0, 0) + payload

    def eth(dst, src, payload):
        return dst + src + b'\x08\x00' + payload

    def rec(op, body):
        return bytes([op]) + struct.pack('<H', len(body)) + body

    def guest(l3):  # op 0: virtio-net header (no flags) + frame
        return rec(0, bytes(12) + eth(gw, me, l3))

    def dns_name(n):
        return b''.join(bytes([len(p)]) + p.encode() for p in n.split('.')) + b'\0'

    def query(n, qid=0x1234):
        return struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0) + dns_name(n) + \
            struct.pack('>HH', 1, 1)

    def answer(n, addr, qid=0x1234):
        return struct.pack('>HHHHHH', qid, 0x8180, 1, 1, 0, 0) + dns_name(n) + \
            struct.pack('>HH', 1, 1) + b'\xc0\x0c' + \
            struct.pack('>HHIH', 1, 1, 60, 4) + bytes(map(int, addr.split('.')))

    def hello(name):
        n = name.encode()
        ext = struct.pack('>HHHBH', 0, len(n) + 5, len(n) + 3, 0, len(n)) + n
        body = b'\x03\x03' + bytes(32) + b'\0' + b'\0\x02\x13\x01' + b'\x01\0' + \
            struct.pack('>H', len(ext)) + ext
        hs = b'\x01' + struct.pack('>I', len(body))[1:] + body
        return b'\x16\x03\x01' + struct.pack('>H', len(hs)) + hs

    q = guest(ip4(17, '10.0.2.15', '10.0.2.3', udp(40000, 53, query('allowed.test'))))
    qb = guest(ip4(17, '10.0.2.15', '10.0.2.3', udp(40000, 53, query('blocked.test'))))
    a = rec(1, eth(me, gw, ip4(17, '10.0.2.3', '10.0.2.15',
                               udp(53, 40000, answer('allowed.test', '192.0.2.10')))))
    syn = guest(ip4(6, '10.0.2.15', '192.0.2.10', tcp(40001, 443, 0x02)))
    data = guest(ip4(6, '10.0.2.15', '192.0.2.10',
                     tcp(40001, 443, 0x18, hello('allowed.test'))))
    bad = guest(ip4(6, '10.0.2.15', '192.0.2.10',
                    tcp(40001, 443, 0x18, hello('other.test'))))
    http = guest(ip4(6, '10.0.2.15', '192.0.2.10',
                     tcp(40002, 80, 0x18, b'GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n')))
    return {
        'dns-pin-tls': q + a + syn + data + bad,
        'dns-refused': qb,
        'http': q + a + guest(ip4(6, '10.0.2.15', '192.0.2.10', tcp(40002, 80, 0x02))) + http,
        'readers': rec(2, hello('allowed.test')) + rec(3, query('x.cdn.test')) +
        rec(3, answer('allowed.test', '192.0.2.10')),
    }


TARGETS = {
    'fuzz_virtq_blk': virtq_blk,
    'fuzz_vsock': vsock,
    'fuzz_agent_client': agent_client,
    'fuzz_snapshot': snapshot,
    'fuzz_net': net,
}

if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in TARGETS:
        sys.exit('usage: seeds.py {%s} DIR' % ','.join(TARGETS))
    write_all(sys.argv[2], TARGETS[sys.argv[1]]())
