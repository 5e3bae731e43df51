// SPDX-License-Identifier: MIT
#include "vmm/base/bus.h"

#include <errno.h>
#include <string.h>

#include "vmm/base/log.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_dev_ops *ops, void *opaque, const char *name)
{
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	if (bus->nr == BUS_MAX_DEVICES)
		return -ENOSPC;
	for (unsigned i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < end)
			return -EBUSY;
	}
	bus->ranges[bus->nr++] = (struct bus_range){
	    .base = base,
	    .len = len,
	    .ops = ops,
	    .opaque = opaque,
	    .name = name,
	};
	return 0;
}

static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr,
					unsigned len)
{
	for (unsigned i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		/* The whole access must fall inside the device's window. */
		if (addr >= r->base && addr - r->base < r->len &&
		    len <= r->len - (addr - r->base))
			return r;
	}
	return NULL;
}

int bus_read(struct bus *bus, uint64_t addr, uint8_t *data, unsigned len)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r || !r->ops->read) {
		memset(data, 0xff, len);
		atomic_fetch_add(&bus->unclaimed_reads, 1);
		log_debug("unclaimed %s read at %#llx (%u bytes)", bus->name,
			  (unsigned long long)addr, len);
		return 0;
	}
	r->ops->read(r->opaque, addr - r->base, data, len);
	return 1;
}

int bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, unsigned len)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r || !r->ops->write) {
		atomic_fetch_add(&bus->unclaimed_writes, 1);
		log_debug("unclaimed %s write at %#llx (%u bytes)", bus->name,
			  (unsigned long long)addr, len);
		return 0;
	}
	r->ops->write(r->opaque, addr - r->base, data, len);
	return 1;
}
