/*
 * The callgrind profile format (callgrind.out.*), read by callgrind_annotate
 * and kcachegrind: one event "Samples", per-line self costs from each
 * sampled leaf's file:line, and calls= lines with inclusive costs for every
 * caller->callee edge (recursion-safe: an edge counts once per sample).
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

int stoke_callgrind_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
			  FILE *out);
