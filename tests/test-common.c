/*
 * Unit tests for common/'s shared tables: the string interner (strpool.h)
 * and the u64 set (u64set.h).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/log.h"
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

/* keys[id] is the key of id; a weak hash (key % 7) makes long shared runs. */
static uint32_t hm_find(const struct stoke_hashmap *m, const uint64_t *keys, uint64_t key,
			uint64_t h)
{
	struct stoke_hashmap_iter it;

	for (uint32_t id = stoke_hashmap_first(m, h, &it); id; id = stoke_hashmap_next(m, &it))
		if (keys[id] == key)
			return id;
	return 0;
}

START_TEST(test_hashmap)
{
	enum { N = 3000 };
	static uint64_t keys[N + 1];
	static bool in[N + 1];
	struct stoke_hashmap m = { 0 };
	uint64_t seed = 12345;

	ck_assert_uint_eq(hm_find(&m, keys, 5, 5), 0); /* empty, no slots */
	for (uint32_t id = 1; id <= N; id++) {
		keys[id] = id * 1000003ULL;
		/* the weak hash on odd ids, a strong one on even ids */
		ck_assert_int_eq(stoke_hashmap_add(&m, id & 1 ? keys[id] % 7 :
							   stoke_hash_u64(keys[id]), id), 0);
		in[id] = true;
	}
	ck_assert_uint_eq(m.count, N);
	ck_assert_uint_le(m.count * 2, m.mask + 1);
	for (uint32_t id = 1; id <= N; id++)
		ck_assert_uint_eq(hm_find(&m, keys, keys[id], id & 1 ? keys[id] % 7 :
						  stoke_hash_u64(keys[id])), id);
	ck_assert_uint_eq(hm_find(&m, keys, 1, 1 % 7), 0);
	/* Remove a pseudo-random half; every other id stays findable. */
	for (int k = 0; k < N; k++) {
		uint32_t id;

		seed = stoke_hash_u64(seed);
		id = (uint32_t)(seed % N) + 1;
		uint64_t h = id & 1 ? keys[id] % 7 : stoke_hash_u64(keys[id]);

		ck_assert_int_eq(stoke_hashmap_remove(&m, h, id), in[id] ? 0 : -ENOENT);
		in[id] = false;
	}
	for (uint32_t id = 1; id <= N; id++)
		ck_assert_uint_eq(hm_find(&m, keys, keys[id], id & 1 ? keys[id] % 7 :
						  stoke_hash_u64(keys[id])), in[id] ? id : 0);
	ck_assert_int_eq(stoke_hashmap_reserve(&m, 10000), 0);
	ck_assert_uint_le((m.count + 10000) * 2, m.mask + 1);
	stoke_hashmap_reset(&m);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_uint_eq(hm_find(&m, keys, keys[2], stoke_hash_u64(keys[2])), 0);
	stoke_hashmap_free(&m);
	stoke_hashmap_free(&m);
}
END_TEST

START_TEST(test_u64map)
{
	struct stoke_u64map m = { 0 };
	uint64_t key, val, sum = 0;
	size_t pos = 0, n = 0;

	ck_assert_uint_eq(stoke_u64map_get(&m, 0), 0);
	ck_assert(!stoke_u64map_next(&m, &pos, &key, &val));
	ck_assert_int_eq(stoke_u64map_add(&m, 1, 0), -EINVAL);
	for (uint64_t k = 0; k < 1000; k++) /* key 0 is a key like any other */
		ck_assert_int_eq(stoke_u64map_add(&m, k << 12, k + 1), 0);
	ck_assert_int_eq(stoke_u64map_add(&m, 4096, 99), -EEXIST);
	ck_assert_uint_eq(m.count, 1000);
	for (uint64_t k = 0; k < 1000; k++) {
		ck_assert_uint_eq(stoke_u64map_get(&m, k << 12), k + 1);
		ck_assert_uint_eq(stoke_u64map_get(&m, (k << 12) + 1), 0);
	}
	while (stoke_u64map_next(&m, &pos, &key, &val)) {
		ck_assert_uint_eq(val, (key >> 12) + 1);
		sum += val;
		n++;
	}
	ck_assert_uint_eq(n, 1000);
	ck_assert_uint_eq(sum, 1000 * 1001 / 2);
	stoke_u64map_free(&m);
	ck_assert_uint_eq(stoke_u64map_get(&m, 4096), 0);
}
END_TEST

/* A name a target chose cannot add, end or colour a line of the log. */
START_TEST(test_log_escapes_control_bytes)
{
	FILE *f = tmpfile();
	char line[256], rest[64];

	ck_assert_ptr_nonnull(f);
	stoke_log_set_prog("t");
	stoke_log_set_file(f);
	log_warn("map %s", "/tmp/x\nstoked: fake line\r\x1b[2K\x7f");
	stoke_log_set_file(NULL);
	rewind(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	ck_assert_str_eq(line, "t: warning: map /tmp/x\\x0astoked: fake line\\x0d\\x1b[2K\\x7f\n");
	ck_assert_ptr_null(fgets(rest, sizeof(rest), f));
	fclose(f);
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("tables");

	tcase_add_test(tc, test_strpool);
	tcase_add_test(tc, test_u64set);
	tcase_add_test(tc, test_hashmap);
	tcase_add_test(tc, test_u64map);
	tcase_add_test(tc, test_log_escapes_control_bytes);
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
