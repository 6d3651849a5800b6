/*
 * The stack layer: one sample's stack, leaf first, as addresses, from what
 * its sampler gave (sampler/sample.h): the IPs the sampler walked itself
 * (the kernel's frame-pointer callchain, a BPF stack map), or the kernel
 * part plus the user stack unwound from registers and a stack copy
 * (unwind.h: DWARF CFI, frame-pointer links, stitching). Naming the
 * addresses is the symbolizer's job.
 *
 * Interpreter frame sources (CPython) belong here too, once there is one:
 * they would replace the interpreter's own native frames in this list.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler/sample.h"
#include "stack/unwind.h"

enum stoke_stack_kind {
	STOKE_STACK_KERNEL,    /* a kernel address */
	STOKE_STACK_USER,      /* a user address the sampler walked */
	STOKE_STACK_UNWOUND,   /* a user address from the unwinder */
	STOKE_STACK_SYNTHETIC, /* a marker: name says what ("[truncated]") */
};

struct stoke_stack_frame {
	uint64_t ip;
	uint8_t kind; /* enum stoke_stack_kind */
	/* ip is an exact instruction address (a leaf, or a frame a signal
	 * interrupted), not a return address: no -1 before a lookup */
	bool exact;
	const char *name; /* STOKE_STACK_SYNTHETIC only (static) */
};

/*
 * Write sample's stack into frames (at most max >= 1), leaf first, and
 * return how many. A sample with registers is unwound with u in as (the
 * sample's address space, or NULL); u NULL gives its kernel frames only.
 * *ret_unwound says whether the unwinder ran, and then *ret_end how the
 * walk ended; a walk that stopped early ends in a synthetic frame.
 */
size_t stoke_stack_walk(struct stoke_unwinder *u, const struct stoke_addrspace *as,
			const struct stoke_sample *sample, struct stoke_stack_frame *frames,
			size_t max, bool *ret_unwound, enum stoke_unwind_end *ret_end);
