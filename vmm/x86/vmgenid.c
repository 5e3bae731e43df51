// SPDX-License-Identifier: MIT
#include "vmm/x86/vmgenid.h"

#include <errno.h>
#include <sys/random.h>

#include "vmm/x86/layout.h"

int x86_vmgenid_new(const struct guest_mem *m)
{
	uint8_t id[X86_VMGENID_LEN];

	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
		return -EIO;
	return guest_write(m, X86_VMGENID_ADDR, id, sizeof(id));
}
