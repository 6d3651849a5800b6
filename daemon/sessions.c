/*
 * stoked's sessions (sessions.h): authorization at attach and afterwards,
 * the shared session code underneath, and every write of a run directory,
 * done with the owner's filesystem ids.
 *
 * Why setfsuid and not only the passed directory fd: the fd proves the
 * client could open the directory, not that it may write there (an fd to
 * /etc opens fine). With the fsuid switched to the owner, the kernel drops
 * the daemon's file capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, …) for the
 * duration and checks every mkdir/create/rename/unlink as the owner, and the
 * files it creates belong to the owner. The filesystem ids are per thread
 * (the raw setfsuid/setfsgid calls, which glibc does not broadcast to every
 * thread as it does setuid), so a worker switching them around a write
 * affects no other thread.
 *
 * Threads: each job (sessions.h) runs on its own thread, which alone touches
 * the session's stoke_session while it runs; the loop thread reads only
 * what was frozen before the job (stats, memory, names) and collects the
 * job's results in stoked_session_job_done. The fields a job writes and the
 * loop reads while it runs (last_run, last_error, runs_written) are guarded
 * by ds->lock.
 */
#include "daemon/sessions.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/http.h"
#include "formats/output.h"
#include "session/driver.h"
#include "session/session.h"
#include "common/util.h"

/* How often a running session's authorization is checked again: the target
 * may exec a setuid program, after which its owner may no longer read it. */
#define RECHECK_S 1.0

/* Samples one session's profile may hold (stoked --max-samples). */
static uint64_t max_samples = STOKED_DEFAULT_MAX_SAMPLES;

enum state { S_STARTING, S_RUNNING, S_ENDING, S_ENDED };

static int notify_fd = -1;

struct stoked_session {
	uint64_t id;
	enum state state;
	struct stoked_session_ctl ctl;
	/* the current job */
	enum stoked_job job;
	pthread_t thread;
	bool have_thread;
	pthread_cond_t cond; /* under lock: a job was posted, or quit */
	bool posted, quit;
	atomic_bool job_finished;
	int job_result;
	char job_err[512];
	char *job_name;
	bool end_discard;
	const char *end_reason;
	struct stoke_session_stats job_stats; /* the end job's final counts */
	/* frozen for the loop thread while a job runs */
	unsigned fds;
	uint64_t memory;
	uint64_t module_bytes; /* the symbolizer's part of memory */
	/* What the symbolizer may load for this session (bytes; 0: no bound),
	 * from the owner's --max-user-memory: see stoked_session_set_module_budget. */
	_Atomic uint64_t module_budget;
	pthread_mutex_t lock; /* last_run, last_error, runs_written */
	char shown_run[256], shown_error[512];
	struct stoke_request req;
	struct stoke_auth_requester owner;
	pid_t pid;
	int pidfd;
	int outdir;
	struct stoke_session *s; /* NULL once ended */
	char comm[32];
	char name[STOKE_PROTO_NAME_MAX + 1]; /* run directory name part */
	char *exe;
	char event[32];
	unsigned freq;
	double started, deadline, next_rotate, next_check, ended_at;
	struct stoke_session_stats stats; /* frozen when the session ends */
	uint64_t runs_written;
	char **runs; /* continuous: run directories written, oldest first */
	size_t nruns, runs_cap;
	char *last_run;
	char *last_error;
};

/* The owner's filesystem ids, around every file operation in outdir. */
struct fsids {
	bool switched;
};

static void fs_enter(const struct stoked_session *ds, struct fsids *save)
{
	save->switched = geteuid() == 0 && ds->owner.uid != 0;
	if (!save->switched)
		return;
	/* gid first: changing it needs the privilege that the uid switch
	 * takes away. */
	setfsgid(ds->owner.gid);
	setfsuid(ds->owner.uid);
}

static void fs_leave(const struct fsids *save)
{
	if (!save->switched)
		return;
	setfsuid(geteuid());
	setfsgid(getegid());
}

