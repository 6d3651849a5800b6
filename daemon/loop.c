/*
 * stoked's epoll loop (see stoked.h): watches, the periodic tick, session
 * bookkeeping and per-user budgets, jobs, signals and the log.
 */
#include "daemon/stoked.h"
#include "daemon/http.h"

/* Whether to log now (see struct ratelimit); a summary line is logged for
 * what the last window suppressed. */
bool stoked_ratelimit_ok(struct ratelimit *rl, double now, const char *what)
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

double stoked_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t stoked_watch_key(enum watch_kind k, int fd)
{
	return (uint64_t)k << 32 | (uint32_t)fd;
}

int stoked_watch(struct daemon *d, enum watch_kind k, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = stoked_watch_key(k, fd)};

	return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void stoked_unwatch(struct daemon *d, int fd)
{
	epoll_ctl(d->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- sessions ---------------------------------------------------------- */

unsigned stoked_running_sessions(const struct daemon *d)
{
	unsigned n = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		n += stoked_session_running(d->sessions[i]);
	return n;
}

unsigned stoked_user_sessions(const struct daemon *d, uid_t uid)
{
	unsigned n = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		n += stoked_session_running(d->sessions[i]) &&
		     stoked_session_owner(d->sessions[i]) == uid;
	return n;
}

/* The estimated memory uid's sessions hold (sessions.h). */
uint64_t stoked_user_memory(const struct daemon *d, uid_t uid)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < d->nsessions; i++)
		if (stoked_session_owner(d->sessions[i]) == uid)
			sum += stoked_session_memory(d->sessions[i]);
	return sum;
}

/*
 * What a session of uid may still load into its symbolizer (0: no bound,
 * for root or without --max-user-memory): half the room left under the
 * budget, plus what ds (NULL: a session about to start, whose base is not counted
 * yet) already holds. Several sessions of one uid may each take the same
 * room between two ticks: at most --max-sessions / 2 times, and the next
 * tick gives them nothing more.
 */
uint64_t stoked_module_budget(const struct daemon *d, uid_t uid, const struct stoked_session *ds)
{
	uint64_t used = stoked_user_memory(d, uid), max = d->opt.max_user_memory;

	if (uid == 0 || !max)
		return 0;
	if (!ds)
		used += STOKED_SESSION_BASE_MEMORY;
	/* Half the room: the rest is for the samples the session takes. */
	return (used < max ? (max - used) / 2 : 0) + (ds ? stoked_session_module_bytes(ds) : 0);
}

