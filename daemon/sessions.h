/*
 * stoked's sessions: one attach request each, wrapping the shared session
 * code (session.h) with what the daemon adds on top: an owner, an output
 * directory fd, a pidfd on the target, a deadline, continuous rotation with
 * "keep the newest N", snapshots, and the final write when it ends.
 *
 * This file knows nothing of epoll or sockets: stoked.c registers the fds
 * it exposes and calls stoked_session_tick on its timer. Every file is
 * written with the owner's filesystem uid/gid (setfsuid), so the daemon's
 * root privileges never reach the output directory: a requester can only
 * make it write where the requester could write itself, and the files are
 * theirs.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/auth.h"
#include "daemon/protocol.h"

struct stoked_session;

/*
 * Everything that may take long runs on the session's worker thread (one
 * per session, started with its attach job, gone when it ends), so that
 * one session's attach (10k threads take seconds), draining (DWARF
 * unwinding at high rates), symbolization or profile write never stalls
 * the event loop, the other sessions or a client. While a job runs
 * the session is "busy": the loop does not drain it, tick it or watch its
 * fds (the kernel counts what its rings drop, and the profile reports it),
 * and status shows what was true when the job began. A finished job writes
 * to the notify fd (an eventfd stoked watches); the loop then collects it
 * with stoked_session_job_done.
 */
enum stoked_job {
	STOKED_JOB_NONE,
	STOKED_JOB_ATTACH,   /* attach and check again: the session then runs */
	STOKED_JOB_DRAIN,    /* read the rings into the profile (unwinding) */
	STOKED_JOB_SNAPSHOT, /* write the profile so far, keep running */
	STOKED_JOB_ROTATE,   /* continuous: hand the profile over and write it */
	STOKED_JOB_END,	     /* stop, write the final profile (unless discarded) */
};

/* Where a finished job says so (an eventfd; one 8-byte increment each). */
void stoked_sessions_set_notify_fd(int fd);

/*
 * Check that owner may profile req->pid (quick: /proc reads), then start the
 * attach job. outdir is the directory the run directories go to; it is taken
 * over on success (and left to the caller on failure). Returns 0 with the
 * session starting (busy), or -errno with a one-line reason for the
 * requester in err; *ret_refused tells an authorization refusal (to be
 * logged as such) from any other failure (the output directory, …).
 * module_budget bounds what its symbolizer loads (stoked_module_budget).
 */
int stoked_session_start(uint64_t id, const struct stoke_request *req,
			 const struct stoke_auth_requester *owner, int outdir, double now,
			 uint64_t module_budget, struct stoked_session **ret, bool *ret_refused,
			 char *err, size_t errlen);
/* Wait for a running job to finish (stoked is stopping); it is then
 * collected with stoked_session_job_done as usual. */
void stoked_session_wait(struct stoked_session *ds);
/* Releases everything without writing, waiting for a running job first.
 * Accepts NULL. */
void stoked_session_free(struct stoked_session *ds);

uint64_t stoked_session_id(const struct stoked_session *ds);
uid_t stoked_session_owner(const struct stoked_session *ds);
pid_t stoked_session_pid(const struct stoked_session *ds);

/* Every session's profile holds at most n samples (0: no limit); a session
 * that reaches it writes its profile and ends. */
#define STOKED_DEFAULT_MAX_SAMPLES 10000000ULL
void stoked_sessions_set_max_samples(uint64_t n);
/* Starting, running or ending: it holds resources and counts against the
 * limits. Ended sessions only keep what status shows. */
bool stoked_session_running(const struct stoked_session *ds);
/* Running and not busy: its fds are watched and it may be drained. */
bool stoked_session_active(const struct stoked_session *ds);
/* A job is running on a worker thread. */
bool stoked_session_busy(const struct stoked_session *ds);
/* Ring fds to watch for POLLIN, and the target's pidfd (readable when it
 * exits). Valid while the session is active. */
int stoked_session_ringfds(const struct stoked_session *ds, const int **ret);
int stoked_session_pidfd(const struct stoked_session *ds);
/* The resource timeline's reading when due, on the loop thread, whatever
 * job the session's worker runs (a rotation's naming and writing takes
 * seconds on a loaded machine). Never blocks: a few procfs reads. */
void stoked_session_poll_resources(struct stoked_session *ds);

/* How many fds attaching to pid would open (one event per thread and CPU,
 * plus the rings' bookkeeping); 0 when it cannot be told. */
