/*
 * libstoke-agent.so: the signal sampler's agent, LD_PRELOAD'ed into a
 * command that `stoke record --sampler signal` launches (see wire.h for
 * what it shares with stoke).
 *
 * Per thread it arms a POSIX timer on the thread's CPU clock (or on
 * CLOCK_MONOTONIC for wall-clock profiles) that signals that very thread
 * (SIGEV_THREAD_ID). The handler only copies: the registers from the
 * ucontext and the top of the user stack go into a lock-free ring in shared
 * memory. It never unwinds, allocates, locks or calls anything that is not
 * async-signal-safe, and it saves and restores errno; stoke unwinds later
 * with the same unwinder as for perf_event samples.
 *
 * Off the signal path: the module maps (/proc/self/maps at start, after a
 * fork and after every dlopen) and thread names go into the same ring as
 * events. Threads are armed in a pthread_create trampoline; a forked child
 * makes its own ring (pthread_atfork); an exec starts the agent again from
 * the environment, which exec calls given an explicit environment get back.
 *
 * Safety in the target: the agent changes neither output nor exit status.
 * It takes a real-time signal nobody has a disposition for. When the target
 * installs its own handler for that number, the agent moves to another free
 * number and hands the target its signal (or, with none free, stops
 * sampling); the target then sees the disposition the agent found. Before
 * an exec it deletes its timers and consumes any of its signals still
 * pending (a pending real-time signal survives exec, and its default action
 * would kill the new image). It stays installed at exit, as a signal still
 * queued then must not meet the default action. In a vfork child (which
 * shares its parent's memory) it touches nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "wire.h"

#define EXPORT __attribute__((visibility("default")))
/* The next definition of an interposed function (POSIX's dlsym idiom for
 * function pointers). */
#define NEXT(var, name) (*(void **)&(var) = dlsym(RTLD_NEXT, name))
#define MAX_TIMERS 4096
#define MAX_SEEN_MAPS 1024

/*
 * A thread's timers. CPU-time timers expire on the scheduler tick only
 * (CONFIG_HZ, often 250), and a thread's CPU time at each tick moves in
 * step with the tick: a program whose loop lasts a multiple of the tick
 * would be sampled at the same point of its loop every time (seen with
 * tests/fixtures/split: 70% to 81% for a 75% truth). So in CPU mode the tick
 * timer (id) only says "this thread is running"; the sample is taken by a
 * one-shot wall-clock timer (delay) at a random point of the next tick
 * interval, with the weight of every period the tick timer counted.
 */
struct timer_slot {
	pid_t tid; /* 0: free */
	timer_t id;
	timer_t delay;
	uint32_t gen; /* counts slot_arm: a thread's pending delayed samples
		       * belong to the timers of one generation */
	bool armed;
	bool has_delay;
};

/* The delayed timers' signal carries this address, the others &g. */
static char delayed_tag;
/* The spread of the delay: one tick at 250 Hz. */
#define DELAY_SPREAD_NS 4000000L

static struct {
	bool enabled; /* configured by the environment and set up */
	int sock;
	uint64_t sock_ino; /* the socket's inode, as stoke gave it */
	unsigned freq;
	int clock;
	uint32_t stack;
	uint32_t nslots;
	uint32_t slot_size;
	pid_t pid; /* the process that owns the state below */

	_Atomic int signo;
	bool installed; /* our handler is on signo */
	struct sigaction found; /* the disposition found on signo */
	_Atomic bool sampling;

	struct stoke_agent_ring_hdr *_Atomic ring;
	size_t ring_len;

	pthread_mutex_t lock; /* timers, seen maps; never taken in the handler */
	struct timer_slot timers[MAX_TIMERS];
	uint64_t seen[MAX_SEEN_MAPS]; /* hashes of announced mapping lines */
	pthread_key_t key;

