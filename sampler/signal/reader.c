/*
 * The signal sampler's reader: the launch with the agent preloaded, the
 * socket the agents announce their rings on, and the conversion of ring
 * cells into stoke_records (see signal_sampler.h, wire.h).
 *
 * Trust: the target can write anything into its ring and its messages. The
 * pid of a ring is the one the kernel reports for the sender (SO_PASSCRED);
 * a ring must be a sealed memfd of exactly the size stoke asked for; each
 * cell is copied out of the shared memory before it is checked, and a
 * cell that does not check out is counted as malformed and skipped.
 */
#include "sampler/signal/signal_sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "sampler/maps.h"
#include "sampler/perf/record.h"
#include "common/util.h"
#include "sampler/signal/wire.h"

/* Cells per process ring. A cell is only touched up to what it holds, so
 * the memory a ring costs is about cells times the stacks' used depth. */
#define STOKE_SIGNAL_SLOTS 1024
/* Real-time signal the agent takes unless the target has it: SIGRTMIN+N. */
#define STOKE_SIGNAL_DEFAULT_OFFSET 6
/* Where the agent is passed to the target: above the low fds programs
 * expect to find free. */
#define STOKE_SIGNAL_FD_MIN 200
/* Bound on the periods one signal may stand for (a second at 1000 Hz). */
#define STOKE_SIGNAL_MAX_OVERRUN 1000u
/* Bound on processes one recording follows. */
#define STOKE_SIGNAL_MAX_RINGS 65536

struct ring {
	pid_t pid;
	int pidfd;
	void *base;
	size_t len;
	uint64_t tail;
	uint64_t lost_seen;
};

struct stoke_signal_sampler {
	struct stoke_sampler_opts opts;
	stoke_sampler_cb cb;
	void *userdata;
	int signo;
	uint32_t nslots, slot_size;
	size_t ring_len;

	int sock; /* our end */
	struct ring *rings;
	size_t nrings, rings_cap;
	uint8_t *scratch; /* one cell, copied out of the ring */
	uint64_t disabled_at; /* CLOCK_MONOTONIC ns; 0 while enabled */

	struct stoke_sampler_stats stats;
};

int stoke_signal_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		     struct stoke_signal_sampler **ret)
{
	struct stoke_signal_sampler *s;
	const char *env = getenv("STOKE_SIGNAL_NUMBER");
	int signo = SIGRTMIN + STOKE_SIGNAL_DEFAULT_OFFSET;

	if (!cb || !opts->freq || opts->freq > 100000 || opts->stack_size > 65528 ||
	    opts->stack_size % 8)
		return -EINVAL;
	if (opts->signal_number)
		signo = opts->signal_number;
	else if (env && *env)
		signo = atoi(env);
	if (signo < SIGRTMIN || signo > SIGRTMAX)
		return -EINVAL;
	if (opts->ring_pages && (opts->ring_pages < 2 || opts->ring_pages > (1u << 16) ||
				 (opts->ring_pages & (opts->ring_pages - 1))))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	s->cb = cb;
	s->userdata = userdata;
	s->signo = signo;
	/* -m: cells per process ring here (a power of 2, as for perf) */
	s->nslots = opts->ring_pages ? opts->ring_pages : STOKE_SIGNAL_SLOTS;
	s->slot_size = stoke_agent_slot_size(opts->stack_size);
	s->ring_len = stoke_agent_ring_size(opts->stack_size, s->nslots);
	s->sock = -1;
	s->scratch = malloc(s->slot_size);
	if (!s->scratch) {
		free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

static void ring_close(struct ring *r)
{
	if (r->base)
		munmap(r->base, r->len);
	if (r->pidfd >= 0)
		close(r->pidfd);
	r->base = NULL;
	r->pidfd = -1;
}

void stoke_signal_free(struct stoke_signal_sampler *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nrings; i++)
		ring_close(&s->rings[i]);
	free(s->rings);
	free(s->scratch);
	if (s->sock >= 0)
		close(s->sock);
	free(s);
}

/* ---- the agent library ---- */

static bool usable(const char *path)
{
	return access(path, R_OK) == 0;
}

const char *stoke_signal_agent_path(void)
{
	static char buf[PATH_MAX];
	char exe[PATH_MAX - 64], tmp[PATH_MAX], *slash;
	const char *env = getenv("STOKE_AGENT");
	ssize_t n;

	if (env && *env)
		return realpath(env, buf) ? buf : NULL;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			/* installed next to stoke, or stoke run from its build
			 * tree (tools/stoke, sampler/signal/libstoke-agent.so) */
			snprintf(buf, sizeof(buf), "%s/libstoke-agent.so", exe);
			if (usable(buf))
				return buf;
			snprintf(tmp, sizeof(tmp), "%s/../sampler/signal/libstoke-agent.so", exe);
			if (usable(tmp) && realpath(tmp, buf))
				return buf;
		}
	}
