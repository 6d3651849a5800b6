/*
 * The HTML report (`-f html`, report.html in a run directory): one
 * self-contained page, opened from disk without a server, as pyinstrument's
 * HTML report is: a collapsible call tree with search, a flamegraph, and
 * per-thread timelines under the target's RSS and CPU (when recorded).
 * Everything is inline and a Content-Security-Policy forbids any fetch.
 * See FORMATS.md "HTML report".
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

/* Bins of each thread's timeline. */
#define STOKE_HTML_BINS 500
/* Threads whose timelines the report holds at most (the heaviest). */
#define STOKE_HTML_THREADS 256

int stoke_html_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out);
