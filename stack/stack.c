/*
 * A sample's stack as addresses (see stack.h).
 */
#include "stack/stack.h"

#include "common/util.h"

static bool addr_is_kernel(uint64_t addr)
{
#if defined(__x86_64__)
	return addr >= 0xffff800000000000ULL;
#else
	return addr >> 63;
#endif
}

/*
 * A DWARF-mode sample: kernel frames from the sampler (it walked no user
 * part: perf's exclude_callchain_user), then the unwound user frames, then a
 * synthetic frame when the walk stopped early.
 */
static size_t walk_unwound(struct stoke_unwinder *u, const struct stoke_addrspace *as,
			   const struct stoke_sample *sample, struct stoke_stack_frame *frames,
			   size_t max, bool *ret_unwound, enum stoke_unwind_end *ret_end)
{
	struct stoke_unwind_frame ips[STOKE_UNWIND_MAX_FRAMES];
	enum stoke_unwind_end end;
	size_t n = 0, nips;

	/* User IPs the sampler walked are ignored: the unwinder does better. */
	for (uint32_t i = 0; i < sample->nr_kernel_ips && n < max; i++)
		frames[n++] = (struct stoke_stack_frame){ .ip = sample->kernel_ips[i],
							  .kind = STOKE_STACK_KERNEL,
							  .exact = i == 0 };
	if (max - n < 2 || !u)
		return n;
	/* One slot stays free for the synthetic root frame. */
	nips = stoke_unwind_sample(u, as, sample, ips, STOKE_MIN(max - n - 1, ARRAY_SIZE(ips)),
				   &end);
	*ret_unwound = true;
	*ret_end = end;
	/* Registers we cannot unwind from (another ABI): the sampled IP alone,
	 * as without a stack. */
	if (!nips && !addr_is_kernel(sample->ip))
		frames[n++] = (struct stoke_stack_frame){ .ip = sample->ip,
							  .kind = STOKE_STACK_USER,
							  .exact = true };
	for (size_t i = 0; i < nips; i++)
		frames[n++] = (struct stoke_stack_frame){ .ip = ips[i].ip,
							  .kind = STOKE_STACK_UNWOUND,
							  .exact = ips[i].exact };
	if (nips && end != STOKE_UNWIND_COMPLETE)
		frames[n++] = (struct stoke_stack_frame){
			.kind = STOKE_STACK_SYNTHETIC,
			.name = end == STOKE_UNWIND_TRUNCATED || end == STOKE_UNWIND_MAX_DEPTH
					? "[truncated]"
					: "[unwind-failed]",
		};
	return n;
}

size_t stoke_stack_walk(struct stoke_unwinder *u, const struct stoke_addrspace *as,
			const struct stoke_sample *sample, struct stoke_stack_frame *frames,
			size_t max, bool *ret_unwound, enum stoke_unwind_end *ret_end)
{
	size_t n = 0;

	*ret_unwound = false;
	if (max == 0)
		return 0;
	/* A sample with user registers was taken to be unwound (DWARF). */
	if (sample->regs_kind != STOKE_REGS_NONE)
		return walk_unwound(u, as, sample, frames, max, ret_unwound, ret_end);
	if (!sample->has_stack) {
		frames[0] = (struct stoke_stack_frame){
			.ip = sample->ip,
			.kind = addr_is_kernel(sample->ip) ? STOKE_STACK_KERNEL : STOKE_STACK_USER,
			.exact = true,
		};
		return 1;
	}
	/* Each side's first IP is exact, the others return addresses. */
	for (uint32_t i = 0; i < sample->nr_kernel_ips && n < max; i++)
		frames[n++] = (struct stoke_stack_frame){ .ip = sample->kernel_ips[i],
							  .kind = STOKE_STACK_KERNEL,
							  .exact = i == 0 };
	for (uint32_t i = 0; i < sample->nr_user_ips && n < max; i++)
		frames[n++] = (struct stoke_stack_frame){ .ip = sample->user_ips[i],
							  .kind = STOKE_STACK_USER,
							  .exact = i == 0 };
	return n;
}
