/* SPDX-License-Identifier: MIT */
/*
 * What a device type is to the VMM: one static const record per type
 * (struct device_type), kept in the table vmm/device_table.c, which the
 * VMM loops over to parse options, create instances, announce them on
 * the kernel command line, print their counters and tear them down.
 * Adding a device is its folder plus one row there; nothing in the VMM
 * knows any device by name.
 *
 * Threads: parse and create run on the main thread before any vCPU;
 * print_stats and destroy after every vCPU has stopped.
 */
#ifndef HUTCH_DEVICE_H
#define HUTCH_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/bus.h"
#include "vmm/base/vm_control.h"

/* Snapshot state streams (vmm/base/snap.h). */
struct snap_writer;
struct snap_reader;

/* What the VMM gives a device it creates. */
struct device_env {
	struct virtio_host host; /* guest memory, KVM VM fd, event loop */
	const struct vm_control *ctl;
	uint64_t mmio_base; /* its virtio-mmio window, VIRTIO_MMIO_SIZE */
	unsigned gsi;	    /* its interrupt line */
	unsigned index;	    /* among the instances of its type (vda, vdb) */
};

struct device_type {
	const char *name; /* "virtio-blk": in messages and --stats */
	/* Long option that adds an instance (--drive SPEC), its argument's
	 * shape for --help, and one line of help; NULL: no option. */
	const char *option;
	const char *option_arg;
	const char *option_help;
	/* Long option that removes the default instance (--no-rng); NULL:
	 * the type has no default instance. */
	const char *no_option;
	const char *no_option_help;
	unsigned max; /* instances per VM */

	/*
	 * One option value (modified in place: the config may point into
	 * it) into a new config (malloc'd; free_config frees it), checked
	 * against the earlier instances' configs.  0, or -EINVAL after one
	 * line saying why.
	 */
	int (*parse)(char *value, void **cfg, void *const *earlier,
		     unsigned n_earlier);
	void (*free_config)(void *cfg);

	/* An instance for cfg (NULL: the default instance).  The instance
	 * (the type's own struct) in *dev; 0 or negative errno, reported. */
	int (*create)(const void *cfg, const struct device_env *env,
		      void **dev);
	/* Its virtio transport (the VMM maps it and announces it with
	 * virtio_mmio.device=); NULL for a device that is not virtio. */
	struct virtio_dev *(*virtio)(void *dev);
	/* Words for the kernel command line besides virtio_mmio.device=
	 * (root=/dev/vdX ...): written into buf, "" for none.  0 or
	 * -ENOSPC. */
	int (*cmdline)(void *dev, const void *cfg, unsigned index, char *buf,
		       size_t len);
	/* --stats: one "hutch-stats: ..." line. */
	void (*print_stats)(void *dev, unsigned index, FILE *out);
	/* The jail (vmm/jail.h): the largest size a file this instance
	 * writes may reach (RLIMIT_FSIZE covers every file), and the host
	 * socket path whose "_<port>" siblings the guest may have hutch
	 * connect to (the jail's broker connects to those only).  NULL or
	 * 0: none. */
	uint64_t (*max_file_size)(void *dev);
	/* Guest-facing rate limits changed on a running VM (the control
	 * channel, event loop thread): spec is "key=value,..." (modified).
	 * 0, or -EINVAL after saying why.  NULL: the type has none. */
	int (*set_limits)(void *dev, char *spec);
	const char *(*host_path)(const void *cfg);
	/* Does an instance for cfg reach the host's network itself (user
	 * networking re-originates the guest's connections)?  Then the
	 * jail keeps the host's network namespace.  NULL: no. */
	bool (*host_network)(const void *cfg);
	/* A thread of the instance's own, started once the VM is set up
	 * and jailed, before any vCPU runs (0 or negative errno,
	 * reported), and stopped after every vCPU has.  NULL: none. */
	int (*start)(void *dev);
	void (*stop)(void *dev);
	/* Finish in-flight work and free the instance. */
	void (*destroy)(void *dev);

	/*
	 * Snapshots (vmm/vm_snapshot.c), every vCPU parked: on the event
	 * loop thread for save, before any vCPU runs for restore.
	 * snapshot_files: how many files the instance copies into a
	 * snapshot (0, or 1 for a drive's overlay), or -EINVAL after saying
	 * why it cannot be snapshotted.  save finishes the work in flight
	 * (a drive drains its I/O), writes its state into the open section
	 * and copies its file into file_fd (-1: none asked).  restore loads
	 * the state into an instance just created from the same config,
	 * checked as hostile input: 0, or -EINVAL after one line saying
	 * why.  NULL save: the type cannot be snapshotted.
	 */
	int (*snapshot_files)(void *dev);
	/* The host file holding what the guest sees (a drive's image),
	 * recorded in a snapshot's configuration so a restore reopens it;
	 * NULL: none. */
	const char *(*backing_path)(const void *cfg);
	int (*save)(void *dev, struct snap_writer *w, int file_fd);
	int (*restore)(void *dev, struct snap_reader *r);
};

#endif
