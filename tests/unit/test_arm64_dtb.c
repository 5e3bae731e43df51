// SPDX-License-Identifier: MIT
/* The arm64 guest's device tree: built, then parsed back with libfdt and
 * every node checked against the configuration; bad configurations. */
#include <criterion/criterion.h>
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include "vmm/arm64/dtb.h"

static uint8_t blob[64 * 1024];

static struct arm64_fdt_config sample(void)
{
	struct arm64_fdt_config c = {
	    .ncpus = 4,
	    .mem_size = 512ull << 20,
	    .bootargs = "console=ttyS0 quiet",
	    .initrd_start = ARM64_RAM_BASE + (256ull << 20),
	    .initrd_size = 5 << 20,
	    .ndevices = 3,
	};

	for (unsigned i = 0; i < c.ndevices; i++)
		c.devices[i] = (struct arm64_fdt_device){
		    .base = ARM64_VIRTIO_BASE + i * ARM64_VIRTIO_SIZE,
		    .spi = ARM64_VIRTIO_SPI + i};
	return c;
}

static int node(const char *path)
{
	int off = fdt_path_offset(blob, path);

	cr_assert_geq(off, 0, "no node %s: %s", path, fdt_strerror(off));
	return off;
}

static const void *prop(const char *path, const char *name, int *len)
{
	const void *p = fdt_getprop(blob, node(path), name, len);

	cr_assert_not_null(p, "%s has no %s", path, name);
	return p;
}

static void expect_str(const char *path, const char *name, const char *want)
{
	int len;
	const char *s = prop(path, name, &len);

	cr_expect(len > 0 && s[len - 1] == 0, "%s %s: not a string", path,
		  name);
	cr_expect_str_eq(s, want, "%s %s", path, name);
}

static uint32_t cell(const void *p, unsigned i)
{
	return fdt32_to_cpu(((const fdt32_t *)p)[i]);
}

static uint64_t cell64(const void *p, unsigned i)
{
	return ((uint64_t)cell(p, 2 * i) << 32) | cell(p, 2 * i + 1);
}

static void expect_u32(const char *path, const char *name, uint32_t want)
{
	int len;
	const void *p = prop(path, name, &len);

	cr_expect_eq(len, 4, "%s %s: %d bytes", path, name, len);
	cr_expect_eq(cell(p, 0), want, "%s %s", path, name);
}

static void build(const struct arm64_fdt_config *c)
{
	const char *why = NULL;
	int ret = arm64_fdt_build(c, blob, sizeof(blob), &why);

	cr_assert_eq(ret, 0, "%s", why ? why : "?");
	cr_assert_eq(fdt_check_header(blob), 0);
	cr_assert_leq(fdt_totalsize(blob), sizeof(blob));
}

