/*
 * Function-level views of a profile, for `stoke top`, `stoke diff` and
 * `stoke annotate`: per-function self and total weights, caller→callee
 * edges, and per-line weights of one function.
 *
 * A function is identified by its display name (stoke_frame_display), so two
 * profiles of different builds of a program compare by name. Totals are
 * recursion-safe: a function counts once per sample however often it
 * appears in the stack; an edge likewise counts once per sample.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/profile.h"

/* part as a percentage of whole (0 when whole is 0). */
static inline double stoke_pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

struct stoke_func_stat {
	const char *name;   /* display name, owned by the analysis */
	const char *file;   /* source file of the hottest line, or NULL */
	uint32_t line;      /* hottest line (most self weight, else most total), 0 if unknown */
	uint64_t self;      /* weight of samples whose leaf is this function */
	uint64_t total;     /* weight of samples that contain it */
};

struct stoke_func_edge {
	uint32_t caller, callee; /* indexes into funcs */
	uint64_t weight;
};

struct stoke_analysis {
	struct stoke_func_stat *funcs;
	size_t nfuncs;
	struct stoke_func_edge *edges; /* sorted by caller, then weight descending */
	size_t nedges;
	uint64_t total;         /* sum of sample weights */
	uint64_t unwind_failed; /* weight of samples rooted in [unwind-failed] */
	uint64_t truncated;     /* weight of samples rooted in [truncated] */
	struct stoke_analysis_priv *priv;
};

/* Returns 0 or -ENOMEM. */
int stoke_analysis_new(const struct stoke_profile *p, struct stoke_analysis **ret);
void stoke_analysis_free(struct stoke_analysis *a);
/* Index of the function with this display name, or -1. */
long stoke_analysis_find(const struct stoke_analysis *a, const char *name);
/* Fill order[] (a->nfuncs entries) with function indexes sorted by self
 * (by_total false) or total weight, descending, ties by name. */
void stoke_analysis_sort(const struct stoke_analysis *a, bool by_total, uint32_t *order);

struct stoke_neighbour {
	uint32_t func;	 /* index into funcs */
	uint64_t weight; /* of the edge */
};
/* The heaviest max callers (or callees) of function fn other than fn
 * itself, heaviest first, into out. Returns how many. (stoke top and stoke
 * serve show three.) */
size_t stoke_analysis_neighbours(const struct stoke_analysis *a, uint32_t fn, bool callers,
				 struct stoke_neighbour *out, size_t max);

struct stoke_line_stat {
	const char *file;   /* string of the profile, or NULL */
	uint32_t line;
	uint64_t self;      /* samples whose leaf frame is the function at this line */
	uint64_t total;     /* samples with the function at this line anywhere (once) */
};

/*
 * Per-line weights of the function named name, sorted by file then line.
 * *ret is malloc'd. Returns the number of lines (0 when the function is not
 * in the profile or has no line information), or -ENOMEM.
 */
long stoke_analysis_lines(const struct stoke_profile *p, const char *name,
			  struct stoke_line_stat **ret);
