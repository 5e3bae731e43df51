#!/usr/bin/env python3
"""Snapshots: restore against cold boot, hutch beside QEMU's own path.

For each guest size (256 MiB and 2 GiB by default), interleaved in each
round (the order of the VMMs, and of cold and restored, alternates):
  - hutch cold: `hutch start` of the Debian root image, then `hutch exec
    -- true`: wall time from start to the first command's exit;
  - hutch restored: `hutch restore` of a snapshot of such a VM, then
    `hutch exec -- true`: the same measure;
  - `hutch snapshot` of a running VM: wall time, and the bytes its memory
    file takes on disk;
  - QEMU cold: a copy of an empty qcow2 overlay over the same root image,
    then qemu-system-x86_64 -M microvm (tools/bench/shell.py's flags: the
    same kernel, initramfs and command line, vhost-vsock) and, at once,
    build/bench-agent, which connects every 5 ms until the agent answers
    and runs `true`: start to the command's exit;
  - QEMU restored: a copy of the snapshot's overlay, then the same QEMU
    with -incoming defer, and through QMP `migrate-incoming` from
    "exec:cat STATE" and, once the MIGRATION event says completed, `cont`
    (the stream of a stopped VM leaves the new one paused: libvirt's
    restore does the same), then the same client: the same measure;
  - QEMU snapshot of a running VM, through QMP: `stop`, `migrate` to
    "exec:cat > STATE" until the MIGRATION event says completed, then a
    copy of the VM's overlay (as `hutch snapshot` copies its own); the VM
    then runs on (`cont`, not timed).  max-bandwidth is raised first
    (QEMU's default is 32 MiB/s).
and once per size, 8 VMs of each VMM at once, restored from one snapshot
against cold-booted, each after running `true`: the sum of their VMMs'
PSS (from /proc/PID/smaps_rollup; guest RAM that hutch restores is the
memory file's page cache, shared, until the guest writes it; QEMU reads
the stream into its own anonymous memory).
Medians with min-max; the table is printed and saved to
build/bench/snapshot.md.  Needs /dev/kvm and /dev/vhost-vsock:
tools/bench/run snapshot runs this through tools/l1/kvm-run --vhost-vsock.
"""
import argparse
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import GUEST, HUTCH, ROOT, save_table  # noqa: E402

AGENT = os.path.join(ROOT, "build", "bench-agent")
WORK = None  # the run's scratch directory (main)
SRC_CID, X_CID, CLONE_CID = 3, 4, 10  # vhost-vsock guest CIDs: one per live VM


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


def cp(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)


class QMP:
    """A QMP client on QEMU's Unix socket (connects as soon as it is up)."""

    def __init__(self, path, proc, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"no QMP socket {path} (QEMU: {proc.poll()})")
                time.sleep(0.005)
        s.settimeout(600)
        self.sock, self.f, self.events = s, s.makefile("rb"), []
        self.read()  # the greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("QMP: QEMU closed the connection")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if "event" in r:
                self.events.append(r)
            elif "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            else:
                return r.get("return")

    def event(self, name, done):
        """The data of the first event NAME for which done(data) holds."""
        while True:
            e = self.events.pop(0) if self.events else self.read()
            if e.get("event") == name and done(e.get("data", {})):
                return e["data"]

    def close(self):
        self.f.close()
        self.sock.close()


def qemu_cmd(mem, disk, cid, console):
    # tools/bench/shell.py's QEMU, but for the disk: a qcow2 overlay of
    # this VM's own (shell.py's snapshot=on overlay cannot be copied).
    return ["qemu-system-x86_64", "-M", "microvm,acpi=on,auto-kernel-cmdline=off",
            "-accel", "kvm", "-cpu", "host", "-m", str(mem), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-serial", f"file:{console}", "-monitor", "none", "-no-reboot",
            "-kernel", os.path.join(GUEST, "vmlinux"),
            "-initrd", os.path.join(GUEST, "initramfs.cpio"),
            "-append", "console=ttyS0 reboot=t pci=off quiet "
            "rdinit=/bin/hutch-agent root=/dev/vda rw",
            "-drive", f"file={disk},if=none,id=root,format=qcow2,cache=none,aio=native",
            "-device", "virtio-blk-device,drive=root",
            "-device", f"vhost-vsock-device,guest-cid={cid}"]


