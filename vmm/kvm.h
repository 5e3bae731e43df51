/* SPDX-License-Identifier: MIT */
/* Opening /dev/kvm and checking, up front, everything hutch relies on. */
#ifndef HUTCH_KVM_H
#define HUTCH_KVM_H

#define KVM_DEFAULT_PATH "/dev/kvm"

/* Open the KVM device and check API version and extensions.  Returns the
 * fd or a negative errno after printing one line naming what is wrong. */
int kvm_open_checked(const char *path);

#endif