/* The same clock as stoked's `now` (CLOCK_MONOTONIC, seconds). */
static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_message(struct stoked_session *ds, const char *msg)
{
	pthread_mutex_lock(&ds->lock);
	free(ds->last_error);
	ds->last_error = strdup(msg);
	pthread_mutex_unlock(&ds->lock);
}

static void set_error(struct stoked_session *ds, const char *what, int err)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s: %s", what, strerror(err < 0 ? -err : err));
	pthread_mutex_lock(&ds->lock);
	free(ds->last_error);
	ds->last_error = strdup(buf);
	pthread_mutex_unlock(&ds->lock);
	log_warn("session %llu (pid %d): %s", (unsigned long long)ds->id, ds->pid, buf);
}

/* A directory-name-safe version of the target's comm. */
static void safe_name(const char *in, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; in[i] && j + 1 < outlen; i++) {
		char c = in[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '+'))
			c = '_';
		out[j++] = c;
	}
	if (j == 0 && outlen > 1)
		out[j++] = 'x';
	out[j] = '\0';
}

static void read_target_facts(struct stoked_session *ds)
{
	stoke_driver_read_comm(ds->pid, ds->comm, sizeof(ds->comm));
	ds->exe = stoke_driver_read_exe(ds->pid);
	if (ds->req.name[0])
		snprintf(ds->name, sizeof(ds->name), "%s", ds->req.name);
	else
		safe_name(ds->comm, ds->name, sizeof(ds->name));
}

static int pidfd_alive(int pidfd)
{
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		return -errno;
	return 0;
}

/* The output directory must be writable by the owner: check now, with the
 * owner's ids, so that a bad directory is refused at attach and not found
 * out at the first write. */
static int check_outdir(struct stoked_session *ds, char *err, size_t errlen)
{
	struct fsids save;
	struct stat st;
	int r = 0;

	if (fstat(ds->outdir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "the output directory fd is not a directory");
		return -ENOTDIR;
	}
	fs_enter(ds, &save);
	/* AT_EACCESS: check with the current (filesystem) ids, not the
	 * real ones. */
	if (faccessat(ds->outdir, ".", W_OK | X_OK, AT_EACCESS) < 0)
		r = -errno;
	fs_leave(&save);
	if (r < 0)
		snprintf(err, errlen, "cannot write to the output directory as uid %u: %s",
			 (unsigned)ds->owner.uid, strerror(-r));
	return r;
}

static int open_session(struct stoked_session *ds, char *err, size_t errlen)
{
	struct stoke_session_opts so;
	int r;

	stoke_session_opts_init(&so);
	so.max_samples = max_samples;
	if (ds->req.freq)
		so.sampler.freq = ds->req.freq;
	so.sampler.event = ds->req.event;
	so.sampler.callgraph = ds->req.callgraph;
	so.sampler.stack_size = ds->req.stack_size;
	so.sampler.exclude_kernel = ds->req.no_kernel;
	so.no_kernel_symbols = ds->req.no_kernel;
	/* Files the target names are opened with the owner's rights. */
	so.file_creds = (struct stoke_file_creds){ true, ds->owner.uid, ds->owner.gid };
	/* A user chooses how many and how big the files its target maps are:
	 * bound what root loads for them (issue #12). */
	if (ds->owner.uid != 0)
		so.max_modules = STOKED_SESSION_MAX_MODULES;
	so.max_module_bytes = atomic_load(&ds->module_budget);
	/* A continuous session names each rotation while sampling (on this
	 * worker): the loads nothing can split go before the events are
	 * enabled (10 of 10 runs lost 23-270 samples at the first rotation
	 * on a loaded box). A one-shot session names after its events are
	 * disabled: preloading would only make it start later. */
	so.preload_symbols = ds->req.continuous;
	ds->freq = so.sampler.freq;
	r = stoke_session_new(&so, &ds->s);
	if (r < 0) {
		snprintf(err, errlen, "cannot start a session: %s", stoke_sampler_strerror(r));
		return r;
	}
	r = stoke_session_attach(ds->s, ds->pid);
	if (r < 0) {
		snprintf(err, errlen, "cannot attach to process %d: %s", ds->pid,
			 stoke_sampler_strerror(r));
		return r;
	}
	return 0;
}