class Qemu:
    """One QEMU microvm, its overlay WORK/NAME.qcow2 and QMP socket."""

    def __init__(self, name, mem, cid, incoming=None):
        self.name, self.cid, self._qmp = name, cid, None
        self.disk = os.path.join(WORK, name + ".qcow2")
        self.qmp_path = os.path.join(WORK, name + ".qmp")
        self.log = os.path.join(WORK, name + ".log")
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        cmd = qemu_cmd(mem, self.disk, cid, os.path.join(WORK, name + ".console"))
        cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if incoming:
            cmd += ["-incoming", "defer"]
        with open(self.log, "w") as err:
            self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err)
        LIVE.append(self)

    @property
    def qmp(self):
        # Connected only when first needed: not while a start is timed.
        if self._qmp is None:
            self._qmp = QMP(self.qmp_path, self.p)
        return self._qmp

    def first_exec(self):
        """Connect (every 5 ms until the agent answers), run `true`."""
        r = subprocess.run([AGENT, "--cid", str(self.cid), "--wait", "120000",
                            "cmd", "true"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=300)
        if r.returncode:
            raise RuntimeError(f"QEMU {self.name}: first exec failed: "
                               f"{r.stderr.strip()}; {self.state()}")

    def state(self):
        rc = self.p.poll()
        with open(self.log, errors="replace") as f:
            err = f.read().strip()
        with open(os.path.join(WORK, self.name + ".console"), errors="replace") as f:
            con = "".join(f.readlines()[-10:]).strip()
        return (("running" if rc is None else f"exited {rc}") +
                (f"; stderr: {err}" if err else "") + (f"; console: {con}" if con else ""))

    def quit(self):
        try:
            if self.p.poll() is None:
                self.qmp.cmd("quit")
        except (OSError, RuntimeError):
            pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        if self._qmp:
            self._qmp.close()
        LIVE.remove(self)
        for path in (self.disk, self.qmp_path):
            if os.path.exists(path):
                os.unlink(path)


LIVE = []  # every Qemu not yet quit, killed if the benchmark fails


def make_empty_overlay(base, path):
    """A qcow2 overlay over the raw base, made by QEMU (blockdev-create:
    qemu-img is in qemu-utils, which tools/setup does not install)."""
    open(path, "w").close()
    sock = os.path.join(WORK, "create.qmp")
    p = subprocess.Popen(["qemu-system-x86_64", "-M", "none", "-nodefaults",
                          "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    q = QMP(sock, p)
    q.cmd("blockdev-add", driver="file", filename=path, **{"node-name": "proto"})
    q.cmd("blockdev-create", **{"job-id": "create", "options": {
        "driver": "qcow2", "file": "proto", "size": os.path.getsize(base),
        "backing-file": base, "backing-fmt": "raw"}})
    q.event("JOB_STATUS_CHANGE", lambda d: d["id"] == "create" and d["status"] == "concluded")
    job = [j for j in q.cmd("query-jobs") if j["id"] == "create"][0]
    if "error" in job:
        raise RuntimeError(f"blockdev-create {path}: {job['error']}")
    q.cmd("job-dismiss", id="create")
    q.cmd("quit")
    p.wait(timeout=30)


def qemu_cold(mem, name, cid, empty):
    t = time.monotonic()
    cp(empty, os.path.join(WORK, name + ".qcow2"))
    vm = Qemu(name, mem, cid)
    vm.first_exec()
    return vm, (time.monotonic() - t) * 1000


def qemu_restore(snap, mem, name, cid):
    """As libvirt restores a saved VM: the migration stream of a stopped
    VM leaves the new one paused, so `cont` once it is loaded."""
    t = time.monotonic()
    cp(os.path.join(snap, "disk.qcow2"), os.path.join(WORK, name + ".qcow2"))
    vm = Qemu(name, mem, cid, incoming=True)
    t_qemu = time.monotonic()
    q = vm.qmp
    q.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    q.cmd("migrate-incoming", uri="exec:cat " + shlex.quote(os.path.join(snap, "state")))
    d = q.event("MIGRATION", lambda d: d["status"] in ("completed", "failed", "cancelled"))
    if d["status"] != "completed":
        raise RuntimeError(f"QEMU {name}: incoming migration {d['status']}; {vm.state()}")
    vm.load_ms = (time.monotonic() - t_qemu) * 1000
    q.cmd("cont")
    vm.first_exec()
    return vm, (time.monotonic() - t) * 1000


def qemu_snapshot(vm, snap):
    """Stop, migrate to a file, copy the overlay; ms.  The VM runs on."""
    shutil.rmtree(snap, ignore_errors=True)
    os.mkdir(snap)
    state = os.path.join(snap, "state")
    t = time.monotonic()
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri="exec:cat > " + shlex.quote(state))
    d = vm.qmp.event("MIGRATION", lambda d: d["status"] in ("completed", "failed", "cancelled"))
    if d["status"] != "completed":
        raise RuntimeError(f"QEMU migration to {state}: {d['status']}: "
                           f"{vm.qmp.cmd('query-migrate')}")
    # Stopping flushed the disk, and QEMU does not write it until `cont`.
    cp(vm.disk, os.path.join(snap, "disk.qcow2"))
    ms = (time.monotonic() - t) * 1000
    vm.qmp.cmd("cont")
    return ms


def fmt(vals, f="%.0f"):
    return f"{f % statistics.median(vals)} ({f % min(vals)}–{f % max(vals)})"


def ratio(a, b):
    return f"{statistics.median(a) / statistics.median(b):.2f}×"


def measure(a, rootfs, empty, mem):
    """One guest size: the rounds, then the clones; the table's rows."""
    hsnap, qsnap = os.path.join(WORK, f"snap-{mem}"), os.path.join(WORK, f"qsnap-{mem}")
    cold(mem, rootfs, "src")
    hutch("exec", "src", "--", "python3", "-c", "import os")
    t = time.monotonic()
    cp(empty, os.path.join(WORK, "qsrc.qcow2"))
    qsrc = Qemu("qsrc", mem, SRC_CID)
    qsrc.first_exec()
    print(f"{mem} MiB: QEMU source VM up in {(time.monotonic() - t) * 1000:.0f} ms "
          "(not counted: at 256 MiB, QEMU's first start in this L1)",
          file=sys.stderr, flush=True)
    subprocess.run([AGENT, "--cid", str(SRC_CID), "cmd", "python3", "-c", "import os"],
                   check=True, stdin=subprocess.DEVNULL, timeout=300)
    qsrc.qmp.cmd("migrate-set-capabilities",
                 capabilities=[{"capability": "events", "state": True}])
    qsrc.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    keys = ("cold", "warm", "snap", "disk", "qcold", "qwarm", "qsnap", "qdisk")
    r = {k: [] for k in keys}
    qload = []  # QEMU's start to the stream loaded (the log, not the table)
    for i in range(a.n):
        for vmm in (["hutch", "qemu"] if i % 2 == 0 else ["qemu", "hutch"]):
            if vmm == "hutch":
                r["snap"].append(timed(["snapshot", "src", hsnap]))
                st = os.stat(os.path.join(hsnap, "memory"))
                r["disk"].append(st.st_blocks * 512 / 2**20)
            else:
                r["qsnap"].append(qemu_snapshot(qsrc, qsnap))
                st = os.stat(os.path.join(qsnap, "state"))
                r["qdisk"].append(st.st_blocks * 512 / 2**20)
        kinds = ["cold", "warm", "qcold", "qwarm"]
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):
            if kind == "cold":
                r[kind].append(cold(mem, rootfs, "x"))
            elif kind == "warm":
                r[kind].append(timed(["restore", hsnap, "x"],
                                     ["exec", "x", "--", "true"]))
            elif kind == "qcold":
                vm, ms = qemu_cold(mem, "qx", X_CID, empty)
            else:
                vm, ms = qemu_restore(qsnap, mem, "qx", X_CID)
                qload.append(vm.load_ms)
            if kind.startswith("q"):
                r[kind].append(ms)
                vm.quit()
            else:
                hutch("stop", "x")
        print(f"{mem} MiB round {i + 1}: " +
              ", ".join(f"{k}={v[-1]:.0f}" for k, v in r.items()) +
              f" (qwarm: {qload[-1]:.0f} to the stream loaded)",
              file=sys.stderr, flush=True)
    hutch("stop", "src")
    qsrc.quit()
    pss = {}
    for kind in ("cold", "warm", "qcold", "qwarm"):
        names = [f"{kind}{k}" for k in range(a.clones)]
        if kind.startswith("q"):
            vms = [qemu_cold(mem, n, CLONE_CID + k, empty)[0] if kind == "qcold"
                   else qemu_restore(qsnap, mem, n, CLONE_CID + k)[0]
                   for k, n in enumerate(names)]
            pss[kind] = sum(pss_kib(vm.p.pid) for vm in vms) / 1024
            for vm in vms:
                vm.quit()
            continue
        for n in names:
            if kind == "cold":
                cold(mem, rootfs, n)
            else:
                timed(["restore", hsnap, n], ["exec", n, "--", "true"])
        pss[kind] = sum(pss_kib(vmm_pid(n)) for n in names) / 1024
        for n in names:
            hutch("stop", n)
    print(f"{mem} MiB PSS of {a.clones}, MiB: " +
          ", ".join(f"{k}={v:.0f}" for k, v in pss.items()), file=sys.stderr, flush=True)
    return [
        (f"{mem} MiB: start/restore to first exec, ms", fmt(r["cold"]), fmt(r["warm"]),
         ratio(r["warm"], r["cold"]), fmt(r["qcold"]), fmt(r["qwarm"]),
         ratio(r["qwarm"], r["qcold"])),
        (f"{mem} MiB: snapshot, ms; its memory file (QEMU: migration stream) on disk, MiB",
         "–", f"{fmt(r['snap'])}; {fmt(r['disk'])}", "",
         "–", f"{fmt(r['qsnap'])}; {fmt(r['qdisk'])}", ""),
        (f"{mem} MiB: PSS of {a.clones} VMs, MiB", f"{pss['cold']:.0f}", f"{pss['warm']:.0f}",
         f"{pss['warm'] / pss['cold']:.2f}×", f"{pss['qcold']:.0f}", f"{pss['qwarm']:.0f}",
         f"{pss['qwarm'] / pss['qcold']:.2f}×"),
    ]


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5, help="rounds")
    ap.add_argument("--mem", type=int, nargs="*", default=[256, 2048])
    ap.add_argument("--clones", type=int, default=8)
    a = ap.parse_args()
    if not os.path.exists("/dev/vhost-vsock"):
        sys.exit("bench-snapshot: no /dev/vhost-vsock (modprobe vhost_vsock) for QEMU")
    WORK = tempfile.mkdtemp(dir="/tmp")
    os.environ["HUTCH_STATE_DIR"] = os.path.join(WORK, "vms")
    os.mkdir(os.environ["HUTCH_STATE_DIR"], 0o700)
    rootfs = os.path.join(WORK, "root.ext4")
    cp(os.path.join(GUEST, "debian.ext4"), rootfs)
    # Both VMMs boot the same copy: hutch through its overlays, QEMU
    # through copies of this empty qcow2 one.
    empty = os.path.join(WORK, "empty.qcow2")
    make_empty_overlay(rootfs, empty)
    rows = []
    try:
        for mem in a.mem:
            rows += measure(a, rootfs, empty, mem)
    finally:
        for vm in list(LIVE):
            vm.p.kill()
            vm.p.wait()
    lines = [
        f"Snapshots, nested (L1 under TCG), {a.n} interleaved rounds: "
        "median (min–max).  QEMU: microvm, the same kernel, agent initramfs and "
        "root image (through a qcow2 overlay), vhost-vsock; its snapshot is QMP "
        "`stop`, `migrate` to `exec:cat > FILE` (max-bandwidth raised) and a copy "
        "of the overlay (qcow2 over the raw image); its restore a copy of that "
        "overlay, `-incoming defer`, `migrate-incoming` from `exec:cat FILE` and "
        "`cont`, to the first `true` through AF_VSOCK; its cold boot a copy of an "
        "empty overlay and a boot to the first `true`.",
        "",
        "| | hutch: cold boot | hutch: restored | restored / cold "
        "| QEMU: cold boot | QEMU: restored | restored / cold |",
        "|---|---|---|---|---|---|---|",
    ] + ["| " + " | ".join(row) + " |" for row in rows]
    save_table(os.path.join(os.path.dirname(GUEST), "bench", "snapshot.md"),
               lines)


if __name__ == "__main__":
    main()
