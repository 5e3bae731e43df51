// SPDX-License-Identifier: MIT
/*
 * The x86 snapshot codec: vCPU and VM state to and from section payloads.
 * No KVM here (snap_kvm_x86.c does that), so all of it runs in unit tests.
 */
#include "vmm/x86/snap_x86.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/log.h"
#include "vmm/base/snap.h"

#define NSEGMENTS 8

/* Every event flag KVM_GET_VCPU_EVENTS may report. */
#define EVENTS_KNOWN_FLAGS                                                     \
	(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |   \
	 KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |                \
	 KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)
#define CLOCK_KNOWN_FLAGS                                                      \
	(KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC)
#define PIT_KNOWN_FLAGS                                                        \
	(KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON)

struct x86_vcpu_state *x86_vcpu_state_new(uint32_t xsave_len)
{
	struct x86_vcpu_state *s;

	if (xsave_len < X86_XSAVE_LEGACY_LEN)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->xsave = calloc(1, xsave_len);
	if (!s->xsave) {
		free(s);
		return NULL;
	}
	s->xsave_len = xsave_len;
	return s;
}

void x86_vcpu_state_free(struct x86_vcpu_state *s)
{
	if (s)
		free(s->xsave);
	free(s);
}

/*
 * Decoding: the first field out of range is remembered and reported once
 * at the end.  Fields read after the payload ran out are zeros and are
 * not blamed: a short payload is reported as truncated instead.
 */
struct dec {
	struct snap_reader *r;
	const char *part, *field; /* the first bad field, or NULL */
};

static void want(struct dec *d, bool ok, const char *part, const char *field)
{
	if (!ok && !d->r->bad && !d->part) {
		d->part = part;
		d->field = field;
	}
}

static uint8_t get_bool(struct dec *d, const char *part, const char *field)
{
	uint8_t v = snap_get_u8(d->r);

	want(d, v <= 1, part, field);
	return v;
}

/* One line for whatever went wrong; what names the payload. */
static int dec_finish(struct dec *d, const char *what)
{
	if (d->part) {
		log_errx("snapshot: %s state: %s%s out of range", what, d->part,
			 d->field);
		return -EINVAL;
	}
	if (d->r->bad) {
		log_errx("snapshot: %s state truncated", what);
		return -EINVAL;
	}
	if (snap_reader_done(d->r)) {
		log_errx("snapshot: %s state: %zu bytes past its end", what,
			 d->r->len - d->r->off);
		return -EINVAL;
	}
	return 0;
}

static bool check_version(struct dec *d, uint32_t want_version)
{
	uint32_t v = snap_get_u32(d->r);

	want(d, v == want_version, "", "layout version");
	return !d->part && !d->r->bad;
}

/* --- vCPU ------------------------------------------------------------ */

static void put_regs(struct snap_writer *w, const struct kvm_regs *g)
{
	const uint64_t v[] = {
	    g->rax, g->rbx, g->rcx, g->rdx, g->rsi, g->rdi,
	    g->rsp, g->rbp, g->r8,  g->r9,  g->r10, g->r11,
	    g->r12, g->r13, g->r14, g->r15, g->rip, g->rflags,
	};

	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		snap_put_u64(w, v[i]);
}

static void get_regs(struct dec *d, struct kvm_regs *g)
{
	__u64 *v[] = {
	    &g->rax, &g->rbx, &g->rcx, &g->rdx, &g->rsi, &g->rdi,
	    &g->rsp, &g->rbp, &g->r8,  &g->r9,	&g->r10, &g->r11,
	    &g->r12, &g->r13, &g->r14, &g->r15, &g->rip, &g->rflags,
	};

	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		*v[i] = snap_get_u64(d->r);
}

static void put_segment(struct snap_writer *w, const struct kvm_segment *s)
{
	snap_put_u64(w, s->base);
	snap_put_u32(w, s->limit);
	snap_put_u16(w, s->selector);
	snap_put_u8(w, s->type);
	snap_put_u8(w, s->present);
	snap_put_u8(w, s->dpl);
	snap_put_u8(w, s->db);
	snap_put_u8(w, s->s);
	snap_put_u8(w, s->l);
	snap_put_u8(w, s->g);
	snap_put_u8(w, s->avl);
	snap_put_u8(w, s->unusable);
}

