#!/usr/bin/env python3
"""Network benchmark: hutch --net user against QEMU microvm -netdev user
(both libslirp), and hutch --net tap= against QEMU -netdev tap, without
vhost-net and with it (where /dev/vhost-net is), same kernel, initramfs
and Debian root image, 1 vCPU, 512 MiB; and the egress policy's cost,
hutch against itself.

The TAP (btap0) is made by each VMM as it starts, in the namespace (hutch
and QEMU both create it when it is missing and it goes with them); the
script then gives its host side 10.9.0.1/24, and the guest is 10.9.0.2
from the kernel's ip=.

Everything runs in a network namespace this script makes (ip netns): its
own loopback, where the servers listen (127.0.0.1, the guests' 10.0.2.2;
and 192.0.2.10, a documentation address put on that loopback), and its
own resolver (dnsmasq, answering *.bench.test with 192.0.2.10).  Nothing
is sent anywhere else.  The guests are driven through the agent (hutch
exec; bench-agent over vhost-vsock for QEMU), and measure themselves with
the same Python client:

  up      guest -> host: 64 MiB to a sink, MB/s
  down    host -> guest: 64 MiB from a source, MB/s
  http    200 HTTP requests, each on a new connection: p50 and p99, ms

Per round each VMM boots once and runs all three (order alternating
between rounds).  The policy rows are hutch only: up and down to
192.0.2.10:80 with the request line naming a name first, with one address
rule (192.0.2.10:80) against 100 address rules that do not match plus a
domain rule, after the guest resolved 1,000 names (so 1,000 pins, and the
traffic goes the whole name path: the rules, the pinned set at connect,
the connection table and the Host check).

Medians with min-max; printed and saved to build/bench/net.md.  Needs
/dev/kvm and /dev/vhost-vsock: tools/bench/run net runs this through
tools/l1/kvm-run.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import GUEST, HUTCH, ROOT, save_table  # noqa: E402

AGENT = os.path.join(ROOT, "build", "bench-agent")
NS = "hutchbench"
IN_NS = ["ip", "netns", "exec", NS]
CID = 3
MIB = 64
TAP = "btap0"
TAP_HOST, TAP_GUEST = "10.9.0.1", "10.9.0.2"
TAP_IP = f"ip={TAP_GUEST}::{TAP_HOST}:255.255.255.0::eth0:off"

# The guest side: one run of one measure, a JSON line on stdout.
CLIENT = r"""
import json, socket, sys, time
mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
name = sys.argv[5] if len(sys.argv) > 5 else "x"
req = ("GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (mode, name)).encode()
if mode == "resolve":
    t = time.monotonic()
    for i in range(n):
        socket.gethostbyname("n%d.%s" % (i, name))
    print(json.dumps({"s": time.monotonic() - t}))
elif mode == "http":
    lat = []
    for i in range(n):
        t = time.monotonic()
        s = socket.create_connection((host, port))
        s.sendall(req)
        while s.recv(65536):
            pass
        s.close()
        lat.append((time.monotonic() - t) * 1000)
    lat.sort()
    print(json.dumps({"p50": lat[len(lat) // 2], "p99": lat[-max(1, len(lat) // 100)]}))
else:
    s = socket.create_connection((host, port))
    t = time.monotonic()
    s.sendall(req)
    if mode == "up":
        buf, left = bytes(1 << 20), n
        while left > 0:
            left -= s.send(buf[:min(left, len(buf))])
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    else:
        b, n = bytearray(1 << 20), 0
        while True:
            k = s.recv_into(b)
            if not k:
                break
            n += k
    print(json.dumps({"mbps": n / (time.monotonic() - t) / 1e6}))
"""


def serve(addr, port):
    """One server for all three measures: the request line says which."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)

    def one(c):
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                k = c.recv(4096)
                if not k:
                    return
                head += k
            if head.startswith(b"GET /up "):
                while c.recv(1 << 20):
                    pass
            elif head.startswith(b"GET /down "):
                buf = bytes(1 << 20)
                for _ in range(MIB):
                    c.sendall(buf)
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                          b"Connection: close\r\n\r\nok")

    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=one, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def netns_up(work):
    subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    os.makedirs(f"/etc/netns/{NS}", exist_ok=True)
    with open(f"/etc/netns/{NS}/resolv.conf", "w") as f:
        f.write("nameserver 127.0.0.1\n")
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]):
        subprocess.run(IN_NS + cmd, check=True)
    subprocess.Popen(IN_NS + [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root",
        "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
        "--address=/bench.test/192.0.2.10", "--local=/test/", "--local-ttl=3600",
        "--cache-size=0", "--pid-file="],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The servers: this script again, in the namespace.
    subprocess.Popen(IN_NS + [sys.executable, os.path.abspath(__file__), "--serve"],
                     stdin=subprocess.DEVNULL)
    for _ in range(300):
        if subprocess.run(IN_NS + [sys.executable, "-c", "import socket; "
                                   "socket.create_connection(('192.0.2.10', 80))"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("the benchmark's servers did not start")


def netns_down():
    # Every process in the namespace (servers, dnsmasq) goes.
    out = subprocess.run(["ip", "netns", "pids", NS], stdout=subprocess.PIPE,
                         text=True).stdout.split()
    for pid in out:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", NS])
    shutil.rmtree(f"/etc/netns/{NS}", ignore_errors=True)


def tap_host_side():
    """The TAP's host side, once its VMM made it."""
    for _ in range(600):
        if os.path.exists(f"/run/netns/{NS}") and subprocess.run(
                IN_NS + ["ip", "link", "show", TAP], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            break
        time.sleep(0.1)
    subprocess.run(IN_NS + ["ip", "addr", "add", f"{TAP_HOST}/24", "dev", TAP], check=True)
    subprocess.run(IN_NS + ["ip", "link", "set", TAP, "up"], check=True)


def qemu_cmd(root, console, tap=False, vhost=False):
    netdev = (f"tap,id=n0,ifname={TAP},script=no,downscript=no" if tap
              else "user,id=n0")
    if vhost:
        netdev += ",vhost=on"
    return IN_NS + [
        "qemu-system-x86_64", "-M", "microvm,acpi=on,auto-kernel-cmdline=off",
        "-accel", "kvm", "-cpu", "host", "-m", "512", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
        "-serial", f"file:{console}", "-monitor", "none", "-no-reboot",
        "-kernel", os.path.join(GUEST, "vmlinux"),
        "-initrd", os.path.join(GUEST, "initramfs.cpio"),
        "-append", "console=ttyS0 reboot=t pci=off quiet "
        f"{TAP_IP if tap else 'ip=dhcp'} rdinit=/bin/hutch-agent root=/dev/vda rw",
        "-drive", f"file={root},if=none,id=root,format=raw,snapshot=on",
        "-device", "virtio-blk-device,drive=root",
        "-netdev", netdev, "-device", "virtio-net-device,netdev=n0",
        "-device", f"vhost-vsock-device,guest-cid={CID}"]


class Hutch:
    def __init__(self, root, net_args, tap=False):
        self.name = "bench"
        spec = f"tap={TAP},ip={TAP_GUEST}/24,gw={TAP_HOST}" if tap else "user"
        subprocess.run(IN_NS + [HUTCH, "start", "--rootfs", root, "--mem", "512",
                                "--net", spec, *net_args, self.name],
                       check=True, stdout=subprocess.DEVNULL, timeout=300)
        if tap:
            tap_host_side()

    def run(self, *args):
        r = subprocess.run([HUTCH, "exec", self.name, "--", "python3", "-c", CLIENT,
                            *map(str, args)], stdout=subprocess.PIPE, timeout=900,
                           text=True)
        return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None

    def stop(self):
        subprocess.run([HUTCH, "stop", self.name], timeout=120)


class Qemu:
    def __init__(self, root, work, tap=False, vhost=False):
        self.console = os.path.join(work, "qemu.console")
        self.p = subprocess.Popen(qemu_cmd(root, self.console, tap, vhost),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        if tap:
            tap_host_side()

    def run(self, *args):
        r = subprocess.run([AGENT, "--cid", str(CID), "--wait", "120000", "cmd",
                            "python3", "-c", CLIENT, *map(str, args)],
                           stdout=subprocess.PIPE, timeout=900, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if r.returncode == 0 and lines else None

    def stop(self):
        subprocess.run([AGENT, "--cid", str(CID), "shutdown"], stdout=subprocess.DEVNULL)
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def log(msg):
    print(f"bench-net: {msg}", file=sys.stderr, flush=True)


def measure(vm, host, port, name="x"):
    up = vm.run("up", host, port, MIB << 20, name)
    down = vm.run("down", host, port, MIB << 20, name)
    return up and up["mbps"], down and down["mbps"]


def fmt(vals, f="%.1f"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "failed"
    return f"{f % statistics.median(vals)} ({f % min(vals)}–{f % max(vals)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3, help="rounds")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        # 0.0.0.0:5202: the TAP's host side, which comes and goes.
        for addr, port in (("127.0.0.1", 5201), ("192.0.2.10", 80), ("0.0.0.0", 5202)):
            serve(addr, port)
        while True:
            time.sleep(3600)
    work = tempfile.mkdtemp(dir="/tmp")
    os.environ["HUTCH_STATE_DIR"] = os.path.join(work, "vms")
    os.mkdir(os.environ["HUTCH_STATE_DIR"], 0o700)
    root = os.path.join(GUEST, "debian.ext4")
    netns_up(work)
    r = {k + m: [] for k in ("h", "q", "ht", "qt", "qtv")
         for m in ("_up", "_down", "_p50", "_p99")}
    r.update({k: [] for k in ("p1_up", "p1_down", "p100_up", "p100_down", "resolve")})
    vmms = ["hutch", "qemu", "hutch-tap", "qemu-tap"]
    vhost = os.path.exists("/dev/vhost-net")
    if vhost:
        vmms.append("qemu-tap-vhost")
    try:
        for i in range(a.n):
            for vmm in (vmms if i % 2 == 0 else vmms[::-1]):
                log(f"round {i + 1}: {vmm}")
                tap = "-tap" in vmm
                host, port = (TAP_HOST, 5202) if tap else ("10.0.2.2", 5201)
                if vmm.startswith("hutch"):
                    vm = Hutch(root, ["--allow", host], tap)
                else:
                    vm = Qemu(root, work, tap, vmm.endswith("-vhost"))
                k = (("h" if vmm.startswith("hutch") else "q") + ("t" if tap else "")
                     + ("v" if vmm.endswith("-vhost") else ""))
                try:
                    vm.run("http", host, port, 5)  # warm: the agent up, ARP
                    up, down = measure(vm, host, port)
                    lat = vm.run("http", host, port, a.requests)
                    r[k + "_up"].append(up)
                    r[k + "_down"].append(down)
                    r[k + "_p50"].append(lat and lat["p50"])
                    r[k + "_p99"].append(lat and lat["p99"])
                finally:
                    vm.stop()
            # The policy's cost: hutch against itself.
            for rules in ([1, 100] if i % 2 == 0 else [100, 1]):
                log(f"round {i + 1}: hutch, {rules} rule(s)")
                if rules == 1:
                    args = ["--allow", "192.0.2.10:80"]
                else:
                    args = [x for j in range(100) for x in
                            ("--allow", f"198.18.{j // 250}.{j % 250 + 1}:443")]
                    args += ["--allow-domain", "*.bench.test"]
                vm = Hutch(root, args)
                try:
                    name = "x"
                    if rules == 100:
                        res = vm.run("resolve", "-", 0, 1000, "bench.test")
                        r["resolve"].append(res and res["s"])
                        name = "n7.bench.test"
                    up, down = measure(vm, "192.0.2.10", 80, name)
                    r[f"p{rules}_up"].append(up)
                    r[f"p{rules}_down"].append(down)
                finally:
                    vm.stop()
            log("so far: " + json.dumps(r))
    finally:
        netns_down()

    def ratio(x, y):
        xs = [v for v in r[x] if v]
        ys = [v for v in r[y] if v]
        if not xs or not ys:
            return "–"
        return f"{statistics.median(xs) / statistics.median(ys):.2f}×"

    lines = [
        f"Network (user networking, libslirp on both sides; a TAP), nested (L1 "
        f"under TCG), {a.n} rounds: median (min–max)",
        "",
        "| | hutch `--net user` | QEMU microvm `-netdev user` | hutch / QEMU |",
        "|---|---|---|---|",
        f"| guest → host TCP, MB/s ({MIB} MiB) | {fmt(r['h_up'])} | {fmt(r['q_up'])} | {ratio('h_up', 'q_up')} |",
        f"| host → guest TCP, MB/s ({MIB} MiB) | {fmt(r['h_down'])} | {fmt(r['q_down'])} | {ratio('h_down', 'q_down')} |",
        f"| HTTP request on a new connection, p50 ms | {fmt(r['h_p50'])} | {fmt(r['q_p50'])} | {ratio('h_p50', 'q_p50')} |",
        f"| HTTP request on a new connection, p99 ms | {fmt(r['h_p99'])} | {fmt(r['q_p99'])} | {ratio('h_p99', 'q_p99')} |",
        "",
        "| | hutch `--net tap=` | QEMU microvm `-netdev tap` (no vhost-net) | hutch / QEMU | QEMU `tap,vhost=on` | hutch / QEMU vhost |",
        "|---|---|---|---|---|---|",
    ]
    for m, what in (("_up", f"guest → host TCP, MB/s ({MIB} MiB)"),
                    ("_down", f"host → guest TCP, MB/s ({MIB} MiB)"),
                    ("_p50", "HTTP request on a new connection, p50 ms"),
                    ("_p99", "HTTP request on a new connection, p99 ms")):
        v = (f"{fmt(r['qtv' + m])} | {ratio('ht' + m, 'qtv' + m)}" if vhost
             else "no /dev/vhost-net in this L1 | –")
        lines.append(f"| {what} | {fmt(r['ht' + m])} | {fmt(r['qt' + m])} | "
                     f"{ratio('ht' + m, 'qt' + m)} | {v} |")
    lines += [
        "",
        "| policy (hutch) | 1 address rule | 100 address rules + 1,000 pinned names, name-checked connection | cost |",
        "|---|---|---|---|",
        f"| guest → host TCP, MB/s | {fmt(r['p1_up'])} | {fmt(r['p100_up'])} | {ratio('p100_up', 'p1_up')} |",
        f"| host → guest TCP, MB/s | {fmt(r['p1_down'])} | {fmt(r['p100_down'])} | {ratio('p100_down', 'p1_down')} |",
        f"| resolving the 1,000 names (guest), s | – | {fmt(r['resolve'])} | |",
    ]
    save_table(os.path.join(os.path.dirname(GUEST), "bench", "net.md"), lines)


if __name__ == "__main__":
    main()
