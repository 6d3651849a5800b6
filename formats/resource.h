/*
 * The resource timeline: the target's resident memory and CPU use over a
 * recording, sampled from /proc every interval (session/resources.c) and
 * written into run.json ("resources", FORMATS.md) and the HTML report.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct stoke_rpoint {
	uint64_t t_ns;  /* CLOCK_MONOTONIC */
	uint64_t rss;   /* bytes, summed over the target's processes */
	double cpu;     /* CPU use since the previous point, in cores (1.0: one
			 * core busy the whole interval); 0 for the first */
	uint32_t procs; /* processes read */
};

struct stoke_rseries {
	struct stoke_rpoint *points;
	size_t n, cap;
	uint64_t interval_ns;
	uint64_t mono_start_ns; /* CLOCK_MONOTONIC when sampling began */
	uint64_t wall_start_ns; /* CLOCK_REALTIME at the same moment */
	uint64_t cpu_ns;        /* CPU time used between the first and last point */
};

struct stoke_rsummary {
	uint64_t peak_rss;  /* bytes */
	uint64_t mean_rss;  /* bytes, mean over the points */
	double mean_cpu;    /* cores: CPU time / elapsed time */
	double peak_cpu;    /* cores, the highest one interval saw */
	double duration_s;  /* first to last point */
	size_t points;
};

/* The points of s whose wall-clock time is within [wall_from, wall_to]
 * (1 ms of slack at each end: point times are rounded to whole ms), into
 * *ret (freed with stoke_rseries_free). cpu_ns is what the kept points
 * saw after the first of them. A profile written after a rotation
 * (stoked's continuous mode) gets its own part of the session's series.
 * Returns 0 or -ENOMEM. */
int stoke_rseries_clip(const struct stoke_rseries *s, uint64_t wall_from, uint64_t wall_to,
		       struct stoke_rseries *ret);
/* Append a point (the series grows as needed). Returns 0 or -ENOMEM. */
int stoke_rseries_add(struct stoke_rseries *s, const struct stoke_rpoint *pt);
void stoke_rseries_free(struct stoke_rseries *s);
void stoke_rseries_summary(const struct stoke_rseries *s, struct stoke_rsummary *ret);
/* The run.json "resources" object (no key, no trailing newline):
 * {"interval_ms", "points", "peak_rss_bytes", "mean_rss_bytes",
 *  "cpu_utilization", "peak_cpu_utilization", "cpu_ns", "clock_ns",
 *  "series": {"t_s": [...], "rss_bytes": [...], "cpu": [...]}}: t_s in
 * seconds from wall_origin_ns (the recording's start), clock_ns the
 * CLOCK_MONOTONIC time of t_s 0. Point times must be whole milliseconds
 * after the first (the sampler's are), so that they are kept exactly. */
void stoke_rseries_json(const struct stoke_rseries *s, uint64_t wall_origin_ns, FILE *out);
