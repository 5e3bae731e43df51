// SPDX-License-Identifier: MIT
#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/base/log.h"

static const struct kvm_cap_need required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "race-free vCPU stop"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "virtio notifications"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "virtio interrupts"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", "vCPU state"},
};

static int check_caps(int fd, const struct kvm_cap_need *caps, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			log_errx("KVM lacks %s (needed for %s)", caps[i].name,
				 caps[i].why);
			return -ENOTSUP;
		}
	}
	return 0;
}

/*
 * Some sandboxes offer /dev/kvm backed by kvm_pvm: pagetable-based
 * virtualization without VMX/SVM.  It runs toy guests but fails standard
 * kernels partway through boot (unsupported instruction emulation), which
 * would look like a guest crash.  Refuse it up front, unless asked.
 */
static bool kvm_is_pvm_only(void)
{
	if (getenv("HUTCH_ALLOW_PVM"))
		return false;
	return access("/sys/module/kvm_pvm", F_OK) == 0 &&
	       access("/sys/module/kvm_intel", F_OK) != 0 &&
	       access("/sys/module/kvm_amd", F_OK) != 0;
}

int kvm_open_checked(const char *path)
{
	int fd, ret, version;

	if (!strcmp(path, KVM_DEFAULT_PATH) && kvm_is_pvm_only()) {
		log_errx("%s is provided by kvm_pvm (no hardware "
			 "virtualization), which cannot run standard guests; "
			 "use tools/l1/kvm-run",
			 path);
		return -ENOTSUP;
	}

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			log_errx("%s does not exist: this host has no KVM "
				 "(load kvm_intel/kvm_amd, or run under "
				 "tools/l1/kvm-run)",
				 path);
		else if (ret == -EACCES || ret == -EPERM)
			log_errx("no permission to open %s: add the user to "
				 "the 'kvm' group or run as root",
				 path);
		else
			log_err(ret, "cannot open %s", path);
		return ret;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		log_errx("%s: KVM API version %d, hutch needs %d", path,
			 version, KVM_API_VERSION);
		close(fd);
		return -ENOTSUP;
	}
	ret = check_caps(fd, required_caps,
			 sizeof(required_caps) / sizeof(required_caps[0]));
	if (!ret)
		ret = check_caps(fd, arch_kvm_caps, arch_nr_kvm_caps);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}
