/*
 * A synthetic backend (sampler/backend.h) that drives the whole pipeline:
 * struct stoke_sampler → session → symbolizer → profile → every writer.
 * It builds neutral records (sampler/sample.h) by hand, with no perf type
 * anywhere: what a new backend has to provide, and all it has to.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/load.h"
#include "formats/output.h"
#include "sampler/backend.h"
#include "sampler/maps.h"
#include "session/session.h"

#define SYNTH_SAMPLES 40

/* The stack the samples show: synth_root → synth_mid → synth_leaf. */
__attribute__((noinline, used)) int synth_leaf(int x);
__attribute__((noinline, used)) int synth_mid(int x);
__attribute__((noinline, used)) int synth_root(int x);

__attribute__((noinline, used)) int synth_leaf(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

__attribute__((noinline, used)) int synth_mid(int x)
{
	__asm__ volatile("" ::: "memory");
	return synth_leaf(x) + 2;
}

__attribute__((noinline, used)) int synth_root(int x)
{
	__asm__ volatile("" ::: "memory");
	return synth_mid(x) + 3;
}

struct synth {
	stoke_sampler_cb cb;
	void *userdata;
	pid_t pid;
	bool delivered, disabled, freed_ok;
	struct stoke_sampler_stats stats;
};

static int synth_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		     void **ret)
{
	struct synth *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->cb = cb;
	b->userdata = userdata;
	*ret = b;
	return 0;
}

static int synth_attach(void *p, pid_t pid)
{
	struct synth *b = p;

	b->pid = pid;
	return 0;
}

static int synth_pollfds(const void *p, const int **ret)
{
	static const int none[1] = { -1 };

	*ret = none;
	return 0;
}

static int emit_map(const struct stoke_maps_entry *e, void *userdata)
{
	struct synth *b = userdata;
	struct stoke_record rec;

	if (!(e->prot & PROT_EXEC))
		return 0;
	stoke_maps_entry_to_record(e, (uint32_t)b->pid, &rec);
	b->stats.records++;
	return b->cb(&rec, b->userdata);
}

static int synth_drain(void *p, bool flush)
{
	struct synth *b = p;
	/* Leaf first: the leaf's exact IP, then return addresses inside the
	 * callers (one past a call would do as well: -1 lands in the caller). */
	uint64_t ips[3] = { (uintptr_t)&synth_leaf, (uintptr_t)&synth_mid + 1,
			    (uintptr_t)&synth_root + 1 };
	struct stoke_record rec = { .type = STOKE_REC_COMM };
	int r;

	if (b->delivered)
		return 0;
	b->delivered = true;
	rec.comm.pid = rec.comm.tid = (uint32_t)b->pid;
	rec.comm.comm = "synthetic";
	r = b->cb(&rec, b->userdata);
	if (r < 0)
		return r;
	r = stoke_maps_read_pid(b->pid, emit_map, b);
	if (r < 0)
		return r;
	for (int i = 0; i < SYNTH_SAMPLES; i++) {
		memset(&rec, 0, sizeof(rec));
		rec.type = STOKE_REC_SAMPLE;
		rec.sample.pid = rec.sample.tid = (uint32_t)b->pid;
		rec.sample.time = 1000000 + (uint64_t)i * 1000;
		rec.sample.ip = ips[0];
		rec.sample.has_stack = true;
		rec.sample.user_ips = ips;
		/* Every fourth sample stops in synth_mid. */
		rec.sample.nr_user_ips = i % 4 == 3 ? 2 : 3;
		if (i % 4 == 3)
			rec.sample.user_ips = ips + 1;
		b->stats.records++;
		b->stats.samples++;
		r = b->cb(&rec, b->userdata);
		if (r < 0)
			return r;
	}
	return SYNTH_SAMPLES;
}

static void synth_disable(void *p)
{
	((struct synth *)p)->disabled = true;
}

static void synth_get_stats(const void *p, struct stoke_sampler_stats *ret)
{
	*ret = ((const struct synth *)p)->stats;
}

static void synth_free(void *p)
{
	free(p);
}

static const struct stoke_backend_ops synth_backend = {
	.kind = STOKE_BACKEND_PERF, /* reported as; nothing of perf is used */
	.name = "synthetic",
	.new = synth_new,
	.attach = synth_attach,
	.pollfds = synth_pollfds,
	.drain = synth_drain,
	.disable = synth_disable,
	.get_stats = synth_get_stats,
	.free = synth_free,
};

static struct stoke_session *synth_session(void)
{
	struct stoke_session_opts opts;
	struct stoke_session *s;

	stoke_session_opts_init(&opts);
	opts.sampler.custom = &synth_backend;
	opts.no_kernel_symbols = true;
	ck_assert_int_eq(stoke_session_new(&opts, &s), 0);
	return s;
}

