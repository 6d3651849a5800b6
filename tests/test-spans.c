/*
 * Unit tests for spans in the session and the profile (session/spans.h,
 * formats/spans.h): nesting per thread, unmatched ends and open spans,
 * per-name statistics, the innermost span of each sample, and the copy the
 * writers use.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/spans.h"
#include "session/spans.h"

static void ev(struct stoke_span_tracker **t, struct stoke_profile *p, uint32_t tid,
	       uint64_t time, bool begin, const char *name)
{
	static const char meta[] = "k=v\0user=a\0";
	struct stoke_span_event e = { .pid = 1, .tid = tid, .time = time, .begin = begin,
				      .name = name, .meta = meta, .meta_len = sizeof(meta) - 1 };

	ck_assert_int_eq(stoke_span_tracker_event(t, p, &e), 0);
}

static const struct stoke_span_stat *stat_of(const struct stoke_span_stat *st, size_t n,
					     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(st[i].name, name))
			return &st[i];
	ck_abort_msg("no span %s", name);
	return NULL;
}

START_TEST(test_nesting_and_stats)
{
	struct stoke_profile *p, *c;
	struct stoke_span_tracker *t = NULL;
	struct stoke_span_stat *st;
	struct stoke_copy_opts co = { .by_function = true };
	const struct stoke_pspan *sp;
	uint32_t *tags, frame, stack, name;
	struct stoke_pframe f = { 0 };
	size_t n;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "leaf", &f.name), 0);
	ck_assert_int_eq(stoke_profile_frame(p, &f, &frame), 0);
	ck_assert_int_eq(stoke_profile_stack(p, 0, frame, &stack), 0);
	/* thread 1: A [0, 100) holding B [10, 20); A again [200, 300);
	 * thread 2: C [0, 50) with an inner D never ended; an end of E
	 * that never began. */
	ev(&t, p, 1, 0, true, "A");
	ev(&t, p, 2, 0, true, "C");
	ev(&t, p, 1, 10, true, "B");
	ev(&t, p, 2, 5, true, "D");
	ev(&t, p, 1, 20, false, "B");
	ev(&t, p, 2, 50, false, "C");
	ev(&t, p, 1, 100, false, "A");
	ev(&t, p, 1, 150, false, "E");
	ev(&t, p, 1, 200, true, "A");
	ev(&t, p, 1, 300, false, "A");
	ev(&t, p, 1, 400, true, "open");
	ck_assert_int_eq(stoke_span_tracker_finish(t, p), 0);
	stoke_span_tracker_free(t);
	/* D (left open inside C), E (never began), open (at the end) */
	ck_assert_uint_eq(stoke_profile_spans_get_unmatched(p), 3);
	sp = stoke_profile_spans(p, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(stoke_profile_string(p, sp[0].name), "B");
	ck_assert_uint_eq(sp[0].depth, 1);
	ck_assert_str_eq(stoke_profile_string(p, sp[0].parent), "A");
	ck_assert_str_eq(stoke_profile_string(p, sp[0].meta), "k=v\nuser=a");

	/* samples: t1@15 in B, t1@50 in A, t1@150 in none, t1@250 in A,
	 * t2@30 in C, t2@60 in none */
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 15, stack, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 50, stack, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 150, stack, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 250, stack, 2), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 2, 30, stack, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 2, 60, stack, 1), 0);
	ck_assert_int_eq(stoke_span_sample_names(p, &tags), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "B", &name), 0);
	ck_assert_uint_eq(tags[0], name);
	ck_assert_int_eq(stoke_profile_intern(p, "A", &name), 0);
	ck_assert_uint_eq(tags[1], name);
	ck_assert_uint_eq(tags[2], 0);
	ck_assert_uint_eq(tags[3], name);
	ck_assert_int_eq(stoke_profile_intern(p, "C", &name), 0);
	ck_assert_uint_eq(tags[4], name);
	ck_assert_uint_eq(tags[5], 0);
	free(tags);

	ck_assert_int_eq(stoke_span_stats(p, &st, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(st[0].name, "A"); /* largest total first */
	ck_assert_uint_eq(stat_of(st, n, "A")->count, 2);
	ck_assert_uint_eq(stat_of(st, n, "A")->total_ns, 200);
	ck_assert_uint_eq(stat_of(st, n, "A")->max_ns, 100);
	ck_assert_uint_eq(stat_of(st, n, "A")->samples, 3);
	ck_assert_ptr_null(stat_of(st, n, "A")->parent);
	ck_assert_str_eq(stat_of(st, n, "B")->parent, "A");
	ck_assert_uint_eq(stat_of(st, n, "B")->samples, 1);
	ck_assert_uint_eq(stat_of(st, n, "C")->mean_ns, 50);
	free(st);

	/* The writers' per-function copy keeps them. */
	ck_assert_int_eq(stoke_profile_copy(p, &co, &c), 0);
	stoke_profile_spans(c, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(stoke_profile_spans_get_unmatched(c), 3);
	stoke_profile_free(c);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_percentiles)
{
	struct stoke_profile *p;
	struct stoke_span_tracker *t = NULL;
	struct stoke_span_stat *st;
	size_t n;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	/* durations 1..100 ns */
	for (uint64_t i = 1; i <= 100; i++) {
		ev(&t, p, 7, i * 1000, true, "x");
		ev(&t, p, 7, i * 1000 + (101 - i), false, "x");
	}
	stoke_span_tracker_free(t);
	ck_assert_int_eq(stoke_span_stats(p, &st, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(st[0].count, 100);
	ck_assert_uint_eq(st[0].p50_ns, 50);
	ck_assert_uint_eq(st[0].p95_ns, 95);
	ck_assert_uint_eq(st[0].max_ns, 100);
	ck_assert_uint_eq(st[0].total_ns, 5050);
	free(st);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_read_tags_and_filter)
{
	struct stoke_profile *p, *f;
	struct stoke_pframe fr = { 0 };
	uint32_t frame, stack, a, *tags;
	size_t n;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "leaf", &fr.name), 0);
	ck_assert_int_eq(stoke_profile_frame(p, &fr, &frame), 0);
	ck_assert_int_eq(stoke_profile_stack(p, 0, frame, &stack), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "A", &a), 0);
	for (uint32_t i = 0; i < 5; i++)
		ck_assert_int_eq(stoke_profile_add_sample(p, 1, i, stack, 1), 0);
	/* as a pprof reader does: samples 1 and 3 in A, no span intervals */
	ck_assert_int_eq(stoke_profile_set_sample_span(p, 1, a), 0);
	ck_assert_int_eq(stoke_profile_set_sample_span(p, 3, a), 0);
	ck_assert_int_eq(stoke_profile_set_sample_span(p, 9, 12345), -EINVAL);
	ck_assert_int_eq(stoke_span_sample_names(p, &tags), 0);
	ck_assert_uint_eq(tags[0], 0);
	ck_assert_uint_eq(tags[1], a);
	ck_assert_uint_eq(tags[4], 0);
	free(tags);
	ck_assert_int_eq(stoke_span_filter(p, "B", &f), -ENOENT);
	ck_assert_int_eq(stoke_span_filter(p, "A", &f), 0);
	stoke_profile_samples(f, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(stoke_profile_total(f), 2);
	ck_assert_int_eq(stoke_span_sample_names(f, &tags), 0);
	ck_assert_str_eq(stoke_profile_string(f, tags[0]), "A");
	ck_assert_str_eq(stoke_profile_string(f, tags[1]), "A");
	free(tags);
	stoke_profile_free(f);
	stoke_profile_free(p);
}
END_TEST

static Suite *spans_suite(void)
{
	Suite *s = suite_create("spans");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_nesting_and_stats);
	tcase_add_test(tc, test_percentiles);
	tcase_add_test(tc, test_read_tags_and_filter);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spans_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
