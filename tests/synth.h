/*
 * A small synthetic profile shared by the writer golden tests: two threads
 * (one with a name that needs escaping), shared prefixes, recursion
 * (a -> b -> a), kernel, JIT, inlined and unknown frames, and hostile
 * names: ';', spaces, <>&", a trailing " 123", invalid UTF-8 and a very long
 * C++ name. Timestamps and metadata are fixed so outputs are reproducible.
 */
#pragma once

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/output.h"
#include "formats/profile.h"

static inline uint32_t synth_intern(struct stoke_profile *p, const char *s)
{
	uint32_t id = 0;

	ck_assert_int_eq(stoke_profile_intern(p, s, &id), 0);
	return id;
}

static inline uint32_t synth_frame(struct stoke_profile *p, const char *name, const char *file,
				   uint32_t line, const char *module, uint64_t offset,
				   enum stoke_pframe_kind kind, bool inlined)
{
	struct stoke_pframe f = {
		.name = synth_intern(p, name),
		.file = synth_intern(p, file),
		.line = line,
		.module = synth_intern(p, module),
		.offset = offset,
		.kind = (uint8_t)kind,
		.inlined = inlined,
	};
	uint32_t id = 0;

	ck_assert_int_eq(stoke_profile_frame(p, &f, &id), 0);
	return id;
}

static inline uint32_t synth_stack(struct stoke_profile *p, const uint32_t *frames)
{
	uint32_t s = 0;

	for (; *frames; frames++)
		ck_assert_int_eq(stoke_profile_stack(p, s, *frames, &s), 0);
	return s;
}

#define SYNTH_STACK(p, ...) synth_stack((p), (const uint32_t[]){ __VA_ARGS__, 0 })

#define SYNTH_LONG_CXX                                                                        \
	"std::_Function_handler<void (std::vector<std::basic_string<char, "                   \
	"std::char_traits<char>, std::allocator<char> >, std::allocator<std::basic_string<"   \
	"char, std::char_traits<char>, std::allocator<char> > > > const&), "                  \
	"app::detail::Visitor<app::Node<int, 3ul>, app::Policy<true> >::operator()"           \
	"(app::Node<int, 3ul> const&)::{lambda(auto:1&&)#1}>::_M_invoke(std::_Any_data const&, " \
	"std::vector<std::basic_string<char, std::char_traits<char>, std::allocator<char> >, " \
	"std::allocator<std::basic_string<char, std::char_traits<char>, "                     \
	"std::allocator<char> > > > const&)"

/* The profile (caller frees). Total weight 20, period 1 ms. */
static inline struct stoke_profile *synth_profile(void)
{
	struct stoke_profile *p = NULL;
	struct stoke_pmeta *m;
	uint32_t main_, run, a, b, leaf, weird, kern, jit, inl, unk, unk0, cxx, digits, bad;
	uint32_t s1, s2, s3, s4, s5, s6, s7;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	main_ = synth_frame(p, "main", "/src/app.c", 10, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			    false);
	run = synth_frame(p, "run", "/src/app.c", 20, "/usr/bin/app", 0, STOKE_PFRAME_USER, false);
	a = synth_frame(p, "a", "/src/app.c", 30, "/usr/bin/app", 0, STOKE_PFRAME_USER, false);
	b = synth_frame(p, "b", "/src/app.c", 40, "/usr/bin/app", 0, STOKE_PFRAME_USER, false);
	leaf = synth_frame(p, "hot_leaf", "/src/hot.c", 7, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			   false);
	weird = synth_frame(p, "op;semi <a&b> \"q\" sp ace", "/src/we<i>rd.c", 5, "/usr/bin/app",
			    0, STOKE_PFRAME_USER, false);
	kern = synth_frame(p, "do_syscall_64", NULL, 0, "[kernel.kallsyms]", 0,
			   STOKE_PFRAME_KERNEL, false);
	jit = synth_frame(p, "LazyCompile:*fn js/x.js:3", NULL, 0, "/tmp/perf-1.map", 0,
			  STOKE_PFRAME_JIT, false);
	inl = synth_frame(p, "inlined_helper", "/src/inl.h", 3, "/usr/bin/app", 0,
			  STOKE_PFRAME_USER, true);
	unk = synth_frame(p, NULL, NULL, 0, "/usr/lib/libfoo.so", 0x1234, STOKE_PFRAME_USER,
			  false);
	unk0 = synth_frame(p, NULL, NULL, 0, NULL, 0xdead, STOKE_PFRAME_USER, false);
	cxx = synth_frame(p, SYNTH_LONG_CXX, "/src/v.cc", 99, "/usr/bin/app", 0,
			  STOKE_PFRAME_USER, false);
	digits = synth_frame(p, "worker 123", "/src/app.c", 50, "/usr/bin/app", 0,
			     STOKE_PFRAME_USER, false);
	bad = synth_frame(p, "bad\xff\xfeutf8\xc3", "/src/app.c", 60, "/usr/bin/app", 0,
			  STOKE_PFRAME_USER, false);

	s1 = SYNTH_STACK(p, main_, run, a, b, leaf);
	s2 = SYNTH_STACK(p, main_, run, a, b, a, leaf); /* recursion */
	s3 = SYNTH_STACK(p, main_, run, weird, kern);
	s4 = SYNTH_STACK(p, main_, run, jit, inl);
	s5 = SYNTH_STACK(p, main_, unk, unk0);
	s6 = SYNTH_STACK(p, main_, cxx, digits);
	s7 = SYNTH_STACK(p, main_, bad);

	ck_assert_int_eq(stoke_profile_thread(p, 100, 100, "app"), 0);
	ck_assert_int_eq(stoke_profile_thread(p, 100, 101, "wrk <\"&\">;x 7"), 0);
	ck_assert_int_eq(stoke_profile_thread(p, 100, 102, "idle"), 0); /* no samples */
	/* time order within each thread; threads interleave */
	ck_assert_int_eq(stoke_profile_add_sample(p, 100, 1000000, s1, 5), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 101, 1500000, s3, 2), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 100, 2000000, s2, 3), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 101, 2500000, s4, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 100, 3000000, s5, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 101, 3500000, s6, 2), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 100, 4000000, s1, 4), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 101, 4500000, s7, 1), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 101, 5000000, 0, 1), 0); /* empty stack */

	m = stoke_profile_meta(p);
	m->event = synth_intern(p, "cpu-clock");
	m->frequency = 1000;
	m->period_ns = 1000000;
	m->start_ns = 1700000000123000000ULL;
	m->end_ns = 1700000002623000000ULL;
	m->callgraph = synth_intern(p, "fp");
	m->command = synth_intern(p, "./app --flag \"x\"");
	m->pid = 100;
	m->lost = 3;
	m->throttled = 1;
	return p;
}

