/*
 * Interpreter frame sources: the stack layer's slot for the frames an
 * interpreter runs (CPython's Python functions), spliced into a sample's
 * native stack in place of the interpreter's own evaluator frames (#13).
 *
 * A source answers two questions for one sample: which of its native
 * addresses are the evaluator's (is_eval), and which interpreter frames
 * the sampled thread was running (frames, innermost first, each group
 * ending at the frame an evaluator call entered with). stoke_interp_splice
 * then puts the k-th group where the k-th evaluator frame was: native
 * frames of extensions and the kernel stay under their interpreted caller.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler/sample.h"

struct stoke_interp_frame {
	const char *function; /* qualified name; lives as long as the source */
	const char *file;     /* likewise */
	int line;	      /* the line being run; -1: unknown */
	int first_line;	      /* the function's definition line */
	bool is_entry;	      /* the first frame its evaluator call ran */
};

struct stoke_interp_ops {
	const char *name;
	/* The sampled thread's frames, innermost first, at most max. Returns
	 * the count (0: the thread runs no interpreted code, or the process
	 * is not this interpreter's), or -errno. *approximate is set when
	 * they were read after the sample rather than at it. */
	int (*frames)(void *impl, const struct stoke_sample *sample, struct stoke_interp_frame *out,
		      size_t max, bool *approximate);
	/* Whether addr, a user address of process pid, is in the evaluator. */
	bool (*is_eval)(void *impl, uint32_t pid, uint64_t addr);
	/* Process pid replaced its image (exec): forget what is known of it
	 * (may be NULL). */
	void (*exec)(void *impl, uint32_t pid);
	void (*free)(void *impl);
};

struct stoke_interp_source {
	const struct stoke_interp_ops *ops;
	void *impl;
};

/* One element of a spliced stack: native frame native_idx or interpreter
 * frame interp_idx (the other is -1). */
struct stoke_interp_slot {
	int native_idx, interp_idx;
};

/*
 * Splice: native_addrs[i] is native frame i's address (leaf first), user[i]
 * whether it is a user address. Writes at most max slots, innermost first,
 * and returns the count. Interpreter frames left over when the native walk
 * has fewer evaluator frames than groups (a walk cut short) go at the outer
 * end, so that none is lost.
 */
size_t stoke_interp_splice(const struct stoke_interp_source *src, uint32_t pid,
			   const uint64_t *native_addrs, const bool *user, size_t nnative,
			   const struct stoke_interp_frame *frames, size_t nframes,
			   struct stoke_interp_slot *out, size_t max);

void stoke_interp_free(struct stoke_interp_source *src);
