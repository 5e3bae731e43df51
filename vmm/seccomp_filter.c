// SPDX-License-Identifier: MIT
/*
 * Building and installing the per-thread seccomp filters
 * (seccomp_filter.h).
 * Threads: seccomp_thread_apply on the thread it filters (libseccomp's
 * context is built and freed there); no shared state.
 */
#include "vmm/seccomp_filter.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>

#include "vmm/base/log.h"

int seccomp_parse_mode(const char *s, enum seccomp_mode *mode)
{
	if (!strcmp(s, "kill"))
		*mode = SECCOMP_KILL;
	else if (!strcmp(s, "log"))
		*mode = SECCOMP_LOG;
	else if (!strcmp(s, "off"))
		*mode = SECCOMP_OFF;
	else
		return -EINVAL;
	return 0;
}

const char *seccomp_mode_name(enum seccomp_mode mode)
{
	switch (mode) {
	case SECCOMP_KILL:
		return "kill";
	case SECCOMP_LOG:
		return "log";
	case SECCOMP_OFF:
		break;
	}
	return "off";
}

enum seccomp_mode seccomp_default_mode(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return SECCOMP_OFF;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return SECCOMP_OFF;
#else
	return SECCOMP_KILL;
#endif
#else
	return SECCOMP_KILL;
#endif
}

static int add_rule(scmp_filter_ctx ctx, const struct seccomp_rule *r)
{
	struct scmp_arg_cmp cmp[2];

	for (unsigned i = 0; i < r->nargs && i < 2; i++) {
		const struct seccomp_arg *a = &r->args[i];

		cmp[i] = (struct scmp_arg_cmp){
		    .arg = a->arg,
		    .op = a->masked ? SCMP_CMP_MASKED_EQ : SCMP_CMP_EQ,
		    .datum_a = a->masked ? a->mask : a->value,
		    .datum_b = a->masked ? a->value : 0,
		};
	}
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, r->nargs,
				      cmp);
}

static int add_rules(scmp_filter_ctx ctx, const struct seccomp_rule *rules,
		     unsigned n)
{
	int ret = 0;

	for (unsigned i = 0; i < n && !ret; i++) {
		ret = add_rule(ctx, &rules[i]);
		if (ret)
			log_err(ret, "seccomp: entry %u (syscall %d)", i,
				rules[i].nr);
	}
	return ret;
}

static int apply_two(const struct seccomp_rule *rules, unsigned n,
		     const struct seccomp_rule *more, unsigned nmore,
		     enum seccomp_mode mode)
{
	scmp_filter_ctx ctx;
	int ret = 0;

	if (mode == SECCOMP_OFF)
		return 0;
	ctx = seccomp_init(mode == SECCOMP_LOG ? SCMP_ACT_LOG
					       : SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		log_errx("seccomp: cannot make a filter");
		return -ENOMEM;
	}
	/* A binary tree over syscall numbers instead of a linear list:
	 * fewer comparisons per syscall. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	ret = add_rules(ctx, rules, n);
	if (!ret)
		ret = add_rules(ctx, more, nmore);
	if (!ret) {
		ret = seccomp_load(ctx);
		if (ret)
			log_err(ret, "seccomp: cannot install the filter");
	}
	seccomp_release(ctx);
	return ret;
}

int seccomp_apply_rules(const struct seccomp_rule *rules, unsigned n,
			enum seccomp_mode mode)
{
	return apply_two(rules, n, NULL, 0, mode);
}

int seccomp_thread_apply(enum seccomp_thread kind, enum seccomp_mode mode)
{
	if (kind == SECCOMP_VCPU)
		return apply_two(seccomp_vcpu_rules, seccomp_vcpu_nrules,
				 seccomp_vcpu_arch_rules,
				 seccomp_vcpu_arch_nrules, mode);
	if (kind == SECCOMP_NET)
		return apply_two(seccomp_net_rules, seccomp_net_nrules,
				 seccomp_net_arch_rules,
				 seccomp_net_arch_nrules, mode);
	return apply_two(seccomp_loop_rules, seccomp_loop_nrules,
			 seccomp_loop_arch_rules, seccomp_loop_arch_nrules,
			 mode);
}
