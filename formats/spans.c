/*
 * Spans in a profile: the table, per-name statistics, sample tagging and the
 * run.json and text views (see spans.h).
 */
#include "formats/spans.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/escape.h"

void stoke_pspans_free(struct stoke_pspans *t)
{
	if (!t)
		return;
	free(t->spans);
	free(t->tags);
	free(t);
}

static struct stoke_pspans *table(struct stoke_profile *p)
{
	struct stoke_pspans *t = stoke_profile_get_spans(p);

	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (t)
		stoke_profile_set_spans(p, t);
	return t;
}

int stoke_profile_add_span(struct stoke_profile *p, const struct stoke_pspan *s)
{
	struct stoke_pspans *t;

	if (s->end < s->begin || s->name >= stoke_profile_nstrings(p) ||
	    s->meta >= stoke_profile_nstrings(p) || s->parent >= stoke_profile_nstrings(p))
		return -EINVAL;
	t = table(p);
	if (!t || STOKE_GROW(t->spans, t->cap, t->n + 1) < 0)
		return -ENOMEM;
	t->spans[t->n++] = *s;
	return 0;
}

const struct stoke_pspan *stoke_profile_spans(const struct stoke_profile *p, size_t *ret_n)
{
	const struct stoke_pspans *t = stoke_profile_get_spans(p);

	*ret_n = t ? t->n : 0;
	return t ? t->spans : NULL;
}

int stoke_profile_spans_unmatched(struct stoke_profile *p, uint64_t n)
{
	struct stoke_pspans *t = table(p);

	if (!t)
		return -ENOMEM;
	t->unmatched += n;
	return 0;
}

uint64_t stoke_profile_spans_get_unmatched(const struct stoke_profile *p)
{
	const struct stoke_pspans *t = stoke_profile_get_spans(p);

	return t ? t->unmatched : 0;
}

int stoke_profile_spans_set_lost(struct stoke_profile *p, uint64_t n)
{
	struct stoke_pspans *t = table(p);

	if (!t)
		return -ENOMEM;
	t->lost = n;
	return 0;
}

