// SPDX-License-Identifier: MIT
/*
 * A NIC's thread's seccomp allowlist (devices/net/net_thread.c installs
 * it through vm_control before its loop): its queue notifications and
 * interrupts, and libslirp re-originating the guest's TCP, UDP and ICMP
 * from the host's network.  Inet sockets are allowed here and only here;
 * nothing opens files, maps executable memory, or makes processes.  One
 * entry per syscall, each with the reason it is here; found by tracing
 * the network integration suite's traffic (README.md, "seccomp"), checked
 * against the code.  Data only.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "vmm/seccomp_filter.h"

const struct seccomp_rule seccomp_net_rules[] = {
    /* The loop: the NIC's epoll (queue notifications), its wake eventfd
     * (stop, or limits changed) and libslirp's sockets in one poll
     * (poll and epoll_wait: seccomp_net_arch_rules). */
    /* Queue notification eventfds; socket data (libslirp; ICMP errors
     * and echo replies through recvmsg). */
    SC_ALLOW(read),
    /* --net tap: a frame's header and body straight into the NIC's
     * receive slot. */
    SC_ALLOW(readv),
    SC_ALLOW(recvfrom),
    SC_ALLOW(recvmsg),
    /* libslirp forwards the guest's DNS to the servers it reads from
     * /etc/resolv.conf, by that path, again after each second (stat,
     * then open read-only): jailed, the copy in the jail's otherwise
     * empty root. */
    SC_ARG_MASK(openat, 2, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, O_RDONLY),
    SC_ALLOW(newfstatat),
    SC_ALLOW(fstat),
    /* Interrupt and notification eventfds, the deny log, log lines;
     * socket data (libslirp). */
    SC_ALLOW(write),
    SC_ALLOW(sendto),
    /* libslirp: a host socket per guest connection, IPv4 and IPv6 only
     * (TCP, UDP, and ICMP echo through datagram sockets). */
    SC_ARG_EQ(socket, 0, AF_INET),
    SC_ARG_EQ(socket, 0, AF_INET6),
    SC_ALLOW(connect),
    SC_ALLOW(setsockopt),
    SC_ALLOW(getsockopt),
    SC_ALLOW(getsockname),
    SC_ALLOW(getpeername),
    SC_ALLOW(shutdown),
    SC_ALLOW(close),
    /* Port forwards: connections accepted on the host's listening
     * sockets (opened at set-up). */
    SC_ALLOW(accept),
    SC_ALLOW(accept4),
    /* Non-blocking sockets (libslirp sets O_NONBLOCK itself). */
    SC_ARG_EQ(fcntl, 1, F_GETFL),
    SC_ARG_EQ(fcntl, 1, F_SETFL),
    /* Urgent data: how much is waiting (libslirp's soread). */
    SC_ARG_EQ(ioctl, 1, FIONREAD),
    /* --net tap: its offloads toward the guest follow the driver's
     * features (set when the driver comes or goes). */
    SC_ARG_EQ(ioctl, 1, TUNSETOFFLOAD),
    /* Timestamps where the vDSO falls back to the syscall. */
    SC_ALLOW(clock_gettime),
    /* The device lock, shared with vCPU threads and the control
     * channel. */
    SC_ALLOW(futex),
    /* glib and ldns allocate (libslirp's mbufs, DNS messages); never
     * executable. */
    SC_ARG_MASK(mmap, 2, PROT_EXEC, 0),
    SC_ARG_MASK(mprotect, 2, PROT_EXEC, 0),
    SC_ALLOW(mremap),
    SC_ALLOW(munmap),
    SC_ALLOW(madvise),
    SC_ALLOW(brk),
    /* glib's random numbers (libslirp's IP ids, DNS ids). */
    SC_ALLOW(getrandom),
    /* The thread ends (the VM stops): its stack goes, signals stay
     * blocked. */
    SC_ALLOW(rt_sigprocmask),
    SC_ALLOW(exit),
};

const unsigned seccomp_net_nrules =
    sizeof(seccomp_net_rules) / sizeof(seccomp_net_rules[0]);
