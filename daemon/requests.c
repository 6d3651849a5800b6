/*
 * stoked's requests (see stoked.h): attach, detach, snapshot, list, status
 * and shutdown, and the replies of jobs that finish.
 */
#include "daemon/stoked.h"

/* ---- requests ---------------------------------------------------------- */

static bool may_manage(const struct client *c, const struct stoked_session *ds)
{
	return c->cred.uid == 0 || stoked_session_owner(ds) == c->cred.uid;
}

/* Without a passed directory: <output-root>/<uid>, created for the
 * requester and owned by them. */
static int default_outdir(struct daemon *d, const struct client *c, char *err, size_t errlen)
{
	_cleanup_close_ int root = -1;
	char name[32];
	int fd;

	root = open(d->opt.output_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		snprintf(err, errlen,
			 "no output directory: pass one with the request (stoke attach -o DIR) "
			 "or start stoked with --output-root (%s: %s)",
			 d->opt.output_root, strerror(errno));
		return -ENOENT;
	}
	snprintf(name, sizeof(name), "%u", (unsigned)c->cred.uid);
	if (mkdirat(root, name, 0700) == 0) {
		if (fchownat(root, name, c->cred.uid, c->cred.gid, AT_SYMLINK_NOFOLLOW) < 0) {
			int r = -errno;

			snprintf(err, errlen, "cannot create %s/%s: %s", d->opt.output_root, name,
				 strerror(errno));
			return r;
		}
	} else if (errno != EEXIST) {
		int r = -errno;

		snprintf(err, errlen, "cannot create %s/%s: %s", d->opt.output_root, name,
			 strerror(errno));
		return r;
	}
	fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		snprintf(err, errlen, "cannot open %s/%s: %s", d->opt.output_root, name,
			 strerror(errno));
		return r;
	}
	return fd;
}

static void do_attach(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoked_session *ds = NULL;
	char err[512];
	bool refused;
	int outdir, r;

	if (stoked_running_sessions(d) >= d->opt.max_sessions) {
		snprintf(err, sizeof(err), "too many sessions (--max-sessions %u)",
			 d->opt.max_sessions);
		stoked_reply_error(c, -EBUSY, err);
		return;
	}
	/* One user may run at most half the sessions (root is not limited). */
	if (c->cred.uid != 0 &&
	    stoked_user_sessions(d, c->cred.uid) >= STOKE_MAX(d->opt.max_sessions / 2, 1u)) {
		snprintf(err, sizeof(err),
			 "too many sessions for uid %u (half of --max-sessions %u)",
			 (unsigned)c->cred.uid, d->opt.max_sessions);
		stoked_reply_error(c, -EBUSY, err);
		return;
	}
	if (c->cred.uid != 0 && d->opt.max_user_memory &&
	    stoked_user_memory(d, c->cred.uid) + STOKED_SESSION_BASE_MEMORY >
		    d->opt.max_user_memory) {
		snprintf(err, sizeof(err),
			 "the sessions of uid %u hold about %llu MiB: no room for another under "
			 "stoked --max-user-memory (%llu MiB)",
			 (unsigned)c->cred.uid,
			 (unsigned long long)(stoked_user_memory(d, c->cred.uid) >> 20),
			 (unsigned long long)(d->opt.max_user_memory >> 20));
		stoked_reply_error(c, -EDQUOT, err);
		return;
	}
	/* The events are one fd per thread and CPU: a target with many
	 * threads is refused before its fds are opened. Only once the
	 * requester may profile it: the refusal names its thread count,
	 * which is not everyone's to learn (hidepid). */
	r = 0;
	if (c->cred.uid != 0 && stoke_auth_may_attach(&c->cred, req->pid, err, sizeof(err)) == 0)
		r = stoked_fd_budget(d, c->cred.uid, stoked_session_estimate_fds(req->pid), err,
			      sizeof(err));
	if (r < 0) {
		if (stoked_ratelimit_ok(&d->rl_budget, stoked_mono_s(), "budget messages"))
			log_warn("attach by uid %u to pid %d refused: %s", (unsigned)c->cred.uid,
				 req->pid, err);
		stoked_reply_error(c, r, err);
		return;
	}
	if (STOKE_GROW(d->sessions, d->sessions_cap, d->nsessions + 1) < 0) {
		stoked_reply_error(c, -ENOMEM, "out of memory");
		return;
	}
	if (c->passed_fd >= 0) {
		outdir = TAKE_FD(c->passed_fd);
	} else {
		outdir = default_outdir(d, c, err, sizeof(err));
		if (outdir < 0) {
			stoked_reply_error(c, outdir, err);
			return;
		}
	}
	r = stoked_session_start(d->next_id, req, &c->cred, outdir, stoked_mono_s(),
				 stoked_module_budget(d, c->cred.uid, NULL), &ds, &refused, err,
				 sizeof(err));
	if (r < 0) {
		close(outdir);
		/* Say what failed: only an authorization refusal is "may not
		 * profile"; an output directory the requester cannot write
		 * is something else (issue #12). */
		if (refused) {
			if (stoked_ratelimit_ok(&d->rl_refused, stoked_mono_s(), "refusals"))
				log_warn("refused: uid %u (pid %d) may not profile pid %d: %s",
					 (unsigned)c->cred.uid, c->cred.pid, req->pid, err);
		} else if (stoked_ratelimit_ok(&d->rl_refused, stoked_mono_s(), "refusals")) {
			log_info("attach by uid %u to pid %d failed: %s", (unsigned)c->cred.uid,
				 req->pid, err);
		}
		stoked_reply_error(c, r, err);
		return;
	}
	/* The attach runs on a worker; the reply goes out when it is done
	 * (stoked_jobs_done). */
	d->sessions[d->nsessions++] = ds;
	d->next_id++;
	stoked_session_ctl(ds)->waiter = c->serial;
	c->waiting = true;
}