/* Type and DPL are 4- and 2-bit fields of the descriptor; the rest are
 * single bits. */
static void get_segment(struct dec *d, struct kvm_segment *s, const char *name)
{
	s->base = snap_get_u64(d->r);
	s->limit = snap_get_u32(d->r);
	s->selector = snap_get_u16(d->r);
	s->type = snap_get_u8(d->r);
	want(d, s->type <= 0xf, name, ".type");
	s->present = get_bool(d, name, ".present");
	s->dpl = snap_get_u8(d->r);
	want(d, s->dpl <= 3, name, ".dpl");
	s->db = get_bool(d, name, ".db");
	s->s = get_bool(d, name, ".s");
	s->l = get_bool(d, name, ".l");
	s->g = get_bool(d, name, ".g");
	s->avl = get_bool(d, name, ".avl");
	s->unusable = get_bool(d, name, ".unusable");
}

static void put_dtable(struct snap_writer *w, const struct kvm_dtable *t)
{
	snap_put_u64(w, t->base);
	snap_put_u16(w, t->limit);
}

static void get_dtable(struct dec *d, struct kvm_dtable *t)
{
	t->base = snap_get_u64(d->r);
	t->limit = snap_get_u16(d->r);
}

/* The segments, in the order they are written. */
static const char *const seg_names[NSEGMENTS] = {
    "sregs.cs", "sregs.ds", "sregs.es", "sregs.fs",
    "sregs.gs", "sregs.ss", "sregs.tr", "sregs.ldt",
};

static void put_sregs(struct snap_writer *w, const struct kvm_sregs *s)
{
	const struct kvm_segment *const segs[NSEGMENTS] = {
	    &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr, &s->ldt,
	};

	for (unsigned i = 0; i < NSEGMENTS; i++)
		put_segment(w, segs[i]);
	put_dtable(w, &s->gdt);
	put_dtable(w, &s->idt);
	snap_put_u64(w, s->cr0);
	snap_put_u64(w, s->cr2);
	snap_put_u64(w, s->cr3);
	snap_put_u64(w, s->cr4);
	snap_put_u64(w, s->cr8);
	snap_put_u64(w, s->efer);
	snap_put_u64(w, s->apic_base);
	for (unsigned i = 0; i < sizeof(s->interrupt_bitmap) / 8; i++)
		snap_put_u64(w, s->interrupt_bitmap[i]);
}

static void get_sregs(struct dec *d, struct kvm_sregs *s)
{
	struct kvm_segment *const segs[NSEGMENTS] = {
	    &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr, &s->ldt,
	};

	for (unsigned i = 0; i < NSEGMENTS; i++)
		get_segment(d, segs[i], seg_names[i]);
	get_dtable(d, &s->gdt);
	get_dtable(d, &s->idt);
	s->cr0 = snap_get_u64(d->r);
	s->cr2 = snap_get_u64(d->r);
	s->cr3 = snap_get_u64(d->r);
	s->cr4 = snap_get_u64(d->r);
	s->cr8 = snap_get_u64(d->r);
	s->efer = snap_get_u64(d->r);
	s->apic_base = snap_get_u64(d->r);
	for (unsigned i = 0; i < sizeof(s->interrupt_bitmap) / 8; i++)
		s->interrupt_bitmap[i] = snap_get_u64(d->r);
}

static void put_events(struct snap_writer *w, const struct kvm_vcpu_events *e)
{
	snap_put_u8(w, e->exception.injected);
	snap_put_u8(w, e->exception.nr);
	snap_put_u8(w, e->exception.has_error_code);
	snap_put_u8(w, e->exception.pending);
	snap_put_u32(w, e->exception.error_code);
	snap_put_u8(w, e->interrupt.injected);
	snap_put_u8(w, e->interrupt.nr);
	snap_put_u8(w, e->interrupt.soft);
	snap_put_u8(w, e->interrupt.shadow);
	snap_put_u8(w, e->nmi.injected);
	snap_put_u8(w, e->nmi.pending);
	snap_put_u8(w, e->nmi.masked);
	snap_put_u32(w, e->sipi_vector);
	snap_put_u32(w, e->flags);
	snap_put_u8(w, e->smi.smm);
	snap_put_u8(w, e->smi.pending);
	snap_put_u8(w, e->smi.smm_inside_nmi);
	snap_put_u8(w, e->smi.latched_init);
	snap_put_u8(w, e->triple_fault.pending);
	snap_put_u8(w, e->exception_has_payload);
	snap_put_u64(w, e->exception_payload);
}

