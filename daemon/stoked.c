/*
 * stoked: the profiling daemon. It listens on a UNIX stream socket for
 * newline-delimited JSON requests (protocol.h, docs/protocol.md), runs many
 * sessions at once (sessions.h), and writes their run directories into the
 * directories its clients pass.
 *
 *   stoked [--socket PATH] [--foreground] [--output-root DIR]
 *          [--max-sessions N] [--max-clients N] [--socket-mode MODE]
 *          [--socket-group GROUP] [--admin-group GROUP] [--log FILE]
 *          [--max-user-memory SIZE] [--max-user-fds N]
 *
 * One epoll loop serves the listening socket, client sockets, each
 * session's ring fds and target pidfd, one periodic timerfd (drain, rotate,
 * deadlines, re-checks), a signalfd (SIGTERM/SIGINT: flush every session
 * and exit 0; SIGHUP: reopen the log) and an eventfd that worker threads
 * signal. Everything slow runs on a worker thread per job (sessions.h:
 * attach, snapshot, rotation, the final write), so the loop only ever does
 * short work and answers every client promptly; a client whose request
 * started a job waits for its reply (and sends nothing else meanwhile, so
 * replies stay in order) while everybody else is served.
 *
 * Every resource a client can grow has a limit: sessions, clients, request
 * size, the reply bytes queued for a client that does not read, and per
 * user (root excepted) half of the sessions and clients, a memory budget
 * and an fd budget. The last fds are root's: a user can never take the
 * daemon to its fd limit, and if it gets there anyway a spare fd lets it
 * answer (and root be served) instead of spinning on accept().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "protocol.h"
#include "sdnotify.h"
#include "session/driver.h"
#include "sessions.h"
#include "util.h"

#define DEFAULT_SOCKET	     "/run/stoke/stoked.sock"
#define DEFAULT_OUTPUT_ROOT  "/var/lib/stoke"
#define DEFAULT_LOG	     "/var/log/stoked.log"
#define DEFAULT_MAX_SESSIONS 64
#define DEFAULT_MAX_CLIENTS  64
#define TICK_MS		     100
/* Reply bytes queued for one client; one that does not read is dropped. */
#define MAX_CLIENT_OUTPUT (1024 * 1024)
/* Ended sessions kept for status/list, oldest dropped first. */
#define MAX_ENDED 32
/* A client that neither sends nor reads for this long is closed: idle
 * connections must not hold the client slots. */
#define CLIENT_IDLE_S 60.0
/* Fds kept for root and the daemon itself: non-root users together never
 * hold more than the fd limit minus this. */
#define ROOT_FD_RESERVE 64
/* Fds the daemon holds before any client or session. */
#define BASE_FDS 16
#define DEFAULT_MAX_USER_MEMORY (512ULL << 20)
#define NSPARE 4

enum watch_kind { W_LISTEN = 1, W_SIGNAL, W_TIMER, W_CLIENT, W_RING, W_PIDFD, W_JOBS };

/*
 * At most `burst` messages of one kind per `window` seconds; the rest are
 * counted and summed up in one line when the window ends. A client that can
 * make the daemon log (a refused connection, a refused attach) must not be
 * able to fill the disk: the log grew by 2.7 MB/s under an fd-exhaustion
 * attack (issue #12).
 */
struct ratelimit {
	double window_start;
	unsigned printed, suppressed;
};
#define RL_BURST  10
#define RL_WINDOW 10.0

struct client {
	int fd;
	struct stoke_auth_requester cred;
	char in[STOKE_PROTO_MAX_REQUEST];
	size_t inlen;
	bool skipping; /* dropping an oversized line up to its newline */
	int passed_fd; /* directory fd received with SCM_RIGHTS, or -1 */
	char *out;
	size_t outlen, outoff;
	bool eof;      /* the peer is done sending: answer what is queued, then close */
	bool dead;     /* close now (it does not read its replies) */
	bool waiting;  /* a job runs for its request: read nothing more until it replies */
	uint64_t serial; /* names it to a job that outlives it (never reused) */
	double last_active;
};

struct options {
	const char *socket;
	const char *output_root;
	const char *log;
	const char *group;
	const char *admin_group;
	mode_t mode;
	unsigned max_sessions, max_clients;
	unsigned max_user_fds; /* 0: a quarter of the fd limit */
	uint64_t max_user_memory;
	bool foreground;
};

struct daemon {
	struct options opt;
	int ep, listen_fd, sig_fd, timer_fd;
	dev_t sock_dev;
	ino_t sock_ino;
	struct client **clients;
	size_t nclients, clients_cap;
	struct stoked_session **sessions; /* running and recently ended */
	size_t nsessions, sessions_cap;
	uint64_t next_id, next_serial;
	double started;
	FILE *logf;
	bool stopping;
	int job_fd;   /* eventfd: a worker finished a job */
	/* Held for the moment accept() says EMFILE: root may take all but
	 * the last, which is for telling everyone else. */
	int spare[NSPARE];
	unsigned nspare;
	bool listen_paused; /* no spare could be had: the tick retries */
	unsigned fd_limit;
	gid_t admin_gid; /* --admin-group, or (gid_t)-1 */
	struct ratelimit rl_accept, rl_refused, rl_budget;
};

/* Whether to log now (see struct ratelimit); a summary line is logged for
 * what the last window suppressed. */