	char env_preload[PATH_MAX + 16];
	char env_fd[48];
	char env_conf[128];
} g = { .sock = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

struct thread_state {
	pid_t tid;
	uintptr_t lo, hi; /* the thread's stack */
	int slot;         /* in g.timers, or -1 */
	uint32_t pending; /* periods the delayed samples stand for */
	uint32_t pending_gen;
	uint64_t rng;
};

static __thread struct thread_state ts __attribute__((tls_model("initial-exec"))) = { .slot = -1 };

/* ---- the socket ---- */

/*
 * Whether g.sock is still stoke's socket. A target may close the fd and
 * reuse its number for a file or connection of its own: the agent must
 * never write into that. fstat is async-signal-safe.
 */
static bool sock_ok(void)
{
	struct stat st;

	return g.sock >= 0 && fstat(g.sock, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       (uint64_t)st.st_ino == g.sock_ino;
}

/* ---- the ring (producer side) ---- */

static struct stoke_agent_cell *cell_at(struct stoke_agent_ring_hdr *r, uint64_t pos)
{
	return (void *)((char *)r + STOKE_AGENT_HDR_SIZE +
			(size_t)(pos & (g.nslots - 1)) * g.slot_size);
}

/* Claim a cell; NULL when the ring is full (the weight samples it was
 * for are counted as lost). Lock-free and async-signal-safe. */
static struct stoke_agent_cell *ring_claim(struct stoke_agent_ring_hdr *r, uint32_t weight,
					   uint64_t *ret_pos)
{
	_Atomic uint64_t *head = (_Atomic uint64_t *)&r->head;
	uint64_t pos = atomic_load_explicit(head, memory_order_relaxed);

	for (;;) {
		struct stoke_agent_cell *c = cell_at(r, pos);
		uint64_t seq = atomic_load_explicit((_Atomic uint64_t *)&c->seq,
						    memory_order_acquire);
		int64_t dif = (int64_t)(seq - pos);

		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(head, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed)) {
				*ret_pos = pos;
				return c;
			}
		} else if (dif < 0) {
			atomic_fetch_add_explicit((_Atomic uint64_t *)&r->lost, weight,
						  memory_order_relaxed);
			return NULL;
		} else {
			pos = atomic_load_explicit(head, memory_order_relaxed);
		}
	}
}

