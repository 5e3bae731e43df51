#!/usr/bin/env python3
"""What the jail and seccomp cost: hutch against itself, side by side.

Interleaved in each round:
  - boot to init (initramfs, `-- true`) with and without --jail: the
    VMM's own timeline from --stats (boot_done_ms counts from vm_create;
    the jail's spawn_ms comes before it, its enter_ms inside it), and wall
    time to exit;
  - `hutch run -- true`, jailed (the default as root) and --no-jail,
    wall time;
  - virtio-blk IOPS, seccomp kill vs off: O_DIRECT 4 KiB reads (dd, one
    at a time) of a raw data disk, from the Debian root image;
  - vsock throughput, seccomp kill vs off: 128 MiB from the guest through
    `hutch exec` (jailed VMs).
Medians with min-max; the table is printed and saved to
build/bench/jail.md.  Needs /dev/kvm: tools/bench/run jail runs this
through tools/l1/kvm-run.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import GUEST, HUTCH, ROOT, save_table  # noqa: E402

STAT = re.compile(r"(\w+)=(-?[0-9.]+)")


def stats(err):
    out = {}
    for line in err.splitlines():
        if line.startswith("hutch-stats:"):
            out.update({k: float(v) for k, v in STAT.findall(line)})
    return out


def boot(jail):
    cmd = [HUTCH, "boot", "--stats", "--cmdline", "quiet -- true"]
    if jail:
        cmd.append("--jail")
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wall = (time.monotonic() - t) * 1000
    if p.returncode:
        raise RuntimeError(f"boot exited {p.returncode}: {p.stderr[-500:]}")
    s = stats(p.stderr)
    return {"init": s["boot_done_ms"] + s.get("spawn_ms", 0),
            "spawn": s.get("spawn_ms", 0), "enter": s.get("enter_ms", 0),
            "wall": wall}


def run_true(jail):
    cmd = [HUTCH, "run"] + ([] if jail else ["--no-jail"]) + ["--", "true"]
    t = time.monotonic()
    subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL)
    return (time.monotonic() - t) * 1000


def blk_iops(data, mode, count):
    dd = (f"dd if=/dev/vdb of=/dev/null bs=4k count={count} iflag=direct "
          "2>&1 | grep copied")
    cmd = [HUTCH, "boot", "--seccomp", mode, "--mem", "512",
           "--drive", f"path={os.path.join(GUEST, 'debian.ext4')},ro,root",
           "--drive", f"path={data},ro",
           # The kernel hands init words split on double quotes only.
           "--cmdline", f'quiet -- sh -c "{dd}"']
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"copied, ([0-9.]+) s", p.stdout)
    if not m:
        raise RuntimeError(f"no dd result: {p.stdout[-500:]} {p.stderr[-300:]}")
    return count / float(m.group(1))


def vsock_mibs(mode, mib):
    name = f"bench-{mode}-{os.getpid()}"
    subprocess.run([HUTCH, "start", "--seccomp", mode, name], check=True,
                   timeout=300, stdout=subprocess.DEVNULL)
    try:
        t = time.monotonic()
        p = subprocess.run(f"'{HUTCH}' exec {name} -- head -c {mib}M /dev/zero"
                           " | wc -c", shell=True, capture_output=True,
                           text=True, timeout=600)
        secs = time.monotonic() - t
        if int(p.stdout.strip() or 0) != mib << 20:
            raise RuntimeError(f"vsock: got {p.stdout!r}")
        return mib / secs
    finally:
        subprocess.run([HUTCH, "stop", name], timeout=120)


def fmt(xs, digits=1):
    f = f"{{:.{digits}f}}"
    return f"{f.format(statistics.median(xs))} ({f.format(min(xs))}–{f.format(max(xs))})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3, help="rounds")
    ap.add_argument("--count", type=int, default=4000, help="dd reads")
    ap.add_argument("--mib", type=int, default=128, help="vsock MiB")
    a = ap.parse_args()
    os.environ.setdefault("HUTCH_STATE_DIR", tempfile.mkdtemp())
    os.chmod(os.environ["HUTCH_STATE_DIR"], 0o700)
    data = os.path.join(tempfile.mkdtemp(dir="/tmp"), "data.img")
    with open(data, "wb") as f:
        f.write(os.urandom(1 << 20) * 64)
    r = {k: [] for k in ("boot", "boot_j", "spawn", "enter", "wall",
                         "wall_j", "run", "run_j", "iops_on", "iops_off",
                         "vs_on", "vs_off")}
    for i in range(a.n):
        order = [False, True] if i % 2 == 0 else [True, False]
        for jail in order:
            b = boot(jail)
            r["boot_j" if jail else "boot"].append(b["init"])
            r["wall_j" if jail else "wall"].append(b["wall"])
            if jail:
                r["spawn"].append(b["spawn"])
                r["enter"].append(b["enter"])
        for jail in order:
            r["run_j" if jail else "run"].append(run_true(jail))
        for on in order:
            r["iops_on" if on else "iops_off"].append(
                blk_iops(data, "kill" if on else "off", a.count))
        for on in order:
            r["vs_on" if on else "vs_off"].append(
                vsock_mibs("kill" if on else "off", a.mib))
        print(f"round {i + 1}: " + ", ".join(f"{k}={v[-1]:.1f}"
                                             for k, v in r.items() if v),
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in r.items()}
    rows = [
        ("time to guest init, VMM timeline, ms (jail: spawn + boot_done)",
         fmt(r["boot"]), fmt(r["boot_j"]),
         f"+{med['boot_j'] - med['boot']:.1f} ms"),
        ("… of which jail spawn / enter, ms (VMM timeline)", "–",
         f"{fmt(r['spawn'], 2)} / {fmt(r['enter'], 2)}",
         f"{med['spawn'] + med['enter']:.2f} ms"),
        ("boot to exit, wall, ms", fmt(r["wall"]), fmt(r["wall_j"]),
         f"+{med['wall_j'] - med['wall']:.1f} ms"),
        ("`hutch run -- true`, wall, ms", fmt(r["run"]), fmt(r["run_j"]),
         f"+{med['run_j'] - med['run']:.1f} ms"),
    ]
    rows2 = [
        ("virtio-blk 4 KiB O_DIRECT reads, one at a time, IOPS",
         fmt(r["iops_off"]), fmt(r["iops_on"]),
         f"{(med['iops_on'] / med['iops_off'] - 1) * 100:+.1f} %"),
        (f"vsock guest→host, {a.mib} MiB via exec, MiB/s",
         fmt(r["vs_off"]), fmt(r["vs_on"]),
         f"{(med['vs_on'] / med['vs_off'] - 1) * 100:+.1f} %"),
    ]
    lines = [f"Jail and seccomp cost, {a.n} interleaved rounds "
             f"(median, min–max); {os.uname().release}.", "",
             "| measure | not jailed | jailed | cost |", "|---|---|---|---|"]
    lines += [f"| {m} | {x} | {y} | {c} |" for m, x, y, c in rows]
    lines += ["", "| measure | seccomp off | seccomp kill | change |",
              "|---|---|---|---|"]
    lines += [f"| {m} | {x} | {y} | {c} |" for m, x, y, c in rows2]
    save_table(os.path.join(ROOT, "build", "bench", "jail.md"), lines)


if __name__ == "__main__":
    main()
