/*
 * The pstats writer and the text table (formats/pstats.h, text.h).
 *
 * Golden files: tests/data/synth.pstats is our marshal output for the
 * synthetic profile, and tests/data/synth.txt is what *Python* prints for
 * that file (pstats.Stats(...).sort_stats('cumulative').print_stats(),
 * first line dropped; regenerate with tests/readers/pstats_table.py). The
 * text writer must equal Python's output byte for byte, so this test ties
 * the C table to the real reader. Also the invariants FORMATS.md lists:
 * sum of tt = total, tt <= ct, cc <= nc, a single root's ct = total; and
 * recursion counted once per sample.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/output.h"
#include "formats/pstats.h"
#include "synth.h"
#include "formats/text.h"

START_TEST(golden_pstats)
{
	struct stoke_profile *p = synth_profile();
	size_t len;
	char *buf = synth_render(p, STOKE_FORMAT_PSTATS, NULL, &len);

	synth_golden("synth.pstats", buf, len);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* The one deliberate difference from Python's table: the line that says
 * ncalls are samples. Removes it (it must be there). */
static void strip_samples_note(char *buf, size_t *len)
{
	static const char note[] = TEXT_SAMPLES_NOTE "\n";
	size_t n = sizeof(note) - 1, off = 0;

	while (off + n <= *len && strncmp(buf + off, note, n) != 0)
		off++;
	ck_assert_msg(off + n <= *len, "the text table lacks the samples note");
	memmove(buf + off, buf + off + n, *len - off - n + 1);
	*len -= n;
}

START_TEST(golden_text_equals_python)
{
	struct stoke_profile *p;
	size_t len;
	char *buf;

	/* synth.txt comes from Python, never from this writer */
	if (getenv("STOKE_UPDATE_GOLDEN"))
		return;
	p = synth_profile();
	buf = synth_render(p, STOKE_FORMAT_TEXT, NULL, &len);
	strip_samples_note(buf, &len);
	synth_golden("synth.txt", buf, len);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

static const struct stoke_pstats_func *find(const struct stoke_pstats *st, const char *name)
{
	for (size_t i = 0; i < st->nfuncs; i++)
		if (!strcmp(st->funcs[i].name, name))
			return &st->funcs[i];
	ck_abort_msg("no function %s", name);
	return NULL;
}

START_TEST(invariants)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_pstats st;
	uint64_t sum_tt = 0;
	const struct stoke_pstats_func *root, *a, *leaf;

	ck_assert_int_eq(stoke_pstats_compute(p, &st), 0);
	for (size_t i = 0; i < st.nfuncs; i++) {
		const struct stoke_pstats_func *f = &st.funcs[i];

		sum_tt += f->tt;
		ck_assert_uint_le(f->tt, f->ct);
		ck_assert_uint_le(f->cc, f->nc);
		for (size_t k = 0; k < f->ncallers; k++) {
			ck_assert_uint_le(f->callers[k].tt, f->callers[k].ct);
			ck_assert_uint_le(f->callers[k].cc, f->callers[k].nc);
			ck_assert_uint_le(f->callers[k].ct, f->ct);
		}
		if (i > 0) /* sorted by key, keys unique */
			ck_assert_int_ne(strcmp(st.funcs[i - 1].name, f->name) == 0 &&
						 strcmp(st.funcs[i - 1].file, f->file) == 0,
					 1);
	}
	ck_assert_uint_eq(sum_tt, stoke_profile_total(p));
	/* two threads with samples: one synthetic root holding everything */
	root = find(&st, "<all threads>");
	ck_assert_str_eq(root->file, "~");
	ck_assert_uint_eq(root->ct, stoke_profile_total(p));
	ck_assert_uint_eq(root->ncallers, 0);
	/* a -> b -> a -> hot_leaf (3 samples) and a -> b -> hot_leaf (9):
	 * a is on 12 samples' stacks, 15 times */
	a = find(&st, "a");
	ck_assert_uint_eq(a->cc, 12);
	ck_assert_uint_eq(a->nc, 15);
	ck_assert_uint_eq(a->ct, 12);
	ck_assert_uint_eq(a->tt, 0);
	leaf = find(&st, "hot_leaf");
	ck_assert_uint_eq(leaf->tt, 12);
	ck_assert_uint_eq(leaf->ncallers, 2); /* from a and from b */
	/* invalid UTF-8 was replaced, never passed on */
	find(&st, "bad\xef\xbf\xbd\xef\xbf\xbdutf8\xef\xbf\xbd");
	/* the empty stack became ('~', 0, '[unknown]'), the same key as the
	 * frame with neither symbol nor module: merged, 1 + 1 */
	ck_assert_uint_eq(find(&st, "[unknown]")->tt, 2);
	ck_assert_double_eq_tol(st.period_s, 0.001, 1e-12);
	stoke_pstats_done(&st);
	stoke_profile_free(p);
}
END_TEST

START_TEST(empty_profile)
{
	struct stoke_profile *p = NULL;
	struct stoke_pstats st;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	ck_assert_int_eq(stoke_pstats_compute(p, &st), 0);
	ck_assert_uint_eq(st.nfuncs, 1);
	ck_assert_str_eq(st.funcs[0].name, "<no samples>");
	stoke_pstats_done(&st);
	stoke_profile_free(p);
}
END_TEST

START_TEST(write_error)
{
	struct stoke_profile *p = synth_profile();
	FILE *full = fopen("/dev/full", "w");

	if (full) {
		ck_assert_int_eq(stoke_output_write_file(p, STOKE_FORMAT_PSTATS, NULL, full), -EIO);
		fclose(full);
	}
	stoke_profile_free(p);
}
END_TEST

static Suite *pstats_suite(void)
{
	Suite *s = suite_create("pstats");
	TCase *tc = tcase_create("pstats");

	tcase_add_test(tc, golden_pstats);
	tcase_add_test(tc, golden_text_equals_python);
	tcase_add_test(tc, invariants);
	tcase_add_test(tc, empty_profile);
	tcase_add_test(tc, write_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pstats_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