static void ring_publish(struct stoke_agent_ring_hdr *r, struct stoke_agent_cell *c, uint64_t pos)
{
	uint64_t tail;

	atomic_store_explicit((_Atomic uint64_t *)&c->seq, pos + 1, memory_order_release);
	/* Wake stoke when the ring reaches half full, once per crossing, so
	 * that a busy target does not wait for stoke's next poll round. send()
	 * is async-signal-safe; MSG_DONTWAIT: never block the target. */
	tail = atomic_load_explicit((_Atomic uint64_t *)&r->tail, memory_order_relaxed);
	if (pos - tail == g.nslots / 2 && sock_ok()) {
		uint8_t m = STOKE_AGENT_MSG_WAKE;

		(void)send(g.sock, &m, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
}

/* ---- the handler ---- */

/*
 * Copy stack bytes without libc's memcpy: in a target built with ASan,
 * memcpy is ASan's, which reports reading the stack's redzones. (The agent
 * samples x86-64 only: rep movsb is its fast copy.)
 */
static void copy_raw(void *dst, const void *src, size_t n)
{
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static uint32_t copy_stack(uint8_t *dst, uintptr_t sp)
{
	uint32_t want = g.stack;

	if (sp >= ts.lo && sp < ts.hi) {
		if (ts.hi - sp < want)
			want = (uint32_t)(ts.hi - sp);
		copy_raw(dst, (const void *)sp, want);
		return want;
	}
	/* Not on the thread's known stack (a sigaltstack, a coroutine): let
	 * the kernel copy, page by page, so a fault ends the copy instead of
	 * killing the target. */
	{
		struct iovec local = { dst, want }, remote[24];
		int n = 0;
		uintptr_t p = sp, end = sp + want;
		ssize_t r;

		while (p < end && n < 24) {
			uintptr_t next = (p | 4095) + 1;

			if (next > end)
				next = end;
			remote[n].iov_base = (void *)p;
			remote[n].iov_len = next - p;
			n++;
			p = next;
		}
		local.iov_len = p - sp;
		r = syscall(SYS_process_vm_readv, g.pid, &local, 1, remote, n, 0);
		return r > 0 ? (uint32_t)r : 0;
	}
}

/*
 * A tick of the CPU-time timer: have the delayed timer take the sample at a
 * random point of the next tick interval (see struct timer_slot). Returns
 * false when there is no delayed timer (sample now).
 */
/* Arm the delayed timer: first after a random part of a tick, then every
 * random 0..2 periods (one period on average). */
static bool delay_arm(long spread_ns)
{
	const struct timer_slot *t;
	struct itimerspec it = { 0 };

	if (ts.slot < 0)
		return false;
	t = &g.timers[ts.slot];
	if (!t->has_delay || t->tid != ts.tid)
		return false;
	ts.rng ^= ts.rng << 13;
	ts.rng ^= ts.rng >> 7;
	ts.rng ^= ts.rng << 17;
	it.it_value.tv_nsec = 1000 + (long)(ts.rng % (uint64_t)spread_ns);
	return timer_settime(t->delay, 0, &it, NULL) == 0;
}

static void delay_next(void)
{
	if (!delay_arm(2 * (1000000000L / (long)g.freq)))
		ts.pending = 0;
}

static bool delay_sample(uint32_t weight)
{
	/* Timers re-created since (a new signal number, an exec that failed)
	 * lost the delayed one in flight. */
	if (ts.pending && ts.slot >= 0 && g.timers[ts.slot].gen != ts.pending_gen)
		ts.pending = 0;
	if (ts.pending) {
		/* samples are on their way: they stand for these periods too */
		ts.pending += weight;
		return true;
	}
	if (!delay_arm(DELAY_SPREAD_NS / (long)weight + 1))
		return false;
	ts.pending = weight;
	ts.pending_gen = g.timers[ts.slot].gen;
	return true;
}

/*
 * Whether the signal interrupted a blocking system call: the kernel then
 * leaves the IP just after the syscall instruction with -EINTR in RAX, or
 * (to restart it) on the instruction with the call's number. A delayed
 * sample that finds its thread blocked is not CPU time: it is dropped, and
 * so are the periods still pending, so that a thread that went to sleep is
 * not woken again.
 */
static bool in_blocking_syscall(const greg_t *gr)
{
	const uint8_t *ip = (const uint8_t *)gr[REG_RIP];

	if (((uintptr_t)ip & 4095) >= 2 && ip[-2] == 0x0f && ip[-1] == 0x05 &&
	    (uint64_t)gr[REG_RAX] == (uint64_t)-EINTR)
		return true;
	return ((uintptr_t)ip & 4095) <= 4094 && ip[0] == 0x0f && ip[1] == 0x05 &&
	       (uint64_t)gr[REG_RAX] < 1024;
}

static void on_signal(int sig, siginfo_t *si, void *ucv)
{
	int saved_errno = errno;
	struct stoke_agent_ring_hdr *r = atomic_load_explicit(&g.ring, memory_order_acquire);
	const ucontext_t *uc = ucv;
	const greg_t *gr = uc->uc_mcontext.gregs;
	struct stoke_agent_cell *c;
	struct stoke_agent_sample *s;
	struct timespec now;
	uint64_t pos;

	uint32_t weight;

	(void)sig;
	/* Only our timers' signals are samples; anything else sent to this
	 * number is ignored. */
	if (si->si_code != SI_TIMER || !r ||
	    !atomic_load_explicit(&g.sampling, memory_order_relaxed) || !ts.tid)
		goto out;
	if (si->si_value.sival_ptr == (void *)&delayed_tag) {
		/* one period each, the next one a random delay later, so the
		 * tick's periods are sampled at independent points; a backlog
		 * (a thread that ran long between signals) catches up */
		if (!ts.pending)
			goto out;
		if (in_blocking_syscall(gr)) {
			ts.pending = 0;
			goto out;
		}
		weight = ts.pending > 16 ? ts.pending - 15 : 1;
		ts.pending -= weight;
		if (ts.pending)
			delay_next();
	} else if (si->si_value.sival_ptr == (void *)&g) {
		weight = 1 + (si->si_overrun > 0 ? (uint32_t)si->si_overrun : 0);
		if (delay_sample(weight))
			goto out;
	} else {
		goto out;
	}
	c = ring_claim(r, weight, &pos);
	if (!c)
		goto out;
	s = (void *)(c + 1);
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->time = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	s->period = 1000000000ULL / g.freq;
	s->tid = (uint32_t)ts.tid;
	s->cpu = (uint32_t)sched_getcpu();
	s->regs[0] = (uint64_t)gr[REG_RAX];
	s->regs[1] = (uint64_t)gr[REG_RBX];
	s->regs[2] = (uint64_t)gr[REG_RCX];
	s->regs[3] = (uint64_t)gr[REG_RDX];
	s->regs[4] = (uint64_t)gr[REG_RSI];
	s->regs[5] = (uint64_t)gr[REG_RDI];
	s->regs[6] = (uint64_t)gr[REG_RBP];
	s->regs[7] = (uint64_t)gr[REG_RSP];
	s->regs[8] = (uint64_t)gr[REG_RIP];
	s->regs[9] = (uint64_t)gr[REG_EFL];
	s->regs[10] = (uint64_t)gr[REG_CSGSFS] & 0xffff;
	s->regs[11] = 0x2b; /* the user SS on x86-64 Linux */
	for (int i = 0; i < 8; i++)
		s->regs[12 + i] = (uint64_t)gr[REG_R8 + i];
	s->stack_len = copy_stack((uint8_t *)(s + 1), (uintptr_t)gr[REG_RSP]);
	s->overrun = weight - 1;
	c->type = STOKE_AGENT_EV_SAMPLE;
	c->size = (uint32_t)sizeof(*s) + s->stack_len;
	ring_publish(r, c, pos);
out:
	errno = saved_errno;
}

/* ---- events off the signal path ---- */

static void push_event(uint32_t type, const void *payload, uint32_t size)
{
	struct stoke_agent_ring_hdr *r = atomic_load(&g.ring);
	struct stoke_agent_cell *c;
	uint64_t pos;

	if (!r || size > g.slot_size - sizeof(*c))
		return;
	c = ring_claim(r, 0, &pos); /* an event, not a sample */
	if (!c)
		return;
	memcpy(c + 1, payload, size);
	c->type = type;
	c->size = size;
	ring_publish(r, c, pos);
}

static void push_comm(pid_t tid)
{
	struct stoke_agent_comm m = { .tid = (uint32_t)tid };

	if (prctl(PR_GET_NAME, m.comm, 0, 0, 0) < 0)
		return;
	m.comm[15] = '\0';
	push_event(STOKE_AGENT_EV_COMM, &m, sizeof(m));
}

static uint64_t hash_line(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
	return h ? h : 1;
}

/* Whether the line was announced already; remembers it if not. Caller
 * holds g.lock.
 * This small fixed table is the agent's own, not common/hashmap, on
 * purpose: the agent is preloaded into the target and links nothing of
 * stoke's (sampler/signal/meson.build), and announcing maps (after dlopen,
 * in a forked child) must not grow memory through the target's malloc; a
 * crowded table only means a line is announced again. */
static bool seen_line(const char *s, size_t n)
{
	uint64_t h = hash_line(s, n);
	size_t i = h & (MAX_SEEN_MAPS - 1);

	for (size_t k = 0; k < MAX_SEEN_MAPS / 2; k++, i = (i + 1) & (MAX_SEEN_MAPS - 1)) {
		if (g.seen[i] == h)
			return true;
		if (!g.seen[i]) {
			g.seen[i] = h;
			return false;
		}
	}
	return false; /* table crowded: announce again, harmless */
}

static void announce_line(const char *line, size_t n)
{
	union {
		struct stoke_agent_map m;
		char bytes[sizeof(struct stoke_agent_map) + 512];
	} ev;
	const char *perms;

	/* "start-end perms ...": executable mappings only, as the kernel's
	 * MMAP records */
	perms = memchr(line, ' ', n);
	if (!perms || (size_t)(perms - line) + 4 >= n || perms[3] != 'x')
		return;
	if (n >= 512 || seen_line(line, n))
		return;
	ev.m.tid = (uint32_t)g.pid;
	ev.m.len = (uint32_t)n;
	memcpy(ev.m.line, line, n);
	ev.m.line[n] = '\0';
	push_event(STOKE_AGENT_EV_MAP, &ev, (uint32_t)(sizeof(ev.m) + n + 1));
}

/* Announce every executable mapping not announced yet. */
static void announce_maps(void)
{
	char buf[4096];
	size_t have = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	pthread_mutex_lock(&g.lock);
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		for (size_t i = 0; i < have; i++) {
			if (buf[i] != '\n')
				continue;
			announce_line(buf + start, i - start);
			start = i + 1;
		}
		if (start == 0 && have == sizeof(buf))
			have = 0; /* a line longer than the buffer: skip it */
		memmove(buf, buf + start, have - start);
		have -= start;
	}
	pthread_mutex_unlock(&g.lock);
	close(fd);
}

/* ---- timers ---- */

static int timer_arm(pid_t tid, int signo, timer_t *ret)
{
	struct sigevent ev = { 0 };
	struct itimerspec it = { 0 };
	long ns = 1000000000L / (long)g.freq;

	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = signo;
	ev.sigev_value.sival_ptr = &g;
	ev._sigev_un._tid = tid;
	if (timer_create(g.clock == STOKE_AGENT_CLOCK_WALL ? CLOCK_MONOTONIC
							   : CLOCK_THREAD_CPUTIME_ID,
			 &ev, ret) < 0)
		return -errno;
	it.it_interval.tv_sec = ns / 1000000000L;
	it.it_interval.tv_nsec = ns % 1000000000L;
	it.it_value = it.it_interval;
	if (timer_settime(*ret, 0, &it, NULL) < 0) {
		int r = -errno;

		timer_delete(*ret);
		return r;
	}
	return 0;
}

/* Create the thread's timers (the delayed one disarmed) and arm the tick
 * timer. Caller holds g.lock. */
static int slot_arm(struct timer_slot *t, int signo)
{
	int r;

	t->has_delay = false;
	t->gen++;
	if (g.clock == STOKE_AGENT_CLOCK_CPU) {
		struct sigevent ev = { 0 };

		ev.sigev_notify = SIGEV_THREAD_ID;
		ev.sigev_signo = signo;
		ev.sigev_value.sival_ptr = &delayed_tag;
		ev._sigev_un._tid = t->tid;
		t->has_delay = timer_create(CLOCK_MONOTONIC, &ev, &t->delay) == 0;
	}
	r = timer_arm(t->tid, signo, &t->id);
	if (r < 0 && t->has_delay) {
		timer_delete(t->delay);
		t->has_delay = false;
	}
	t->armed = r == 0;
	return r;
}

static void slot_delete(struct timer_slot *t)
{
	if (t->armed)
		timer_delete(t->id);
	if (t->has_delay)
		timer_delete(t->delay);
	t->armed = t->has_delay = false;
}

/*
 * Arm the calling thread. CLOCK_THREAD_CPUTIME_ID is the CPU clock of the
 * thread that creates the timer, which is why every thread arms itself.
 */
static void thread_start(void)
{
	pthread_attr_t attr;

	ts.tid = (pid_t)syscall(SYS_gettid);
	ts.slot = -1;
	ts.pending = 0;
	ts.rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tid;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		void *addr;
		size_t size;

		if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
			ts.lo = (uintptr_t)addr;
			ts.hi = (uintptr_t)addr + size;
		}
		pthread_attr_destroy(&attr);
	}
	push_comm(ts.tid);
	pthread_mutex_lock(&g.lock);
	if (atomic_load(&g.sampling)) {
		for (int i = 0; i < MAX_TIMERS; i++) {
			if (g.timers[i].tid)
				continue;
			g.timers[i].tid = ts.tid;
			if (slot_arm(&g.timers[i], atomic_load(&g.signo)) == 0)
				ts.slot = i;
			else
				g.timers[i].tid = 0;
			break;
		}
	}
	pthread_mutex_unlock(&g.lock);
	/* The key's destructor runs at the thread's exit only when the value
	 * is not NULL. */
	pthread_setspecific(g.key, (void *)1);
}

