// SPDX-License-Identifier: MIT
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/console.h"
#include "vmm/kvm.h"
#include "vmm/base/log.h"
#include "vmm/snapshot.h"

#define MIB (1ull << 20)

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vm_request_stop(struct vm *vm, enum vm_exit_reason why)
{
	int expected = VM_RUNNING;
	uint64_t one = 1;

	if (!atomic_compare_exchange_strong(&vm->exit_reason, &expected,
					    (int)why))
		return;
	/* Wake the event loop; it kicks every vCPU out of KVM_RUN. */
	if (write(vm->stop_efd, &one, sizeof(one)) < 0)
		log_err(-errno, "cannot signal VM stop");
}

static void ctl_request_stop(void *opaque, enum vm_exit_reason why)
{
	vm_request_stop(opaque, why);
}

static int ctl_enter_thread(void *opaque, enum vm_thread_kind kind)
{
	struct vm *vm = opaque;

	(void)kind; /* VM_THREAD_NET is the only kind */
	return seccomp_thread_apply(SECCOMP_NET, vm->cfg->seccomp);
}

static void ctl_boot_done(void *opaque)
{
	struct vm *vm = opaque;
	unsigned long long zero = 0, t = now_ns();

	if (!atomic_compare_exchange_strong(&vm->t_boot_done_ns, &zero, t))
		return;
	log_debug("guest init reached after %.1f ms",
		  (double)(t - vm->t_start_ns) / 1e6);
	if (vm->cfg->has_ready_fd) {
		/* Best effort: a launcher that went away is not our error. */
		if (write(vm->cfg->ready_fd, "R", 1) < 0)
			log_debug("--ready-fd: %s", strerror(errno));
		close(vm->cfg->ready_fd);
	}
}

static void irq_set_level(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = arch_irq_line(gsi),
				    .level = (uint32_t)level};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_err(-errno, "KVM_IRQ_LINE %u", gsi);
}

static void serial_space(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t one = 1;

	if (write(vm->serial_space_efd, &one, sizeof(one)) < 0)
		log_debug("serial space eventfd: %s", strerror(errno));
}

static int setup_memory(struct vm *vm)
{
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	uint64_t bytes = vm->cfg->mem_mib * MIB;
	unsigned n = arch_ram_regions(bytes, regions);
	int ret;

	ret = guest_mem_create(&vm->mem, regions, n);
	if (ret) {
		log_err(ret, "cannot allocate %" PRIu64 " MiB of guest memory",
			vm->cfg->mem_mib);
		return ret;
	}
	if (vm->cfg->restore) {
		/* The snapshot's RAM, copy-on-write: restoring costs the
		 * same whatever the size, and clones share what they only
		 * read. */
		ret = guest_mem_map_file(&vm->mem, vm->cfg->restore->mem_fd,
					 SNAPSHOT_MEM_HDR);
		if (ret) {
			log_err(ret, "cannot map the snapshot's memory");
			return ret;
		}
	}
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region kr = {
		    .slot = i,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uintptr_t)r->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0) {
			ret = -errno;
			log_err(ret, "cannot register guest memory with KVM");
			return ret;
		}
	}
	return 0;
}