static void get_events(struct dec *d, struct kvm_vcpu_events *e)
{
	static const char p[] = "events.";

	e->exception.injected = get_bool(d, p, "exception.injected");
	/* Only exceptions (vectors 0-31) are ever queued. */
	e->exception.nr = snap_get_u8(d->r);
	want(d, e->exception.nr < 32, p, "exception.nr");
	e->exception.has_error_code =
	    get_bool(d, p, "exception.has_error_code");
	e->exception.pending = get_bool(d, p, "exception.pending");
	e->exception.error_code = snap_get_u32(d->r);
	e->interrupt.injected = get_bool(d, p, "interrupt.injected");
	e->interrupt.nr = snap_get_u8(d->r);
	e->interrupt.soft = get_bool(d, p, "interrupt.soft");
	e->interrupt.shadow = snap_get_u8(d->r);
	want(d,
	     !(e->interrupt.shadow &
	       ~(KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI)),
	     p, "interrupt.shadow");
	e->nmi.injected = get_bool(d, p, "nmi.injected");
	/* A count since Linux 6.4 (one in service may have one more
	 * waiting behind it), a flag before. */
	e->nmi.pending = snap_get_u8(d->r);
	want(d, e->nmi.pending <= 2, p, "nmi.pending");
	e->nmi.masked = get_bool(d, p, "nmi.masked");
	e->sipi_vector = snap_get_u32(d->r);
	e->flags = snap_get_u32(d->r);
	want(d, !(e->flags & ~EVENTS_KNOWN_FLAGS), p, "flags");
	e->smi.smm = get_bool(d, p, "smi.smm");
	e->smi.pending = get_bool(d, p, "smi.pending");
	e->smi.smm_inside_nmi = get_bool(d, p, "smi.smm_inside_nmi");
	e->smi.latched_init = get_bool(d, p, "smi.latched_init");
	e->triple_fault.pending = get_bool(d, p, "triple_fault.pending");
	e->exception_has_payload = get_bool(d, p, "exception_has_payload");
	e->exception_payload = snap_get_u64(d->r);
}

static void put_debugregs(struct snap_writer *w, const struct kvm_debugregs *g)
{
	for (unsigned i = 0; i < 4; i++)
		snap_put_u64(w, g->db[i]);
	snap_put_u64(w, g->dr6);
	snap_put_u64(w, g->dr7);
	snap_put_u64(w, g->flags);
}

/* KVM refuses flags and the upper halves of DR6 and DR7 (reserved). */
static void get_debugregs(struct dec *d, struct kvm_debugregs *g)
{
	for (unsigned i = 0; i < 4; i++)
		g->db[i] = snap_get_u64(d->r);
	g->dr6 = snap_get_u64(d->r);
	want(d, !(g->dr6 >> 32), "debugregs.", "dr6");
	g->dr7 = snap_get_u64(d->r);
	want(d, !(g->dr7 >> 32), "debugregs.", "dr7");
	g->flags = snap_get_u64(d->r);
	want(d, !g->flags, "debugregs.", "flags");
}

/* The states an x86 vCPU with an in-kernel LAPIC can be in. */
static bool mp_state_known(uint32_t v)
{
	switch (v) {
	case KVM_MP_STATE_RUNNABLE:
	case KVM_MP_STATE_UNINITIALIZED:
	case KVM_MP_STATE_INIT_RECEIVED:
	case KVM_MP_STATE_HALTED:
	case KVM_MP_STATE_SIPI_RECEIVED:
		return true;
	default:
		return false;
	}
}

