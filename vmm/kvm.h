/* SPDX-License-Identifier: MIT */
/* Opening /dev/kvm and checking, up front, everything hutch relies on. */
#ifndef HUTCH_KVM_H
#define HUTCH_KVM_H

#define KVM_DEFAULT_PATH "/dev/kvm"

/* A KVM capability hutch cannot run without, and what it is for. */
struct kvm_cap_need {
	int cap;
	const char *name;
	const char *why;
};

/* The architecture's own (vmm/<arch>/arch_*.c), checked after the
 * generic ones. */
extern const struct kvm_cap_need arch_kvm_caps[];
extern const unsigned arch_nr_kvm_caps;

/* Open the KVM device and check API version and extensions.  Returns the
 * fd or a negative errno after printing one line naming what is wrong. */
int kvm_open_checked(const char *path);

#endif
