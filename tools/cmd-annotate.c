/*
 * `stoke annotate INPUT FUNCTION`: the function's source with per-line
 * sample counts, where the source file is readable; the per-line counts
 * alone where it is not.
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
#include "common/log.h"

/* Lines of context shown around the sampled lines. */
#define CONTEXT 3

static void usage(FILE *f)
{
	fputs("usage: stoke annotate INPUT FUNCTION\n"
	      "\n"
	      "Print FUNCTION's source lines with the samples that landed on each\n"
	      "(self: the function was the leaf; total: anywhere in the stack).\n",
	      f);
}

static void count_cols(const struct stoke_line_stat *l, uint64_t total)
{
	if (l && (l->self || l->total))
		printf("%8" PRIu64 " %6.1f%% %8" PRIu64 "  ", l->self, stoke_pct(l->self, total), l->total);
	else
		printf("%8s %7s %8s  ", "", "", "");
}

/* Print one file's lines [first, last] with counts from lines[0..n). */
static int print_source(const char *file, const struct stoke_line_stat *lines, size_t n,
			uint64_t total)
{
	uint32_t first = lines[0].line > CONTEXT ? lines[0].line - CONTEXT : 1;
	uint32_t last = lines[n - 1].line + CONTEXT, no = 0;
	FILE *f = fopen(file, "re");
	char *buf = NULL;
	size_t cap = 0, k = 0;

	if (!f)
		return -errno;
	while (getline(&buf, &cap, f) >= 0 && ++no <= last) {
		if (no < first)
			continue;
		while (k < n && lines[k].line < no)
			k++;
		count_cols(k < n && lines[k].line == no ? &lines[k] : NULL, total);
		printf("%6u  %s", no, buf);
		if (!strchr(buf, '\n'))
			putchar('\n');
	}
	free(buf);
	fclose(f);
	return 0;
}

static void print_counts_only(const struct stoke_line_stat *lines, size_t n, uint64_t total)
{
	for (size_t i = 0; i < n; i++) {
		count_cols(&lines[i], total);
		printf("%6u\n", lines[i].line);
	}
}

/* Lines come sorted by file then line: print each file's run. */
static void annotate(const struct stoke_line_stat *lines, size_t n, uint64_t total)
{
	for (size_t i = 0; i < n;) {
		const char *file = lines[i].file ? lines[i].file : "";
		size_t j = i;

		while (j < n && !strcmp(lines[j].file ? lines[j].file : "", file))
			j++;
		printf("\n%s\n%8s %7s %8s  %6s\n", *file ? file : "(unknown file)", "self", "self%",
		       "total", "line");
		int r = *file ? print_source(file, lines + i, j - i, total) : -ENOENT;

		if (r < 0) {
			if (*file)
				printf("(source not readable: %s)\n", strerror(-r));
			print_counts_only(lines + i, j - i, total);
		}
		i = j;
	}
}

int cmd_annotate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct stoke_profile *p = NULL;
	struct stoke_line_stat *lines = NULL;
	const char *err = NULL;
	uint64_t self = 0, total;
	long n;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		return cli_usage_error("annotate", "unknown option '%s'", argv[optind - 1]);
	}
	if (optind + 2 != argc)
		return cli_usage_error("annotate", "%s", "give INPUT and FUNCTION");
	if (stoke_profile_load(argv[optind], &p, &err) < 0) {
		log_error("cannot read '%s': %s", argv[optind], err);
		return 1;
	}
	total = stoke_profile_total(p);
	n = stoke_analysis_lines(p, argv[optind + 1], &lines);
	if (n < 0) {
		log_error("out of memory");
		stoke_profile_free(p);
		return 1;
	}
	if (n == 0) {
		log_error("no line information for '%s' in %s (is the name right? see 'stoke top')",
			  argv[optind + 1], argv[optind]);
		free(lines);
		stoke_profile_free(p);
		return 1;
	}
	for (long i = 0; i < n; i++)
		self += lines[i].self;
	printf("%s: %" PRIu64 " samples self (%.1f%% of %" PRIu64 ")\n", argv[optind + 1], self,
	       stoke_pct(self, total), total);
	annotate(lines, (size_t)n, total);
	free(lines);
	stoke_profile_free(p);
	return 0;
}
