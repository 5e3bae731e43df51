// SPDX-License-Identifier: MIT
/*
 * The arm64 guest's device tree (dtb.h), with libfdt's sequential-write
 * API.  Bindings followed (Linux's Documentation/devicetree/bindings):
 * arm/cpus.yaml and arm/psci.yaml (enable-method "psci", method "hvc":
 * KVM answers PSCI calls itself), interrupt-controller/arm,gic-v3.yaml
 * (3 interrupt cells: type, number, flags), timer/arm,arch_timer.yaml
 * (the secure, non-secure, virtual and hypervisor PPIs, 13, 14, 11, 10),
 * serial/8250.yaml, virtio/mmio.yaml, and chosen.yaml.
 */
#include "vmm/arm64/dtb.h"

#include <errno.h>
#include <libfdt.h>
#include <string.h>

/* GICv3 interrupt specifier cells. */
#define GIC_SPI		     0
#define GIC_PPI		     1
#define IRQ_TYPE_EDGE_RISING 1
#define IRQ_TYPE_LEVEL_HIGH  4

#define GIC_PHANDLE 1
#define UART_CLOCK  1843200 /* Hz: the 16550's classic crystal */

static const char *check(const struct arm64_fdt_config *c)
{
	uint64_t ipa_end = 1ull << ARM64_IPA_BITS, end;

	if (c->ncpus == 0 || c->ncpus > ARM64_MAX_CPUS)
		return "vCPUs: 1 to 123 (one GICv3 redistributor region)";
	if (c->mem_size == 0 || (c->mem_size & 0xfff))
		return "RAM: a positive multiple of 4 KiB";
	if (c->mem_size > ipa_end - ARM64_RAM_BASE)
		return "RAM does not fit the guest's 40-bit physical address "
		       "space (at most 1023 GiB)";
	end = ARM64_RAM_BASE + c->mem_size;
	if (c->initrd_size &&
	    (c->initrd_start < ARM64_RAM_BASE || c->initrd_start >= end ||
	     c->initrd_size > end - c->initrd_start))
		return "the initrd lies outside RAM";
	if (c->bootargs && strlen(c->bootargs) >= ARM64_CMDLINE_MAX)
		return "kernel command line over 2047 bytes (arm64's "
		       "COMMAND_LINE_SIZE)";
	if (c->ndevices > ARM64_MAX_VIRTIO)
		return "too many virtio devices (at most 32)";
	for (unsigned i = 0; i < c->ndevices; i++) {
		const struct arm64_fdt_device *d = &c->devices[i];

		if (d->base < ARM64_VIRTIO_BASE ||
		    (d->base & (ARM64_VIRTIO_SIZE - 1)) ||
		    d->base > ARM64_VIRTIO_END - ARM64_VIRTIO_SIZE)
			return "a virtio device outside the virtio-mmio window "
			       "or misaligned";
		if (d->spi >= ARM64_MAX_SPI || d->spi == ARM64_UART_SPI)
			return "a virtio device's interrupt out of range or "
			       "the UART's";
		for (unsigned k = 0; k < i; k++) {
			if (c->devices[k].base == d->base)
				return "two virtio devices at one address";
			if (c->devices[k].spi == d->spi)
				return "two virtio devices on one interrupt";
		}
	}
	return NULL;
}

/* Each step of the tree; the first error stops the rest. */
struct fdt_writer {
	void *fdt;
	int err;
};

static void begin(struct fdt_writer *w, const char *name)
{
	if (!w->err)
		w->err = fdt_begin_node(w->fdt, name);
}

static void end(struct fdt_writer *w)
{
	if (!w->err)
		w->err = fdt_end_node(w->fdt);
}

static void prop(struct fdt_writer *w, const char *name, const void *val,
		 int len)
{
	if (!w->err)
		w->err = fdt_property(w->fdt, name, val, len);
}

static void prop_str(struct fdt_writer *w, const char *name, const char *s)
{
	if (!w->err)
		w->err = fdt_property_string(w->fdt, name, s);
}

