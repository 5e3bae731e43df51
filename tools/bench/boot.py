#!/usr/bin/env python3
"""Boot benchmark: hutch vs QEMU microvm, same kernel, initramfs, command.

Runs each configuration N times, interleaved (hutch and QEMU alternate, so
drift in a noisy nested host hits both alike), and prints one table:
time to guest init and to VMM exit (median, min, max), the VMM's peak RSS,
and KVM exits per boot read from debugfs (the steadier figure).

Needs a working /dev/kvm: tools/bench runs this through tools/l1/kvm-run.
"""
import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST = os.path.join(ROOT, "build", "guest")
HUTCH = os.path.join(ROOT, "build", "hutch")
MARK = b"BENCH-INIT"
# Identical guest command line for every VMM: hutch prepends exactly
# "console=ttyS0 reboot=k pci=off", so QEMU gets that spelled out.
# The guest's uptime at init is its kernel's own time to init (from
# timekeeping's start, early in start_kernel): the floor no VMM removes.
USER_CMDLINE = 'quiet -- sh -c "echo BENCH-INIT; cat /proc/uptime; reboot -f"'
# QEMU's microvm has no i8042, so reboot=k would spin in kb_wait (an exit
# per status read); reboot=t resets it by triple fault instead, which
# -no-reboot turns into QEMU's exit.  Boot to init is unaffected.
FULL_CMDLINE = "console=ttyS0 reboot=t pci=off " + USER_CMDLINE
DEBUGFS = "/sys/kernel/debug/kvm"


def hutch_cmd(kernel, mem, binary=HUTCH):
    return [binary, "boot", "--kernel", os.path.join(GUEST, kernel),
            "--initrd", os.path.join(GUEST, "initramfs.cpio"),
            "--mem", str(mem), "--cmdline", USER_CMDLINE, "--stats"]


def qemu_cmd(kernel, mem):
    return ["qemu-system-x86_64", "-M", "microvm,acpi=off", "-accel", "kvm",
            "-cpu", "host", "-m", str(mem), "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-vga", "none",
            "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-kernel", os.path.join(GUEST, kernel),
            "-initrd", os.path.join(GUEST, "initramfs.cpio"),
            "-append", FULL_CMDLINE]


class ExitPoller(threading.Thread):
    """Follows /sys/kernel/debug/kvm/<pid>-<fd>/ while the VM lives."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.last = pid, False, {}

    def run(self):
        while not self.stop:
            for d in glob.glob(f"{DEBUGFS}/{self.pid}-*"):
                vals = {}
                for name in ("exits", "io_exits", "mmio_exits"):
                    try:
                        with open(os.path.join(d, name)) as f:
                            vals[name] = int(f.read())
                    except (OSError, ValueError):
                        pass
                if len(vals) == 3:
                    self.last = vals
            time.sleep(0.002)


def run_once(cmd, timeout, poll_exits):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    poller = ExitPoller(p.pid) if poll_exits else None
    if poller:
        poller.start()
    t_init, buf = None, b""
    os.set_blocking(p.stdout.fileno(), True)
    while True:
        chunk = p.stdout.read1(65536)
        if not chunk:
            break
        buf += chunk
        if t_init is None and MARK in buf:
            t_init = time.monotonic() - t0
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    t_exit = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if poller:
        poller.stop = True
        poller.join()
    stats = {}
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("hutch-stats:"):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                stats[k] = v
    m = re.search(MARK + rb"\r?\n(\d+\.\d+) ", buf)
    return {"init": t_init, "exit": t_exit, "rc": p.returncode,
            "uptime": float(m.group(1)) if m else None,
            "maxrss_kib": ru.ru_maxrss, "stats": stats,
            "exits": poller.last if poller else {}, "err": err}


def med_fmt(vals, fmt="%.1f"):
    """'median (min–max)' of the values that are not None, and the median."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a", None
    m = statistics.median(vals)
    return f"{fmt % m} ({fmt % min(vals)}–{fmt % max(vals)})", m


def save_table(path, lines):
    """Print a benchmark's table and save it (build/bench/*.md)."""
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(text)


