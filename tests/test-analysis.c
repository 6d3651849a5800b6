/*
 * Unit tests for formats/analysis.c: self/total per function, edges,
 * recursion-safe totals, unwind-failure accounting and the per-line view,
 * on a hand-built profile whose answers follow from its construction.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "formats/analysis.h"
#include "formats/profile.h"

static uint32_t frame(struct stoke_profile *p, const char *name, const char *file, uint32_t line,
		      uint8_t kind)
{
	struct stoke_pframe f = { .line = line, .kind = kind };
	uint32_t id;

	ck_assert_int_eq(stoke_profile_intern(p, name, &f.name), 0);
	ck_assert_int_eq(stoke_profile_intern(p, file, &f.file), 0);
	ck_assert_int_eq(stoke_profile_frame(p, &f, &id), 0);
	return id;
}

/* Push frames root first and add one sample of weight w. */
static void sample(struct stoke_profile *p, uint64_t w, const uint32_t *frames, size_t n)
{
	uint32_t stack = 0;

	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(stoke_profile_stack(p, stack, frames[i], &stack), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 0, stack, w), 0);
}

static struct stoke_profile *build(void)
{
	struct stoke_profile *p;
	uint32_t main_, a, b, r, x10, x12, y, uf;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	main_ = frame(p, "main", "m.c", 0, STOKE_PFRAME_USER);
	a = frame(p, "a", "m.c", 0, STOKE_PFRAME_USER);
	b = frame(p, "b", "m.c", 0, STOKE_PFRAME_USER);
	r = frame(p, "r", "m.c", 0, STOKE_PFRAME_USER);
	x10 = frame(p, "leaf_x", "x.c", 10, STOKE_PFRAME_USER);
	x12 = frame(p, "leaf_x", "x.c", 12, STOKE_PFRAME_USER);
	y = frame(p, "leaf_y", "y.c", 0, STOKE_PFRAME_USER);
	uf = frame(p, "[unwind-failed]", NULL, 0, STOKE_PFRAME_SYNTHETIC);
	sample(p, 6, (uint32_t[]){ main_, a, x10 }, 3);
	sample(p, 2, (uint32_t[]){ main_, b, x12 }, 3);
	sample(p, 2, (uint32_t[]){ main_, a, y }, 3);
	sample(p, 3, (uint32_t[]){ main_, r, r, r }, 4);
	sample(p, 1, (uint32_t[]){ uf, x12 }, 2);
	return p;
}

static const struct stoke_func_stat *fn(const struct stoke_analysis *a, const char *name)
{
	long i = stoke_analysis_find(a, name);

	ck_assert_msg(i >= 0, "function %s missing", name);
	return &a->funcs[i];
}

static uint64_t edge(const struct stoke_analysis *a, const char *from, const char *to)
{
	long f = stoke_analysis_find(a, from), t = stoke_analysis_find(a, to);

	for (size_t i = 0; i < a->nedges; i++)
		if ((long)a->edges[i].caller == f && (long)a->edges[i].callee == t)
			return a->edges[i].weight;
	return 0;
}

