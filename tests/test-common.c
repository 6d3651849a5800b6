/*
 * Unit tests for common/'s shared tables: the string interner (strpool.h)
 * and the u64 set (u64set.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strpool.h"
#include "common/u64set.h"

START_TEST(test_strpool)
{
	struct stoke_strpool *p;
	const char *a, *b, *c;
	char big[200000];

	ck_assert_int_eq(stoke_strpool_new(&p), 0);
	a = stoke_strpool_intern(p, "main");
	b = stoke_strpool_intern_n(p, "mainly", 4);
	c = stoke_strpool_intern(p, "mainly");
	ck_assert_ptr_eq(a, b);
	ck_assert_str_eq(b, "main");
	ck_assert_ptr_ne(a, c);
	ck_assert_str_eq(c, "mainly");
	/* Many strings (rehashing) and one bigger than a chunk: every earlier
	 * pointer stays valid and equal strings stay one. */
	for (int i = 0; i < 5000; i++) {
		char name[32];

		snprintf(name, sizeof(name), "fn_%d", i);
		ck_assert_str_eq(stoke_strpool_intern(p, name), name);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_uint_eq(strlen(stoke_strpool_intern(p, big)), sizeof(big) - 1);
	ck_assert_ptr_eq(stoke_strpool_intern(p, "main"), a);
	ck_assert_ptr_eq(stoke_strpool_intern(p, "fn_4999"), stoke_strpool_intern(p, "fn_4999"));
	ck_assert_str_eq(a, "main");
	stoke_strpool_free(p);
	stoke_strpool_free(NULL);
}
END_TEST

START_TEST(test_u64set)
{
	struct stoke_u64set set = { 0 };

	ck_assert(!stoke_u64set_has(&set, 1));
	ck_assert_int_eq(stoke_u64set_add(&set, 0), 0); /* ignored */
	ck_assert(!stoke_u64set_has(&set, 0));
	for (uint64_t k = 1; k <= 1000; k++)
		ck_assert_int_eq(stoke_u64set_add(&set, k * 4096), 0);
	ck_assert_int_eq(stoke_u64set_add(&set, 4096), 0); /* twice: once */
	ck_assert_uint_eq(set.count, 1000);
	for (uint64_t k = 1; k <= 1000; k++) {
		ck_assert(stoke_u64set_has(&set, k * 4096));
		ck_assert(!stoke_u64set_has(&set, k * 4096 + 1));
	}
	ck_assert_uint_le(set.count * 2, set.nslots);
	stoke_u64set_clear(&set);
	ck_assert(!stoke_u64set_has(&set, 4096));
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("tables");

	tcase_add_test(tc, test_strpool);
	tcase_add_test(tc, test_u64set);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(common_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
