/*
 * The HTML report writer (see html.h).
 *
 * The page is a fixed skeleton, stylesheet and script (formats/html/,
 * embedded at build time) plus the profile as one JSON document in a
 * <script type="application/json"> element, which the script draws. The
 * JSON is escaped for that place: besides JSON's own escapes, '<', '>' and
 * '&' are written as \u escapes, so no name can close the element or open
 * a comment, whatever bytes a symbol holds.
 *
 * Data: the call tree merged by name (calltree.h) as flat (parent, name,
 * inclusive, self) quadruples, parents first; and each thread's samples
 * in STOKE_HTML_BINS time bins (weight, and the leaf function with the
 * most weight in the bin) on an axis shared with the resource timeline.
 * Sample and resource times are both CLOCK_MONOTONIC nanoseconds.
 */
#include "formats/html.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/calltree.h"
#include "formats/escape.h"
#include "formats/resource.h"
#include "html_assets.h"

#define CSP "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"

static void html_sink(void *ctx, const char *s, size_t n)
{
	FILE *out = ctx;

	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '<':
			fputs("\\u003c", out);
			break;
		case '>':
			fputs("\\u003e", out);
			break;
		case '&':
			fputs("\\u0026", out);
			break;
		default:
			fputc(s[i], out);
		}
	}
}

/* A JSON string that is safe inside a <script> element. */
static void hjson(FILE *out, const char *s)
{
	stoke_json_string_to(s ? s : "", html_sink, out);
}

struct binned {
	uint32_t thread; /* position in the profile's thread table */
	uint32_t bin;
	uint32_t name;   /* the leaf's name id in the call tree */
	uint64_t weight;
};

static int cmp_binned(const void *a, const void *b)
{
	const struct binned *x = a, *y = b;

	if (x->thread != y->thread)
		return x->thread < y->thread ? -1 : 1;
	if (x->bin != y->bin)
		return x->bin < y->bin ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

struct axis {
	uint64_t t0, bin_ns;
	double span_s;
};

static void make_axis(const struct stoke_profile *p, const struct stoke_rseries *res,
		      struct axis *ax)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	uint64_t t0 = m->time_first, t1 = m->time_last;
	size_t n;

	stoke_profile_samples(p, &n);
	if (res && res->n) {
		if (!n || res->points[0].t_ns < t0)
			t0 = res->points[0].t_ns;
		if (!n || res->points[res->n - 1].t_ns > t1)
			t1 = res->points[res->n - 1].t_ns;
	}
	ax->t0 = t0;
	ax->bin_ns = (t1 - t0) / STOKE_HTML_BINS + 1;
	ax->span_s = (double)(ax->bin_ns * STOKE_HTML_BINS) / 1e9;
}

