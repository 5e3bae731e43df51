/* SPDX-License-Identifier: MIT */
/*
 * The VM generation ID (Microsoft's "Virtual Machine Generation ID", as
 * Linux's vmgenid driver reads it): 16 random bytes in guest memory at
 * X86_VMGENID_ADDR, announced by the DSDT's VMGENCTR device (acpi.c).
 * A VM restored from a snapshot gets a new one and a GPE that makes the
 * guest look (sysctl_ports.h); the guest's RNG reseeds on the change, so
 * clones of one snapshot do not produce the same random numbers.
 */
#ifndef HUTCH_X86_VMGENID_H
#define HUTCH_X86_VMGENID_H

#include "vmm/base/guest_mem.h"

/* A fresh random ID into guest memory.  0 or negative errno. */
int x86_vmgenid_new(const struct guest_mem *m);

#endif
