/* SPDX-License-Identifier: MIT */
/* Synthetic kernel images for tests: well-formed, then broken on purpose. */
#ifndef HUTCH_TEST_IMAGES_H
#define HUTCH_TEST_IMAGES_H

#include <stddef.h>
#include <stdint.h>

/* A minimal 64-bit bzImage: 1 setup sector + payload_len bytes.  Returns a
 * malloc'd buffer of *len bytes. */
uint8_t *make_bzimage(size_t payload_len, size_t *len);

/*
 * A minimal ELF "kernel" with a PVH note whose code is loaded at 1 MiB.
 * code/code_len is the 32-bit entry code (placed at the entry point).
 * Returns a malloc'd buffer of *len bytes.
 */
uint8_t *make_pvh_elf(const uint8_t *code, size_t code_len, size_t *len);

/* Entry code that makes any x86 CPU triple-fault: load an empty IDT, then
 * raise an exception (ud2). */
extern const uint8_t triple_fault_code[];
extern const size_t triple_fault_code_len;

#define TEST_ELF_LOAD_ADDR 0x100000u

#endif
