// SPDX-License-Identifier: MIT
/*
 * Reading a snapshot directory (snapshot.h) as hostile input: every file
 * opened without following links, the state file bounded and checked
 * whole before any of it is believed, the memory file's header matched
 * against it.  Both the front end (to refuse a bad snapshot before any
 * VM starts) and the VMM (which restores it) read through here.
 */
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmm/base/le.h"
#include "vmm/base/log.h"

#define CONF_LAYOUT 1
#define MEM_VERSION 1
#define MIB	    (1ull << 20)

void snapshot_mem_header(uint8_t hdr[SNAPSHOT_MEM_HDR],
			 const uint8_t id[SNAPSHOT_ID_LEN], uint64_t ram_bytes)
{
	memset(hdr, 0, SNAPSHOT_MEM_HDR);
	memcpy(hdr, SNAPSHOT_MEM_MAGIC, 8);
	put_le32(hdr + 8, MEM_VERSION);
	put_le32(hdr + 12, SNAPSHOT_MEM_HDR);
	put_le64(hdr + 16, ram_bytes);
	memcpy(hdr + 24, id, SNAPSHOT_ID_LEN);
	put_le32(hdr + 40, (uint32_t)crc32(0, hdr, 40));
}

void snapshot_config_put(struct snap_writer *w, const struct snapshot_config *c)
{
	snap_put_u32(w, CONF_LAYOUT);
	snap_put_bytes(w, c->id, SNAPSHOT_ID_LEN);
	snap_put_str(w, c->arch);
	snap_put_u32(w, c->ncpus);
	snap_put_u64(w, c->mem_mib);
	snap_put_u32(w, c->ndevices);
	for (unsigned i = 0; i < c->ndevices; i++) {
		snap_put_str(w, c->devices[i].type);
		snap_put_str(w, c->devices[i].path);
		snap_put_u8(w, c->devices[i].file);
	}
}

int snapshot_config_get(struct snap_reader *r, struct snapshot_config *c)
{
	uint32_t layout = snap_get_u32(r);

	memset(c, 0, sizeof(*c));
	snap_get_bytes(r, c->id, SNAPSHOT_ID_LEN);
	snap_get_str(r, c->arch, sizeof(c->arch));
	c->ncpus = snap_get_u32(r);
	c->mem_mib = snap_get_u64(r);
	c->ndevices = snap_get_u32(r);
	if (r->bad || layout != CONF_LAYOUT || c->ndevices > VM_MAX_DEVICES)
		return -EINVAL;
	for (unsigned i = 0; i < c->ndevices; i++) {
		uint8_t file;

		snap_get_str(r, c->devices[i].type, sizeof(c->devices[i].type));
		snap_get_str(r, c->devices[i].path, sizeof(c->devices[i].path));
		file = snap_get_u8(r);
		if (file > 1)
			return -EINVAL;
		c->devices[i].file = file;
	}
	/* Bounds any machine could have; the VM's own checks come later. */
	if (c->ncpus == 0 || c->ncpus > 1024 || c->mem_mib == 0 ||
	    c->mem_mib > (1ull << 30))
		return -EINVAL;
	return snap_reader_done(r);
}

/* A regular file in dir_fd, not a link; its fd and size. */
static int open_member(int dir_fd, const char *name, off_t *size)
{
	struct stat st;
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	*size = st.st_size;
	return fd;
}

static int read_state(struct snapshot *s, const char *dir)
{
	off_t size;
	size_t got = 0;
	int fd = open_member(s->dir_fd, SNAPSHOT_STATE, &size), ret = 0;

	if (fd < 0) {
		log_errx("snapshot %s: no readable state file (%s)", dir,
			 strerror(-fd));
		return fd;
	}
	if (size < SNAP_HEADER_LEN + 4 || (uint64_t)size > SNAP_MAX_FILE_LEN) {
		log_errx("snapshot %s: state file of %lld bytes is not a "
			 "state file",
			 dir, (long long)size);
		close(fd);
		return -EINVAL;
	}
	s->state = malloc((size_t)size);
	if (!s->state) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)size) {
		ssize_t n = read(fd, s->state + got, (size_t)size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			log_err(ret, "snapshot %s: reading the state file",
				dir);
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	s->state_len = got;
	return ret;
}

static int check_memory(struct snapshot *s, const char *dir)
{
	uint8_t hdr[SNAPSHOT_MEM_HDR];
	uint64_t ram = s->conf.mem_mib * MIB;
	off_t size;
	int fd = open_member(s->dir_fd, SNAPSHOT_MEMORY, &size);

	if (fd < 0) {
		log_errx("snapshot %s: no readable memory file (%s)", dir,
			 strerror(-fd));
		return fd;
	}
	s->mem_fd = fd;
	if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    memcmp(hdr, SNAPSHOT_MEM_MAGIC, 8) ||
	    get_le32(hdr + 40) != (uint32_t)crc32(0, hdr, 40)) {
		log_errx("snapshot %s: the memory file has no valid header",
			 dir);
		return -EINVAL;
	}
	if (get_le32(hdr + 8) != MEM_VERSION ||
	    get_le32(hdr + 12) != SNAPSHOT_MEM_HDR) {
		log_errx("snapshot %s: memory file version %u is not one this "
			 "hutch reads",
			 dir, get_le32(hdr + 8));
		return -EINVAL;
	}
	if (memcmp(hdr + 24, s->conf.id, SNAPSHOT_ID_LEN)) {
		log_errx("snapshot %s: the memory file belongs to another "
			 "snapshot",
			 dir);
		return -EINVAL;
	}
	if (get_le64(hdr + 16) != ram ||
	    (uint64_t)size != SNAPSHOT_MEM_HDR + ram) {
		log_errx("snapshot %s: the memory file is %lld bytes; %llu "
			 "MiB of RAM need %llu",
			 dir, (long long)size,
			 (unsigned long long)s->conf.mem_mib,
			 (unsigned long long)(SNAPSHOT_MEM_HDR + ram));
		return -EINVAL;
	}
	return 0;
}

int snapshot_open(const char *dir, struct snapshot *s)
{
	struct snap_reader sec;
	uint32_t tag, instance;
	uint16_t minor;
	const char *why = NULL;
	int ret;

	memset(s, 0, sizeof(*s));
	s->mem_fd = -1;
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0) {
		ret = -errno;
		log_err(ret, "snapshot %s", dir);
		return ret;
	}
	ret = read_state(s, dir);
	if (ret)
		goto fail;
	ret = snap_file_open(s->state, s->state_len, &s->body, &minor, &why);
	if (ret) {
		log_errx("snapshot %s: %s", dir, why);
		goto fail;
	}
	/* The configuration comes first. */
	{
		struct snap_reader body = s->body;

		ret = snap_next_section(&body, &tag, &instance, &sec);
		if (ret != 1 || tag != SNAP_SEC_CONFIG ||
		    snapshot_config_get(&sec, &s->conf)) {
			log_errx("snapshot %s: its configuration section is "
				 "missing or damaged",
				 dir);
			ret = -EINVAL;
			goto fail;
		}
	}
	ret = check_memory(s, dir);
	if (ret)
		goto fail;
	return 0;
fail:
	snapshot_close(s);
	return ret;
}

void snapshot_close(struct snapshot *s)
{
	free(s->state);
	s->state = NULL;
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	s->mem_fd = s->dir_fd = -1;
}
