// SPDX-License-Identifier: MIT
/*
 * The x86 snapshot codec (vmm/x86/snap_x86.c): vCPU and VM state round
 * trips with every field set, the byte layout, and hostile payloads
 * (truncated, trailing bytes, lying counts, values out of range).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/base/le.h"
#include "vmm/base/snap.h"
#include "vmm/x86/snap_x86.h"

#define NMSRS	  7
#define NXCRS	  2
#define BIG_XSAVE (X86_XSAVE_LEGACY_LEN + 2048)
/* Markers the hostile tests find the count fields by. */
#define MSR0_INDEX 0xc0de1234u
#define DR7_MARK   0x0bad0d07u

static struct snap_writer w;
static struct x86_vcpu_state *in, *out;
static uint8_t *payload; /* a copy of one section's payload */
static size_t payload_len;
static FILE *errlog;

static void teardown(void)
{
	snap_writer_free(&w);
	x86_vcpu_state_free(in);
	x86_vcpu_state_free(out);
	free(payload);
}

TestSuite(snap_x86, .fini = teardown);

/* hutch's messages go to a file the test can read back (and the
 * truncation sweeps' thousands of lines stay out of the test log). */
static void capture_stderr(void)
{
	errlog = tmpfile();
	cr_assert_not_null(errlog);
	cr_assert_geq(dup2(fileno(errlog), STDERR_FILENO), 0);
}

static const char *captured(void)
{
	static char buf[4096];
	size_t n;

	fflush(stderr);
	rewind(errlog);
	n = fread(buf, 1, sizeof(buf) - 1, errlog);
	buf[n] = '\0';
	return buf;
}

/* A different, non-zero value for each call. */
static uint64_t next(void)
{
	static uint64_t x = 0x0123456789abcdefull;

	x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x | 1;
}

static void fill_segment(struct kvm_segment *s, unsigned i)
{
	s->base = next();
	s->limit = (uint32_t)next();
	s->selector = (uint16_t)next();
	s->type = (uint8_t)(i + 3) & 0xf;
	s->present = 1;
	s->dpl = (uint8_t)(i & 3);
	s->db = i & 1;
	s->s = 1;
	s->l = !(i & 1);
	s->g = 1;
	s->avl = 1;
	s->unusable = i == 7;
}

/* Every field non-zero where its range allows. */
static struct x86_vcpu_state *sample_vcpu(uint32_t xsave_len)
{
	struct x86_vcpu_state *s = x86_vcpu_state_new(xsave_len);
	struct kvm_segment *segs[] = {
	    &s->sregs.cs, &s->sregs.ds, &s->sregs.es, &s->sregs.fs,
	    &s->sregs.gs, &s->sregs.ss, &s->sregs.tr, &s->sregs.ldt,
	};
	struct kvm_vcpu_events *e = &s->events;

	cr_assert_not_null(s);
	s->regs = (struct kvm_regs){
	    next(), next(), next(), next(), next(), next(),
	    next(), next(), next(), next(), next(), next(),
	    next(), next(), next(), next(), next(), next(),
	};
	for (unsigned i = 0; i < 8; i++)
		fill_segment(segs[i], i);
	s->sregs.gdt.base = next();
	s->sregs.gdt.limit = 0x27;
	s->sregs.idt.base = next();
	s->sregs.idt.limit = 0xfff;
	s->sregs.cr0 = next();
	s->sregs.cr2 = next();
	s->sregs.cr3 = next();
	s->sregs.cr4 = next();
	s->sregs.cr8 = next();
	s->sregs.efer = next();
	s->sregs.apic_base = next();
	for (unsigned i = 0; i < 4; i++)
		s->sregs.interrupt_bitmap[i] = next();