START_TEST(test_self_total)
{
	struct stoke_profile *p = build();
	struct stoke_analysis *a;

	ck_assert_int_eq(stoke_analysis_new(p, &a), 0);
	ck_assert_uint_eq(a->total, 14);
	ck_assert_uint_eq(fn(a, "leaf_x")->self, 9);
	ck_assert_uint_eq(fn(a, "leaf_x")->total, 9);
	ck_assert_uint_eq(fn(a, "main")->self, 0);
	ck_assert_uint_eq(fn(a, "main")->total, 13);
	ck_assert_uint_eq(fn(a, "a")->total, 8);
	ck_assert_uint_eq(fn(a, "leaf_y")->self, 2);
	/* Recursion counts once per sample. */
	ck_assert_uint_eq(fn(a, "r")->total, 3);
	ck_assert_uint_eq(fn(a, "r")->self, 3);
	ck_assert_uint_eq(a->unwind_failed, 1);
	ck_assert_uint_eq(a->truncated, 0);
	ck_assert_int_eq(stoke_analysis_find(a, "nope"), -1);
	stoke_analysis_free(a);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_edges)
{
	struct stoke_profile *p = build();
	struct stoke_analysis *a;

	ck_assert_int_eq(stoke_analysis_new(p, &a), 0);
	ck_assert_uint_eq(edge(a, "main", "a"), 8);
	ck_assert_uint_eq(edge(a, "main", "b"), 2);
	ck_assert_uint_eq(edge(a, "a", "leaf_x"), 6);
	ck_assert_uint_eq(edge(a, "b", "leaf_x"), 2);
	ck_assert_uint_eq(edge(a, "a", "leaf_y"), 2);
	ck_assert_uint_eq(edge(a, "main", "r"), 3);
	ck_assert_uint_eq(edge(a, "r", "r"), 3);
	ck_assert_uint_eq(edge(a, "[unwind-failed]", "leaf_x"), 1);
	ck_assert_uint_eq(edge(a, "leaf_x", "main"), 0);
	/* Sorted by caller, heaviest first. */
	for (size_t i = 1; i < a->nedges; i++) {
		ck_assert(a->edges[i - 1].caller <= a->edges[i].caller);
		if (a->edges[i - 1].caller == a->edges[i].caller)
			ck_assert(a->edges[i - 1].weight >= a->edges[i].weight);
	}
	stoke_analysis_free(a);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_sort_and_hot_line)
{
	struct stoke_profile *p = build();
	struct stoke_analysis *a;
	uint32_t *order;

	ck_assert_int_eq(stoke_analysis_new(p, &a), 0);
	order = calloc(a->nfuncs, sizeof(*order));
	stoke_analysis_sort(a, false, order);
	ck_assert_str_eq(a->funcs[order[0]].name, "leaf_x");
	ck_assert_str_eq(a->funcs[order[1]].name, "r");
	ck_assert_str_eq(a->funcs[order[2]].name, "leaf_y");
	stoke_analysis_sort(a, true, order);
	ck_assert_str_eq(a->funcs[order[0]].name, "main");
	ck_assert_str_eq(fn(a, "leaf_x")->file, "x.c");
	ck_assert_uint_eq(fn(a, "leaf_x")->line, 10);
	free(order);
	stoke_analysis_free(a);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_lines)
{
	struct stoke_profile *p = build();
	struct stoke_line_stat *lines = NULL;
	long n = stoke_analysis_lines(p, "leaf_x", &lines);

	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(lines[0].line, 10);
	ck_assert_uint_eq(lines[0].self, 6);
	ck_assert_uint_eq(lines[1].line, 12);
	ck_assert_uint_eq(lines[1].self, 3);
	ck_assert_uint_eq(lines[1].total, 3);
	free(lines);
	lines = NULL;
	ck_assert_int_eq(stoke_analysis_lines(p, "main", &lines), 0);
	free(lines);
	lines = NULL;
	ck_assert_int_eq(stoke_analysis_lines(p, "absent", &lines), 0);
	free(lines);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_empty)
{
	struct stoke_profile *p;
	struct stoke_analysis *a;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	ck_assert_int_eq(stoke_analysis_new(p, &a), 0);
	ck_assert_uint_eq(a->total, 0);
	ck_assert_uint_eq(a->nfuncs, 0);
	stoke_analysis_free(a);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_merge)
{
	struct stoke_profile *a = build(), *b = build(), *m;
	struct stoke_analysis *an;
	uint32_t ev;

	ck_assert_int_eq(stoke_profile_intern(a, "cpu-clock", &ev), 0);
	stoke_profile_meta(a)->event = ev;
	stoke_profile_meta(a)->lost = 2;
	stoke_profile_meta(b)->lost = 3;
	ck_assert_int_eq(stoke_profile_new(&m), 0);
	ck_assert_int_eq(stoke_profile_merge(m, a), 0);
	ck_assert_int_eq(stoke_profile_merge(m, b), 0);
	ck_assert_uint_eq(stoke_profile_total(m), 28);
	/* Identical inputs share every frame and stack. */
	ck_assert_uint_eq(stoke_profile_nframes(m), stoke_profile_nframes(a));
	ck_assert_uint_eq(stoke_profile_nstacks(m), stoke_profile_nstacks(a));
	ck_assert_uint_eq(stoke_profile_cmeta(m)->lost, 5);
	ck_assert_str_eq(stoke_profile_string(m, stoke_profile_cmeta(m)->event), "cpu-clock");
	ck_assert_int_eq(stoke_analysis_new(m, &an), 0);
	ck_assert_uint_eq(fn(an, "leaf_x")->self, 18);
	ck_assert_uint_eq(fn(an, "r")->total, 6);
	stoke_analysis_free(an);
	stoke_profile_free(a);
	stoke_profile_free(b);
	stoke_profile_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("analysis");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_self_total);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_sort_and_hot_line);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_merge);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
