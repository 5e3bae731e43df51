// SPDX-License-Identifier: MIT
/*
 * Tell the VMM that the guest reached init: write 123 to I/O port 0x3f0,
 * the boot timer port hutch shares with Firecracker.  Static, no deps.
 */
#include <stdio.h>
#include <sys/io.h>

#include "devices/legacy/boot_timer.h"

int main(void)
{
	if (ioperm(BOOT_TIMER_PORT, 1, 1) != 0) {
		perror("boot-done: ioperm");
		return 1;
	}
	outb(BOOT_TIMER_MAGIC, BOOT_TIMER_PORT);
	return 0;
}