static void prop_u32(struct fdt_writer *w, const char *name, uint32_t v)
{
	if (!w->err)
		w->err = fdt_property_u32(w->fdt, name, v);
}

/* Cells, big endian: n values. */
static void prop_cells(struct fdt_writer *w, const char *name,
		       const uint32_t *v, unsigned n)
{
	fdt32_t cells[16];

	for (unsigned i = 0; i < n && i < 16; i++)
		cells[i] = cpu_to_fdt32(v[i]);
	prop(w, name, cells, (int)(n * sizeof(fdt32_t)));
}

/* reg = <base size> with 2 address and 2 size cells, pairs of them. */
static void prop_reg(struct fdt_writer *w, const uint64_t *pairs, unsigned n)
{
	fdt64_t cells[4];

	for (unsigned i = 0; i < n && i < 4; i++)
		cells[i] = cpu_to_fdt64(pairs[i]);
	prop(w, "reg", cells, (int)(n * sizeof(fdt64_t)));
}

static void node_name(char *buf, size_t len, const char *base, uint64_t addr)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = strlen(base);
	char digits[17];
	int n = 0;

	do {
		digits[n++] = hex[addr & 0xf];
		addr >>= 4;
	} while (addr && n < 16);
	if (k + 1 + (size_t)n + 1 > len) {
		buf[0] = 0;
		return;
	}
	memcpy(buf, base, k);
	buf[k++] = '@';
	while (n)
		buf[k++] = digits[--n];
	buf[k] = 0;
}

static void cpus(struct fdt_writer *w, const struct arm64_fdt_config *c)
{
	begin(w, "cpus");
	prop_u32(w, "#address-cells", 1);
	prop_u32(w, "#size-cells", 0);
	for (unsigned i = 0; i < c->ncpus; i++) {
		char name[32];

		node_name(name, sizeof(name), "cpu", arm64_vcpu_mpidr(i));
		begin(w, name);
		prop_str(w, "device_type", "cpu");
		prop_str(w, "compatible", "arm,arm-v8");
		prop_str(w, "enable-method", "psci");
		prop_u32(w, "reg", arm64_vcpu_mpidr(i));
		end(w);
	}
	end(w);
}

static void gic_and_timer(struct fdt_writer *w, unsigned ncpus)
{
	static const char psci[] = "arm,psci-1.0\0arm,psci-0.2";
	const uint64_t gic[] = {ARM64_GICD_BASE, ARM64_GICD_SIZE,
				ARM64_GICR_BASE,
				ARM64_GICR_SIZE_PER_CPU * ncpus};
	const uint32_t timer[] = {
	    GIC_PPI, 13, IRQ_TYPE_LEVEL_HIGH, GIC_PPI, 14, IRQ_TYPE_LEVEL_HIGH,
	    GIC_PPI, 11, IRQ_TYPE_LEVEL_HIGH, GIC_PPI, 10, IRQ_TYPE_LEVEL_HIGH};
	char name[32];

	begin(w, "psci");
	prop(w, "compatible", psci, sizeof(psci));
	prop_str(w, "method", "hvc");
	end(w);

	node_name(name, sizeof(name), "intc", ARM64_GICD_BASE);
	begin(w, name);
	prop_str(w, "compatible", "arm,gic-v3");
	prop_u32(w, "#interrupt-cells", 3);
	prop(w, "interrupt-controller", NULL, 0);
	prop_reg(w, gic, 4);
	prop_u32(w, "phandle", GIC_PHANDLE);
	end(w);

	begin(w, "timer");
	prop_str(w, "compatible", "arm,armv8-timer");
	prop_cells(w, "interrupts", timer, 12);
	end(w);
}