static bool ratelimit_ok(struct ratelimit *rl, double now, const char *what)
{
	if (now - rl->window_start >= RL_WINDOW) {
		if (rl->suppressed)
			log_warn("%u more %s in the last %.0f s not logged", rl->suppressed, what,
				 RL_WINDOW);
		rl->window_start = now;
		rl->printed = rl->suppressed = 0;
	}
	if (rl->printed < RL_BURST) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t watch_key(enum watch_kind k, int fd)
{
	return (uint64_t)k << 32 | (uint32_t)fd;
}

static int watch(struct daemon *d, enum watch_kind k, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = watch_key(k, fd)};

	return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void unwatch(struct daemon *d, int fd)
{
	epoll_ctl(d->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- sessions ---------------------------------------------------------- */

static unsigned running_sessions(const struct daemon *d)
{
	unsigned n = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		n += stoked_session_running(d->sessions[i]);
	return n;
}

static unsigned user_sessions(const struct daemon *d, uid_t uid)
{
	unsigned n = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		n += stoked_session_running(d->sessions[i]) &&
		     stoked_session_owner(d->sessions[i]) == uid;
	return n;
}

/* The estimated memory uid's sessions hold (sessions.h). */
static uint64_t user_memory(const struct daemon *d, uid_t uid)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		if (stoked_session_owner(d->sessions[i]) == uid)
			sum += stoked_session_memory(d->sessions[i]);
	return sum;
}

/* The fds held on behalf of uid: its clients (each may carry a passed
 * directory fd) and its sessions; (uid_t)-1 for every non-root user. */
static unsigned user_fds(const struct daemon *d, uid_t uid)
{
	unsigned n = 0;

	for (size_t i = 0; i < d->nclients; i++) {
		uid_t u = d->clients[i]->cred.uid;

		if (u == uid || (uid == (uid_t)-1 && u != 0))
			n += 2;
	}
	for (size_t i = 0; i < d->nsessions; i++) {
		uid_t u = stoked_session_owner(d->sessions[i]);

		if (u == uid || (uid == (uid_t)-1 && u != 0))
			n += stoked_session_fds(d->sessions[i]);
	}
	return n;
}

static unsigned max_user_fds(const struct daemon *d)
{
	return d->opt.max_user_fds ? d->opt.max_user_fds : STOKE_MAX(d->fd_limit / 4, 32u);
}

/*
 * Whether uid may take n more fds: at most --max-user-fds per user, and all
 * non-root users together leave ROOT_FD_RESERVE for root and the daemon.
 * Root is not limited (only by the process limit, where the spare fd keeps
 * it served). Returns 0, or -EDQUOT with the reason in msg.
 */
static int fd_budget(const struct daemon *d, uid_t uid, unsigned n, char *msg, size_t msglen)
{
	unsigned mine, all, cap = max_user_fds(d);

	if (uid == 0)
		return 0;
	mine = user_fds(d, uid);
	all = user_fds(d, (uid_t)-1);
	if (mine + n > cap) {
		snprintf(msg, msglen,
			 "uid %u would hold %u file descriptors, over its limit of %u "
			 "(stoked --max-user-fds)",
			 (unsigned)uid, mine + n, cap);
		return -EDQUOT;
	}
	if (BASE_FDS + all + n + ROOT_FD_RESERVE > d->fd_limit) {
		snprintf(msg, msglen,
			 "stoked is short of file descriptors (%u of %u in use by users; the "
			 "rest are kept for root)",
			 all, d->fd_limit);
		return -EDQUOT;
	}
	return 0;
}

static struct stoked_session *find_session(struct daemon *d, uint64_t id)
{
	for (size_t i = 0; i < d->nsessions; i++)
		if (stoked_session_id(d->sessions[i]) == id)
			return d->sessions[i];
	return NULL;
}

/* The active session whose ring or pidfd is fd (fds are unique while open;
 * a stale event for a reused number only causes a harmless extra drain). */
static struct stoked_session *session_of_fd(struct daemon *d, int fd, bool pidfd)
{
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		const int *fds;
		int n;

		if (!stoked_session_active(ds))
			continue;
		if (pidfd) {
			if (stoked_session_pidfd(ds) == fd)
				return ds;
			continue;
		}
		n = stoked_session_ringfds(ds, &fds);
		for (int j = 0; j < n; j++)
			if (fds[j] == fd)
				return ds;
	}
	return NULL;
}

/* Stop watching a session's fds: before a job takes it over, and before
 * they are closed. */
static void unwatch_session(struct daemon *d, struct stoked_session *ds)
{
	const int *fds;
	int n = stoked_session_ringfds(ds, &fds);

	for (int i = 0; i < n; i++)
		unwatch(d, fds[i]);
	if (stoked_session_pidfd(ds) >= 0)
		unwatch(d, stoked_session_pidfd(ds));
}

static int watch_session(struct daemon *d, struct stoked_session *ds)
{
	const int *fds;
	int n = stoked_session_ringfds(ds, &fds), r;

	for (int i = 0; i < n; i++) {
		r = watch(d, W_RING, fds[i], EPOLLIN);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	r = watch(d, W_PIDFD, stoked_session_pidfd(ds), EPOLLIN);
	return r == -EEXIST ? 0 : r;
}

/* End an active session as a job; waiter (a client serial, or 0) gets the
 * reply. Returns true when a job was started, false when it ended at once. */
static bool end_session(struct daemon *d, struct stoked_session *ds, bool discard,
			const char *reason, const char *why, uint64_t waiter)
{
	unwatch_session(d, ds);
	stoked_session_ctl(ds)->waiter = waiter;
	stoked_session_end(ds, discard, reason, why, d->stopping);
	return stoked_session_busy(ds);
}

/* Drop the oldest ended sessions beyond MAX_ENDED. */
static void forget_ended(struct daemon *d)
{
	size_t ended = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		ended += !stoked_session_running(d->sessions[i]);
	for (size_t i = 0; i < d->nsessions && ended > MAX_ENDED;) {
		if (stoked_session_running(d->sessions[i])) {
			i++;
			continue;
		}
		stoked_session_free(d->sessions[i]);
		memmove(d->sessions + i, d->sessions + i + 1,
			(d->nsessions - i - 1) * sizeof(*d->sessions));
		d->nsessions--;
		ended--;
	}
}

static void client_close(struct daemon *d, struct client *c);
static bool client_over_limit(struct daemon *d, uid_t uid, char *msg, size_t msglen);

/*
 * The per-user memory budget: when a user's sessions together hold more
 * than --max-user-memory, its largest session ends (writing what it has)
 * with the reason in its last_error; one a tick, which is enough as the
 * next tick sees the memory it freed.
 */
static void enforce_memory(struct daemon *d)
{
	for (size_t i = 0; i < d->nsessions; i++) {
		uid_t uid = stoked_session_owner(d->sessions[i]);
		struct stoked_session *big = NULL;
		struct stoked_session_ctl *ctl;
		uint64_t sum;
		char why[256];

		if (uid == 0 || !d->opt.max_user_memory || !stoked_session_running(d->sessions[i]))
			continue;
		sum = user_memory(d, uid);
		if (sum <= d->opt.max_user_memory)
			continue;
		for (size_t j = 0; j < d->nsessions; j++)
			if (stoked_session_owner(d->sessions[j]) == uid &&
			    stoked_session_running(d->sessions[j]) &&
			    !stoked_session_ctl(d->sessions[j])->end_pending &&
			    (!big || stoked_session_memory(d->sessions[j]) >
					     stoked_session_memory(big)))
				big = d->sessions[j];
		if (!big)
			continue;
		snprintf(why, sizeof(why),
			 "the sessions of uid %u hold about %llu MiB, over stoked "
			 "--max-user-memory (%llu MiB): the largest one ended",
			 (unsigned)uid, (unsigned long long)(sum >> 20),
			 (unsigned long long)(d->opt.max_user_memory >> 20));
		if (ratelimit_ok(&d->rl_budget, mono_s(), "budget messages"))
			log_warn("session %llu: %s", (unsigned long long)stoked_session_id(big),
				 why);
		ctl = stoked_session_ctl(big);
		if (stoked_session_active(big)) {
			end_session(d, big, false, "memory budget", why, 0);
		} else {
			/* Busy (starting, draining, writing): it ends next. */
			ctl->end_pending = true;
			ctl->end_discard = false;
			ctl->end_reason = "memory budget";
			snprintf(ctl->end_why, sizeof(ctl->end_why), "%s", why);
		}
		return;
	}
}

/* Whether the target has exited (its pidfd is readable). Asked directly
 * as well as by epoll: a session that keeps draining (its rings report HUP
 * once their threads are gone) is busy whenever the pidfd event comes. */
static bool target_gone(const struct stoked_session *ds)
{
	struct pollfd p = {.fd = stoked_session_pidfd(ds), .events = POLLIN};

	return p.fd >= 0 && poll(&p, 1, 0) == 1;
}

static void spares_refill(struct daemon *d)
{
	while (d->nspare < NSPARE) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			break;
		d->spare[d->nspare++] = fd;
	}
}

/* Start a drain or rotate job on an active session (its fds are not
 * watched meanwhile). Returns 0 or -errno (then it is watched again). */
static int start_job(struct daemon *d, struct stoked_session *ds, enum stoked_job job,
		     uint64_t waiter)
{
	int r;

	unwatch_session(d, ds);
	stoked_session_ctl(ds)->waiter = waiter;
	r = job == STOKED_JOB_ROTATE ? stoked_session_rotate(ds) : stoked_session_drain(ds);
	if (r < 0)
		watch_session(d, ds); /* next time, then */
	return r;
}

/* The timer: start the jobs that are due (a drain of each session at
 * least, which also catches rings that never reached their watermark). */
static void tick(struct daemon *d)
{
	double now = mono_s();

	/* Spare fds that went to root clients at EMFILE, or to refusals: take
	 * them back, and listen again if that had to stop. */
	spares_refill(d);
	if (d->listen_paused && d->nspare > 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = watch_key(W_LISTEN, d->listen_fd)};

		if (epoll_ctl(d->ep, EPOLL_CTL_MOD, d->listen_fd, &ev) == 0)
			d->listen_paused = false;
	}
	enforce_memory(d);
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		const char *reason;
		bool discard;

		struct stoked_session_ctl *ctl = stoked_session_ctl(ds);
		enum stoked_job due = stoked_session_tick(ds, now, &reason, &discard);

		if (!stoked_session_active(ds)) {
			/* Busy: what is due waits for the job (job_finished). */
			if (due == STOKED_JOB_END && !ctl->end_pending) {
				ctl->end_pending = true;
				ctl->end_discard = discard;
				ctl->end_reason = reason;
			} else if (due == STOKED_JOB_ROTATE) {
				ctl->rotate_pending = true;
			}
			continue;
		}
		if (due == STOKED_JOB_DRAIN && target_gone(ds)) {
			unwatch_session(d, ds);
			stoked_session_target_exited(ds);
			continue;
		}
		switch (due) {
		case STOKED_JOB_END:
			end_session(d, ds, discard, reason, NULL, 0);
			break;
		case STOKED_JOB_ROTATE:
		case STOKED_JOB_DRAIN:
			start_job(d, ds, due, 0);
			break;
		default:
			break;
		}
	}
	forget_ended(d);
	for (size_t i = d->nclients; i-- > 0;)
		if (!d->clients[i]->waiting && now - d->clients[i]->last_active > CLIENT_IDLE_S)
			client_close(d, d->clients[i]);
}