/* The attach job: attach, then check again now that the events are open:
 * the target may have changed credentials (or been replaced) meanwhile. */
static int attach_job(struct stoked_session *ds)
{
	int r = open_session(ds, ds->job_err, sizeof(ds->job_err));

	if (r < 0)
		return r;
	r = pidfd_alive(ds->pidfd);
	if (r < 0) {
		snprintf(ds->job_err, sizeof(ds->job_err), "process %d exited during the attach",
			 ds->pid);
		return r;
	}
	r = stoke_auth_may_attach(&ds->owner, ds->pid, ds->job_err, sizeof(ds->job_err));
	if (r == -EPERM)
		log_warn("refused: uid %u (pid %d) may not profile pid %d: %s",
			 (unsigned)ds->owner.uid, ds->owner.pid, ds->pid, ds->job_err);
	return r;
}

static void *job_main(void *arg);

/* Post a job to ds's worker thread, which is started with the first
 * one. Returns 0 or -errno (nothing started). */
static int start_job(struct stoked_session *ds, enum stoked_job job)
{
	pthread_attr_t attr;
	int r;

	pthread_mutex_lock(&ds->lock);
	ds->job = job;
	ds->job_result = 0;
	ds->job_err[0] = '\0';
	atomic_store(&ds->job_finished, false);
	ds->posted = true;
	pthread_cond_signal(&ds->cond);
	pthread_mutex_unlock(&ds->lock);
	if (ds->have_thread)
		return 0;
	pthread_attr_init(&attr);
	/* Symbolization (libdw) and the writers recurse a little; 8 MiB
	 * of address space each is fine for at most --max-sessions. */
	pthread_attr_setstacksize(&attr, 8u << 20);
	r = -pthread_create(&ds->thread, &attr, job_main, ds);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		ds->job = STOKED_JOB_NONE;
		ds->posted = false;
		return r;
	}
	ds->have_thread = true;
	return 0;
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

unsigned stoked_session_estimate_fds(pid_t pid)
{
	char path[64];
	unsigned threads = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		threads += de->d_name[0] != '.';
	closedir(d);
	/* One event per (thread, CPU); the pidfd, the output directory, the
	 * resource timeline's /proc/PID/stat (kept open, resources.c). */
	return threads * online_cpus() + 3;
}

unsigned stoked_session_fds(const struct stoked_session *ds)
{
	return ds->state == S_ENDED ? 0 : ds->fds;
}

uint64_t stoked_session_module_bytes(const struct stoked_session *ds)
{
	return ds->state == S_ENDED ? 0 : ds->module_bytes;
}

void stoked_session_set_module_budget(struct stoked_session *ds, uint64_t bytes)
{
	/* 0 would mean "no bound": an exhausted budget is one byte. */
	bytes = STOKE_MAX(bytes, 1);
	atomic_store(&ds->module_budget, bytes);
	/* Only between jobs: a job may create or free ds->s. A job that runs
	 * keeps the bound it started with. */
	if (ds->s && ds->job == STOKED_JOB_NONE)
		stoke_session_set_max_module_bytes(ds->s, bytes);
}

uint64_t stoked_session_memory(const struct stoked_session *ds)
{
	return ds->state == S_ENDED ? 0 : ds->memory;
}

