// SPDX-License-Identifier: MIT
/*
 * arm64 snapshots (issue 15), behind arch.h's snapshot hooks.
 *
 * A vCPU is every register KVM lists for it (KVM_GET_REG_LIST, each read
 * through KVM_GET_ONE_REG: core and FP/SIMD registers, the system
 * registers, the timer's, the firmware's PSCI/SMCCC settings) and its
 * power state (KVM_GET_MP_STATE: a secondary the guest has not started is
 * STOPPED).  A restore sets every register this KVM lists, and refuses a
 * snapshot that lacks one or names one it does not know.
 *
 * The VM is the GICv3 (Documentation/virt/kvm/devices/arm-vgic-v3.rst):
 * the distributor's registers for the SPIs, each redistributor's for its
 * SGIs and PPIs, each CPU interface's ICC_* registers, and the SPIs'
 * input levels, in one fixed list (gic_regs) that saving reads and
 * restoring writes in order; and the wall-clock time of the save, so
 * that a restore moves the guest's virtual counter on by the time that
 * passed, as x86 moves kvmclock on.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "vmm/arch.h"
#include "vmm/arm64/arch_arm64.h"
#include "vmm/arm64/layout.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"
#include "vmm/vm.h"

/* Bounds for what a snapshot may claim: KVM lists a few hundred
 * registers, the largest 256 bytes (KVM_REG_SIZE_U2048, SVE's). */
#define MAX_REGS      4096u
#define MAX_REG_BYTES 256u

struct arm64_vcpu_state {
	uint32_t mp_state;
	uint32_t nregs;
	uint64_t *ids;
	uint8_t *vals; /* each register's bytes, in ids' order */
};

static size_t reg_bytes(uint64_t id)
{
	return (size_t)1 << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

/* This vCPU's register list, as KVM gives it (first asked for its
 * length: E2BIG). */
static int reg_list(int fd, struct kvm_reg_list **out)
{
	struct kvm_reg_list probe = {.n = 0};
	struct kvm_reg_list *l;

	if (ioctl(fd, KVM_GET_REG_LIST, &probe) == 0)
		return -EINVAL; /* no registers at all */
	if (errno != E2BIG)
		return -errno;
	if (probe.n == 0 || probe.n > MAX_REGS)
		return -E2BIG;
	l = malloc(sizeof(*l) + probe.n * sizeof(l->reg[0]));
	if (!l)
		return -ENOMEM;
	l->n = probe.n;
	if (ioctl(fd, KVM_GET_REG_LIST, l) < 0) {
		int ret = -errno;

		free(l);
		return ret;
	}
	*out = l;
	return 0;
}

void arch_vcpu_free(struct vcpu *vcpu)
{
	struct arm64_vcpu_state *s = vcpu->arch_state;

	if (s) {
		free(s->ids);
		free(s->vals);
		free(s);
	}
	vcpu->arch_state = NULL;
}

int arch_vcpu_capture(struct vcpu *vcpu)
{
	struct arm64_vcpu_state *s = NULL;
	struct kvm_reg_list *l = NULL;
	struct kvm_mp_state mp;
	size_t len = 0, off = 0;
	int ret;

	ret = reg_list(vcpu->fd, &l);
	if (ret) {
		log_err(ret, "vCPU %u: KVM_GET_REG_LIST", vcpu->id);
		return ret;
	}
	for (uint32_t i = 0; i < l->n; i++) {
		if (reg_bytes(l->reg[i]) > MAX_REG_BYTES) {
			log_errx("vCPU %u: register %#llx has %zu bytes",
				 vcpu->id, (unsigned long long)l->reg[i],
				 reg_bytes(l->reg[i]));
			ret = -EINVAL;
			goto out;
		}
		len += reg_bytes(l->reg[i]);
	}
	s = calloc(1, sizeof(*s));
	if (s) {
		s->ids = malloc(l->n * sizeof(*s->ids));
		s->vals = malloc(len);
	}
	if (!s || !s->ids || !s->vals) {
		ret = -ENOMEM;
		goto out;
	}
	s->nregs = l->n;
	for (uint32_t i = 0; i < l->n; i++) {
		struct kvm_one_reg r = {
		    .id = l->reg[i],
		    .addr = (uint64_t)(uintptr_t)(s->vals + off)};

		if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &r) < 0) {
			ret = -errno;
			log_err(ret, "vCPU %u: register %#llx", vcpu->id,
				(unsigned long long)l->reg[i]);
			goto out;
		}
		s->ids[i] = l->reg[i];
		off += reg_bytes(l->reg[i]);
	}
	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0) {
		ret = -errno;
		log_err(ret, "vCPU %u: KVM_GET_MP_STATE", vcpu->id);
		goto out;
	}
	s->mp_state = mp.mp_state;
	arch_vcpu_free(vcpu);
	vcpu->arch_state = s;
	s = NULL;