	e->exception.injected = 1;
	e->exception.nr = 14;
	e->exception.has_error_code = 1;
	e->exception.pending = 1;
	e->exception.error_code = 0x1234567;
	e->interrupt.injected = 1;
	e->interrupt.nr = 0xec;
	e->interrupt.soft = 1;
	e->interrupt.shadow = KVM_X86_SHADOW_INT_STI;
	e->nmi.injected = 1;
	e->nmi.pending = 2;
	e->nmi.masked = 1;
	e->sipi_vector = 0x9a;
	e->flags = KVM_VCPUEVENT_VALID_NMI_PENDING |
		   KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
	e->smi.smm = 1;
	e->smi.pending = 1;
	e->smi.smm_inside_nmi = 1;
	e->smi.latched_init = 1;
	e->triple_fault.pending = 1;
	e->exception_has_payload = 1;
	e->exception_payload = next();

	for (unsigned i = 0; i < 4; i++)
		s->debugregs.db[i] = next();
	s->debugregs.dr6 = 0xffff0ff0;
	s->debugregs.dr7 = DR7_MARK;

	s->mp_state.mp_state = KVM_MP_STATE_HALTED;
	s->xcrs.nr_xcrs = NXCRS;
	for (unsigned i = 0; i < NXCRS; i++) {
		s->xcrs.xcrs[i].xcr = i;
		s->xcrs.xcrs[i].value = next();
	}
	s->nmsrs = NMSRS;
	for (unsigned i = 0; i < NMSRS; i++) {
		s->msrs[i].index = i ? (uint32_t)next() : MSR0_INDEX;
		s->msrs[i].data = next();
	}
	for (unsigned i = 0; i < sizeof(s->lapic.regs); i++)
		s->lapic.regs[i] = (char)(i * 7 + 1);
	for (unsigned i = 0; i < xsave_len; i++)
		((uint8_t *)s->xsave)[i] = (uint8_t)(i * 13 + 5);
	return s;
}

static void sample_vm(struct x86_vm_state *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < 2; i++) {
		s->pic[i] = (struct kvm_pic_state){
		    .last_irr = 0x11 + i,
		    .irr = 0x22 + i,
		    .imr = 0x33 + i,
		    .isr = 0x44 + i,
		    .priority_add = 5 + i,
		    .irq_base = 0x20 + 8 * i,
		    .read_reg_select = 1,
		    .poll = 1,
		    .special_mask = 1,
		    .init_state = 2 + i,
		    .auto_eoi = 1,
		    .rotate_on_auto_eoi = 1,
		    .special_fully_nested_mode = 1,
		    .init4 = 1,
		    .elcr = 0x0c + i,
		    .elcr_mask = 0xf8 - 0x1a * i,
		};
	}
	s->ioapic.base_address = X86_IOAPIC_BASE;
	s->ioapic.ioregsel = 0x3f;
	s->ioapic.id = 0xe;
	s->ioapic.irr = 0x00a5a5a5;
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		s->ioapic.redirtbl[i].bits = next();
	for (unsigned i = 0; i < 3; i++) {
		s->pit.channels[i] = (struct kvm_pit_channel_state){
		    .count = 0x10000 - i,
		    .latched_count = 0xabcd + i,
		    .count_latched = 3 - i,
		    .status_latched = 1,
		    .status = 0x36 + i,
		    .read_state = 1 + i,
		    .write_state = 4 - i,
		    .write_latch = 0x9c + i,
		    .rw_mode = 3 - i,
		    .mode = 5 - i,
		    .bcd = 1,
		    .gate = 1,
		    .count_load_time = -(int64_t)(next() >> 2),
		};
	}
	s->pit.flags =
	    KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON;
	s->clock.clock = next();
	s->clock.flags =
	    KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC;
	s->clock.realtime = next();
	s->clock.host_tsc = next();
	s->pm1_enable = 0x0120;
	s->gpe_sts = 1;
	s->gpe_en = 1;
}

/* Put one section through the real file codec and keep its payload. */
static void keep_payload(void)
{
	struct snap_reader body, sec;
	uint32_t tag, inst;
	uint16_t minor;
	const char *why;

	cr_assert_eq(snap_writer_finish(&w), 0);
	cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why), 0);
	cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec), 1);
	free(payload);
	payload_len = sec.len;
	/* One spare byte for the trailing-byte test. */
	payload = calloc(1, payload_len + 1);
	cr_assert_not_null(payload);
	memcpy(payload, sec.p, sec.len);
	snap_writer_free(&w);
}