/* ---- replies ----------------------------------------------------------- */

static void client_close(struct daemon *d, struct client *c);

static void queue_reply(struct client *c, char *line)
{
	size_t n;

	if (!line)
		line = strdup(
			"{\"ok\":false,\"error\":\"ENOMEM\",\"message\":\"out of memory\"}\n");
	if (!line)
		return;
	n = strlen(line);
	if (c->outlen - c->outoff + n > MAX_CLIENT_OUTPUT) {
		/* The client does not read its replies: drop it. */
		c->dead = true;
		free(line);
		return;
	}
	if (c->outoff && c->outoff < c->outlen) {
		/* Keep the unsent tail at the front, so the buffer is bounded
		 * by what is pending, not by everything ever sent. */
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	if (c->outoff == c->outlen) {
		free(c->out);
		c->out = line;
		c->outlen = n;
		c->outoff = 0;
		return;
	}
	{
		char *buf = realloc(c->out, c->outlen + n);

		if (buf) {
			memcpy(buf + c->outlen, line, n);
			c->out = buf;
			c->outlen += n;
		} else {
			c->dead = true;
		}
		free(line);
	}
}

static void reply_error(struct client *c, int err, const char *msg)
{
	queue_reply(c, stoke_reply_error(err, msg));
}

/* Try to send what is queued; returns -errno when the client is gone. */
static int client_flush(struct daemon *d, struct client *c)
{
	struct epoll_event ev;

	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c->outoff += (size_t)n;
		c->last_active = mono_s();
	}
	/* Level-triggered: once the peer has finished sending, watching
	 * EPOLLIN would wake the loop forever; only pending output matters. */
	/* A waiting client is not read either: its next request is answered
	 * after the one whose job runs. */
	ev.events = (c->eof || c->waiting ? 0 : EPOLLIN) | (c->outoff < c->outlen ? EPOLLOUT : 0);
	ev.data.u64 = watch_key(W_CLIENT, c->fd);
	epoll_ctl(d->ep, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

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

	if (running_sessions(d) >= d->opt.max_sessions) {
		snprintf(err, sizeof(err), "too many sessions (--max-sessions %u)",
			 d->opt.max_sessions);
		reply_error(c, -EBUSY, err);
		return;
	}
	/* One user may run at most half the sessions (root is not limited). */
	if (c->cred.uid != 0 &&
	    user_sessions(d, c->cred.uid) >= STOKE_MAX(d->opt.max_sessions / 2, 1u)) {
		snprintf(err, sizeof(err), "too many sessions for uid %u (half of --max-sessions %u)",
			 (unsigned)c->cred.uid, d->opt.max_sessions);
		reply_error(c, -EBUSY, err);
		return;
	}
	if (c->cred.uid != 0 && d->opt.max_user_memory &&
	    user_memory(d, c->cred.uid) + STOKED_SESSION_BASE_MEMORY > d->opt.max_user_memory) {
		snprintf(err, sizeof(err),
			 "the sessions of uid %u hold about %llu MiB: no room for another under "
			 "stoked --max-user-memory (%llu MiB)",
			 (unsigned)c->cred.uid,
			 (unsigned long long)(user_memory(d, c->cred.uid) >> 20),
			 (unsigned long long)(d->opt.max_user_memory >> 20));
		reply_error(c, -EDQUOT, err);
		return;
	}
	/* The events are one fd per thread and CPU: a target with many
	 * threads is refused before its fds are opened. Only once the
	 * requester may profile it: the refusal names its thread count,
	 * which is not everyone's to learn (hidepid). */
	r = 0;
	if (c->cred.uid != 0 && stoke_auth_may_attach(&c->cred, req->pid, err, sizeof(err)) == 0)
		r = fd_budget(d, c->cred.uid, stoked_session_estimate_fds(req->pid), err,
			      sizeof(err));
	if (r < 0) {
		if (ratelimit_ok(&d->rl_budget, mono_s(), "budget messages"))
			log_warn("attach by uid %u to pid %d refused: %s", (unsigned)c->cred.uid,
				 req->pid, err);
		reply_error(c, r, err);
		return;
	}
	if (STOKE_GROW(d->sessions, d->sessions_cap, d->nsessions + 1) < 0) {
		reply_error(c, -ENOMEM, "out of memory");
		return;
	}
	if (c->passed_fd >= 0) {
		outdir = TAKE_FD(c->passed_fd);
	} else {
		outdir = default_outdir(d, c, err, sizeof(err));
		if (outdir < 0) {
			reply_error(c, outdir, err);
			return;
		}
	}
	r = stoked_session_start(d->next_id, req, &c->cred, outdir, mono_s(), &ds, &refused, err,
				 sizeof(err));
	if (r < 0) {
		close(outdir);
		/* Say what failed: only an authorization refusal is "may not
		 * profile"; an output directory the requester cannot write
		 * is something else (issue #12). */
		if (refused) {
			if (ratelimit_ok(&d->rl_refused, mono_s(), "refusals"))
				log_warn("refused: uid %u (pid %d) may not profile pid %d: %s",
					 (unsigned)c->cred.uid, c->cred.pid, req->pid, err);
		} else if (ratelimit_ok(&d->rl_refused, mono_s(), "refusals")) {
			log_info("attach by uid %u to pid %d failed: %s", (unsigned)c->cred.uid,
				 req->pid, err);
		}
		reply_error(c, r, err);
		return;
	}
	/* The attach runs on a worker; the reply goes out when it is done
	 * (jobs_done). */
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
	struct stoked_session *ds = find_session(d, id);
	char msg[128];

	if (!ds || !may_manage(c, ds)) {
		snprintf(msg, sizeof(msg), "no session %llu (among the sessions you may manage)",
			 (unsigned long long)id);
		reply_error(c, -ENOENT, msg);
		return NULL;
	}
	return ds;
}

static void reply_ended(struct client *c, uint64_t id)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "session %llu has already ended", (unsigned long long)id);
	reply_error(c, -ESRCH, msg);
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
	if (end_session(d, ds, req->discard, "detached", NULL, c->serial)) {
		c->waiting = true;
	} else {
		struct stoke_session_info info;

		stoked_session_info(ds, mono_s(), &info);
		queue_reply(c, stoke_reply_session(&info, req->discard ? NULL : info.last_run));
	}
}

