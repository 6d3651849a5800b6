/*
 * Output selection (see output.h): the table of formats — names, file
 * extensions, run-directory file names and writers — and the one entry
 * point that writes a profile atomically in any of them.
 *
 * Every writer has the same shape, a pure function of the model that
 * streams to a FILE*:  int write(p, opts, out) -> 0 / -errno.
 * Atomicity is handled here once, not in each writer.
 */
#include "formats/output.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/atomicfile.h"
#include "formats/callgrind.h"
#include "formats/folded.h"
#include "formats/html.h"
#include "formats/pprof.h"
#include "formats/pstats.h"
#include "formats/speedscope.h"
#include "formats/svg.h"
#include "formats/text.h"
#include "formats/tree.h"

static int write_folded(const struct stoke_profile *p, const struct stoke_output_opts *opts,
			FILE *out)
{
	struct stoke_folded_opts fo;

	stoke_folded_opts_init(&fo);
	fo.per_thread = opts->per_thread;
	return stoke_folded_write(p, &fo, out);
}

typedef int (*writer_fn)(const struct stoke_profile *p, const struct stoke_output_opts *opts,
			 FILE *out);

static const struct format_info {
	const char *name;
	const char *rundir_name;
	writer_fn write;
} formats[STOKE_FORMAT_COUNT] = {
	[STOKE_FORMAT_FOLDED] = { "folded", "profile.folded", write_folded },
	[STOKE_FORMAT_SVG] = { "svg", "flamegraph.svg", stoke_svg_write },
	[STOKE_FORMAT_SPEEDSCOPE] = { "speedscope", "profile.speedscope.json",
				      stoke_speedscope_write },
	[STOKE_FORMAT_PSTATS] = { "pstats", "profile.pstats", stoke_pstats_write },
	[STOKE_FORMAT_TEXT] = { "txt", "profile.txt", stoke_text_write },
	[STOKE_FORMAT_PPROF] = { "pprof", "profile.pb.gz", stoke_pprof_write },
	/* kcachegrind and callgrind_annotate look for callgrind.out.* */
	[STOKE_FORMAT_CALLGRIND] = { "callgrind", "callgrind.out.stoke", stoke_callgrind_write },
	[STOKE_FORMAT_HTML] = { "html", "report.html", stoke_html_write },
	/* a terminal view: no file of a run directory */
	[STOKE_FORMAT_TREE] = { "tree", NULL, stoke_tree_write },
};

void stoke_output_opts_init(struct stoke_output_opts *opts)
{
	*opts = (struct stoke_output_opts){
		.per_thread = false,
		.title = NULL,
		.width = 0,
		.inverted = false,
		.minwidth = 0,
		.lines = false,
		.timeline = false,
		.min_percent = 1.0,
		.color = STOKE_COLOR_AUTO,
		.resources = NULL,
	};
}

int stoke_format_from_name(const char *name, enum stoke_format *ret)
{
	static const struct {
		const char *alias;
		enum stoke_format f;
	} aliases[] = {
		{ "collapsed", STOKE_FORMAT_FOLDED }, { "text", STOKE_FORMAT_TEXT },
		{ "prof", STOKE_FORMAT_PSTATS },      { "pb.gz", STOKE_FORMAT_PPROF },
		{ "flamegraph", STOKE_FORMAT_SVG },
		/* py-spy's name for collapsed stacks */
		{ "raw", STOKE_FORMAT_FOLDED },
	};

	if (!name)
		return -EINVAL;
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++) {
		if (!strcmp(name, formats[f].name)) {
			*ret = (enum stoke_format)f;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (!strcmp(name, aliases[i].alias)) {
			*ret = aliases[i].f;
			return 0;
		}
	}
	return -EINVAL;
}

const char *stoke_format_hint(const char *name)
{
	/* Other profilers' format names that have no stoke equivalent. */
	if (name && !strcmp(name, "chrometrace"))
		return "stoke has no chrometrace format: -f speedscope keeps the timeline "
		       "(open it in speedscope.app or its chrome devtools import)";
	return NULL;
}

