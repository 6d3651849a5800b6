/*
 * perf samples → neutral samples (sampler/sample.h), the one place where
 * perf's callchain context markers, register order and register ABI are
 * understood. Pure functions over the decoded record: unit-tested in
 * tests/test-record.c.
 */
#include "sampler/perf/record.h"

#include <linux/perf_event.h>
#include <string.h>

/* perf's x86-64 register numbers (arch/x86/include/uapi/asm/perf_regs.h). */
enum {
	PERF_X86_AX = 0, PERF_X86_BX, PERF_X86_CX, PERF_X86_DX, PERF_X86_SI, PERF_X86_DI,
	PERF_X86_BP, PERF_X86_SP, PERF_X86_IP, PERF_X86_FLAGS, PERF_X86_CS, PERF_X86_SS,
	PERF_X86_DS, PERF_X86_ES, PERF_X86_FS, PERF_X86_GS,
	PERF_X86_R8, /* … R15 = 23 */
};

static bool addr_is_kernel(uint64_t addr)
{
#if defined(__x86_64__)
	return addr >= 0xffff800000000000ULL;
#else
	return addr >> 63;
#endif
}

/* Where a perf register's value sits in a sample's regs array (values are
 * stored in mask bit order), or -1. */
static int regs_index(uint64_t mask, int preg)
{
	if (!(mask >> preg & 1))
		return -1;
	return __builtin_popcountll(mask & ((1ULL << preg) - 1));
}

/* DWARF number → perf number. */
static const int8_t perf_of[STOKE_DWARF_NREGS] = {
	[STOKE_DWARF_RAX] = PERF_X86_AX, [STOKE_DWARF_RDX] = PERF_X86_DX,
	[STOKE_DWARF_RCX] = PERF_X86_CX, [STOKE_DWARF_RBX] = PERF_X86_BX,
	[STOKE_DWARF_RSI] = PERF_X86_SI, [STOKE_DWARF_RDI] = PERF_X86_DI,
	[STOKE_DWARF_RBP] = PERF_X86_BP, [STOKE_DWARF_RSP] = PERF_X86_SP,
	[STOKE_DWARF_R8 + 0] = PERF_X86_R8 + 0, [STOKE_DWARF_R8 + 1] = PERF_X86_R8 + 1,
	[STOKE_DWARF_R8 + 2] = PERF_X86_R8 + 2, [STOKE_DWARF_R8 + 3] = PERF_X86_R8 + 3,
	[STOKE_DWARF_R8 + 4] = PERF_X86_R8 + 4, [STOKE_DWARF_R8 + 5] = PERF_X86_R8 + 5,
	[STOKE_DWARF_R8 + 6] = PERF_X86_R8 + 6, [STOKE_DWARF_R8 + 7] = PERF_X86_R8 + 7,
	[STOKE_DWARF_RIP] = PERF_X86_IP,
};

void stoke_perf_regs_to_dwarf(const uint64_t *regs, struct stoke_sample *ret)
{
	for (int i = 0; i < STOKE_DWARF_NREGS; i++)
		ret->regs[i] = regs[regs_index(STOKE_PERF_REGS_MASK, perf_of[i])];
	ret->regs_kind = STOKE_REGS_X86_64;
	ret->stack_addr = ret->regs[STOKE_DWARF_RSP];
}

static void convert_regs(const struct stoke_perf_sample *ps, uint64_t mask,
			 struct stoke_sample *ret)
{
	if (!ps->nr_regs || !ps->regs)
		return; /* STOKE_REGS_NONE: no user context (a kernel thread) */
	/* A sample with registers wants unwinding; only the 64-bit ABI with
	 * every register stoke asks for can have it. */
	ret->regs_kind = STOKE_REGS_UNUSABLE;
	if (ps->regs_abi != PERF_SAMPLE_REGS_ABI_64 ||
	    ps->nr_regs != (uint32_t)__builtin_popcountll(mask) ||
	    (mask & STOKE_PERF_REGS_MASK) != STOKE_PERF_REGS_MASK)
		return;
	for (int i = 0; i < STOKE_DWARF_NREGS; i++)
		ret->regs[i] = ps->regs[regs_index(mask, perf_of[i])];
	ret->regs_kind = STOKE_REGS_X86_64;
	ret->stack_addr = ret->regs[STOKE_DWARF_RSP];
	ret->stack = ps->stack;
	ret->stack_len = ps->stack ? (ps->dyn_size < ps->stack_size ? ps->dyn_size : ps->stack_size)
				   : 0;
}

/*
 * The callchain: "PERF_CONTEXT_KERNEL k0 k1 … PERF_CONTEXT_USER u0 u1 …", each
 * side leaf first. Entries before any marker are placed by address;
 * hypervisor and guest contexts are not ours to name and are left out. A
 * side seen twice keeps its first run.
 */
static void convert_chain(const struct stoke_perf_sample *ps, struct stoke_sample *ret)
{
	enum { GUESS, KERNEL, USER, FOREIGN } ctx = GUESS;
	uint64_t i = 0;

	if (ps->nr == 0 || !ps->callchain)
		return;
	ret->has_stack = true;
	while (i < ps->nr) {
		uint64_t v = ps->callchain[i];
		uint64_t run;
		bool kernel;

		if (v >= PERF_CONTEXT_MAX) {
			ctx = v == PERF_CONTEXT_KERNEL ? KERNEL
			      : v == PERF_CONTEXT_USER ? USER
						       : FOREIGN;
			i++;
			continue;
		}
		for (run = i; run < ps->nr && ps->callchain[run] < PERF_CONTEXT_MAX; run++)
			;
		kernel = ctx == KERNEL || (ctx == GUESS && addr_is_kernel(v));
		if (ctx != FOREIGN) {
			if (kernel && !ret->kernel_ips) {
				ret->kernel_ips = &ps->callchain[i];
				ret->nr_kernel_ips = (uint32_t)(run - i);
			} else if (!kernel && !ret->user_ips) {
				ret->user_ips = &ps->callchain[i];
				ret->nr_user_ips = (uint32_t)(run - i);
			}
		}
		i = run;
	}
}

void stoke_perf_sample_convert(const struct stoke_perf_sample *ps, uint64_t regs_user_mask,
			       struct stoke_sample *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->pid = ps->pid;
	ret->tid = ps->tid;
	ret->cpu = ps->cpu;
	ret->time = ps->time;
	ret->period = ps->period;
	ret->ip = ps->ip;
	convert_chain(ps, ret);
	convert_regs(ps, regs_user_mask, ret);
}

void stoke_perf_record_convert(const struct stoke_perf_record *pr, uint64_t regs_user_mask,
			       struct stoke_record *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->type = pr->type;
	ret->id = pr->id;
	switch (pr->type) {
	case STOKE_REC_SAMPLE:
		stoke_perf_sample_convert(&pr->sample, regs_user_mask, &ret->sample);
		break;
	case STOKE_REC_MMAP:
		ret->mmap = pr->mmap;
		break;
	case STOKE_REC_COMM:
		ret->comm = pr->comm;
		break;
	case STOKE_REC_FORK:
	case STOKE_REC_EXIT:
		ret->task = pr->task;
		break;
	case STOKE_REC_LOST:
		ret->lost = pr->lost;
		break;
	case STOKE_REC_THROTTLE:
	case STOKE_REC_UNTHROTTLE:
		ret->throttle = pr->throttle;
		break;
	case STOKE_REC_OTHER:
	case STOKE_REC_SPAN: /* never a decoded perf record (spans.c) */
		break;
	}
}