/* The session named by id, if this client may manage it; otherwise the
 * error has been replied. "Not yours" and "no such session" get the same
 * answer, so that nobody learns which ids other users' sessions have. */
static struct stoked_session *lookup(struct daemon *d, struct client *c, uint64_t id)
{
	struct stoked_session *ds = stoked_find_session(d, id);
	char msg[128];

	if (!ds || !may_manage(c, ds)) {
		snprintf(msg, sizeof(msg), "no session %llu (among the sessions you may manage)",
			 (unsigned long long)id);
		stoked_reply_error(c, -ENOENT, msg);
		return NULL;
	}
	return ds;
}

static void reply_ended(struct client *c, uint64_t id)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "session %llu has already ended", (unsigned long long)id);
	stoked_reply_error(c, -ESRCH, msg);
}

static void do_detach(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoked_session *ds = lookup(d, c, req->session);
	struct stoked_session_ctl *ctl;

	if (!ds)
		return;
	ctl = stoked_session_ctl(ds);
	if (!stoked_session_running(ds) || ctl->end_pending) {
		reply_ended(c, req->session);
		return;
	}
	if (!stoked_session_active(ds)) {
		/* Starting, or a snapshot or rotation runs: end it after. */
		ctl->end_pending = true;
		ctl->end_discard = req->discard;
		ctl->end_reason = NULL;
		ctl->end_waiter = c->serial;
		c->waiting = true;
		return;
	}
	if (stoked_end_session(d, ds, req->discard, "detached", NULL, c->serial)) {
		c->waiting = true;
	} else {
		struct stoke_session_info info;

		stoked_session_info(ds, stoked_mono_s(), &info);
		stoked_queue_reply(c,
				   stoke_reply_session(&info, req->discard ? NULL : info.last_run));
	}
}

static int start_snapshot(struct daemon *d, struct stoked_session *ds, uint64_t waiter,
			  char *err, size_t errlen)
{
	int r;

	stoked_unwatch_session(d, ds);
	stoked_session_ctl(ds)->waiter = waiter;
	r = stoked_session_snapshot(ds, err, errlen);
	if (r < 0)
		stoked_watch_session(d, ds);
	return r;
}

static void do_snapshot(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoked_session *ds = lookup(d, c, req->session);
	struct stoked_session_ctl *ctl;
	char err[512];
	int r;

	if (!ds)
		return;
	ctl = stoked_session_ctl(ds);
	if (!stoked_session_running(ds) || ctl->end_pending) {
		reply_ended(c, req->session);
		return;
	}
	if (!stoked_session_active(ds)) {
		if (ctl->snap_pending) {
			stoked_reply_error(c, -EBUSY,
					   "a snapshot of this session is already queued");
			return;
		}
		ctl->snap_pending = true;
		ctl->snap_waiter = c->serial;
		c->waiting = true;
		return;
	}
	r = start_snapshot(d, ds, c->serial, err, sizeof(err));
	if (r < 0) {
		stoked_reply_error(c, r, err);
		return;
	}
	c->waiting = true;
}

static void do_list(struct daemon *d, struct client *c)
{
	_cleanup_free_ struct stoke_session_info *infos = NULL;
	size_t n = 0;
	double now = stoked_mono_s();

	infos = calloc(d->nsessions + 1, sizeof(*infos));
	if (!infos) {
		stoked_reply_error(c, -ENOMEM, "out of memory");
		return;
	}
	/* Other users' sessions are not shown: which processes someone else
	 * profiles is theirs to know. */
	for (size_t i = 0; i < d->nsessions; i++)
		if (may_manage(c, d->sessions[i]))
			stoked_session_info(d->sessions[i], now, &infos[n++]);
	stoked_queue_reply(c, stoke_reply_list(infos, n));
}

