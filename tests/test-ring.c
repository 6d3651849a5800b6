/*
 * Unit tests for the perf ring-buffer reader (sampler/ring.c).
 *
 * A fake mapping is built in ordinary memory: a page-aligned metadata page
 * followed by a small power-of-two data area. The test plays the kernel: it
 * writes records at its own head position (wrapping at the end of the data
 * area), then publishes data_head, and checks what the reader returns and
 * what it publishes as data_tail.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sampler/perf/ring.h"

#define DATA_SIZE 256

struct fake {
	struct stoke_ring ring;
	uint8_t *mem;
	struct perf_event_mmap_page *meta;
	uint8_t *data;
	size_t page;
	uint64_t head; /* the "kernel's" write position */
};

static struct fake fk;

/* Start with both positions at start, as if the ring had been used. */
static void fake_setup_at(uint64_t start)
{
	void *mem;

	fk.page = (size_t)sysconf(_SC_PAGESIZE);
	/* posix_memalign: aligned_alloc wants a size that is a multiple of
	 * the alignment. */
	ck_assert_int_eq(posix_memalign(&mem, fk.page, fk.page + DATA_SIZE), 0);
	fk.mem = mem;
	memset(fk.mem, 0, fk.page + DATA_SIZE);
	fk.meta = (void *)fk.mem;
	fk.data = fk.mem + fk.page;
	fk.meta->data_head = start;
	fk.meta->data_tail = start;
	fk.head = start;
	ck_assert_int_eq(stoke_ring_init(&fk.ring, fk.mem, fk.page, DATA_SIZE), 0);
	ck_assert_ptr_eq(fk.ring.data, fk.data);
	ck_assert_uint_eq(fk.ring.tail, start);
}

static void fake_setup(void)
{
	fake_setup_at(0);
}

static void fake_teardown(void)
{
	stoke_ring_exit(&fk.ring);
	free(fk.mem);
	memset(&fk, 0, sizeof(fk));
}

static void put(const void *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fk.data[(fk.head + i) % DATA_SIZE] = ((const uint8_t *)src)[i];
	fk.head += len;
}

static void write_header(uint32_t type, uint16_t size)
{
	struct perf_event_header h = { .type = type, .size = size };

	put(&h, sizeof(h));
}

/* A record of size bytes whose payload bytes are all fill. */
static void write_record(uint32_t type, uint16_t size, uint8_t fill)
{
	struct perf_event_header h = { .type = type, .size = size };
	uint8_t payload[512];

	memset(payload, fill, sizeof(payload));
	put(&h, sizeof(h));
	put(payload, size > sizeof(h) ? size - sizeof(h) : 0);
}

static void publish(void)
{
	fk.meta->data_head = fk.head;
}

static void check_record(const struct perf_event_header *h, uint32_t type,
			 uint16_t size, uint8_t fill)
{
	const uint8_t *p = (const uint8_t *)h;

	ck_assert_uint_eq(h->type, type);
	ck_assert_uint_eq(h->size, size);
	for (size_t i = sizeof(*h); i < size; i++)
		ck_assert_uint_eq(p[i], fill);
}

static int in_data(const void *p)
{
	return (const uint8_t *)p >= fk.data &&
	       (const uint8_t *)p < fk.data + DATA_SIZE;
}

START_TEST(test_init_errors)
{
	struct stoke_ring ring;
	static uint64_t mem[1024];

	ck_assert_int_eq(stoke_ring_init(&ring, mem, 64, 0), -EINVAL);
	ck_assert_int_eq(stoke_ring_init(&ring, mem, 64, 96), -EINVAL);
	ck_assert_int_eq(stoke_ring_init(&ring, mem, 64, 4), -EINVAL);
	ck_assert_int_eq(stoke_ring_init(&ring, NULL, 64, 64), -EINVAL);
	ck_assert_int_eq(stoke_ring_init(&ring, mem, 64, 64), 0);
	ck_assert_uint_eq(ring.mask, 63);
	stoke_ring_exit(&ring);

	memset(&ring, 0, sizeof(ring));
	stoke_ring_exit(&ring); /* zeroed ring is fine */
	stoke_ring_exit(NULL);
}
END_TEST

START_TEST(test_empty)
{
	const struct perf_event_header *h = NULL;

	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);
	ck_assert_ptr_null(h);
	stoke_ring_consume(&fk.ring); /* nothing pending: no-op */
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 0);
	ck_assert_uint_eq(fk.ring.malformed, 0);
}
END_TEST

