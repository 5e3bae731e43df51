#!/usr/bin/env python3
"""Disk benchmark: hutch vs QEMU microvm, both with virtio-blk over MMIO.

Same kernel, initramfs, root image (Debian 12 + fio, read-only) and data
image (a raw file on the same file system, opened O_DIRECT with Linux AIO
by both: hutch always, QEMU with cache=none,aio=native).  Inside each
guest, fio runs four 4 KiB jobs on the data disk (sequential and random,
read and write, iodepth 16, O_DIRECT, libaio).  Runs alternate between
the VMMs; the table gives the median of N runs with min and max, plus
boot to a command running on the Debian root disk.

Per I/O, for both VMMs (the breakdown of why the ratio is what it is):
KVM's exit counters (debugfs, every counter KVM keeps for the VM, read
when the guest prints FIO-START and FIO-END), the guest's interrupts on
the data disk (/proc/interrupts) against fio's completed I/Os; for
hutch also its own counters (--stats: kicks, interrupts, reaps).

Needs a working /dev/kvm: tools/bench runs this through tools/l1/kvm-run.
"""
import argparse
import glob
import json
import os
import re
import select
import subprocess
import sys
import tempfile
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
# fio between markers (KVM's counters are read as each appears), then
# which virtio device the data disk is and the guest's interrupt counts.
FIO_CMD = ('sh -c "echo FIO-START; ' + FIO +
           '; echo FIO-END; ls -l /sys/block/vdb/device; cat /proc/interrupts"')
DEBUGFS = "/sys/kernel/debug/kvm"
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


def kvm_counters(pid):
    """Every counter KVM keeps for the VM of process pid (debugfs)."""
    vals = {}
    for d in glob.glob(f"{DEBUGFS}/{pid}-*"):
        for f in os.listdir(d):
            try:
                with open(os.path.join(d, f)) as fh:
                    vals[f] = vals.get(f, 0) + int(fh.read())
            except (OSError, ValueError):
                pass
    return vals


def guest_irqs(out):
    """Interrupts the guest took on the data disk's virtio device."""
    text = out.decode(errors="replace")
    m = re.search(r"/sys/block/vdb/device -> \S*/(virtio\d+)", text)
    if not m:
        return None
    for line in text.splitlines():
        f = line.split()
        if f and f[-1] == m.group(1) and f[0].endswith(":"):
            return sum(int(x) for x in f[1:] if x.isdigit())
    return None


def fio_ios(out):
    text = out.decode(errors="replace")
    start, end = text.find("{"), text.rfind("}")
    try:
        doc = json.loads(text[start:end + 1])
        return sum(j["read"]["total_ios"] + j["write"]["total_ios"] for j in doc["jobs"])
    except (ValueError, KeyError):
        return None


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