static void do_status(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoke_session_info info;
	struct stoke_daemon_info di;

	if (req->session) {
		struct stoked_session *ds = lookup(d, c, req->session);

		if (!ds)
			return;
		stoked_session_info(ds, stoked_mono_s(), &info);
		stoked_queue_reply(c, stoke_reply_session(&info, NULL));
		return;
	}
	di = (struct stoke_daemon_info){
		.version = STOKE_VERSION,
		.pid = getpid(),
		.uptime = stoked_mono_s() - d->started,
		.sessions = stoked_running_sessions(d),
		.max_sessions = d->opt.max_sessions,
		.clients = (unsigned)d->nclients,
		.max_clients = d->opt.max_clients,
	};
	stoked_queue_reply(c, stoke_reply_daemon(&di));
}

static void do_shutdown(struct daemon *d, struct client *c)
{
	if (c->cred.uid != 0 && c->cred.uid != geteuid()) {
		log_warn("refused: shutdown requested by uid %u", (unsigned)c->cred.uid);
		stoked_reply_error(c, -EPERM, "permission denied: only root may shut stoked down");
		return;
	}
	log_info("shutdown requested by uid %u (pid %d)", (unsigned)c->cred.uid, c->cred.pid);
	stoked_queue_reply(c, stoke_reply_ok());
	d->stopping = true;
}

static struct client *client_by_serial(struct daemon *d, uint64_t serial)
{
	if (!serial)
		return NULL;
	for (size_t i = 0; i < d->nclients; i++)
		if (d->clients[i]->serial == serial)
			return d->clients[i];
	return NULL;
}

/* A job's reply is queued for c: it may go on with its next requests. */
static void client_resume(struct daemon *d, struct client *c)
{
	c->waiting = false;
	c->last_active = stoked_mono_s();
	stoked_consume_lines(d, c);
	if (c->dead || stoked_client_flush(d, c) < 0 ||
	    (c->eof && !c->waiting && c->outoff == c->outlen))
		stoked_client_close(d, c);
}

/* Collect the job that finished on ds, reply to whoever waits for it, and
 * start what was queued meanwhile. Returns false when ds was dropped from
 * the table (a failed attach). */
