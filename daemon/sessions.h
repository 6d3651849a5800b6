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

#include "auth.h"
#include "protocol.h"

struct stoked_session;

/*
 * Check that owner may profile req->pid, attach, and start the session.
 * outdir is the directory the run directories go to; it is taken over on
 * success (and left to the caller on failure). Returns 0, or -errno with a
 * one-line reason for the requester in err.
 */
int stoked_session_start(uint64_t id, const struct stoke_request *req,
			 const struct stoke_auth_requester *owner, int outdir, double now,
			 struct stoked_session **ret, char *err, size_t errlen);
/* Releases everything without writing. Accepts NULL. */
void stoked_session_free(struct stoked_session *ds);

uint64_t stoked_session_id(const struct stoked_session *ds);
uid_t stoked_session_owner(const struct stoked_session *ds);

/* Every session's profile holds at most n samples (0: no limit); a session
 * that reaches it writes its profile and ends. About 24 bytes a sample. */
#define STOKED_DEFAULT_MAX_SAMPLES 10000000ULL
void stoked_sessions_set_max_samples(uint64_t n);
bool stoked_session_running(const struct stoked_session *ds);
/* Ring fds to watch for POLLIN, and the target's pidfd (readable when it
 * exits). Valid while the session runs. */
int stoked_session_ringfds(const struct stoked_session *ds, const int **ret);
int stoked_session_pidfd(const struct stoked_session *ds);

/* Drain the rings into the profile. Returns 0 or -errno. */
int stoked_session_drain(struct stoked_session *ds);
/*
 * Periodic work: drain, rotate when due (continuous), re-check the
 * authorization, end at the deadline. Returns 1 when the session ended
 * during this call, else 0.
 */
int stoked_session_tick(struct stoked_session *ds, double now);
/* Write the profile collected so far as a run directory and keep running.
 * *ret_name (malloc'd) is its name in the output directory. */
int stoked_session_snapshot(struct stoked_session *ds, char **ret_name, char *err, size_t errlen);
/*
 * End the session: stop the events, read what is left, and (unless discard)
 * write the final profile. The session stays in the table as "ended" with
 * its last run's name until freed. reason is logged. Idempotent.
 */
void stoked_session_end(struct stoked_session *ds, bool discard, const char *reason);
/* The target exited (its pidfd became readable). Ends the session. */
void stoked_session_target_exited(struct stoked_session *ds);

/* Filled with pointers into ds, valid until the next call on it. */
void stoked_session_info(const struct stoked_session *ds, double now,
			 struct stoke_session_info *ret);
