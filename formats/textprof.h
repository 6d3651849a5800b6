/*
 * Text profiles as input: folded stacks ("a;b;c 12" lines, as stackcollapse
 * and `stoke record -f folded` write them, with the _[k]/_[j]/_[i]
 * annotations read back as frame kinds) and `perf script` output (sample
 * lines, each followed by its indented callchain, leaf first).
 */
#pragma once

#include <stddef.h>

#include "formats/profile.h"

/* Parse buf (len bytes; which of the two it is, is told from its shape).
 * Returns 0 and a new model, or -errno with *ret_err a one-line reason
 * naming the line. */
int stoke_textprof_read(const char *buf, size_t len, struct stoke_profile **ret,
			const char **ret_err);
