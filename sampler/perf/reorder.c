/*
 * Cross-ring reordering (see reorder.h): an arena of record copies and a
 * queue of (time, push order, place) sorted at the end of each round.
 */
#include "sampler/perf/reorder.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void stoke_reorder_init(struct stoke_reorder *q, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	q->max_bytes = max_bytes;
}

void stoke_reorder_exit(struct stoke_reorder *q)
{
	free(q->arena);
	free(q->queue);
	memset(q, 0, sizeof(*q));
}

int stoke_reorder_push(struct stoke_reorder *q, uint64_t time, const void *data, size_t len)
{
	size_t room = (len + 7) & ~(size_t)7;
	struct stoke_reorder_entry *e;

	if (STOKE_GROW(q->arena, q->arena_cap, q->arena_len + room) < 0 ||
	    STOKE_GROW(q->queue, q->queue_cap, q->nqueue + 1) < 0)
		return -ENOMEM;
	e = &q->queue[q->nqueue++];
	e->time = time;
	e->seq = q->seq++;
	e->off = q->arena_len;
	e->len = len;
	/* Every copy starts 8-byte aligned in a malloc'd arena, so a decoder's
	 * borrowed u64 arrays stay aligned. */
	memcpy(q->arena + q->arena_len, data, len);
	q->arena_len += room;
	if (time > q->max_time)
		q->max_time = time;
	return 0;
}

static int time_cmp(const void *a, const void *b)
{
	const struct stoke_reorder_entry *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int off_cmp(const void *a, const void *b)
{
	const struct stoke_reorder_entry *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Deliver the records stamped at or before limit, in order, and keep the
 * rest (compacting the arena). */
static int deliver(struct stoke_reorder *q, uint64_t limit, stoke_reorder_cb cb, void *userdata)
{
	size_t i, keep_bytes = 0, n;
	int r = 0;

	if (!q->nqueue)
		return 0;
	qsort(q->queue, q->nqueue, sizeof(*q->queue), time_cmp);
	for (i = 0; i < q->nqueue && q->queue[i].time <= limit; i++) {
		r = cb(q->arena + q->queue[i].off, q->queue[i].len, userdata);
		if (r < 0) {
			i++;
			break;
		}
	}
	n = i;
	/* Keep the rest: move their entries to the front of the queue and
	 * their bytes to the front of the arena. Taken in arena order, every
	 * record moves down onto bytes that are free or its own, so memmove in
	 * place is safe and nothing can fail half-way (a failure here would
	 * deliver the records above twice). */
	memmove(q->queue, q->queue + n, (q->nqueue - n) * sizeof(*q->queue));
	q->nqueue -= n;
	qsort(q->queue, q->nqueue, sizeof(*q->queue), off_cmp);
	for (size_t j = 0; j < q->nqueue; j++) {
		size_t room = (q->queue[j].len + 7) & ~(size_t)7;

		memmove(q->arena + keep_bytes, q->arena + q->queue[j].off, q->queue[j].len);
		q->queue[j].off = keep_bytes;
		keep_bytes += room;
	}
	qsort(q->queue, q->nqueue, sizeof(*q->queue), time_cmp);
	q->arena_len = keep_bytes;
	return r < 0 ? r : (int)n;
}

int stoke_reorder_round(struct stoke_reorder *q, bool flush, stoke_reorder_cb cb, void *userdata)
{
	uint64_t limit = q->safe_time;
	int r;

	if (flush || q->arena_len > q->max_bytes)
		limit = UINT64_MAX;
	r = deliver(q, limit, cb, userdata);
	q->safe_time = q->max_time;
	return r;
}

size_t stoke_reorder_pending(const struct stoke_reorder *q)
{
	return q->nqueue;
}
