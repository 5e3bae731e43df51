// SPDX-License-Identifier: MIT
/*
 * The main thread's seccomp allowlist: what the event loop and the
 * devices it serves call once every vCPU runs (vm_run installs it just
 * before the loop), and what tearing the VM down calls after.  One entry
 * per syscall or ioctl number, each with the reason it is here.  Found by
 * tracing (tools/seccomp-trace; README.md, "seccomp"), checked against
 * the code.  Data only; no threads of its own.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/ioctl.h>

#include "vmm/seccomp_filter.h"

const struct seccomp_rule seccomp_loop_rules[] = {
    /* The loop itself: epoll_wait (seccomp_loop_arch_rules). */
    /* Watching and unwatching fds: vsock connections come and go, stdin
     * is paused while the UART is full. */
    SC_ALLOW(epoll_ctl),
    /* signalfd, eventfds, timerfds, stdin, the AIO eventfd, vsock
     * sockets (readv into the guest's buffers). */
    SC_ALLOW(read),
    SC_ALLOW(readv),
    /* Eventfds, console and log output, vsock "OK <port>" lines. */
    SC_ALLOW(write),
    /* vsock: guest data to host programs (MSG_NOSIGNAL). */
    SC_ALLOW(sendmsg),
    /* vsock: a host program's "CONNECT <port>" line (recv, MSG_PEEK). */
    SC_ALLOW(recvfrom),
    /* vsock: host programs connecting to the VM's socket. */
    SC_ALLOW(accept4),
    /* vsock: the guest connecting to PATH_<port>, a Unix socket only. */
    SC_ARG_EQ(socket, 0, AF_UNIX),
    SC_ALLOW(connect),
    /* Jailed: the same through the keeper (vmm/jail.c), which sends the
     * connected socket back; it is then made non-blocking. */
    SC_ALLOW(sendto),
    SC_ALLOW(recvmsg),
    SC_ARG_EQ(fcntl, 1, F_SETFL),
    /* vsock: half and full shutdown, and whether a peer hung up. */
    SC_ALLOW(shutdown),
    /* Closing connections, and everything at teardown. */
    SC_ALLOW(close),
    /* vsock's connection timer, the console input retry timer. */
    SC_ALLOW(timerfd_settime),
    /* The UART's interrupt when console input arrives. */
    SC_ARG_EQ(ioctl, 1, KVM_IRQ_LINE),
    /* A terminal's settings back at exit (hutch boot on a terminal). */
    SC_ARG_EQ(ioctl, 1, TCSETS),
    /* virtio-blk: Linux AIO submission and completion; the context goes
     * at teardown. */
    SC_ALLOW(io_submit),
    SC_ALLOW(io_getevents),
    SC_ALLOW(io_destroy),
    /* virtio-blk's synchronous path (tmpfs, unaligned buffers, COW
     * copy-up, a failed AIO request redone) and the overlay's bitmap. */
    SC_ALLOW(preadv),
    SC_ALLOW(pwritev),
    SC_ALLOW(pread64),
    SC_ALLOW(pwrite64),
    /* A snapshot copies a drive's overlay into the file passed for it
     * (sparse: lseek SEEK_DATA/SEEK_HOLE find the data). */
    SC_ALLOW(copy_file_range),
    /* virtio-blk FLUSH. */
    SC_ALLOW(fdatasync),
    /* virtio-blk DISCARD and WRITE_ZEROES (punching holes). */
    SC_ALLOW(fallocate),
    /* A console file past its limit is emptied and rewound (the UART is
     * also written from here when console input echoes). */
    SC_ALLOW(ftruncate),
    SC_ALLOW(lseek),
    /* virtio-rng. */
    SC_ALLOW(getrandom),
    /* Timers and timestamps where the vDSO falls back to the syscall. */
    SC_ALLOW(clock_gettime),
    /* Locks shared with vCPU threads; joining them at the end. */
    SC_ALLOW(futex),
    /* Kicking vCPUs out of KVM_RUN at the end (pthread_kill: getpid,
     * tgkill, with signals blocked around it). */
    SC_ALLOW(getpid),
    SC_ALLOW(tgkill),
    SC_ALLOW(rt_sigprocmask),
    /* glibc's malloc (vsock buffers, a connection's state) and freeing
     * guest RAM, vCPU run areas and the rings at teardown.  Never
     * executable. */
    SC_ARG_MASK(mmap, 2, PROT_EXEC, 0),
    SC_ARG_MASK(mprotect, 2, PROT_EXEC, 0),
    SC_ALLOW(mremap),
    SC_ALLOW(munmap),
    SC_ALLOW(madvise),
    SC_ALLOW(brk),
    /* --stats: which guest pages are resident (RSS without guest RAM). */
    SC_ALLOW(mincore),
    /* The vsock socket is removed at the end, if it is still the one
     * hutch bound (lstat first). */
    SC_ALLOW(newfstatat),
    /* The process ends. */
    SC_ALLOW(exit_group),
};

const unsigned seccomp_loop_nrules =
    sizeof(seccomp_loop_rules) / sizeof(seccomp_loop_rules[0]);
