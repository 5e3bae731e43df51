#!/usr/bin/env python3
"""Snapshots: restore against cold boot, hutch against itself.

For each guest size (256 MiB and 2 GiB by default), interleaved in each
round:
  - cold: `hutch start` of the Debian root image, then `hutch exec --
    true`: wall time from start to the first command's exit;
  - warm: `hutch restore` of a snapshot of such a VM, then `hutch exec --
    true`: the same measure;
  - `hutch snapshot` of a running VM: wall time, and the bytes its memory
    file takes on disk against its size;
and once per size, 8 VMs at once, restored from one snapshot against
cold-booted, each after running `true`: the sum of their VMMs' PSS (from
/proc/PID/smaps_rollup; guest RAM restored from a snapshot is the memory
file's page cache, shared, until the guest writes it).
Medians with min-max; the table is printed and saved to
build/bench/snapshot.md.  Needs /dev/kvm: tools/bench/run snapshot runs
this through tools/l1/kvm-run.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import GUEST, HUTCH, save_table  # noqa: E402


def hutch(*args, check=True):
    return subprocess.run([HUTCH, *args], check=check, timeout=600,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)


def timed(*cmds):
    t = time.monotonic()
    for c in cmds:
        hutch(*c)
    return (time.monotonic() - t) * 1000


def vmm_pid(name):
    with open(os.path.join(os.environ["HUTCH_STATE_DIR"], name, "pid")) as f:
        return int(f.read())


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cold(mem, rootfs, name):
    return timed(["start", "--mem", str(mem), "--rootfs", rootfs, name],
                 ["exec", name, "--", "true"])


def fmt(vals, f="%.0f"):
    return f"{f % statistics.median(vals)} ({f % min(vals)}–{f % max(vals)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5, help="rounds")
    ap.add_argument("--mem", type=int, nargs="*", default=[256, 2048])
    ap.add_argument("--clones", type=int, default=8)
    a = ap.parse_args()
    work = tempfile.mkdtemp(dir="/tmp")
    os.environ["HUTCH_STATE_DIR"] = os.path.join(work, "vms")
    os.mkdir(os.environ["HUTCH_STATE_DIR"], 0o700)
    rootfs = os.path.join(work, "root.ext4")
    subprocess.run(["cp", "--sparse=always",
                    os.path.join(GUEST, "debian.ext4"), rootfs], check=True)
    rows = []
    for mem in a.mem:
        snap = os.path.join(work, f"snap-{mem}")
        cold(mem, rootfs, "src")
        hutch("exec", "src", "--", "python3", "-c", "import os")
        r = {"cold": [], "warm": [], "snap": [], "disk": []}
        for i in range(a.n):
            r["snap"].append(timed(["snapshot", "src", snap]))
            st = os.stat(os.path.join(snap, "memory"))
            r["disk"].append(st.st_blocks * 512 / 2**20)
            for kind in (["cold", "warm"] if i % 2 == 0 else ["warm", "cold"]):
                if kind == "cold":
                    r[kind].append(cold(mem, rootfs, "x"))
                else:
                    r[kind].append(timed(["restore", snap, "x"],
                                         ["exec", "x", "--", "true"]))
                hutch("stop", "x")
            print(f"{mem} MiB round {i + 1}: " +
                  ", ".join(f"{k}={v[-1]:.0f}" for k, v in r.items()),
                  file=sys.stderr)
        hutch("stop", "src")
        pss = {}
        for kind in ("cold", "warm"):
            names = [f"{kind}{k}" for k in range(a.clones)]
            for n in names:
                if kind == "cold":
                    cold(mem, rootfs, n)
                else:
                    timed(["restore", snap, n], ["exec", n, "--", "true"])
            pss[kind] = sum(pss_kib(vmm_pid(n)) for n in names) / 1024
            for n in names:
                hutch("stop", n)
        med = {k: statistics.median(v) for k, v in r.items()}
        rows += [
            (f"{mem} MiB: start/restore to first exec, ms", fmt(r["cold"]),
             fmt(r["warm"]), f"{med['warm'] / med['cold']:.2f}×"),
            (f"{mem} MiB: `hutch snapshot`, ms; memory file on disk, MiB",
             "–", f"{fmt(r['snap'])}; {fmt(r['disk'])}", ""),
            (f"{mem} MiB: PSS of {a.clones} VMs, MiB", f"{pss['cold']:.0f}",
             f"{pss['warm']:.0f}", f"{pss['warm'] / pss['cold']:.2f}×"),
        ]
    lines = [
        f"Snapshots, nested (L1 under TCG), {a.n} interleaved rounds: "
        "median (min–max)",
        "",
        "| | cold boot | restored | restored / cold |",
        "|---|---|---|---|",
    ] + [f"| {a_} | {b} | {c} | {d} |" for a_, b, c, d in rows]
    save_table(os.path.join(os.path.dirname(GUEST), "bench", "snapshot.md"),
               lines)


if __name__ == "__main__":
    main()