/* Map the kernel read-only and hand it to the arch loader. */
static int load_images(struct vm *vm, const char *cmdline)
{
	const struct vm_config *cfg = vm->cfg;
	int kfd = -1, ifd = -1, ret;
	struct stat st;
	uint64_t initrd_size = 0;
	void *kernel = MAP_FAILED;
	size_t klen = 0;

	kfd = open(cfg->kernel_path, O_RDONLY | O_CLOEXEC);
	if (kfd < 0) {
		ret = -errno;
		log_err(ret, "cannot open kernel %s", cfg->kernel_path);
		goto out;
	}
	if (fstat(kfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		log_errx("kernel %s is not a regular file", cfg->kernel_path);
		goto out;
	}
	if (st.st_size == 0) {
		ret = -EINVAL;
		log_errx("kernel %s is empty", cfg->kernel_path);
		goto out;
	}
	klen = (size_t)st.st_size;
	kernel = mmap(NULL, klen, PROT_READ, MAP_PRIVATE, kfd, 0);
	if (kernel == MAP_FAILED) {
		ret = -errno;
		log_err(ret, "cannot map kernel %s", cfg->kernel_path);
		goto out;
	}

	if (cfg->initrd_path) {
		ifd = open(cfg->initrd_path, O_RDONLY | O_CLOEXEC);
		if (ifd < 0) {
			ret = -errno;
			log_err(ret, "cannot open initrd %s", cfg->initrd_path);
			goto out;
		}
		if (fstat(ifd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_size == 0) {
			ret = -EINVAL;
			log_errx("initrd %s is not a non-empty regular file",
				 cfg->initrd_path);
			goto out;
		}
		initrd_size = (uint64_t)st.st_size;
	}

	ret = arch_load_kernel(vm, kernel, klen, ifd, initrd_size, cmdline);
	if (ret && ret != -ENOMEM && ret != -E2BIG && ret != -EINVAL &&
	    ret != -ENOEXEC)
		log_err(ret, "cannot load kernel %s", cfg->kernel_path);
out:
	if (kernel != MAP_FAILED)
		munmap(kernel, klen);
	if (kfd >= 0)
		close(kfd);
	if (ifd >= 0)
		close(ifd);
	return ret;
}

/* Append printf-formatted words to a growing command line. */
static int cmdline_add(char **s, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int cmdline_add(char **s, const char *fmt, ...)
{
	char *word, *joined;
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vasprintf(&word, fmt, ap);
	va_end(ap);
	if (ret < 0)
		return -ENOMEM;
	ret = asprintf(&joined, "%s%s%s", *s ? *s : "", *s ? " " : "", word);
	free(word);
	if (ret < 0)
		return -ENOMEM;
	free(*s);
	*s = joined;
	return 0;
}

/*
 * Ours first, so the user's words win (Linux takes the last value) and
 * anything after the user's "--" still goes to init.  Devices are
 * announced here: virtio_mmio.device=<size>@<base>:<irq>, in slot order,
 * which is also the order the guest names the disks (vda, vdb, ...); then
 * what each device adds (root=/dev/vdX).
 */
static char *build_cmdline(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	char *s = NULL, words[256];
	int ret = cmdline_add(&s, "%s", arch_default_cmdline);

	for (unsigned i = 0; i < vm->ndevs && !ret; i++) {
		struct device_instance *d = &vm->devs[i];
		const struct virtio_dev *v =
		    d->type->virtio ? d->type->virtio(d->dev) : NULL;

		if (v && arch_virtio_cmdline)
			ret = cmdline_add(&s, "virtio_mmio.device=4K@0x%llx:%u",
					  (unsigned long long)v->mmio_base,
					  v->gsi);
	}
	for (unsigned i = 0; i < vm->ndevs && !ret; i++) {
		struct device_instance *d = &vm->devs[i];

		if (!d->type->cmdline)
			continue;
		ret = d->type->cmdline(d->dev, d->cfg, d->index, words,
				       sizeof(words));
		if (!ret && words[0])
			ret = cmdline_add(&s, "%s", words);
	}
	if (!ret)
		ret = cmdline_add(&s, "%s",
				  cfg->cmdline ? cfg->cmdline : "quiet");
	if (ret) {
		free(s);
		return NULL;
	}
	return s;
}

/* Every device of the configuration, in order, each virtio device in the
 * next virtio-mmio slot. */
static int create_devices(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	unsigned slot = 0;
	int ret;

	for (unsigned i = 0; i < cfg->ndevices; i++) {
		const struct device_config *dc = &cfg->devices[i];
		struct device_instance *d = &vm->devs[vm->ndevs];
		struct device_env env = {
		    .host = {.mem = &vm->mem, .vm_fd = vm->vm_fd, .ep = vm->ep},
		    .ctl = &vm->ctl,
		};
		struct virtio_dev *v;

		for (unsigned k = 0; k < vm->ndevs; k++)
			env.index += vm->devs[k].type == dc->type;
		if (dc->type->virtio) {
			ret =
			    arch_virtio_slot(slot++, &env.mmio_base, &env.gsi);
			if (ret) {
				log_errx("too many virtio devices");
				return ret;
			}
		}
		ret = dc->type->create(dc->cfg, &env, &d->dev);
		if (ret)
			return ret;
		d->type = dc->type;
		d->cfg = dc->cfg;
		d->index = env.index;
		vm->ndevs++;
		v = dc->type->virtio ? dc->type->virtio(d->dev) : NULL;
		if (!v)
			continue;
		ret = bus_register(&vm->mmio, env.mmio_base, VIRTIO_MMIO_SIZE,
				   &virtio_mmio_bus_ops, v, dc->type->name);
		if (ret) {
			log_err(ret, "cannot place %s at 0x%llx",
				dc->type->name,
				(unsigned long long)env.mmio_base);
			return ret;
		}
	}
	return 0;
}

/* --stats reads these at the end, when no file may be opened any more
 * (seccomp, the jail): all exits, including those KVM handled itself
 * (debugfs keeps them per VM as "<pid>-<vm fd>" while the VM exists), and
 * the resident set.  Missing ones print as unknown. */
static void open_stats(struct vm *vm)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/exits",
		 (int)getpid(), vm->vm_fd);
	vm->kvm_exits_fd = open(path, O_RDONLY | O_CLOEXEC);
	vm->status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
}

#ifdef HUTCH_TEST_HOOKS
static void test_hooks_init(struct vm *vm)
{
	const char *v = getenv("HUTCH_TEST_SECCOMP_VIOLATE");

	if (v)
		snprintf(vm->test_violate, sizeof(vm->test_violate), "%s", v);
}

void vm_test_violate(const struct vm *vm, const char *kind)
{
	/* An inet socket: on neither list (the loop's allows AF_UNIX). */
	if (!strcmp(vm->test_violate, kind)) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		log_errx("test hook: %s thread made a forbidden syscall and "
			 "lives (fd %d)",
			 kind, fd);
	}
}
#else
static void test_hooks_init(struct vm *vm)
{
	(void)vm;
}