START_TEST(test_several)
{
	const struct perf_event_header *h;

	write_record(PERF_RECORD_SAMPLE, 16, 0x11);
	write_record(PERF_RECORD_MMAP2, 24, 0x22);
	write_record(PERF_RECORD_COMM, 32, 0x33);
	/* Not yet published: the reader must not see it. */
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);
	publish();

	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	check_record(h, PERF_RECORD_SAMPLE, 16, 0x11);
	ck_assert_ptr_eq(h, fk.data); /* in place, not copied */
	/* Without consume the same record comes back. */
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	ck_assert_ptr_eq(h, fk.data);
	stoke_ring_consume(&fk.ring);

	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	check_record(h, PERF_RECORD_MMAP2, 24, 0x22);
	stoke_ring_consume(&fk.ring);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	check_record(h, PERF_RECORD_COMM, 32, 0x33);
	stoke_ring_consume(&fk.ring);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);

	/* The kernel only learns about the space at read_done. */
	ck_assert_uint_eq(fk.meta->data_tail, 0);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 72);
	ck_assert_uint_eq(fk.ring.malformed, 0);

	/* Next snapshot picks up where we left off. */
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);
	write_record(PERF_RECORD_EXIT, 40, 0x44);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	check_record(h, PERF_RECORD_EXIT, 40, 0x44);
	stoke_ring_consume(&fk.ring);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 112);
}
END_TEST

/* Records are only seen up to the head of the snapshot, even if the kernel
 * has written (but not published) more. */
START_TEST(test_snapshot_bound)
{
	const struct perf_event_header *h;

	write_record(PERF_RECORD_SAMPLE, 16, 1);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	write_record(PERF_RECORD_SAMPLE, 16, 2);
	publish();
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	stoke_ring_consume(&fk.ring);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 16);
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	check_record(h, PERF_RECORD_SAMPLE, 16, 2);
}
END_TEST

static void drain_expect(uint32_t type, uint16_t size, uint8_t fill,
			 bool wrapped)
{
	const struct perf_event_header *h;

	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), 0);
	check_record(h, type, size, fill);
	ck_assert_int_eq(in_data(h), !wrapped);
	if (wrapped) /* copied whole into the scratch buffer */
		ck_assert_ptr_eq(h, fk.ring.scratch);
	stoke_ring_consume(&fk.ring);
}

START_TEST(test_wrap)
{
	const struct perf_event_header *h;

	fake_teardown();
	/* 16 bytes before the end of the data area. */
	fake_setup_at(DATA_SIZE - 16);
	write_record(PERF_RECORD_SAMPLE, 48, 0x5a); /* 16 at the end, 32 at 0 */
	write_record(PERF_RECORD_SAMPLE, 24, 0x6b); /* contiguous again */
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	drain_expect(PERF_RECORD_SAMPLE, 48, 0x5a, true);
	ck_assert_uint_ge(fk.ring.scratch_cap, 48);
	drain_expect(PERF_RECORD_SAMPLE, 24, 0x6b, false);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, DATA_SIZE - 16 + 72);

	/* A bigger wrapped record grows the scratch buffer. */
	fk.head = fk.meta->data_tail;
	while ((fk.head % DATA_SIZE) != DATA_SIZE - 8)
		write_record(PERF_RECORD_LOST, 8, 0);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	while (stoke_ring_read_event(&fk.ring, &h) == 0)
		stoke_ring_consume(&fk.ring);
	stoke_ring_read_done(&fk.ring);
	write_record(PERF_RECORD_COMM, 200, 0x7c);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	drain_expect(PERF_RECORD_COMM, 200, 0x7c, true);
	ck_assert_uint_ge(fk.ring.scratch_cap, 200);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, fk.head);
}
END_TEST

/* Positions are free-running u64s; they wrap past 2^64 too. */
START_TEST(test_wrap_u64)
{
	fake_teardown();
	fake_setup_at(UINT64_MAX - 15);
	write_record(PERF_RECORD_SAMPLE, 32, 0x99);
	write_record(PERF_RECORD_SAMPLE, 16, 0x98);
	publish();
	ck_assert_uint_eq(fk.meta->data_head, 32 - 16 + 16);
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	drain_expect(PERF_RECORD_SAMPLE, 32, 0x99, true);
	drain_expect(PERF_RECORD_SAMPLE, 16, 0x98, false);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 32);
}
END_TEST