const char *stoke_format_name(enum stoke_format f)
{
	return (unsigned)f < STOKE_FORMAT_COUNT ? formats[f].name : NULL;
}

const char *stoke_format_rundir_name(enum stoke_format f)
{
	return (unsigned)f < STOKE_FORMAT_COUNT ? formats[f].rundir_name : NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	/* A bare ".svg" has no name before the extension: not a match. */
	return n > m && !strcmp(s + n - m, suffix);
}

int stoke_format_from_path(const char *path, enum stoke_format *ret)
{
	/* Longest suffixes first: ".speedscope.json" before any ".json". */
	static const struct {
		const char *ext;
		enum stoke_format f;
	} exts[] = {
		{ ".speedscope.json", STOKE_FORMAT_SPEEDSCOPE },
		{ ".collapsed", STOKE_FORMAT_FOLDED },
		{ ".callgrind", STOKE_FORMAT_CALLGRIND },
		{ ".folded", STOKE_FORMAT_FOLDED },
		{ ".pstats", STOKE_FORMAT_PSTATS },
		{ ".pb.gz", STOKE_FORMAT_PPROF },
		{ ".prof", STOKE_FORMAT_PSTATS },
		{ ".svg", STOKE_FORMAT_SVG },
		{ ".html", STOKE_FORMAT_HTML },
		{ ".htm", STOKE_FORMAT_HTML },
		{ ".txt", STOKE_FORMAT_TEXT },
		/* after .speedscope.json: any other .json is speedscope too, as
		 * with py-spy */
		{ ".json", STOKE_FORMAT_SPEEDSCOPE },
	};
	const char *base;

	if (!path)
		return -EINVAL;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!strncmp(base, "callgrind.out.", 14) && base[14]) {
		*ret = STOKE_FORMAT_CALLGRIND;
		return 0;
	}
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		if (ends_with(base, exts[i].ext)) {
			*ret = exts[i].f;
			return 0;
		}
	}
	return -EINVAL;
}

int stoke_output_write_file(const struct stoke_profile *p, enum stoke_format f,
			    const struct stoke_output_opts *opts, FILE *out)
{
	struct stoke_output_opts defaults;

	if (!p || !out || (unsigned)f >= STOKE_FORMAT_COUNT)
		return -EINVAL;
	if (!formats[f].write)
		return -EOPNOTSUPP;
	if (!opts) {
		stoke_output_opts_init(&defaults);
		opts = &defaults;
	}
	/* Every reader ranks functions, so frames are functions unless --lines
	 * asks for lines. pprof keeps the lines: it is the canonical store, and
	 * its readers have their own -lines. */
	if (!opts->lines && f != STOKE_FORMAT_PPROF) {
		struct stoke_copy_opts co = { .by_function = true };
		struct stoke_profile *fp = NULL;
		int r = stoke_profile_copy(p, &co, &fp);

		if (r == 0)
			r = formats[f].write(fp, opts, out);
		stoke_profile_free(fp);
		return r;
	}
	return formats[f].write(p, opts, out);
}

int stoke_output_write_atomic(const struct stoke_profile *p, enum stoke_format f,
			      const struct stoke_output_opts *opts, struct stoke_atomic_file *af)
{
	int r = stoke_output_write_file(p, f, opts, af->f);

	if (r < 0) {
		/* A writer says -EIO for any stream error: name the real one. */
		r = stoke_atomic_error(af, r);
		/* Removes the temporary; stdout, which cannot be taken back,
		 * gets what was written. */
		stoke_atomic_abort(af);
		return r;
	}
	return stoke_atomic_commit(af);
}

int stoke_output_write(const struct stoke_profile *p, enum stoke_format f,
		       const struct stoke_output_opts *opts, int dirfd, const char *path)
{
	struct stoke_atomic_file af;
	int r;

	if (!p || !path || (unsigned)f >= STOKE_FORMAT_COUNT)
		return -EINVAL;
	if (!formats[f].write)
		return -EOPNOTSUPP;
	r = stoke_atomic_openat(dirfd, path, &af);
	if (r < 0)
		return r;
	return stoke_output_write_atomic(p, f, opts, &af);
}