/* Write p in format f to memory (malloc'd, NUL-terminated; length too). */
static inline char *synth_render(const struct stoke_profile *p, int f,
				 const struct stoke_output_opts *opts, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(stoke_output_write_file(p, (enum stoke_format)f, opts, out), 0);
	ck_assert_int_eq(fclose(out), 0);
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* Compare with tests/data/NAME, or (re)write it when STOKE_UPDATE_GOLDEN
 * is set. The golden files are checked in and reviewed like code. */
static inline void synth_golden(const char *name, const char *buf, size_t len)
{
	const char *dir = getenv("STOKE_TEST_DATA");
	char path[4096], *want = NULL;
	size_t wlen = 0;
	FILE *f;

	ck_assert_msg(dir != NULL, "STOKE_TEST_DATA is not set");
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (getenv("STOKE_UPDATE_GOLDEN")) {
		f = fopen(path, "wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
		ck_assert_int_eq(fclose(f), 0);
		return;
	}
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "missing golden file %s (run with STOKE_UPDATE_GOLDEN=1)", path);
	want = malloc(len + 2);
	ck_assert_ptr_nonnull(want);
	wlen = fread(want, 1, len + 1, f);
	fclose(f);
	if (wlen != len || memcmp(want, buf, len) != 0) {
		size_t i = 0;

		while (i < len && i < wlen && want[i] == buf[i])
			i++;
		ck_abort_msg("%s differs from the golden file at byte %zu (got %zu bytes, want %zu)",
			     name, i, len, wlen);
	}
	free(want);
}

/* The checks every writer's suite makes: the synthetic profile renders to
 * the golden file NAME (default options), the empty profile to EMPTY_NAME,
 * and a write to a full disk fails with -EIO. */
static inline void synth_check_golden(enum stoke_format f, const char *name)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_output_opts opts;
	size_t len;
	char *buf;

	stoke_output_opts_init(&opts);
	buf = synth_render(p, f, &opts, &len);
	synth_golden(name, buf, len);
	free(buf);
	stoke_profile_free(p);
}

static inline void synth_check_empty(enum stoke_format f, const char *name)
{
	struct stoke_profile *p = NULL;
	size_t len;
	char *buf;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	buf = synth_render(p, f, NULL, &len);
	synth_golden(name, buf, len);
	free(buf);
	stoke_profile_free(p);
}

static inline void synth_check_write_error(enum stoke_format f)
{
	struct stoke_profile *p = synth_profile();
	FILE *full = fopen("/dev/full", "w");

	ck_assert_ptr_nonnull(full);
	ck_assert_int_eq(stoke_output_write_file(p, f, NULL, full), -EIO);
	fclose(full);
	stoke_profile_free(p);
}
