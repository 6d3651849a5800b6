/*
 * Python's pstats format (a marshalled dict, as cProfile writes it), read by
 * pstats.Stats, snakeviz and gprof2dot; and the statistics both it and the
 * text table are made from.
 *
 * Keys are (file, line, function). Samples map onto (cc, nc, tt, ct,
 * callers) recursion-safely (FORMATS.md): per sample of weight w and period
 * p, each distinct function on the stack gets cc += w and ct += w*p once,
 * nc += w per occurrence, and the leaf tt += w*p; caller edges likewise.
 * With several threads a synthetic root ('~', 0, '<all threads>') calls
 * each thread's root frames.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

struct stoke_pstats_edge {
	uint32_t caller;   /* function index */
	uint64_t nc, cc;   /* in samples */
	uint64_t tt, ct;   /* in samples; seconds = samples * period */
};

struct stoke_pstats_func {
	const char *file;  /* owned by the stats */
	uint32_t line;
	const char *name;
	uint64_t nc, cc, tt, ct; /* in samples */
	struct stoke_pstats_edge *callers;
	size_t ncallers;
};

struct stoke_pstats {
	struct stoke_pstats_func *funcs; /* sorted by key (file, line, name) */
	size_t nfuncs;
	double period_s;                 /* seconds per sample */
	/* internal */
	char *pool;
	size_t pool_len, pool_cap;
	size_t funcs_cap;
};

int stoke_pstats_compute(const struct stoke_profile *p, struct stoke_pstats *ret);
void stoke_pstats_done(struct stoke_pstats *st);

int stoke_pstats_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		       FILE *out);
