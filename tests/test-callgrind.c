/*
 * Golden test for the callgrind writer on the synthetic profile (tests/synth.h:
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
	synth_check_golden(STOKE_FORMAT_CALLGRIND, "synth.callgrind");
}
END_TEST

START_TEST(empty_profile)
{
	synth_check_empty(STOKE_FORMAT_CALLGRIND, "empty.callgrind");
}
END_TEST

START_TEST(write_error)
{
	synth_check_write_error(STOKE_FORMAT_CALLGRIND);
}
END_TEST


START_TEST(costs)
{
	struct stoke_profile *p = synth_profile();
	size_t len;
	char *buf = synth_render(p, STOKE_FORMAT_CALLGRIND, NULL, &len);

	ck_assert_ptr_nonnull(strstr(buf, "events: Samples\nsummary: 20\n"));
	/* hot_leaf at /src/hot.c:7: 12 samples of self cost */
	ck_assert_ptr_nonnull(strstr(buf, "\n7 12\n"));
	/* the recursive a -> b -> a counts a->b once per sample: 12, not 15 */
	ck_assert_ptr_nonnull(strstr(buf, "cfn=(2) b\ncalls=12 40\n30 12\n"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("callgrind");
	TCase *tc = tcase_create("callgrind");

	tcase_add_test(tc, golden);
	tcase_add_test(tc, empty_profile);
	tcase_add_test(tc, write_error);
	tcase_add_test(tc, costs);
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