int stoked_session_start(uint64_t id, const struct stoke_request *req,
			 const struct stoke_auth_requester *owner, int outdir, double now,
			 uint64_t module_budget, struct stoked_session **ret, bool *ret_refused,
			 char *err, size_t errlen)
{
	struct stoked_session *ds;
	int r;

	*ret_refused = false;
	ds = calloc(1, sizeof(*ds));
	if (!ds) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&ds->lock, NULL);
	pthread_cond_init(&ds->cond, NULL);
	ds->id = id;
	ds->state = S_STARTING;
	ds->req = *req;
	ds->owner = *owner;
	ds->pid = req->pid;
	ds->outdir = -1;
	ds->started = now;
	ds->memory = STOKED_SESSION_BASE_MEMORY;
	atomic_store(&ds->module_budget, module_budget);
	/* The pidfd pins the identity of the target across the checks and
	 * the attach: if it exits and its pid is reused in between, the
	 * pidfd says so. */
	ds->pidfd = stoke_driver_pidfd(req->pid);
	if (ds->pidfd < 0) {
		r = ds->pidfd;
		ds->pidfd = -1;
		snprintf(err, errlen, "no such process: %d", req->pid);
		goto fail;
	}
	r = stoke_auth_may_attach(owner, req->pid, err, errlen);
	if (r < 0) {
		*ret_refused = r == -EPERM;
		goto fail;
	}
	ds->outdir = outdir;
	r = check_outdir(ds, err, errlen);
	if (r < 0)
		goto fail;
	ds->fds = stoked_session_estimate_fds(req->pid);
	read_target_facts(ds);
	ds->deadline = req->duration > 0 ? now + req->duration : 0;
	ds->next_rotate = req->continuous ? now + req->rotate : 0;
	ds->next_check = now + RECHECK_S;
	r = start_job(ds, STOKED_JOB_ATTACH);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the attach: %s", strerror(-r));
		goto fail;
	}
	*ret = ds;
	return 0;
fail:
	ds->outdir = -1; /* still the caller's */
	stoked_session_free(ds);
	return r;
}

void stoked_session_wait(struct stoked_session *ds)
{
	struct timespec ms = {0, 1000000};

	while (ds->job != STOKED_JOB_NONE && !atomic_load(&ds->job_finished))
		nanosleep(&ms, NULL);
}

/* Let the worker finish its job, if any, and exit. */
static void stop_thread(struct stoked_session *ds)
{
	if (!ds->have_thread)
		return;
	pthread_mutex_lock(&ds->lock);
	ds->quit = true;
	pthread_cond_signal(&ds->cond);
	pthread_mutex_unlock(&ds->lock);
	pthread_join(ds->thread, NULL);
	ds->have_thread = false;
	ds->job = STOKED_JOB_NONE;
}

void stoked_session_free(struct stoked_session *ds)
{
	if (!ds)
		return;
	stop_thread(ds);
	stoke_session_free(ds->s);
	if (ds->pidfd >= 0)
		close(ds->pidfd);
	if (ds->outdir >= 0)
		close(ds->outdir);
	for (size_t i = 0; i < ds->nruns; i++)
		free(ds->runs[i]);
	free(ds->runs);
	free(ds->exe);
	free(ds->last_run);
	free(ds->last_error);
	free(ds->job_name);
	pthread_cond_destroy(&ds->cond);
	pthread_mutex_destroy(&ds->lock);
	free(ds);
}

uint64_t stoked_session_id(const struct stoked_session *ds)
{
	return ds->id;
}

uid_t stoked_session_owner(const struct stoked_session *ds)
{
	return ds->owner.uid;
}

pid_t stoked_session_pid(const struct stoked_session *ds)
{
	return ds->pid;
}

bool stoked_session_running(const struct stoked_session *ds)
{
	return ds->state != S_ENDED;
}

bool stoked_session_busy(const struct stoked_session *ds)
{
	return ds->job != STOKED_JOB_NONE;
}

bool stoked_session_active(const struct stoked_session *ds)
{
	return ds->state == S_RUNNING && ds->job == STOKED_JOB_NONE && ds->s;
}

struct stoked_session_ctl *stoked_session_ctl(struct stoked_session *ds)
{
	return &ds->ctl;
}

void stoked_sessions_set_notify_fd(int fd)
{
	notify_fd = fd;
}

int stoked_session_ringfds(const struct stoked_session *ds, const int **ret)
{
	if (!stoked_session_active(ds)) {
		*ret = NULL;
		return 0;
	}
	return stoke_session_pollfds(ds->s, ret);
}