static void put_xcrs(struct snap_writer *w, const struct kvm_xcrs *x)
{
	snap_put_u32(w, x->nr_xcrs);
	snap_put_u32(w, x->flags);
	for (uint32_t i = 0; i < x->nr_xcrs && i < KVM_MAX_XCRS; i++) {
		snap_put_u32(w, x->xcrs[i].xcr);
		snap_put_u64(w, x->xcrs[i].value);
	}
}

static void get_xcrs(struct dec *d, struct kvm_xcrs *x)
{
	x->nr_xcrs = snap_get_u32(d->r);
	want(d, x->nr_xcrs <= KVM_MAX_XCRS, "xcrs.", "nr_xcrs");
	x->flags = snap_get_u32(d->r);
	want(d, !x->flags, "xcrs.", "flags");
	if (x->nr_xcrs > KVM_MAX_XCRS)
		return;
	for (uint32_t i = 0; i < x->nr_xcrs; i++) {
		x->xcrs[i].xcr = snap_get_u32(d->r);
		x->xcrs[i].value = snap_get_u64(d->r);
	}
}

static void put_msrs(struct snap_writer *w, const struct x86_vcpu_state *s)
{
	uint32_t n =
	    s->nmsrs < X86_SNAP_MAX_MSRS ? s->nmsrs : X86_SNAP_MAX_MSRS;

	snap_put_u32(w, n);
	for (uint32_t i = 0; i < n; i++) {
		snap_put_u32(w, s->msrs[i].index);
		snap_put_u64(w, s->msrs[i].data);
	}
}

static void get_msrs(struct dec *d, struct x86_vcpu_state *s)
{
	s->nmsrs = snap_get_u32(d->r);
	want(d, s->nmsrs <= X86_SNAP_MAX_MSRS, "msrs.", "count");
	if (s->nmsrs > X86_SNAP_MAX_MSRS) {
		s->nmsrs = 0;
		return;
	}
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		s->msrs[i].index = snap_get_u32(d->r);
		s->msrs[i].reserved = 0;
		s->msrs[i].data = snap_get_u64(d->r);
	}
}

void x86_vcpu_state_encode(const struct x86_vcpu_state *s,
			   struct snap_writer *w)
{
	snap_put_u32(w, X86_SNAP_VCPU_VERSION);
	put_regs(w, &s->regs);
	put_sregs(w, &s->sregs);
	put_events(w, &s->events);
	put_debugregs(w, &s->debugregs);
	snap_put_u32(w, s->mp_state.mp_state);
	put_xcrs(w, &s->xcrs);
	put_msrs(w, s);
	snap_put_bytes(w, s->lapic.regs, sizeof(s->lapic.regs));
	snap_put_u32(w, s->xsave_len);
	snap_put_bytes(w, s->xsave, s->xsave_len);
}

int x86_vcpu_state_decode(struct snap_reader *r, unsigned vcpu_id,
			  struct x86_vcpu_state *s)
{
	struct dec d = {.r = r};
	struct kvm_xsave *xsave = s->xsave;
	uint32_t xsave_len = s->xsave_len;
	char what[32];

	memset(s, 0, sizeof(*s));
	s->xsave = xsave;
	s->xsave_len = xsave_len;
	memset(s->xsave, 0, s->xsave_len);
	if (!check_version(&d, X86_SNAP_VCPU_VERSION))
		goto out;
	get_regs(&d, &s->regs);
	get_sregs(&d, &s->sregs);
	get_events(&d, &s->events);
	get_debugregs(&d, &s->debugregs);
	s->mp_state.mp_state = snap_get_u32(r);
	want(&d, mp_state_known(s->mp_state.mp_state), "", "mp_state");
	get_xcrs(&d, &s->xcrs);
	get_msrs(&d, s);
	snap_get_bytes(r, s->lapic.regs, sizeof(s->lapic.regs));
	/* The area's layout follows this host's CPUID leaf 0xd: a
	 * different size is a different layout. */
	xsave_len = snap_get_u32(r);
	want(&d, xsave_len == s->xsave_len, "", "xsave length");
	if (xsave_len == s->xsave_len)
		snap_get_bytes(r, s->xsave, s->xsave_len);
out:
	snprintf(what, sizeof(what), "vCPU %u", vcpu_id);
	return dec_finish(&d, what);
}

