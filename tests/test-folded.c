/*
 * Golden tests for the folded-stacks writer (formats/folded.h): a small
 * hand-built profile with two threads, shared prefixes, kernel, JIT,
 * inlined and unknown frames and names that need sanitising, written with
 * and without per_thread and annotate. Also merging, bytewise order, the
 * empty profile, write errors and stoke_frame_display.
 *
 * The expected outputs are inline: each is short, and seeing the input next
 * to the output is the point of a golden test.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/folded.h"
#include "formats/profile.h"
#include "formats/textprof.h"

static uint32_t intern(struct stoke_profile *p, const char *s)
{
	uint32_t id = 0;

	ck_assert_int_eq(stoke_profile_intern(p, s, &id), 0);
	return id;
}

static uint32_t mkframe(struct stoke_profile *p, const char *name, const char *module,
			uint64_t offset, enum stoke_pframe_kind kind, bool inlined)
{
	struct stoke_pframe f = {
		.name = intern(p, name),
		.module = intern(p, module),
		.offset = offset,
		.kind = (uint8_t)kind,
		.inlined = inlined,
	};
	uint32_t id = 0;

	ck_assert_int_eq(stoke_profile_frame(p, &f, &id), 0);
	return id;
}

static uint32_t fn(struct stoke_profile *p, const char *name)
{
	return mkframe(p, name, "/usr/bin/app", 0, STOKE_PFRAME_USER, false);
}

/* Intern the stack of frame ids given root first, 0-terminated. */
static uint32_t mkstack(struct stoke_profile *p, const uint32_t *frames)
{
	uint32_t s = 0;

	for (; *frames; frames++)
		ck_assert_int_eq(stoke_profile_stack(p, s, *frames, &s), 0);
	return s;
}

#define STACK(p, ...) mkstack((p), (const uint32_t[]){ __VA_ARGS__, 0 })

static void sample(struct stoke_profile *p, uint32_t tid, uint32_t stack, uint64_t w)
{
	ck_assert_int_eq(stoke_profile_add_sample(p, tid, 0, stack, w), 0);
}

