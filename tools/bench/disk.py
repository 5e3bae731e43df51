#!/usr/bin/env python3
"""Disk benchmark: hutch vs QEMU microvm, both with virtio-blk over MMIO.

Same kernel, initramfs, root image (Debian 12 + fio, read-only) and data
image (a raw file on the same file system, opened O_DIRECT with Linux AIO
by both: hutch always, QEMU with cache=none,aio=native).  Inside each
guest, fio runs four 4 KiB jobs on the data disk (sequential and random,
read and write, iodepth 16, O_DIRECT, libaio).  Runs alternate between
the VMMs; the table gives the median of N runs with min and max, plus
boot to a command running on the Debian root disk.

Needs a working /dev/kvm: tools/bench runs this through tools/l1/kvm-run.
"""
import argparse
import json
import os
import re
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import GUEST, HUTCH, med_fmt, save_table  # noqa: E402

# QEMU microvm has neither ACPI poweroff (acpi=off) nor an i8042, so the
# guest's final poweroff only halts it: both VMMs are stopped once the
# guest's init reports the command's status, which it prints last.
DONE = re.compile(rb"hutch-init: exit status (\d+)\r?\n")
# QEMU's own virtio_mmio.device= words would land after our "--" (it
# appends them), so they are given here, in device order.
QEMU_MMIO = ["virtio_mmio.device=512@0xfeb00e00:12",
             "virtio_mmio.device=512@0xfeb00c00:11"]

JOBS = [("seqread", "read"), ("seqwrite", "write"),
        ("randread", "randread"), ("randwrite", "randwrite")]
FIO = ("fio --output-format=json --filename=/dev/vdb --direct=1 "
       "--ioengine=libaio --iodepth=16 --bs=4k --size=256M "
       "--runtime={rt} --time_based " +
       " ".join(f"--name={n} --stonewall --rw={rw}" for n, rw in JOBS))
BOOT_CMD = 'sh -c "echo BENCH-INIT; cat /etc/debian_version"'
MARK = b"BENCH-INIT"


def hutch_cmd(root, data, mem, cmd):
    drives = ["--drive", f"path={root},ro,root"]
    if data:
        drives += ["--drive", f"path={data}"]
    return [HUTCH, "boot", "--kernel", os.path.join(GUEST, "vmlinux"),
            "--initrd", os.path.join(GUEST, "initramfs.cpio"),
            "--mem", str(mem), "--cmdline", "quiet -- " + cmd, "--stats"] + drives


def qemu_cmd(root, data, mem, cmd):
    drives = ["-drive", f"file={root},if=none,id=root,format=raw,readonly=on,"
              "cache=none,aio=native",
              "-device", "virtio-blk-device,drive=root"]
    if data:
        drives += ["-drive", f"file={data},if=none,id=data,format=raw,"
                   "cache=none,aio=native",
                   "-device", "virtio-blk-device,drive=data"]
    mmio = " ".join(QEMU_MMIO[:2 if data else 1])
    return ["qemu-system-x86_64", "-M", "microvm,acpi=off,auto-kernel-cmdline=off",
            "-accel", "kvm",
            "-cpu", "host", "-m", str(mem), "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-vga", "none",
            "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-kernel", os.path.join(GUEST, "vmlinux"),
            "-initrd", os.path.join(GUEST, "initramfs.cpio"),
            "-append", f"console=ttyS0 reboot=t pci=off {mmio} root=/dev/vda ro quiet -- " + cmd
            ] + drives


def fio_results(out):
    text = out.decode(errors="replace")
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < 0:
        return None
    try:
        doc = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    res = {}
    for job in doc.get("jobs", []):
        side = job["read"] if job["read"]["io_bytes"] else job["write"]
        res[job["jobname"]] = (side["bw_bytes"] / 2**20, side["iops"])
    return res


