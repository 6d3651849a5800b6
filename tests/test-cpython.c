/*
 * Unit tests for stack/cpython: the location-table decoder against the
 * lines CPython itself gives for every code unit of a real function, the
 * offsets table, 3.13's _Py_DebugOffsets parsing, the refusal of a
 * process that is not CPython, and the splice of interpreter frames into a
 * native stack (stack/interp.h). Reading a live interpreter is tested in
 * tests/integration/test_python.py.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cpython.h"
#include "merge.h"
#include "offsets.h"
#include "stack/interp.h"

/*
 * Generated once with this script under /usr/bin/python3.11:
 *   def sample(xs):  (a loop, a two-line expression, try/except, 20 blank
 *   lines for a long-form entry, a two-line return)
 *   c.co_linetable, c.co_firstlineno, and per code unit
 *   [p[0] if p[0] is not None else -1 for p in c.co_positions()]
 */
/* co_linetable of sample() below, compiled by CPython 3.11.2, and the line
 * of each code unit as the interpreter's code.co_positions() gives it */
static const uint8_t sample_table[] = {
	0x80, 0x00, 0xd8, 0x0c, 0x0d, 0x80, 0x45, 0xd8, 0x0d, 0x0f, 0xf0, 0x00, 0x1d, 0x05, 0x13,
	0xf0, 0x00, 0x1d, 0x05, 0x13, 0x88, 0x01, 0xd8, 0x0b, 0x0c, 0x88, 0x71, 0x89, 0x35, 0x90,
	0x41, 0x8a, 0x3a, 0x88, 0x3a, 0xd8, 0x0c, 0x11, 0x90, 0x61, 0xd8, 0x16, 0x17, 0xf1, 0x03,
	0x01, 0x17, 0x18, 0xf1, 0x00, 0x01, 0x0d, 0x19, 0x88, 0x45, 0x88, 0x45, 0xf0, 0x06, 0x04,
	0x0d, 0x15, 0xd8, 0x10, 0x15, 0x9d, 0x13, 0xdd, 0x14, 0x17, 0x98, 0x01, 0x91, 0x46, 0x94,
	0x46, 0xf1, 0x03, 0x01, 0x1a, 0x1c, 0xf4, 0x00, 0x01, 0x1a, 0x1c, 0xf1, 0x00, 0x01, 0x11,
	0x1c, 0x90, 0x05, 0x90, 0x05, 0xf8, 0xe5, 0x13, 0x1d, 0xf0, 0x00, 0x01, 0x0d, 0x15, 0xf0,
	0x00, 0x01, 0x0d, 0x15, 0xf0, 0x00, 0x01, 0x0d, 0x15, 0xd8, 0x10, 0x14, 0x90, 0x04, 0xf0,
	0x03, 0x01, 0x0d, 0x15, 0xf8, 0xf8, 0xf8, 0xf0, 0x2a, 0x00, 0x09, 0x0e, 0x90, 0x11, 0x89,
	0x0a, 0x88, 0x05, 0x88, 0x05, 0xd8, 0x0c, 0x11, 0xdd, 0x0c, 0x0f, 0x90, 0x02, 0x89, 0x47,
	0x8c, 0x47, 0xf0, 0x03, 0x01, 0x0c, 0x15, 0xf0, 0x00, 0x01, 0x05, 0x15,
};
static const int sample_first = 2;
static const int sample_lines[] = {
	2,  3,	3,  4,	4,  4,	4,  5,	5,  5,	5,  5,	5,  5,	5,  5,	6,  6,	7,  6,
	6,  6,	6,  6,	6,  9,	10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11,
	11, 11, 11, 11, 11, 11, 11, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, -1, 12,
	12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 12, -1, -1, -1, 33, 33, 33, 33, 33, 33,
	34, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 34, 34,
};
/* entry codes used: [0, 1, 2, 3, 11, 12, 14, 15] */

START_TEST(linetable_matches_cpython)
{
	size_t n = sizeof(sample_lines) / sizeof(sample_lines[0]);

	for (size_t i = 0; i < n; i++)
		ck_assert_msg(stoke_py_linetable_line(sample_table, sizeof(sample_table),
						      sample_first, (long)i) == sample_lines[i],
			      "code unit %zu: line %d, CPython says %d", i,
			      stoke_py_linetable_line(sample_table, sizeof(sample_table),
						      sample_first, (long)i),
			      sample_lines[i]);
	/* past the end, before the start */
	ck_assert_int_eq(stoke_py_linetable_line(sample_table, sizeof(sample_table), sample_first,
						 (long)n + 5),
			 -1);
	ck_assert_int_eq(
		stoke_py_linetable_line(sample_table, sizeof(sample_table), sample_first, -1),
		sample_first);
}
END_TEST

