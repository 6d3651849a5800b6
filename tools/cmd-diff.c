/*
 * `stoke diff BASE NEW [-o diff.svg] [--max-regression POINTS] [-n N]`:
 * per-function change between two stored profiles, a differential
 * flamegraph, and a regression gate for CI (exit 3).
 *
 * Shares are compared, not sample counts, so profiles of different lengths
 * compare fairly. Functions are matched by name.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/analysis.h"
#include "tools/cli.h"
#include "formats/load.h"
#include "common/log.h"
#include "common/atomicfile.h"
#include "formats/output.h"
#include "formats/svg.h"
#include "tools/diff-spans.h"

#define EXIT_REGRESSION 3

static void usage(FILE *f)
{
	fputs("usage: stoke diff BASE NEW [-o diff.svg] [--max-regression POINTS] [-n N]\n"
	      "\n"
	      "Compare two stored profiles (profile.pb.gz or run directories) by\n"
	      "function: self and total share in each, the change in percentage\n"
	      "points and the relative change, largest change first.\n"
	      "\n"
	      "  -o, --output FILE         write a differential flamegraph (SVG) laid\n"
	      "                            out by NEW: red grew, blue shrank\n"
	      "      --max-regression P    exit 3 when a function's self share grew\n"
	      "                            by more than P points (a CI gate)\n"
	      "  -n, --count N             rows to show (default 20)\n"
	      "      --by-span             compare each span's mean duration instead\n"
	      "                            (run directories or run.json files); with\n"
	      "                            --max-regression P, exit 3 when a span's mean\n"
	      "                            grew by more than P percent\n",
	      f);
}

static double row_key(const struct diff_row *r)
{
	return fabs(r->self_new - r->self_base) * 1e6 + fabs(r->total_new - r->total_base);
}

static int row_cmp(const void *x, const void *y)
{
	const struct diff_row *a = x, *b = y;
	double ka = row_key(a), kb = row_key(b);

	if (ka != kb)
		return ka > kb ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* One row per function present in either profile (also the rows of stoke
 * serve's comparison page). */
struct diff_row *diff_build_rows(const struct stoke_analysis *base,
				 const struct stoke_analysis *new, size_t *ret_n)
{
	struct diff_row *rows = calloc(base->nfuncs + new->nfuncs + 1, sizeof(*rows));
	size_t n = 0;

	if (!rows)
		return NULL;
	for (size_t i = 0; i < new->nfuncs; i++) {
		const struct stoke_func_stat *f = &new->funcs[i];
		long j = stoke_analysis_find(base, f->name);

		rows[n++] = (struct diff_row){
			.name = f->name,
			.self_new = stoke_pct(f->self, new->total),
			.total_new = stoke_pct(f->total, new->total),
			.self_base = j >= 0 ? stoke_pct(base->funcs[j].self, base->total) : 0,
			.total_base = j >= 0 ? stoke_pct(base->funcs[j].total, base->total) : 0,
		};
	}
	for (size_t i = 0; i < base->nfuncs; i++) {
		const struct stoke_func_stat *f = &base->funcs[i];

		if (stoke_analysis_find(new, f->name) >= 0)
			continue;
		rows[n++] = (struct diff_row){
			.name = f->name,
			.self_base = stoke_pct(f->self, base->total),
			.total_base = stoke_pct(f->total, base->total),
		};
	}
	qsort(rows, n, sizeof(*rows), row_cmp);
	*ret_n = n;
	return rows;
}

static void print_rows(const struct diff_row *rows, size_t n, long count)
{
	printf("%-40s %9s %9s %8s %9s %9s %8s %9s\n", "function", "self base", "self new", "Δself",
	       "total base", "total new", "Δtotal", "relative");
	for (size_t i = 0; i < n && i < (size_t)count; i++) {
		const struct diff_row *r = &rows[i];
		char rel[32];

		if (r->self_base > 0)
			snprintf(rel, sizeof(rel), "%+.1f%%",
				 100.0 * (r->self_new - r->self_base) / r->self_base);
		else
			snprintf(rel, sizeof(rel), "%s", r->self_new > 0 ? "new" : "-");
		printf("%-40s %8.1f%% %8.1f%% %+8.1f %8.1f%% %8.1f%% %+8.1f %9s\n", r->name,
		       r->self_base, r->self_new, r->self_new - r->self_base, r->total_base,
		       r->total_new, r->total_new - r->total_base, rel);
	}
}

