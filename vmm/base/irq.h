/* SPDX-License-Identifier: MIT */
/*
 * An interrupt line as a device sees it.  The VM wires it to KVM_IRQ_LINE
 * on a GSI; unit tests wire it to a counter.
 */
#ifndef HUTCH_IRQ_H
#define HUTCH_IRQ_H

struct irq_line {
	void (*set_level)(void *opaque, unsigned gsi, int level);
	void *opaque;
	unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l->set_level)
		l->set_level(l->opaque, l->gsi, level);
}

#endif
