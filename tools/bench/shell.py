#!/usr/bin/env python3
"""Shell-channel benchmark: hutch vs QEMU microvm with vhost-vsock.

Both VMMs boot the same kernel, initramfs (the hutch agent as PID 1) and
Debian root image (bench.ext4 behind a throw-away overlay: hutch's COW
file, QEMU's snapshot=on), 1 vCPU, 512 MiB.  The same client code
(build/bench-agent, on the hutch client library) talks to the same agent:
through hutch's vsock Unix socket, or through the L1 kernel's AF_VSOCK to
QEMU's vhost-vsock device.

Each run of this script measures one round; tools/bench shell runs each
round in a fresh L1 (the nested set-up occasionally wedged partway
through long multi-round runs) and then prints the table of all rounds
(--table).  Per round, for each VMM (alternating which goes first):
  run -- true    hutch: `hutch run -- true`, start to exit (hutch waits for
                 the VMM's ready signal).  QEMU: start QEMU and, at once,
                 the client, which connects every 5 ms until the agent
                 answers (the agent's console lines, another possible
                 signal, do not reach QEMU microvm's ACPI-described serial
                 port with this kernel), runs `true`, powers off; to QEMU's
                 exit.  KVM exits counted from debugfs.
  first byte     the same with `echo hi`: start to "hi" on stdout.
  exec true      1000 round trips in one running VM (EXEC .. EXIT).
  socat exec     connect to a guest port where `socat VSOCK-LISTEN,fork
                 EXEC:true` answers; connect to EOF (no agent protocol).
  throughput     256 MiB host->guest (stdin of cat) and guest->host
                 (stdout of head -c) through the agent.

Needs a working /dev/kvm and /dev/vhost-vsock: tools/bench runs this
through tools/l1/kvm-run, whose L1 loads vhost_vsock.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import GUEST, HUTCH, ROOT, ExitPoller, med_fmt, save_table  # noqa: E402

AGENT = os.path.join(ROOT, "build", "bench-agent")
CID = 3
STATE = "/tmp/hutch-bench-shell"


CONSOLE = "/tmp/hutch-bench-qemu-console.log"


def qemu_cmd(root, mem):
    # acpi=on: the guest powers off through the FADT sleep register (and
    # finds the virtio-mmio devices in the DSDT), so QEMU exits as hutch
    # does.  reboot=t pci=off as hutch's own prefix (reboot=k there).
    return ["qemu-system-x86_64", "-M", "microvm,acpi=on,auto-kernel-cmdline=off",
            "-accel", "kvm", "-cpu", "host", "-m", str(mem), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-serial", f"file:{CONSOLE}", "-monitor", "none", "-no-reboot",
            "-kernel", os.path.join(GUEST, "vmlinux"),
            "-initrd", os.path.join(GUEST, "initramfs.cpio"),
            "-append", "console=ttyS0 reboot=t pci=off quiet "
            "rdinit=/bin/hutch-agent root=/dev/vda rw",
            "-drive", f"file={root},if=none,id=root,format=raw,snapshot=on,"
            "cache=none,aio=native",
            "-device", "virtio-blk-device,drive=root",
            "-device", f"vhost-vsock-device,guest-cid={CID}"]


# With --baseline: another hutch binary (an earlier build) measured as
# its own VMM, "hutch (baseline)", in the same rounds.
BASELINE = None


def hutch_bin(vmm):
    return BASELINE if vmm == "hutch (baseline)" else HUTCH


def hutch_env():
    env = dict(os.environ, HUTCH_STATE_DIR=STATE)
    return env


def time_run(vmm, root, mem, argv, marker=None):
    """Boot, run argv, power off.  Seconds to marker on stdout (or None),
    to exit; the VM's KVM exits; whether it succeeded."""
    poller = ExitPoller("*")
    poller.start()
    t0 = time.monotonic()
    if vmm.startswith("hutch"):
        procs = [subprocess.Popen([hutch_bin(vmm), "run", "--rootfs", root, "--mem", str(mem),
                                   "--"] + argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, env=hutch_env())]
        out = procs[0].stdout
    else:
        q = subprocess.Popen(qemu_cmd(root, mem), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL)  # its errors to our stderr
        a = subprocess.Popen([AGENT, "--cid", str(CID), "run"] + argv,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        procs = [a, q]
        out = a.stdout
    # A hung run must not hang the benchmark.
    watchdog = threading.Timer(300, lambda: [p.kill() for p in procs])
    watchdog.start()
    t_mark, buf = None, b""
    while True:
        chunk = out.read1(65536)
        if not chunk:
            break
        buf += chunk
        if marker and t_mark is None and marker in buf:
            t_mark = time.monotonic() - t0
    ok = True
    for p in procs:
        try:
            ok = p.wait(timeout=120) == 0 and ok
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            ok = False
    t_exit = time.monotonic() - t0
    watchdog.cancel()
    poller.stop = True
    poller.join()
    if not ok:
        sys.stderr.write(f"bench-shell: {vmm} run {argv} failed\n")
        if not vmm.startswith("hutch"):
            with open(CONSOLE, errors="replace") as f:
                sys.stderr.write("console: " + "console: ".join(f.readlines()[-15:]))
    return {"mark": t_mark, "exit": t_exit if ok else None,
            "exits": poller.last if ok else {}}


def log(msg):
    print(f"bench-shell: {msg}", file=sys.stderr, flush=True)


def agent_ops(target, ops):
    """Run bench-agent ops against a running VM; their JSON results."""
    res = {}
    for op in ops:
        log("  " + " ".join(op))
        r = subprocess.run([AGENT] + target + op, stdout=subprocess.PIPE,
                           timeout=900)
        if r.returncode:
            sys.stderr.write(f"bench-shell: bench-agent {op} failed\n")
            continue
        for line in r.stdout.decode().splitlines():
            if line.startswith("{"):
                d = json.loads(line)
                res[d["op"]] = d
    return res


def long_lived(vmm, root, mem, ops):
    if vmm.startswith("hutch"):
        name = "bench"
        subprocess.run([hutch_bin(vmm), "start", "--rootfs", root, "--mem", str(mem), name],
                       check=True, stdout=subprocess.DEVNULL, env=hutch_env())
        try:
            return agent_ops(["--uds", os.path.join(STATE, name, "vsock.sock")], ops)
        finally:
            subprocess.run([hutch_bin(vmm), "stop", name], env=hutch_env())
    q = subprocess.Popen(qemu_cmd(root, mem), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)  # its errors to our stderr
    try:
        res = agent_ops(["--cid", str(CID)], ops)
        agent_ops(["--cid", str(CID)], [["shutdown"]])
        q.wait(timeout=60)
        return res
    finally:
        if q.poll() is None:
            q.kill()
            q.wait()


KEYS = ("run", "exits", "vmm_exits", "first", "exec50", "exec99", "socat50", "socat99",
        "up", "down")
VMMS = ["hutch", "QEMU microvm"]


def measure_round(args):
    """One round (each VMM once, order by round parity) after a warm-up."""
    ops = [["exec", str(args.execs)], ["socat", str(args.socat), "5000"],
           ["up", str(args.mib)], ["down", str(args.mib)]]
    rows = {v: {k: [] for k in KEYS} for v in VMMS}
    # The first boot of each VMM in a fresh L1 pulls its binary and
    # libraries in over 9p (QEMU's took up to half a minute): not counted.
    for vmm in VMMS:
        log(f"{vmm}: warm-up run")
        time_run(vmm, args.root, args.mem, ["true"])
    for vmm in (VMMS if args.round % 2 else VMMS[::-1]):
        if args.only and vmm != args.only:
            continue
        r = rows[vmm]
        log(f"{vmm}: run -- true")
        t = time_run(vmm, args.root, args.mem, ["true"])
        r["run"].append(t["exit"])
        e = t["exits"]
        r["exits"].append(e.get("exits"))
        r["vmm_exits"].append(e["io_exits"] + e["mmio_exits"] if e else None)
        log(f"{vmm}: run -- echo hi")
        t = time_run(vmm, args.root, args.mem, ["echo", "hi"], marker=b"hi")
        r["first"].append(t["mark"])
        log(f"{vmm}: exec, socat, throughput")
        res = long_lived(vmm, args.root, args.mem, ops)
        for key, op, field in (("exec50", "exec", "p50_us"), ("exec99", "exec", "p99_us"),
                               ("socat50", "socat", "p50_us"),
                               ("socat99", "socat", "p99_us"),
                               ("up", "up", "mib_s"), ("down", "down", "mib_s")):
            r[key].append(res[op][field] if op in res else None)
        if args.raw:  # what is done so far survives a round cut off later
            with open(args.raw, "w") as f:
                json.dump({"kernel": os.uname().release, "rows": rows}, f)
    return rows


def table(args, raws):
    vmms = [v for v in VMMS if any(v in raw["rows"] for raw in raws)]
    rows = {v: {k: [] for k in KEYS} for v in vmms}
    for raw in raws:
        for v in vmms:
            for k in KEYS:
                rows[v][k] += raw["rows"].get(v, {}).get(k, [])

    def ms(vals):
        return [v * 1000 if v is not None else None for v in vals]

    def ms_us(vals):
        return [v / 1000 if v is not None else None for v in vals]

    spec = [
        ("`run -- true`, start to exit, ms", ms, "run", "%.0f", True),
        ("`run -- echo hi`, start to first output byte, ms", ms, "first", "%.0f", True),
        ("KVM exits during `run -- true` (debugfs)", list, "exits", "%.0f", True),
        ("… of which I/O + MMIO exits to the VMM", list, "vmm_exits", "%.0f", True),
        (f"exec `true` round trip, p50 of {args.execs}, ms", ms_us, "exec50", "%.2f", True),
        (f"exec `true` round trip, p99 of {args.execs}, ms", ms_us, "exec99", "%.2f", True),
        (f"socat exec `true` (connect to EOF), p50 of {args.socat}, ms", ms_us, "socat50",
         "%.2f", True),
        (f"socat exec `true`, p99 of {args.socat}, ms", ms_us, "socat99", "%.2f", True),
        (f"host→guest, {args.mib} MiB into `cat`, MiB/s", list, "up", "%.1f", False),
        (f"guest→host, {args.mib} MiB out of `head -c`, MiB/s", list, "down", "%.1f", False),
    ]
    kernel = raws[0]["kernel"] if raws else "?"
    lines = [
        f"Shell channel, {len(raws)} rounds, each in a fresh L1 after one uncounted "
        f"warm-up boot per VMM (alternating which VMM goes first); 1 vCPU, {args.mem} MiB; "
        f"same kernel, agent initramfs and root image ({os.path.basename(args.root)} behind "
        f"an overlay); hutch vsock via its Unix socket, QEMU via vhost-vsock and AF_VSOCK; "
        f"host kernel {kernel}.",
        "",
        "| measure | " + " | ".join(f"{v}, median (min–max)" for v in vmms)
        + " | hutch / QEMU |" + (" hutch / baseline |" if len(vmms) > 2 else ""),
        "|---|" + "---|" * (len(vmms) + (2 if len(vmms) > 2 else 1)),
    ]
    for title, conv, key, fmt, lower in spec:
        cells, meds = [], []
        for v in vmms:
            c, m = med_fmt(conv(rows[v][key]), fmt)
            cells.append(c)
            meds.append(m)
        ratio = f"{meds[0] / meds[1]:.2f}" if meds[0] and meds[1] else "n/a"
        base = ""
        if len(vmms) > 2:
            base = f" {meds[0] / meds[2]:.2f} |" if meds[0] and meds[2] else " n/a |"
        better = " (lower is better)" if lower else ""
        lines.append(f"| {title}{better} | " + " | ".join(cells) + f" | {ratio} |{base}")
    save_table(args.out, lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--round", type=int, default=1,
                    help="measure one round (its parity picks which VMM goes first)")
    ap.add_argument("--raw", help="with --round: save the round's numbers here (JSON)")
    ap.add_argument("--table", nargs="*", metavar="RAW",
                    help="no measuring: the table of these rounds' files")
    ap.add_argument("--baseline", metavar="HUTCH",
                    help="also measure this hutch binary (an earlier build) as its own VMM")
    ap.add_argument("--only", choices=VMMS + ["hutch (baseline)"],
                    help="measure one VMM (the L1 here degraded after one VMM's long phase)")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--execs", type=int, default=1000)
    ap.add_argument("--socat", type=int, default=200)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--root", default=os.path.join(GUEST, "bench.ext4"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(GUEST), "bench", "shell.md"))
    args = ap.parse_args()
    if args.baseline:
        global BASELINE
        BASELINE = os.path.abspath(args.baseline)
        VMMS.append("hutch (baseline)")
    if args.table is not None:
        raws = []
        for path in args.table:
            with open(path) as f:
                raws.append(json.load(f))
        table(args, raws)
        return
    if not os.path.exists("/dev/vhost-vsock"):
        sys.exit("bench-shell: no /dev/vhost-vsock (modprobe vhost_vsock) for QEMU")
    shutil.rmtree(STATE, ignore_errors=True)
    os.makedirs(STATE, mode=0o700)  # hutch refuses a state dir others can use
    raw = {"kernel": os.uname().release, "rows": measure_round(args)}
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump(raw, f)
    table(args, [raw])


if __name__ == "__main__":
    main()
