/*
 * Unit tests for the profile model (formats/profile.h): interning of strings
 * and frames, the stack prefix tree, samples, threads and totals, id
 * validation, and stress runs large enough that quadratic behaviour would
 * show as a timeout.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/profile.h"

static struct stoke_profile *new_profile(void)
{
	struct stoke_profile *p = NULL;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	ck_assert_ptr_nonnull(p);
	return p;
}

static uint32_t intern(struct stoke_profile *p, const char *s)
{
	uint32_t id = 0xdead;

	ck_assert_int_eq(stoke_profile_intern(p, s, &id), 0);
	return id;
}

static uint32_t frame(struct stoke_profile *p, const struct stoke_pframe *f)
{
	uint32_t id = 0;

	ck_assert_int_eq(stoke_profile_frame(p, f, &id), 0);
	ck_assert_uint_ge(id, 1);
	return id;
}

static uint32_t named_frame(struct stoke_profile *p, const char *name)
{
	struct stoke_pframe f = { .name = intern(p, name) };

	return frame(p, &f);
}

static uint32_t stack(struct stoke_profile *p, uint32_t parent, uint32_t fr)
{
	uint32_t id = 0;

	ck_assert_int_eq(stoke_profile_stack(p, parent, fr, &id), 0);
	ck_assert_uint_ge(id, 1);
	return id;
}

START_TEST(test_free_null)
{
	stoke_profile_free(NULL);
}
END_TEST

START_TEST(test_strings)
{
	struct stoke_profile *p = new_profile();
	uint32_t foo, bar, id;

	/* Id 0 is "" from the start, and "" / NULL intern to it. */
	ck_assert_uint_eq(stoke_profile_nstrings(p), 1);
	ck_assert_str_eq(stoke_profile_string(p, 0), "");
	ck_assert_uint_eq(intern(p, ""), 0);
	ck_assert_uint_eq(intern(p, NULL), 0);
	ck_assert_int_eq(stoke_profile_intern_n(p, "xyz", 0, &id), 0);
	ck_assert_uint_eq(id, 0);
	ck_assert_uint_eq(stoke_profile_nstrings(p), 1);

	foo = intern(p, "foo");
	bar = intern(p, "bar");
	ck_assert_uint_ne(foo, 0);
	ck_assert_uint_ne(bar, 0);
	ck_assert_uint_ne(foo, bar);
	ck_assert_uint_eq(intern(p, "foo"), foo);
	ck_assert_uint_eq(intern(p, "bar"), bar);
	ck_assert_str_eq(stoke_profile_string(p, foo), "foo");
	ck_assert_str_eq(stoke_profile_string(p, bar), "bar");
	ck_assert_uint_eq(stoke_profile_nstrings(p), 3);

	/* intern_n reads exactly len bytes, terminated or not. */
	ck_assert_int_eq(stoke_profile_intern_n(p, "foobar", 3, &id), 0);
	ck_assert_uint_eq(id, foo);
	ck_assert_int_eq(stoke_profile_intern_n(p, "barfly", 3, &id), 0);
	ck_assert_uint_eq(id, bar);
	ck_assert_int_eq(stoke_profile_intern_n(p, "foobar", 6, &id), 0);
	ck_assert_str_eq(stoke_profile_string(p, id), "foobar");
	/* A prefix of an interned string is a different string. */
	ck_assert_uint_ne(intern(p, "fo"), foo);

	ck_assert_int_eq(stoke_profile_intern_n(p, NULL, 3, &id), -EINVAL);
	ck_assert_ptr_null(stoke_profile_string(p, (uint32_t)stoke_profile_nstrings(p)));
	ck_assert_ptr_null(stoke_profile_string(p, UINT32_MAX));
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_frames)
{
	struct stoke_profile *p = new_profile();
	struct stoke_pframe base, f;
	const struct stoke_pframe *g;
	uint32_t id, other;

	/* Garbage in the padding must not change the identity. */
	memset(&base, 0xaa, sizeof(base));
	base.name = intern(p, "main");
	base.file = intern(p, "main.c");
	base.line = 42;
	base.module = intern(p, "/usr/bin/app");
	base.offset = 0;
	base.kind = STOKE_PFRAME_USER;
	base.inlined = false;
	base.decl_file = base.file;
	base.decl_line = 40;
	id = frame(p, &base);
	ck_assert_uint_eq(id, 1);
	memset(&f, 0x55, sizeof(f));
	f.name = base.name;
	f.file = base.file;
	f.line = 42;
	f.module = base.module;
	f.offset = 0;
	f.kind = STOKE_PFRAME_USER;
	f.inlined = false;
	f.decl_file = base.file;
	f.decl_line = 40;
	ck_assert_uint_eq(frame(p, &f), id);
	ck_assert_uint_eq(stoke_profile_nframes(p), 1);

	g = stoke_profile_get_frame(p, id);
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->name, base.name);
	ck_assert_uint_eq(g->file, base.file);
	ck_assert_uint_eq(g->line, 42);
	ck_assert_uint_eq(g->module, base.module);
	ck_assert_uint_eq(g->kind, STOKE_PFRAME_USER);
	ck_assert(!g->inlined);
	ck_assert_uint_eq(g->decl_file, base.file);
	ck_assert_uint_eq(g->decl_line, 40);

	/* Each field on its own makes a new frame, and each is stable. */
	for (int field = 0; field < 9; field++) {
		f = base;
		switch (field) {
		case 0: f.name = intern(p, "other"); break;
		case 1: f.file = intern(p, "other.c"); break;
		case 2: f.line = 43; break;
		case 3: f.module = intern(p, "/lib/other.so"); break;
		case 4: f.offset = 0x10; break;
		case 5: f.kind = STOKE_PFRAME_KERNEL; break;
		case 6: f.inlined = true; break;
		case 7: f.decl_file = intern(p, "def.c"); break;
		case 8: f.decl_line = 1; break;
		}
		other = frame(p, &f);
		ck_assert_msg(other != id, "field %d ignored", field);
		ck_assert_uint_eq(frame(p, &f), other);
		ck_assert_uint_eq(other, (uint32_t)field + 2);
	}
	ck_assert_uint_eq(stoke_profile_nframes(p), 10);
	ck_assert_uint_eq(frame(p, &base), id);

	ck_assert_ptr_null(stoke_profile_get_frame(p, 0));
	ck_assert_ptr_null(stoke_profile_get_frame(p, 11));
	ck_assert_ptr_nonnull(stoke_profile_get_frame(p, 10));

	/* String ids must exist; kind must be known. */
	f = base;
	f.name = (uint32_t)stoke_profile_nstrings(p);
	ck_assert_int_eq(stoke_profile_frame(p, &f, &other), -EINVAL);
	f = base;
	f.file = UINT32_MAX;
	ck_assert_int_eq(stoke_profile_frame(p, &f, &other), -EINVAL);
	f = base;
	f.decl_file = UINT32_MAX;
	ck_assert_int_eq(stoke_profile_frame(p, &f, &other), -EINVAL);
	f = base;
	f.module = UINT32_MAX;
	ck_assert_int_eq(stoke_profile_frame(p, &f, &other), -EINVAL);
	f = base;
	f.kind = 77;
	ck_assert_int_eq(stoke_profile_frame(p, &f, &other), -EINVAL);
	ck_assert_uint_eq(stoke_profile_nframes(p), 10);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_stacks)
{
	struct stoke_profile *p = new_profile();
	uint32_t fa = named_frame(p, "a"), fb = named_frame(p, "b");
	uint32_t fc = named_frame(p, "c"), fd = named_frame(p, "d");
	uint32_t a, ab, abc, abd, b, id;
	const struct stoke_pstack *s;

	s = stoke_profile_get_stack(p, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->depth, 0);
	ck_assert_uint_eq(stoke_profile_nstacks(p), 0);

	a = stack(p, 0, fa);
	ab = stack(p, a, fb);
	abc = stack(p, ab, fc);
	/* a;b;d shares the a;b prefix: only one new node. */
	ck_assert_uint_eq(stack(p, 0, fa), a);
	ck_assert_uint_eq(stack(p, a, fb), ab);
	abd = stack(p, ab, fd);
	ck_assert_uint_eq(stoke_profile_nstacks(p), 4);
	ck_assert_uint_ne(abc, abd);
	ck_assert_uint_eq(stack(p, ab, fc), abc);
	/* The same frame under another parent is another node. */
	b = stack(p, 0, fb);
	ck_assert_uint_ne(b, ab);
	ck_assert_uint_eq(stoke_profile_nstacks(p), 5);

	s = stoke_profile_get_stack(p, abd);
	ck_assert_uint_eq(s->parent, ab);
	ck_assert_uint_eq(s->frame, fd);
	ck_assert_uint_eq(s->depth, 3);
	s = stoke_profile_get_stack(p, abc);
	ck_assert_uint_eq(s->parent, ab);
	ck_assert_uint_eq(s->depth, 3);
	s = stoke_profile_get_stack(p, a);
	ck_assert_uint_eq(s->parent, 0);
	ck_assert_uint_eq(s->frame, fa);
	ck_assert_uint_eq(s->depth, 1);
	ck_assert_uint_eq(stoke_profile_get_stack(p, b)->depth, 1);
	ck_assert_ptr_null(stoke_profile_get_stack(p, 6));

	/* Invalid parent or frame. */
	ck_assert_int_eq(stoke_profile_stack(p, 6, fa, &id), -EINVAL);
	ck_assert_int_eq(stoke_profile_stack(p, UINT32_MAX, fa, &id), -EINVAL);
	ck_assert_int_eq(stoke_profile_stack(p, a, 0, &id), -EINVAL);
	ck_assert_int_eq(stoke_profile_stack(p, a, 5, &id), -EINVAL);
	ck_assert_int_eq(stoke_profile_stack(p, 0, UINT32_MAX, &id), -EINVAL);
	ck_assert_uint_eq(stoke_profile_nstacks(p), 5);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_stack_frames)
{
	struct stoke_profile *p = new_profile();
	uint32_t fa = named_frame(p, "a"), fb = named_frame(p, "b");
	uint32_t fc = named_frame(p, "c");
	uint32_t abc = stack(p, stack(p, stack(p, 0, fa), fb), fc);
	uint32_t out[5];

	/* Leaf first, everything fits. */
	memset(out, 0xff, sizeof(out));
	ck_assert_uint_eq(stoke_profile_stack_frames(p, abc, out, 5), 3);
	ck_assert_uint_eq(out[0], fc);
	ck_assert_uint_eq(out[1], fb);
	ck_assert_uint_eq(out[2], fa);
	ck_assert_uint_eq(out[3], UINT32_MAX);

	/* Truncated: the depth is still reported, only max leaf-most
	 * frames are written. */
	memset(out, 0xff, sizeof(out));
	ck_assert_uint_eq(stoke_profile_stack_frames(p, abc, out, 2), 3);
	ck_assert_uint_eq(out[0], fc);
	ck_assert_uint_eq(out[1], fb);
	ck_assert_uint_eq(out[2], UINT32_MAX);

	ck_assert_uint_eq(stoke_profile_stack_frames(p, abc, NULL, 0), 3);
	ck_assert_uint_eq(stoke_profile_stack_frames(p, 0, out, 5), 0);
	ck_assert_uint_eq(stoke_profile_stack_frames(p, 99, out, 5), 0);
	ck_assert_uint_eq(out[0], fc);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_samples_threads)
{
	struct stoke_profile *p = new_profile();
	uint32_t s1 = stack(p, 0, named_frame(p, "main"));
	const struct stoke_psample *samples;
	const struct stoke_pthread *threads, *t;
	size_t n;

	samples = stoke_profile_samples(p, &n);
	ck_assert_uint_eq(n, 0);
	threads = stoke_profile_threads(p, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(stoke_profile_total(p), 0);
	ck_assert_ptr_null(stoke_profile_find_thread(p, 1));

	ck_assert_int_eq(stoke_profile_thread(p, 10, 11, "eleven"), 0);
	/* An unknown tid gets a thread with pid 0 and an empty name. */
	ck_assert_int_eq(stoke_profile_add_sample(p, 20, 1000, s1, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 11, 500, 0, 3), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 20, 2000, s1, 2), 0);

	t = stoke_profile_find_thread(p, 20);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->pid, 0);
	ck_assert_str_eq(stoke_profile_string(p, t->name), "");
	ck_assert_uint_eq(t->samples, 3);

	/* Update: the newest name wins, NULL keeps it, pid is filled in. */
	ck_assert_int_eq(stoke_profile_thread(p, 10, 20, "twenty"), 0);
	ck_assert_int_eq(stoke_profile_thread(p, 0, 20, NULL), 0);
	t = stoke_profile_find_thread(p, 20);
	ck_assert_uint_eq(t->pid, 10);
	ck_assert_str_eq(stoke_profile_string(p, t->name), "twenty");
	ck_assert_int_eq(stoke_profile_thread(p, 10, 11, "renamed"), 0);
	ck_assert_int_eq(stoke_profile_thread(p, 10, 30, NULL), 0);

	threads = stoke_profile_threads(p, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(threads[0].tid, 11);
	ck_assert_str_eq(stoke_profile_string(p, threads[0].name), "renamed");
	ck_assert_uint_eq(threads[0].samples, 3);
	ck_assert_uint_eq(threads[1].tid, 20);
	ck_assert_uint_eq(threads[2].tid, 30);
	ck_assert_uint_eq(threads[2].name, 0);
	ck_assert_uint_eq(threads[2].samples, 0);
	ck_assert_ptr_eq(stoke_profile_find_thread(p, 30), &threads[2]);

	samples = stoke_profile_samples(p, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(samples[0].tid, 20);
	ck_assert_uint_eq(samples[0].time, 1000);
	ck_assert_uint_eq(samples[0].stack, s1);
	ck_assert_uint_eq(samples[0].weight, 1);
	ck_assert_uint_eq(samples[1].tid, 11);
	ck_assert_uint_eq(samples[1].stack, 0);
	ck_assert_uint_eq(samples[2].weight, 2);
	ck_assert_uint_eq(stoke_profile_total(p), 6);
	ck_assert_uint_eq(stoke_profile_cmeta(p)->time_first, 500);
	ck_assert_uint_eq(stoke_profile_cmeta(p)->time_last, 2000);

	/* Invalid stack, zero weight, or a total that would wrap. */
	ck_assert_int_eq(stoke_profile_add_sample(p, 20, 1, s1 + 1, 1), -EINVAL);
	ck_assert_int_eq(stoke_profile_add_sample(p, 20, 1, s1, 0), -EINVAL);
	ck_assert_int_eq(stoke_profile_add_sample(p, 20, 1, s1, UINT64_MAX), -EINVAL);
	ck_assert_int_eq(stoke_profile_add_sample(p, 99, 1, UINT32_MAX, 1), -EINVAL);
	ck_assert_ptr_null(stoke_profile_find_thread(p, 99));
	stoke_profile_samples(p, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(stoke_profile_total(p), 6);
	stoke_profile_free(p);
}
END_TEST

/* Off-CPU samples (record --off-cpu): the kind is kept per sample, summed
 * per thread, filtered by stoke_profile_copy and kept by merge. */
START_TEST(test_sample_kinds)
{
	struct stoke_profile *p = new_profile(), *on, *off, *m;
	struct stoke_copy_opts o = { 0 };
	const struct stoke_psample *s;
	const struct stoke_pthread *t;
	uint32_t s1 = stack(p, 0, named_frame(p, "main"));
	size_t n;

	ck_assert_int_eq(stoke_profile_add_sample(p, 7, 1, s1, 2), 0);
	ck_assert_int_eq(stoke_profile_add_sample_kind(p, 7, 2, s1, 5, STOKE_SAMPLE_OFF_CPU), 0);
	ck_assert_int_eq(stoke_profile_add_sample_kind(p, 8, 3, s1, 1, STOKE_SAMPLE_ON_CPU), 0);
	ck_assert_int_eq(stoke_profile_add_sample_kind(p, 8, 3, s1, 1, 2), -EINVAL);
	s = stoke_profile_samples(p, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(s[0].kind, STOKE_SAMPLE_ON_CPU);
	ck_assert_uint_eq(s[1].kind, STOKE_SAMPLE_OFF_CPU);
	ck_assert_uint_eq(stoke_profile_total(p), 8);
	ck_assert_uint_eq(stoke_profile_total_kind(p, STOKE_SAMPLE_ON_CPU), 3);
	ck_assert_uint_eq(stoke_profile_total_kind(p, STOKE_SAMPLE_OFF_CPU), 5);
	t = stoke_profile_find_thread(p, 7);
	ck_assert_uint_eq(t->samples, 7);
	ck_assert_uint_eq(t->off_cpu, 5);
	ck_assert_uint_eq(stoke_profile_find_thread(p, 8)->off_cpu, 0);

	o.kind_plus1 = STOKE_SAMPLE_OFF_CPU + 1;
	ck_assert_int_eq(stoke_profile_copy(p, &o, &off), 0);
	ck_assert_uint_eq(stoke_profile_total(off), 5);
	ck_assert_uint_eq(stoke_profile_total_kind(off, STOKE_SAMPLE_OFF_CPU), 5);
	o.kind_plus1 = STOKE_SAMPLE_ON_CPU + 1;
	ck_assert_int_eq(stoke_profile_copy(p, &o, &on), 0);
	ck_assert_uint_eq(stoke_profile_total(on), 3);
	ck_assert_uint_eq(stoke_profile_total_kind(on, STOKE_SAMPLE_OFF_CPU), 0);

	m = new_profile();
	ck_assert_int_eq(stoke_profile_merge(m, p), 0);
	ck_assert_uint_eq(stoke_profile_total_kind(m, STOKE_SAMPLE_OFF_CPU), 5);
	ck_assert_uint_eq(stoke_profile_find_thread(m, 7)->off_cpu, 5);
	stoke_profile_free(m);
	stoke_profile_free(on);
	stoke_profile_free(off);
	stoke_profile_free(p);
}
END_TEST

START_TEST(test_meta)
{
	struct stoke_profile *p = new_profile();
	struct stoke_pmeta *m = stoke_profile_meta(p);

	ck_assert_uint_eq(m->event, 0);
	ck_assert_uint_eq(m->frequency, 0);
	ck_assert_uint_eq(m->lost, 0);
	m->event = intern(p, "cpu-clock");
	m->frequency = 99;
	m->lost = 7;
	ck_assert_ptr_eq(stoke_profile_cmeta(p), m);
	ck_assert_str_eq(stoke_profile_string(p, stoke_profile_cmeta(p)->event), "cpu-clock");
	ck_assert_uint_eq(stoke_profile_cmeta(p)->frequency, 99);
	ck_assert_uint_eq(stoke_profile_cmeta(p)->lost, 7);
	stoke_profile_free(p);
}
END_TEST

/*
 * Check's ck_assert_* record their location with a write() on every call,
 * which dominates loops of 10^6 iterations; in hot loops, test plainly and
 * only call into Check on failure.
 */
#define CHECK(cond)                                                  \
	do {                                                         \
		if (!(cond))                                         \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); \
	} while (0)

/* 200k strings, interned twice: ids must be stable and distinct. */
START_TEST(test_stress_strings)
{
	enum { N = 200000 };
	struct stoke_profile *p = new_profile();
	uint32_t id;
	char buf[32];

	for (uint32_t i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "sym_%u", i);
		CHECK(stoke_profile_intern(p, buf, &id) == 0);
		CHECK(id == i + 1);
	}
	ck_assert_uint_eq(stoke_profile_nstrings(p), N + 1);
	for (uint32_t i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "sym_%u", i);
		CHECK(stoke_profile_intern(p, buf, &id) == 0);
		CHECK(id == i + 1);
		CHECK(strcmp(stoke_profile_string(p, id), buf) == 0);
	}
	ck_assert_uint_eq(stoke_profile_nstrings(p), N + 1);
	stoke_profile_free(p);
}
END_TEST

