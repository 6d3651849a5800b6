/*
 * Golden test for the speedscope writer on the synthetic profile (tests/synth.h:
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
	synth_check_golden(STOKE_FORMAT_SPEEDSCOPE, "synth.speedscope.json");
}
END_TEST

START_TEST(empty_profile)
{
	synth_check_empty(STOKE_FORMAT_SPEEDSCOPE, "empty.speedscope.json");
}
END_TEST

START_TEST(write_error)
{
	synth_check_write_error(STOKE_FORMAT_SPEEDSCOPE);
}
END_TEST


static int count_of(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	int count = 0;

	for (size_t i = 0; hay[i]; i++)
		count += strncmp(hay + i, needle, n) == 0;
	return count;
}

/* Frames are deduplicated, named per thread, stacks root first. */
START_TEST(structure)
{
	struct stoke_profile *p = synth_profile();
	size_t len;
	char *buf = synth_render(p, STOKE_FORMAT_SPEEDSCOPE, NULL, &len);

	ck_assert_ptr_nonnull(strstr(buf, "\"name\":\"main\",\"file\":\"/src/app.c\",\"line\":10}"));
	ck_assert_int_eq(count_of(buf, "\"name\":\"main\""), 1);
	ck_assert_ptr_nonnull(strstr(buf, "\"name\":\"wrk <\\\"&\\\">;x 7 (101)\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"name\":\"bad\xef\xbf\xbd\xef\xbf\xbdutf8\xef\xbf\xbd\""));
	/* thread 100: s1 (5), s2 (3), s5 (1), s1 (4): main=0 run=1 a=2 b=3 leaf=4 */
	ck_assert_ptr_nonnull(strstr(buf, "\"samples\":[[0,1,2,3,4],\n[0,1,2,3,2,4],"));
	ck_assert_ptr_nonnull(strstr(buf, "\"weights\":[5000000,3000000,1000000,4000000]"));
	ck_assert_ptr_null(strstr(buf, "idle"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("speedscope");
	TCase *tc = tcase_create("speedscope");

	tcase_add_test(tc, golden);
	tcase_add_test(tc, empty_profile);
	tcase_add_test(tc, write_error);
	tcase_add_test(tc, structure);
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