#ifdef STOKE_AGENT_INSTALL_PATH
	if (usable(STOKE_AGENT_INSTALL_PATH))
		return STOKE_AGENT_INSTALL_PATH;
#endif
	return NULL;
}

/* ---- launch ---- */

/* The child's environment: ours with LD_PRELOAD (the agent first), the
 * socket's fd number and the configuration. Its first ENV_OWNED strings
 * are allocated here. */
#define ENV_OWNED 4
static char **child_env(struct stoke_signal_sampler *s, const char *agent, int fd, uint64_t ino)
{
	extern char **environ;
	const char *old = getenv("LD_PRELOAD"), *asan = getenv("ASAN_OPTIONS");
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + ENV_OWNED + 1, sizeof(*env));
	if (!env)
		return NULL;
	if (asprintf(&env[k++], "LD_PRELOAD=%s%s%s", agent, old && *old ? ":" : "",
		     old ? old : "") < 0 ||
	    asprintf(&env[k++], "%s=%d:%llu", STOKE_AGENT_ENV_FD, fd, (unsigned long long)ino) < 0 ||
	    asprintf(&env[k++], "%s=%u,%d,%u,%u,%d", STOKE_AGENT_ENV_CONF, s->opts.freq,
		     s->opts.event == STOKE_EVENT_WALL ? STOKE_AGENT_CLOCK_WALL
						       : STOKE_AGENT_CLOCK_CPU,
		     s->opts.stack_size, s->nslots, s->signo) < 0 ||
	    /* A target built with ASan would refuse to start with the agent
	     * ahead of its runtime; the agent replaces nothing ASan wraps. */
	    asprintf(&env[k++], "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
		     asan && *asan ? ":" : "") < 0) {
		env[k - 1] = NULL;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(environ[i], "LD_PRELOAD=", 11) ||
		    !strncmp(environ[i], STOKE_AGENT_ENV_FD "=", sizeof(STOKE_AGENT_ENV_FD)) ||
		    !strncmp(environ[i], STOKE_AGENT_ENV_CONF "=", sizeof(STOKE_AGENT_ENV_CONF)) ||
		    !strncmp(environ[i], "ASAN_OPTIONS=", 13))
			continue;
		env[k++] = environ[i];
	}
	env[k] = NULL;
	return env;
fail:
	for (size_t i = 0; i < ENV_OWNED && env[i]; i++)
		free(env[i]);
	free(env);
	return NULL;
}

