// SPDX-License-Identifier: MIT
/*
 * x86 snapshot state from KVM and back (the structs of snap_x86.h).  The
 * ordering rules come from KVM's behaviour (Documentation/virt/kvm/
 * api.rst and arch/x86/kvm/x86.c); each is stated where it matters.
 */
#include "vmm/x86/snap_x86.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/base/log.h"

/* KVM_GET_MSRS and KVM_SET_MSRS refuse 256 entries or more at once
 * (E2BIG), so longer lists go in pieces. */
#define MSR_IO_CHUNK 128
/* KVM lists a few hundred saveable MSRs; far more is a broken answer. */
#define MSR_LIST_MAX 4096

/*
 * KVM_GET_MSRS (out != NULL: values land there) or KVM_SET_MSRS over
 * in[0..n).  Both stop at the first MSR KVM refuses and return how many
 * they did; so does this, across chunks.  Or -errno.
 */
static int msr_io(int fd, unsigned long req, const struct kvm_msr_entry *in,
		  struct kvm_msr_entry *out, uint32_t n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[MSR_IO_CHUNK];
	} buf;
	uint32_t done = 0;

	while (done < n) {
		uint32_t k = n - done < MSR_IO_CHUNK ? n - done : MSR_IO_CHUNK;
		int ret;

		memset(&buf.hdr, 0, sizeof(buf.hdr));
		buf.hdr.nmsrs = k;
		memcpy(buf.e, in + done, k * sizeof(buf.e[0]));
		ret = ioctl(fd, req, &buf);
		if (ret < 0)
			return -errno;
		if ((uint32_t)ret > k)
			ret = (int)k;
		if (out)
			memcpy(out + done, buf.e,
			       (size_t)ret * sizeof(buf.e[0]));
		done += (uint32_t)ret;
		if ((uint32_t)ret < k)
			break;
	}
	return (int)done;
}

/* KVM's saveable MSRs: asked once for the count (E2BIG), then for the
 * list.  *out is malloc'd. */
static int msr_index_list(int kvm_fd, struct kvm_msr_list **out)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *list;
	uint32_t n;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 &&
	    errno != E2BIG) {
		log_err(-errno, "KVM_GET_MSR_INDEX_LIST");
		return -errno;
	}
	n = probe.nmsrs;
	if (n > MSR_LIST_MAX) {
		log_errx("KVM_GET_MSR_INDEX_LIST: %u MSRs, more than %u", n,
			 MSR_LIST_MAX);
		return -E2BIG;
	}
	list = calloc(1, sizeof(*list) + (size_t)n * sizeof(list->indices[0]));
	if (!list) {
		log_err(-ENOMEM, "saveable MSR list");
		return -ENOMEM;
	}
	list->nmsrs = n;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		log_err(-errno, "KVM_GET_MSR_INDEX_LIST");
		free(list);
		return -errno;
	}
	*out = list;
	return 0;
}

int x86_snap_host_init(struct x86_snap_host *h, int kvm_fd, int vm_fd,
		       int vcpu_fd)
{
	struct kvm_msr_list *list = NULL;
	struct kvm_msr_entry *e = NULL;
	uint32_t n, i = 0;
	int ret;

	memset(h, 0, sizeof(*h));
	/* The size KVM_GET_XSAVE2 writes and KVM_SET_XSAVE reads; 0 from a
	 * KVM without the capability, whose area is the fixed 4 KiB. */
	ret = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	h->xsave_len = ret > (int)X86_XSAVE_LEGACY_LEN ? (uint32_t)ret
						       : X86_XSAVE_LEGACY_LEN;

	ret = msr_index_list(kvm_fd, &list);
	if (ret)
		return ret;
	n = list->nmsrs;
	e = calloc(n ? n : 1, sizeof(*e));
	if (!e) {
		ret = -ENOMEM;
		log_err(ret, "saveable MSR list");
		goto out;
	}
	for (uint32_t j = 0; j < n; j++)
		e[j].index = list->indices[j];
	/*
	 * The list says what KVM knows how to save, not what this vCPU has:
	 * an MSR whose feature its CPUID lacks cannot be read.  KVM_GET_MSRS
	 * stops at the first such MSR; drop it and go on from there.
	 */
	while (i < n) {
		ret = msr_io(vcpu_fd, KVM_GET_MSRS, e + i, e + i, n - i);
		if (ret < 0) {
			log_err(ret, "KVM_GET_MSRS (saveable MSRs)");
			goto out;
		}
		i += (uint32_t)ret;
		if (i < n) {
			log_debug("snapshot: MSR %#x cannot be read, not saved",
				  e[i].index);
			memmove(e + i, e + i + 1, (n - i - 1) * sizeof(*e));
			n--;
		}
	}
	h->msrs = calloc(n ? n : 1, sizeof(*h->msrs));
	if (!h->msrs) {
		ret = -ENOMEM;
		log_err(ret, "saveable MSR list");
		goto out;
	}
	for (uint32_t j = 0; j < n; j++)
		h->msrs[j] = e[j].index;
	h->nmsrs = n;
	ret = 0;
out:
	free(e);
	free(list);
	return ret;
}