static void encode_vcpu(const struct x86_vcpu_state *s)
{
	snap_writer_init(&w);
	snap_section_begin(&w, SNAP_TAG('V', 'C', 'P', 'U'), 0);
	x86_vcpu_state_encode(s, &w);
	snap_section_end(&w);
	keep_payload();
}

static void encode_vm(const struct x86_vm_state *s)
{
	snap_writer_init(&w);
	snap_section_begin(&w, SNAP_TAG('A', 'R', 'C', 'H'), 0);
	x86_vm_state_encode(s, &w);
	snap_section_end(&w);
	keep_payload();
}

static int decode_vcpu(size_t len, uint32_t xsave_len)
{
	struct snap_reader r = {.p = payload, .len = len};

	x86_vcpu_state_free(out);
	out = x86_vcpu_state_new(xsave_len);
	cr_assert_not_null(out);
	return x86_vcpu_state_decode(&r, 3, out);
}

static int decode_vm(size_t len, struct x86_vm_state *s)
{
	struct snap_reader r = {.p = payload, .len = len};

	return x86_vm_state_decode(&r, s);
}

/* Where a marker's little-endian bytes sit in the payload. */
static size_t find_le(uint64_t v, size_t width)
{
	uint8_t b[8];
	const uint8_t *at;

	put_le64(b, v);
	at = memmem(payload, payload_len, b, width);
	cr_assert_not_null(at);
	return (size_t)(at - payload);
}

static void assert_vcpu_equal(const struct x86_vcpu_state *a,
			      const struct x86_vcpu_state *b)
{
	cr_assert_eq(memcmp(&a->regs, &b->regs, sizeof(a->regs)), 0);
	cr_assert_eq(memcmp(&a->sregs, &b->sregs, sizeof(a->sregs)), 0);
	cr_assert_eq(memcmp(&a->events, &b->events, sizeof(a->events)), 0);
	cr_assert_eq(memcmp(&a->debugregs, &b->debugregs, sizeof(a->debugregs)),
		     0);
	cr_assert_eq(a->mp_state.mp_state, b->mp_state.mp_state);
	cr_assert_eq(memcmp(&a->xcrs, &b->xcrs, sizeof(a->xcrs)), 0);
	cr_assert_eq(a->nmsrs, b->nmsrs);
	cr_assert_eq(memcmp(a->msrs, b->msrs, sizeof(a->msrs)), 0);
	cr_assert_eq(memcmp(&a->lapic, &b->lapic, sizeof(a->lapic)), 0);
	cr_assert_eq(a->xsave_len, b->xsave_len);
	cr_assert_eq(memcmp(a->xsave, b->xsave, a->xsave_len), 0);
}

Test(snap_x86, vcpu_state_round_trips)
{
	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), 0);
	assert_vcpu_equal(in, out);
}

Test(snap_x86, vcpu_state_round_trips_a_bigger_xsave_area)
{
	in = sample_vcpu(BIG_XSAVE);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len, BIG_XSAVE), 0);
	assert_vcpu_equal(in, out);
}

/* Each field on its own, little endian, no padding: the version, then
 * RAX first; and the length is the sum of the fields. */
Test(snap_x86, vcpu_layout_is_field_by_field_little_endian)
{
	const size_t seg = 8 + 4 + 2 + 9, dt = 8 + 2;
	const size_t sregs = 8 * seg + 2 * dt + 7 * 8 + 4 * 8;
	const size_t events = 8 + 4 + 3 + 4 + 4 + 4 + 1 + 1 + 8;
	size_t want;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	want = 4 + 18 * 8 + sregs + events + 7 * 8 + 4 + (8 + NXCRS * 12) +
	       (4 + NMSRS * 12) + KVM_APIC_REG_SIZE + 4 + X86_XSAVE_LEGACY_LEN;
	cr_assert_eq(payload_len, want);
	cr_assert_eq(get_le32(payload), X86_SNAP_VCPU_VERSION);
	cr_assert_eq(get_le64(payload + 4), in->regs.rax);
	cr_assert_eq(get_le64(payload + 4 + 17 * 8), in->regs.rflags);
	cr_assert_eq(get_le64(payload + 4 + 18 * 8), in->sregs.cs.base);
	cr_assert_eq(get_le32(payload + payload_len - X86_XSAVE_LEGACY_LEN - 4),
		     X86_XSAVE_LEGACY_LEN);
}