static void thread_end(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&g.lock);
	if (ts.slot >= 0 && g.timers[ts.slot].tid == ts.tid) {
		slot_delete(&g.timers[ts.slot]);
		g.timers[ts.slot].tid = 0;
	}
	ts.slot = -1;
	pthread_mutex_unlock(&g.lock);
}

/* Delete every timer (keeping which threads had one). Caller holds g.lock. */
static void timers_delete_all(void)
{
	for (int i = 0; i < MAX_TIMERS; i++)
		if (g.timers[i].tid)
			slot_delete(&g.timers[i]);
}

/* Arm every thread that had a timer again, on signo. Caller holds g.lock. */
static void timers_rearm_all(int signo)
{
	for (int i = 0; i < MAX_TIMERS; i++)
		if (g.timers[i].tid && !g.timers[i].armed)
			slot_arm(&g.timers[i], signo);
}

/* ---- signal numbers ---- */

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void resolve_real(void)
{
	if (!real_sigaction)
		NEXT(real_sigaction, "sigaction");
}

/* A real-time signal with the default disposition, other than avoid. */
static int free_signo(int from, int avoid)
{
	for (int s = from; s <= SIGRTMAX; s++) {
		struct sigaction cur;

		if (s == avoid || real_sigaction(s, NULL, &cur) < 0)
			continue;
		if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL)
			return s;
	}
	return -1;
}