static bool job_finished(struct daemon *d, size_t idx)
{
	struct stoked_session *ds = d->sessions[idx];
	struct stoked_session_ctl *ctl = stoked_session_ctl(ds);
	struct stoke_session_info info;
	_cleanup_free_ char *name = NULL;
	struct client *c;
	char err[512];
	const char *reason;
	char why[256];
	enum stoked_job job;
	int r = 0;

	job = stoked_session_job_done(ds, &r, &name, err, sizeof(err));
	if (job == STOKED_JOB_NONE)
		return true;
	c = client_by_serial(d, ctl->waiter);
	ctl->waiter = 0;
	switch (job) {
	case STOKED_JOB_ATTACH:
		if (r >= 0 && stoked_watch_session(d, ds) < 0) {
			r = -ENOMEM;
			snprintf(err, sizeof(err), "out of memory");
		}
		if (r < 0) {
			if (stoked_ratelimit_ok(&d->rl_refused, stoked_mono_s(), "refusals"))
				log_info("attach by uid %u to pid %d failed: %s",
					 (unsigned)stoked_session_owner(ds), stoked_session_pid(ds),
					 err);
			if (c) {
				stoked_reply_error(c, r, err);
				client_resume(d, c);
			}
			/* Whoever queued a detach or snapshot meanwhile: the
			 * session never was. */
			if ((c = client_by_serial(d, ctl->end_waiter))) {
				reply_ended(c, stoked_session_id(ds));
				client_resume(d, c);
			}
			if ((c = client_by_serial(d, ctl->snap_waiter))) {
				reply_ended(c, stoked_session_id(ds));
				client_resume(d, c);
			}
			stoked_unwatch_session(d, ds);
			stoked_session_free(ds);
			memmove(d->sessions + idx, d->sessions + idx + 1,
				(d->nsessions - idx - 1) * sizeof(*d->sessions));
			d->nsessions--;
			return false;
		}
		log_info("session %llu: uid %u attached to pid %d",
			 (unsigned long long)stoked_session_id(ds),
			 (unsigned)stoked_session_owner(ds), stoked_session_pid(ds));
		if (c) {
			stoked_session_info(ds, stoked_mono_s(), &info);
			stoked_queue_reply(c, stoke_reply_session(&info, NULL));
			client_resume(d, c);
		}
		break;
	case STOKED_JOB_DRAIN:
		if (r < 0)
			stoked_end_session(d, ds, false, stoked_session_drain_failed(ds, r), NULL,
					   0);
		else if (stoked_target_gone(ds))
			stoked_session_target_exited(ds);
		else if (stoked_watch_session(d, ds) < 0)
			stoked_end_session(d, ds, false, "out of memory", NULL, 0);
		break;
	case STOKED_JOB_SNAPSHOT:
	case STOKED_JOB_ROTATE:
		if (stoked_watch_session(d, ds) < 0)
			stoked_end_session(d, ds, false, "out of memory", NULL, 0);
		if (c) {
			if (r < 0) {
				stoked_reply_error(c, r, err);
			} else {
				stoked_session_info(ds, stoked_mono_s(), &info);
				stoked_queue_reply(c, stoke_reply_session(&info, name));
			}
			client_resume(d, c);
		}
		break;
	case STOKED_JOB_END:
		/* A session's profile and symbolizer were just freed: give
		 * the memory back now, so that the daemon's RSS follows the
		 * sessions it runs rather than the largest it ever ran. */
		malloc_trim(0);
		if (c) {
			stoked_session_info(ds, stoked_mono_s(), &info);
			stoked_queue_reply(c, stoke_reply_session(&info, info.last_run));
			client_resume(d, c);
		}
		break;
	case STOKED_JOB_NONE:
		break;
	}
	/* What arrived while the job ran. */
	if (ctl->end_pending) {
		uint64_t waiter = ctl->end_waiter;

		ctl->end_pending = false;
		ctl->end_waiter = 0;
		ctl->rotate_pending = false;
		reason = ctl->end_reason ? ctl->end_reason : "detached";
		ctl->end_reason = NULL;
		snprintf(why, sizeof(why), "%s", ctl->end_why);
		ctl->end_why[0] = '\0';
		c = client_by_serial(d, waiter);
		if (!stoked_session_active(ds)) {
			if (c) {
				reply_ended(c, stoked_session_id(ds));
				client_resume(d, c);
			}
		} else if (!stoked_end_session(d, ds, ctl->end_discard, reason, why[0] ? why : NULL,
					waiter) &&
			   c) {
			stoked_session_info(ds, stoked_mono_s(), &info);
			stoked_queue_reply(c, stoke_reply_session(&info, info.last_run));
			client_resume(d, c);
		}
	}
	if (ctl->snap_pending && !stoked_session_busy(ds)) {
		uint64_t waiter = ctl->snap_waiter;

		ctl->snap_pending = false;
		ctl->snap_waiter = 0;
		c = client_by_serial(d, waiter);
		if (!stoked_session_active(ds)) {
			if (c) {
				reply_ended(c, stoked_session_id(ds));
				client_resume(d, c);
			}
		} else if (start_snapshot(d, ds, waiter, err, sizeof(err)) < 0 && c) {
			stoked_reply_error(c, -EIO, err);
			client_resume(d, c);
		}
	}
	if (ctl->rotate_pending && stoked_session_active(ds)) {
		ctl->rotate_pending = false;
		stoked_start_job(d, ds, STOKED_JOB_ROTATE, 0);
	}
	return true;
}

void stoked_jobs_done(struct daemon *d)
{
	uint64_t n;

	(void)!read(d->job_fd, &n, sizeof(n));
	for (size_t i = 0; i < d->nsessions;)
		i += job_finished(d, i);
}

void stoked_handle_line(struct daemon *d, struct client *c, const char *line, size_t len)
{
	struct stoke_request req;
	char err[256];
	int r;

	r = stoke_request_parse(line, len, &req, err, sizeof(err));
	if (r < 0) {
		log_debug("bad request from uid %u: %s", (unsigned)c->cred.uid, err);
		stoked_reply_error(c, r, err);
	} else {
		switch (req.op) {
		case STOKE_OP_ATTACH:
			do_attach(d, c, &req);
			break;
		case STOKE_OP_DETACH:
			do_detach(d, c, &req);
			break;
		case STOKE_OP_SNAPSHOT:
			do_snapshot(d, c, &req);
			break;
		case STOKE_OP_LIST:
			do_list(d, c);
			break;
		case STOKE_OP_STATUS:
			do_status(d, c, &req);
			break;
		case STOKE_OP_SHUTDOWN:
			do_shutdown(d, c);
			break;
		case STOKE_OP_NONE:
			stoked_reply_error(c, -EINVAL, "no operation");
			break;
		}
	}
	/* A directory passed with a request belongs to that request only. */
	if (c->passed_fd >= 0) {
		close(c->passed_fd);
		c->passed_fd = -1;
	}
}

/* Keep the first SCM_RIGHTS fd of a message, close any others. */
