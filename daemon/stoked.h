/*
 * stoked's internals, shared by its files (each one job):
 *   stoked.c    options, the listening socket, daemonizing, main
 *   loop.c      the epoll loop: watches, the tick, session bookkeeping and
 *               budgets, jobs, signals, the log
 *   clients.c   client connections: accept, read, reply queues, limits
 *   requests.c  the requests (attach, detach, snapshot, list, status,
 *               shutdown) and their replies when a job finishes
 * Authorization is auth.c's, the sessions sessions.c's.
 */
#pragma once

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

#include "daemon/auth.h"
#include "common/log.h"
#include "daemon/protocol.h"
#include "daemon/sdnotify.h"
#include "session/driver.h"
#include "daemon/sessions.h"
#include "common/util.h"


#define DEFAULT_SOCKET	     "/run/stoke/stoked.sock"
#define DEFAULT_OUTPUT_ROOT  "/var/lib/stoke"
#define DEFAULT_LOG	     "/var/log/stoked.log"
#define DEFAULT_DEBUGINFOD_CACHE "/var/cache/stoke/debuginfod"
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
	const char *debuginfod; /* --debuginfod URL */
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

/* What one file calls in another (each is described where it is defined). */
void stoked_accept_clients(struct daemon *d);
void stoked_client_close(struct daemon *d, struct client *c);
void stoked_client_event(struct daemon *d, int fd, uint32_t events);
int stoked_client_flush(struct daemon *d, struct client *c);
bool stoked_client_over_limit(struct daemon *d, uid_t uid, char *msg, size_t msglen);
void stoked_consume_lines(struct daemon *d, struct client *c);
void stoked_dispatch(struct daemon *d, const struct epoll_event *ev);
bool stoked_end_session(struct daemon *d, struct stoked_session *ds, bool discard,
			const char *reason, const char *why, uint64_t waiter);
int stoked_fd_budget(const struct daemon *d, uid_t uid, unsigned n, char *msg, size_t msglen);
struct stoked_session *stoked_find_session(struct daemon *d, uint64_t id);
void stoked_handle_line(struct daemon *d, struct client *c, const char *line, size_t len);
void stoked_jobs_done(struct daemon *d);
double stoked_mono_s(void);
int stoked_open_log(struct daemon *d);
void stoked_queue_reply(struct client *c, char *line);
bool stoked_ratelimit_ok(struct ratelimit *rl, double now, const char *what);
void stoked_reply_error(struct client *c, int err, const char *msg);
unsigned stoked_running_sessions(const struct daemon *d);
int stoked_setup_loop(struct daemon *d);
void stoked_spares_refill(struct daemon *d);
int stoked_start_job(struct daemon *d, struct stoked_session *ds, enum stoked_job job,
		     uint64_t waiter);
bool stoked_target_gone(const struct stoked_session *ds);
void stoked_unwatch(struct daemon *d, int fd);
void stoked_unwatch_session(struct daemon *d, struct stoked_session *ds);
uint64_t stoked_user_memory(const struct daemon *d, uid_t uid);
struct stoked_session;
uint64_t stoked_module_budget(const struct daemon *d, uid_t uid, const struct stoked_session *ds);
unsigned stoked_user_sessions(const struct daemon *d, uid_t uid);
int stoked_watch(struct daemon *d, enum watch_kind k, int fd, uint32_t events);
uint64_t stoked_watch_key(enum watch_kind k, int fd);
int stoked_watch_session(struct daemon *d, struct stoked_session *ds);