/*
 * 100k stacks: a 50k-deep chain cycling over 1000 frames, plus 50k roots
 * with distinct frames; then 10^6 samples over them.
 */
START_TEST(test_stress_stacks)
{
	enum { NFRAMES = 51000, CHAIN = 50000, FAN = 50000, NSAMPLES = 1000000 };
	struct stoke_profile *p = new_profile();
	uint32_t *frames = calloc(NFRAMES, sizeof(*frames));
	uint32_t *stacks = calloc(CHAIN + FAN, sizeof(*stacks));
	uint32_t parent = 0, id, out[4];
	struct stoke_pframe f = { 0 };
	const struct stoke_pthread *t;
	char buf[32];

	ck_assert_ptr_nonnull(frames);
	ck_assert_ptr_nonnull(stacks);
	for (uint32_t i = 0; i < NFRAMES; i++) {
		snprintf(buf, sizeof(buf), "fn_%u", i);
		CHECK(stoke_profile_intern(p, buf, &f.name) == 0);
		CHECK(stoke_profile_frame(p, &f, &frames[i]) == 0);
		CHECK(frames[i] == i + 1);
	}
	for (uint32_t i = 0; i < CHAIN; i++) {
		CHECK(stoke_profile_stack(p, parent, frames[i % 1000], &stacks[i]) == 0);
		parent = stacks[i];
	}
	for (uint32_t i = 0; i < FAN; i++)
		CHECK(stoke_profile_stack(p, 0, frames[1000 + i], &stacks[CHAIN + i]) == 0);
	ck_assert_uint_eq(stoke_profile_nstacks(p), CHAIN + FAN);

	/* Lookups give the same ids; depth follows the chain. */
	parent = 0;
	for (uint32_t i = 0; i < CHAIN; i++) {
		CHECK(stoke_profile_stack(p, parent, frames[i % 1000], &id) == 0);
		CHECK(id == stacks[i]);
		CHECK(stoke_profile_get_stack(p, id)->depth == i + 1);
		parent = id;
	}
	for (uint32_t i = 0; i < FAN; i++) {
		CHECK(stoke_profile_stack(p, 0, frames[1000 + i], &id) == 0);
		CHECK(id == stacks[CHAIN + i]);
	}
	ck_assert_uint_eq(stoke_profile_nstacks(p), CHAIN + FAN);
	ck_assert_uint_eq(stoke_profile_stack_frames(p, stacks[CHAIN - 1], out, 4), CHAIN);
	ck_assert_uint_eq(out[0], frames[(CHAIN - 1) % 1000]);
	ck_assert_uint_eq(out[3], frames[(CHAIN - 4) % 1000]);

	for (uint32_t i = 0; i < NSAMPLES; i++)
		CHECK(stoke_profile_add_sample(p, i % 1000, i, stacks[i % (CHAIN + FAN)],
					       1 + i % 2) == 0);
	ck_assert_uint_eq(stoke_profile_total(p), NSAMPLES / 2 * 3);
	t = stoke_profile_find_thread(p, 999);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->samples, NSAMPLES / 1000 * 2);
	free(frames);
	free(stacks);
	stoke_profile_free(p);
}
END_TEST