/* --- VM -------------------------------------------------------------- */

static void put_pic(struct snap_writer *w, const struct kvm_pic_state *p)
{
	const uint8_t v[] = {
	    p->last_irr,
	    p->irr,
	    p->imr,
	    p->isr,
	    p->priority_add,
	    p->irq_base,
	    p->read_reg_select,
	    p->poll,
	    p->special_mask,
	    p->init_state,
	    p->auto_eoi,
	    p->rotate_on_auto_eoi,
	    p->special_fully_nested_mode,
	    p->init4,
	    p->elcr,
	    p->elcr_mask,
	};

	for (unsigned i = 0; i < sizeof(v); i++)
		snap_put_u8(w, v[i]);
}

/* What the 8259 emulation can hold: ICW2 sets the vector base (low three
 * bits zero), the rotation priority is an IRQ number, initialisation
 * walks through states 0-3, and the mode settings are single bits. */
static void get_pic(struct dec *d, struct kvm_pic_state *p, const char *name)
{
	p->last_irr = snap_get_u8(d->r);
	p->irr = snap_get_u8(d->r);
	p->imr = snap_get_u8(d->r);
	p->isr = snap_get_u8(d->r);
	p->priority_add = snap_get_u8(d->r);
	want(d, p->priority_add <= 7, name, ".priority_add");
	p->irq_base = snap_get_u8(d->r);
	want(d, !(p->irq_base & 7), name, ".irq_base");
	p->read_reg_select = get_bool(d, name, ".read_reg_select");
	p->poll = get_bool(d, name, ".poll");
	p->special_mask = get_bool(d, name, ".special_mask");
	p->init_state = snap_get_u8(d->r);
	want(d, p->init_state <= 3, name, ".init_state");
	p->auto_eoi = get_bool(d, name, ".auto_eoi");
	p->rotate_on_auto_eoi = get_bool(d, name, ".rotate_on_auto_eoi");
	p->special_fully_nested_mode =
	    get_bool(d, name, ".special_fully_nested_mode");
	p->init4 = get_bool(d, name, ".init4");
	p->elcr = snap_get_u8(d->r);
	p->elcr_mask = snap_get_u8(d->r);
}

static void put_ioapic(struct snap_writer *w, const struct kvm_ioapic_state *a)
{
	snap_put_u64(w, a->base_address);
	snap_put_u32(w, a->ioregsel);
	snap_put_u32(w, a->id);
	snap_put_u32(w, a->irr);
	/* Each entry is the architectural 64-bit register. */
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		snap_put_u64(w, a->redirtbl[i].bits);
}

/* The register select is 8 bits, the ID 4, IRR one bit per pin. */
static void get_ioapic(struct dec *d, struct kvm_ioapic_state *a)
{
	static const char p[] = "ioapic.";

	a->base_address = snap_get_u64(d->r);
	want(d, a->base_address == X86_IOAPIC_BASE, p, "base_address");
	a->ioregsel = snap_get_u32(d->r);
	want(d, a->ioregsel <= 0xff, p, "ioregsel");
	a->id = snap_get_u32(d->r);
	want(d, a->id <= 0xf, p, "id");
	a->irr = snap_get_u32(d->r);
	want(d, !(a->irr >> KVM_IOAPIC_NUM_PINS), p, "irr");
	a->pad = 0;
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		a->redirtbl[i].bits = snap_get_u64(d->r);
}

static void put_pit(struct snap_writer *w, const struct kvm_pit_state2 *p)
{
	for (unsigned i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &p->channels[i];

		snap_put_u32(w, c->count);
		snap_put_u16(w, c->latched_count);
		snap_put_u8(w, c->count_latched);
		snap_put_u8(w, c->status_latched);
		snap_put_u8(w, c->status);
		snap_put_u8(w, c->read_state);
		snap_put_u8(w, c->write_state);
		snap_put_u8(w, c->write_latch);
		snap_put_u8(w, c->rw_mode);
		snap_put_u8(w, c->mode);
		snap_put_u8(w, c->bcd);
		snap_put_u8(w, c->gate);
		snap_put_u64(w, (uint64_t)c->count_load_time);
	}
	snap_put_u32(w, p->flags);
}