unsigned stoked_session_estimate_fds(pid_t pid);
/* The fds this session holds (the estimate made at its start). */
unsigned stoked_session_fds(const struct stoked_session *ds);
/*
 * The memory this session holds, estimated from its profile's tables and a
 * fixed allowance for the symbolizer and rings (not measured: the daemon's
 * heap is shared). Updated by stoked_session_tick; while busy, the value
 * from before the job.
 */
uint64_t stoked_session_memory(const struct stoked_session *ds);
/* The fixed part of stoked_session_memory: what a session costs at start.
 * Measured: four sessions on one target added 120 MB of RSS, most of it
 * each session's kernel symbol table and libdw state. */
#define STOKED_SESSION_BASE_MEMORY (32ULL << 20)
/* Modules whose symbols one non-root session may load (issue #12). */
#define STOKED_SESSION_MAX_MODULES 1024
/* The symbolizer's part of stoked_session_memory (0 once ended). */
uint64_t stoked_session_module_bytes(const struct stoked_session *ds);
/* Bound what the session's symbolizer may still load, in bytes of its
 * estimate (at least 1: never "no bound"); the loop keeps it at what is
 * left of the owner's --max-user-memory. Applied between jobs. */
void stoked_session_set_module_budget(struct stoked_session *ds, uint64_t bytes);

/* Start the drain job (the session must be active). Returns 0 or -errno. */
int stoked_session_drain(struct stoked_session *ds);
/* A drain job failed with r: record why; returns the reason to end with. */
const char *stoked_session_drain_failed(struct stoked_session *ds, int r);
/*
 * Periodic work of a running session, busy or not (it does not touch the
 * profile): re-check the authorization and say what is due: STOKED_JOB_END
 * (with *ret_reason), STOKED_JOB_ROTATE, else STOKED_JOB_DRAIN (the regular
 * drain); STOKED_JOB_NONE when the session is not running.
 */
enum stoked_job stoked_session_tick(struct stoked_session *ds, double now,
				    const char **ret_reason, bool *ret_discard);
/* Start the snapshot job (the session must be active). Returns 0 or -errno
 * with the reason in err. */
int stoked_session_snapshot(struct stoked_session *ds, char *err, size_t errlen);
/* Start the rotate job (continuous sessions; must be active). */
int stoked_session_rotate(struct stoked_session *ds);
/*
 * End the session: stop the events, read what is left, and (unless discard)
 * write the final profile. With wait, synchronously (stoked is stopping);
 * else as a job. reason is logged; why, when not NULL, becomes the
 * session's last_error. The session stays in the table as "ended" with its
 * last run's name until freed. The session must be active (or starting
 * with wait).
 */
void stoked_session_end(struct stoked_session *ds, bool discard, const char *reason,
			const char *why, bool wait);
/* Like stoked_session_end, for a target that exited (its pidfd became
 * readable). */
void stoked_session_target_exited(struct stoked_session *ds);
/*
 * If ds's job has finished: collect it (join the thread) and return its
 * kind, with its result in *ret_result (0 or -errno), the reason of a
 * failure in err, and for a snapshot the run directory's name in *ret_name
 * (malloc'd). STOKED_JOB_NONE when no job has finished.
 */
enum stoked_job stoked_session_job_done(struct stoked_session *ds, int *ret_result,
					char **ret_name, char *err, size_t errlen);

/* The counts status shows (as of the last job collected, or the end). */
struct stoke_session_stats;
void stoked_session_stats(const struct stoked_session *ds, struct stoke_session_stats *ret);

/* Filled with pointers into ds, valid until the next call on it. */
void stoked_session_info(struct stoked_session *ds, double now, struct stoke_session_info *ret);

/*
 * stoked.c's bookkeeping for the clients waiting on a session (each a
 * client serial number, 0 for none): the one whose request started the
 * current job, and requests that arrived while it was busy and run when it
 * is done.
 */
struct stoked_session_ctl {
	uint64_t waiter;
	bool end_pending, end_discard;
	uint64_t end_waiter;
	bool snap_pending;
	uint64_t snap_waiter;
	const char *end_reason; /* a pending end nobody asked for ("detached" else) */
	char end_why[256];      /* and its last_error, if not empty */
	bool rotate_pending;
};
struct stoked_session_ctl *stoked_session_ctl(struct stoked_session *ds);