static int install_handler(int signo, struct sigaction *ret_found)
{
	struct sigaction sa = { 0 };

	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return real_sigaction(signo, &sa, ret_found);
}

/*
 * The target sets a disposition for our signal: move to another free number
 * (timers re-created for every armed thread), or stop sampling when there is
 * none, and give the target what it asked for. Returns the real sigaction's
 * result; old receives the disposition we found there.
 */
static int yield_signal(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction ours_found;
	int next, r;

	pthread_mutex_lock(&g.lock);
	next = free_signo(SIGRTMIN + 1, sig);
	timers_delete_all();
	if (next > 0 && install_handler(next, &ours_found) == 0) {
		atomic_store(&g.signo, next);
		if (atomic_load(&g.sampling))
			timers_rearm_all(next);
	} else {
		atomic_store(&g.sampling, false);
		g.installed = false;
	}
	if (old)
		*old = g.found;
	r = real_sigaction(sig, act, NULL);
	if (next > 0 && g.installed)
		g.found = ours_found;
	pthread_mutex_unlock(&g.lock);
	return r;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	resolve_real();
	if (!g.enabled || !g.installed || sig != atomic_load(&g.signo) || getpid() != g.pid)
		return real_sigaction(sig, act, old);
	if (!act) {
		/* The target asks: it sees what it would see without us. */
		if (old)
			*old = g.found;
		return 0;
	}
	return yield_signal(sig, act, old);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	static sighandler_t (*real)(int, sighandler_t);
	struct sigaction sa = { 0 }, old;

	if (!real)
		NEXT(real, "signal");
	/* Other numbers: glibc's own (it honours siginterrupt) */
	if (!g.enabled || !g.installed || sig != atomic_load(&g.signo) || getpid() != g.pid)
		return real(sig, handler);

	/* glibc's signal(): BSD semantics, the signal restarts calls */
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, sig);
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* ---- threads ---- */