static char *slurp(FILE *f, size_t *ret_len)
{
	long len;
	char *buf;

	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	ck_assert_int_gt(len, 0);
	rewind(f);
	buf = malloc((size_t)len + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	*ret_len = (size_t)len;
	return buf;
}

START_TEST(test_every_writer)
{
	struct stoke_session *s = synth_session();
	const struct stoke_profile *p;
	struct stoke_session_stats st;
	struct stoke_output_opts oo;

	ck_assert_int_eq(synth_root(1), 9);
	ck_assert_int_eq(stoke_session_attach(s, getpid()), 0);
	ck_assert_int_eq(stoke_session_stop(s), 0);
	stoke_session_get_stats(s, &st);
	ck_assert_uint_eq(st.samples, SYNTH_SAMPLES);
	ck_assert_uint_eq(st.lost, 0);
	p = stoke_session_profile(s);
	ck_assert_uint_eq(stoke_profile_total(p), SYNTH_SAMPLES);
	stoke_output_opts_init(&oo);
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++) {
		FILE *out = tmpfile();
		size_t len;
		char *buf;

		ck_assert_ptr_nonnull(out);
		ck_assert_msg(stoke_output_write_file(p, (enum stoke_format)f, &oo, out) == 0,
			      "writing %s", stoke_format_name((enum stoke_format)f));
		fflush(out);
		buf = slurp(out, &len);
		if (f == STOKE_FORMAT_PPROF) {
			/* gzipped: read back through the loader, then as text */
			char path[] = "/tmp/stoke-test-backend-XXXXXX";
			int fd = mkstemp(path);
			struct stoke_profile *back;
			const char *err = NULL;
			FILE *txt = tmpfile();

			ck_assert_int_ge(fd, 0);
			ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
			close(fd);
			ck_assert_msg(stoke_profile_load(path, &back, &err) == 0, "%s", err);
			unlink(path);
			ck_assert_uint_eq(stoke_profile_total(back), SYNTH_SAMPLES);
			ck_assert_int_eq(stoke_output_write_file(back, STOKE_FORMAT_FOLDED, &oo,
								 txt),
					 0);
			fflush(txt);
			free(buf);
			buf = slurp(txt, &len);
			fclose(txt);
			stoke_profile_free(back);
		}
		ck_assert_msg(memmem(buf, len, "synth_leaf", 10), "%s lacks synth_leaf",
			      stoke_format_name((enum stoke_format)f));
		ck_assert_msg(memmem(buf, len, "synth_mid", 9), "%s lacks synth_mid",
			      stoke_format_name((enum stoke_format)f));
		if (f == STOKE_FORMAT_FOLDED) {
			/* Root first, leaf last, with the counts the backend
			 * made: 30 full stacks, 10 that stop in synth_mid. */
			ck_assert_ptr_nonnull(strstr(buf, "synth_root;synth_mid;synth_leaf 30"));
			ck_assert_ptr_nonnull(strstr(buf, "synth_root;synth_mid 10"));
		}
		free(buf);
		fclose(out);
	}
	stoke_session_free(s);
}
END_TEST

/* What a backend cannot do is -EOPNOTSUPP through the sampler. */
START_TEST(test_missing_ops)
{
	struct stoke_session *s = synth_session();
	char *argv[] = { "true", NULL };
	pid_t pid = 0;

	ck_assert_int_eq(stoke_session_launch(s, argv, &pid), -EOPNOTSUPP);
	stoke_session_free(s);
}
END_TEST

/* perf_event fds this process has open (anon_inode:[perf_event]). */
static int perf_fds_open(void)
{
	char path[64], target[64];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		n += strcmp(target, "anon_inode:[perf_event]") == 0;
	}
	return n;
}

static int drop_record(const struct stoke_record *rec, void *userdata)
{
	return 0;
}

/* The perf backend's launch rollback: an exec that fails leaves none of
 * the events opened for the child (nor their rings) behind. */
START_TEST(test_failed_exec_closes_events)
{
	char *argv[] = { "/nonexistent/stoke-test-command", NULL };
	struct stoke_sampler_opts opts;
	struct stoke_sampler_stats st;
	struct stoke_sampler *s;
	const int *fds;
	pid_t pid = 0;
	int r = stoke_sampler_perf_probe();

	if (r < 0) {
		/* Never silently: CI has perf_event and says so. */
		ck_assert_msg(!getenv("STOKE_REQUIRE_PERF"), "perf_event_open: %s", strerror(-r));
		fprintf(stderr, "test_failed_exec_closes_events: SKIP (perf_event_open: %s)\n",
			strerror(-r));
		return;
	}
	stoke_sampler_opts_init(&opts);
	opts.backend = STOKE_BACKEND_PERF;
	ck_assert_int_eq(stoke_sampler_new(&opts, drop_record, NULL, &s), 0);
	ck_assert_int_eq(perf_fds_open(), 0);
	ck_assert_int_eq(stoke_sampler_launch(s, argv, &pid), -ENOENT);
	ck_assert_int_eq(perf_fds_open(), 0);
	stoke_sampler_get_stats(s, &st);
	ck_assert_uint_eq(st.events, 0);
	ck_assert_uint_eq(st.rings, 0);
	for (int i = 0; i < stoke_sampler_pollfds(s, &fds); i++)
		ck_assert_int_eq(fds[i], -1);
	/* The sampler is still usable: a good command launches. */
	argv[0] = "true";
	ck_assert_int_eq(stoke_sampler_launch(s, argv, &pid), 0);
	ck_assert_int_gt(perf_fds_open(), 0);
	waitpid(pid, NULL, 0);
	stoke_sampler_free(s);
	ck_assert_int_eq(perf_fds_open(), 0);
}
END_TEST

static Suite *backend_suite(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("synthetic");

	tcase_add_test(tc, test_every_writer);
	tcase_add_test(tc, test_missing_ops);
	suite_add_tcase(s, tc);
	tc = tcase_create("perf");
	tcase_add_test(tc, test_failed_exec_closes_events);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(backend_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
