/*
 * Choosing and writing outputs: one entry point over every writer, used by
 * `stoke record`, `stoke report` and stoked.
 *
 * Every file is written atomically (temporary name in the same directory,
 * then rename), relative to a directory fd so the daemon can write into a
 * directory its client passed. A run directory (FORMATS.md) holds run.json
 * and every format.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/profile.h"

enum stoke_format {
	STOKE_FORMAT_FOLDED,
	STOKE_FORMAT_SVG,
	STOKE_FORMAT_SPEEDSCOPE,
	STOKE_FORMAT_PSTATS,
	STOKE_FORMAT_TEXT,      /* cProfile-style table */
	STOKE_FORMAT_PPROF,     /* gzipped profile.proto; the canonical store */
	STOKE_FORMAT_CALLGRIND,
	STOKE_FORMAT_HTML,      /* self-contained report: call tree, flamegraph,
				 * timelines */
	STOKE_FORMAT_TREE,      /* terminal call tree (not in a run directory) */
	STOKE_FORMAT_COUNT,
};

enum stoke_color {
	STOKE_COLOR_AUTO = 0, /* on a terminal, unless NO_COLOR is set */
	STOKE_COLOR_NEVER,
	STOKE_COLOR_ALWAYS,
};

struct stoke_rseries;

struct stoke_output_opts {
	bool per_thread;        /* folded: comm-PID/TID root frames */
	const char *title;      /* svg: NULL = default */
	unsigned width;         /* svg: 0 = 1200 */
	bool inverted;          /* svg: icicle */
	double minwidth;        /* svg: px; 0 = 0.1 */
	bool lines;             /* one frame per source line, not per function
				 * (pprof always keeps lines) */
	bool timeline;          /* pprof: one sample per sample, time labels */
	double min_percent;     /* tree: fold away frames under this share of
				 * all samples (default 1; 0: show all) */
	enum stoke_color color; /* tree */
	/* html: the target's RSS and CPU over the recording, or NULL */
	const struct stoke_rseries *resources;
};

void stoke_output_opts_init(struct stoke_output_opts *opts);

/* "folded", "svg", "speedscope", "pstats", "txt", "pprof", "callgrind",
 * "html", "tree", and
 * aliases (collapsed and py-spy's raw, text, prof, pb.gz, flamegraph).
 * Returns 0 or -EINVAL. */
int stoke_format_from_name(const char *name, enum stoke_format *ret);
const char *stoke_format_name(enum stoke_format f);
/* For a name stoke_format_from_name refused: a one-line pointer to stoke's
 * nearest format when it is another profiler's name, else NULL. */
const char *stoke_format_hint(const char *name);
/* By extension: .folded/.collapsed, .svg, .speedscope.json or .json,
 * .pstats/.prof, .txt, .pb.gz, .callgrind, .html/.htm or a basename
 * callgrind.out.*. -EINVAL when
 * nothing matches. */
int stoke_format_from_path(const char *path, enum stoke_format *ret);
/* The file name a run directory uses for a format ("profile.pb.gz", …);
 * NULL for a format a run directory does not hold (tree). */
const char *stoke_format_rundir_name(enum stoke_format f);

/* Write p in format f to an open stream (not atomic: the caller owns the
 * stream). Returns 0 or -errno. */
int stoke_output_write_file(const struct stoke_profile *p, enum stoke_format f,
			    const struct stoke_output_opts *opts, FILE *out);

/* Write p in format f to path, relative to dirfd (AT_FDCWD for the cwd);
 * "-" writes to stdout. Atomic. Returns 0 or -errno. */
int stoke_output_write(const struct stoke_profile *p, enum stoke_format f,
		       const struct stoke_output_opts *opts, int dirfd, const char *path);

/* The same into an atomic file opened earlier (stoke record opens its output
 * before sampling, so a bad path fails before any work); commits it, or
 * aborts it on error. */
struct stoke_atomic_file;
int stoke_output_write_atomic(const struct stoke_profile *p, enum stoke_format f,
			      const struct stoke_output_opts *opts, struct stoke_atomic_file *af);

/* Facts for run.json that the profile model does not carry. */
struct stoke_run_info {
	const char *exe;         /* target executable path, or NULL */
	const char *build_id;    /* hex, or NULL */
	uint64_t unwind_failed;  /* stacks that did not unwind fully */
	uint64_t truncated;      /* stacks cut at the callchain/stack-copy limit */
	uint64_t stitched;       /* truncated stacks completed by stitching */
	/* Modules left unsymbolized by a symbolizer bound (their frames are
	 * module+0xoff): run.json "modules_capped", written when not 0. */
	uint32_t modules_capped;
	/* The target's RSS and CPU over the recording (run.json "resources"
	 * and the HTML report), or NULL */
	const struct stoke_rseries *resources;
};

/*
 * Create a run directory "<YYYY-MM-DDTHH-MM-SS>_<name>" (UTC, from the
 * profile's start time) under parent_dirfd, adding "_2", "_3", … on a
 * collision, and write run.json and every format into it. On success
 * *ret_name (malloc'd, may be NULL) is the directory's name relative to
 * parent_dirfd. Returns 0 or -errno; on failure nothing is left behind.
 */
int stoke_rundir_write(const struct stoke_profile *p, const struct stoke_run_info *info,
		       const struct stoke_output_opts *opts, int parent_dirfd, const char *name,
		       char **ret_name);
