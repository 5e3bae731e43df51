#!/usr/bin/env python3
"""The arm64 benchmark's table (tools/bench/run arm64), from the lines
tools/bench/arm64.sh printed in the arm64 L1: boot to init, to power-off,
the exits per boot, run -- true, and run --from SNAPSHOT -- true, each as
median, min and max.

hutch only: QEMU's virt machine would need an arm64 QEMU inside the arm64
L1 (Debian's qemu-system-arm:arm64 and its libraries, none of which the
L1 has: it runs this host's x86 userland over 9p, with an arm64 busybox);
the figures are nested (arm64 KVM inside TCG), not hardware times.

    python3 tools/bench/arm64.py RAW OUT.md
"""
import statistics
import sys


def row(name, values, unit, fmt="{:.0f}"):
    if not values:
        return f"| {name} | no data | | | |"
    return "| {} | {} | {} | {} | {} |".format(
        name, fmt.format(statistics.median(values)), fmt.format(min(values)),
        fmt.format(max(values)), unit)


def main():
    boot, off, vmm, kvm, run, warm = [], [], [], [], [], []
    with open(sys.argv[1]) as f:
        for line in f:
            w = line.split()
            try:
                if w[0] == "boot" and len(w) == 5:
                    boot.append(float(w[1]))
                    off.append(float(w[2]))
                    vmm.append(int(w[3]))
                    if w[4].isdigit():
                        kvm.append(int(w[4]))
                elif w[0] == "run" and len(w) == 2:
                    run.append(float(w[1]) * 1000)
                elif w[0] == "from" and len(w) == 2:
                    warm.append(float(w[1]) * 1000)
            except (ValueError, IndexError):
                continue
    lines = [
        f"arm64, hutch only (nested: arm64 KVM in a TCG L1), {len(boot)} boots, {len(run)} runs",
        "",
        "| | median | min | max | |",
        "|---|---|---|---|---|",
        row("boot to init", boot, "ms"),
        row("boot to power-off", off, "ms"),
        row("exits returned to hutch per boot", vmm, "exits"),
        row("all KVM exits per boot (debugfs)", kvm, "exits"),
        row("run -- true (busybox root)", run, "ms"),
        row("run --from SNAPSHOT -- true (same root)", warm, "ms"),
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(sys.argv[2], "w") as f:
        f.write(text)
    return 0 if boot and run and warm else 1


if __name__ == "__main__":
    sys.exit(main())
