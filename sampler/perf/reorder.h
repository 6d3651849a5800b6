/*
 * Cross-ring reordering: records read from several rings, each in time
 * order but not ordered with respect to each other, come out in one time
 * order.
 *
 * Which records are safe to deliver (perf's "finished round"): a record read
 * in a later round was written after this round's snapshot of its ring, and
 * so after every record read in an earlier round; only a record stamped
 * before the previous rounds ended can still be missing. So each round
 * delivers the records stamped at or before the newest timestamp seen in the
 * earlier rounds and keeps the rest for the next round. A flush delivers all,
 * and so does a round that holds more than max_bytes.
 *
 * Pure: it knows nothing of rings or perf; records are opaque bytes with a
 * timestamp. Unit-tested in tests/test-reorder.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stoke_reorder_entry {
	uint64_t time;
	uint64_t seq; /* push order: keeps the sort stable */
	size_t off;   /* into the arena */
	size_t len;
};

struct stoke_reorder {
	size_t max_bytes;
	uint8_t *arena; /* the records' copies, each 8-byte aligned */
	size_t arena_len, arena_cap;
	struct stoke_reorder_entry *queue;
	size_t nqueue, queue_cap;
	uint64_t seq;
	uint64_t max_time;  /* newest timestamp pushed so far */
	uint64_t safe_time; /* newest timestamp pushed before this round */
};

/* Called for each record delivered; data is 8-byte aligned and valid during
 * the call. Return 0, or a negative errno to stop the round. */
typedef int (*stoke_reorder_cb)(const void *data, size_t len, void *userdata);

void stoke_reorder_init(struct stoke_reorder *q, size_t max_bytes);
void stoke_reorder_exit(struct stoke_reorder *q);

/* Copy a record read in this round. Returns 0 or -ENOMEM. */
int stoke_reorder_push(struct stoke_reorder *q, uint64_t time, const void *data, size_t len);

/*
 * End the round: deliver, in time order (push order among equal stamps),
 * what is safe to deliver (everything when flush), and keep the rest.
 * Returns the number of records handed to cb, or cb's negative value (the
 * records before it are gone, the rest kept).
 */
int stoke_reorder_round(struct stoke_reorder *q, bool flush, stoke_reorder_cb cb, void *userdata);

/* Records held back. */
size_t stoke_reorder_pending(const struct stoke_reorder *q);
