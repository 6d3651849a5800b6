/*
 * stoked: the profiling daemon. It listens on a UNIX stream socket for
 * newline-delimited JSON requests (protocol.h, docs/protocol.md), runs many
 * sessions at once (sessions.h), and writes their run directories into the
 * directories its clients pass.
 *
 *   stoked [--socket PATH] [--foreground] [--output-root DIR]
 *          [--max-sessions N] [--max-clients N] [--socket-mode MODE]
 *          [--socket-group GROUP] [--log FILE]
 *
 * Everything happens in one epoll loop: the listening socket, client
 * sockets, each session's ring fds and target pidfd, one periodic timerfd
 * (drain, rotate, deadlines, re-checks) and a signalfd (SIGTERM/SIGINT:
 * flush every session and exit 0; SIGHUP: reopen the log). Every resource a
 * client can grow has a limit: sessions, clients, request size, and the
 * reply bytes queued for a client that does not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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

enum watch_kind { W_LISTEN = 1, W_SIGNAL, W_TIMER, W_CLIENT, W_RING, W_PIDFD };

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
	double last_active;
};

struct options {
	const char *socket;
	const char *output_root;
	const char *log;
	const char *group;
	mode_t mode;
	unsigned max_sessions, max_clients;
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
	uint64_t next_id;
	double started;
	FILE *logf;
	bool stopping;
};

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

static struct stoked_session *find_session(struct daemon *d, uint64_t id)
{
	for (size_t i = 0; i < d->nsessions; i++)
		if (stoked_session_id(d->sessions[i]) == id)
			return d->sessions[i];
	return NULL;
}

/* The session whose ring or pidfd is fd (fds are unique while open; a
 * stale event for a reused number only causes a harmless extra drain). */
static struct stoked_session *session_of_fd(struct daemon *d, int fd, bool pidfd)
{
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		const int *fds;
		int n;

		if (!stoked_session_running(ds))
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

/* Stop watching a session's fds before they are closed. */
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
		if (r < 0)
			return r;
	}
	return watch(d, W_PIDFD, stoked_session_pidfd(ds), EPOLLIN);
}

static void end_session(struct daemon *d, struct stoked_session *ds, bool discard,
			const char *reason)
{
	unwatch_session(d, ds);
	stoked_session_end(ds, discard, reason);
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
static bool client_over_limit(const struct daemon *d, uid_t uid);

/* The timer: drain every session and let each do its periodic work. */
static void tick(struct daemon *d)
{
	double now = mono_s();

	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];

		/* A session that ends here closes its fds, and epoll drops
		 * closed fds by itself. */
		if (stoked_session_running(ds))
			stoked_session_tick(ds, now);
	}
	forget_ended(d);
	for (size_t i = d->nclients; i-- > 0;)
		if (now - d->clients[i]->last_active > CLIENT_IDLE_S)
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
	ev.events = (c->eof ? 0 : EPOLLIN) | (c->outoff < c->outlen ? EPOLLOUT : 0);
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
	struct stoke_session_info info;
	char err[512];
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
	if (c->passed_fd >= 0) {
		outdir = TAKE_FD(c->passed_fd);
	} else {
		outdir = default_outdir(d, c, err, sizeof(err));
		if (outdir < 0) {
			reply_error(c, outdir, err);
			return;
		}
	}
	r = stoked_session_start(d->next_id, req, &c->cred, outdir, mono_s(), &ds, err,
				 sizeof(err));
	if (r < 0) {
		close(outdir);
		if (r == -EPERM)
			log_warn("refused: uid %u (pid %d) may not profile pid %d: %s",
				 (unsigned)c->cred.uid, c->cred.pid, req->pid, err);
		else
			log_info("attach by uid %u to pid %d failed: %s", (unsigned)c->cred.uid,
				 req->pid, err);
		reply_error(c, r, err);
		return;
	}
	if (STOKE_GROW(d->sessions, d->sessions_cap, d->nsessions + 1) < 0 ||
	    watch_session(d, ds) < 0) {
		unwatch_session(d, ds);
		stoked_session_free(ds);
		reply_error(c, -ENOMEM, "out of memory");
		return;
	}
	d->sessions[d->nsessions++] = ds;
	d->next_id++;
	log_info("session %llu: uid %u attached to pid %d",
		 (unsigned long long)stoked_session_id(ds), (unsigned)c->cred.uid, req->pid);
	stoked_session_info(ds, mono_s(), &info);
	queue_reply(c, stoke_reply_session(&info, NULL));
}

/* The session named by req->session, if this client may manage it;
 * otherwise the error has been replied. */
static struct stoked_session *lookup(struct daemon *d, struct client *c, uint64_t id)
{
	struct stoked_session *ds = find_session(d, id);
	char msg[128];

