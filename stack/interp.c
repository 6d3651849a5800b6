/*
 * Splicing interpreter frames into a native stack (see interp.h).
 */
#include "stack/interp.h"

size_t stoke_interp_splice(const struct stoke_interp_source *src, uint32_t pid,
			   const uint64_t *native_addrs, const bool *user, size_t nnative,
			   const struct stoke_interp_frame *frames, size_t nframes,
			   struct stoke_interp_slot *out, size_t max)
{
	size_t n = 0, p = 0;

	for (size_t i = 0; i < nnative && n < max; i++) {
		if (p >= nframes || !user[i] ||
		    !src->ops->is_eval(src->impl, pid, native_addrs[i])) {
			out[n++] = (struct stoke_interp_slot){(int)i, -1};
			continue;
		}
		/* this evaluator call's group: up to its entry frame */
		while (p < nframes && n < max) {
			bool entry = frames[p].is_entry;

			out[n++] = (struct stoke_interp_slot){-1, (int)p++};
			if (entry)
				break;
		}
	}
	while (p < nframes && n < max)
		out[n++] = (struct stoke_interp_slot){-1, (int)p++};
	return n;
}

void stoke_interp_free(struct stoke_interp_source *src)
{
	if (src->ops && src->ops->free)
		src->ops->free(src->impl);
	src->ops = NULL;
	src->impl = NULL;
}
