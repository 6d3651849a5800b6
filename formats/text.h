/*
 * A cProfile-style text table, byte-identical to
 *   pstats.Stats(FILE).sort_stats('cumulative').print_stats()
 * on our own .pstats file, without the first line (file name and date).
 * See FORMATS.md "Text table".
 */
#pragma once

#include <stdio.h>

#include "output.h"
#include "profile.h"

int stoke_text_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out);
