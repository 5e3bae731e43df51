/* SPDX-License-Identifier: MIT */
/*
 * A snapshot on disk: a directory holding
 *
 *   state       the VM's state (vmm/base/snap.h's format): sections
 *               CONF (what the VM was: id, vCPUs, memory, its devices),
 *               ARCH (interrupt controllers, timers, clock), VCPU per
 *               vCPU, SERL (the UART), DEV per device, in that order
 *   memory      guest RAM after a SNAP_MEM_HEADER-byte header (magic,
 *               version, RAM size, the snapshot id, crc32 of those), so
 *               RAM sits page aligned and a restore maps it MAP_PRIVATE;
 *               sparse: pages of zeros are holes
 *   diskN.cow   the overlay of the N-th drive that has one
 *
 * The state and the memory file carry the same random 128-bit id, so a
 * state file paired with another snapshot's memory is refused.  The front
 * end writes all of it into a fresh directory beside the target and
 * renames it into place only once every file is synced (cmd_snapshot.c).
 */
#ifndef HUTCH_SNAPSHOT_H
#define HUTCH_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/base/snap.h"
#include "vmm/device_table.h"

#define SNAPSHOT_STATE	   "state"
#define SNAPSHOT_MEMORY	   "memory"
#define SNAPSHOT_DISK_FMT  "disk%u.cow"
#define SNAPSHOT_MEM_MAGIC "HUTCHMEM"
#define SNAPSHOT_MEM_HDR   4096u
#define SNAPSHOT_ID_LEN	   16
#define SNAPSHOT_PATH_MAX  1024

#define SNAP_SEC_CONFIG SNAP_TAG('C', 'O', 'N', 'F')
#define SNAP_SEC_ARCH	SNAP_TAG('A', 'R', 'C', 'H')
#define SNAP_SEC_VCPU	SNAP_TAG('V', 'C', 'P', 'U')
#define SNAP_SEC_SERIAL SNAP_TAG('S', 'E', 'R', 'L')
#define SNAP_SEC_DEVICE SNAP_TAG('D', 'E', 'V', ' ')

/* The CONF section. */
struct snapshot_config {
	uint8_t id[SNAPSHOT_ID_LEN];
	char arch[16];
	unsigned ncpus;
	uint64_t mem_mib;
	unsigned ndevices;
	struct snapshot_device {
		char type[32];
		/* The host file behind it (a drive's image), or "". */
		char path[SNAPSHOT_PATH_MAX];
		bool file; /* it has a diskN.cow in the snapshot */
	} devices[VM_MAX_DEVICES];
};

/* A snapshot read and checked (snapshot_open), ready to restore. */
struct snapshot {
	uint8_t *state; /* the whole state file */
	size_t state_len;
	struct snap_reader body; /* its sections */
	struct snapshot_config conf;
	int mem_fd; /* the memory file, header checked */
	int dir_fd;
};

/*
 * Read and check the snapshot in dir (a path): the state file whole
 * (size, magic, major version, CRC, its CONF section) and the memory
 * file's header and size against it.  0, or -EINVAL/-ENOENT/... after
 * one line saying what is wrong.
 */
int snapshot_open(const char *dir, struct snapshot *s);
void snapshot_close(struct snapshot *s);

/* The memory file's header for RAM of ram_bytes. */
void snapshot_mem_header(uint8_t hdr[SNAPSHOT_MEM_HDR],
			 const uint8_t id[SNAPSHOT_ID_LEN], uint64_t ram_bytes);

/* The CONF section's payload. */
void snapshot_config_put(struct snap_writer *w,
			 const struct snapshot_config *c);
int snapshot_config_get(struct snap_reader *r, struct snapshot_config *c);

#endif