	if (!ds) {
		snprintf(msg, sizeof(msg), "no session %llu", (unsigned long long)id);
		reply_error(c, -ENOENT, msg);
		return NULL;
	}
	if (!may_manage(c, ds)) {
		snprintf(msg, sizeof(msg),
			 "permission denied: session %llu belongs to another user",
			 (unsigned long long)id);
		reply_error(c, -EPERM, msg);
		return NULL;
	}
	return ds;
}

static void do_detach(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoked_session *ds = lookup(d, c, req->session);
	struct stoke_session_info info;
	char msg[128];

	if (!ds)
		return;
	if (!stoked_session_running(ds)) {
		snprintf(msg, sizeof(msg), "session %llu has already ended",
			 (unsigned long long)req->session);
		reply_error(c, -ESRCH, msg);
		return;
	}
	end_session(d, ds, req->discard, "detached");
	stoked_session_info(ds, mono_s(), &info);
	queue_reply(c, stoke_reply_session(&info, req->discard ? NULL : info.last_run));
}

static void do_snapshot(struct daemon *d, struct client *c, const struct stoke_request *req)
{
	struct stoked_session *ds = lookup(d, c, req->session);
	struct stoke_session_info info;
	_cleanup_free_ char *name = NULL;
	char err[512];
	int r;

	if (!ds)
		return;
	r = stoked_session_snapshot(ds, &name, err, sizeof(err));
	if (r < 0) {
		reply_error(c, r, err);
		return;
	}
	stoked_session_info(ds, mono_s(), &info);
	queue_reply(c, stoke_reply_session(&info, name));
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

	for (int rounds = 0; rounds < 16 && !c->eof; rounds++) {
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

static void accept_clients(struct daemon *d)
{
	for (;;) {
		struct client *c;
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("cannot accept a client: %s", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c || STOKE_GROW(d->clients, d->clients_cap, d->nclients + 1) < 0 ||
		    stoke_auth_peer(fd, &c->cred) < 0) {
			free(c);
			close(fd);
			continue;
		}
		if (client_over_limit(d, c->cred.uid)) {
			static const char busy[] = "{\"ok\":false,\"error\":\"EBUSY\",\"message\":"
						   "\"too many clients (--max-clients)\"}\n";

			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			free(c);
			continue;
		}
		c->fd = fd;
		c->passed_fd = -1;
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
 * keeping connections open. */
static bool client_over_limit(const struct daemon *d, uid_t uid)
{
	unsigned mine = 0;

	if (d->nclients >= d->opt.max_clients)
		return true;
	if (uid == 0)
		return false;
	if (d->nclients + 1 >= d->opt.max_clients)
		return true;
	for (size_t i = 0; i < d->nclients; i++)
		mine += d->clients[i]->cred.uid == uid;
	return mine >= STOKE_MAX(d->opt.max_clients / 2, 1u);
}

static void client_event(struct daemon *d, int fd, uint32_t events)
{
	struct client *c = find_client(d, fd);

	if (!c)
		return;
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		client_read(d, c);
	if (c->dead || client_flush(d, c) < 0 || (c->eof && c->outoff == c->outlen) ||
	    (events & EPOLLERR))
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
	int r;

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
		if (ev->events & (EPOLLHUP | EPOLLERR))
			unwatch(d, fd);
		/* The sample limit (-E2BIG) is handled, and explained, by the
		 * session's next tick. */
		r = stoked_session_drain(ds);
		if (r < 0 && r != -E2BIG)
			end_session(d, ds, false, "read error");
		break;
	case W_PIDFD:
		ds = session_of_fd(d, fd, true);
		if (ds) {
			unwatch_session(d, ds);
			stoked_session_target_exited(ds);
		}
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
	sigset_t mask;
	int r;

	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if (d->ep < 0)
		return -errno;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0)
		return -errno;
	r = watch(d, W_SIGNAL, d->sig_fd, EPOLLIN);
	if (r < 0)
		return r;
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer_fd < 0)
		return -errno;
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	return watch(d, W_TIMER, d->timer_fd, EPOLLIN);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	/* One event per (thread, CPU) per session. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
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

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_ROOT = 256, O_MAXS, O_MAXC, O_MODE, O_GROUP, O_LOG, O_VERSION, O_MAXSAMPLES };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},
		{"output-root", required_argument, NULL, O_ROOT},
		{"max-sessions", required_argument, NULL, O_MAXS},
		{"max-clients", required_argument, NULL, O_MAXC},
		{"max-samples", required_argument, NULL, O_MAXSAMPLES},
		{"socket-mode", required_argument, NULL, O_MODE},
		{"socket-group", required_argument, NULL, O_GROUP},
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
	for (size_t i = 0; i < d->nsessions; i++) {
		if (stoked_session_running(d->sessions[i]))
			end_session(d, d->sessions[i], false, "stoked is stopping");
		stoked_session_free(d->sessions[i]);
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
	struct daemon d = {.ep = -1, .listen_fd = -1, .sig_fd = -1, .timer_fd = -1, .next_id = 1};
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
	raise_nofile();
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
