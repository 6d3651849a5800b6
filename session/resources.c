/*
 * The resource timeline's sampler (see resources.h).
 *
 * One read of /proc/PID/stat per followed process and reading gives both
 * numbers: utime + stime (fields 14 and 15: every thread's, the exited ones
 * too) and rss (field 24, pages). CPU use is the change of that sum since
 * the previous reading, per process, so a process that exits between two
 * readings loses only its last interval, and cutime is never used: it
 * would count a followed child twice once it is reaped.
 */
#include "session/resources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define DEFAULT_INTERVAL_NS 100000000ULL

struct rproc {
	pid_t pid;
	uint64_t ticks; /* utime + stime at the last reading */
	bool read;      /* ticks is set */
};

struct stoke_rsampler {
	struct rproc *procs;
	size_t n, cap;
	struct stoke_rseries series;
	uint64_t next_ns; /* 0: at the first tick */
	uint64_t last_ns; /* the previous reading */
	double tick_ns;   /* ns per clock tick */
	uint64_t page;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int stoke_rsampler_new(uint64_t interval_ns, struct stoke_rsampler **ret)
{
	struct stoke_rsampler *r = calloc(1, sizeof(*r));
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

	if (!r)
		return -ENOMEM;
	r->series.interval_ns = interval_ns ? interval_ns : DEFAULT_INTERVAL_NS;
	r->tick_ns = 1e9 / (double)(hz > 0 ? hz : 100);
	r->page = page > 0 ? (uint64_t)page : 4096;
	*ret = r;
	return 0;
}

void stoke_rsampler_free(struct stoke_rsampler *r)
{
	if (!r)
		return;
	stoke_rseries_free(&r->series);
	free(r->procs);
	free(r);
}

int stoke_rsampler_add(struct stoke_rsampler *r, pid_t pid, bool born)
{
	if (pid <= 0)
		return 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->procs[i].pid == pid)
			return 0;
	if (STOKE_GROW(r->procs, r->cap, r->n + 1) < 0)
		return -ENOMEM;
	r->procs[r->n++] = (struct rproc){ .pid = pid, .read = born };
	return 0;
}

uint64_t stoke_rsampler_next_ns(const struct stoke_rsampler *r)
{
	if (!r || !r->n)
		return 0;
	return r->next_ns ? r->next_ns : 1; /* the first reading: now */
}

/* utime + stime and rss of pid: 0, or -errno when it is gone. The
 * command name in parentheses may hold any byte, spaces and ')' too: the
 * fields start after the last ')'. */
static int read_stat(pid_t pid, uint64_t *ticks, uint64_t *rss_pages)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long long rss;
	char state;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ESRCH;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime(15) cutime cstime priority
	 * nice num_threads itrealvalue starttime vsize rss(24) */
	if (!p || sscanf(p + 1,
			 " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
			 "%*d %*d %*d %*u %*u %lld",
			 &state, &ut, &st, &rss) != 4)
		return -EINVAL;
	/* A zombie has no memory left and uses no CPU: it has exited. */
	if (state == 'Z' || state == 'X')
		return -ESRCH;
	*ticks = ut + st;
	*rss_pages = rss > 0 ? (uint64_t)rss : 0;
	return 0;
}

int stoke_rsampler_tick(struct stoke_rsampler *r, uint64_t now_ns, bool force)
{
	struct stoke_rpoint pt = { 0 };
	uint64_t dticks = 0;
	size_t kept = 0;
	bool first;

	if (!r || !r->n || (!force && r->next_ns && now_ns < r->next_ns))
		return 0;
	now_ns = mono_ns(); /* the time of the reading itself */
	first = r->series.n == 0;
	if (first) {
		r->series.mono_start_ns = now_ns;
		r->series.wall_start_ns = wall_ns();
	}
	for (size_t i = 0; i < r->n; i++) {
		struct rproc *pr = &r->procs[i];
		uint64_t ticks, pages;

		if (read_stat(pr->pid, &ticks, &pages) < 0)
			continue; /* exited (or reaped): dropped */
		if (pr->read && ticks > pr->ticks)
			dticks += ticks - pr->ticks;
		pr->ticks = ticks;
		pr->read = true;
		pt.rss += pages * r->page;
		pt.procs++;
		r->procs[kept++] = *pr;
	}
	r->n = kept;
	/* Keep the cadence; after a stall, restart it from now. */
	r->next_ns = r->next_ns ? r->next_ns + r->series.interval_ns : now_ns + r->series.interval_ns;
	if (r->next_ns <= now_ns)
		r->next_ns = now_ns + r->series.interval_ns;
	if (!pt.procs)
		return 0;
	/* Whole milliseconds after the first reading: run.json keeps them
	 * exactly (stoke report rebuilds the HTML report from it). */
	pt.t_ns = r->series.mono_start_ns +
		  (now_ns - r->series.mono_start_ns + 500000) / 1000000 * 1000000;
	if (!first && now_ns > r->last_ns) {
		double cpu_ns = (double)dticks * r->tick_ns;

		pt.cpu = cpu_ns / (double)(now_ns - r->last_ns);
		r->series.cpu_ns += (uint64_t)cpu_ns;
	}
	r->last_ns = now_ns;
	return stoke_rseries_add(&r->series, &pt);
}

const struct stoke_rseries *stoke_rsampler_series(const struct stoke_rsampler *r)
{
	return r && r->series.n ? &r->series : NULL;
}
