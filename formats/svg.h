/*
 * A self-contained interactive SVG flamegraph (no network access): one <g>
 * per frame with a <title> tooltip "name (N samples, P%)", a rect and a
 * truncated text; an inline script for hover details, click-to-zoom with
 * Reset Zoom, regex search showing "Matched: X%", and state in the URL
 * (?s=...). Options: title, width, inverted (icicle), minwidth (px).
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

int stoke_svg_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		    FILE *out);

/*
 * A differential flamegraph: laid out by p (the new profile), each box
 * coloured by how its share of all samples changed against base (the same
 * path of names from the root): red grew, blue shrank, saturation by the
 * size of the change. Titles add the change in percentage points.
 */
int stoke_svg_write_diff(const struct stoke_profile *base, const struct stoke_profile *p,
			 const struct stoke_output_opts *opts, FILE *out);
