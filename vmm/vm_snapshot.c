// SPDX-License-Identifier: MIT
/*
 * Taking a snapshot of a running VM (snapshot.h has the files), on the
 * event loop thread: the control channel asks, with the files to write
 * already open (the front end made them; a jailed VMM could not).
 *
 *   1. every device says whether it can be snapshotted and which files
 *      it copies (a drive's overlay), before anything stops;
 *   2. every vCPU parks and reads its own state out of KVM (vm_pause.c);
 *   3. the devices finish what is in flight (a drive drains its I/O,
 *      which lands in guest memory and the used rings) and write their
 *      state; the interrupt controllers, timers and clock are read;
 *   4. guest RAM goes to the memory file, skipping pages of zeros (the
 *      file stays sparse), then the state file is written whole;
 *   5. the vCPUs run again, whatever happened.
 *
 * The event loop does nothing else meanwhile, so no device handler runs
 * between steps 3 and 4.  Syncing and renaming the files is the front
 * end's part.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define MIB	  (1ull << 20)
#define PAGE_SIZE 4096u

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE_SIZE];

	return !memcmp(p, zero, PAGE_SIZE);
}

/*
 * Pages the guest never touched: anonymous memory neither present nor
 * swapped out (/proc/self/pagemap, bits 63 and 62) is zeros, and skipping
 * it spares reading (and faulting in) all of a large, mostly idle guest.
 * NULL where that does not hold (RAM mapped from a snapshot: a page not
 * mapped yet still has its file's data) or pagemap is not there; then
 * every page is looked at.
 */
static unsigned char *untouched_map(struct vm *vm)
{
	size_t pages = vm->mem.host_len / PAGE_SIZE, done = 0;
	uint64_t first = (uintptr_t)vm->mem.host / PAGE_SIZE, chunk[512];
	unsigned char *vec;

	if (vm->restored || vm->pagemap_fd < 0)
		return NULL;
	vec = malloc(pages);
	while (vec && done < pages) {
		size_t n = pages - done < 512 ? pages - done : 512;
		ssize_t got = pread(vm->pagemap_fd, chunk, n * 8,
				    (off_t)((first + done) * 8));

		if (got != (ssize_t)(n * 8)) {
			free(vec);
			return NULL;
		}
		for (size_t k = 0; k < n; k++)
			vec[done + k] = (chunk[k] >> 62) != 0;
		done += n;
	}
	return vec;
}

static bool page_skipped(const uint8_t *ram, size_t i, const unsigned char *vec)
{
	return (vec && !(vec[i / PAGE_SIZE] & 1)) || page_is_zero(ram + i);
}

/* Header, then RAM in runs of non-zero pages; the size set first, so
 * the zero pages stay holes. */
static int write_memory(struct vm *vm, int fd, const uint8_t *id)
{
	uint8_t hdr[SNAPSHOT_MEM_HDR];
	const uint8_t *ram = vm->mem.host;
	size_t len = vm->mem.host_len, i = 0;
	unsigned char *vec = untouched_map(vm);
	int ret;

	snapshot_mem_header(hdr, id, len);
	if (ftruncate(fd, 0) < 0 ||
	    ftruncate(fd, (off_t)(SNAPSHOT_MEM_HDR + len)) < 0)
		return -errno;
	ret = write_all(fd, hdr, sizeof(hdr), 0);
	while (!ret && i < len) {
		size_t start;

		while (i < len && page_skipped(ram, i, vec))
			i += PAGE_SIZE;
		start = i;
		while (i < len && !page_skipped(ram, i, vec))
			i += PAGE_SIZE;
		if (i > start)
			ret = write_all(fd, ram + start, i - start,
					SNAPSHOT_MEM_HDR + start);
	}
	free(vec);
	return ret;
}