int stoked_session_pidfd(const struct stoked_session *ds)
{
	return ds->pidfd;
}

void stoked_session_poll_resources(struct stoked_session *ds)
{
	/* S_RUNNING: the attach is collected, and no end was posted (the
	 * loop sets S_ENDING first), so ds->s stays while this reads. */
	if (ds->state == S_RUNNING && ds->s)
		(void)stoke_session_resources_poll(ds->s);
}

/* Remove a run directory this session wrote (keep-N pruning): its files,
 * then the directory. Only one level: a run directory has no subfolders. */
static int remove_run(struct stoked_session *ds, const char *name)
{
	struct fsids save;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fs_enter(ds, &save);
	fd = openat(ds->outdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		goto out;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    unlinkat(fd, de->d_name, 0) < 0 && r == 0)
			r = -errno;
	closedir(d);
	if (unlinkat(ds->outdir, name, AT_REMOVEDIR) < 0 && r == 0)
		r = -errno;
out:
	fs_leave(&save);
	return r;
}

/* Remove this session's oldest run directories until at most keep are
 * left. */
static void prune_runs(struct stoked_session *ds, unsigned keep)
{
	if (!ds->req.continuous || ds->req.keep == 0)
		return;
	while (ds->nruns > keep) {
		int r = remove_run(ds, ds->runs[0]);

		if (r < 0)
			set_error(ds, "cannot remove an old run directory", r);
		free(ds->runs[0]);
		memmove(ds->runs, ds->runs + 1, (ds->nruns - 1) * sizeof(*ds->runs));
		ds->nruns--;
	}
}

/* Write p as a run directory in the output directory, as the owner. Runs
 * on a job's thread. */
static int write_run(struct stoked_session *ds, const struct stoke_profile *p, char **ret_name)
{
	struct stoke_run_info info = {.exe = ds->exe};
	struct stoke_output_opts oo;
	struct fsids save;
	char *name = NULL;
	int r;

	if (ds->s)
		stoke_session_run_info(ds->s, &info);
	stoke_output_opts_init(&oo);
	oo.per_thread = ds->req.per_thread;
	/* Make room first: "keep the newest N" holds at every moment, also
	 * while the next one is being written (the writes take a while, and
	 * they run beside whoever looks at the directory). */
	if (ds->req.keep)
		prune_runs(ds, ds->req.keep - 1);
	fs_enter(ds, &save);
	r = stoke_rundir_write(p, &info, &oo, ds->outdir, ds->name, &name);
	fs_leave(&save);
	if (r < 0) {
		set_error(ds, "cannot write the run directory", r);
		return r;
	}
	pthread_mutex_lock(&ds->lock);
	ds->runs_written++;
	free(ds->last_run);
	ds->last_run = name ? strdup(name) : NULL;
	pthread_mutex_unlock(&ds->lock);
	if (ds->req.continuous && name) {
		if (STOKE_GROW(ds->runs, ds->runs_cap, ds->nruns + 1) == 0)
			ds->runs[ds->nruns++] = strdup(name);
		prune_runs(ds, ds->req.keep);
	}
	log_info("session %llu (pid %d): wrote %s", (unsigned long long)ds->id, ds->pid,
		 name ? name : "a run directory");
	if (ret_name)
		*ret_name = name;
	else
		free(name);
	return 0;
}

void stoked_sessions_set_max_samples(uint64_t n)
{
	max_samples = n;
}

/* What the profile's tables hold, roughly: samples, stacks, frames and
 * strings at their struct sizes plus hash-table slack, and the fixed
 * allowance for the symbolizer's indexes and the rings. An estimate, kept
 * on the high side: the budget is about refusing a user who would take the
 * machine's memory, not about exact accounting. */
