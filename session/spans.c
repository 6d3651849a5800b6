/*
 * Per-thread stacks of open spans (see spans.h). Names and metadata of open
 * spans are kept as copies: the profile they end in may be a later one
 * than the one they began in (stoked's rotation).
 */
#include "session/spans.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/spans.h"

/* Nesting deeper than this on one thread is counted, not kept. */
#define MAX_DEPTH 64

struct open_span {
	char *name;
	char *meta;
	uint64_t begin;
};

struct thread_spans {
	uint32_t tid;
	uint32_t depth;
	struct open_span open[MAX_DEPTH];
};

struct stoke_span_tracker {
	struct thread_spans *threads;
	size_t n, cap;
	uint64_t overflow; /* begins past MAX_DEPTH, and their ends */
};

void stoke_span_tracker_free(struct stoke_span_tracker *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		for (uint32_t d = 0; d < t->threads[i].depth; d++) {
			free(t->threads[i].open[d].name);
			free(t->threads[i].open[d].meta);
		}
	free(t->threads);
	free(t);
}

static struct thread_spans *thread(struct stoke_span_tracker *t, uint32_t tid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->threads[i].tid == tid)
			return &t->threads[i];
	if (STOKE_GROW(t->threads, t->cap, t->n + 1) < 0)
		return NULL;
	memset(&t->threads[t->n], 0, sizeof(t->threads[t->n]));
	t->threads[t->n].tid = tid;
	return &t->threads[t->n++];
}

/* "k=v\0k=v\0" → "k=v\nk=v" (newlines inside a string become spaces). */
static char *meta_text(const char *m, size_t len)
{
	char *s = malloc(len + 1);
	size_t n = len;

	if (!s)
		return NULL;
	memcpy(s, m, len);
	while (n && s[n - 1] == '\0')
		n--;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0')
			s[i] = '\n';
		else if (s[i] == '\n')
			s[i] = ' ';
	s[n] = '\0';
	return s;
}

int stoke_span_tracker_event(struct stoke_span_tracker **tp, struct stoke_profile *p,
			     const struct stoke_span_event *ev)
{
	struct stoke_span_tracker *t = *tp;
	struct thread_spans *th;
	struct stoke_pspan sp = { 0 };
	uint32_t d, unmatched = 0;
	int r;

	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		*tp = t;
	}
	th = thread(t, ev->tid);
	if (!th)
		return -ENOMEM;
	if (ev->begin) {
		struct open_span *o;

		if (th->depth == MAX_DEPTH)
			return stoke_profile_spans_unmatched(p, 1);
		o = &th->open[th->depth];
		o->name = strdup(ev->name);
		o->meta = meta_text(ev->meta, ev->meta_len);
		if (!o->name || !o->meta) {
			free(o->name);
			free(o->meta);
			return -ENOMEM;
		}
		o->begin = ev->time;
		th->depth++;
		return 0;
	}
	for (d = th->depth; d > 0; d--)
		if (!strcmp(th->open[d - 1].name, ev->name))
			break;
	if (d == 0)
		return stoke_profile_spans_unmatched(p, 1);
	/* Spans begun inside it and never ended. */
	while (th->depth > d) {
		th->depth--;
		free(th->open[th->depth].name);
		free(th->open[th->depth].meta);
		unmatched++;
	}
	th->depth--;
	sp.tid = ev->tid;
	sp.depth = th->depth;
	sp.begin = th->open[th->depth].begin;
	sp.end = ev->time < sp.begin ? sp.begin : ev->time;
	r = stoke_profile_intern(p, th->open[th->depth].name, &sp.name);
	if (r == 0 && th->depth)
		r = stoke_profile_intern(p, th->open[th->depth - 1].name, &sp.parent);
	if (r == 0)
		r = stoke_profile_intern(p, th->open[th->depth].meta, &sp.meta);
	free(th->open[th->depth].name);
	free(th->open[th->depth].meta);
	if (r == 0)
		r = stoke_profile_add_span(p, &sp);
	if (r == 0 && unmatched)
		r = stoke_profile_spans_unmatched(p, unmatched);
	return r;
}

int stoke_span_tracker_finish(struct stoke_span_tracker *t, struct stoke_profile *p)
{
	uint64_t open = 0;

	if (!t)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		open += t->threads[i].depth;
		for (uint32_t d = 0; d < t->threads[i].depth; d++) {
			free(t->threads[i].open[d].name);
			free(t->threads[i].open[d].meta);
		}
		t->threads[i].depth = 0;
	}
	return open ? stoke_profile_spans_unmatched(p, open) : 0;
}
