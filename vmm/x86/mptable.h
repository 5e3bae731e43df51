/* SPDX-License-Identifier: MIT */
/*
 * Intel MultiProcessor Specification 1.4 table: how a guest kernel without
 * an ACPI MADT (ours, CONFIG_X86_MPPARSE) learns its CPUs, the IOAPIC and
 * the ISA interrupt routing.
 */
#ifndef HUTCH_X86_MPTABLE_H
#define HUTCH_X86_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define MPTABLE_MAX_CPUS 254 /* APIC IDs 0..253, IOAPIC takes the next */

/* Bytes the table needs for ncpus. */
size_t mptable_size(unsigned ncpus);

/* Build floating pointer + configuration table into buf, which the guest
 * will see at gpa.  0, -EINVAL (ncpus) or -ENOSPC. */
int mptable_build(uint8_t *buf, size_t len, uint64_t gpa, unsigned ncpus);

#endif