def run_until_done(cmd, timeout=600):
    """Run a VMM until the guest's init reports; time to MARK, output."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    buf, t_mark = b"", None
    while time.monotonic() - t0 < timeout:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if not r:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        if t_mark is None and MARK in buf:
            t_mark = time.monotonic() - t0
        if DONE.search(buf):
            break
    p.kill()
    p.wait()
    m = DONE.search(buf)
    ok = bool(m) and m.group(1) == b"0"
    return {"ok": ok, "init": t_mark, "out": buf}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3, help="runs per VMM")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per fio job")
    ap.add_argument("--root", default=os.path.join(GUEST, "bench.ext4"))
    ap.add_argument("--dir", default="/tmp", help="where the data image lives")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(GUEST), "bench", "disk.md"))
    args = ap.parse_args()

    data = os.path.join(args.dir, "hutch-bench-data.img")
    # Written through once, so reads hit allocated blocks on the host.
    # Flushed before the first run, or its writeback would compete with
    # whichever VMM goes first.
    subprocess.run(["dd", "if=/dev/urandom", f"of={data}", "bs=1M", "count=272",
                    "conv=fsync", "status=none"], check=True)
    subprocess.run(["sync"], check=True)
    fio = FIO.format(rt=args.runtime)
    vmms = [("hutch", hutch_cmd), ("QEMU microvm", qemu_cmd)]
    boot = {v: [] for v, _ in vmms}
    fio_runs = {v: [] for v, _ in vmms}
    for n in range(args.n):
        # Alternate which VMM goes first in each round.
        for name, mk in (vmms if n % 2 == 0 else vmms[::-1]):
            r = run_until_done(mk(args.root, None, args.mem, BOOT_CMD))
            if not r["ok"] or r["init"] is None:
                sys.stderr.write(f"{name} rootfs boot failed\n" +
                                 r["out"].decode(errors="replace")[-2000:])
            boot[name].append(r["init"] if r["ok"] else None)
            f = run_until_done(mk(args.root, data, args.mem, fio))
            res = fio_results(f["out"]) if f["ok"] else None
            if res is None:
                sys.stderr.write(f"{name} fio run failed\n" +
                                 f["out"].decode(errors="replace")[-3000:])
            fio_runs[name].append(res)
        print(f"bench-disk: round {n + 1}/{args.n} done", file=sys.stderr, flush=True)
    os.unlink(data)

    lines = [
        f"virtio-blk, {args.n} interleaved runs per VMM (alternating which goes first), 1 vCPU, {args.mem} MiB; fio 4 KiB, "
        f"iodepth 16, O_DIRECT + libaio in the guest, {args.runtime} s per job; data image "
        f"on {args.dir} opened O_DIRECT + Linux AIO by both VMMs; kernel {os.uname().release}.",
        "",
        "| measure | hutch, median (min–max) | QEMU microvm, median (min–max) | hutch / QEMU |",
        "|---|---|---|---|",
    ]
    h, m1 = med_fmt([t * 1000 if t else None for t in boot["hutch"]], "%.0f")
    q, m2 = med_fmt([t * 1000 if t else None for t in boot["QEMU microvm"]], "%.0f")
    ratio = f"{m1 / m2:.2f}" if m1 and m2 else "n/a"
    lines.append(f"| boot to a command on the Debian root disk, ms (lower is better) | {h} | {q} | {ratio} |")
    for job, _ in JOBS:
        for idx, unit in ((0, "MiB/s"), (1, "IOPS")):
            cells, meds = [], []
            for name, _ in vmms:
                vals = [r[job][idx] if r and job in r else None for r in fio_runs[name]]
                c, m = med_fmt(vals, "%.1f" if idx == 0 else "%.0f")
                cells.append(c)
                meds.append(m)
            ratio = f"{meds[0] / meds[1]:.2f}" if meds[0] and meds[1] else "n/a"
            lines.append(f"| {job} 4 KiB, {unit} | {cells[0]} | {cells[1]} | {ratio} |")
    save_table(args.out, lines)


if __name__ == "__main__":
    main()