out:
	if (s) {
		free(s->ids);
		free(s->vals);
		free(s);
	}
	free(l);
	return ret;
}

void arch_vcpu_save(const struct vcpu *vcpu, struct snap_writer *w)
{
	const struct arm64_vcpu_state *s = vcpu->arch_state;
	size_t off = 0;

	if (!s) {
		w->oom = true;
		return;
	}
	snap_put_u32(w, s->mp_state);
	snap_put_u32(w, s->nregs);
	for (uint32_t i = 0; i < s->nregs; i++) {
		snap_put_u64(w, s->ids[i]);
		snap_put_bytes(w, s->vals + off, reg_bytes(s->ids[i]));
		off += reg_bytes(s->ids[i]);
	}
}

static long find_reg(const struct kvm_reg_list *l, uint64_t id)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->reg[i] == id)
			return (long)i;
	return -1;
}

int arch_vcpu_restore(struct vcpu *vcpu, struct snap_reader *r)
{
	const struct arm64_vm *a = vcpu->vm->arch;
	struct kvm_reg_list *l = NULL;
	struct kvm_mp_state mp;
	uint8_t val[MAX_REG_BYTES];
	bool *seen = NULL;
	uint32_t n;
	int ret;

	mp.mp_state = snap_get_u32(r);
	n = snap_get_u32(r);
	if (r->bad || n == 0 || n > MAX_REGS) {
		log_errx("snapshot: vCPU %u: a bad register count", vcpu->id);
		return -EINVAL;
	}
	ret = reg_list(vcpu->fd, &l);
	if (ret) {
		log_err(ret, "vCPU %u: KVM_GET_REG_LIST", vcpu->id);
		return ret;
	}
	seen = calloc(l->n, sizeof(*seen));
	if (!seen) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = snap_get_u64(r);
		struct kvm_one_reg one = {.id = id,
					  .addr = (uint64_t)(uintptr_t)val};
		long k = r->bad ? -1 : find_reg(l, id);

		if (r->bad)
			break;
		if (k < 0 || seen[k]) {
			log_errx("snapshot: vCPU %u: register %#llx is %s",
				 vcpu->id, (unsigned long long)id,
				 k < 0 ? "not one this KVM has"
				       : "there twice");
			ret = -EINVAL;
			goto out;
		}
		seen[k] = true;
		/* In this KVM's list, so its size is one KVM gave. */
		snap_get_bytes(r, val, reg_bytes(id));
		if (r->bad)
			break;
		if (id == KVM_REG_ARM_TIMER_CNT) {
			uint64_t cnt;

			memcpy(&cnt, val, sizeof(cnt));
			cnt += a->cnt_advance;
			memcpy(val, &cnt, sizeof(cnt));
		}
		if (ioctl(vcpu->fd, KVM_SET_ONE_REG, &one) < 0) {
			ret = -errno;
			log_err(ret,
				"snapshot: vCPU %u: KVM refused register "
				"%#llx",
				vcpu->id, (unsigned long long)id);
			goto out;
		}
	}
	if (snap_reader_done(r)) {
		log_errx("snapshot: vCPU %u: its section is cut short or "
			 "too long",
			 vcpu->id);
		ret = -EINVAL;
		goto out;
	}
	for (uint32_t k = 0; k < l->n; k++) {
		if (!seen[k]) {
			log_errx("snapshot: vCPU %u: register %#llx is missing "
				 "(a snapshot from another kernel?)",
				 vcpu->id, (unsigned long long)l->reg[k]);
			ret = -EINVAL;
			goto out;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0) {
		ret = -errno;
		log_err(ret, "snapshot: vCPU %u: power state %u", vcpu->id,
			mp.mp_state);
	}
out:
	free(seen);
	free(l);
	return ret;
}

/* The GIC's state, one attribute at a time. */
#define GICD_CTLR	0x0000
#define GICD_IIDR	0x0008
#define GICD_IGROUPR	0x0080
#define GICD_ISENABLER	0x0100
#define GICD_ISPENDR	0x0200
#define GICD_ISACTIVER	0x0300
#define GICD_IPRIORITYR 0x0400
#define GICD_ICFGR	0x0c00
#define GICD_IROUTER	0x6000
#define GICR_CTLR	0x0000
#define GICR_SGI_BASE	0x10000 /* the second 64 KiB frame */