static void fill_config(struct vm *vm, struct snapshot_config *c,
			const int *nfiles)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->arch, sizeof(c->arch), "%s", arch_name);
	c->ncpus = vm->ncpus;
	c->mem_mib = vm->cfg->mem_mib;
	c->ndevices = vm->ndevs;
	for (unsigned i = 0; i < vm->ndevs; i++) {
		const struct device_instance *d = &vm->devs[i];
		const char *path =
		    d->type->backing_path ? d->type->backing_path(d->cfg) : "";

		snprintf(c->devices[i].type, sizeof(c->devices[i].type), "%s",
			 d->type->name);
		snprintf(c->devices[i].path, sizeof(c->devices[i].path), "%s",
			 path ? path : "");
		c->devices[i].file = nfiles[i] > 0;
	}
}

static int save_state(struct vm *vm, struct snap_writer *w,
		      const struct snapshot_config *conf, const int *nfiles,
		      const int *files)
{
	unsigned next = 0;
	int ret;

	snap_section_begin(w, SNAP_SEC_CONFIG, 0);
	snapshot_config_put(w, conf);
	snap_section_begin(w, SNAP_SEC_ARCH, 0);
	ret = arch_vm_save(vm, w);
	if (ret)
		return ret;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		snap_section_begin(w, SNAP_SEC_VCPU, i);
		arch_vcpu_save(&vm->vcpus[i], w);
	}
	snap_section_begin(w, SNAP_SEC_SERIAL, 0);
	serial_save(&vm->serial, w);
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct device_instance *d = &vm->devs[i];

		snap_section_begin(w, SNAP_SEC_DEVICE, i);
		snap_put_str(w, d->type->name);
		snap_put_u32(w, d->index);
		ret = d->type->save(d->dev, w, nfiles[i] ? files[next] : -1);
		if (ret)
			return ret;
		next += (unsigned)nfiles[i];
	}
	return snap_writer_finish(w);
}

int vm_snapshot(struct vm *vm, int state_fd, int mem_fd, const int *files,
		unsigned nfiles, const char **why)
{
	int per_dev[VM_MAX_DEVICES] = {0};
	unsigned need = 0;
	struct snapshot_config conf;
	struct snap_writer w;
	int ret;

	*why = "the VM cannot be snapshotted (see its log)";
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct device_instance *d = &vm->devs[i];

		if (!d->type->save) {
			log_errx("snapshot: %s devices cannot be snapshotted",
				 d->type->name);
			return -EOPNOTSUPP;
		}
		per_dev[i] = d->type->snapshot_files
				 ? d->type->snapshot_files(d->dev)
				 : 0;
		if (per_dev[i] < 0)
			return per_dev[i];
		need += (unsigned)per_dev[i];
	}
	if (need != nfiles) {
		*why = "wrong number of files for this VM's drives";
		return -EINVAL;
	}
	fill_config(vm, &conf, per_dev);
	if (getrandom(conf.id, sizeof(conf.id), 0) != sizeof(conf.id)) {
		*why = "no random bytes for the snapshot's id";
		return -EIO;
	}

	ret = vm_pause(vm, true);
	if (ret) {
		*why = "the vCPUs would not pause";
		return ret;
	}
	/* A guest on its way out has vCPUs that never parked. */
	if (atomic_load(&vm->exit_reason) != VM_RUNNING) {
		vm_resume(vm);
		*why = "the VM is stopping";
		return -ESRCH;
	}
	snap_writer_init(&w);
	ret = save_state(vm, &w, &conf, per_dev, files);
	if (ret) {
		*why = ret == -ENOMEM ? "out of memory" : "saving the state";
		goto out;
	}
	ret = write_memory(vm, mem_fd, conf.id);
	if (!ret)
		ret = ftruncate(state_fd, 0) < 0 ? -errno : 0;
	if (!ret)
		ret = write_all(state_fd, w.p, w.len, 0);
	if (ret) {
		*why = ret == -ENOSPC ? "no space left for the snapshot"
				      : "writing the snapshot";
		log_err(ret, "snapshot");
	}
out:
	vm_resume(vm);
	if (!ret)
		log_debug("snapshot: %zu bytes of state", w.len);
	snap_writer_free(&w);
	return ret;
}