struct start {
	void *(*fn)(void *);
	void *arg;
};

static void *trampoline(void *p)
{
	struct start st = *(struct start *)p;

	free(p);
	thread_start();
	return st.fn(st.arg);
}

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
			  void *arg)
{
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	struct start *st;
	int r;

	if (!real)
		NEXT(real, "pthread_create");
	if (!g.enabled || !(st = malloc(sizeof(*st))))
		return real(thread, attr, fn, arg);
	st->fn = fn;
	st->arg = arg;
	r = real(thread, attr, trampoline, st);
	if (r)
		free(st);
	return r;
}

EXPORT int pthread_setname_np(pthread_t thread, const char *name)
{
	static int (*real)(pthread_t, const char *);
	int r;

	if (!real)
		NEXT(real, "pthread_setname_np");
	r = real(thread, name);
	if (r == 0 && g.enabled && pthread_equal(thread, pthread_self()))
		push_comm(ts.tid);
	return r;
}

/* ---- dlopen ---- */

EXPORT void *dlopen(const char *file, int mode)
{
	static void *(*real)(const char *, int);
	void *h;

	if (!real)
		NEXT(real, "dlopen");
	h = real(file, mode);
	if (h && g.enabled && getpid() == g.pid)
		announce_maps();
	return h;
}

/* ---- the ring and the hello ---- */