/* ICC_* registers' encodings (op0, op1, CRn, CRm, op2) as
 * KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS takes them. */
#define ICC(op0, op1, crn, crm, op2)                                           \
	(((op0) << 14) | ((op1) << 11) | ((crn) << 7) | ((crm) << 3) | (op2))

struct gic_reg {
	uint32_t group;
	uint64_t attr;
	bool wide;     /* a 64-bit value (the CPU interface's) */
	bool optional; /* absent on some GICs: saved as absent */
};

#define NR_IRQS (32u + ARM64_MAX_SPI)
#define MAX_GIC_REGS                                                           \
	(2u + ARM64_MAX_CPUS * 30u + (NR_IRQS / 32u) * 8u + NR_IRQS * 3u)

/*
 * Every GIC register hutch saves, in the order a restore writes them:
 * GICD_IIDR first (the kernel's document asks for it), the
 * distributor's control, each redistributor, the SPIs' configuration,
 * priority and routing before their line levels and pending, active and
 * enabled bits, then each CPU interface (ICC_SRE and ICC_CTLR first:
 * the others' meaning depends on them).
 */
static unsigned gic_regs(unsigned ncpus, struct gic_reg *out)
{
	const uint32_t dist = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
	const uint32_t rd = KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;
	const uint32_t cpu = KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
	unsigned n = 0;

#define REG(g, a, w, o)                                                        \
	(out[n++] = (struct gic_reg){                                          \
	     .group = (g), .attr = (a), .wide = (w), .optional = (o)})
	REG(dist, GICD_IIDR, false, false);
	REG(dist, GICD_CTLR, false, false);
	for (unsigned c = 0; c < ncpus; c++) {
		uint64_t m = (uint64_t)arm64_vcpu_mpidr(c) << 32;
		const uint64_t sgi = m | GICR_SGI_BASE;

		REG(rd, m | GICR_CTLR, false, false);
		REG(rd, sgi | GICD_IGROUPR, false, false);
		REG(rd, sgi | GICD_ICFGR, false, false);
		REG(rd, sgi | (GICD_ICFGR + 4), false, false);
		for (unsigned i = 0; i < 32; i += 4)
			REG(rd, sgi | (GICD_IPRIORITYR + i), false, false);
		REG(rd, sgi | GICD_ISPENDR, false, false);
		REG(rd, sgi | GICD_ISACTIVER, false, false);
		REG(rd, sgi | GICD_ISENABLER, false, false);
	}
	for (unsigned irq = 32; irq < NR_IRQS; irq += 32) {
		REG(dist, GICD_IGROUPR + irq / 8, false, false);
		REG(dist, GICD_ICFGR + irq / 4, false, false);
		REG(dist, GICD_ICFGR + irq / 4 + 4, false, false);
		for (unsigned i = irq; i < irq + 32; i += 4)
			REG(dist, GICD_IPRIORITYR + i, false, false);
		for (unsigned i = irq; i < irq + 32; i++) {
			REG(dist, GICD_IROUTER + 8 * i, false, false);
			REG(dist, GICD_IROUTER + 8 * i + 4, false, false);
		}
		/* SPIs' levels: the same whichever vCPU's mpidr (0) names. */
		REG(KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
		    ((uint64_t)VGIC_LEVEL_INFO_LINE_LEVEL
		     << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT) |
			irq,
		    false, false);
		REG(dist, GICD_ISPENDR + irq / 8, false, false);
		REG(dist, GICD_ISACTIVER + irq / 8, false, false);
		REG(dist, GICD_ISENABLER + irq / 8, false, false);
	}
	for (unsigned c = 0; c < ncpus; c++) {
		uint64_t m = (uint64_t)arm64_vcpu_mpidr(c) << 32;

		REG(cpu, m | ICC(3, 0, 12, 12, 5), true, false); /* SRE */
		REG(cpu, m | ICC(3, 0, 12, 12, 4), true, false); /* CTLR */
		REG(cpu, m | ICC(3, 0, 12, 12, 6), true, false); /* IGRPEN0 */
		REG(cpu, m | ICC(3, 0, 12, 12, 7), true, false); /* IGRPEN1 */
		REG(cpu, m | ICC(3, 0, 4, 6, 0), true, false);	 /* PMR */
		REG(cpu, m | ICC(3, 0, 12, 8, 3), true, false);	 /* BPR0 */
		REG(cpu, m | ICC(3, 0, 12, 12, 3), true, false); /* BPR1 */
		/* The active-priority registers: as many as the priority
		 * bits need (1, 2 or 4 of each). */
		for (unsigned i = 0; i < 4; i++)
			REG(cpu, m | ICC(3, 0, 12, 8, 4 + i), true, i > 0);
		for (unsigned i = 0; i < 4; i++)
			REG(cpu, m | ICC(3, 0, 12, 9, i), true, i > 0);
	}
#undef REG
	return n;
}

