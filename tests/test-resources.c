/*
 * The resource timeline's sampler (session/resources.c) on this process
 * and on children of its own: readings every interval, RSS that follows
 * what is touched, CPU time that equals the process's own clock, and
 * processes that exit (reaped or zombie) dropped without a point.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "session/resources.h"

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Burn this much CPU time (not wall time: the machine may be busy). */
static void burn(double seconds)
{
	double end = cpu_s() + seconds;
	volatile uint64_t x = 1;

	while (cpu_s() < end)
		for (int i = 0; i < 10000; i++)
			x = x * 6364136223846793005ULL + 1;
}

START_TEST(self_cpu_and_rss)
{
	struct stoke_rsampler *r = NULL;
	const struct stoke_rseries *s;
	struct stoke_rsummary sum;
	size_t bytes = 64u << 20;
	double c0, c1;
	char *mem;

	ck_assert_int_eq(stoke_rsampler_new(0, &r), 0);
	ck_assert_uint_eq(stoke_rsampler_next_ns(r), 0); /* nothing followed */
	ck_assert_int_eq(stoke_rsampler_add(r, getpid(), false), 0);
	ck_assert_int_eq(stoke_rsampler_add(r, getpid(), false), 0); /* once only */
	ck_assert_uint_ne(stoke_rsampler_next_ns(r), 0);
	ck_assert_ptr_null(stoke_rsampler_series(r));
	c0 = cpu_s();
	ck_assert_int_eq(stoke_rsampler_tick(r, mono(), false), 0);
	s = stoke_rsampler_series(r);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->n, 1);
	ck_assert_uint_eq(s->points[0].procs, 1);
	ck_assert_uint_gt(s->points[0].rss, 0);
	ck_assert_uint_eq(s->interval_ns, 100000000);
	/* Not due yet: no reading. */
	ck_assert_uint_ge(stoke_rsampler_next_ns(r), s->points[0].t_ns + 99000000);
	ck_assert_int_eq(stoke_rsampler_tick(r, s->points[0].t_ns + 1000, false), 0);
	ck_assert_uint_eq(s->n, 1);
	/* Touch 64 MB and burn 0.3 s of CPU: both are seen. */
	mem = malloc(bytes);
	ck_assert_ptr_nonnull(mem);
	memset(mem, 1, bytes);
	burn(0.3);
	ck_assert_int_eq(stoke_rsampler_tick(r, mono(), true), 0);
	c1 = cpu_s();
	s = stoke_rsampler_series(r);
	ck_assert_uint_eq(s->n, 2);
	ck_assert_uint_ge(s->points[1].rss, s->points[0].rss + (60u << 20));
	/* The kernel's ticks are 10 ms; this process's own clock ran from
	 * just before the first reading to just after the second. */
	ck_assert_msg((double)s->cpu_ns / 1e9 > c1 - c0 - 0.05 &&
			      (double)s->cpu_ns / 1e9 < c1 - c0 + 0.03,
		      "cpu %.3f s seen, %.3f s used", (double)s->cpu_ns / 1e9, c1 - c0);
	ck_assert(s->points[1].cpu > 0);
	/* point times are whole milliseconds after the first */
	ck_assert_uint_eq((s->points[1].t_ns - s->points[0].t_ns) % 1000000, 0);
	stoke_rseries_summary(s, &sum);
	ck_assert_uint_eq(sum.peak_rss, s->points[1].rss);
	ck_assert_uint_eq(sum.points, 2);
	ck_assert(sum.mean_cpu > 0);
	/* a use of the memory after the reading, or the compiler may drop
	 * the memset as a dead store before free */
	ck_assert_int_eq(((volatile char *)mem)[bytes / 2], 1);
	free(mem);
	stoke_rsampler_free(r);
}
END_TEST

/* A child that exits: a zombie first (its stat is still there), then
 * reaped (gone). Either way it is dropped, and no point is made when it
 * was the only process. */