/* A completely full ring (head - tail == size) is legal. */
START_TEST(test_full)
{
	const struct perf_event_header *h;
	int n = 0;

	for (int i = 0; i < DATA_SIZE / 32; i++)
		write_record(PERF_RECORD_SAMPLE, 32, (uint8_t)i);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	while (stoke_ring_read_event(&fk.ring, &h) == 0) {
		check_record(h, PERF_RECORD_SAMPLE, 32, (uint8_t)n++);
		stoke_ring_consume(&fk.ring);
	}
	ck_assert_int_eq(n, DATA_SIZE / 32);
	ck_assert_uint_eq(fk.ring.malformed, 0);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, DATA_SIZE);
}
END_TEST

static void check_malformed(uint16_t bad_size)
{
	const struct perf_event_header *h;

	write_record(PERF_RECORD_SAMPLE, 16, 0x01);
	/* Only the header claims bad_size; 56 bytes follow in the ring, and
	 * nothing in them is reachable. */
	write_header(PERF_RECORD_SAMPLE, bad_size);
	write_record(PERF_RECORD_SAMPLE, 24, 0x03);
	write_record(PERF_RECORD_SAMPLE, 32, 0x04);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	drain_expect(PERF_RECORD_SAMPLE, 16, 0x01, false);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);
	ck_assert_uint_eq(fk.ring.malformed, 1);
	/* The rest of the snapshot is skipped and given back to the kernel. */
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, fk.head);
	ck_assert_uint_eq(fk.ring.malformed, 1);
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);
}

START_TEST(test_malformed_zero)
{
	check_malformed(0);
}
END_TEST

START_TEST(test_malformed_small)
{
	check_malformed(4);
}
END_TEST

START_TEST(test_malformed_unaligned)
{
	check_malformed(20);
}
END_TEST

START_TEST(test_malformed_too_big)
{
	/* Larger than what is left in the snapshot (and than the ring). */
	check_malformed(DATA_SIZE + 8);
}
END_TEST

/* Fewer unread bytes than a header. */
START_TEST(test_malformed_short_tail)
{
	const struct perf_event_header *h;

	fk.head += 4;
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	ck_assert_int_eq(stoke_ring_read_event(&fk.ring, &h), -EAGAIN);
	ck_assert_uint_eq(fk.ring.malformed, 1);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 4);
}
END_TEST

/* data_head more than a buffer ahead (or behind) our tail is corrupt: drop
 * everything and publish at once, since -EAGAIN means no read_done. */
START_TEST(test_overrun)
{
	fk.meta->data_head = DATA_SIZE + 8;
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);
	ck_assert_uint_eq(fk.ring.malformed, 1);
	ck_assert_uint_eq(fk.meta->data_tail, DATA_SIZE + 8);
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);

	fk.meta->data_head = 8; /* behind the tail */
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), -EAGAIN);
	ck_assert_uint_eq(fk.ring.malformed, 2);
	ck_assert_uint_eq(fk.meta->data_tail, 8);

	/* And the reader recovers at the new position. */
	fk.head = 8;
	write_record(PERF_RECORD_FORK, 40, 0x3c);
	publish();
	ck_assert_int_eq(stoke_ring_read_init(&fk.ring), 0);
	drain_expect(PERF_RECORD_FORK, 40, 0x3c, false);
	stoke_ring_read_done(&fk.ring);
	ck_assert_uint_eq(fk.meta->data_tail, 48);
}
END_TEST

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *basic = tcase_create("basic");
	TCase *tc = tcase_create("read");
	TCase *bad = tcase_create("malformed");

	tcase_add_test(basic, test_init_errors);
	suite_add_tcase(s, basic);

	tcase_add_checked_fixture(tc, fake_setup, fake_teardown);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_several);
	tcase_add_test(tc, test_snapshot_bound);
	tcase_add_test(tc, test_wrap);
	tcase_add_test(tc, test_wrap_u64);
	tcase_add_test(tc, test_full);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(bad, fake_setup, fake_teardown);
	tcase_add_test(bad, test_malformed_zero);
	tcase_add_test(bad, test_malformed_small);
	tcase_add_test(bad, test_malformed_unaligned);
	tcase_add_test(bad, test_malformed_too_big);
	tcase_add_test(bad, test_malformed_short_tail);
	tcase_add_test(bad, test_overrun);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