void x86_snap_host_free(struct x86_snap_host *h)
{
	free(h->msrs);
	h->msrs = NULL;
	h->nmsrs = 0;
}

/*
 * The vCPU's state that comes in one ioctl each, in the order both
 * directions take it (see x86_vcpu_state_set for why), ending before
 * the MSRs.  -1 offset: the XSAVE area (a pointer, and KVM_GET_XSAVE2
 * where the area is larger than 4 KiB).
 */
static const struct vcpu_part {
	const char *get_name, *set_name;
	unsigned long get, set;
	ptrdiff_t off;
} vcpu_parts[] = {
#define PART(NAME, field)                                                      \
	{                                                                      \
		"KVM_GET_" #NAME, "KVM_SET_" #NAME, KVM_GET_##NAME,            \
		    KVM_SET_##NAME, offsetof(struct x86_vcpu_state, field)     \
	}
    PART(MP_STATE, mp_state),
    PART(REGS, regs),
    PART(SREGS, sregs),
    {"KVM_GET_XSAVE", "KVM_SET_XSAVE", KVM_GET_XSAVE, KVM_SET_XSAVE, -1},
    PART(XCRS, xcrs),
    PART(DEBUGREGS, debugregs),
    PART(LAPIC, lapic),
#undef PART
};

/* Every part of vcpu_parts into or out of s.  0, or -errno after
 * saying which. */
static int vcpu_parts_io(int fd, unsigned id, const struct x86_vcpu_state *s,
			 bool get, bool xsave2)
{
	for (size_t i = 0; i < sizeof(vcpu_parts) / sizeof(vcpu_parts[0]);
	     i++) {
		const struct vcpu_part *p = &vcpu_parts[i];
		unsigned long req = get ? p->get : p->set;
		const char *what = get ? p->get_name : p->set_name;
		void *arg = p->off < 0 ? (void *)s->xsave
				       : (char *)(uintptr_t)s + p->off;

		/* KVM_GET_XSAVE refuses to write more than 4 KiB; a bigger
		 * area (dynamic features) needs the XSAVE2 form.  KVM_SET_XSAVE
		 * reads as many bytes as KVM_CAP_XSAVE2 says, which is
		 * xsave_len (the decoder checked). */
		if (p->off < 0 && get && xsave2) {
			req = KVM_GET_XSAVE2;
			what = "KVM_GET_XSAVE2";
		}
		if (ioctl(fd, req, arg) < 0) {
			int ret = -errno;

			log_err(ret, "vCPU %u: %s", id, what);
			return ret;
		}
	}
	return 0;
}

int x86_vcpu_state_get(const struct x86_snap_host *h, int fd, unsigned id,
		       struct x86_vcpu_state *s)
{
	int ret;

	/* A snapshot could not hold them; only a KVM far from today's
	 * would list this many. */
	if (h->nmsrs > X86_SNAP_MAX_MSRS) {
		log_errx("vCPU %u: %u MSRs to save, more than a snapshot holds",
			 id, h->nmsrs);
		return -E2BIG;
	}
	if (s->xsave_len != h->xsave_len) {
		log_errx("vCPU %u: XSAVE buffer of %u bytes, KVM uses %u", id,
			 s->xsave_len, h->xsave_len);
		return -EINVAL;
	}
	/* The MP state comes first: reading it makes KVM act on a pending
	 * INIT or SIPI, which changes registers and the LAPIC; all read
	 * after it agrees with it. */
	ret =
	    vcpu_parts_io(fd, id, s, true, h->xsave_len > X86_XSAVE_LEGACY_LEN);
	if (ret)
		return ret;
	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &s->events) < 0) {
		ret = -errno;
		log_err(ret, "vCPU %u: KVM_GET_VCPU_EVENTS", id);
		return ret;
	}

	memset(s->msrs, 0, sizeof(s->msrs));
	for (uint32_t i = 0; i < h->nmsrs; i++)
		s->msrs[i].index = h->msrs[i];
	ret = msr_io(fd, KVM_GET_MSRS, s->msrs, s->msrs, h->nmsrs);
	if (ret < 0) {
		log_err(ret, "vCPU %u: KVM_GET_MSRS", id);
		return ret;
	}
	/* Every vCPU has the CPUID the list was probed with. */
	if ((uint32_t)ret < h->nmsrs) {
		log_errx("vCPU %u: KVM_GET_MSRS: cannot read MSR %#x", id,
			 s->msrs[ret].index);
		return -EIO;
	}
	s->nmsrs = h->nmsrs;
	return 0;
}