void vm_test_violate(const struct vm *vm, const char *kind)
{
	(void)vm;
	(void)kind;
}
#endif

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	char *cmdline = NULL;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->t_start_ns = now_ns();
	vm->kvm_fd = vm->vm_fd = vm->console.fd = -1;
	vm->stop_efd = vm->serial_space_efd = vm->ep = -1;
	vm->status_fd = vm->kvm_exits_fd = vm->pagemap_fd = -1;
	vm->ncpus = cfg->ncpus;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->ctl = (struct vm_control){.request_stop = ctl_request_stop,
				      .boot_done = ctl_boot_done,
				      .enter_thread = ctl_enter_thread,
				      .opaque = vm};
	bus_init(&vm->pio, "port");
	bus_init(&vm->mmio, "mmio");

	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->serial_space_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->ep = epoll_create1(EPOLL_CLOEXEC);
	if (vm->stop_efd < 0 || vm->serial_space_efd < 0 || vm->ep < 0) {
		ret = -errno;
		log_err(ret, "eventfd");
		return ret;
	}

	ret = console_open(&vm->console, cfg->console_path, cfg->console_limit);
	if (ret)
		return ret;
	serial_init(&vm->serial,
		    (struct serial_sink){.write = console_write,
					 .opaque = &vm->console},
		    (struct irq_line){.set_level = irq_set_level,
				      .opaque = vm,
				      .gsi = arch_serial_gsi});
	vm->serial.rx_space = serial_space;
	vm->serial.rx_space_opaque = vm;

	ret = vm->kvm_fd = kvm_open_checked(cfg->kvm_path);
	if (ret < 0)
		return ret;
	ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (ret > 0 && cfg->ncpus > (unsigned)ret) {
		log_errx("--cpus %u: this host's KVM allows at most %d",
			 cfg->ncpus, ret);
		return -EINVAL;
	}
	ret = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ret <= 0) {
		log_err(-errno, "KVM_GET_VCPU_MMAP_SIZE");
		return -errno;
	}
	vm->run_size = (size_t)ret;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		log_err(ret, "cannot create VM");
		return ret;
	}
	fcntl(vm->vm_fd, F_SETFD, FD_CLOEXEC);
	if (cfg->stats)
		open_stats(vm);
	test_hooks_init(vm);

	ret = arch_vm_init(vm);
	if (ret)
		return ret;
	ret = setup_memory(vm);
	if (ret)
		return ret;
	ret = arch_register_devices(vm);
	if (ret)
		return ret;

	/* vCPUs before devices: arm64's irqfds need the GIC initialised,
	 * which it can be only once every vCPU exists. */
	vm->vcpus = calloc(cfg->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < cfg->ncpus; i++) {
		ret = vcpu_create(vm, &vm->vcpus[i], i);
		if (ret)
			return ret;
	}
	ret = arch_vcpus_created(vm);
	if (ret)
		return ret;

	ret = create_devices(vm);
	if (ret)
		return ret;
	if (cfg->control_path) {
		ret = control_open(&vm->control, vm, cfg->control_path);
		if (ret)
			return ret;
		vm->pagemap_fd =
		    open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	}

	if (!cfg->restore) {
		cmdline = build_cmdline(vm);
		if (!cmdline)
			return -ENOMEM;
		ret = load_images(vm, cmdline);
		free(cmdline);
		if (!ret)
			ret = arch_set_entry(vm, &vm->vcpus[0]);
		if (ret)
			return ret;
	}
	if (cfg->restore) {
		ret = vm_restore_state(vm, cfg->restore);
		if (ret)
			return ret;
		vm->restored = true;
	}
	return 0;
}