static uint64_t estimate_memory(const struct stoked_session *ds)
{
	const struct stoke_profile *p = stoke_session_profile(ds->s);
	struct stoke_session_stats st;
	size_t nsamples = 0;

	stoke_session_get_stats(ds->s, &st);
	if (p)
		stoke_profile_samples(p, &nsamples);
	/* Samples taken but not yet in the profile (deferred work) count
	 * as well: st.samples is every sample the session took. */
	if (st.samples > nsamples)
		nsamples = (size_t)st.samples;
	return st.module_bytes + STOKED_SESSION_BASE_MEMORY + (uint64_t)nsamples * 48 +
	       (p ? (uint64_t)stoke_profile_nstacks(p) * 48 + (uint64_t)stoke_profile_nframes(p) * 96 +
			    (uint64_t)stoke_profile_nstrings(p) * 96
		  : 0);
}

static int rotate_job(struct stoked_session *ds)
{
	struct stoke_profile *old = NULL;
	int r = stoke_session_rotate(ds->s, &old);

	if (r < 0) {
		set_error(ds, "cannot rotate the profile", r);
		return r;
	}
	r = write_run(ds, old, NULL);
	/* The scrape endpoint serves it as the session's latest. */
	if (stoked_http_enabled()) {
		struct stoke_run_info info = {.exe = ds->exe};

		stoke_session_run_info(ds->s, &info);
		stoked_http_rotation(ds->id, ds->pid, ds->comm, old, &info);
	}
	stoke_profile_free(old);
	return r;
}

static int snapshot_job(struct stoked_session *ds)
{
	int r = stoke_session_sync(ds->s);

	if (r >= 0)
		r = write_run(ds, stoke_session_profile(ds->s), &ds->job_name);
	if (r < 0) {
		pthread_mutex_lock(&ds->lock);
		snprintf(ds->job_err, sizeof(ds->job_err), "snapshot failed: %s",
			 ds->last_error ? ds->last_error : strerror(-r));
		pthread_mutex_unlock(&ds->lock);
	}
	return r;
}

/* Stop, write (unless discarded), release the heavy parts. */
static void end_job(struct stoked_session *ds)
{
	int r;

	r = stoke_session_stop(ds->s);
	/* -E2BIG: the sample limit, already reported when it was reached. */
	if (r < 0 && r != -E2BIG)
		set_error(ds, "reading the last samples failed", r);
	/* ds->stats is the loop's to read until the job is collected. */
	stoke_session_get_stats(ds->s, &ds->job_stats);
	if (!ds->end_discard)
		write_run(ds, stoke_session_profile(ds->s), NULL);
	log_info("session %llu (pid %d) ended: %s; %llu samples, %llu lost%s",
		 (unsigned long long)ds->id, ds->pid, ds->end_reason,
		 (unsigned long long)ds->job_stats.samples, (unsigned long long)ds->job_stats.lost,
		 ds->end_discard ? ", profile discarded" : "");
	if (ds->job_stats.modules_capped)
		log_warn("session %llu: %u modules not symbolized (named module+0xoff): over "
			 "the owner's symbolizer bounds (%u modules, --max-user-memory)",
			 (unsigned long long)ds->id, ds->job_stats.modules_capped,
			 STOKED_SESSION_MAX_MODULES);
	/* The events, rings and symbolizer go now: an ended session only
	 * keeps what status needs. */
	stoke_session_free(ds->s);
	ds->s = NULL;
	if (ds->pidfd >= 0)
		close(ds->pidfd);
	ds->pidfd = -1;
	if (ds->outdir >= 0)
		close(ds->outdir);
	ds->outdir = -1;
	ds->ended_at = mono_s();
}

/* The session's worker: runs each job posted to it, then says so on the
 * notify fd; exits when told to (stop_thread) or once the session ended. */