static int start_snapshot(struct daemon *d, struct stoked_session *ds, uint64_t waiter,
			  char *err, size_t errlen)
{
	int r;

	unwatch_session(d, ds);
	stoked_session_ctl(ds)->waiter = waiter;
	r = stoked_session_snapshot(ds, err, errlen);
	if (r < 0)
		watch_session(d, ds);
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
			reply_error(c, -EBUSY, "a snapshot of this session is already queued");
			return;
		}
		ctl->snap_pending = true;
		ctl->snap_waiter = c->serial;
		c->waiting = true;
		return;
	}
	r = start_snapshot(d, ds, c->serial, err, sizeof(err));
	if (r < 0) {
		reply_error(c, r, err);
		return;
	}
	c->waiting = true;
}

static void do_list(struct daemon *d, struct client *c)
{
	_cleanup_free_ struct stoke_session_info *infos = NULL;
	size_t n = 0;
	double now = mono_s();

	infos = calloc(d->nsessions + 1, sizeof(*infos));
	if (!infos) {
		reply_error(c, -ENOMEM, "out of memory");
		return;
	}
	/* Other users' sessions are not shown: which processes someone else
	 * profiles is theirs to know. */
	for (size_t i = 0; i < d->nsessions; i++)
		if (may_manage(c, d->sessions[i]))
			stoked_session_info(d->sessions[i], now, &infos[n++]);
	queue_reply(c, stoke_reply_list(infos, n));
}

static void do_status(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoke_session_info info;
	struct stoke_daemon_info di;

	if (req->session) {
		struct stoked_session *ds = lookup(d, c, req->session);

		if (!ds)
			return;
		stoked_session_info(ds, mono_s(), &info);
		queue_reply(c, stoke_reply_session(&info, NULL));
		return;
	}
	di = (struct stoke_daemon_info){
		.version = STOKE_VERSION,
		.pid = getpid(),
		.uptime = mono_s() - d->started,
		.sessions = running_sessions(d),
		.max_sessions = d->opt.max_sessions,
		.clients = (unsigned)d->nclients,
		.max_clients = d->opt.max_clients,
	};
	queue_reply(c, stoke_reply_daemon(&di));
}

static void do_shutdown(struct daemon *d, struct client *c)
{
	if (c->cred.uid != 0 && c->cred.uid != geteuid()) {
		log_warn("refused: shutdown requested by uid %u", (unsigned)c->cred.uid);
		reply_error(c, -EPERM, "permission denied: only root may shut stoked down");
		return;
	}
	log_info("shutdown requested by uid %u (pid %d)", (unsigned)c->cred.uid, c->cred.pid);
	queue_reply(c, stoke_reply_ok());
	d->stopping = true;
}

