/*
 * `stoke top INPUT [-n N] [--by self|total]`: the hottest functions of a
 * stored profile, with their main callers and callees.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/analysis.h"
#include "tools/cli.h"
#include "formats/load.h"
#include "formats/resource.h"
#include "common/log.h"

#define TOP_NEIGHBOURS 3

static void usage(FILE *f)
{
	fputs("usage: stoke top INPUT [-n N] [--by self|total]\n"
	      "\n"
	      "The hottest functions of a stored profile (profile.pb.gz or a run\n"
	      "directory), with their main callers and callees.\n"
	      "\n"
	      "  -n, --count N      functions to show (default 20)\n"
	      "      --by KEY       rank by self (default) or total time\n",
	      f);
}

/* Print up to TOP_NEIGHBOURS callers (or callees) of function fn with their
 * share of fn's total. Edges are sorted by caller, heaviest first. */
static void neighbours(const struct stoke_analysis *a, uint32_t fn, bool callers)
{
	struct { uint32_t other; uint64_t w; } best[TOP_NEIGHBOURS];
	size_t nbest = 0;

	for (size_t i = 0; i < a->nedges; i++) {
		const struct stoke_func_edge *e = &a->edges[i];
		uint32_t self = callers ? e->callee : e->caller;
		uint32_t other = callers ? e->caller : e->callee;
		size_t j;

		if (self != fn || other == fn)
			continue;
		/* Keep the heaviest few: insertion into a tiny sorted array. */
		for (j = nbest; j > 0 && best[j - 1].w < e->weight; j--)
			if (j < TOP_NEIGHBOURS)
				best[j] = best[j - 1];
		if (j < TOP_NEIGHBOURS) {
			best[j].other = other;
			best[j].w = e->weight;
			if (nbest < TOP_NEIGHBOURS)
				nbest++;
		}
	}
	if (!nbest)
		return;
	printf("          %s ", callers ? "callers:" : "callees:");
	for (size_t j = 0; j < nbest; j++)
		printf("%s%s %.1f%%", j ? ", " : "", a->funcs[best[j].other].name,
		       stoke_pct(best[j].w, a->funcs[fn].total));
	putchar('\n');
}

/* A run directory's resource timeline, summed up (nothing without one). */
static void resources_line(const char *input)
{
	struct stoke_rseries rs = { 0 };
	struct stoke_rsummary sum;
	const char *err;

	if (cli_load_resources(input, &rs, &err) <= 0)
		return;
	stoke_rseries_summary(&rs, &sum);
	printf("resources: peak RSS %.1f MB, mean RSS %.1f MB, CPU %.0f%% of a core (peak %.0f%%)\n",
	       (double)sum.peak_rss / (1 << 20), (double)sum.mean_rss / (1 << 20),
	       100 * sum.mean_cpu, 100 * sum.peak_cpu);
	stoke_rseries_free(&rs);
}

static void header(const char *input, const struct stoke_profile *p,
		   const struct stoke_analysis *a)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	const char *event = stoke_profile_string(p, m->event);
	double dur = m->end_ns > m->start_ns ? (double)(m->end_ns - m->start_ns) / 1e9 : 0;
	char rate[64] = "";
	size_t nthreads;

	stoke_profile_threads(p, &nthreads);
	/* Profiles from other tools (Go's pprof) may carry only a period, or
	 * no rate and event at all: print what is known, never "0 Hz ?". */
	if (m->frequency)
		snprintf(rate, sizeof(rate), ", %u Hz", m->frequency);
	else if (m->period_ns)
		snprintf(rate, sizeof(rate), ", every %.3g ms", (double)m->period_ns / 1e6);
	printf("%s\n", input);
	printf("samples %" PRIu64 " (%zu thread%s), duration %.2f s%s%s%s, lost %" PRIu64
	       ", unwind failures %" PRIu64 ", truncated %" PRIu64 "\n",
	       a->total, nthreads, nthreads == 1 ? "" : "s", dur, rate, event && *event ? " " : "",
	       event && *event ? event : "", m->lost, a->unwind_failed, a->truncated);
	resources_line(input);
	putchar('\n');
}

int cmd_top(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "by", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct stoke_profile *p = NULL;
	struct stoke_analysis *a = NULL;
	const char *err = NULL;
	uint32_t *order = NULL;
	bool by_total = false;
	long count = 20;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count < 1)
				return cli_usage_error("top", "invalid count '%s'", optarg);
			break;
		case 'b':
			if (!strcmp(optarg, "self"))
				by_total = false;
			else if (!strcmp(optarg, "total"))
				by_total = true;
			else
				return cli_usage_error("top", "--by takes self or total, not '%s'",
						       optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_usage_error("top", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("top", "%s", "give exactly one INPUT");
	r = stoke_profile_load(argv[optind], &p, &err);
	if (r < 0) {
		log_error("cannot read '%s': %s", argv[optind], err);
		return 1;
	}
	r = stoke_analysis_new(p, &a);
	order = r == 0 ? calloc(a->nfuncs + 1, sizeof(*order)) : NULL;
	if (!order) {
		log_error("out of memory");
		stoke_analysis_free(a);
		stoke_profile_free(p);
		return 1;
	}
	stoke_analysis_sort(a, by_total, order);
	header(argv[optind], p, a);
	/* The count column is whichever the ranking is by: say which. */
	printf("%5s %7s %7s %9s  %-40s %s\n", "rank", "self%", "total%",
	       by_total ? "total-n" : "self-n", "function", "location");
	for (size_t i = 0; i < a->nfuncs && i < (size_t)count; i++) {
		const struct stoke_func_stat *f = &a->funcs[order[i]];
		char loc[512] = "";

		if (f->file && f->line)
			snprintf(loc, sizeof(loc), "%s:%u", f->file, f->line);
		printf("%5zu %6.1f%% %6.1f%% %9" PRIu64 "  %-40s %s\n", i + 1, stoke_pct(f->self, a->total),
		       stoke_pct(f->total, a->total), by_total ? f->total : f->self, f->name, loc);
		neighbours(a, order[i], true);
		neighbours(a, order[i], false);
	}
	free(order);
	stoke_analysis_free(a);
	stoke_profile_free(p);
	return 0;
}