Test(snap_x86, vm_state_round_trips)
{
	struct x86_vm_state a, b;

	sample_vm(&a);
	encode_vm(&a);
	memset(&b, 0xff, sizeof(b));
	cr_assert_eq(decode_vm(payload_len, &b), 0);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
}

Test(snap_x86, vm_layout_is_field_by_field_little_endian)
{
	struct x86_vm_state a;

	sample_vm(&a);
	encode_vm(&a);
	cr_assert_eq(payload_len, 4 + 2 * 16 + (8 + 3 * 4 + 24 * 8) +
				      (3 * 24 + 4) + (8 + 4 + 8 + 8) + 2 + 2);
	cr_assert_eq(get_le32(payload), X86_SNAP_VM_VERSION);
	cr_assert_eq(payload[4], a.pic[0].last_irr);
	cr_assert_eq(get_le64(payload + 4 + 32), X86_IOAPIC_BASE);
	cr_assert_eq(get_le16(payload + payload_len - 4), a.pm1_enable);
	cr_assert_eq(payload[payload_len - 2], a.gpe_sts);
	cr_assert_eq(payload[payload_len - 1], a.gpe_en);
}

Test(snap_x86, every_truncation_is_refused, .init = capture_stderr)
{
	struct x86_vm_state vm;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	for (size_t n = 0; n < payload_len; n++)
		cr_assert_eq(decode_vcpu(n, X86_XSAVE_LEGACY_LEN), -EINVAL,
			     "vCPU payload cut to %zu bytes accepted", n);
	sample_vm(&vm);
	encode_vm(&vm);
	for (size_t n = 0; n < payload_len; n++)
		cr_assert_eq(decode_vm(n, &vm), -EINVAL,
			     "VM payload cut to %zu bytes accepted", n);
}

Test(snap_x86, a_truncation_is_reported_as_one, .init = capture_stderr)
{
	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(100, X86_XSAVE_LEGACY_LEN), -EINVAL);
	cr_assert_str_eq(captured(),
			 "hutch: snapshot: vCPU 3 state truncated\n");
}

Test(snap_x86, trailing_bytes_are_refused, .init = capture_stderr)
{
	struct x86_vm_state vm;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len + 1, X86_XSAVE_LEGACY_LEN),
		     -EINVAL);
	sample_vm(&vm);
	encode_vm(&vm);
	cr_assert_eq(decode_vm(payload_len + 1, &vm), -EINVAL);
	cr_assert(strstr(captured(), "1 bytes past its end"));
}

Test(snap_x86, a_huge_msr_count_is_refused, .init = capture_stderr)
{
	const uint32_t lies[] = {X86_SNAP_MAX_MSRS + 1, 0x10000000, 0xffffffff};
	size_t at;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	at = find_le(MSR0_INDEX, 4) - 4;
	cr_assert_eq(get_le32(payload + at), NMSRS);
	for (unsigned i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		put_le32(payload + at, lies[i]);
		cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN),
			     -EINVAL, "%u MSRs accepted", lies[i]);
	}
	cr_assert(strstr(captured(), "msrs.count out of range"));
}

Test(snap_x86, a_wrong_msr_count_is_refused, .init = capture_stderr)
{
	size_t at;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	at = find_le(MSR0_INDEX, 4) - 4;
	/* Fewer: the rest is read as what follows, and runs over. */
	put_le32(payload + at, NMSRS - 1);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
	put_le32(payload + at, NMSRS + 1);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
}