static void consume_lines(struct daemon *d, struct client *c);

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
	c->last_active = mono_s();
	consume_lines(d, c);
	if (c->dead || client_flush(d, c) < 0 || (c->eof && !c->waiting && c->outoff == c->outlen))
		client_close(d, c);
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
		if (r >= 0 && watch_session(d, ds) < 0) {
			r = -ENOMEM;
			snprintf(err, sizeof(err), "out of memory");
		}
		if (r < 0) {
			if (ratelimit_ok(&d->rl_refused, mono_s(), "refusals"))
				log_info("attach by uid %u to pid %d failed: %s",
					 (unsigned)stoked_session_owner(ds), stoked_session_pid(ds),
					 err);
			if (c) {
				reply_error(c, r, err);
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
			unwatch_session(d, ds);
			stoked_session_free(ds);
			memmove(d->sessions + idx, d->sessions + idx + 1,
				(d->nsessions - idx - 1) * sizeof(*d->sessions));
			d->nsessions--;
			return false;
		}
		log_info("session %llu: uid %u attached to pid %d",
			 (unsigned long long)stoked_session_id(ds), (unsigned)stoked_session_owner(ds),
			 stoked_session_pid(ds));
		if (c) {
			stoked_session_info(ds, mono_s(), &info);
			queue_reply(c, stoke_reply_session(&info, NULL));
			client_resume(d, c);
		}
		break;
	case STOKED_JOB_DRAIN:
		if (r < 0)
			end_session(d, ds, false, stoked_session_drain_failed(ds, r), NULL, 0);
		else if (target_gone(ds))
			stoked_session_target_exited(ds);
		else if (watch_session(d, ds) < 0)
			end_session(d, ds, false, "out of memory", NULL, 0);
		break;
	case STOKED_JOB_SNAPSHOT:
	case STOKED_JOB_ROTATE:
		if (watch_session(d, ds) < 0)
			end_session(d, ds, false, "out of memory", NULL, 0);
		if (c) {
			if (r < 0) {
				reply_error(c, r, err);
			} else {
				stoked_session_info(ds, mono_s(), &info);
				queue_reply(c, stoke_reply_session(&info, name));
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
			stoked_session_info(ds, mono_s(), &info);
			queue_reply(c, stoke_reply_session(&info, info.last_run));
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
		} else if (!end_session(d, ds, ctl->end_discard, reason, why[0] ? why : NULL,
					waiter) &&
			   c) {
			stoked_session_info(ds, mono_s(), &info);
			queue_reply(c, stoke_reply_session(&info, info.last_run));
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
			reply_error(c, -EIO, err);
			client_resume(d, c);
		}
	}
	if (ctl->rotate_pending && stoked_session_active(ds)) {
		ctl->rotate_pending = false;
		start_job(d, ds, STOKED_JOB_ROTATE, 0);
	}
	return true;
}

static void jobs_done(struct daemon *d)
{
	uint64_t n;

	(void)!read(d->job_fd, &n, sizeof(n));
	for (size_t i = 0; i < d->nsessions;)
		i += job_finished(d, i);
}

static void handle_line(struct daemon *d, struct client *c, const char *line, size_t len)
{
	struct stoke_request req;
	char err[256];
	int r;

	r = stoke_request_parse(line, len, &req, err, sizeof(err));
	if (r < 0) {
		log_debug("bad request from uid %u: %s", (unsigned)c->cred.uid, err);
		reply_error(c, r, err);
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
			reply_error(c, -EINVAL, "no operation");
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
static void take_fds(struct client *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t nfds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->passed_fd < 0)
				c->passed_fd = fd;
			else
				close(fd);
		}
	}
}

/* Process every complete line in the input buffer. */
static void consume_lines(struct daemon *d, struct client *c)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		size_t len;

		if (!nl)
			break;
		if (c->waiting)
			break; /* the rest once the job has replied */
		len = (size_t)(nl - (c->in + start)) + 1;
		if (c->skipping)
			c->skipping = false; /* the tail of an oversized line */
		else
			handle_line(d, c, c->in + start, len);
		start += len;
		if (d->stopping)
			break;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen == sizeof(c->in)) {
		/* A full buffer without a newline: refuse the line, then drop
		 * its bytes up to the next newline and carry on. */
		char msg[96];

		snprintf(msg, sizeof(msg), "request longer than %d bytes", STOKE_PROTO_MAX_REQUEST);
		if (!c->skipping)
			reply_error(c, -E2BIG, msg);
		c->skipping = true;
		c->inlen = 0;
		if (c->passed_fd >= 0) {
			close(c->passed_fd);
			c->passed_fd = -1;
		}
	}
}

static void client_read(struct daemon *d, struct client *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cmsg;
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;

	for (int rounds = 0; rounds < 16 && !c->eof && !c->waiting; rounds++) {
		iov = (struct iovec){c->in + c->inlen, sizeof(c->in) - c->inlen};
		mh = (struct msghdr){.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cmsg.buf,
				     .msg_controllen = sizeof(cmsg.buf)};
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->eof = true;
			break;
		}
		take_fds(c, &mh);
		if (n == 0) {
			c->eof = true;
			break;
		}
		c->inlen += (size_t)n;
		c->last_active = mono_s();
		consume_lines(d, c);
		if (d->stopping)
			break;
	}
}

/* ---- clients ----------------------------------------------------------- */

static void client_close(struct daemon *d, struct client *c)
{
	for (size_t i = 0; i < d->nclients; i++)
		if (d->clients[i] == c) {
			d->clients[i] = d->clients[--d->nclients];
			break;
		}
	unwatch(d, c->fd);
	close(c->fd);
	if (c->passed_fd >= 0)
		close(c->passed_fd);
	free(c->out);
	free(c);
}

static struct client *find_client(struct daemon *d, int fd)
{
	for (size_t i = 0; i < d->nclients; i++)
		if (d->clients[i]->fd == fd)
			return d->clients[i];
	return NULL;
}

/*
 * accept() failed with EMFILE/ENFILE: the connection stays in the backlog
 * and epoll reports the socket readable forever, so the loop would spin
 * (and log) without end. Free a spare fd, accept, and either keep the
 * client (root, while a spare is left after it: the daemon must stay
 * manageable) or tell it why in one line and close it; then take the spare
 * back. Returns false when nothing more can be accepted now (the listening
 * socket is then not watched until the tick has spares again).
 */
