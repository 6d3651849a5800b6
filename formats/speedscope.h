/*
 * speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json):
 * one "sampled" profile per thread, named "NAME (TID)", samples in time order
 * with their weights in nanoseconds, frames deduplicated in shared.frames
 * with file and line where known. See FORMATS.md.
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

int stoke_speedscope_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
			   FILE *out);
