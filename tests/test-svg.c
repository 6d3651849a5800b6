/*
 * Golden test for the svg writer on the synthetic profile (tests/synth.h:
 * hostile names, recursion, kernel/JIT/inlined/unknown frames, two
 * threads), plus the checks below. The real reader checks run in
 * tests/integration/test_formats.py.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/output.h"
#include "synth.h"

START_TEST(golden)
{
	synth_check_golden(STOKE_FORMAT_SVG, "synth.svg");
}
END_TEST

START_TEST(empty_profile)
{
	synth_check_empty(STOKE_FORMAT_SVG, "empty.svg");
}
END_TEST

START_TEST(write_error)
{
	synth_check_write_error(STOKE_FORMAT_SVG);
}
END_TEST


START_TEST(options)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_output_opts opts;
	size_t len;
	char *buf;

	stoke_output_opts_init(&opts);
	opts.title = "My <profile> & co";
	opts.width = 800;
	opts.inverted = true;
	opts.minwidth = 50;
	buf = synth_render(p, STOKE_FORMAT_SVG, &opts, &len);
	synth_golden("synth-options.svg", buf, len);
	ck_assert_ptr_nonnull(strstr(buf, ">My &lt;profile&gt; &amp; co</text>"));
	ck_assert_ptr_nonnull(strstr(buf, "width=\"800\""));
	/* 50px of 780 is 1.28 samples of 20: 1-sample boxes are gone */
	ck_assert_ptr_null(strstr(buf, "<title>inlined_helper"));
	ck_assert_ptr_nonnull(strstr(buf, "<title>hot_leaf (3 samples, 15.00%)</title>"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

START_TEST(titles)
{
	struct stoke_profile *p = synth_profile();
	size_t len;
	char *buf = synth_render(p, STOKE_FORMAT_SVG, NULL, &len);

	ck_assert_ptr_nonnull(strstr(buf, "<title>all (20 samples, 100.00%)</title>"));
	/* the image's title is the command line by default (#17 item 12) */
	ck_assert_ptr_nonnull(strstr(buf, "<text id=\"title\" x=\"600.0\" y=\"24\">./app --flag "
					  "&quot;x&quot;</text>"));
	/* hot_leaf is under b (9) and under a (3) in the recursion: two boxes */
	ck_assert_ptr_nonnull(strstr(buf, "<title>hot_leaf (9 samples, 45.00%)</title>"));
	ck_assert_ptr_nonnull(strstr(buf, "<title>op;semi &lt;a&amp;b&gt; &quot;q&quot; sp ace (2 samples"));
	ck_assert_ptr_null(strstr(buf, "\xff"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("svg");
	TCase *tc = tcase_create("svg");

	tcase_add_test(tc, golden);
	tcase_add_test(tc, empty_profile);
	tcase_add_test(tc, write_error);
	tcase_add_test(tc, options);
	tcase_add_test(tc, titles);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(make_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