static void update_module_budgets(struct daemon *d)
{
	for (size_t i = 0; i < d->nsessions; i++) {
		uid_t uid = stoked_session_owner(d->sessions[i]);

		if (uid != 0 && d->opt.max_user_memory && stoked_session_running(d->sessions[i]))
			stoked_session_set_module_budget(
				d->sessions[i], stoked_module_budget(d, uid, d->sessions[i]));
	}
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
int stoked_fd_budget(const struct daemon *d, uid_t uid, unsigned n, char *msg, size_t msglen)
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

struct stoked_session *stoked_find_session(struct daemon *d, uint64_t id)
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
void stoked_unwatch_session(struct daemon *d, struct stoked_session *ds)
{
	const int *fds;
	int n = stoked_session_ringfds(ds, &fds);

	for (int i = 0; i < n; i++)
		stoked_unwatch(d, fds[i]);
	if (stoked_session_pidfd(ds) >= 0)
		stoked_unwatch(d, stoked_session_pidfd(ds));
}

int stoked_watch_session(struct daemon *d, struct stoked_session *ds)
{
	const int *fds;
	int n = stoked_session_ringfds(ds, &fds), r;

	for (int i = 0; i < n; i++) {
		r = stoked_watch(d, W_RING, fds[i], EPOLLIN);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	r = stoked_watch(d, W_PIDFD, stoked_session_pidfd(ds), EPOLLIN);
	return r == -EEXIST ? 0 : r;
}

/* End an active session as a job; waiter (a client serial, or 0) gets the
 * reply. Returns true when a job was started, false when it ended at once. */
bool stoked_end_session(struct daemon *d, struct stoked_session *ds, bool discard,
			const char *reason, const char *why, uint64_t waiter)
{
	stoked_unwatch_session(d, ds);
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
		sum = stoked_user_memory(d, uid);
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
		if (stoked_ratelimit_ok(&d->rl_budget, stoked_mono_s(), "budget messages"))
			log_warn("session %llu: %s", (unsigned long long)stoked_session_id(big),
				 why);
		ctl = stoked_session_ctl(big);
		if (stoked_session_active(big)) {
			stoked_end_session(d, big, false, "memory budget", why, 0);
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
bool stoked_target_gone(const struct stoked_session *ds)
{
	struct pollfd p = {.fd = stoked_session_pidfd(ds), .events = POLLIN};

	return p.fd >= 0 && poll(&p, 1, 0) == 1;
}

void stoked_spares_refill(struct daemon *d)
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
int stoked_start_job(struct daemon *d, struct stoked_session *ds, enum stoked_job job,
		     uint64_t waiter)
{
	int r;

	stoked_unwatch_session(d, ds);
	stoked_session_ctl(ds)->waiter = waiter;
	r = job == STOKED_JOB_ROTATE ? stoked_session_rotate(ds) : stoked_session_drain(ds);
	if (r < 0)
		stoked_watch_session(d, ds); /* next time, then */
	return r;
}

/* The timer: start the jobs that are due (a drain of each session at
 * least, which also catches rings that never reached their watermark). */
static void tick(struct daemon *d)
{
	double now = stoked_mono_s();

	/* Spare fds that went to root clients at EMFILE, or to refusals: take
	 * them back, and listen again if that had to stop. */
	stoked_spares_refill(d);
	if (d->listen_paused && d->nspare > 0) {
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u64 = stoked_watch_key(W_LISTEN, d->listen_fd)};

		if (epoll_ctl(d->ep, EPOLL_CTL_MOD, d->listen_fd, &ev) == 0)
			d->listen_paused = false;
	}
	enforce_memory(d);
	update_module_budgets(d);
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		const char *reason;
		bool discard;

		struct stoked_session_ctl *ctl = stoked_session_ctl(ds);
		enum stoked_job due;

		/* Busy or not: the timeline keeps its 100 ms cadence. */
		stoked_session_poll_resources(ds);
		due = stoked_session_tick(ds, now, &reason, &discard);

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
		if (due == STOKED_JOB_DRAIN && stoked_target_gone(ds)) {
			stoked_unwatch_session(d, ds);
			stoked_session_target_exited(ds);
			continue;
		}
		switch (due) {
		case STOKED_JOB_END:
			stoked_end_session(d, ds, discard, reason, NULL, 0);
			break;
		case STOKED_JOB_ROTATE:
		case STOKED_JOB_DRAIN:
			stoked_start_job(d, ds, due, 0);
			break;
		default:
			break;
		}
	}
	forget_ended(d);
	stoked_http_publish(d);
	for (size_t i = d->nclients; i-- > 0;)
		if (!d->clients[i]->waiting && now - d->clients[i]->last_active > CLIENT_IDLE_S)
			stoked_client_close(d, d->clients[i]);
}

/* ---- signals, log ------------------------------------------------------ */

int stoked_open_log(struct daemon *d)
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
			int r = stoked_open_log(d);

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

void stoked_dispatch(struct daemon *d, const struct epoll_event *ev)
{
	enum watch_kind k = (enum watch_kind)(ev->data.u64 >> 32);
	int fd = (int)(uint32_t)ev->data.u64;
	struct stoked_session *ds;
	uint64_t ticks;

	switch (k) {
	case W_LISTEN:
		stoked_accept_clients(d);
		break;
	case W_SIGNAL:
		handle_signals(d);
		break;
	case W_TIMER:
		if (read(d->timer_fd, &ticks, sizeof(ticks)) > 0)
			tick(d);
		break;
	case W_CLIENT:
		stoked_client_event(d, fd, ev->events);
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
			stoked_unwatch(d, fd);
			break;
		}
		/* Drained on the session's worker; its fds are watched
		 * again when that is done. */
		stoked_start_job(d, ds, STOKED_JOB_DRAIN, 0);
		break;
	case W_PIDFD:
		ds = session_of_fd(d, fd, true);
		if (ds) {
			stoked_unwatch_session(d, ds);
			stoked_session_target_exited(ds);
		}
		break;
	case W_JOBS:
		stoked_jobs_done(d);
		break;
	}
}

int stoked_setup_loop(struct daemon *d)
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
	r = stoked_watch(d, W_SIGNAL, d->sig_fd, EPOLLIN);
	if (r < 0)
		return r;
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer_fd < 0)
		return -errno;
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	r = stoked_watch(d, W_TIMER, d->timer_fd, EPOLLIN);
	if (r < 0)
		return r;
	d->job_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->job_fd < 0)
		return -errno;
	stoked_sessions_set_notify_fd(d->job_fd);
	stoked_spares_refill(d);
	if (d->nspare < NSPARE)
		return -EMFILE;
	return stoked_watch(d, W_JOBS, d->job_fd, EPOLLIN);
}

/* Detach from the terminal. The parent exits only once the child is
 * listening (or failed), so `stoked && stoke attach …` works. Returns the
 * write end of the readiness pipe in the child. */
