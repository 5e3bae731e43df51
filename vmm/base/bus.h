/* SPDX-License-Identifier: MIT */
/*
 * An address bus (x86 port I/O, or MMIO) that dispatches guest accesses to
 * the device registered for the address.  Accesses nobody claims are
 * ignored (reads return all ones) and counted, never fatal: a guest probing
 * hardware we do not have must not stop the VM.
 */
#ifndef HUTCH_BUS_H
#define HUTCH_BUS_H

#include <stdatomic.h>
#include <stdint.h>

#define BUS_MAX_DEVICES 32

struct bus_dev_ops {
	/* off is relative to the registered base; len is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t off, uint8_t *data, unsigned len);
	void (*write)(void *opaque, uint64_t off, const uint8_t *data,
		      unsigned len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_dev_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	unsigned nr;
	struct bus_range ranges[BUS_MAX_DEVICES];
	atomic_ulong unclaimed_reads;
	atomic_ulong unclaimed_writes;
};

void bus_init(struct bus *bus, const char *name);

/* Registration happens before vCPUs start; the table is read-only after. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_dev_ops *ops, void *opaque, const char *name)
    __attribute__((warn_unused_result));

/* Returns 1 if a device handled the access, 0 if it was unclaimed. */
int bus_read(struct bus *bus, uint64_t addr, uint8_t *data, unsigned len);
int bus_write(struct bus *bus, uint64_t addr, const uint8_t *data,
	      unsigned len);

#endif