Test(snap_x86, an_xsave_area_of_another_size_is_refused, .init = capture_stderr)
{
	size_t at;

	/* Saved on a host with a bigger area than this one's, and the
	 * other way round. */
	in = sample_vcpu(BIG_XSAVE);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
	x86_vcpu_state_free(in);
	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len, BIG_XSAVE), -EINVAL);
	/* The length field itself lying. */
	at = payload_len - X86_XSAVE_LEGACY_LEN - 4;
	put_le32(payload + at, 0xffffffff);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
	put_le32(payload + at, X86_XSAVE_LEGACY_LEN - 4);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
	cr_assert(strstr(captured(), "xsave length out of range"));
}

Test(snap_x86, an_unknown_mp_state_is_refused, .init = capture_stderr)
{
	const uint32_t bad[] = {KVM_MP_STATE_STOPPED, KVM_MP_STATE_SUSPENDED,
				0xffffffff};
	size_t at;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	/* DR7, the debug register flags, then the MP state. */
	at = find_le(DR7_MARK, 8) + 16;
	cr_assert_eq(get_le32(payload + at), KVM_MP_STATE_HALTED);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_le32(payload + at, bad[i]);
		cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN),
			     -EINVAL, "MP state %u accepted", bad[i]);
	}
	cr_assert(strstr(captured(), ": mp_state out of range"));
}

/* One field of a valid state spoiled, and the message that names it. */
static void vcpu_refused(void (*spoil)(struct x86_vcpu_state *),
			 const char *field)
{
	char want[128];

	x86_vcpu_state_free(in);
	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	spoil(in);
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL,
		     "bad %s accepted", field);
	snprintf(want, sizeof(want), "%s out of range\n", field);
	cr_assert(strstr(captured(), want), "no message naming %s", field);
}

static void bad_present(struct x86_vcpu_state *s)
{
	s->sregs.ss.present = 2;
}
static void bad_dpl(struct x86_vcpu_state *s)
{
	s->sregs.tr.dpl = 4;
}
static void bad_type(struct x86_vcpu_state *s)
{
	s->sregs.ldt.type = 0x10;
}
static void bad_exception(struct x86_vcpu_state *s)
{
	s->events.exception.nr = 32;
}
static void bad_shadow(struct x86_vcpu_state *s)
{
	s->events.interrupt.shadow = 4;
}
static void bad_nmi(struct x86_vcpu_state *s)
{
	s->events.nmi.pending = 3;
}
static void bad_event_flags(struct x86_vcpu_state *s)
{
	s->events.flags |= 0x80000000u;
}
static void bad_smm(struct x86_vcpu_state *s)
{
	s->events.smi.smm = 0xff;
}
static void bad_dr6(struct x86_vcpu_state *s)
{
	s->debugregs.dr6 |= 1ull << 40;
}
static void bad_dbg_flags(struct x86_vcpu_state *s)
{
	s->debugregs.flags = 1;
}
static void bad_nr_xcrs(struct x86_vcpu_state *s)
{
	s->xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
}
static void bad_xcr_flags(struct x86_vcpu_state *s)
{
	s->xcrs.flags = 1;
}

Test(snap_x86, vcpu_fields_out_of_range_are_refused_by_name,
     .init = capture_stderr)
{
	vcpu_refused(bad_present, "sregs.ss.present");
	vcpu_refused(bad_dpl, "sregs.tr.dpl");
	vcpu_refused(bad_type, "sregs.ldt.type");
	vcpu_refused(bad_exception, "events.exception.nr");
	vcpu_refused(bad_shadow, "events.interrupt.shadow");
	vcpu_refused(bad_nmi, "events.nmi.pending");
	vcpu_refused(bad_event_flags, "events.flags");
	vcpu_refused(bad_smm, "events.smi.smm");
	vcpu_refused(bad_dr6, "debugregs.dr6");
	vcpu_refused(bad_dbg_flags, "debugregs.flags");
	vcpu_refused(bad_nr_xcrs, "xcrs.nr_xcrs");
	vcpu_refused(bad_xcr_flags, "xcrs.flags");
}