static void *job_main(void *arg)
{
	struct stoked_session *ds = arg;
	uint64_t one = 1;

	/* Below the loop thread (nice is per thread on Linux): on a busy
	 * machine the loop, which answers every client, goes first. */
	(void)!setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5);
	for (;;) {
		enum stoked_job job;

		pthread_mutex_lock(&ds->lock);
		while (!ds->posted && !ds->quit)
			pthread_cond_wait(&ds->cond, &ds->lock);
		if (!ds->posted) {
			pthread_mutex_unlock(&ds->lock);
			return NULL;
		}
		ds->posted = false;
		job = ds->job;
		pthread_mutex_unlock(&ds->lock);
		switch (job) {
		case STOKED_JOB_ATTACH:
			ds->job_result = attach_job(ds);
			break;
		case STOKED_JOB_DRAIN:
			ds->job_result = stoke_session_process(ds->s);
			if (ds->job_result > 0)
				ds->job_result = 0;
			break;
		case STOKED_JOB_SNAPSHOT:
			ds->job_result = snapshot_job(ds);
			break;
		case STOKED_JOB_ROTATE:
			ds->job_result = rotate_job(ds);
			break;
		case STOKED_JOB_END:
			end_job(ds);
			break;
		case STOKED_JOB_NONE:
			break;
		}
		atomic_store(&ds->job_finished, true);
		if (notify_fd >= 0)
			(void)!write(notify_fd, &one, sizeof(one));
		if (job == STOKED_JOB_END)
			return NULL; /* an ended session needs no worker */
	}
}

enum stoked_job stoked_session_job_done(struct stoked_session *ds, int *ret_result,
					char **ret_name, char *err, size_t errlen)
{
	enum stoked_job job = ds->job;

	if (job == STOKED_JOB_NONE || !atomic_load(&ds->job_finished))
		return STOKED_JOB_NONE;
	if (job == STOKED_JOB_END)
		stop_thread(ds); /* it has returned: reap it now, not when freed */
	ds->job = STOKED_JOB_NONE;
	*ret_result = ds->job_result;
	if (errlen)
		snprintf(err, errlen, "%s", ds->job_err);
	if (ret_name)
		*ret_name = ds->job_name;
	else
		free(ds->job_name);
	ds->job_name = NULL;
	switch (job) {
	case STOKED_JOB_ATTACH:
		if (ds->job_result >= 0) {
			ds->state = S_RUNNING;
			snprintf(ds->event, sizeof(ds->event), "%s",
				 stoke_session_event_name(ds->s));
		}
		break;
	case STOKED_JOB_END:
		ds->state = S_ENDED;
		ds->stats = ds->job_stats;
		break;
	default:
		break;
	}
	if (ds->s && ds->state == S_RUNNING) {
		ds->memory = estimate_memory(ds);
		stoke_session_get_stats(ds->s, &ds->stats);
		ds->module_bytes = ds->stats.module_bytes;
	}
	return job;
}

int stoked_session_rotate(struct stoked_session *ds)
{
	return start_job(ds, STOKED_JOB_ROTATE);
}

int stoked_session_drain(struct stoked_session *ds)
{
	return start_job(ds, STOKED_JOB_DRAIN);
}

enum stoked_job stoked_session_tick(struct stoked_session *ds, double now,
				    const char **ret_reason, bool *ret_discard)
{
	char why[256];
	int r;

	*ret_discard = false;
	*ret_reason = NULL;
	if (ds->state != S_RUNNING)
		return STOKED_JOB_NONE;
	if (now >= ds->next_check) {
		ds->next_check = now + RECHECK_S;
		r = stoke_auth_may_attach(&ds->owner, ds->pid, why, sizeof(why));
		if (r == -EPERM) {
			/* Samples taken after the change may belong to a
			 * process the owner cannot read: none are written. */
			set_message(ds, why);
			*ret_reason = "the owner may no longer profile the target";
			*ret_discard = true;
			return STOKED_JOB_END;
		}
	}
	if (ds->deadline && now >= ds->deadline) {
		*ret_reason = "duration reached";
		return STOKED_JOB_END;
	}
	if (ds->req.continuous && now >= ds->next_rotate) {
		/* Keep the cadence; after a stall, restart it from now rather
		 * than writing a burst of tiny profiles. */
		ds->next_rotate += ds->req.rotate;
		if (ds->next_rotate <= now)
			ds->next_rotate = now + ds->req.rotate;
		return STOKED_JOB_ROTATE;
	}
	return STOKED_JOB_DRAIN;
}