START_TEST(linetable_bad_input)
{
	static const uint8_t not_entry[] = {0x01, 0x02, 0x03};
	/* a long-form entry cut in its varints */
	static const uint8_t cut[] = {0x80 | (14 << 3), 0x40 | 0x3f};

	ck_assert_int_eq(stoke_py_linetable_line(not_entry, sizeof(not_entry), 10, 0), -1);
	ck_assert_int_eq(stoke_py_linetable_line(cut, sizeof(cut), 10, 3), -1);
	ck_assert_int_eq(stoke_py_linetable_line(NULL, 0, 10, 0), -1);
	/* cut tables never read past their length (ASan/valgrind would say) */
	for (size_t len = 0; len < sizeof(sample_table); len++)
		stoke_py_linetable_line(sample_table, len, sample_first, 1000);
}
END_TEST

START_TEST(offsets_table)
{
	ck_assert_ptr_nonnull(stoke_py_offsets_find(3, 11));
	ck_assert_ptr_nonnull(stoke_py_offsets_find(3, 12));
	ck_assert_ptr_nonnull(stoke_py_offsets_find(3, 13));
	ck_assert_ptr_null(stoke_py_offsets_find(3, 10));
	ck_assert_ptr_null(stoke_py_offsets_find(3, 14));
	ck_assert_ptr_null(stoke_py_offsets_find(2, 7));
	/* 3.11 reaches the frame through cframe, 3.13 directly */
	ck_assert_int_ne(stoke_py_offsets_find(3, 11)->tstate_cframe, STOKE_PY_NO_FIELD);
	ck_assert_int_eq(stoke_py_offsets_find(3, 13)->tstate_cframe, STOKE_PY_NO_FIELD);
}
END_TEST

/* A 3.13 description: the values pyenv's 3.13.0 holds, threads_head and
 * co_code_adaptive changed so that the test sees they are taken. */
static void debug_offsets(uint64_t *raw)
{
	memset(raw, 0, STOKE_PY_DEBUG_OFFSETS_WORDS * sizeof(*raw));
	memcpy(raw, "xdebugpy", 8);
	raw[1] = 0x030d00f0;
	raw[5] = 632;
	raw[9] = 7352;
	raw[21] = 8;
	raw[23] = 72;
	raw[24] = 152;
	raw[25] = 160;
	raw[29] = 8;
	raw[30] = 0;
	raw[31] = 56;
	raw[33] = 70;
	raw[35] = 112;
	raw[37] = 128;
	raw[38] = 136;
	raw[39] = 68;
	raw[43] = 208;
	raw[45] = 8;
	raw[65] = 16;
	raw[66] = 32;
	raw[68] = 32;
	raw[69] = 16;
	raw[70] = 40;
}

START_TEST(debug_offsets_parsed)
{
	uint64_t raw[STOKE_PY_DEBUG_OFFSETS_WORDS];
	struct stoke_py_offsets o;

	debug_offsets(raw);
	ck_assert_int_eq(stoke_py_offsets_from_debug(raw, 0x030d00f0, &o), 0);
	ck_assert_int_eq(o.interp_threads_head, 7352);
	ck_assert_int_eq(o.code_adaptive, 208);
	ck_assert_int_eq(o.tstate_current_frame, 72);
	ck_assert_int_eq(o.tstate_cframe, STOKE_PY_NO_FIELD);
	ck_assert_int_eq(o.frame_owner, 70);
	ck_assert_int_eq(o.unicode_ascii_data, 40);
	ck_assert_int_eq(o.unicode_compact_data, 56);
}
END_TEST

START_TEST(debug_offsets_refused)
{
	uint64_t raw[STOKE_PY_DEBUG_OFFSETS_WORDS];
	struct stoke_py_offsets o;

	debug_offsets(raw);
	raw[0] ^= 1; /* cookie */
	ck_assert_int_eq(stoke_py_offsets_from_debug(raw, 0x030d00f0, &o), -EINVAL);
	debug_offsets(raw);
	raw[2] = 1; /* free-threaded */
	ck_assert_int_eq(stoke_py_offsets_from_debug(raw, 0x030d00f0, &o), -EINVAL);
	debug_offsets(raw);
	/* another version's description has another layout */
	raw[1] = 0x030e00a1;
	ck_assert_int_eq(stoke_py_offsets_from_debug(raw, 0x030e00a1, &o), -EINVAL);
	debug_offsets(raw);
	/* a description that disagrees with Py_Version */
	ck_assert_int_eq(stoke_py_offsets_from_debug(raw, 0x030c01f0, &o), -EINVAL);
	debug_offsets(raw);
	raw[9] = 1u << 20; /* out of range */
	ck_assert_int_eq(stoke_py_offsets_from_debug(raw, 0x030d00f0, &o), -EINVAL);
}
END_TEST