def run_until_done(cmd, timeout=600, wait_exit=False):
    """Run a VMM until the guest's init reports; time to MARK, output,
    KVM's counters at FIO-START and FIO-END; with wait_exit, let the VMM
    exit by itself (the guest powers off) and keep its stderr."""
    t0 = time.monotonic()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=err if wait_exit else subprocess.DEVNULL)
    buf, t_mark, kvm = b"", None, {}
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
        for k in (b"FIO-START", b"FIO-END"):
            if k not in kvm and re.search(rb"^" + k + rb"\r?$", buf, re.M):
                kvm[k] = kvm_counters(p.pid)
        if DONE.search(buf):
            break
    if wait_exit:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    p.kill()
    p.wait()
    m = DONE.search(buf)
    ok = bool(m) and m.group(1) == b"0"
    err.seek(0)
    stats = err.read().decode(errors="replace")
    err.close()
    delta = {}
    if b"FIO-START" in kvm and b"FIO-END" in kvm:
        a, b = kvm[b"FIO-START"], kvm[b"FIO-END"]
        delta = {k: b[k] - a.get(k, 0) for k in b}
    return {"ok": ok, "init": t_mark, "out": buf, "kvm": delta, "stderr": stats}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3, help="runs per VMM")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per fio job")
    ap.add_argument("--root", default=os.path.join(GUEST, "bench.ext4"))
    ap.add_argument("--dir", default="/tmp", help="where the data image lives")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(GUEST), "bench", "disk.md"))
    ap.add_argument("--variant", action="append", default=[], metavar="VAR=VALUE",
                    help="also run hutch with this environment setting, in the same rounds")
    args = ap.parse_args()

    data = os.path.join(args.dir, "hutch-bench-data.img")
    # Written through once, so reads hit allocated blocks on the host.
    # Flushed before the first run, or its writeback would compete with
    # whichever VMM goes first.
    subprocess.run(["dd", "if=/dev/urandom", f"of={data}", "bs=1M", "count=272",
                    "conv=fsync", "status=none"], check=True)
    subprocess.run(["sync"], check=True)
    fio = FIO_CMD.format(rt=args.runtime)
    if not os.path.isdir(DEBUGFS):
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"],
                       stderr=subprocess.DEVNULL)
    vmms = [("hutch", hutch_cmd, {}), ("QEMU microvm", qemu_cmd, {})]
    # Variants of hutch (an environment setting each) in the same rounds.
    for v in args.variant:
        k, _, val = v.partition("=")
        vmms.insert(-1, (f"hutch {v}", hutch_cmd, {k: val}))
    boot = {v: [] for v, _, _ in vmms}
    fio_runs = {v: [] for v, _, _ in vmms}
    # Per run: {counter: per completed I/O}.
    per_io = {v: [] for v, _, _ in vmms}
    for n in range(args.n):
        # Alternate which VMM goes first in each round.
        for name, mk, env in (vmms if n % 2 == 0 else vmms[::-1]):
            os.environ.update(env)
            try:
                r = run_until_done(mk(args.root, None, args.mem, BOOT_CMD))
                if not r["ok"] or r["init"] is None:
                    sys.stderr.write(f"{name} rootfs boot failed\n" +
                                     r["out"].decode(errors="replace")[-2000:])
                boot[name].append(r["init"] if r["ok"] else None)
                f = run_until_done(mk(args.root, data, args.mem, fio),
                                   wait_exit=name.startswith("hutch"))
            finally:
                for k in env:
                    del os.environ[k]
            res = fio_results(f["out"]) if f["ok"] else None
            if res is None:
                sys.stderr.write(f"{name} fio run failed\n" +
                                 f["out"].decode(errors="replace")[-3000:])
            fio_runs[name].append(res)
            ios = fio_ios(f["out"]) if res else None
            if ios:
                row = {"kvm " + k: v / ios for k, v in f["kvm"].items()}
                irqs = guest_irqs(f["out"])
                if irqs:
                    row["guest interrupts (data disk)"] = irqs / ios
                m = re.search(r"hutch-stats: drive=1 (.*)", f["stderr"])
                if m:
                    st = dict(kv.split("=", 1) for kv in m.group(1).split())
                    for k in ("kicks", "irqs", "reaps"):
                        if k in st:
                            row["hutch " + k] = int(st[k]) / ios
                per_io[name].append(row)
        print(f"bench-disk: round {n + 1}/{args.n} done", file=sys.stderr, flush=True)
    os.unlink(data)

    names = [v for v, _, _ in vmms]
    lines = [
        f"virtio-blk, {args.n} interleaved runs per VMM (alternating which goes first), 1 vCPU, {args.mem} MiB; fio 4 KiB, "
        f"iodepth 16, O_DIRECT + libaio in the guest, {args.runtime} s per job; data image "
        f"on {args.dir} opened O_DIRECT + Linux AIO by both VMMs; kernel {os.uname().release}.",
        "",
        "| measure | " + " | ".join(f"{v}, median (min–max)" for v in names) + " | " +
        " | ".join(f"{v} / QEMU" for v in names[:-1]) + " |",
        "|---|" + "---|" * (2 * len(names) - 1),
    ]

    def row_of(what, per_vmm, fmt):
        cells, meds = [], []
        for v in names:
            c, m = med_fmt(per_vmm[v], fmt)
            cells.append(c)
            meds.append(m)
        ratios = [f"{m / meds[-1]:.2f}" if m and meds[-1] else "n/a" for m in meds[:-1]]
        return f"| {what} | " + " | ".join(cells + ratios) + " |"

    lines.append(row_of("boot to a command on the Debian root disk, ms (lower is better)",
                        {v: [t * 1000 if t else None for t in boot[v]] for v in names}, "%.0f"))
    for job, _ in JOBS:
        for idx, unit in ((0, "MiB/s"), (1, "IOPS")):
            lines.append(row_of(f"{job} 4 KiB, {unit}", {
                v: [r[job][idx] if r and job in r else None for r in fio_runs[v]]
                for v in names}, "%.1f" if idx == 0 else "%.0f"))
    lines += [
        "",
        "Per completed I/O, all four jobs together (median of the runs): KVM's "
        "counters for the VM over the fio run (debugfs; those at 0.05 or more "
        "for any VMM), the guest's interrupts on the data disk, hutch's own.",
        "",
        "| per I/O | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def med_of(name, k):
        vals = sorted(r[k] for r in per_io[name] if k in r)
        return vals[len(vals) // 2] if vals else None

    keys = sorted({k for v in per_io.values() for r in v for k in r})
    shown = []
    for k in keys:
        vals = [med_of(v, k) for v in names]
        if max(x or 0 for x in vals) >= 0.05:
            shown.append((k, vals))
    shown.sort(key=lambda t: (not t[0].startswith("kvm"), -(t[1][0] or 0)))
    for k, vals in shown:
        lines.append(f"| {k} | " + " | ".join("–" if x is None else f"{x:.2f}" for x in vals) + " |")
    save_table(args.out, lines)


if __name__ == "__main__":
    main()