static int ring_create(void)
{
	struct stoke_agent_ring_hdr *r;
	struct stoke_agent_hello hello = { .type = STOKE_AGENT_MSG_HELLO,
					   .version = STOKE_AGENT_VERSION };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &hello, sizeof(hello) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	uint64_t len = stoke_agent_ring_size(g.stack, g.nslots);
	int fd;
	ssize_t n;

	if (!sock_ok())
		return -EBADF;
	fd = (int)syscall(SYS_memfd_create, "stoke-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	r = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED)
		goto fail;
	r->magic = STOKE_AGENT_MAGIC;
	r->version = STOKE_AGENT_VERSION;
	r->nslots = g.nslots;
	r->slot_size = g.slot_size;
	for (uint32_t i = 0; i < g.nslots; i++)
		cell_at(r, i)->seq = i;
	hello.ppid = (uint32_t)getppid();
	prctl(PR_GET_NAME, hello.comm, 0, 0, 0);
	hello.comm[15] = '\0';
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do {
		n = sendmsg(g.sock, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	close(fd);
	if (n != (ssize_t)sizeof(hello)) {
		munmap(r, len);
		return -EPIPE;
	}
	g.ring_len = len;
	atomic_store(&g.ring, r);
	return 0;
fail:
	close(fd);
	return -errno;
}

/* Start sampling in this process: the ring, the maps, this thread. */
static void process_start(void)
{
	g.pid = getpid();
	memset(g.seen, 0, sizeof(g.seen));
	if (ring_create() < 0) {
		atomic_store(&g.sampling, false);
		return;
	}
	atomic_store(&g.sampling, g.installed);
	announce_maps();
	thread_start();
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&g.lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&g.lock);
}

/* The child has no timers (they are not inherited), one thread, and the
 * parent's ring mapped: it gets a ring of its own. */
static void atfork_child(void)
{
	struct stoke_agent_ring_hdr *parents = atomic_load(&g.ring);

	pthread_mutex_init(&g.lock, NULL);
	memset(g.timers, 0, sizeof(g.timers));
	atomic_store(&g.ring, NULL);
	/* the parent's ring is the parent's to fill */
	if (parents)
		munmap(parents, g.ring_len);
	g.ring_len = 0;
	if (g.enabled)
		process_start();
}

/* ---- exec ---- */

/*
 * Before an exec of this process: stop the timers and take any of our
 * signals still pending, since it would survive the exec and meet the
 * default action (death) before the next agent is set up.
 */
static void before_exec(void)
{
	sigset_t set, old;
	struct timespec zero = { 0 };
	int signo = atomic_load(&g.signo);

	if (!g.enabled || getpid() != g.pid)
		return; /* a vfork child: no timers, nothing pending, shared memory */
	pthread_mutex_lock(&g.lock);
	atomic_store(&g.sampling, false);
	timers_delete_all();
	pthread_mutex_unlock(&g.lock);
	if (!g.installed)
		return;
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	while (sigtimedwait(&set, NULL, &zero) == signo)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The exec failed: sample on. */
static void after_exec(void)
{
	int saved = errno;

	if (!g.enabled || getpid() != g.pid || !g.installed)
		return;
	pthread_mutex_lock(&g.lock);
	atomic_store(&g.sampling, true);
	timers_rearm_all(atomic_load(&g.signo));
	pthread_mutex_unlock(&g.lock);
	errno = saved;
}

static bool has_var(char *const envp[], const char *var)
{
	size_t n = strcspn(var, "=") + 1;

	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], var, n))
			return true;
	return false;
}

/* envp with our variables added where the caller left them out. Lives in
 * buf (cap entries); returns envp itself when nothing is missing or there
 * is no room. No allocation: this may run in a vfork child. */
static char *const *with_agent_env(char *const envp[], char **buf, size_t cap)
{
	const char *vars[] = { g.env_preload, g.env_fd, g.env_conf };
	size_t n = 0, k = 0;

	if (!g.enabled)
		return envp;
	while (envp && envp[n])
		n++;
	if (n + 4 > cap)
		return envp;
	for (size_t i = 0; i < 3; i++)
		if (!has_var(envp, vars[i]))
			buf[k++] = (char *)vars[i];
	if (!k)
		return envp;
	/* LD_PRELOAD set to something else by the caller stays theirs. */
	for (size_t i = 0; i < n; i++)
		buf[k++] = envp[i];
	buf[k] = NULL;
	return buf;
}

#define ENV_CAP 1024

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	static int (*real)(const char *, char *const[], char *const[]);
	char *buf[ENV_CAP];
	int r;

	if (!real)
		NEXT(real, "execve");
	before_exec();
	r = real(path, argv, with_agent_env(envp, buf, ENV_CAP));
	after_exec();
	return r;
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	static int (*real)(const char *, char *const[], char *const[]);
	char *buf[ENV_CAP];
	int r;

	if (!real)
		NEXT(real, "execvpe");
	before_exec();
	r = real(file, argv, with_agent_env(envp, buf, ENV_CAP));
	after_exec();
	return r;
}

EXPORT int execv(const char *path, char *const argv[])
{
	static int (*real)(const char *, char *const[]);
	int r;

	if (!real)
		NEXT(real, "execv");
	before_exec();
	r = real(path, argv);
	after_exec();
	return r;
}

EXPORT int execvp(const char *file, char *const argv[])
{
	static int (*real)(const char *, char *const[]);
	int r;

	if (!real)
		NEXT(real, "execvp");
	before_exec();
	r = real(file, argv);
	after_exec();
	return r;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	static int (*real)(int, char *const[], char *const[]);
	char *buf[ENV_CAP];
	int r;

	if (!real)
		NEXT(real, "fexecve");
	before_exec();
	r = real(fd, argv, with_agent_env(envp, buf, ENV_CAP));
	after_exec();
	return r;
}