Test(arm64_dtb, every_node_matches_the_configuration)
{
	struct arm64_fdt_config c = sample();
	uint32_t gic;
	int len, off, n;
	const void *p;

	build(&c);
	/* The root: two address and size cells, the GIC as parent. */
	expect_u32("/", "#address-cells", 2);
	expect_u32("/", "#size-cells", 2);
	expect_str("/", "compatible", "linux,dummy-virt");
	gic = fdt_get_phandle(blob, node("/intc@8000000"));
	cr_assert_neq(gic, 0);
	expect_u32("/", "interrupt-parent", gic);

	/* /chosen: the command line, the initrd, the console. */
	expect_str("/chosen", "bootargs", "console=ttyS0 quiet");
	expect_str("/chosen", "stdout-path", "/uart@9000000");
	p = prop("/chosen", "linux,initrd-start", &len);
	cr_expect_eq(len, 8);
	cr_expect_eq(cell64(p, 0), c.initrd_start);
	p = prop("/chosen", "linux,initrd-end", &len);
	cr_expect_eq(cell64(p, 0), c.initrd_start + c.initrd_size);

	/* Memory from 1 GiB. */
	expect_str("/memory@40000000", "device_type", "memory");
	p = prop("/memory@40000000", "reg", &len);
	cr_expect_eq(len, 16);
	cr_expect_eq(cell64(p, 0), ARM64_RAM_BASE);
	cr_expect_eq(cell64(p, 1), c.mem_size);

	/* One cpu node per vCPU, PSCI, reg = KVM's MPIDR. */
	expect_u32("/cpus", "#address-cells", 1);
	expect_u32("/cpus", "#size-cells", 0);
	n = 0;
	fdt_for_each_subnode(off, blob, node("/cpus"))
	{
		char path[64];

		snprintf(path, sizeof(path), "/cpus/cpu@%x", n);
		cr_expect_str_eq(fdt_get_name(blob, off, NULL), path + 6);
		expect_str(path, "device_type", "cpu");
		expect_str(path, "enable-method", "psci");
		expect_u32(path, "reg", (uint32_t)n);
		n++;
	}
	cr_expect_eq(n, 4);
	expect_str("/psci", "method", "hvc");
	p = prop("/psci", "compatible", &len);
	cr_expect_eq(len, (int)sizeof("arm,psci-1.0\0arm,psci-0.2"));
	cr_expect_eq(
	    fdt_node_check_compatible(blob, node("/psci"), "arm,psci-0.2"), 0);

	/* GICv3: distributor, and a redistributor frame pair per vCPU. */
	expect_str("/intc@8000000", "compatible", "arm,gic-v3");
	expect_u32("/intc@8000000", "#interrupt-cells", 3);
	prop("/intc@8000000", "interrupt-controller", &len);
	cr_expect_eq(len, 0);
	p = prop("/intc@8000000", "reg", &len);
	cr_expect_eq(len, 32);
	cr_expect_eq(cell64(p, 0), ARM64_GICD_BASE);
	cr_expect_eq(cell64(p, 1), ARM64_GICD_SIZE);
	cr_expect_eq(cell64(p, 2), ARM64_GICR_BASE);
	cr_expect_eq(cell64(p, 3), 4 * ARM64_GICR_SIZE_PER_CPU);

	/* The timer's four PPIs: secure, non-secure, virtual, hypervisor. */
	expect_str("/timer", "compatible", "arm,armv8-timer");
	p = prop("/timer", "interrupts", &len);
	cr_assert_eq(len, 48);
	for (unsigned i = 0; i < 4; i++) {
		static const uint32_t ppi[] = {13, 14, 11, 10};

		cr_expect_eq(cell(p, 3 * i), 1, "PPI type");
		cr_expect_eq(cell(p, 3 * i + 1), ppi[i]);
	}

	/* The UART, and each virtio device at its address and SPI. */
	expect_str("/uart@9000000", "compatible", "ns16550a");
	p = prop("/uart@9000000", "interrupts", &len);
	cr_expect_eq(cell(p, 0), 0);
	cr_expect_eq(cell(p, 1), ARM64_UART_SPI);
	/* The pvpanic device Linux's pvpanic-mmio driver binds to. */
	expect_str("/pvpanic@9010000", "compatible", "qemu,pvpanic-mmio");
	p = prop("/pvpanic@9010000", "reg", &len);
	cr_assert_eq(len, 16);
	cr_expect_eq(cell64(p, 0), ARM64_PVPANIC_BASE);
	cr_expect_eq(cell64(p, 1), ARM64_PVPANIC_SIZE);
	for (unsigned i = 0; i < c.ndevices; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/virtio_mmio@%llx",
			 (unsigned long long)c.devices[i].base);
		expect_str(path, "compatible", "virtio,mmio");
		p = prop(path, "reg", &len);
		cr_expect_eq(cell64(p, 0), c.devices[i].base);
		cr_expect_eq(cell64(p, 1), ARM64_VIRTIO_SIZE);
		p = prop(path, "interrupts", &len);
		cr_expect_eq(len, 12);
		cr_expect_eq(cell(p, 0), 0, "SPI");
		cr_expect_eq(cell(p, 1), c.devices[i].spi);
		cr_expect_eq(cell(p, 2), 1, "edge rising");
	}
}

