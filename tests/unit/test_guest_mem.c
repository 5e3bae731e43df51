// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "vmm/base/guest_mem.h"

static uint8_t backing[3 * 4096];
static struct guest_mem mem;

static void setup(void)
{
	struct guest_region r[2] = {
	    {.gpa = 0, .size = 2 * 4096},
	    {.gpa = 0x100000000ull, .size = 4096},
	};

	cr_assert_eq(guest_mem_init_from(&mem, backing, r, 2), 0);
}

TestSuite(guest_mem, .init = setup);

Test(guest_mem, maps_regions_contiguously)
{
	cr_assert_eq(gpa_ptr(&mem, 0, 1), backing);
	cr_assert_eq(gpa_ptr(&mem, 4096, 4096), backing + 4096);
	cr_assert_eq(gpa_ptr(&mem, 0x100000000ull, 4096), backing + 8192);
}

Test(guest_mem, rejects_ranges_outside_or_straddling)
{
	cr_assert_null(gpa_ptr(&mem, 2 * 4096, 1), "gap after region 0");
	cr_assert_null(gpa_ptr(&mem, 4096, 4097), "straddles region end");
	cr_assert_null(gpa_ptr(&mem, 0x100000000ull + 1, 4096));
	cr_assert_null(gpa_ptr(&mem, UINT64_MAX, 2), "wraps around");
	cr_assert_null(gpa_ptr(&mem, 0, UINT64_MAX), "4 GiB+ length");
	cr_assert_null(gpa_ptr(&mem, 0xfffff000ull, 16), "hole");
}

Test(guest_mem, copy_helpers_check_bounds)
{
	uint8_t buf[16] = {1, 2, 3};

	cr_assert_eq(guest_write(&mem, 8192 - 16, buf, 16), 0);
	cr_assert_eq(backing[8192 - 16], 1);
	cr_assert_eq(guest_write(&mem, 8192 - 8, buf, 16), -EFAULT);
	cr_assert_eq(guest_read(&mem, 0x100000000ull + 4090, buf, 16), -EFAULT);
	cr_assert_eq(guest_mem_end(&mem), 0x100001000ull);
}

Test(guest_mem, rejects_bad_region_lists)
{
	struct guest_mem m;
	struct guest_region overlap[2] = {{0, 8192, NULL}, {4096, 4096, NULL}};
	struct guest_region wrap[1] = {{UINT64_MAX - 10, 4096, NULL}};

	cr_assert_eq(guest_mem_init_from(&m, backing, overlap, 2), -EINVAL);
	cr_assert_eq(guest_mem_init_from(&m, backing, wrap, 1), -EINVAL);
	cr_assert_eq(guest_mem_init_from(&m, backing, overlap, 0), -EINVAL);
}

Test(guest_mem, anonymous_mapping_is_2mib_aligned)
{
	struct guest_mem m;
	struct guest_region r[1] = {{0, 8ull << 20, NULL}};

	cr_assert_eq(guest_mem_create(&m, r, 1), 0);
	cr_assert_eq((uintptr_t)m.host % (2u << 20), 0);
	*(volatile uint8_t *)gpa_ptr(&m, (8ull << 20) - 1, 1) = 7;
	guest_mem_destroy(&m);
}
