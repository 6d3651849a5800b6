/*
 * Unit tests for the cross-ring reordering (sampler/perf/reorder.h): time
 * order across rounds, what a round holds back, flush, the byte bound, a
 * callback that stops a round, and alignment of the copies.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/perf/reorder.h"

struct seen {
	uint64_t v[64];
	size_t n;
	int fail_at; /* -1: never */
};

/* Each record is one u64: its own timestamp * 100 + a tag. */
static int collect(const void *data, size_t len, void *userdata)
{
	struct seen *s = userdata;
	uint64_t v;

	ck_assert_uint_eq(len, sizeof(v));
	ck_assert_uint_eq((uintptr_t)data % 8, 0);
	memcpy(&v, data, sizeof(v));
	if (s->fail_at >= 0 && (size_t)s->fail_at == s->n)
		return -EIO;
	s->v[s->n++] = v;
	return 0;
}

static void push(struct stoke_reorder *q, uint64_t time, uint64_t tag)
{
	uint64_t v = time * 100 + tag;

	ck_assert_int_eq(stoke_reorder_push(q, time, &v, sizeof(v)), 0);
}

START_TEST(test_rounds)
{
	struct stoke_reorder q;
	struct seen s = { .fail_at = -1 };

	stoke_reorder_init(&q, 1 << 20);
	/* Round 1, two rings: nothing is safe yet (no earlier round). */
	push(&q, 10, 1);
	push(&q, 30, 1);
	push(&q, 20, 2);
	ck_assert_int_eq(stoke_reorder_round(&q, false, collect, &s), 0);
	ck_assert_uint_eq(stoke_reorder_pending(&q), 3);
	/* Round 2: a late record older than round 1's newest (a ring read
	 * late) still comes out in order; the ones newer than 30 wait. */
	push(&q, 15, 3);
	push(&q, 40, 1);
	ck_assert_int_eq(stoke_reorder_round(&q, false, collect, &s), 4);
	ck_assert_uint_eq(s.n, 4);
	ck_assert_uint_eq(s.v[0], 1001);
	ck_assert_uint_eq(s.v[1], 1503);
	ck_assert_uint_eq(s.v[2], 2002);
	ck_assert_uint_eq(s.v[3], 3001);
	ck_assert_uint_eq(stoke_reorder_pending(&q), 1);
	/* Equal stamps keep push order; flush delivers everything. */
	push(&q, 40, 2);
	push(&q, 35, 4);
	ck_assert_int_eq(stoke_reorder_round(&q, true, collect, &s), 3);
	ck_assert_uint_eq(s.v[4], 3504);
	ck_assert_uint_eq(s.v[5], 4001);
	ck_assert_uint_eq(s.v[6], 4002);
	ck_assert_uint_eq(stoke_reorder_pending(&q), 0);
	ck_assert_int_eq(stoke_reorder_round(&q, true, collect, &s), 0);
	stoke_reorder_exit(&q);
}
END_TEST

START_TEST(test_byte_bound)
{
	struct stoke_reorder q;
	struct seen s = { .fail_at = -1 };

	/* Past max_bytes a round delivers everything, safe or not. */
	stoke_reorder_init(&q, 16);
	push(&q, 5, 1);
	push(&q, 6, 1);
	ck_assert_int_eq(stoke_reorder_round(&q, false, collect, &s), 0);
	push(&q, 7, 1);
	ck_assert_int_eq(stoke_reorder_round(&q, false, collect, &s), 3);
	ck_assert_uint_eq(stoke_reorder_pending(&q), 0);
	stoke_reorder_exit(&q);
}
END_TEST

START_TEST(test_callback_stops)
{
	struct stoke_reorder q;
	struct seen s = { .fail_at = 1 };
	uint8_t odd[5] = { 1, 2, 3, 4, 5 };

	stoke_reorder_init(&q, 1 << 20);
	push(&q, 3, 0);
	push(&q, 1, 0);
	push(&q, 2, 0);
	/* The second delivery fails: the first and the failed one are gone,
	 * the third is kept, once. */
	ck_assert_int_eq(stoke_reorder_round(&q, true, collect, &s), -EIO);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(s.v[0], 100);
	ck_assert_uint_eq(stoke_reorder_pending(&q), 1);
	s.fail_at = -1;
	ck_assert_int_eq(stoke_reorder_round(&q, true, collect, &s), 1);
	ck_assert_uint_eq(s.v[1], 300);
	/* A length that is not a multiple of 8 is kept whole and the next
	 * copy stays aligned. */
	ck_assert_int_eq(stoke_reorder_push(&q, 9, odd, sizeof(odd)), 0);
	push(&q, 10, 0);
	ck_assert_uint_eq(q.queue[1].off % 8, 0);
	ck_assert_int_eq(memcmp(q.arena + q.queue[0].off, odd, sizeof(odd)), 0);
	stoke_reorder_exit(&q);
}
END_TEST

static Suite *reorder_suite(void)
{
	Suite *s = suite_create("reorder");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_rounds);
	tcase_add_test(tc, test_byte_bound);
	tcase_add_test(tc, test_callback_stops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(reorder_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