def fmt_ms(vals):
    vals = [v * 1000 for v in vals if v is not None]
    if not vals:
        return "n/a"
    return "%.0f (%.0f–%.0f)" % (statistics.median(vals), min(vals), max(vals))


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10, help="boots per configuration")
    ap.add_argument("--mem", type=int, default=256)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "boot.md"))
    ap.add_argument("--baseline", metavar="HUTCH",
                    help="also boot this hutch binary (an earlier build), PVH, in the same rounds")
    args = ap.parse_args()

    if not os.path.isdir(DEBUGFS):
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"],
                       stderr=subprocess.DEVNULL)
    configs = [
        ("hutch", "PVH vmlinux", hutch_cmd("vmlinux", args.mem)),
        ("QEMU microvm", "PVH vmlinux", qemu_cmd("vmlinux", args.mem)),
        ("hutch", "bzImage", hutch_cmd("bzImage", args.mem)),
        ("QEMU microvm", "bzImage", qemu_cmd("bzImage", args.mem)),
    ]
    if args.baseline:
        configs.append(("hutch (baseline)", "PVH vmlinux",
                        hutch_cmd("vmlinux", args.mem, os.path.abspath(args.baseline))))
    results = {i: [] for i in range(len(configs))}
    exits = {}
    # One extra run per configuration, not timed, counts KVM exits.
    for i, (_, _, cmd) in enumerate(configs):
        exits[i] = run_once(cmd, 300, True)
    for n in range(args.n):
        for i, (vmm, kernel, cmd) in enumerate(configs):
            r = run_once(cmd, 300, False)
            if r["rc"] != 0 or r["init"] is None:
                sys.stderr.write(f"{vmm} {kernel}: run {n} failed rc={r['rc']}\n"
                                 + r["err"].decode(errors="replace")[-2000:])
            results[i].append(r)
        print(f"bench: round {n + 1}/{args.n} done", file=sys.stderr, flush=True)

    host = "nested (L1 under TCG)" if not glob.glob("/sys/module/kvm_intel") and \
        open("/proc/cpuinfo").read().find("AMD") >= 0 else os.uname().nodename
    lines = [
        f"Boot to init and to VMM exit, {args.n} interleaved boots each, "
        f"{args.mem} MiB, 1 vCPU, same kernel/initramfs/command line; "
        f"host: {host}, kernel {os.uname().release}.",
        "",
        "| VMM | kernel | time to init, ms median (min–max) | guest kernel's own time to init "
        "(its uptime at init), ms | the rest (VMM start to kernel, console), ms "
        "| time to exit, ms median (min–max) "
        "| peak RSS, MiB | KVM exits per boot (all / PIO+MMIO) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (vmm, kernel, _) in enumerate(configs):
        rs = results[i]
        e = exits[i]["exits"]
        ex = f"{e['exits']} / {e['io_exits'] + e['mmio_exits']}" if e else "n/a"
        rss = med([r["maxrss_kib"] / 1024 for r in rs])
        rest = [r["init"] - r["uptime"] for r in rs
                if r["init"] is not None and r["uptime"] is not None]
        lines.append(f"| {vmm} | {kernel} | {fmt_ms([r['init'] for r in rs])} | "
                     f"{fmt_ms([r['uptime'] for r in rs])} | {fmt_ms(rest)} | "
                     f"{fmt_ms([r['exit'] for r in rs])} | {rss:.1f} | {ex} |")
    hutch_runs = results[0] + results[2]
    vmm_rss = med([float(r["stats"].get("vmm_rss_kib", "nan")) for r in hutch_runs
                   if "vmm_rss_kib" in r["stats"]])
    vmm_exits = med([int(r["stats"]["vmm_exits"]) for r in results[0]
                     if "vmm_exits" in r["stats"]])
    setup = med([float(r["stats"]["setup_ms"]) for r in results[0]
                 if "setup_ms" in r["stats"]])
    lines += ["",
              f"hutch's own RSS excluding guest memory (median): {vmm_rss / 1024:.2f} MiB; "
              f"exits returned to hutch per PVH boot (median): {vmm_exits}"
              + (f"; hutch's set-up from its start to vCPU 0's first KVM_RUN, PVH (median): "
                 f"{setup:.1f} ms" if setup is not None else "") + "."
              if vmm_rss is not None and vmm_exits is not None else ""]
    ratio = []
    for a, b, name in ((0, 1, "PVH"), (2, 3, "bzImage")):
        ha, qb = med([r["init"] for r in results[a]]), med([r["init"] for r in results[b]])
        if ha and qb:
            ratio.append(f"{name}: hutch/QEMU time-to-init = {ha / qb:.2f}")
        # The part a VMM can change: time to init less the guest kernel's
        # own uptime (nested, no steadier than the whole: see README).
        ra = med([r["init"] - r["uptime"] for r in results[a]
                  if r["init"] is not None and r["uptime"] is not None])
        rb = med([r["init"] - r["uptime"] for r in results[b]
                  if r["init"] is not None and r["uptime"] is not None])
        if ra and rb:
            ratio.append(f"{name}: hutch/QEMU the rest = {ra / rb:.2f}")
    if args.baseline:
        ha, hb = med([r["init"] for r in results[0]]), med([r["init"] for r in results[4]])
        if ha and hb:
            ratio.append(f"PVH: hutch/baseline time-to-init = {ha / hb:.2f}")
    lines.append("; ".join(ratio))
    save_table(args.out, lines)


if __name__ == "__main__":
    main()
