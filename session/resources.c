/*
 * The resource timeline's sampler (see resources.h).
 *
 * One read of /proc/PID/stat per followed process and reading gives both
 * numbers: utime + stime (fields 14 and 15: every thread's, the exited ones
 * too) and rss (field 24, pages). CPU use is the change of that sum since
 * the previous reading, per process, so a process that exits between two
 * readings loses only its last interval, and cutime is never used: it
 * would count a followed child twice once it is reaped.
 *
 * Cost: the first MAX_OPEN processes keep their stat file open and are
 * read with pread (a reading is then one read of a few hundred bytes, no
 * procfs path lookup); the fd names the process, not its number, so a
 * reused pid never reads as the old process. At most MAX_PROCS processes
 * are followed: a target that forks thousands must not make every reading
 * (stoked takes them on its loop thread) read thousands of files.
 *
 * Threads: stoked reads on its loop thread while the session's worker adds
 * forked processes and takes its snapshot, so every entry point takes the
 * sampler's lock, held only for one reading or one copy.
 */
#include "session/resources.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define DEFAULT_INTERVAL_NS 100000000ULL
#define MAX_PROCS 64
#define MAX_OPEN 8

struct rproc {
	pid_t pid;
	int fd;         /* /proc/PID/stat kept open, or -1 */
	uint64_t ticks; /* utime + stime at the last reading */
	bool read;      /* ticks is set */
};

struct stoke_rsampler {
	pthread_mutex_t lock;
	struct rproc *procs;
	size_t n, cap;
	size_t nopen;        /* procs with an open fd */
	uint64_t not_followed; /* processes past MAX_PROCS */
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
	pthread_mutex_init(&r->lock, NULL);
	*ret = r;
	return 0;
}

void stoke_rsampler_free(struct stoke_rsampler *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		if (r->procs[i].fd >= 0)
			close(r->procs[i].fd);
	stoke_rseries_free(&r->series);
	pthread_mutex_destroy(&r->lock);
	free(r->procs);
	free(r);
}

int stoke_rsampler_add(struct stoke_rsampler *r, pid_t pid, bool born)
{
	int ret = 0;

	if (pid <= 0)
		return 0;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		if (r->procs[i].pid == pid)
			goto out;
	if (r->n >= MAX_PROCS) {
		/* Said once: the series undercounts from here on. */
		if (!r->not_followed++)
			log_warn("resource timeline: the targets have more than %d processes; "
				 "the RSS and CPU series leave the newer ones out",
				 MAX_PROCS);
		goto out;
	}
	if (STOKE_GROW(r->procs, r->cap, r->n + 1) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	r->procs[r->n++] = (struct rproc){ .pid = pid, .fd = -1, .read = born };
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

uint64_t stoke_rsampler_next_ns(struct stoke_rsampler *r)
{
	uint64_t next;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	next = !r->n ? 0 : r->next_ns ? r->next_ns : 1; /* 1: the first reading, now */
	pthread_mutex_unlock(&r->lock);
	return next;
}

uint64_t stoke_rsampler_not_followed(struct stoke_rsampler *r)
{
	uint64_t n;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	n = r->not_followed;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* utime + stime and rss of pid: 0, or -errno when it is gone. The
 * command name in parentheses may hold any byte, spaces and ')' too: the
 * fields start after the last ')'. */
static int read_stat(struct stoke_rsampler *r, struct rproc *pr, uint64_t *ticks,
		     uint64_t *rss_pages)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long long rss;
	char state;
	ssize_t n;
	int fd = pr->fd;

	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pr->pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (r->nopen < MAX_OPEN) {
			pr->fd = fd;
			r->nopen++;
		}
	}
	/* From offset 0 each time: procfs makes the text anew at each read
	 * from the start. */
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		n = -errno;
	if (fd != pr->fd)
		close(fd);
	if (n <= 0)
		return n < 0 ? (int)n : -ESRCH;
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

static void drop_proc(struct stoke_rsampler *r, struct rproc *pr)
{
	if (pr->fd >= 0) {
		close(pr->fd);
		pr->fd = -1;
		r->nopen--;
	}
}

/* A reading if one is due by now_ns + early_ns; r->lock held. */
static int tick_locked(struct stoke_rsampler *r, uint64_t now_ns, uint64_t early_ns, bool force)
{
	struct stoke_rpoint pt = { 0 };
	uint64_t dticks = 0;
	size_t kept = 0;
	bool first;

	if (!r->n || (!force && r->next_ns && now_ns + early_ns < r->next_ns))
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

		if (read_stat(r, pr, &ticks, &pages) < 0) {
			drop_proc(r, pr); /* exited (or reaped): dropped */
			continue;
		}
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

int stoke_rsampler_tick(struct stoke_rsampler *r, uint64_t now_ns, bool force)
{
	int ret;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	ret = tick_locked(r, now_ns, 0, force);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int stoke_rsampler_try_tick(struct stoke_rsampler *r, uint64_t now_ns)
{
	int ret;

	if (!r)
		return 0;
	if (pthread_mutex_trylock(&r->lock) != 0)
		return -EBUSY;
	ret = tick_locked(r, now_ns, r->series.interval_ns / 2, false);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

const struct stoke_rseries *stoke_rsampler_series(const struct stoke_rsampler *r)
{
	return r && r->series.n ? &r->series : NULL;
}

int stoke_rsampler_snapshot(struct stoke_rsampler *r, uint64_t from_wall_ns,
			    struct stoke_rseries *ret)
{
	struct stoke_rseries *s;
	size_t drop = 0;
	int e;

	*ret = (struct stoke_rseries){ 0 };
	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	s = &r->series;
	e = stoke_rseries_clip(s, from_wall_ns, 0, ret);
	/* The points before from_wall_ns belonged to profiles already
	 * written: forget them, or a daemon's session that runs for weeks
	 * keeps (and copies at every rotation) all of its readings. The CPU
	 * time is then the kept points' own. */
	while (e == 0 && drop < s->n &&
	       s->wall_start_ns + (s->points[drop].t_ns - s->mono_start_ns) + 1000000 <
		       from_wall_ns)
		drop++;
	if (drop) {
		memmove(s->points, s->points + drop, (s->n - drop) * sizeof(*s->points));
		s->n -= drop;
		s->cpu_ns = ret->cpu_ns;
	}
	pthread_mutex_unlock(&r->lock);
	if (e == 0 && !ret->n)
		stoke_rseries_free(ret);
	return e;
}