uint64_t stoke_profile_spans_get_lost(const struct stoke_profile *p)
{
	const struct stoke_pspans *t = stoke_profile_get_spans(p);

	return t ? t->lost : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static uint64_t percentile(const uint64_t *v, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

/* Span indexes sorted by (tid, begin, depth); qsort_r's context is the
 * span array (stoked and stoke serve sort on several threads at once). */
static int cmp_span(const void *a, const void *b, void *ctx)
{
	const struct stoke_pspan *base = ctx;
	const struct stoke_pspan *x = &base[*(const uint32_t *)a];
	const struct stoke_pspan *y = &base[*(const uint32_t *)b];

	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->depth < y->depth ? -1 : x->depth > y->depth;
}

int stoke_profile_set_sample_span(struct stoke_profile *p, size_t i, uint32_t name)
{
	struct stoke_pspans *t = table(p);

	if (!t || STOKE_GROW(t->tags, t->tags_cap, i + 1) < 0)
		return -ENOMEM;
	if (name >= stoke_profile_nstrings(p))
		return -EINVAL;
	for (; t->ntags <= i; t->ntags++)
		t->tags[t->ntags] = 0;
	t->tags[i] = name;
	return 0;
}

int stoke_span_sample_names(const struct stoke_profile *p, uint32_t **ret)
{
	size_t ns, nsp;
	const struct stoke_psample *samples = stoke_profile_samples(p, &ns);
	const struct stoke_pspan *spans = stoke_profile_spans(p, &nsp);
	const struct stoke_pspans *t = stoke_profile_get_spans(p);
	uint32_t *out, *order;

	*ret = NULL;
	if (!ns)
		return 0;
	out = calloc(ns, sizeof(*out));
	if (!out)
		return -ENOMEM;
	if (t && t->ntags) {
		memcpy(out, t->tags, (t->ntags < ns ? t->ntags : ns) * sizeof(*out));
		*ret = out;
		return 0;
	}
	if (!nsp) {
		*ret = out;
		return 0;
	}
	order = malloc(nsp * sizeof(*order));
	if (!order) {
		free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nsp; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, nsp, sizeof(*order), cmp_span, (void *)spans);
	for (size_t i = 0; i < ns; i++) {
		const struct stoke_psample *s = &samples[i];
		size_t lo = 0, hi = nsp;
		uint32_t best_depth = 0;

		/* The last span of the thread beginning at or before the
		 * sample, then back over earlier ones: the innermost open one
		 * is the deepest containing it. Spans of depth 0 follow each
		 * other on a thread, so the walk ends at the first one. */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct stoke_pspan *m = &spans[order[mid]];

			if (m->tid < s->tid || (m->tid == s->tid && m->begin <= s->time))
				lo = mid + 1;
			else
				hi = mid;
		}
		while (lo-- > 0) {
			const struct stoke_pspan *c = &spans[order[lo]];

			if (c->tid != s->tid)
				break;
			if (s->time < c->end && (!out[i] || c->depth > best_depth)) {
				out[i] = c->name;
				best_depth = c->depth;
			}
			if (c->depth == 0)
				break;
		}
	}
	free(order);
	*ret = out;
	return 0;
}

int stoke_span_filter(const struct stoke_profile *p, const char *name,
		      struct stoke_profile **ret)
{
	struct stoke_copy_opts o = { 0 };
	uint32_t *tags = NULL;
	uint8_t *keep = NULL;
	size_t ns, kept = 0;
	int r;

	stoke_profile_samples(p, &ns);
	r = stoke_span_sample_names(p, &tags);
	if (r < 0)
		return r;
	keep = calloc(ns + 1, 1);
	if (!keep) {
		free(tags);
		return -ENOMEM;
	}
	for (size_t i = 0; tags && i < ns; i++)
		if (tags[i] && !strcmp(stoke_profile_string(p, tags[i]), name))
			kept += keep[i] = 1;
	free(tags);
	if (!kept) {
		free(keep);
		return -ENOENT;
	}
	o.keep = keep;
	r = stoke_profile_copy(p, &o, ret);
	free(keep);
	return r;
}

struct name_acc {
	uint32_t name, parent;
	uint64_t *durs;
	size_t n, cap;
	uint64_t samples;
};

static int cmp_stat(const void *a, const void *b)
{
	const struct stoke_span_stat *x = a, *y = b;

	if (x->total_ns != y->total_ns)
		return x->total_ns > y->total_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

int stoke_span_stats(const struct stoke_profile *p, struct stoke_span_stat **ret, size_t *ret_n)
{
	size_t nsp, ns, nacc = 0, acc_cap = 0;
	const struct stoke_pspan *spans = stoke_profile_spans(p, &nsp);
	const struct stoke_psample *samples = stoke_profile_samples(p, &ns);
	struct name_acc *acc = NULL;
	struct stoke_span_stat *st = NULL;
	uint32_t *tags = NULL;
	int r = -ENOMEM;

	*ret = NULL;
	*ret_n = 0;
	if (!nsp)
		return 0;
	for (size_t i = 0; i < nsp; i++) {
		size_t j;

		for (j = 0; j < nacc && acc[j].name != spans[i].name; j++)
			;
		if (j == nacc) {
			if (STOKE_GROW(acc, acc_cap, nacc + 1) < 0)
				goto out;
			memset(&acc[nacc], 0, sizeof(acc[nacc]));
			acc[nacc].parent = spans[i].parent;
			acc[nacc++].name = spans[i].name;
		}
		if (STOKE_GROW(acc[j].durs, acc[j].cap, acc[j].n + 1) < 0)
			goto out;
		acc[j].durs[acc[j].n++] = spans[i].end - spans[i].begin;
	}
	if (stoke_span_sample_names(p, &tags) < 0)
		goto out;
	for (size_t i = 0; i < ns; i++)
		for (size_t j = 0; tags[i] && j < nacc; j++)
			if (acc[j].name == tags[i])
				acc[j].samples += samples[i].weight;
	st = calloc(nacc, sizeof(*st));
	if (!st)
		goto out;
	for (size_t j = 0; j < nacc; j++) {
		struct stoke_span_stat *o = &st[j];

		qsort(acc[j].durs, acc[j].n, sizeof(uint64_t), cmp_u64);
		o->name = stoke_profile_string(p, acc[j].name);
		o->parent = acc[j].parent ? stoke_profile_string(p, acc[j].parent) : NULL;
		o->count = acc[j].n;
		for (size_t k = 0; k < acc[j].n; k++)
			o->total_ns += acc[j].durs[k];
		o->mean_ns = o->total_ns / o->count;
		o->p50_ns = percentile(acc[j].durs, acc[j].n, 50);
		o->p95_ns = percentile(acc[j].durs, acc[j].n, 95);
		o->max_ns = acc[j].durs[acc[j].n - 1];
		o->samples = acc[j].samples;
	}
	qsort(st, nacc, sizeof(*st), cmp_stat);
	*ret = st;
	*ret_n = nacc;
	r = 0;
out:
	for (size_t j = 0; j < nacc; j++)
		free(acc[j].durs);
	free(acc);
	free(tags);
	return r;
}

int stoke_spans_json(const struct stoke_profile *p, FILE *out)
{
	_cleanup_free_ struct stoke_span_stat *st = NULL;
	size_t n;
	int r = stoke_span_stats(p, &st, &n);

	if (r < 0)
		return r;
	if (!n) {
		fprintf(out, "null,\n  \"span_events_lost\": %" PRIu64,
			stoke_profile_spans_get_lost(p));
		return 0;
	}
	fputs("[", out);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", out);
		stoke_json_string(out, st[i].name);
		fputs(", \"parent\": ", out);
		if (st[i].parent)
			stoke_json_string(out, st[i].parent);
		else
			fputs("null", out);
		fprintf(out,
			", \"count\": %" PRIu64 ", \"total_ns\": %" PRIu64 ", \"mean_ns\": %" PRIu64
			", \"p50_ns\": %" PRIu64 ", \"p95_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64
			", \"samples\": %" PRIu64 "}",
			st[i].count, st[i].total_ns, st[i].mean_ns, st[i].p50_ns, st[i].p95_ns,
			st[i].max_ns, st[i].samples);
	}
	fprintf(out, "\n  ],\n  \"span_events_lost\": %" PRIu64, stoke_profile_spans_get_lost(p));
	return 0;
}

static void fmt_dur(uint64_t ns, char *buf, size_t size)
{
	if (ns >= 1000000000ULL)
		snprintf(buf, size, "%.3f s", (double)ns / 1e9);
	else if (ns >= 1000000ULL)
		snprintf(buf, size, "%.3f ms", (double)ns / 1e6);
	else
		snprintf(buf, size, "%.3f us", (double)ns / 1e3);
}

int stoke_spans_text(const struct stoke_profile *p, FILE *out)
{
	_cleanup_free_ struct stoke_span_stat *st = NULL;
	size_t n;
	int r = stoke_span_stats(p, &st, &n);
	uint64_t unmatched = stoke_profile_spans_get_unmatched(p);
	uint64_t lost = stoke_profile_spans_get_lost(p);

	if (r < 0)
		return r;
	if (!n && !unmatched && !lost)
		return 0;
	fprintf(out, "\nspans:\n%-24s %8s %12s %12s %12s %12s %12s %8s\n", "span", "count",
		"total", "mean", "p50", "p95", "max", "samples");
	for (size_t i = 0; i < n; i++) {
		char t[32], m[32], a[32], b[32], c[32];

		fmt_dur(st[i].total_ns, t, sizeof(t));
		fmt_dur(st[i].mean_ns, m, sizeof(m));
		fmt_dur(st[i].p50_ns, a, sizeof(a));
		fmt_dur(st[i].p95_ns, b, sizeof(b));
		fmt_dur(st[i].max_ns, c, sizeof(c));
		fprintf(out, "%-24s %8" PRIu64 " %12s %12s %12s %12s %12s %8" PRIu64 "\n",
			st[i].name, st[i].count, t, m, a, b, c, st[i].samples);
	}
	if (unmatched)
		fprintf(out, "(%" PRIu64 " span events made no span: unmatched ends, or spans "
			     "open at the end)\n",
			unmatched);
	if (lost)
		fprintf(out, "(%" PRIu64 " span events lost before they were read: these "
			     "statistics miss them)\n",
			lost);
	return 0;
}
