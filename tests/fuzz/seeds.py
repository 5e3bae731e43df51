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


TARGETS = {
    'fuzz_virtq_blk': virtq_blk,
}

if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in TARGETS:
        sys.exit('usage: seeds.py {%s} DIR' % ','.join(TARGETS))
    write_all(sys.argv[2], TARGETS[sys.argv[1]]())
