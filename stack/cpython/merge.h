/*
 * Merging a thread's native stack with its Python stack: each
 * _PyEval_EvalFrameDefault native frame is replaced by the Python frames it
 * runs. Both stacks are innermost first. The k-th evaluator frame (counting
 * from the innermost) runs the k-th group of Python frames: from the frame
 * after the previous group up to and including the next entry frame (3.11:
 * is_entry; 3.12+: the frame above a C-stack shim). Native frames of C
 * extensions and the kernel stay where they are, under their Python caller.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cpython.h"

/* Whether a native function name is the evaluator (or a compiler-split part
 * of it, "_PyEval_EvalFrameDefault.cold"). */
bool stoke_py_is_eval_frame(const char *name);

/* One element of a merged stack: native frame native_idx, or Python frame
 * py_idx (the other is -1). */
struct stoke_py_merged {
	int native_idx, py_idx;
};

/*
 * Merge: names[i] is native frame i's function (NULL when unknown). Writes
 * at most max elements, innermost first, and returns the count. Python
 * frames left over when the native stack has fewer evaluator frames than
 * groups (a native walk cut short) go at the outer end, after the native
 * frames, so that no Python frame is lost.
 */
size_t stoke_py_merge(const char *const *names, size_t nnative, const struct stoke_py_frame *py,
		      size_t npy, struct stoke_py_merged *out, size_t max);
