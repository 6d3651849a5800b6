/*
 * The terminal call tree (`-f tree`, as pyinstrument prints one): each
 * node's inclusive time and share of all samples, children heaviest first
 * under "├─" / "└─" drawing, and nodes under a share threshold folded
 * away into one "[N frames hidden]" line per parent. Colour (by share) on
 * a terminal only, never with NO_COLOR set. See FORMATS.md "Call tree".
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

int stoke_tree_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out);
