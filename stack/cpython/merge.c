/*
 * Native + Python stack merging (see merge.h).
 */
#include <string.h>

#include "merge.h"

#define EVAL "_PyEval_EvalFrameDefault"

bool stoke_py_is_eval_frame(const char *name)
{
	size_t n = sizeof(EVAL) - 1;

	return name && !strncmp(name, EVAL, n) && (name[n] == 0 || name[n] == '.');
}

size_t stoke_py_merge(const char *const *names, size_t nnative, const struct stoke_py_frame *py,
		      size_t npy, struct stoke_py_merged *out, size_t max)
{
	size_t n = 0, p = 0;

	for (size_t i = 0; i < nnative && n < max; i++) {
		if (!stoke_py_is_eval_frame(names[i]) || p >= npy) {
			out[n++] = (struct stoke_py_merged){(int)i, -1};
			continue;
		}
		/* this evaluator call's group: up to its entry frame */
		while (p < npy && n < max) {
			bool entry = py[p].is_entry;
			out[n++] = (struct stoke_py_merged){-1, (int)p++};
			if (entry)
				break;
		}
	}
	while (p < npy && n < max)
		out[n++] = (struct stoke_py_merged){-1, (int)p++};
	return n;
}