START_TEST(exited_dropped)
{
	struct stoke_rsampler *r = NULL;
	siginfo_t info;
	int pipefd[2], status;
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pipefd[1]);
		(void)!read(pipefd[0], &c, 1); /* until the parent says */
		_exit(0);
	}
	close(pipefd[0]);
	ck_assert_int_eq(stoke_rsampler_new(0, &r), 0);
	ck_assert_int_eq(stoke_rsampler_add(r, pid, true), 0);
	ck_assert_int_eq(stoke_rsampler_tick(r, mono(), true), 0);
	ck_assert_ptr_nonnull(stoke_rsampler_series(r));
	ck_assert_uint_eq(stoke_rsampler_series(r)->n, 1);
	/* a zombie: exited, not reaped */
	close(pipefd[1]);
	ck_assert_int_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
	ck_assert_int_eq(stoke_rsampler_tick(r, mono(), true), 0);
	ck_assert_uint_eq(stoke_rsampler_series(r)->n, 1);
	ck_assert_uint_eq(stoke_rsampler_next_ns(r), 0); /* nothing left to read */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	/* and once reaped, adding it again reads nothing */
	ck_assert_int_eq(stoke_rsampler_add(r, pid, false), 0);
	ck_assert_int_eq(stoke_rsampler_tick(r, mono(), true), 0);
	ck_assert_uint_eq(stoke_rsampler_series(r)->n, 1);
	stoke_rsampler_free(r);
}
END_TEST

/* stoked's loop reads on a 100 ms timer: a reading due within half an
 * interval is taken (a tick just before the due time would else skip a
 * whole interval), an earlier one is not, and the cadence is kept from the
 * due time, not from the early reading. */
START_TEST(try_tick_early)
{
	struct stoke_rsampler *r = NULL;
	const struct stoke_rseries *s;
	uint64_t due;

	ck_assert_int_eq(stoke_rsampler_new(0, &r), 0);
	ck_assert_int_eq(stoke_rsampler_add(r, getpid(), false), 0);
	ck_assert_int_eq(stoke_rsampler_try_tick(r, mono()), 0);
	s = stoke_rsampler_series(r);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->n, 1);
	due = stoke_rsampler_next_ns(r);
	ck_assert_int_eq(stoke_rsampler_try_tick(r, due - 60000000), 0);
	ck_assert_uint_eq(s->n, 1); /* 60 ms early: not yet */
	ck_assert_int_eq(stoke_rsampler_try_tick(r, due - 40000000), 0);
	ck_assert_uint_eq(s->n, 2); /* 40 ms early: taken */
	ck_assert_uint_eq(stoke_rsampler_next_ns(r), due + 100000000);
	/* the strict tick still waits for the due time */
	ck_assert_int_eq(stoke_rsampler_tick(r, due + 100000000 - 1000, false), 0);
	ck_assert_uint_eq(s->n, 2);
	stoke_rsampler_free(r);
}
END_TEST

/* A snapshot copies the points from a wall-clock time on and the sampler
 * forgets the older ones (a daemon's session writes only newer profiles):
 * its series stays as long as the current profile, and the CPU time of a
 * later copy is its points' own. */