Test(arm64_dtb, many_cpus_take_the_second_affinity_level)
{
	struct arm64_fdt_config c = sample();

	c.ncpus = ARM64_MAX_CPUS;
	c.initrd_size = 0;
	build(&c);
	/* vCPU 17: cluster 1, core 1. */
	expect_u32("/cpus/cpu@101", "reg", 0x101);
	expect_u32("/cpus/cpu@70a", "reg", 0x70a); /* vCPU 122 */
	cr_expect_lt(fdt_path_offset(blob, "/cpus/cpu@70b"), 0);
	/* No initrd: no initrd properties. */
	cr_expect_null(
	    fdt_getprop(blob, node("/chosen"), "linux,initrd-start", NULL));
}

static void expect_refused(const struct arm64_fdt_config *c, int err,
			   const char *why_has, const char *what)
{
	const char *why = NULL;
	int ret = arm64_fdt_build(c, blob, sizeof(blob), &why);

	cr_expect_eq(ret, err, "%s: %d", what, ret);
	cr_expect(why && strstr(why, why_has), "%s: %s", what,
		  why ? why : "(no reason)");
}

Test(arm64_dtb, bad_configurations_are_refused_with_the_reason)
{
	struct arm64_fdt_config c;
	const char *why = NULL;
	char cmdline[2100];

	c = sample();
	c.ncpus = 0;
	expect_refused(&c, -EINVAL, "vCPUs", "no CPUs");
	c.ncpus = ARM64_MAX_CPUS + 1;
	expect_refused(&c, -EINVAL, "vCPUs", "too many CPUs");
	c = sample();
	c.mem_size = (1ull << 40);
	expect_refused(&c, -EINVAL, "40-bit", "RAM past the IPA limit");
	c.mem_size = 0;
	expect_refused(&c, -EINVAL, "RAM", "no RAM");
	c.mem_size = (64ull << 20) + 1;
	expect_refused(&c, -EINVAL, "4 KiB", "RAM not in pages");
	c = sample();
	c.initrd_start = ARM64_RAM_BASE + c.mem_size - 4096;
	expect_refused(&c, -EINVAL, "initrd", "initrd past RAM's end");
	c.initrd_start = 0x1000;
	expect_refused(&c, -EINVAL, "initrd", "initrd below RAM");
	c = sample();
	c.devices[1].base = c.devices[0].base;
	expect_refused(&c, -EINVAL, "one address", "two devices, one address");
	c = sample();
	c.devices[2].spi = c.devices[0].spi;
	expect_refused(&c, -EINVAL, "one interrupt", "shared SPI");
	c.devices[2].spi = ARM64_UART_SPI;
	expect_refused(&c, -EINVAL, "UART", "the UART's SPI");
	c.devices[2].spi = ARM64_MAX_SPI;
	expect_refused(&c, -EINVAL, "out of range", "SPI out of range");
	c = sample();
	c.devices[0].base = ARM64_GICD_BASE;
	expect_refused(&c, -EINVAL, "window", "a device on the GIC");
	c.devices[0].base = ARM64_VIRTIO_BASE + 0x100;
	expect_refused(&c, -EINVAL, "misaligned", "a misaligned device");
	c = sample();
	c.ndevices = ARM64_MAX_VIRTIO + 1;
	expect_refused(&c, -EINVAL, "too many", "too many devices");
	c = sample();
	memset(cmdline, 'x', sizeof(cmdline) - 1);
	cmdline[sizeof(cmdline) - 1] = 0;
	c.bootargs = cmdline;
	expect_refused(&c, -EINVAL, "command line", "an over-long cmdline");
	/* Over its size budget: refused, whatever the budget. */
	c = sample();
	c.ncpus = ARM64_MAX_CPUS;
	for (size_t budget = 64; budget < 4096; budget *= 2) {
		cr_expect_eq(arm64_fdt_build(&c, blob, budget, &why), -ENOSPC,
			     "budget %zu", budget);
		cr_expect(why && strstr(why, "budget"), "%s", why);
	}
	/* The largest configuration fits the booting protocol's 2 MiB
	 * many times over: the 64 KiB used here. */
	cr_expect_eq(arm64_fdt_build(&c, blob, sizeof(blob), &why), 0, "%s",
		     why);
}
