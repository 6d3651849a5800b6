/*
 * The folded-stacks writer (Brendan Gregg's stackcollapse format, read by
 * flamegraph.pl, inferno, speedscope and others).
 *
 * One line per distinct stack: "root;…;leaf COUNT\n", identical stacks
 * merged, lines sorted bytewise. Names are sanitised (';' becomes ':',
 * newlines and other control characters become spaces, and a name that would
 * end in " <digits>" gets that space replaced by '_' so the line is not
 * taken for a differential one). Unknown frames are "[module basename]" or
 * "[unknown]"; names are never empty. Kernel frames are suffixed "_[k]", JIT
 * frames "_[j]" and inlined frames "_[i]" when annotate is set.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "formats/profile.h"

struct stoke_folded_opts {
	bool per_thread; /* prefix each stack with "comm-PID/TID" */
	bool annotate;   /* _[k] / _[j] / _[i] suffixes (default true) */
};

void stoke_folded_opts_init(struct stoke_folded_opts *opts);

/* Write p to out. Returns 0, -ENOMEM, or -EIO on a write error. */
int stoke_folded_write(const struct stoke_profile *p, const struct stoke_folded_opts *opts,
		       FILE *out);

/*
 * The display name of a frame as every writer shows it: the symbol name, or
 * "module+0xOFFSET" / "[unknown]" for unknown frames. module is shown by
 * basename. Writes into buf (NUL-terminated, truncated to size) and returns
 * buf. The folded writer uses its own "[module]" form for unknown frames.
 */
const char *stoke_frame_display(const struct stoke_profile *p, const struct stoke_pframe *f,
				char *buf, size_t size);