static void devices(struct fdt_writer *w, const struct arm64_fdt_config *c)
{
	const uint64_t uart[] = {ARM64_UART_BASE, ARM64_UART_SIZE};
	const uint32_t uart_irq[] = {GIC_SPI, ARM64_UART_SPI,
				     IRQ_TYPE_LEVEL_HIGH};
	const uint64_t pvpanic[] = {ARM64_PVPANIC_BASE, ARM64_PVPANIC_SIZE};
	char name[32];

	node_name(name, sizeof(name), "uart", ARM64_UART_BASE);
	begin(w, name);
	prop_str(w, "compatible", "ns16550a");
	prop_reg(w, uart, 2);
	prop_u32(w, "clock-frequency", UART_CLOCK);
	prop_cells(w, "interrupts", uart_irq, 3);
	end(w);

	/* Linux's pvpanic-mmio driver: a panic writes 1 to it, so the VM
	 * ends with hutch's panic code as on x86. */
	node_name(name, sizeof(name), "pvpanic", ARM64_PVPANIC_BASE);
	begin(w, name);
	prop_str(w, "compatible", "qemu,pvpanic-mmio");
	prop_reg(w, pvpanic, 2);
	end(w);

	for (unsigned i = 0; i < c->ndevices; i++) {
		const struct arm64_fdt_device *d = &c->devices[i];
		const uint64_t reg[] = {d->base, ARM64_VIRTIO_SIZE};
		const uint32_t irq[] = {GIC_SPI, d->spi, IRQ_TYPE_EDGE_RISING};

		node_name(name, sizeof(name), "virtio_mmio", d->base);
		begin(w, name);
		prop_str(w, "compatible", "virtio,mmio");
		prop_reg(w, reg, 2);
		prop_cells(w, "interrupts", irq, 3);
		prop(w, "dma-coherent", NULL, 0);
		end(w);
	}
}

static void chosen(struct fdt_writer *w, const struct arm64_fdt_config *c)
{
	char stdout_path[40] = "/";

	node_name(stdout_path + 1, sizeof(stdout_path) - 1, "uart",
		  ARM64_UART_BASE);
	begin(w, "chosen");
	prop_str(w, "bootargs", c->bootargs ? c->bootargs : "");
	prop_str(w, "stdout-path", stdout_path);
	if (c->initrd_size) {
		fdt64_t start = cpu_to_fdt64(c->initrd_start),
			end_ = cpu_to_fdt64(c->initrd_start + c->initrd_size);

		prop(w, "linux,initrd-start", &start, sizeof(start));
		prop(w, "linux,initrd-end", &end_, sizeof(end_));
	}
	end(w);
}

int arm64_fdt_build(const struct arm64_fdt_config *c, void *buf, size_t size,
		    const char **why)
{
	struct fdt_writer w = {.fdt = buf};
	const uint64_t mem[] = {ARM64_RAM_BASE, c->mem_size};
	char name[32];

	*why = check(c);
	if (*why)
		return -EINVAL;
	if (size > (size_t)INT32_MAX) {
		*why = "device tree budget over 2 GiB";
		return -EINVAL;
	}
	w.err = fdt_create(buf, (int)size);
	if (!w.err)
		w.err = fdt_finish_reservemap(buf);
	begin(&w, "");
	prop_u32(&w, "#address-cells", 2);
	prop_u32(&w, "#size-cells", 2);
	prop_str(&w, "compatible", "linux,dummy-virt");
	prop_str(&w, "model", "hutch");
	prop_u32(&w, "interrupt-parent", GIC_PHANDLE);
	chosen(&w, c);
	node_name(name, sizeof(name), "memory", ARM64_RAM_BASE);
	begin(&w, name);
	prop_str(&w, "device_type", "memory");
	prop_reg(&w, mem, 2);
	end(&w);
	cpus(&w, c);
	gic_and_timer(&w, c->ncpus);
	devices(&w, c);
	end(&w);
	if (!w.err)
		w.err = fdt_finish(buf);
	if (w.err == -FDT_ERR_NOSPACE) {
		*why = "the device tree does not fit its size budget";
		return -ENOSPC;
	}
	if (w.err) {
		*why = fdt_strerror(w.err);
		return -EINVAL;
	}
	return 0;
}