/* Write p with the given options and return the output (malloc'd). */
static char *write_folded(const struct stoke_profile *p, bool per_thread, bool annotate)
{
	struct stoke_folded_opts opts;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	stoke_folded_opts_init(&opts);
	opts.per_thread = per_thread;
	opts.annotate = annotate;
	f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(stoke_folded_write(p, &opts, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

static void assert_output(const struct stoke_profile *p, bool per_thread, bool annotate,
			  const char *expected)
{
	char *got = write_folded(p, per_thread, annotate);

	ck_assert_msg(strcmp(got, expected) == 0,
		      "per_thread=%d annotate=%d\n--- expected\n%s--- got\n%s---", per_thread,
		      annotate, expected, got);
	free(got);
}

/*
 * The golden profile. Thread 100 "app" is registered first; thread 101 is
 * first seen in a sample and named afterwards with a name that needs
 * sanitising.
 */
static struct stoke_profile *golden_profile(void)
{
	struct stoke_profile *p = NULL;
	uint32_t main_, work, semi, inl, sysr, sched, foo1, foo2, unk, opnew, nl, jit, zeta;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	main_ = fn(p, "main");
	work = fn(p, "do_work");
	semi = fn(p, "a;b");
	inl = mkframe(p, "inl_fn", "/usr/bin/app", 0, STOKE_PFRAME_USER, true);
	sysr = mkframe(p, "sys_read", "[kernel.kallsyms]", 0, STOKE_PFRAME_KERNEL, false);
	sched = mkframe(p, "schedule", "[kernel.kallsyms]", 0, STOKE_PFRAME_KERNEL, false);
	/* Two unknown frames in one module render alike and must merge. */
	foo1 = mkframe(p, NULL, "/usr/lib/libfoo.so.1", 0x10, STOKE_PFRAME_USER, false);
	foo2 = mkframe(p, NULL, "/usr/lib/libfoo.so.1", 0x20, STOKE_PFRAME_USER, false);
	unk = mkframe(p, NULL, NULL, 0x1234, STOKE_PFRAME_USER, false);
	opnew = fn(p, "operator new 123");
	nl = fn(p, "line\nbreak");
	jit = mkframe(p, "jitted", NULL, 0, STOKE_PFRAME_JIT, false);
	/* 'Z' < '[' < 'd' bytewise; a locale or case-folding sort differs. */
	zeta = fn(p, "Zeta");

	ck_assert_int_eq(stoke_profile_thread(p, 100, 100, "app"), 0);
	sample(p, 100, STACK(p, main_, work, semi), 1);
	sample(p, 101, STACK(p, main_, work, semi), 1);
	sample(p, 100, STACK(p, main_, work, inl), 3);
	sample(p, 100, STACK(p, main_, work, sysr, sched), 1);
	sample(p, 100, STACK(p, main_, foo1), 1);
	sample(p, 101, STACK(p, main_, foo2), 2);
	sample(p, 101, STACK(p, unk), 1);
	sample(p, 101, 0, 2);
	sample(p, 101, STACK(p, main_, opnew), 1);
	sample(p, 101, STACK(p, main_, nl), 1);
	sample(p, 101, STACK(p, main_, jit), 1);
	sample(p, 100, STACK(p, main_, zeta), 1);
	sample(p, 100, STACK(p, main_, work, semi), 1);
	ck_assert_int_eq(stoke_profile_thread(p, 100, 101, "w;k\n7"), 0);
	return p;
}

START_TEST(test_golden_plain)
{
	struct stoke_profile *p = golden_profile();

	/* The empty stack and the root-only unknown frame merge as "[unknown]". */
	assert_output(p, false, true,
		      "[unknown] 3\n"
		      "main;Zeta 1\n"
		      "main;[libfoo.so.1] 3\n"
		      "main;do_work;a:b 3\n"
		      "main;do_work;inl_fn_[i] 3\n"
		      "main;do_work;sys_read_[k];schedule_[k] 1\n"
		      "main;jitted_[j] 1\n"
		      "main;line break 1\n"
		      "main;operator new_123 1\n");
	assert_output(p, false, false,
		      "[unknown] 3\n"
		      "main;Zeta 1\n"
		      "main;[libfoo.so.1] 3\n"
		      "main;do_work;a:b 3\n"
		      "main;do_work;inl_fn 3\n"
		      "main;do_work;sys_read;schedule 1\n"
		      "main;jitted 1\n"
		      "main;line break 1\n"
		      "main;operator new_123 1\n");
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_golden_per_thread)
{
	struct stoke_profile *p = golden_profile();

	/* The thread frame is sanitised too: ';' and the newline. An empty
	 * stack is just the thread frame. */
	assert_output(p, true, true,
		      "app-100/100;main;Zeta 1\n"
		      "app-100/100;main;[libfoo.so.1] 1\n"
		      "app-100/100;main;do_work;a:b 2\n"
		      "app-100/100;main;do_work;inl_fn_[i] 3\n"
		      "app-100/100;main;do_work;sys_read_[k];schedule_[k] 1\n"
		      "w:k 7-100/101 2\n"
		      "w:k 7-100/101;[unknown] 1\n"
		      "w:k 7-100/101;main;[libfoo.so.1] 2\n"
		      "w:k 7-100/101;main;do_work;a:b 1\n"
		      "w:k 7-100/101;main;jitted_[j] 1\n"
		      "w:k 7-100/101;main;line break 1\n"
		      "w:k 7-100/101;main;operator new_123 1\n");
	assert_output(p, true, false,
		      "app-100/100;main;Zeta 1\n"
		      "app-100/100;main;[libfoo.so.1] 1\n"
		      "app-100/100;main;do_work;a:b 2\n"
		      "app-100/100;main;do_work;inl_fn 3\n"
		      "app-100/100;main;do_work;sys_read;schedule 1\n"
		      "w:k 7-100/101 2\n"
		      "w:k 7-100/101;[unknown] 1\n"
		      "w:k 7-100/101;main;[libfoo.so.1] 2\n"
		      "w:k 7-100/101;main;do_work;a:b 1\n"
		      "w:k 7-100/101;main;jitted 1\n"
		      "w:k 7-100/101;main;line break 1\n"
		      "w:k 7-100/101;main;operator new_123 1\n");
	stoke_profile_free(p);
}
END_TEST

/* NULL options mean the defaults: not per thread, annotated. */
START_TEST(test_default_opts)
{
	struct stoke_profile *p = golden_profile();
	struct stoke_folded_opts opts;
	char *buf = NULL, *expected;
	size_t len = 0;
	FILE *f;

	stoke_folded_opts_init(&opts);
	ck_assert(!opts.per_thread);
	ck_assert(opts.annotate);
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(stoke_folded_write(p, NULL, f), 0);
	fclose(f);
	expected = write_folded(p, false, true);
	ck_assert_str_eq(buf, expected);
	free(buf);
	free(expected);
	stoke_profile_free(p);
}
END_TEST

/* One-frame stacks, one per name, each with weight 1: check the name. */
static void check_names(const char *const (*cases)[2], size_t n)
{
	struct stoke_profile *p = NULL;
	char *got, *line;

	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(stoke_profile_new(&p), 0);
		sample(p, 1, STACK(p, fn(p, cases[i][0])), 1);
		got = write_folded(p, false, true);
		ck_assert_int_ge(asprintf(&line, "%s 1\n", cases[i][1]), 0);
		ck_assert_msg(strcmp(got, line) == 0, "name %zu: got \"%s\", want \"%s\"", i,
			      got, line);
		free(line);
		free(got);
		stoke_profile_free(p);
	}
}

START_TEST(test_sanitise)
{
	static const char *const cases[][2] = {
		{ "plain", "plain" },
		{ "a;b;c", "a:b:c" },
		{ "tab\there", "tab here" },
		{ "cr\rlf\n", "cr lf " },
		{ "bell\a\x7f", "bell  " },
		{ "operator new 123", "operator new_123" },
		{ "f 1.5", "f_1.5" },
		{ "f 12.", "f_12." },
		{ "two  7", "two _7" },
		{ "tab\t9", "tab_9" },
		{ "nl\n42", "nl_42" },
		{ "digits123", "digits123" },
		{ "x 12y", "x 12y" },
		{ "v.5", "v.5" },
		{ "v .5", "v .5" },
		{ "123", "123" },
		{ "f(int, char) const", "f(int, char) const" },
		{ "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9" },
	};

	check_names(cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

START_TEST(test_unknown_frames)
{
	struct stoke_profile *p = NULL;
	char *got;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	/* Already bracketed modules are not wrapped twice; a bare file name
	 * has no directory; a module that is a directory path has no
	 * basename and is unknown; the module's name is sanitised. */
	sample(p, 1, STACK(p, mkframe(p, NULL, "[vdso]", 0x10, STOKE_PFRAME_USER, false)), 1);
	sample(p, 1, STACK(p, mkframe(p, NULL, "libbar.so", 0x10, STOKE_PFRAME_USER, false)), 1);
	sample(p, 1, STACK(p, mkframe(p, NULL, "/odd/", 0x10, STOKE_PFRAME_USER, false)), 1);
	sample(p, 1, STACK(p, mkframe(p, NULL, "/x/we;ird 2", 0, STOKE_PFRAME_USER, false)), 1);
	sample(p, 1, STACK(p, mkframe(p, NULL, NULL, 0, STOKE_PFRAME_KERNEL, false)), 4);
	got = write_folded(p, false, true);
	ck_assert_str_eq(got, "[libbar.so] 1\n"
			      "[unknown] 1\n"
			      "[unknown]_[k] 4\n"
			      "[vdso] 1\n"
			      "[we:ird_2] 1\n");
	free(got);
	stoke_profile_free(p);
}
END_TEST

/* Output must not depend on the order samples arrive in. */
START_TEST(test_merge_order)
{
	struct stoke_profile *a = NULL, *b = NULL;
	const char *names[] = { "b", "a", "B", "_", "a b", "ab", "a;" };
	enum { N = sizeof(names) / sizeof(names[0]) };
	uint32_t sa[N], sb[N];
	char *oa, *ob;

	ck_assert_int_eq(stoke_profile_new(&a), 0);
	ck_assert_int_eq(stoke_profile_new(&b), 0);
	for (size_t i = 0; i < N; i++) {
		sa[i] = STACK(a, fn(a, "root"), fn(a, names[i]));
		sb[N - 1 - i] = STACK(b, fn(b, "root"), fn(b, names[N - 1 - i]));
	}
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < N; i++) {
			sample(a, 1 + (uint32_t)i, sa[i], 1 + i);
			sample(b, 9, sb[N - 1 - i], 1 + (N - 1 - i));
		}
	}
	oa = write_folded(a, false, true);
	ob = write_folded(b, false, true);
	ck_assert_str_eq(oa, ob);
	/* "a;" sanitises to "a:" and sorts with it; "a b" (space) before "a:". */
	ck_assert_str_eq(oa, "root;B 9\n"
			     "root;_ 12\n"
			     "root;a 6\n"
			     "root;a b 15\n"
			     "root;a: 21\n"
			     "root;ab 18\n"
			     "root;b 3\n");
	free(oa);
	free(ob);
	stoke_profile_free(a);
	stoke_profile_free(b);
}
END_TEST

START_TEST(test_empty)
{
	struct stoke_profile *p = NULL;
	char *got;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	got = write_folded(p, false, true);
	ck_assert_str_eq(got, "");
	free(got);
	/* Threads and stacks without samples write nothing either. */
	ck_assert_int_eq(stoke_profile_thread(p, 1, 1, "t"), 0);
	STACK(p, fn(p, "main"));
	got = write_folded(p, true, true);
	ck_assert_str_eq(got, "");
	free(got);
	stoke_profile_free(p);
}
END_TEST

static void check_eio(int mode)
{
	struct stoke_profile *p = golden_profile();
	FILE *f = fopen("/dev/full", "we");

	if (!f) {
		stoke_profile_free(p);
		return;
	}
	if (mode == _IONBF)
		ck_assert_int_eq(setvbuf(f, NULL, _IONBF, 0), 0);
	ck_assert_int_eq(stoke_folded_write(p, NULL, f), -EIO);
	fclose(f);
	stoke_profile_free(p);
}

START_TEST(test_eio_unbuffered)
{
	check_eio(_IONBF);
}
END_TEST

/* Buffered: the error only shows when the writer flushes. */
START_TEST(test_eio_buffered)
{
	check_eio(_IOFBF);
}
END_TEST

START_TEST(test_frame_display)
{
	struct stoke_profile *p = NULL;
	const struct stoke_pframe *f;
	char buf[64];

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	f = stoke_profile_get_frame(p, fn(p, "main"));
	ck_assert_str_eq(stoke_frame_display(p, f, buf, sizeof(buf)), "main");
	f = stoke_profile_get_frame(
		p, mkframe(p, NULL, "/usr/lib/libfoo.so.1", 0x1a2b, STOKE_PFRAME_USER, false));
	ck_assert_ptr_eq(stoke_frame_display(p, f, buf, sizeof(buf)), buf);
	ck_assert_str_eq(buf, "libfoo.so.1+0x1a2b");
	/* Truncated, still terminated. */
	ck_assert_str_eq(stoke_frame_display(p, f, buf, 5), "libf");
	f = stoke_profile_get_frame(p, mkframe(p, NULL, NULL, 0x10, STOKE_PFRAME_USER, false));
	ck_assert_str_eq(stoke_frame_display(p, f, buf, sizeof(buf)), "[unknown]");
	/* Display names are not sanitised: that is each writer's job. */
	f = stoke_profile_get_frame(p, fn(p, "a;b 12"));
	ck_assert_str_eq(stoke_frame_display(p, f, buf, sizeof(buf)), "a;b 12");
	buf[0] = 'x';
	ck_assert_ptr_eq(stoke_frame_display(p, f, buf, 0), buf);
	ck_assert_int_eq(buf[0], 'x');
	stoke_profile_free(p);
}
END_TEST

/* ck_assert_* write() on every call; hot loops call Check only on failure. */
#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond))                                                  \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); \
	} while (0)

/*
 * 10^5 stacks (a 100-deep chain and fans off it), 10^6 samples over 50
 * threads (each stack index mostly on one thread, to keep the output at a
 * few tens of MB): every line must be distinct and sorted and the counts must add
 * up to the total. Quadratic rendering or merging would time out.
 */
START_TEST(test_stress)
{
	enum { NSTACKS = 100000, NSAMPLES = 1000000, NTHREADS = 50 };
	struct stoke_profile *p = NULL;
	uint32_t *stacks = calloc(NSTACKS, sizeof(*stacks));
	char name[32], *out, *line, *save = NULL, *prev = NULL, *sp, *seen;
	uint64_t sum, nlines, npairs = 0;
	size_t nst;

	ck_assert_ptr_nonnull(stacks);
	ck_assert_int_eq(stoke_profile_new(&p), 0);
	for (uint32_t i = 0; i < NSTACKS; i++) {
		uint32_t parent = i < 100 ? (i ? stacks[i - 1] : 0) : stacks[i % 100];
		struct stoke_pframe f = { 0 };
		uint32_t fid;

		snprintf(name, sizeof(name), "f%u", i < 100 ? i : 100 + i % 997);
		CHECK(stoke_profile_intern(p, name, &f.name) == 0);
		CHECK(stoke_profile_frame(p, &f, &fid) == 0);
		CHECK(stoke_profile_stack(p, parent, fid, &stacks[i]) == 0);
	}
	/* Frame names are unique per frame, so distinct stack ids render
	 * distinct lines; count the distinct (thread, stack) pairs. */
	nst = stoke_profile_nstacks(p);
	seen = calloc(NTHREADS * (nst + 1), 1);
	ck_assert_ptr_nonnull(seen);
	for (uint32_t i = 0; i < NSAMPLES; i++) {
		uint32_t k = (uint32_t)((uint64_t)i * 7919 % NSTACKS);
		uint32_t s = stacks[k], tid = k % NTHREADS;

		CHECK(stoke_profile_add_sample(p, tid, i, s, 1) == 0);
		if (!seen[tid * (nst + 1) + s]) {
			seen[tid * (nst + 1) + s] = 1;
			npairs++;
		}
	}
	free(seen);

	for (int per_thread = 0; per_thread < 2; per_thread++) {
		out = write_folded(p, per_thread, true);
		sum = nlines = 0;
		prev = NULL;
		for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			sp = strrchr(line, ' ');
			CHECK(sp != NULL);
			*sp = '\0';
			sum += strtoull(sp + 1, NULL, 10);
			if (prev && strcmp(prev, line) >= 0)
				ck_abort_msg("unsorted or unmerged: \"%s\" then \"%s\"", prev, line);
			prev = line;
			nlines++;
		}
		ck_assert_uint_eq(sum, NSAMPLES);
		/* 7919 is coprime to NSTACKS: every stack is sampled. */
		ck_assert_uint_eq(nlines, per_thread ? npairs : nst);
		free(out);
	}
	free(stacks);
	stoke_profile_free(p);
}
END_TEST