static int cmp_thread_samples(const void *a, const void *b, void *ctx)
{
	const struct stoke_pthread *th = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (th[x].samples != th[y].samples)
		return th[x].samples > th[y].samples ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Each thread with samples (the heaviest STOKE_HTML_THREADS): its weight
 * per bin and the heaviest leaf. */
static int write_threads(const struct stoke_profile *p, const struct stoke_ctree *t,
			 const uint32_t *name_map, const struct axis *ax, FILE *out)
{
	const struct stoke_pthread *th;
	const struct stoke_psample *s;
	struct binned *b;
	size_t nth, n, at = 0, nsampled = 0;
	uint32_t *rank;
	bool first = true, *keep;

	th = stoke_profile_threads(p, &nth);
	s = stoke_profile_samples(p, &n);
	b = calloc(n ? n : 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct stoke_pthread *x = stoke_profile_find_thread(p, s[i].tid);
		uint64_t off = s[i].time > ax->t0 ? s[i].time - ax->t0 : 0;

		b[i] = (struct binned){
			.thread = (uint32_t)(x - th),
			.bin = (uint32_t)STOKE_MIN(off / ax->bin_ns, (uint64_t)STOKE_HTML_BINS - 1),
			.name = name_map[t->nodes[t->stack_node[s[i].stack]].name],
			.weight = s[i].weight,
		};
	}
	qsort(b, n, sizeof(*b), cmp_binned);
	/* The STOKE_HTML_THREADS threads with the most samples (a system-wide
	 * profile may have thousands): heaviest first, ties in table order. */
	keep = calloc(nth ? nth : 1, sizeof(*keep));
	rank = calloc(nth ? nth : 1, sizeof(*rank));
	if (!keep || !rank) {
		free(keep);
		free(rank);
		free(b);
		return -ENOMEM;
	}
	for (size_t ti = 0; ti < nth; ti++)
		if (th[ti].samples)
			rank[nsampled++] = (uint32_t)ti;
	qsort_r(rank, nsampled, sizeof(*rank), cmp_thread_samples, (void *)th);
	for (size_t k = 0; k < nsampled && k < STOKE_HTML_THREADS; k++)
		keep[rank[k]] = true;
	fprintf(out, "\"nthreads\": %zu, \"threads\": [", nsampled);
	for (size_t ti = 0; ti < nth; ti++) {
		uint64_t w[STOKE_HTML_BINS] = { 0 }, best[STOKE_HTML_BINS] = { 0 };
		long top[STOKE_HTML_BINS];

		if (!keep[ti]) {
			while (at < n && b[at].thread == ti)
				at++;
			continue;
		}
		for (size_t k = 0; k < STOKE_HTML_BINS; k++)
			top[k] = -1;
		/* Runs of (bin, name): sum each run, keep the heaviest per bin. */
		while (at < n && b[at].thread == ti) {
			size_t j = at;
			uint64_t sum = 0;

			while (j < n && b[j].thread == ti && b[j].bin == b[at].bin &&
			       b[j].name == b[at].name)
				sum += b[j++].weight;
			w[b[at].bin] += sum;
			if (sum > best[b[at].bin]) {
				best[b[at].bin] = sum;
				top[b[at].bin] = (long)b[at].name;
			}
			at = j;
		}
		fprintf(out, "%s\n {\"pid\": %" PRIu32 ", \"tid\": %" PRIu32 ", \"name\": ",
			first ? "" : ",", th[ti].pid, th[ti].tid);
		hjson(out, stoke_profile_string(p, th[ti].name));
		fprintf(out, ", \"samples\": %" PRIu64 ", \"w\": [", th[ti].samples);
		for (size_t k = 0; k < STOKE_HTML_BINS; k++)
			fprintf(out, "%s%" PRIu64, k ? "," : "", w[k]);
		fputs("], \"top\": [", out);
		for (size_t k = 0; k < STOKE_HTML_BINS; k++)
			fprintf(out, "%s%ld", k ? "," : "", top[k]);
		fputs("]}", out);
		first = false;
	}
	fputs("],\n", out);
	free(keep);
	free(rank);
	free(b);
	return 0;
}

static void write_resources(const struct stoke_rseries *res, const struct axis *ax, FILE *out)
{
	struct stoke_rsummary sum;

	fputs("\"resources\": ", out);
	if (!res || !res->n) {
		fputs("null", out);
		return;
	}
	stoke_rseries_summary(res, &sum);
	fprintf(out,
		"{\"peak_rss\": %" PRIu64 ", \"mean_rss\": %" PRIu64
		", \"cpu_util\": %.4f, \"peak_cpu\": %.4f, \"t\": [",
		sum.peak_rss, sum.mean_rss, sum.mean_cpu, sum.peak_cpu);
	for (size_t i = 0; i < res->n; i++)
		fprintf(out, "%s%.4f", i ? "," : "",
			res->points[i].t_ns >= ax->t0 ? (double)(res->points[i].t_ns - ax->t0) / 1e9
						       : 0.0);
	fputs("], \"rss\": [", out);
	for (size_t i = 0; i < res->n; i++)
		fprintf(out, "%s%" PRIu64, i ? "," : "", res->points[i].rss);
	fputs("], \"cpu\": [", out);
	for (size_t i = 0; i < res->n; i++)
		fprintf(out, "%s%.4f", i ? "," : "", res->points[i].cpu);
	fputs("]}", out);
}

static int write_data(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		      const struct stoke_ctree *t, FILE *out)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	uint32_t *map = NULL, *order = NULL, *name_map = NULL, *stack = NULL;
	size_t nnames = stoke_ctree_nnames(t), sp = 0;
	struct axis ax;
	uint32_t next = 0, nused = 0;
	int r = 0;

	make_axis(p, opts->resources, &ax);
	fputs("{\"cmd\": ", out);
	hjson(out, stoke_profile_string(p, m->command));
	fputs(", \"event\": ", out);
	hjson(out, stoke_profile_string(p, m->event));
	fprintf(out,
		", \"frequency\": %" PRIu32 ", \"period_ns\": %" PRIu64 ", \"total\": %" PRIu64
		", \"lost\": %" PRIu64 ", \"duration_s\": %.3f,\n",
		m->frequency, m->period_ns, t->total, m->lost,
		m->end_ns > m->start_ns ? (double)(m->end_ns - m->start_ns) / 1e9 : 0.0);
	fprintf(out, "\"bins\": %d, \"bin_s\": %.9f, \"span_s\": %.9f,\n", STOKE_HTML_BINS,
		(double)ax.bin_ns / 1e9, ax.span_s);
	/* Nodes in depth-first order (children heaviest first, ties by
	 * name) and names in order of first use: the page is the same for the
	 * same profile whatever ids its frames and stacks had (a profile read
	 * back from pprof numbers them anew). Nodes without samples are left
	 * out. */
	order = calloc(t->nnodes, sizeof(*order));
	map = calloc(t->nnodes, sizeof(*map));
	name_map = calloc(nnames ? nnames : 1, sizeof(*name_map));
	stack = calloc(t->nnodes, sizeof(*stack));
	if (!order || !map || !name_map || !stack) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nnames; i++)
		name_map[i] = UINT32_MAX;
	stack[sp++] = 0;
	while (sp) {
		uint32_t i = stack[--sp];
		const struct stoke_ctree_node *n = &t->nodes[i];

		map[i] = next;
		order[next++] = i;
		if (name_map[n->name] == UINT32_MAX)
			name_map[n->name] = nused++;
		for (uint32_t k = n->nkids; k-- > 0;)
			if (t->nodes[t->kids[n->first_kid + k]].value)
				stack[sp++] = t->kids[n->first_kid + k];
	}
	/* stack, empty now, becomes the inverse of name_map (nused <= nodes) */
	for (uint32_t w = 0; w < nnames; w++)
		if (name_map[w] != UINT32_MAX)
			stack[name_map[w]] = w;
	fputs("\"names\": [", out);
	for (uint32_t u = 0; u < nused; u++) {
		if (u)
			fputc(',', out);
		hjson(out, stoke_profile_string(t->names, stack[u]));
	}
	fputs("],\n\"nodes\": [", out);
	for (uint32_t j = 0; j < next; j++) {
		const struct stoke_ctree_node *n = &t->nodes[order[j]];

		fprintf(out, "%s%" PRIu32 ",%" PRIu32 ",%" PRIu64 ",%" PRIu64 "%s", j ? "," : "",
			map[n->parent], name_map[n->name], n->value, n->self,
			(j + 1) % 16 ? "" : "\n");
	}
	fputs("],\n", out);
	r = write_threads(p, t, name_map, &ax, out);
	if (r < 0)
		goto out;
	write_resources(opts->resources, &ax, out);
	fputs("}", out);
out:
	free(order);
	free(map);
	free(name_map);
	free(stack);
	return r;
}

int stoke_html_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	const char *cmd = stoke_profile_string(p, m->command);
	struct stoke_ctree *t = NULL;
	int r;

	r = stoke_ctree_build(p, &t);
	if (r < 0)
		return r;
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"" CSP "\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width\">\n<title>stoke: ",
	      out);
	stoke_xml_text(out, cmd && *cmd ? cmd : "profile");
	fputs("</title>\n<style>\n", out);
	fputs(stoke_html_css, out);
	fputs("</style>\n</head>\n<body>\n", out);
	fputs(stoke_html_body, out);
	fputs("<script type=\"application/json\" id=\"stoke-data\">", out);
	r = write_data(p, opts, t, out);
	fputs("</script>\n<script>\n", out);
	fputs(stoke_html_js, out);
	fputs("</script>\n</body>\n</html>\n", out);
	stoke_ctree_free(t);
	if (r == 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
	return r;
}
