// SPDX-License-Identifier: MIT
#include "vmm/x86/regs.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/base/le.h"
#include "vmm/x86/layout.h"

#define CR0_PE	 (1u << 0)
#define CR0_ET	 (1u << 4)
#define CR0_PG	 (1u << 31)
#define CR4_PAE	 (1u << 5)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)
#define PTE_P	 0x1
#define PTE_RW	 0x2
#define PTE_PS	 0x80

#define MSR_IA32_TSC		0x10
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MISC_ENABLE_FAST_STRING 0x1
#define MTRR_ENABLE_WB		((1u << 11) | 6)

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_DM_NMI    0x400
#define APIC_DM_EXTINT 0x700

int x86_write_boot_tables(const struct guest_mem *m, enum x86_entry_mode mode)
{
	uint8_t gdt[5 * 8] = {0};
	uint8_t *pml4, *pdpt, *pd;

	put_le64(gdt + X86_BOOT_CS,
		 mode == X86_ENTRY_PVH32 ? X86_GDT_CODE32 : X86_GDT_CODE64);
	put_le64(gdt + X86_BOOT_DS, X86_GDT_DATA);
	put_le64(gdt + X86_BOOT_TR, X86_GDT_TSS);
	if (guest_write(m, X86_GDT_ADDR, gdt, sizeof(gdt)))
		return -EFAULT;
	if (mode == X86_ENTRY_PVH32)
		return 0;

	/* Identity-map the low 4 GiB with 2 MiB pages: covers the kernel,
	 * zero page, command line and initrd, as the 64-bit protocol asks. */
	pml4 = gpa_ptr(m, X86_PML4_ADDR, 4096);
	pdpt = gpa_ptr(m, X86_PDPT_ADDR, 4096);
	pd = gpa_ptr(m, X86_PD_ADDR, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	put_le64(pml4, X86_PDPT_ADDR | PTE_P | PTE_RW);
	for (uint64_t i = 0; i < 4; i++)
		put_le64(pdpt + i * 8,
			 (X86_PD_ADDR + i * 4096) | PTE_P | PTE_RW);
	for (uint64_t i = 0; i < 4 * 512; i++)
		put_le64(pd + i * 8, (i << 21) | PTE_P | PTE_RW | PTE_PS);
	return 0;
}

static struct kvm_segment flat_segment(uint16_t sel, uint8_t type, int code64)
{
	return (struct kvm_segment){
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = sel,
	    .type = type,
	    .present = 1,
	    .dpl = 0,
	    .db = code64 ? 0 : 1,
	    .s = 1,
	    .l = code64 ? 1 : 0,
	    .g = 1,
	};
}

int x86_setup_boot_regs(int fd, const struct x86_entry *e)
{
	int long_mode = e->mode == X86_ENTRY_LINUX64;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_segment data = flat_segment(X86_BOOT_DS, 0x3, 0);

	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = X86_GDT_ADDR;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cs = flat_segment(X86_BOOT_CS, 0xb, long_mode);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = (struct kvm_segment){
	    .base = 0,
	    .limit = 0x67,
	    .selector = X86_BOOT_TR,
	    .type = 0xb,
	    .present = 1,
	};
	sregs.cr0 = CR0_PE | CR0_ET;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (long_mode) {
		sregs.cr3 = X86_PML4_ADDR;
		sregs.cr4 |= CR4_PAE;
		sregs.cr0 |= CR0_PG;
		sregs.efer |= EFER_LME | EFER_LMA;
	}
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = e->rip;
	regs.rsp = X86_BOOT_STACK;
	if (long_mode)
		regs.rsi = e->arg;
	else
		regs.rbx = e->arg;
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static int setup_msrs(int fd)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} init[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_LSTAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_IA32_TSC, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB},
	};
	const unsigned n = sizeof(init) / sizeof(init[0]);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[sizeof(init) / sizeof(init[0])];
	} msrs;
	int ret;

	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		msrs.e[i].index = init[i].index;
		msrs.e[i].data = init[i].value;
	}
	ret = ioctl(fd, KVM_SET_MSRS, &msrs);
	if (ret < 0)
		return -errno;
	/* KVM_SET_MSRS returns how many it set: a short count means one was
	 * refused, and the guest would see an inconsistent CPU. */
	return (unsigned)ret == n ? 0 : -EINVAL;
}

int x86_setup_vcpu_common(int fd)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	struct kvm_lapic_state lapic;
	int ret;

	ret = setup_msrs(fd);
	if (ret)
		return ret;
	if (ioctl(fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	/* LINT0 delivers the PIC (ExtINT) and LINT1 NMIs, as the MP table
	 * says and as a BIOS would have left them. */
	if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	put_le32((uint8_t *)lapic.regs + APIC_LVT_LINT0, APIC_DM_EXTINT);
	put_le32((uint8_t *)lapic.regs + APIC_LVT_LINT1, APIC_DM_NMI);
	if (ioctl(fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	return 0;
}

static void dump_seg(FILE *out, const char *name, const struct kvm_segment *s)
{
	fprintf(out,
		"  %-3s sel=%04x base=%016llx limit=%08x type=%x p=%u dpl=%u "
		"db=%u s=%u l=%u g=%u\n",
		name, s->selector, (unsigned long long)s->base, s->limit,
		s->type, s->present, s->dpl, s->db, s->s, s->l, s->g);
}

void x86_dump_regs(int fd, FILE *out)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(out, "  (registers unavailable)\n");
		return;
	}
	fprintf(out,
		"  rip=%016llx rsp=%016llx rflags=%016llx\n"
		"  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
		"  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx\n"
		"  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx\n"
		"  r13=%016llx r14=%016llx r15=%016llx\n",
		r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi,
		r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14,
		r.r15);
	fprintf(out,
		"  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx\n"
		"  efer=%016llx apic_base=%016llx\n",
		s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.apic_base);
	dump_seg(out, "cs", &s.cs);
	dump_seg(out, "ds", &s.ds);
	dump_seg(out, "ss", &s.ss);
	dump_seg(out, "tr", &s.tr);
	fprintf(out,
		"  gdt base=%016llx limit=%04x  idt base=%016llx limit=%04x\n",
		s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}