/* Text input (textprof.h): folded stacks round-trip through the writer;
 * perf script callchains become stacks root first with their threads and
 * kinds; a bad line fails the read with its number. */
static char *render_folded(const struct stoke_profile *p, bool per_thread)
{
	struct stoke_folded_opts fo;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(out);
	stoke_folded_opts_init(&fo);
	fo.per_thread = per_thread;
	ck_assert_int_eq(stoke_folded_write(p, &fo, out), 0);
	fclose(out);
	return buf;
}

START_TEST(test_text_input)
{
	static const char folded[] = "main;run;leaf_a 3\nmain;run;leaf_b 1\nmain;sys_x_[k] 2\n";
	static const char script[] =
		"my app 10/11 [000] 1.000: 1000000 cpu-clock: \n"
		"\tffffffff81000e06 irq_entry+0x16 ([kernel.kallsyms])\n"
		"\t1274 f(int, char) const+0x34 (/bin/app)\n"
		"\t10c5 main+0x45 (/bin/app)\n"
		"\n"
		"my app 10/12 [001] 1.001: 1000000 cpu-clock: \n"
		"\t5555 [unknown] (/lib/libz.so.1)\n"
		"\t10c5 main+0x45 (/bin/app)\n";
	struct stoke_profile *p = NULL;
	const char *err = NULL;
	char *out;

	ck_assert_int_eq(stoke_textprof_read(folded, strlen(folded), &p, &err), 0);
	out = render_folded(p, false);
	ck_assert_str_eq(out, folded);
	free(out);
	stoke_profile_free(p);

	p = NULL;
	ck_assert_int_eq(stoke_textprof_read(script, strlen(script), &p, &err), 0);
	ck_assert_uint_eq(stoke_profile_total(p), 2);
	out = render_folded(p, true);
	ck_assert_str_eq(out, "my app-10/11;main;f(int, char) const;irq_entry_[k] 1\n"
			      "my app-10/12;main;[libz.so.1] 1\n");
	free(out);
	ck_assert_str_eq(stoke_profile_string(p, stoke_profile_cmeta(p)->event), "cpu-clock");
	ck_assert_uint_eq(stoke_profile_cmeta(p)->period_ns, 1000000);
	stoke_profile_free(p);

	p = NULL;
	ck_assert_int_eq(stoke_textprof_read("a;b 1\na;b x\n", 12, &p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "line 2"));
	ck_assert_int_eq(stoke_textprof_read("\t1 x (y)\n", 10, &p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "line 1"));
	ck_assert_int_eq(stoke_textprof_read("\n\n", 2, &p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no samples"));
}
END_TEST

static Suite *folded_suite(void)
{
	Suite *s = suite_create("folded");
	TCase *tc = tcase_create("golden");

	tcase_add_test(tc, test_golden_plain);
	tcase_add_test(tc, test_golden_per_thread);
	tcase_add_test(tc, test_default_opts);
	tcase_add_test(tc, test_sanitise);
	tcase_add_test(tc, test_unknown_frames);
	tcase_add_test(tc, test_merge_order);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_eio_unbuffered);
	tcase_add_test(tc, test_eio_buffered);
	tcase_add_test(tc, test_frame_display);
	tcase_add_test(tc, test_text_input);
	suite_add_tcase(s, tc);

	tc = tcase_create("stress");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stress);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(folded_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