Test(snap_x86, another_layout_version_is_refused, .init = capture_stderr)
{
	struct x86_vm_state vm;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	encode_vcpu(in);
	put_le32(payload, X86_SNAP_VCPU_VERSION + 1);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
	sample_vm(&vm);
	encode_vm(&vm);
	put_le32(payload, 0);
	cr_assert_eq(decode_vm(payload_len, &vm), -EINVAL);
	cr_assert(strstr(captured(), "layout version out of range"));
}

static void vm_refused(void (*spoil)(struct x86_vm_state *), const char *field)
{
	struct x86_vm_state s;
	char want[128];

	sample_vm(&s);
	spoil(&s);
	encode_vm(&s);
	cr_assert_eq(decode_vm(payload_len, &s), -EINVAL, "bad %s accepted",
		     field);
	snprintf(want, sizeof(want), "%s out of range\n", field);
	cr_assert(strstr(captured(), want), "no message naming %s", field);
}

static void bad_pic_bool(struct x86_vm_state *s)
{
	s->pic[1].init4 = 2;
}
static void bad_pic_init(struct x86_vm_state *s)
{
	s->pic[0].init_state = 4;
}
static void bad_pic_base(struct x86_vm_state *s)
{
	s->pic[0].irq_base = 0x21;
}
static void bad_pic_prio(struct x86_vm_state *s)
{
	s->pic[1].priority_add = 8;
}
static void bad_ioapic_base(struct x86_vm_state *s)
{
	s->ioapic.base_address = 0xfee00000;
}
static void bad_ioapic_irr(struct x86_vm_state *s)
{
	s->ioapic.irr = 1u << 24;
}
static void bad_ioapic_id(struct x86_vm_state *s)
{
	s->ioapic.id = 0x10;
}
static void bad_pit_count(struct x86_vm_state *s)
{
	s->pit.channels[2].count = 0x10001;
}
static void bad_pit_mode(struct x86_vm_state *s)
{
	s->pit.channels[0].mode = 8;
}
static void bad_pit_state(struct x86_vm_state *s)
{
	s->pit.channels[1].read_state = 5;
}
static void bad_pit_gate(struct x86_vm_state *s)
{
	s->pit.channels[1].gate = 2;
}
static void bad_pit_flags(struct x86_vm_state *s)
{
	s->pit.flags = 4;
}
static void bad_clock_flags(struct x86_vm_state *s)
{
	s->clock.flags |= 1u << 4;
}

Test(snap_x86, vm_fields_out_of_range_are_refused_by_name,
     .init = capture_stderr)
{
	vm_refused(bad_pic_bool, "pic slave.init4");
	vm_refused(bad_pic_init, "pic master.init_state");
	vm_refused(bad_pic_base, "pic master.irq_base");
	vm_refused(bad_pic_prio, "pic slave.priority_add");
	vm_refused(bad_ioapic_base, "ioapic.base_address");
	vm_refused(bad_ioapic_irr, "ioapic.irr");
	vm_refused(bad_ioapic_id, "ioapic.id");
	vm_refused(bad_pit_count, "pit.channels[2].count");
	vm_refused(bad_pit_mode, "pit.channels[0].mode");
	vm_refused(bad_pit_state, "pit.channels[1].read_state");
	vm_refused(bad_pit_gate, "pit.channels[1].gate");
	vm_refused(bad_pit_flags, "pit.flags");
	vm_refused(bad_clock_flags, "clock.flags");
}

/* Only the first bad field is named: one line per refused payload. */
Test(snap_x86, one_line_per_refusal, .init = capture_stderr)
{
	const char *log;

	in = sample_vcpu(X86_XSAVE_LEGACY_LEN);
	in->sregs.cs.g = 7;
	in->mp_state.mp_state = 99;
	encode_vcpu(in);
	cr_assert_eq(decode_vcpu(payload_len, X86_XSAVE_LEGACY_LEN), -EINVAL);
	log = captured();
	cr_assert_str_eq(log,
			 "hutch: snapshot: vCPU 3 state: sregs.cs.g out of "
			 "range\n");
}