static bool accept_at_limit(struct daemon *d, int err)
{
	static const char msg[] = "{\"ok\":false,\"error\":\"EMFILE\",\"message\":"
				  "\"stoked is out of file descriptors; try again later\"}\n";
	struct stoke_auth_requester cred;
	int fd;

	if (ratelimit_ok(&d->rl_accept, mono_s(), "accept failures"))
		log_warn("cannot accept a client: %s", strerror(err));
	if (d->nspare == 0)
		spares_refill(d);
	if (d->nspare == 0) {
		struct epoll_event ev = {.events = 0, .data.u64 = watch_key(W_LISTEN, d->listen_fd)};

		/* Not even one: stop watching the socket rather than spin. */
		if (epoll_ctl(d->ep, EPOLL_CTL_MOD, d->listen_fd, &ev) == 0)
			d->listen_paused = true;
		return false;
	}
	close(d->spare[--d->nspare]);
	/* A worker may open a file in between and take the freed slot:
	 * then this accept fails too, and the next round tries again. */
	fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		spares_refill(d);
		return errno == EMFILE || errno == ENFILE;
	}
	if (d->nspare > 0 && stoke_auth_peer(fd, d->admin_gid, &cred) == 0 && cred.uid == 0) {
		struct client *c = calloc(1, sizeof(*c));

		if (c && STOKE_GROW(d->clients, d->clients_cap, d->nclients + 1) == 0) {
			c->fd = fd;
			c->cred = cred;
			c->passed_fd = -1;
			c->serial = ++d->next_serial;
			c->last_active = mono_s();
			if (watch(d, W_CLIENT, fd, EPOLLIN) == 0) {
				d->clients[d->nclients++] = c;
				return true; /* its spare comes back when an fd is freed */
			}
		}
		free(c);
	}
	(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	spares_refill(d);
	return true;
}

static void accept_clients(struct daemon *d)
{
	for (int n = 0; n < 64; n++) {
		struct client *c;
		char msg[256];
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if ((errno == EMFILE || errno == ENFILE) && accept_at_limit(d, errno))
				continue;
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c || STOKE_GROW(d->clients, d->clients_cap, d->nclients + 1) < 0 ||
		    stoke_auth_peer(fd, d->admin_gid, &c->cred) < 0) {
			free(c);
			close(fd);
			continue;
		}
		if (client_over_limit(d, c->cred.uid, msg, sizeof(msg))) {
			_cleanup_free_ char *line = stoke_reply_error(-EBUSY, msg);

			if (line)
				(void)!send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
			if (ratelimit_ok(&d->rl_accept, mono_s(), "refused connections"))
				log_warn("refused a connection of uid %u: %s", (unsigned)c->cred.uid,
					 msg);
			close(fd);
			free(c);
			continue;
		}
		c->fd = fd;
		c->passed_fd = -1;
		c->serial = ++d->next_serial;
		c->last_active = mono_s();
		if (watch(d, W_CLIENT, fd, EPOLLIN) < 0) {
			close(fd);
			free(c);
			continue;
		}
		d->clients[d->nclients++] = c;
	}
}

/* One user may hold at most half the client slots, and the last slot is
 * root's: nobody can lock the others (root above all) out of the daemon by
 * keeping connections open. The fd budget (fd_budget) holds too. */
static bool client_over_limit(struct daemon *d, uid_t uid, char *msg, size_t msglen)
{
	unsigned mine = 0;

	snprintf(msg, msglen, "too many clients (--max-clients %u)", d->opt.max_clients);
	if (d->nclients >= d->opt.max_clients)
		return true;
	if (uid == 0)
		return false;
	if (d->nclients + 1 >= d->opt.max_clients)
		return true;
	for (size_t i = 0; i < d->nclients; i++)
		mine += d->clients[i]->cred.uid == uid;
	if (mine >= STOKE_MAX(d->opt.max_clients / 2, 1u)) {
		snprintf(msg, msglen, "too many clients for uid %u (half of --max-clients %u)",
			 (unsigned)uid, d->opt.max_clients);
		return true;
	}
	return fd_budget(d, uid, 2, msg, msglen) < 0;
}

static void client_event(struct daemon *d, int fd, uint32_t events)
{
	struct client *c = find_client(d, fd);

	if (!c)
		return;
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		client_read(d, c);
	/* A waiting client is not read, but a hangup is reported anyway (and
	 * again on every wakeup): the peer is gone, so is its reply. */
	if (c->dead || client_flush(d, c) < 0 || (c->eof && !c->waiting && c->outoff == c->outlen) ||
	    (events & EPOLLERR) || (c->waiting && (events & EPOLLHUP)))
		client_close(d, c);
}

/* ---- signals, log ------------------------------------------------------ */

static int open_log(struct daemon *d)
{
	FILE *f;

	if (!d->opt.log)
		return 0;
	f = fopen(d->opt.log, "ae");
	if (!f)
		return -errno;
	setvbuf(f, NULL, _IOLBF, 0);
	stoke_log_set_file(f);
	if (d->logf)
		fclose(d->logf);
	d->logf = f;
	return 0;
}

static void handle_signals(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			int r = open_log(d);

			if (r < 0)
				log_error("cannot reopen the log %s: %s", d->opt.log, strerror(-r));
			else
				log_info("log reopened");
			continue;
		}
		log_info("%s: flushing every session and exiting", strsignal((int)si.ssi_signo));
		d->stopping = true;
	}
}

static void dispatch(struct daemon *d, const struct epoll_event *ev)
{
	enum watch_kind k = (enum watch_kind)(ev->data.u64 >> 32);
	int fd = (int)(uint32_t)ev->data.u64;
	struct stoked_session *ds;
	uint64_t ticks;

	switch (k) {
	case W_LISTEN:
		accept_clients(d);
		break;
	case W_SIGNAL:
		handle_signals(d);
		break;
	case W_TIMER:
		if (read(d->timer_fd, &ticks, sizeof(ticks)) > 0)
			tick(d);
		break;
	case W_CLIENT:
		client_event(d, fd, ev->events);
		break;
	case W_RING:
		/* No session: the fd was closed earlier in this batch (and
		 * epoll forgot it); its number may already be someone
		 * else's, so leave it alone. */
		ds = session_of_fd(d, fd, false);
		if (!ds)
			break;
		/* The ring's thread exited: epoll would report HUP forever.
		 * Its ring is still drained on every tick. */
		if (ev->events & (EPOLLHUP | EPOLLERR)) {
			unwatch(d, fd);
			break;
		}
		/* Drained on the session's worker; its fds are watched
		 * again when that is done. */
		start_job(d, ds, STOKED_JOB_DRAIN, 0);
		break;
	case W_PIDFD:
		ds = session_of_fd(d, fd, true);
		if (ds) {
			unwatch_session(d, ds);
			stoked_session_target_exited(ds);
		}
		break;
	case W_JOBS:
		jobs_done(d);
		break;
	}
}