START_TEST(open_not_python)
{
	struct stoke_py *py = NULL;
	unsigned long hex = 1;
	char why[256] = "";

	ck_assert_int_eq(stoke_py_open(getpid(), &py, &hex, why, sizeof(why)), -ENOENT);
	ck_assert_ptr_null(py);
	ck_assert_int_eq(hex, 0);
	ck_assert_ptr_nonnull(strstr(why, "not CPython"));
}
END_TEST

static struct stoke_py_frame pyf(bool entry)
{
	struct stoke_py_frame f = {.is_entry = entry};
	return f;
}

START_TEST(merge_replaces_eval_frames)
{
	const char *names[] = {"ext_c",
			       "_PyEval_EvalFrameDefault",
			       "_PyFunction_Vectorcall",
			       "_PyEval_EvalFrameDefault.cold",
			       "main",
			       NULL};
	struct stoke_py_frame py[4] = {pyf(false), pyf(true), pyf(false), pyf(true)};
	struct stoke_py_merged m[16];
	/* ext_c, p0 p1 (first group), _PyFunction_Vectorcall, p2 p3, main, NULL */
	const int want_native[] = {0, -1, -1, 2, -1, -1, 4, 5};
	const int want_py[] = {-1, 0, 1, -1, 2, 3, -1, -1};

	size_t n = stoke_py_merge(names, 6, py, 4, m, 16);
	ck_assert_uint_eq(n, 8);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(m[i].native_idx, want_native[i]);
		ck_assert_int_eq(m[i].py_idx, want_py[i]);
	}
	/* a native walk cut short: the Python frames left go at the root */
	n = stoke_py_merge(names, 2, py, 4, m, 16);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(m[1].py_idx, 0);
	ck_assert_int_eq(m[2].py_idx, 1);
	ck_assert_int_eq(m[3].py_idx, 2);
	ck_assert_int_eq(m[4].py_idx, 3);
	/* bounded by max */
	ck_assert_uint_eq(stoke_py_merge(names, 6, py, 4, m, 3), 3);
	ck_assert(!stoke_py_is_eval_frame("_PyEval_EvalFrameDefaultX"));
	ck_assert(!stoke_py_is_eval_frame(NULL));
}
END_TEST

/* A frame source whose evaluator is the addresses 0x1000-0x1fff of pid 7. */
static bool fake_is_eval(void *impl, uint32_t pid, uint64_t addr)
{
	return pid == 7 && addr >= 0x1000 && addr < 0x2000;
}

static const struct stoke_interp_ops fake_ops = {
	.name = "fake",
	.is_eval = fake_is_eval,
};

START_TEST(interp_splice)
{
	const struct stoke_interp_source src = {.ops = &fake_ops};
	/* leaf first: a kernel frame, a C extension, the evaluator, a vectorcall,
	 * the evaluator again (as a kernel address: never spliced), the
	 * evaluator, main */
	const uint64_t addrs[] = {0x1100, 0x9000, 0x1200, 0x5000, 0x1300, 0x1400, 0x400};
	const bool user[] = {false, true, true, true, false, true, true};
	struct stoke_interp_frame f[4] = {
		{.is_entry = false}, {.is_entry = true}, {.is_entry = false}, {.is_entry = true}};
	struct stoke_interp_slot sl[16];
	const int want_native[] = {0, 1, -1, -1, 3, 4, -1, -1, 6};
	const int want_interp[] = {-1, -1, 0, 1, -1, -1, 2, 3, -1};

	size_t n = stoke_interp_splice(&src, 7, addrs, user, 7, f, 4, sl, 16);
	ck_assert_uint_eq(n, 9);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(sl[i].native_idx, want_native[i]);
		ck_assert_int_eq(sl[i].interp_idx, want_interp[i]);
	}
	/* another process: nothing is the evaluator, the frames go at the root */
	n = stoke_interp_splice(&src, 8, addrs, user, 7, f, 4, sl, 16);
	ck_assert_uint_eq(n, 11);
	ck_assert_int_eq(sl[6].native_idx, 6);
	ck_assert_int_eq(sl[7].interp_idx, 0);
	ck_assert_int_eq(sl[10].interp_idx, 3);
	/* bounded by max */
	ck_assert_uint_eq(stoke_interp_splice(&src, 7, addrs, user, 7, f, 4, sl, 4), 4);
}
END_TEST

static Suite *cpython_suite(void)
{
	Suite *s = suite_create("cpython");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, linetable_matches_cpython);
	tcase_add_test(tc, linetable_bad_input);
	tcase_add_test(tc, offsets_table);
	tcase_add_test(tc, debug_offsets_parsed);
	tcase_add_test(tc, debug_offsets_refused);
	tcase_add_test(tc, open_not_python);
	tcase_add_test(tc, merge_replaces_eval_frames);
	tcase_add_test(tc, interp_splice);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cpython_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