const char *stoked_session_drain_failed(struct stoked_session *ds, int r)
{
	char msg[128];

	if (r == -E2BIG) {
		snprintf(msg, sizeof(msg), "the profile reached --max-samples (%llu samples)",
			 (unsigned long long)max_samples);
		set_message(ds, msg);
		log_warn("session %llu (pid %d): %s", (unsigned long long)ds->id, ds->pid, msg);
		return "sample limit";
	}
	set_error(ds, "reading samples failed", r);
	return "read error";
}

int stoked_session_snapshot(struct stoked_session *ds, char *err, size_t errlen)
{
	int r;

	if (ds->state != S_RUNNING) {
		snprintf(err, errlen, "session %llu has ended", (unsigned long long)ds->id);
		return -ESRCH;
	}
	r = start_job(ds, STOKED_JOB_SNAPSHOT);
	if (r < 0)
		snprintf(err, errlen, "cannot start the snapshot: %s", strerror(-r));
	return r;
}

void stoked_session_end(struct stoked_session *ds, bool discard, const char *reason,
			const char *why, bool wait)
{
	if (ds->state == S_ENDED || ds->state == S_ENDING || ds->job != STOKED_JOB_NONE)
		return;
	if (why)
		set_message(ds, why);
	ds->end_discard = discard;
	ds->end_reason = reason;
	if (!ds->s) {
		/* A start that failed: nothing to stop or write. */
		ds->state = S_ENDED;
		ds->ended_at = mono_s();
		return;
	}
	ds->state = S_ENDING;
	if (wait || start_job(ds, STOKED_JOB_END) < 0) {
		/* No thread (stopping, or none to be had): end here. */
		end_job(ds);
		ds->state = S_ENDED;
		ds->stats = ds->job_stats;
	}
}

void stoked_session_target_exited(struct stoked_session *ds)
{
	if (!stoked_session_active(ds))
		return;
	stoke_session_target_exited(ds->s, ds->pid);
	stoked_session_end(ds, false, "the target exited", NULL, false);
}

void stoked_session_stats(const struct stoked_session *ds, struct stoke_session_stats *ret)
{
	*ret = ds->stats;
}

void stoked_session_info(struct stoked_session *ds, double now, struct stoke_session_info *ret)
{
	static const char *const states[] = {"starting", "running", "ending", "ended"};
	struct stoke_session_stats st = ds->stats;
	uint64_t runs;

	if (stoked_session_active(ds)) {
		stoke_session_get_stats(ds->s, &st);
		ds->stats = st; /* what status shows while a job runs */
	}
	pthread_mutex_lock(&ds->lock);
	snprintf(ds->shown_run, sizeof(ds->shown_run), "%s", ds->last_run ? ds->last_run : "");
	snprintf(ds->shown_error, sizeof(ds->shown_error), "%s",
		 ds->last_error ? ds->last_error : "");
	runs = ds->runs_written;
	pthread_mutex_unlock(&ds->lock);
	*ret = (struct stoke_session_info){
		.id = ds->id,
		.pid = ds->pid,
		.uid = ds->owner.uid,
		.comm = ds->comm,
		.state = states[ds->state],
		.mode = ds->req.continuous ? "continuous" : "oneshot",
		/* Written by the attach job; read once it is collected. */
		.event = ds->state == S_STARTING ? "" : ds->event,
		.freq = ds->state == S_STARTING ? 0 : ds->freq,
		.elapsed = (ds->state == S_ENDED ? ds->ended_at : now) - ds->started,
		.duration = ds->req.duration,
		.rotate = ds->req.continuous ? ds->req.rotate : 0,
		.keep = ds->req.keep,
		.samples = st.samples,
		.lost = st.lost,
		.threads = st.threads,
		.runs_written = runs,
		.last_run = ds->shown_run[0] ? ds->shown_run : NULL,
		.last_error = ds->shown_error[0] ? ds->shown_error : NULL,
	};
}