/* execl, execlp, execle: their arguments gathered into an array (on the
 * stack: no allocation, as in a vfork child). */
#define ARGS_CAP 4096

static int gather(const char *arg0, va_list ap, char **argv, char ***ret_envp, bool want_envp)
{
	size_t n = 0;
	const char *a = arg0;

	while (a) {
		if (n + 1 >= ARGS_CAP) {
			errno = E2BIG;
			return -1;
		}
		argv[n++] = (char *)a;
		a = va_arg(ap, const char *);
	}
	argv[n] = NULL;
	if (want_envp)
		*ret_envp = va_arg(ap, char **);
	return 0;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	char *argv[ARGS_CAP];
	va_list ap;
	int r;

	va_start(ap, arg);
	r = gather(arg, ap, argv, NULL, false);
	va_end(ap);
	return r < 0 ? r : execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	char *argv[ARGS_CAP];
	va_list ap;
	int r;

	va_start(ap, arg);
	r = gather(arg, ap, argv, NULL, false);
	va_end(ap);
	return r < 0 ? r : execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char *argv[ARGS_CAP];
	char **envp = NULL;
	va_list ap;
	int r;

	va_start(ap, arg);
	r = gather(arg, ap, argv, &envp, true);
	va_end(ap);
	return r < 0 ? r : execve(path, argv, envp);
}

/* ---- start ---- */

static bool parse_conf(const char *s)
{
	unsigned freq, clock, stack, slots;
	int signo, n = 0;

	if (!s || sscanf(s, "%u,%u,%u,%u,%d%n", &freq, &clock, &stack, &slots, &signo, &n) != 5 ||
	    s[n])
		return false;
	if (!freq || freq > 100000 || clock > 1 || stack > 65528 || stack % 8 || !slots ||
	    slots > (1u << 16) || (slots & (slots - 1)) || signo < SIGRTMIN || signo > SIGRTMAX)
		return false;
	g.freq = freq;
	g.clock = (int)clock;
	g.stack = stack;
	g.nslots = slots;
	g.slot_size = stoke_agent_slot_size(stack);
	atomic_store(&g.signo, signo);
	return true;
}

__attribute__((constructor)) static void agent_init(void)
{
	const char *fd_s = getenv(STOKE_AGENT_ENV_FD), *conf = getenv(STOKE_AGENT_ENV_CONF);
	const char *preload = getenv("LD_PRELOAD");
	struct stat st;
	char *end;
	long fd;
	int signo;

	resolve_real();
	if (!fd_s || !conf || !real_sigaction)
		return;
	/* "FD:INODE": the inode tells our socket from anything the target
	 * may have put at that number since */
	fd = strtol(fd_s, &end, 10);
	if (*end != ':' || fd < 0 || fd > INT_MAX || !parse_conf(conf))
		return;
	g.sock_ino = strtoull(end + 1, &end, 10);
	if (*end || fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    (uint64_t)st.st_ino != g.sock_ino)
		return;
	g.sock = (int)fd;
	snprintf(g.env_preload, sizeof(g.env_preload), "LD_PRELOAD=%s", preload ? preload : "");
	snprintf(g.env_fd, sizeof(g.env_fd), "%s=%s", STOKE_AGENT_ENV_FD, fd_s);
	snprintf(g.env_conf, sizeof(g.env_conf), "%s=%s", STOKE_AGENT_ENV_CONF, conf);
	if (pthread_key_create(&g.key, thread_end) != 0)
		return;
	/* The configured number, unless something already has a disposition
	 * for it (inherited SIG_IGN, a handler of an earlier preload). */
	signo = atomic_load(&g.signo);
	if (free_signo(signo, 0) != signo)
		signo = free_signo(SIGRTMIN + 1, 0);
	if (signo < 0 || install_handler(signo, &g.found) < 0)
		return;
	atomic_store(&g.signo, signo);
	g.installed = true;
	g.enabled = true;
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	process_start();
}

/* At exit: no more samples. The handler stays (see the top comment). */
__attribute__((destructor)) static void agent_fini(void)
{
	if (!g.enabled || getpid() != g.pid)
		return;
	pthread_mutex_lock(&g.lock);
	atomic_store(&g.sampling, false);
	timers_delete_all();
	pthread_mutex_unlock(&g.lock);
}
