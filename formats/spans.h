/*
 * Spans in a profile (include/stoke/span.h): the completed spans of a
 * recording, each (thread, name, metadata, nesting depth, begin, end), and
 * what every output derives from them: per-name duration statistics and the
 * innermost span each sample was taken in.
 *
 * The table belongs to the profile (stoke_profile_get_spans) and is freed
 * with it. Times are the samples' clock (ns, CLOCK_MONOTONIC).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/profile.h"

struct stoke_pspan {
	uint32_t tid;
	uint32_t name;  /* string id */
	uint32_t meta;  /* string id: "key=value" strings, one per line */
	uint32_t depth; /* 0: outermost on its thread */
	uint32_t parent; /* string id: the enclosing span's name (0: none) */
	uint64_t begin, end;
};

struct stoke_pspans {
	struct stoke_pspan *spans;
	size_t n, cap;
	/* Span events that made no span: an end with no open span of its
	 * name, spans still open at the end, nesting past the limit. */
	uint64_t unmatched;
	/* Span events lost before they were read (a full span ring): the
	 * statistics miss them, and pairs around them may be wrong. */
	uint64_t lost;
	/* Each sample's span as a string id (0: none), when it was read
	 * rather than derived (a pprof's "span" labels): ntags <= samples,
	 * samples past it have none. Preferred over the spans when set. */
	uint32_t *tags;
	size_t ntags, tags_cap;
};

void stoke_pspans_free(struct stoke_pspans *t);

/* Add a completed span (string ids of p). Returns 0, -EINVAL or -ENOMEM. */
int stoke_profile_add_span(struct stoke_profile *p, const struct stoke_pspan *s);
/* The spans in the order they ended; NULL and 0 when there are none. */
const struct stoke_pspan *stoke_profile_spans(const struct stoke_profile *p, size_t *ret_n);
/* Count span events that made no span. */
int stoke_profile_spans_unmatched(struct stoke_profile *p, uint64_t n);
uint64_t stoke_profile_spans_get_unmatched(const struct stoke_profile *p);
/* Set the count of span events lost. */
int stoke_profile_spans_set_lost(struct stoke_profile *p, uint64_t n);
uint64_t stoke_profile_spans_get_lost(const struct stoke_profile *p);

/* One span name's durations. */
struct stoke_span_stat {
	const char *name; /* borrowed from the profile */
	const char *parent; /* the enclosing span's name when it began, or NULL
			     * (the first span of the name says) */
	uint64_t count;
	uint64_t total_ns, mean_ns, p50_ns, p95_ns, max_ns;
	uint64_t samples; /* weight of the samples whose innermost span it is */
};

/* Per-name statistics, by total duration (largest first); *ret is
 * malloc'ed. Returns 0 or -ENOMEM. */
int stoke_span_stats(const struct stoke_profile *p, struct stoke_span_stat **ret, size_t *ret_n);

/* For each sample of p (in stoke_profile_samples order), the string id of
 * the innermost span of its thread open at its time, or 0. *ret is
 * malloc'ed (NULL when p has no samples). Returns 0 or -ENOMEM. */
int stoke_span_sample_names(const struct stoke_profile *p, uint32_t **ret);

/* Sample i's span, as read from a stored profile (string id of p). */
int stoke_profile_set_sample_span(struct stoke_profile *p, size_t i, uint32_t name);

/* A new profile with only the samples whose innermost span is name (their
 * frames, threads and metadata). Returns 0, -ENOENT (no sample in such a
 * span) or -ENOMEM. */
int stoke_span_filter(const struct stoke_profile *p, const char *name,
		      struct stoke_profile **ret);

/* The "spans" value of run.json: an array of per-name objects (FORMATS.md
 * "run.json"), or null when the profile has no spans. Then the key
 * "span_events_lost" and its count. */
int stoke_spans_json(const struct stoke_profile *p, FILE *out);
/* The text output's spans table (nothing when there are no spans). */
int stoke_spans_text(const struct stoke_profile *p, FILE *out);
