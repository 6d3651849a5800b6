/*
 * A cProfile-style text table, byte-identical to
 *   pstats.Stats(FILE).sort_stats('cumulative').print_stats()
 * on our own .pstats file, without the first line (file name and date),
 * plus one line after "Ordered by:" (TEXT_SAMPLES_NOTE): "function calls"
 * and ncalls are sample counts, not calls. See FORMATS.md "Text table".
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

#define TEXT_SAMPLES_NOTE \
	"   (stoke: \"function calls\" and ncalls count samples, not calls)"

int stoke_text_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out);