/* The gate: list every function whose self share grew by more than max
 * points. Returns the number of offenders. */
static size_t gate(const struct diff_row *rows, size_t n, double max)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		double d = rows[i].self_new - rows[i].self_base;

		if (d > max) {
			fprintf(stderr,
				"stoke: regression: %s self %.1f%% -> %.1f%% (%+.1f points > %.1f)\n",
				rows[i].name, rows[i].self_base, rows[i].self_new, d, max);
			bad++;
		}
	}
	return bad;
}

static int write_svg(const struct stoke_profile *base, const struct stoke_profile *new,
		     const char *path)
{
	struct stoke_output_opts opts;
	struct stoke_atomic_file af;
	int r;

	stoke_output_opts_init(&opts);
	opts.title = "Differential Flame Graph (red: grew, blue: shrank)";
	r = stoke_atomic_open(path, &af);
	if (r == 0) {
		r = stoke_svg_write_diff(base, new, &opts, af.f);
		if (r < 0)
			stoke_atomic_abort(&af);
		else
			r = stoke_atomic_commit(&af);
	}
	if (r < 0)
		log_error("cannot write '%s': %s", path, stoke_atomic_strerror(r));
	return r;
}

static int load(const char *path, struct stoke_profile **p, struct stoke_analysis **a)
{
	const char *err = NULL;

	if (stoke_profile_load(path, p, &err) < 0) {
		log_error("cannot read '%s': %s", path, err);
		return -1;
	}
	if (stoke_analysis_new(*p, a) < 0) {
		log_error("out of memory");
		return -1;
	}
	return 0;
}

int cmd_diff(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "max-regression", required_argument, NULL, 'm' },
		{ "count", required_argument, NULL, 'n' },
		{ "by-span", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct stoke_profile *pb = NULL, *pn = NULL;
	struct stoke_analysis *ab = NULL, *an = NULL;
	struct diff_row *rows = NULL;
	const char *output = NULL;
	double max_reg = -1;
	long count = 20;
	size_t n = 0;
	int c, code = 1;
	bool by_span = false;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:n:h", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'm':
			errno = 0;
			max_reg = strtod(optarg, &end);
			if (errno || *end || !(max_reg >= 0) || !isfinite(max_reg))
				return cli_usage_error("diff", "invalid --max-regression '%s'",
						       optarg);
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count < 1)
				return cli_usage_error("diff", "invalid count '%s'", optarg);
			break;
		case 'S':
			by_span = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_usage_error("diff", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 2 != argc)
		return cli_usage_error("diff", "%s", "give BASE and NEW");
	if (by_span)
		return diff_by_span(argv[optind], argv[optind + 1], max_reg);
	if (load(argv[optind], &pb, &ab) < 0 || load(argv[optind + 1], &pn, &an) < 0)
		goto out;
	rows = diff_build_rows(ab, an, &n);
	if (!rows) {
		log_error("out of memory");
		goto out;
	}
	printf("base: %s (%llu samples)\nnew:  %s (%llu samples)\n\n", argv[optind],
	       (unsigned long long)ab->total, argv[optind + 1], (unsigned long long)an->total);
	print_rows(rows, n, count);
	if (output && write_svg(pb, pn, output) < 0)
		goto out;
	code = 0;
	if (max_reg >= 0 && gate(rows, n, max_reg) > 0)
		code = EXIT_REGRESSION;
out:
	free(rows);
	stoke_analysis_free(ab);
	stoke_analysis_free(an);
	stoke_profile_free(pb);
	stoke_profile_free(pn);
	return code;
}
