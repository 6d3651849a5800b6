/*
 * Reader for a perf mmap ring buffer.
 *
 * The kernel is the only writer of the data area and of data_head; we are the
 * only writer of data_tail. Records are read at our private tail, which only
 * reaches the kernel when read_done publishes it. Until then the kernel may
 * not overwrite anything between the published tail and data_head, so the
 * bytes of a snapshot stay put while we look at them.
 *
 * Nothing read from the ring is trusted: a header whose size cannot be right
 * (smaller than a header, not u64-aligned, or past the snapshot) abandons the
 * rest of the snapshot, because once one size is wrong no later record
 * boundary can be found. The same holds when data_head runs more than a whole
 * buffer ahead of our tail.
 *
 * read_event returns the record at the tail without moving it; consume moves
 * the tail past it. So calling read_event twice without consume returns the
 * same record again.
 */
#include "sampler/perf/ring.h"

#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int stoke_ring_init(struct stoke_ring *ring, void *base, size_t page_size,
		    size_t data_size)
{
	if (!ring || !base || page_size == 0)
		return -EINVAL;
	/* A power of two lets positions wrap with a mask; under 8 bytes not
	 * even a header fits. */
	if (data_size < sizeof(struct perf_event_header) ||
	    (data_size & (data_size - 1)))
		return -EINVAL;
	*ring = (struct stoke_ring){
		.meta = base,
		.data = (uint8_t *)base + page_size,
		.mask = data_size - 1,
	};
	/* Resume where a previous reader of this mapping left off. */
	ring->tail = __atomic_load_n(&ring->meta->data_tail, __ATOMIC_RELAXED);
	ring->head = ring->tail;
	return 0;
}

void stoke_ring_exit(struct stoke_ring *ring)
{
	if (!ring)
		return;
	free(ring->scratch);
	ring->scratch = NULL;
	ring->scratch_cap = 0;
}

static uint64_t ring_size(const struct stoke_ring *ring)
{
	return ring->mask + 1;
}

/*
 * Publish the tail. Release ordering: every load we made of the records
 * before this point must complete before the kernel can observe the new tail
 * and start overwriting that space. This is barrier (D) of the diagram in
 * kernel/events/ring_buffer.c; the kernel pairs it with the control
 * dependency (A) between its load of data_tail and its stores of new data.
 */
static void publish_tail(struct stoke_ring *ring)
{
	__atomic_store_n(&ring->meta->data_tail, ring->tail, __ATOMIC_RELEASE);
}

/* Give up on the rest of the snapshot: nothing after a bad size can be
 * trusted to start a record. */
static int skip_snapshot(struct stoke_ring *ring)
{
	ring->malformed++;
	ring->tail = ring->head;
	return -EAGAIN;
}

int stoke_ring_read_init(struct stoke_ring *ring)
{
	/*
	 * Acquire ordering: the kernel stores the records, then smp_wmb()
	 * (barrier B in kernel/events/ring_buffer.c), then data_head. Our loads
	 * of the record bytes must not be satisfied before this load (barrier
	 * C), or we could read bytes older than the head that announced them.
	 */
	ring->head = __atomic_load_n(&ring->meta->data_head, __ATOMIC_ACQUIRE);
	if (ring->head - ring->tail > ring_size(ring)) {
		/* More unread data than the buffer holds (or head went
		 * backwards): the positions are corrupt. Drop everything and
		 * tell the kernel right away, since the caller will not call
		 * read_done after -EAGAIN. */
		skip_snapshot(ring);
		publish_tail(ring);
		return -EAGAIN;
	}
	return ring->head == ring->tail ? -EAGAIN : 0;
}

/* Copy len bytes at ring position pos into dst, across the end if needed. */
static void ring_copy(const struct stoke_ring *ring, uint64_t pos, void *dst,
		      size_t len)
{
	size_t off = (size_t)(pos & ring->mask);
	size_t first = STOKE_MIN(len, (size_t)ring_size(ring) - off);

	memcpy(dst, ring->data + off, first);
	memcpy((uint8_t *)dst + first, ring->data, len - first);
}

/* Size of the record at the tail, or 0 when it is malformed. */
static uint16_t record_size(const struct stoke_ring *ring)
{
	struct perf_event_header hdr;
	uint64_t avail = ring->head - ring->tail;

	if (avail < sizeof(hdr))
		return 0;
	ring_copy(ring, ring->tail, &hdr, sizeof(hdr));
	if (hdr.size < sizeof(hdr) || hdr.size > avail || hdr.size % 8)
		return 0;
	return hdr.size;
}

static int grow_scratch(struct stoke_ring *ring, size_t need)
{
	uint8_t *p;

	if (need <= ring->scratch_cap)
		return 0;
	p = realloc(ring->scratch, need);
	if (!p)
		return -ENOMEM;
	ring->scratch = p;
	ring->scratch_cap = need;
	return 0;
}

int stoke_ring_read_event(struct stoke_ring *ring,
			  const struct perf_event_header **ret)
{
	size_t off = (size_t)(ring->tail & ring->mask);
	uint16_t size;
	int r;

	if (ring->tail == ring->head)
		return -EAGAIN;
	size = record_size(ring);
	if (size == 0)
		return skip_snapshot(ring);
	if (off + size <= ring_size(ring)) {
		*ret = (const struct perf_event_header *)(const void *)(ring->data + off);
		return 0;
	}
	r = grow_scratch(ring, size);
	if (r < 0)
		return r;
	ring_copy(ring, ring->tail, ring->scratch, size);
	*ret = (const struct perf_event_header *)(const void *)ring->scratch;
	return 0;
}

void stoke_ring_consume(struct stoke_ring *ring)
{
	/* Re-validate rather than trust what read_event saw: consume may be
	 * called without a pending record. */
	ring->tail += record_size(ring);
}

void stoke_ring_read_done(struct stoke_ring *ring)
{
	publish_tail(ring);
}