int stoke_signal_launch(struct stoke_signal_sampler *s, char *const argv[], pid_t *ret_pid)
{
	const char *agent = stoke_signal_agent_path();
	int sv[2] = { -1, -1 }, errp[2] = { -1, -1 }, fd = -1, one = 1, err = 0, r;
	char **env = NULL;
	struct stat st;
	pid_t pid;
	ssize_t n;

	if (!argv || !argv[0])
		return -EINVAL;
	if (s->sock >= 0)
		return -EBUSY; /* one launch per sampler */
	if (!agent) {
		log_error("signal sampler: libstoke-agent.so not found next to stoke, in the "
			  "build tree or installed (set STOKE_AGENT=PATH)");
		return -ELIBACC;
	}
	/* LD_PRELOAD splits on spaces and colons */
	if (strpbrk(agent, " :")) {
		log_error("signal sampler: the agent's path '%s' has a space or a colon, which "
			  "LD_PRELOAD cannot carry",
			  agent);
		return -ELIBACC;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	r = -errno;
	if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (fd = fcntl(sv[1], F_DUPFD_CLOEXEC, STOKE_SIGNAL_FD_MIN)) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	env = child_env(s, agent, fd, (uint64_t)st.st_ino);
	if (!env) {
		r = -ENOMEM;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		/* the agent's end, and only it, crosses the exec */
		if (fcntl(fd, F_SETFD, 0) == 0)
			execvpe(argv[0], argv, env);
		err = errno;
		if (write(errp[1], &err, sizeof(err)) < 0)
			_exit(127);
		_exit(127);
	}
	close(errp[1]);
	errp[1] = -1;
	do {
		n = read(errp[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		r = -err;
		goto out;
	}
	s->sock = sv[0];
	sv[0] = -1;
	*ret_pid = pid;
	r = 0;
out:
	if (env) {
		for (size_t i = 0; i < ENV_OWNED; i++)
			free(env[i]);
		free(env);
	}
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

int stoke_signal_pollfds(const struct stoke_signal_sampler *s, const int **ret)
{
	*ret = &s->sock;
	return s->sock >= 0 ? 1 : 0;
}

/* Samples taken before now are still delivered (by the final drain), as
 * perf delivers what reached its rings before the disable. */
static uint64_t now_ns(void);

void stoke_signal_disable(struct stoke_signal_sampler *s)
{
	if (!s->disabled_at)
		s->disabled_at = now_ns();
}

void stoke_signal_get_stats(const struct stoke_signal_sampler *s, struct stoke_sampler_stats *ret)
{
	*ret = s->stats;
}

/* ---- records ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int emit(struct stoke_signal_sampler *s, struct stoke_record *rec)
{
	s->stats.records++;
	if (rec->type == STOKE_REC_SAMPLE)
		s->stats.samples++;
	return s->cb(rec, s->userdata);
}

static int emit_comm(struct stoke_signal_sampler *s, pid_t pid, uint32_t tid, const char *comm,
		     bool exec)
{
	struct stoke_record rec = { .type = STOKE_REC_COMM };

	rec.comm.pid = (uint32_t)pid;
	rec.comm.tid = tid;
	rec.comm.exec = exec;
	rec.comm.comm = comm;
	return emit(s, &rec);
}

static int emit_task(struct stoke_signal_sampler *s, enum stoke_record_type type, pid_t pid,
		     pid_t ppid)
{
	struct stoke_record rec = { .type = type };

	rec.task.pid = rec.task.tid = (uint32_t)pid;
	rec.task.ppid = rec.task.ptid = (uint32_t)ppid;
	rec.task.time = now_ns();
	return emit(s, &rec);
}

/* One cell, copied to scratch (size bytes of payload after the cell
 * header), into records. */
static int convert(struct stoke_signal_sampler *s, struct ring *r, uint32_t type, uint32_t size)
{
	const uint8_t *p = s->scratch + sizeof(struct stoke_agent_cell);
	struct stoke_record rec = { 0 };

	switch (type) {
	case STOKE_AGENT_EV_SAMPLE: {
		const struct stoke_agent_sample *a = (const void *)p;

		if (size < sizeof(*a) || a->stack_len > s->opts.stack_size ||
		    a->stack_len > size - sizeof(*a))
			break;
		if (s->disabled_at && a->time > s->disabled_at)
			return 0;
		rec.type = STOKE_REC_SAMPLE;
		rec.sample.pid = (uint32_t)r->pid;
		rec.sample.tid = a->tid ? a->tid : (uint32_t)r->pid;
		rec.sample.ip = a->regs[8];
		rec.sample.time = a->time;
		rec.sample.cpu = a->cpu;
		rec.sample.period = a->period;
		/* wire.h: perf's register layout */
		stoke_perf_regs_to_dwarf(a->regs, &rec.sample);
		rec.sample.stack_len = a->stack_len;
		rec.sample.stack = a->stack_len ? p + sizeof(*a) : NULL;
		/* One signal for 1 + overrun periods (see wire.h); bounded,
		 * as the count comes from the target. */
		for (uint32_t i = 0; i <= STOKE_MIN(a->overrun, STOKE_SIGNAL_MAX_OVERRUN); i++) {
			int rc = emit(s, &rec);

			if (rc < 0)
				return rc;
		}
		return 0;
	}
	case STOKE_AGENT_EV_MAP: {
		const struct stoke_agent_map *m = (const void *)p;
		char line[512];
		struct stoke_maps_entry e;

		if (size < sizeof(*m) || m->len >= sizeof(line) || m->len > size - sizeof(*m))
			break;
		memcpy(line, m->line, m->len);
		line[m->len] = '\0';
		if (stoke_maps_parse_line(line, &e) < 0 || !(e.prot & PROT_EXEC))
			break;
		stoke_maps_entry_to_record(&e, (uint32_t)r->pid, &rec);
		return emit(s, &rec);
	}
	case STOKE_AGENT_EV_COMM: {
		const struct stoke_agent_comm *c = (const void *)p;
		char comm[16];

		if (size < sizeof(*c) || !c->tid)
			break;
		memcpy(comm, c->comm, sizeof(comm));
		comm[15] = '\0';
		return emit_comm(s, r->pid, c->tid, comm, false);
	}
	default:
		break;
	}
	s->stats.malformed++;
	return 0;
}

/* Deliver every published cell of r. With retire (the process is gone or
 * has exec'd), cells claimed but never published are given up as lost. */
static int ring_drain(struct stoke_signal_sampler *s, struct ring *r, bool retire)
{
	struct stoke_agent_ring_hdr *h = r->base;
	uint64_t lost;
	int n = 0, rc;

	if (!h)
		return 0;
	for (uint32_t k = 0; k < s->nslots; k++) {
		uint8_t *cell = (uint8_t *)h + STOKE_AGENT_HDR_SIZE +
				(size_t)(r->tail & (s->nslots - 1)) * s->slot_size;
		_Atomic uint64_t *seq = (_Atomic uint64_t *)cell;
		struct stoke_agent_cell c;

		if (atomic_load_explicit(seq, memory_order_acquire) != r->tail + 1)
			break;
		memcpy(&c, cell, sizeof(c));
		if (c.size > s->slot_size - sizeof(c))
			c.size = 0; /* malformed: convert() rejects it */
		memcpy(s->scratch, cell, sizeof(c) + c.size);
		atomic_store_explicit(seq, r->tail + s->nslots, memory_order_release);
		r->tail++;
		atomic_store_explicit((_Atomic uint64_t *)&h->tail, r->tail, memory_order_relaxed);
		rc = convert(s, r, c.type, c.size);
		if (rc < 0)
			return rc;
		n++;
	}
	lost = atomic_load_explicit((_Atomic uint64_t *)&h->lost, memory_order_relaxed);
	if (retire) {
		uint64_t head = atomic_load_explicit((_Atomic uint64_t *)&h->head,
						     memory_order_relaxed);

		if (head > r->tail && head - r->tail <= s->nslots)
			lost += head - r->tail;
	}
	if (lost > r->lost_seen) {
		struct stoke_record rec = { .type = STOKE_REC_LOST };

		rec.lost.lost = lost - r->lost_seen;
		s->stats.lost += rec.lost.lost;
		r->lost_seen = lost;
		rc = emit(s, &rec);
		if (rc < 0)
			return rc;
	}
	return n;
}

static struct ring *ring_of(struct stoke_signal_sampler *s, pid_t pid)
{
	for (size_t i = 0; i < s->nrings; i++)
		if (s->rings[i].pid == pid && s->rings[i].base)
			return &s->rings[i];
	return NULL;
}

/* Map a ring an agent sent, if it is what we asked for. */
static int ring_map(struct stoke_signal_sampler *s, int fd, void **ret)
{
	const struct stoke_agent_ring_hdr *h;
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	void *base;

	/* Sealed against shrinking: a target cannot make our reads fault. */
	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != s->ring_len)
		return -EBADMSG;
	base = mmap(NULL, s->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	h = base;
	if (h->magic != STOKE_AGENT_MAGIC || h->version != STOKE_AGENT_VERSION ||
	    h->nslots != s->nslots || h->slot_size != s->slot_size) {
		munmap(base, s->ring_len);
		return -EBADMSG;
	}
	*ret = base;
	return 0;
}

/*
 * A process announces its ring: a new process (a FORK from its parent when
 * the parent is one of ours), or an exec of a known one (its old ring is
 * drained and replaced, and the exec is a COMM with the exec flag, as perf
 * reports it).
 */
static int on_hello(struct stoke_signal_sampler *s, pid_t pid, const struct stoke_agent_hello *h,
		    int fd)
{
	struct ring *old = ring_of(s, pid), *r;
	char comm[16];
	void *base = NULL;
	int rc;

	rc = ring_map(s, fd, &base);
	if (rc < 0) {
		s->stats.malformed++;
		return 0;
	}
	memcpy(comm, h->comm, sizeof(comm));
	comm[15] = '\0';
	if (old) {
		rc = ring_drain(s, old, true);
		ring_close(old);
		old->pid = 0;
		if (rc >= 0)
			rc = emit_comm(s, pid, (uint32_t)pid, comm, true);
	} else {
		if (s->nrings >= STOKE_SIGNAL_MAX_RINGS) {
			munmap(base, s->ring_len);
			return 0;
		}
		rc = ring_of(s, (pid_t)h->ppid) ? emit_task(s, STOKE_REC_FORK, pid, (pid_t)h->ppid)
						: 0;
		if (rc >= 0)
			rc = emit_comm(s, pid, (uint32_t)pid, comm, false);
	}
	if (rc < 0 || STOKE_GROW(s->rings, s->rings_cap, s->nrings + 1) < 0) {
		munmap(base, s->ring_len);
		return rc < 0 ? rc : -ENOMEM;
	}
	r = &s->rings[s->nrings++];
	*r = (struct ring){ .pid = pid, .base = base, .len = s->ring_len };
	r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	s->stats.rings++;
	s->stats.events++;
	return 0;
}

/* Read every message the agents sent. */
static int read_messages(struct stoke_signal_sampler *s)
{
	for (;;) {
		union {
			struct stoke_agent_hello hello;
			uint8_t raw[64];
		} buf;
		char cbuf[CMSG_SPACE(4 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct iovec iov = { &buf, sizeof(buf) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				      .msg_controllen = sizeof(cbuf) };
		struct ucred cred = { 0 };
		int fd = -1, rc = 0;
		bool have_cred = false;
		ssize_t n;

		n = recvmsg(s->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0; /* nothing more, or every agent is gone */
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET)
				continue;
			if (cm->cmsg_type == SCM_RIGHTS) {
				size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (size_t i = 0; i < nfd; i++) {
					int f;

					memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
					if (fd < 0)
						fd = f;
					else
						close(f);
				}
			} else if (cm->cmsg_type == SCM_CREDENTIALS &&
				   cm->cmsg_len >= CMSG_LEN(sizeof(cred))) {
				memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
				have_cred = true;
			}
		}
		if (n == (ssize_t)sizeof(buf.hello) && buf.hello.type == STOKE_AGENT_MSG_HELLO &&
		    buf.hello.version == STOKE_AGENT_VERSION && fd >= 0 && have_cred &&
		    cred.pid > 0)
			rc = on_hello(s, cred.pid, &buf.hello, fd);
		else if (!(n == 1 && buf.raw[0] == STOKE_AGENT_MSG_WAKE))
			s->stats.malformed++;
		if (fd >= 0)
			close(fd);
		if (rc < 0)
			return rc;
	}
}

static bool process_gone(const struct ring *r)
{
	struct pollfd p = { .fd = r->pidfd, .events = POLLIN };

	if (r->pidfd < 0)
		return kill(r->pid, 0) < 0 && errno == ESRCH;
	return poll(&p, 1, 0) == 1;
}

int stoke_signal_drain(struct stoke_signal_sampler *s, bool flush)
{
	int total = 0, rc;

	if (s->sock < 0)
		return 0;
	rc = read_messages(s);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < s->nrings; i++) {
		struct ring *r = &s->rings[i];
		bool gone;

		if (!r->base)
			continue;
		/* Asked before the drain: a process gone then wrote
		 * everything it will ever write. */
		gone = process_gone(r);
		rc = ring_drain(s, r, gone);
		if (rc < 0)
			return rc;
		total += rc;
		if (gone) {
			rc = emit_task(s, STOKE_REC_EXIT, r->pid, r->pid);
			ring_close(r);
			if (rc < 0)
				return rc;
		}
	}
	/* Forget closed rings, keeping the order. */
	{
		size_t k = 0;

		for (size_t i = 0; i < s->nrings; i++)
			if (s->rings[i].base)
				s->rings[k++] = s->rings[i];
		s->nrings = k;
	}
	(void)flush;
	return total;
}