/*
 * The order matters (KVM's behaviour, arch/x86/kvm/x86.c):
 *  - MP state first, into a vCPU that is in neither SMM nor guest mode,
 *    so KVM takes any of the states; nothing later resets it.
 *  - Registers before events: KVM_SET_REGS drops a pending exception, and
 *    KVM_SET_SREGS queues the interrupt in its bitmap; the events say
 *    last what is pending or being injected.
 *  - Special registers before the LAPIC: they carry the APIC base (xAPIC
 *    or x2APIC mode), by which KVM_SET_LAPIC checks the APIC ID.
 *  - LAPIC before the MSRs: KVM drops a write of the TSC deadline MSR
 *    unless the LAPIC timer is in TSC-deadline mode.
 * XSAVE and XCR0 are checked against the CPUID set at vCPU creation.
 */
int x86_vcpu_state_set(int fd, unsigned id, const struct x86_vcpu_state *s)
{
	int ret = vcpu_parts_io(fd, id, s, false, false);

	if (ret)
		return ret;
	ret = msr_io(fd, KVM_SET_MSRS, s->msrs, NULL, s->nmsrs);
	if (ret < 0) {
		log_err(ret, "vCPU %u: KVM_SET_MSRS", id);
		return ret;
	}
	/* A short count names the first MSR KVM refused; the guest would
	 * otherwise run on with that MSR at its reset value. */
	if ((uint32_t)ret < s->nmsrs) {
		log_errx("vCPU %u: KVM_SET_MSRS: MSR %#x = %#llx refused", id,
			 s->msrs[ret].index,
			 (unsigned long long)s->msrs[ret].data);
		return -EINVAL;
	}
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &s->events) < 0) {
		ret = -errno;
		log_err(ret, "vCPU %u: KVM_SET_VCPU_EVENTS", id);
		return ret;
	}
	return 0;
}

int x86_vm_state_get(int vm_fd, struct x86_vm_state *s)
{
	struct kvm_irqchip chip;
	const char *what;
	int ret;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC;
	     id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		what = "KVM_GET_IRQCHIP";
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			goto fail;
		if (id == KVM_IRQCHIP_IOAPIC)
			s->ioapic = chip.chip.ioapic;
		else
			s->pic[id] = chip.chip.pic;
	}
	what = "KVM_GET_PIT2";
	if (ioctl(vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		goto fail;
	what = "KVM_GET_CLOCK";
	if (ioctl(vm_fd, KVM_GET_CLOCK, &s->clock) < 0)
		goto fail;
	return 0;
fail:
	ret = -errno;
	log_err(ret, "%s", what);
	return ret;
}

int x86_vm_state_set(int vm_fd, const struct x86_vm_state *s)
{
	struct kvm_clock_data clock = {.clock = s->clock.clock};
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	const char *what;
	int ret;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC;
	     id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC)
			chip.chip.ioapic = s->ioapic;
		else
			chip.chip.pic = s->pic[id];
		what = "KVM_SET_IRQCHIP";
		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			goto fail;
	}
	pit = s->pit;
	memset(pit.reserved, 0, sizeof(pit.reserved));
	what = "KVM_SET_PIT2";
	if (ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
		goto fail;

	/*
	 * With the host's wall-clock time at the save, KVM moves the clock
	 * on by the time that has passed since (never back), so the guest's
	 * clocks do not lag by the time it spent saved.  KVM only reports
	 * that time where the host clock is TSC based; without it the clock
	 * resumes where it stopped.
	 */
	if (s->clock.flags & KVM_CLOCK_REALTIME) {
		clock.flags = KVM_CLOCK_REALTIME;
		clock.realtime = s->clock.realtime;
	}
	what = "KVM_SET_CLOCK";
	if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0)
		goto fail;
	return 0;
fail:
	ret = -errno;
	log_err(ret, "%s", what);
	return ret;
}