/*
 * What the 8254 emulation can hold: a count of 0 means 65536; modes 0-7
 * as the guest wrote them (6 and 7 alias 2 and 3), or 0xff for a channel
 * never programmed since reset;
 * the access mode (and a latched one) is two bits; the read and write
 * states are 0 or one of the four byte-order states; BCD and the gate
 * are single bits.
 */
static void get_pit(struct dec *d, struct kvm_pit_state2 *p)
{
	static const char *const names[3] = {
	    "pit.channels[0]", "pit.channels[1]", "pit.channels[2]"};

	for (unsigned i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *c = &p->channels[i];
		const char *n = names[i];

		c->count = snap_get_u32(d->r);
		want(d, c->count <= 0x10000, n, ".count");
		c->latched_count = snap_get_u16(d->r);
		c->count_latched = snap_get_u8(d->r);
		want(d, c->count_latched <= 3, n, ".count_latched");
		c->status_latched = get_bool(d, n, ".status_latched");
		c->status = snap_get_u8(d->r);
		c->read_state = snap_get_u8(d->r);
		want(d, c->read_state <= 4, n, ".read_state");
		c->write_state = snap_get_u8(d->r);
		want(d, c->write_state <= 4, n, ".write_state");
		c->write_latch = snap_get_u8(d->r);
		c->rw_mode = snap_get_u8(d->r);
		want(d, c->rw_mode <= 3, n, ".rw_mode");
		c->mode = snap_get_u8(d->r);
		want(d, c->mode <= 7 || c->mode == 0xff, n, ".mode");
		c->bcd = get_bool(d, n, ".bcd");
		c->gate = get_bool(d, n, ".gate");
		c->count_load_time = (int64_t)snap_get_u64(d->r);
	}
	p->flags = snap_get_u32(d->r);
	want(d, !(p->flags & ~PIT_KNOWN_FLAGS), "pit.", "flags");
}

static void put_clock(struct snap_writer *w, const struct kvm_clock_data *c)
{
	snap_put_u64(w, c->clock);
	snap_put_u32(w, c->flags);
	snap_put_u64(w, c->realtime);
	snap_put_u64(w, c->host_tsc);
}

static void get_clock(struct dec *d, struct kvm_clock_data *c)
{
	c->clock = snap_get_u64(d->r);
	c->flags = snap_get_u32(d->r);
	want(d, !(c->flags & ~CLOCK_KNOWN_FLAGS), "clock.", "flags");
	c->realtime = snap_get_u64(d->r);
	c->host_tsc = snap_get_u64(d->r);
}

void x86_vm_state_encode(const struct x86_vm_state *s, struct snap_writer *w)
{
	snap_put_u32(w, X86_SNAP_VM_VERSION);
	put_pic(w, &s->pic[0]);
	put_pic(w, &s->pic[1]);
	put_ioapic(w, &s->ioapic);
	put_pit(w, &s->pit);
	put_clock(w, &s->clock);
	snap_put_u16(w, s->pm1_enable);
	snap_put_u8(w, s->gpe_sts);
	snap_put_u8(w, s->gpe_en);
}

int x86_vm_state_decode(struct snap_reader *r, struct x86_vm_state *s)
{
	struct dec d = {.r = r};

	memset(s, 0, sizeof(*s));
	if (!check_version(&d, X86_SNAP_VM_VERSION))
		goto out;
	get_pic(&d, &s->pic[0], "pic master");
	get_pic(&d, &s->pic[1], "pic slave");
	get_ioapic(&d, &s->ioapic);
	get_pit(&d, &s->pit);
	get_clock(&d, &s->clock);
	s->pm1_enable = snap_get_u16(r);
	/* GPE 0 is the only event there is (sysctl_ports.h). */
	s->gpe_sts = snap_get_u8(r);
	want(&d, s->gpe_sts <= 1, "", "gpe_sts");
	s->gpe_en = snap_get_u8(r);
	want(&d, s->gpe_en <= 1, "", "gpe_en");
out:
	return dec_finish(&d, "x86 VM");
}