/* ---- setup ------------------------------------------------------------- */

/* A socket file left by a daemon that was killed: if nobody answers on it,
 * remove it; if somebody does, another stoked is running. */
static int clear_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket; not touching it", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		log_error("another stoked is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		log_error("cannot check the socket %s: %s", path, strerror(errno));
		return -errno;
	}
	log_info("removing the stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_socket(struct daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = d->opt.socket;
	struct stat st;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = make_parent_dir(path);
	if (r < 0) {
		log_error("cannot create the directory of %s: %s", path, strerror(-r));
		return r;
	}
	r = clear_stale_socket(path);
	if (r < 0)
		return r;
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0)
		return -errno;
	/* Bind with a tight umask so the socket is never more open than
	 * asked for, even for an instant; then set the exact mode. */
	old = umask(0177);
	r = bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		log_error("cannot bind %s: %s", path, strerror(-r));
		return r;
	}
	if (d->opt.group) {
		struct group *g = getgrnam(d->opt.group);

		if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
			log_error("cannot give %s to group %s: %s", path, d->opt.group,
				  g ? strerror(errno) : "no such group");
			return -EINVAL;
		}
	}
	if (chmod(path, d->opt.mode) < 0 || stat(path, &st) < 0) {
		r = -errno;
		log_error("cannot set the mode of %s: %s", path, strerror(-r));
		return r;
	}
	d->sock_dev = st.st_dev;
	d->sock_ino = st.st_ino;
	if (listen(d->listen_fd, 128) < 0)
		return -errno;
	return watch(d, W_LISTEN, d->listen_fd, EPOLLIN);
}

static int setup_loop(struct daemon *d)
{
	struct itimerspec its = {
		.it_interval = {0, TICK_MS * 1000000L},
		.it_value = {0, TICK_MS * 1000000L},
	};
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	int r;

	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if (d->ep < 0)
		return -errno;
	d->sig_fd = stoke_driver_signalfd(sigs, ARRAY_SIZE(sigs));
	if (d->sig_fd < 0)
		return d->sig_fd;
	signal(SIGPIPE, SIG_IGN);
	r = watch(d, W_SIGNAL, d->sig_fd, EPOLLIN);
	if (r < 0)
		return r;
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer_fd < 0)
		return -errno;
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	r = watch(d, W_TIMER, d->timer_fd, EPOLLIN);
	if (r < 0)
		return r;
	d->job_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->job_fd < 0)
		return -errno;
	stoked_sessions_set_notify_fd(d->job_fd);
	spares_refill(d);
	if (d->nspare < NSPARE)
		return -EMFILE;
	return watch(d, W_JOBS, d->job_fd, EPOLLIN);
}

/* Detach from the terminal. The parent exits only once the child is
 * listening (or failed), so `stoked && stoke attach …` works. Returns the
 * write end of the readiness pipe in the child. */
static int daemonize(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		_exit(read(pfd[0], &c, 1) == 1 ? 0 : 1);
	}
	close(pfd[0]);
	setsid();
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	return pfd[1];
}

static void usage(FILE *f)
{
	fputs("usage: stoked [options]\n"
	      "\n"
	      "The stoke profiling daemon: profiles processes on request from\n"
	      "`stoke attach` and friends over a UNIX socket.\n"
	      "\n"
	      "  -s, --socket PATH        listen here (default " DEFAULT_SOCKET ",\n"
	      "                           or $STOKE_SOCKET)\n"
	      "  -f, --foreground         do not detach (systemd, tests)\n"
	      "      --output-root DIR    run directories of requests that pass no\n"
	      "                           directory go to DIR/UID (default " DEFAULT_OUTPUT_ROOT
	      ")\n"
	      "      --max-sessions N     running sessions at most (default 64)\n"
	      "      --max-samples N      samples one session's profile may hold; the\n"
	      "                           session ends there (default 10000000; 0: none)\n"
	      "      --max-clients N      connected clients at most (default 64)\n"
	      "      --socket-mode MODE   octal mode of the socket (default 0660)\n"
	      "      --socket-group GROUP group that owns the socket (who may connect)\n"
	      "      --admin-group GROUP  members (at connect time) may profile any\n"
	      "                           process, as root may\n"
	      "      --max-user-memory SIZE  memory the sessions of one user may hold,\n"
	      "                           estimated (default 512M; K, M, G suffixes; 0: none)\n"
	      "      --max-user-fds N     file descriptors one user's clients and\n"
	      "                           sessions may hold (default: a quarter of\n"
	      "                           the fd limit)\n"
	      "      --log FILE           log here (reopened on SIGHUP); default stderr,\n"
	      "                           or " DEFAULT_LOG " when detached\n"
	      "  -h, --help               this help\n"
	      "      --version            print the version\n",
	      f);
}