START_TEST(snapshot_forgets)
{
	struct stoke_rsampler *r = NULL;
	const struct stoke_rseries *s;
	struct stoke_rseries c;
	uint64_t from;

	ck_assert_int_eq(stoke_rsampler_new(0, &r), 0);
	ck_assert_int_eq(stoke_rsampler_snapshot(r, 0, &c), 0); /* nothing followed */
	ck_assert_uint_eq(c.n, 0);
	ck_assert_int_eq(stoke_rsampler_add(r, getpid(), true), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(stoke_rsampler_tick(r, mono(), true), 0);
		burn(0.02);
	}
	s = stoke_rsampler_series(r);
	ck_assert_uint_eq(s->n, 5);
	/* all of it */
	ck_assert_int_eq(stoke_rsampler_snapshot(r, 0, &c), 0);
	ck_assert_uint_eq(c.n, 5);
	ck_assert_uint_eq(c.cpu_ns, s->cpu_ns);
	stoke_rseries_free(&c);
	ck_assert_uint_eq(s->n, 5);
	/* from the third point's wall time on */
	from = s->wall_start_ns + (s->points[2].t_ns - s->mono_start_ns);
	ck_assert_int_eq(stoke_rsampler_snapshot(r, from, &c), 0);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_uint_eq(c.points[0].t_ns, s->points[0].t_ns);
	ck_assert_uint_eq(s->n, 3); /* the sampler forgot the first two */
	ck_assert_uint_eq(s->cpu_ns, c.cpu_ns);
	ck_assert_uint_le(c.cpu_ns, (uint64_t)((c.points[2].t_ns - c.points[0].t_ns) * 1.1));
	stoke_rseries_free(&c);
	/* the next reading continues the series */
	ck_assert_int_eq(stoke_rsampler_tick(r, mono(), true), 0);
	ck_assert_uint_eq(s->n, 4);
	ck_assert_int_eq(stoke_rsampler_snapshot(r, from, &c), 0);
	ck_assert_uint_eq(c.n, 4);
	stoke_rseries_free(&c);
	stoke_rsampler_free(r);
}
END_TEST

/* A target that forks without end: at most 64 processes are followed, the
 * rest counted. */
START_TEST(procs_bounded)
{
	struct stoke_rsampler *r = NULL;

	ck_assert_int_eq(stoke_rsampler_new(0, &r), 0);
	for (pid_t pid = 1; pid <= 70; pid++)
		ck_assert_int_eq(stoke_rsampler_add(r, pid, true), 0);
	ck_assert_uint_eq(stoke_rsampler_not_followed(r), 6);
	ck_assert_int_eq(stoke_rsampler_add(r, 3, true), 0); /* followed already */
	ck_assert_uint_eq(stoke_rsampler_not_followed(r), 6);
	stoke_rsampler_free(r);
}
END_TEST

struct poller {
	struct stoke_rsampler *r;
	atomic_bool stop;
	unsigned busy;
};

static void *poll_main(void *arg)
{
	struct poller *p = arg;

	while (!atomic_load(&p->stop))
		if (stoke_rsampler_try_tick(p->r, mono()) == -EBUSY)
			p->busy++;
	return NULL;
}

/* stoked: its loop reads while the worker adds forked processes and takes
 * snapshots (run under ASan and valgrind by CI). */
START_TEST(threads)
{
	struct poller p = { 0 };
	pthread_t t;

	ck_assert_int_eq(stoke_rsampler_new(2000000, &p.r), 0);
	ck_assert_int_eq(stoke_rsampler_add(p.r, getpid(), false), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, poll_main, &p), 0);
	/* until the other thread made 20 readings (2 ms apart) */
	for (size_t n = 0; n < 20;) {
		struct stoke_rseries c;

		ck_assert_int_eq(stoke_rsampler_add(p.r, getpid(), false), 0);
		ck_assert_int_eq(stoke_rsampler_snapshot(p.r, 0, &c), 0);
		for (size_t j = 1; j < c.n; j++)
			ck_assert_uint_ge(c.points[j].t_ns, c.points[j - 1].t_ns);
		n = c.n;
		stoke_rseries_free(&c);
	}
	atomic_store(&p.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_ptr_nonnull(stoke_rsampler_series(p.r));
	stoke_rsampler_free(p.r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("resources");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, self_cpu_and_rss);
	tcase_add_test(tc, exited_dropped);
	tcase_add_test(tc, try_tick_early);
	tcase_add_test(tc, snapshot_forgets);
	tcase_add_test(tc, procs_bounded);
	tcase_add_test(tc, threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