static int gic_access(int fd, bool set, const struct gic_reg *g, uint64_t *val)
{
	uint32_t v32 = (uint32_t)*val;
	struct kvm_device_attr a = {
	    .group = g->group,
	    .attr = g->attr,
	    .addr = (uint64_t)(uintptr_t)(g->wide ? (void *)val : &v32)};

	if (ioctl(fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a) < 0)
		return -errno;
	if (!set && !g->wide)
		*val = v32;
	return 0;
}

/* The architected counter's frequency (what the guest reads too). */
static uint64_t counter_hz(void)
{
	uint64_t hz;

	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
	return hz;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int arch_vm_save(struct vm *vm, struct snap_writer *w)
{
	const struct arm64_vm *a = vm->arch;
	struct gic_reg *regs = malloc(MAX_GIC_REGS * sizeof(*regs));
	unsigned n;
	int ret = 0;

	if (!regs)
		return -ENOMEM;
	n = gic_regs(vm->ncpus, regs);
	snap_put_u64(w, realtime_ns());
	snap_put_u32(w, NR_IRQS);
	snap_put_u32(w, n);
	for (unsigned i = 0; i < n; i++) {
		uint64_t v = 0;

		ret = gic_access(a->gic_fd, false, &regs[i], &v);
		if (ret && regs[i].optional) {
			snap_put_u8(w, 0);
			snap_put_u64(w, 0);
			ret = 0;
			continue;
		}
		if (ret) {
			log_err(ret, "snapshot: GIC register (group %u, %#llx)",
				regs[i].group,
				(unsigned long long)regs[i].attr);
			break;
		}
		snap_put_u8(w, 1);
		snap_put_u64(w, v);
	}
	free(regs);
	return ret;
}

int arch_vm_restore(struct vm *vm, struct snap_reader *r)
{
	struct arm64_vm *a = vm->arch;
	struct gic_reg *regs = malloc(MAX_GIC_REGS * sizeof(*regs));
	uint64_t saved_ns, now, hz;
	uint32_t nr_irqs, count;
	unsigned n;
	int ret = 0;

	if (!regs)
		return -ENOMEM;
	n = gic_regs(vm->ncpus, regs);
	saved_ns = snap_get_u64(r);
	nr_irqs = snap_get_u32(r);
	count = snap_get_u32(r);
	if (r->bad || nr_irqs != NR_IRQS || count != n) {
		log_errx("snapshot: its GIC (%u interrupts, %u registers) is "
			 "not this VM's (%u, %u)",
			 nr_irqs, count, NR_IRQS, n);
		ret = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t present = snap_get_u8(r);
		uint64_t v = snap_get_u64(r);

		if (r->bad || present > 1 || (!present && !regs[i].optional)) {
			log_errx("snapshot: bad GIC state (register %u)", i);
			ret = -EINVAL;
			goto out;
		}
		if (!present)
			continue;
		ret = gic_access(a->gic_fd, true, &regs[i], &v);
		if (ret) {
			log_err(ret,
				"snapshot: KVM refused GIC register (group "
				"%u, %#llx)",
				regs[i].group,
				(unsigned long long)regs[i].attr);
			goto out;
		}
	}
	if (snap_reader_done(r)) {
		log_errx("snapshot: the GIC's section is too long");
		ret = -EINVAL;
		goto out;
	}
	/* The guest's counter resumes where it was, moved on by the
	 * wall-clock time since the save (none if the clock went back). */
	now = realtime_ns();
	hz = counter_hz();
	if (now > saved_ns) {
		uint64_t ns = now - saved_ns;

		a->cnt_advance =
		    ns / 1000000000u * hz + ns % 1000000000u * hz / 1000000000u;
	}
out:
	free(regs);
	return ret;
}

/* x86 announces a new VM generation through ACPI; the arm64 guest has
 * no ACPI (and Linux 6.1 reads no vmgenid from a device tree), so its
 * RNG is not told: clones share its state until it reseeds itself. */
int arch_vm_restore_done(struct vm *vm)
{
	(void)vm;
	return 0;
}