/* The function view keys a function by its definition: frames of one
 * function on lines of two files become one frame, at the file and first
 * line of its definition, which the frame keeps; a function without one
 * keeps its first file and lowest line (#17 item 5). */
START_TEST(test_copy_by_function_decl)
{
	struct stoke_profile *p = new_profile(), *fp = NULL;
	struct stoke_copy_opts o = { .by_function = true };
	uint32_t def = intern(p, "bytecodes.c"), gen = intern(p, "generated.c.h");
	struct stoke_pframe a = { .name = intern(p, "eval"), .file = gen, .line = 900,
				  .decl_file = def, .decl_line = 10 };
	struct stoke_pframe b = a, c = { .name = intern(p, "plain"), .file = def, .line = 70 };
	struct stoke_pframe d = c;
	const struct stoke_pframe *f;
	uint32_t fa, fb, fc, fd;

	b.file = def;
	b.line = 500;
	d.line = 60;
	fa = frame(p, &a);
	fb = frame(p, &b);
	fc = frame(p, &c);
	fd = frame(p, &d);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 1, stack(p, 0, fa), 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 2, stack(p, 0, fb), 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 3, stack(p, 0, fc), 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 4, stack(p, 0, fd), 1), 0);
	ck_assert_int_eq(stoke_profile_copy(p, &o, &fp), 0);
	ck_assert_uint_eq(stoke_profile_nframes(fp), 2);
	for (uint32_t id = 1; id <= 2; id++) {
		f = stoke_profile_get_frame(fp, id);
		if (!strcmp(stoke_profile_string(fp, f->name), "eval")) {
			ck_assert_str_eq(stoke_profile_string(fp, f->file), "bytecodes.c");
			ck_assert_uint_eq(f->line, 10);
			ck_assert_str_eq(stoke_profile_string(fp, f->decl_file), "bytecodes.c");
			ck_assert_uint_eq(f->decl_line, 10);
		} else {
			ck_assert_str_eq(stoke_profile_string(fp, f->file), "bytecodes.c");
			ck_assert_uint_eq(f->line, 60);
			ck_assert_uint_eq(f->decl_line, 0);
		}
	}
	stoke_profile_free(fp);
	stoke_profile_free(p);
}
END_TEST

static Suite *profile_suite(void)
{
	Suite *s = suite_create("profile");
	TCase *tc = tcase_create("model");

	tcase_add_test(tc, test_free_null);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_frames);
	tcase_add_test(tc, test_copy_by_function_decl);
	tcase_add_test(tc, test_stacks);
	tcase_add_test(tc, test_stack_frames);
	tcase_add_test(tc, test_samples_threads);
	tcase_add_test(tc, test_sample_kinds);
	tcase_add_test(tc, test_meta);
	suite_add_tcase(s, tc);

	tc = tcase_create("stress");
	/* Generous for sanitizer builds; quadratic code would still blow it. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stress_strings);
	tcase_add_test(tc, test_stress_stacks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(profile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