static int parse_uint(const char *s, unsigned min, unsigned max, int base, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* "512M", "2G", "1048576": bytes. */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	else if (*end)
		return -EINVAL;
	if (shift && end[1])
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum {
		O_ROOT = 256,
		O_MAXS,
		O_MAXC,
		O_MODE,
		O_GROUP,
		O_LOG,
		O_VERSION,
		O_MAXSAMPLES,
		O_ADMIN,
		O_MAXMEM,
		O_MAXFDS
	};
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},
		{"output-root", required_argument, NULL, O_ROOT},
		{"max-sessions", required_argument, NULL, O_MAXS},
		{"max-clients", required_argument, NULL, O_MAXC},
		{"max-samples", required_argument, NULL, O_MAXSAMPLES},
		{"socket-mode", required_argument, NULL, O_MODE},
		{"socket-group", required_argument, NULL, O_GROUP},
		{"admin-group", required_argument, NULL, O_ADMIN},
		{"max-user-memory", required_argument, NULL, O_MAXMEM},
		{"max-user-fds", required_argument, NULL, O_MAXFDS},
		{"log", required_argument, NULL, O_LOG},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{0},
	};
	unsigned v;
	int c;

	o->socket = getenv("STOKE_SOCKET") && *getenv("STOKE_SOCKET") ? getenv("STOKE_SOCKET")
								      : DEFAULT_SOCKET;
	o->output_root = DEFAULT_OUTPUT_ROOT;
	o->mode = 0660;
	o->max_sessions = DEFAULT_MAX_SESSIONS;
	o->max_clients = DEFAULT_MAX_CLIENTS;
	o->max_user_memory = DEFAULT_MAX_USER_MEMORY;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "s:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case O_ROOT:
			o->output_root = optarg;
			break;
		case O_MAXS:
			if (parse_uint(optarg, 1, 100000, 10, &o->max_sessions) < 0)
				goto bad_value;
			break;
		case O_MAXSAMPLES: {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-')
				goto bad_value;
			stoked_sessions_set_max_samples(n);
			break;
		}
		case O_MAXC:
			if (parse_uint(optarg, 1, 100000, 10, &o->max_clients) < 0)
				goto bad_value;
			break;
		case O_MODE:
			if (parse_uint(optarg, 0, 0777, 8, &v) < 0)
				goto bad_value;
			o->mode = (mode_t)v;
			break;
		case O_GROUP:
			o->group = optarg;
			break;
		case O_ADMIN:
			o->admin_group = optarg;
			break;
		case O_MAXMEM:
			if (parse_size(optarg, &o->max_user_memory) < 0)
				goto bad_value;
			break;
		case O_MAXFDS:
			if (parse_uint(optarg, 8, 1U << 30, 10, &o->max_user_fds) < 0)
				goto bad_value;
			break;
		case O_LOG:
			o->log = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case O_VERSION:
			printf("stoked %s\n", STOKE_VERSION);
			exit(0);
		default:
			fprintf(stderr,
				"stoked: unknown option or missing argument: '%s' (see "
				"'stoked --help')\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "stoked: unexpected argument '%s' (see 'stoked --help')\n",
			argv[optind]);
		return 2;
	}
	return 0;
bad_value:
	fprintf(stderr, "stoked: invalid value '%s' for %s (see 'stoked --help')\n", optarg,
		argv[optind - 1]);
	return 2;
}

/* Flush every running session (their final profiles), close everything. */
static void teardown(struct daemon *d)
{
	d->stopping = true; /* sessions end synchronously from here on */
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		int r;

		/* A job in flight finishes first (its write, its attach). */
		stoked_session_wait(ds);
		stoked_session_job_done(ds, &r, NULL, NULL, 0);
		if (stoked_session_active(ds))
			end_session(d, ds, false, "stoked is stopping", NULL, 0);
		stoked_session_free(ds);
	}
	free(d->sessions);
	while (d->nclients) {
		struct client *c = d->clients[0];

		client_flush(d, c); /* the shutdown reply, best effort */
		client_close(d, c);
	}
	free(d->clients);
	if (d->listen_fd >= 0) {
		struct stat st;

		/* Remove the socket only if it is still ours: a second
		 * daemon may have replaced it. */
		if (stat(d->opt.socket, &st) == 0 && st.st_dev == d->sock_dev &&
		    st.st_ino == d->sock_ino)
			unlink(d->opt.socket);
		close(d->listen_fd);
	}
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	if (d->job_fd >= 0)
		close(d->job_fd);
	while (d->nspare)
		close(d->spare[--d->nspare]);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->ep >= 0)
		close(d->ep);
	log_info("stopped");
	stoke_log_set_file(NULL);
	if (d->logf)
		fclose(d->logf);
}

int main(int argc, char **argv)
{
	struct daemon d = {.ep = -1,
			   .listen_fd = -1,
			   .sig_fd = -1,
			   .timer_fd = -1,
			   .job_fd = -1,
			   .admin_gid = (gid_t)-1,
			   .next_id = 1};
	struct epoll_event evs[64];
	int ready_fd = -1, r;

	stoke_log_set_prog("stoked");
	r = parse_options(argc, argv, &d.opt);
	if (r)
		return r;
	/* Symbolization must never wait on the network (as in stoke). */
	if (getenv("STOKE_DEBUGINFOD_URLS"))
		setenv("DEBUGINFOD_URLS", getenv("STOKE_DEBUGINFOD_URLS"), 1);
	else
		unsetenv("DEBUGINFOD_URLS");
	if (!d.opt.foreground) {
		if (!d.opt.log)
			d.opt.log = DEFAULT_LOG;
		ready_fd = daemonize();
		if (ready_fd < 0) {
			log_error("cannot detach: %s", strerror(-ready_fd));
			return 1;
		}
	}
	r = open_log(&d);
	if (r < 0) {
		log_error("cannot open the log %s: %s", d.opt.log, strerror(-r));
		return 1;
	}
	/* Supplementary groups would be checked on top of a requester's ids
	 * when writing as them (sessions.c): a root daemon needs none. */
	if (geteuid() == 0)
		(void)!setgroups(0, NULL);
	d.fd_limit = stoke_driver_raise_nofile();
	/* Every session has a worker thread, and glibc gives threads arenas
	 * of their own (up to 8 per core), each keeping what was freed in
	 * it: the daemon's memory would grow with the number of sessions it
	 * ever ran (measured: 8 MB over 180 attach/detach cycles with two
	 * arenas, 1.7 MB with one). Malloc's critical sections are short, so
	 * sharing one arena costs the loop little. */
	mallopt(M_ARENA_MAX, 1);
	if (d.opt.admin_group) {
		struct group *g = getgrnam(d.opt.admin_group);

		if (!g) {
			log_error("--admin-group %s: no such group", d.opt.admin_group);
			return 1;
		}
		d.admin_gid = g->gr_gid;
	}
	d.started = mono_s();
	r = setup_loop(&d);
	if (r < 0) {
		log_error("cannot set up the event loop: %s", strerror(-r));
		teardown(&d);
		return 1;
	}
	r = listen_socket(&d);
	if (r < 0) {
		teardown(&d);
		return 1;
	}
	log_info("stoke %s listening on %s (mode %04o, at most %u sessions, %u clients)",
		 STOKE_VERSION, d.opt.socket, (unsigned)d.opt.mode, d.opt.max_sessions,
		 d.opt.max_clients);
	stoke_sd_notify("READY=1\nSTATUS=listening");
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "", 1);
		close(ready_fd);
	}
	while (!d.stopping) {
		int n = epoll_wait(d.ep, evs, (int)ARRAY_SIZE(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !d.stopping; i++)
			dispatch(&d, &evs[i]);
	}
	stoke_sd_notify("STOPPING=1");
	teardown(&d);
	return 0;
}
