/*
 * The perf ring-buffer reader.
 *
 * A pure reader over memory laid out like a perf mmap: one metadata page
 * (struct perf_event_mmap_page) followed by a power-of-two data area. The
 * protocol follows tools/lib/perf:
 *
 *   stoke_ring_read_init()   snapshot data_head (acquire); -EAGAIN if empty
 *   stoke_ring_read_event()  next record, or -EAGAIN when the snapshot is done
 *   stoke_ring_consume()     after each record is handled
 *   stoke_ring_read_done()   publish data_tail (release) so the kernel reuses it
 *
 * A record that wraps the end of the data area is copied into a scratch
 * buffer owned by the ring, so callers always see contiguous bytes. The
 * returned pointer is valid until the next read_event or read_done.
 */
#pragma once

#include <linux/perf_event.h>
#include <stddef.h>
#include <stdint.h>

struct stoke_ring {
	struct perf_event_mmap_page *meta;
	uint8_t *data;
	uint64_t mask;     /* data_size - 1 */
	uint64_t head;     /* snapshot of data_head */
	uint64_t tail;     /* our read position, published by read_done */
	uint8_t *scratch;  /* for wrapped records; grows to the largest seen */
	size_t scratch_cap;
	uint64_t malformed; /* records skipped because their size was bad */
};

/* base points at the metadata page; the data area starts at base + page_size
 * and is data_size bytes (a power of two). Returns 0 or -EINVAL. */
int stoke_ring_init(struct stoke_ring *ring, void *base, size_t page_size,
		    size_t data_size);
/* Frees the scratch buffer; does not unmap. Accepts a zeroed ring. */
void stoke_ring_exit(struct stoke_ring *ring);

int stoke_ring_read_init(struct stoke_ring *ring);
/* Returns 0 and sets *ret to the next record, or -EAGAIN when none is left,
 * or -ENOMEM when a wrapped record cannot be copied. A header whose size is
 * smaller than the header or larger than the unread bytes is malformed: the
 * rest of the snapshot is skipped, counted in ring->malformed, and -EAGAIN is
 * returned. */
int stoke_ring_read_event(struct stoke_ring *ring, const struct perf_event_header **ret);
void stoke_ring_consume(struct stoke_ring *ring);
void stoke_ring_read_done(struct stoke_ring *ring);
