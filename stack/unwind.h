/*
 * The stack layer's DWARF source: unwinding of sampled user stacks.
 *
 * A DWARF-mode sample carries the user registers at the moment of the sample
 * (DWARF-numbered, sampler/sample.h) and a copy of the top of the user
 * stack. The unwinder runs libunwind's remote API over
 * them: registers come from the sample, memory from the stack copy and, for
 * everything else (CFI tables, code bytes), from the read-only segments of
 * the mapped ELF files; the unwind table of a module is its .eh_frame_hdr
 * binary-search table. Everything that can be is cached: one libunwind
 * address space per process (with libunwind's per-IP register-state cache),
 * one parsed table per module, our own vDSO image for the vDSO.
 *
 * The result is a list of user IPs, leaf first, plus how the walk ended.
 * Naming the IPs is the symbolizer's job.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler/sample.h"

struct stoke_addrspace;
struct stoke_elfcache;
struct stoke_strpool;

/* The deepest user stack unwound; a 64 KB copy holds at most ~4000 minimal
 * frames, and deeper stacks end in [truncated]. */
#define STOKE_UNWIND_MAX_FRAMES 1024

/* How a walk ended. */
enum stoke_unwind_end {
	STOKE_UNWIND_COMPLETE = 0, /* reached the outermost frame (CFI says so) */
	STOKE_UNWIND_TRUNCATED,    /* needed stack beyond the sampled copy */
	STOKE_UNWIND_NO_INFO,      /* no CFI for a frame and no plausible FP link */
	STOKE_UNWIND_BAD_FRAME,    /* libunwind error, or a frame that is not
				    * plausible (IP outside every mapping, stack
				    * going the wrong way) */
	STOKE_UNWIND_MAX_DEPTH,    /* the caller's frame array is full */
	STOKE_UNWIND_NO_REGS,      /* no usable user registers (kernel thread,
				    * other ABI or register mask) */
	STOKE_UNWIND_NR_ENDS,
};

/* One unwound frame. */
struct stoke_unwind_frame {
	uint64_t ip;
	/* ip is the exact address of an instruction about to execute (the
	 * first frame, and the frame a signal interrupted), not a return
	 * address: the -1 rule does not apply. */
	bool exact;
	/* this frame came from a frame-pointer link (no CFI for its callee),
	 * accepted because it looked plausible */
	bool fp_link;
};

struct stoke_unwind_stats {
	uint64_t samples;     /* samples unwound (with registers) */
	uint64_t ends[STOKE_UNWIND_NR_ENDS];
	uint64_t fp_links;    /* frames taken from frame-pointer links */
	/* truncated stacks completed from the same thread's last complete
	 * stack (same return address and stack pointer in the outermost
	 * frame): counted in ends[STOKE_UNWIND_COMPLETE] as well */
	uint64_t stitched;
	uint64_t stitched_frames; /* frames those stitches added */
	uint64_t tables;      /* module unwind tables parsed */
	uint64_t tables_missing; /* modules without .eh_frame_hdr */
	uint64_t addr_spaces; /* libunwind address spaces created */
};

struct stoke_unwinder;

/* Initialize libunwind's globals, once per process (later calls return at
 * once). stoke_symbolizer_new calls it, so that it runs when a session
 * starts rather than at its first unwound sample on a worker thread. */
void stoke_unwind_init_once(void);

/* Neither elfs nor pool are owned; both must outlive the unwinder. */
int stoke_unwinder_new(struct stoke_elfcache *elfs, struct stoke_strpool *pool,
		       struct stoke_unwinder **ret);
void stoke_unwinder_free(struct stoke_unwinder *u);

/*
 * Unwind sample's user stack in as (the address space of sample->pid; NULL
 * when unknown). Writes at most max frames, leaf first, and returns how many
 * (0 only for STOKE_UNWIND_NO_REGS); *ret_end says why the walk stopped.
 * Never fails otherwise: a walk that cannot continue ends early.
 */
size_t stoke_unwind_sample(struct stoke_unwinder *u, const struct stoke_addrspace *as,
			   const struct stoke_sample *sample, struct stoke_unwind_frame *frames,
			   size_t max, enum stoke_unwind_end *ret_end);

/*
 * The mappings of pid changed under already-cached unwind state (exec, or a
 * new mapping replacing code): drop libunwind's per-IP cache for it.
 */
void stoke_unwinder_forget(struct stoke_unwinder *u, uint32_t pid);

/*
 * Name an address in the vDSO mapped at vdso_start in pid's address space
 * (which has no file on disk): the vDSO image is the kernel's, so our own
 * copy (AT_SYSINFO_EHDR) gives its symbols. Returns the interned symbol name
 * or NULL.
 */
const char *stoke_unwind_vdso_symbol(struct stoke_unwinder *u, uint64_t vdso_start,
				     uint64_t addr);

void stoke_unwinder_get_stats(const struct stoke_unwinder *u, struct stoke_unwind_stats *ret);

/* A short name for an end reason ("complete", "truncated", "no-cfi", …). */
const char *stoke_unwind_end_name(enum stoke_unwind_end end);
