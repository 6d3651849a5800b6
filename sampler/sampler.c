/*
 * The perf_event sampler: event setup per (thread, CPU), one ring buffer per
 * CPU, attach by PID with a rescan of /proc/PID/task until it is stable,
 * launch of a held child with enable_on_exec, and draining of every ring
 * through the record decoder into one callback.
 */
#include "sampler.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "maps.h"
#include "ring.h"
#include "signal/signal_sampler.h"
#include "bpf/bpf_sampler.h"
#include "util.h"

#define STOKE_SAMPLER_DEFAULT_FREQ 999
#define STOKE_SAMPLER_MAX_CPUS 4096
/* Data pages per CPU ring. FP samples are a few hundred bytes; DWARF samples
 * carry the stack copy, so they need far more room between drains. */
#define STOKE_RING_PAGES_FP 128
#define STOKE_RING_PAGES_DWARF 1024
#define STOKE_RING_PAGES_MIN 8

struct cpu_ring {
	int cpu;
	int fd; /* the event that owns the mmap; -1 until the first open */
	void *base;
	size_t map_len;
	struct stoke_ring ring;
};

struct queued {
	uint64_t time;
	uint64_t seq; /* read order: keeps the sort stable */
	size_t off;   /* into the arena */
};

/* Bound on the bytes held for reordering; past it everything is delivered. */
#define STOKE_QUEUE_MAX_BYTES (64u << 20)

/* The processes whose records may reach the callback: the attached and
 * launched ones and every process they fork (seen as FORK records). Open
 * addressing over pids, power-of-two size, 0 is an empty slot. */
struct pid_set {
	uint32_t *slots;
	size_t nslots, count;
};

struct stoke_sampler {
	struct stoke_sampler_opts opts;
	stoke_sampler_cb cb;
	void *userdata;

	struct perf_event_attr attr;
	struct stoke_record_format fmt;
	enum stoke_event event;
	bool fell_back;
	bool kernel_dropped; /* exclude_kernel forced by perf_event_paranoid */
	bool launching;      /* opening events for a held child: enable_on_exec */
	bool threads_only;   /* -t: events on the listed threads, not inherited */
	size_t page_size;
	uint32_t ring_pages;

	struct cpu_ring *rings;
	size_t nrings;
	int *ring_fds; /* owner fds, for polling */

	int *fds; /* every event fd */
	size_t nfds, fds_cap;

	/* Records of one drain round, from every ring, copied here and
	 * delivered in timestamp order (see drain_rings). */
	uint8_t *arena;
	size_t arena_len, arena_cap;
	struct queued *queue;
	size_t nqueue, queue_cap;
	uint64_t seq;
	uint64_t max_time;  /* newest timestamp read so far */
	uint64_t safe_time; /* newest timestamp read before this round */

	struct pid_set targets;

	struct stoke_sampler_stats stats;

	/* The signal sampler, when the backend is (or auto resolved to) it:
	 * every operation below goes to it. */
	struct stoke_signal_sampler *sig;
	/* The BPF sampler, when the backend is BPF (or --off-cpu): every
	 * operation below goes to it. */
	struct stoke_bpf_sampler *bpf;
};

void stoke_sampler_opts_init(struct stoke_sampler_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->event = STOKE_EVENT_CPU_CLOCK;
	opts->freq = STOKE_SAMPLER_DEFAULT_FREQ;
	opts->callgraph = STOKE_CALLGRAPH_FP;
	opts->stack_size = STOKE_DWARF_STACK_DEFAULT;
}

const char *stoke_event_name(enum stoke_event e)
{
	switch (e) {
	case STOKE_EVENT_CPU_CLOCK:
		return "cpu-clock";
	case STOKE_EVENT_TASK_CLOCK:
		return "task-clock";
	case STOKE_EVENT_CYCLES:
		return "cycles";
	case STOKE_EVENT_WALL:
		return "wall";
	}
	return "?";
}

static long perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group,
			    unsigned long flags)
{
	return syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

/* Parse a CPU list such as "0-3,8,10-11" (sysfs "online"). */
static int parse_cpu_list(const char *s, int *cpus, size_t max, size_t *ret_n)
{
	size_t n = 0;

	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s || a < 0)
			return -EINVAL;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s || b < a)
				return -EINVAL;
		}
		for (long c = a; c <= b; c++) {
			if (n == max)
				return -E2BIG;
			cpus[n++] = (int)c;
		}
		s = end;
		if (*s == ',')
			s++;
	}
	*ret_n = n;
	return n ? 0 : -EINVAL;
}

static int online_cpus(int *cpus, size_t max, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL;
	long n;

	if (stoke_read_file("/sys/devices/system/cpu/online", &buf, 4096) >= 0 &&
	    parse_cpu_list(buf, cpus, max, ret_n) == 0)
		return 0;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if ((size_t)n > max)
		n = (long)max;
	for (long i = 0; i < n; i++)
		cpus[i] = (int)i;
	*ret_n = (size_t)n;
	return 0;
}

static void setup_attr(struct stoke_sampler *s)
{
	struct perf_event_attr *a = &s->attr;

	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	if (s->event == STOKE_EVENT_CYCLES) {
		a->type = PERF_TYPE_HARDWARE;
		a->config = PERF_COUNT_HW_CPU_CYCLES;
	} else {
		a->type = PERF_TYPE_SOFTWARE;
		a->config = s->event == STOKE_EVENT_TASK_CLOCK ? PERF_COUNT_SW_TASK_CLOCK
							       : PERF_COUNT_SW_CPU_CLOCK;
	}
	a->freq = 1;
	a->sample_freq = s->opts.freq;
	a->sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
			 PERF_SAMPLE_CPU | PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN;
	if (s->opts.callgraph == STOKE_CALLGRAPH_DWARF) {
		/* x86-64: the full user register set libunwind may ask for
		 * (PERF_REG_X86_AX .. PERF_REG_X86_R15, skipping the segment
		 * registers that do not exist in 64-bit mode). */
		a->sample_type |= PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
		a->sample_regs_user = 0xff0fffULL;
		a->sample_stack_user = s->opts.stack_size;
		/* The user part of the callchain would be a wrong FP walk. */
		a->exclude_callchain_user = 1;
	}
	a->sample_id_all = 1;
	a->mmap = 1;
	a->mmap2 = 1;
	a->comm = 1;
	a->comm_exec = 1;
	a->task = 1;
	a->inherit = !s->threads_only;
	a->disabled = 1;
	a->enable_on_exec = s->launching;
	a->exclude_kernel = s->opts.exclude_kernel || s->kernel_dropped;
	a->exclude_hv = 1;

	s->fmt.sample_type = a->sample_type;
	s->fmt.regs_user_mask = a->sample_regs_user;
	s->fmt.sample_id_all = true;
}

int stoke_sampler_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb,
		      void *userdata, struct stoke_sampler **ret)
{
	int cpus[STOKE_SAMPLER_MAX_CPUS];
	size_t ncpus = 0;
	struct stoke_sampler *s;
	int r;

	if (!cb || !opts->freq || opts->freq > 100000)
		return -EINVAL;
	/* perf has no wall-clock event: -e wall is the signal sampler's */
	if (opts->backend == STOKE_BACKEND_PERF && opts->event == STOKE_EVENT_WALL)
		return -EOPNOTSUPP;
	if (opts->callgraph == STOKE_CALLGRAPH_DWARF &&
	    (opts->stack_size == 0 || opts->stack_size > 65528 || opts->stack_size % 8))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	s->cb = cb;
	s->userdata = userdata;
	s->event = opts->event;
	s->page_size = (size_t)sysconf(_SC_PAGESIZE);
	s->ring_pages = opts->ring_pages;
	if (!s->ring_pages)
		s->ring_pages = opts->callgraph == STOKE_CALLGRAPH_DWARF ? STOKE_RING_PAGES_DWARF
									 : STOKE_RING_PAGES_FP;
	if (s->ring_pages & (s->ring_pages - 1)) {
		free(s);
		return -EINVAL;
	}
	/* A DWARF sample carries its stack copy: a ring that cannot hold a
	 * few of them loses every sample, and the kernel never even gets to
	 * write the LOST record that would tell us. */
	if (opts->callgraph == STOKE_CALLGRAPH_DWARF)
		while ((size_t)s->ring_pages * s->page_size < 4 * ((size_t)opts->stack_size + 2048))
			s->ring_pages *= 2;
	setup_attr(s);

	r = online_cpus(cpus, ARRAY_SIZE(cpus), &ncpus);
	if (r < 0) {
		free(s);
		return r;
	}
	s->rings = calloc(ncpus, sizeof(*s->rings));
	s->ring_fds = calloc(ncpus, sizeof(*s->ring_fds));
	if (!s->rings || !s->ring_fds) {
		stoke_sampler_free(s);
		return -ENOMEM;
	}
	s->nrings = ncpus;
	for (size_t i = 0; i < ncpus; i++) {
		s->rings[i].cpu = cpus[i];
		s->rings[i].fd = -1;
		s->ring_fds[i] = -1;
	}
	if (opts->backend == STOKE_BACKEND_BPF) {
		r = stoke_bpf_new(opts, cb, userdata, &s->bpf);
		if (r < 0) {
			stoke_sampler_free(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

void stoke_sampler_free(struct stoke_sampler *s)
{
	if (!s)
		return;
	stoke_signal_free(s->sig);
	stoke_bpf_free(s->bpf);
	for (size_t i = 0; i < s->nrings; i++) {
		if (s->rings[i].base)
			munmap(s->rings[i].base, s->rings[i].map_len);
		stoke_ring_exit(&s->rings[i].ring);
	}
	for (size_t i = 0; i < s->nfds; i++)
		close(s->fds[i]);
	free(s->fds);
	free(s->arena);
	free(s->queue);
	free(s->rings);
	free(s->ring_fds);
	free(s->targets.slots);
	free(s);
}

static size_t pid_slot(const struct pid_set *set, uint32_t pid)
{
	size_t i = (size_t)stoke_hash_u64(pid) & (set->nslots - 1);

	while (set->slots[i] && set->slots[i] != pid)
		i = (i + 1) & (set->nslots - 1);
	return i;
}

static bool pid_set_has(const struct pid_set *set, uint32_t pid)
{
	return set->nslots && pid && set->slots[pid_slot(set, pid)] == pid;
}

static int pid_set_add(struct pid_set *set, uint32_t pid)
{
	if (!pid || pid_set_has(set, pid))
		return 0;
	if ((set->count + 1) * 2 > set->nslots) {
		struct pid_set grown = { .nslots = set->nslots ? set->nslots * 2 : 64 };

		grown.slots = calloc(grown.nslots, sizeof(*grown.slots));
		if (!grown.slots)
			return -ENOMEM;
		for (size_t i = 0; i < set->nslots; i++)
			if (set->slots[i])
				grown.slots[pid_slot(&grown, set->slots[i])] = set->slots[i];
		grown.count = set->count;
		free(set->slots);
		*set = grown;
	}
	set->slots[pid_slot(set, pid)] = pid;
	set->count++;
	return 0;
}

/* Map the ring for cpu r, halving the size while the mlock limit refuses it
 * (perf_event_mlock_kb bounds unprivileged users). */
static int ring_map(struct stoke_sampler *s, struct cpu_ring *cr, int fd)
{
	uint32_t pages = s->ring_pages;

	for (;;) {
		size_t len = (pages + 1) * s->page_size;
		void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (base != MAP_FAILED) {
			int r = stoke_ring_init(&cr->ring, base, s->page_size,
						pages * s->page_size);
			if (r < 0) {
				munmap(base, len);
				return r;
			}
			cr->base = base;
			cr->map_len = len;
			cr->fd = fd;
			if (pages != s->ring_pages)
				log_debug("ring for cpu %d reduced to %u pages (mlock limit)",
					  cr->cpu, pages);
			s->stats.rings++;
			return 0;
		}
		if (errno != EPERM && errno != ENOMEM)
			return -errno;
		if (pages <= STOKE_RING_PAGES_MIN)
			return -EPERM;
		pages /= 2;
	}
}

static int fds_push(struct stoke_sampler *s, int fd)
{
	if (STOKE_GROW(s->fds, s->fds_cap, s->nfds + 1) < 0)
		return -ENOMEM;
	s->fds[s->nfds++] = fd;
	s->stats.events++;
	return 0;
}

/* Open the event on (pid, cpu) with the configured event, falling back from
 * cycles to cpu-clock where there is no PMU. */
static int open_one(struct stoke_sampler *s, pid_t pid, int cpu)
{
	for (;;) {
		long fd = perf_event_open(&s->attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);

		if (fd >= 0)
			return (int)fd;
		if (s->event == STOKE_EVENT_CYCLES &&
		    (errno == ENOENT || errno == EOPNOTSUPP || errno == ENODEV ||
		     errno == EINVAL)) {
			log_debug("cycles unavailable (%s): falling back to cpu-clock",
				  strerror(errno));
			s->event = STOKE_EVENT_CPU_CLOCK;
			s->fell_back = true;
			setup_attr(s);
			continue;
		}
		/* perf_event_paranoid=2 lets unprivileged users sample user space
		 * only: do that, as perf does, rather than fail. */
		if ((errno == EACCES || errno == EPERM) && !s->attr.exclude_kernel) {
			log_debug("kernel sampling refused: user space only");
			s->kernel_dropped = true;
			setup_attr(s);
			continue;
		}
		return -errno;
	}
}

/* Join events opened for one task (one per ring, in ring order) to their
 * CPU's ring: the first event of a CPU owns its mapping. */
static int commit_task(struct stoke_sampler *s, int *fds)
{
	size_t i;
	int r = 0;

	for (i = 0; i < s->nrings; i++) {
		struct cpu_ring *cr = &s->rings[i];
		int fd = fds[i];

		fds[i] = -1;
		r = fds_push(s, fd);
		if (r < 0) {
			close(fd);
			break;
		}
		if (cr->fd < 0) {
			r = ring_map(s, cr, fd);
			if (r < 0)
				break;
			s->ring_fds[i] = fd;
		} else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, cr->fd) < 0) {
			r = -errno;
			break;
		}
	}
	for (; i < s->nrings; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

/*
 * Open events for one task on every CPU, joining each to that CPU's ring.
 * With procfd (an open /proc/PID of the attached process), the task is
 * checked after its events are open and before they reach a ring: a TID read
 * from /proc/PID/task may have been freed and taken by a thread of another
 * process in between, and perf_event_open(tid) as root would then profile
 * that process. An event binds to the task that had the TID at the open, so
 * /proc/PID/task/TID still resolving after the open (the kernel resolves it
 * only within PID's thread group, and procfd stops resolving anything once
 * PID is gone) proves the events are on PID's thread. Until then they are
 * disabled and have no ring: closing them loses nothing and leaks nothing,
 * and closing an event also ends the copies it inherited into children.
 * Returns 0, -ESRCH (the thread is gone or now belongs to another process:
 * nothing is open), or another -errno.
 */
static int open_task(struct stoke_sampler *s, pid_t tid, int procfd)
{
	int fds[STOKE_SAMPLER_MAX_CPUS], r = 0;
	size_t n;

	for (n = 0; n < s->nrings; n++) {
		fds[n] = open_one(s, tid, s->rings[n].cpu);
		if (fds[n] < 0) {
			r = fds[n];
			break;
		}
	}
	if (r == 0 && procfd >= 0) {
		char name[32];
		struct stat st;

		snprintf(name, sizeof(name), "task/%d", tid);
		if (fstatat(procfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			s->stats.tids_left++;
			r = -ESRCH;
		}
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return r;
	}
	return commit_task(s, fds);
}

static void enable_all(struct stoke_sampler *s, size_t from)
{
	for (size_t i = from; i < s->nfds; i++)
		ioctl(s->fds[i], PERF_EVENT_IOC_ENABLE, 0);
}

void stoke_sampler_disable(struct stoke_sampler *s)
{
	if (s->sig)
		stoke_signal_disable(s->sig);
	if (s->bpf)
		stoke_bpf_disable(s->bpf);
	for (size_t i = 0; i < s->nfds; i++)
		ioctl(s->fds[i], PERF_EVENT_IOC_DISABLE, 0);
}

/* ---- attach ---- */

struct tid_set {
	pid_t *tids;
	size_t n, cap;
};

static bool tid_set_has(const struct tid_set *t, pid_t tid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->tids[i] == tid)
			return true;
	return false;
}

/* One pass over /proc/PID/task (procfd is /proc/PID): open events for every
 * thread not yet seen. Returns the number of new threads, or -errno. A
 * thread that exits between readdir and perf_event_open, or whose TID then
 * belongs to another process (see open_task), is skipped. */
static int attach_scan(struct stoke_sampler *s, int procfd, struct tid_set *seen)
{
	DIR *d;
	struct dirent *de;
	int added = 0, r = 0, fd;

	fd = openat(procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0 || tid_set_has(seen, (pid_t)tid))
			continue;
		if (STOKE_GROW(seen->tids, seen->cap, seen->n + 1) < 0) {
			r = -ENOMEM;
			break;
		}
		seen->tids[seen->n++] = (pid_t)tid;
		r = open_task(s, (pid_t)tid, procfd);
		if (r == -ESRCH) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		added++;
	}
	closedir(d);
	return r < 0 ? r : added;
}

static int synth_comm(struct stoke_sampler *s, pid_t pid, pid_t tid)
{
	char path[96];
	_cleanup_free_ char *comm = NULL;
	struct stoke_record rec = { .type = STOKE_REC_COMM, .raw_type = PERF_RECORD_COMM };
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	n = stoke_read_file(path, &comm, 256);
	if (n < 0)
		return 0; /* the thread is gone: nothing to name */
	while (n > 0 && comm[n - 1] == '\n')
		comm[--n] = '\0';
	rec.comm.pid = (uint32_t)pid;
	rec.comm.tid = (uint32_t)tid;
	rec.comm.comm = comm;
	return s->cb(&rec, s->userdata);
}

struct synth_ctx {
	struct stoke_sampler *s;
	pid_t pid;
};

static int synth_mmap_cb(const struct stoke_maps_entry *e, void *userdata)
{
	struct synth_ctx *ctx = userdata;
	struct stoke_record rec;

	/* Like the kernel's PERF_RECORD_MMAP2 without mmap_data: executable
	 * mappings only, which is all that code addresses can fall in. */
	if (!(e->prot & PROT_EXEC))
		return 0;
	stoke_maps_entry_to_record(e, (uint32_t)ctx->pid, &rec);
	ctx->s->stats.records++;
	return ctx->s->cb(&rec, ctx->s->userdata);
}

/* The children of thread tid of the process at procfd become targets: one
 * forked before the events were enabled inherited them without a FORK
 * record. (A child from before the attach has no events: harmless.) */
static int add_children(struct stoke_sampler *s, int procfd, long tid)
{
	char name[64], buf[4096], *p, *end;
	ssize_t n;
	int fd, r = 0;

	snprintf(name, sizeof(name), "task/%ld/children", tid);
	fd = openat(procfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* no CONFIG_PROC_CHILDREN, or the thread is gone */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (p = buf; r == 0; p = end) {
		long child = strtol(p, &end, 10);

		if (end == p || child <= 0)
			break;
		r = pid_set_add(&s->targets, (uint32_t)child);
	}
	return r;
}

/* A thread born after the last pass and before the events were enabled
 * inherited them disabled, and the kernel sends no FORK or COMM for what a
 * disabled event sees: name such threads now, from /proc (they belong to the
 * process: they are listed in its task directory), and make the processes
 * forked in that window targets. Returns 0 or -errno. */
static int name_unseen(struct stoke_sampler *s, int procfd, pid_t pid, const struct tid_set *seen)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = openat(procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone: nothing to name */
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	while (r >= 0 && (de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0)
			continue;
		r = add_children(s, procfd, tid);
		if (r == 0 && !tid_set_has(seen, (pid_t)tid))
			r = synth_comm(s, pid, (pid_t)tid);
	}
	closedir(d);
	return r < 0 ? r : 0;
}

int stoke_sampler_attach(struct stoke_sampler *s, pid_t pid)
{
	struct tid_set seen = { 0 };
	struct synth_ctx ctx = { s, pid };
	size_t first_fd = s->nfds;
	uint32_t tids_left = s->stats.tids_left;
	char path[64];
	int r, rounds = 0, procfd;

	/* pid -1: every process (the BPF sampler only). */
	if (s->bpf)
		return stoke_bpf_attach(s->bpf, pid);
	if (pid <= 0)
		return -ESRCH;
	/* An agent cannot be put into a running process. */
	if (s->opts.backend == STOKE_BACKEND_SIGNAL || s->opts.event == STOKE_EVENT_WALL)
		return -EOPNOTSUPP;
	/* Every thread is checked through this one directory: it stands for
	 * this process only, even if pid is reused later (see open_task). */
	snprintf(path, sizeof(path), "/proc/%d", pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = pid_set_add(&s->targets, (uint32_t)pid);
	if (r < 0)
		goto out;
	/* Threads born during a pass are either inherited from a thread we
	 * already opened, or found by the next pass: repeat until one finds
	 * nothing new. */
	do {
		r = attach_scan(s, procfd, &seen);
		if (r < 0)
			goto out;
	} while (r > 0 && ++rounds < 1000);
	if (s->stats.tids_left != tids_left)
		log_info("pid %d: %u threads left the process during the attach (their TIDs "
			 "may belong to other processes now): not profiled",
			 pid, s->stats.tids_left - tids_left);
	if (seen.n == 0 || s->nfds == first_fd) {
		r = -ESRCH;
		goto out;
	}
	s->stats.threads_attached += (uint32_t)seen.n;

	/* Synthesize after the events are open, so a mapping made in between
	 * is reported twice rather than never. */
	for (size_t i = 0; i < seen.n; i++) {
		r = synth_comm(s, pid, seen.tids[i]);
		if (r < 0)
			goto out;
	}
	r = stoke_maps_read_pid(pid, synth_mmap_cb, &ctx);
	if (r < 0 && r != -ESRCH && r != -ENOENT)
		goto out;
	enable_all(s, first_fd);
	r = name_unseen(s, procfd, pid, &seen);
out:
	close(procfd);
	free(seen.tids);
	return r;
}

/*
 * perf's -t: events on the listed threads of process pid only, not
 * inherited, so neither the process's other threads nor threads born later
 * cost an event or take a sample. The process is still the target (its
 * mappings name the samples). Each TID gets open_task's check after the open:
 * a TID that is not (or no longer) pid's thread fails the whole attach with
 * -ESRCH, and nothing of another process is ever sampled.
 */
int stoke_sampler_attach_threads(struct stoke_sampler *s, pid_t pid, const pid_t *tids, size_t n)
{
	struct synth_ctx ctx = { s, pid };
	size_t first_fd = s->nfds;
	char path[64];
	int r = 0, procfd;

	if (s->bpf || s->opts.backend == STOKE_BACKEND_SIGNAL ||
	    s->opts.event == STOKE_EVENT_WALL)
		return -EOPNOTSUPP;
	if (pid <= 0 || n == 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	s->threads_only = true;
	setup_attr(s);
	r = pid_set_add(&s->targets, (uint32_t)pid);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = open_task(s, tids[i], procfd);
	if (r < 0)
		goto out;
	s->stats.threads_attached += (uint32_t)n;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = synth_comm(s, pid, tids[i]);
	if (r < 0)
		goto out;
	r = stoke_maps_read_pid(pid, synth_mmap_cb, &ctx);
	if (r < 0 && r != -ESRCH && r != -ENOENT)
		goto out;
	r = 0;
	enable_all(s, first_fd);
out:
	close(procfd);
	return r;
}

/* ---- launch ---- */

static void child_exec(int go_fd, int err_fd, char *const argv[])
{
	sigset_t all;
	char c;
	int err;

	/* The parent may block signals for its signalfd; the target must start
	 * with a clean mask and default dispositions. */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	/* Held here until the parent has opened the events (or gave up). */
	if (read(go_fd, &c, 1) != 1)
		_exit(127);
	execvp(argv[0], argv);
	err = errno;
	if (write(err_fd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

int stoke_sampler_perf_probe(void)
{
	struct perf_event_attr a = { .size = sizeof(a),
				     .type = PERF_TYPE_SOFTWARE,
				     .config = PERF_COUNT_SW_CPU_CLOCK,
				     .disabled = 1,
				     .exclude_kernel = 1,
				     .exclude_hv = 1 };
	long fd = perf_event_open(&a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);

	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

/*
 * Whether this launch goes to the signal sampler: asked for, or auto where
 * perf_event_open is refused (or the event is wall-clock time, which only
 * the signal sampler has). Sets up s->sig then. Returns 1, 0 or -errno.
 */
static int launch_backend(struct stoke_sampler *s)
{
	struct stoke_sampler_opts o = s->opts;
	int r;

	if (s->sig)
		return 1;
	if (o.backend == STOKE_BACKEND_PERF)
		return 0;
	if (o.backend == STOKE_BACKEND_AUTO && o.event != STOKE_EVENT_WALL) {
		r = stoke_sampler_perf_probe();
		if (r == 0)
			return 0;
		log_warn("perf_event_open is not allowed here (%s): sampling with signals "
			 "instead (--sampler signal: user space only)",
			 strerror(-r));
	}
	/* The thread CPU-time timer stands in for cycles where there is no
	 * perf_event, as cpu-clock does where there is no PMU. */
	if (o.event == STOKE_EVENT_CYCLES) {
		o.event = STOKE_EVENT_CPU_CLOCK;
		s->event = STOKE_EVENT_CPU_CLOCK;
		s->fell_back = true;
	}
	r = stoke_signal_new(&o, s->cb, s->userdata, &s->sig);
	return r < 0 ? r : 1;
}

enum stoke_sampler_backend stoke_sampler_backend(const struct stoke_sampler *s)
{
	if (s->bpf)
		return STOKE_BACKEND_BPF;
	return s->sig ? STOKE_BACKEND_SIGNAL : STOKE_BACKEND_PERF;
}

int stoke_sampler_launch(struct stoke_sampler *s, char *const argv[], pid_t *ret_pid)
{
	int go[2], errp[2], err = 0, r;
	size_t first_fd = s->nfds;
	pid_t pid;
	ssize_t n;

	if (!argv || !argv[0])
		return -EINVAL;
	if (s->bpf)
		return -EOPNOTSUPP; /* system-wide or by PID only, for now */
	r = launch_backend(s);
	if (r < 0)
		return r;
	if (r > 0)
		return stoke_signal_launch(s->sig, argv, ret_pid);
	if (pipe2(go, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(errp, O_CLOEXEC) < 0) {
		r = -errno;
		close(go[0]);
		close(go[1]);
		return r;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out_pipes;
	}
	if (pid == 0) {
		close(go[1]);
		close(errp[0]);
		child_exec(go[0], errp[1], argv);
	}
	close(go[0]);
	close(errp[1]);
	go[0] = errp[1] = -1;

	/* enable_on_exec: counting starts at the exec, so the held child and
	 * our fork are never sampled. */
	s->launching = true;
	setup_attr(s);
	r = pid_set_add(&s->targets, (uint32_t)pid);
	if (r == 0)
		r = open_task(s, pid, -1);
	s->launching = false;
	setup_attr(s);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out_pipes;
	}
	if (write(go[1], "g", 1) != 1) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out_pipes;
	}
	/* EOF means the exec succeeded (the pipe is O_CLOEXEC); an int means it
	 * failed with that errno. */
	do {
		n = read(errp[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		r = -err;
		goto out_pipes;
	}
	(void)first_fd;
	*ret_pid = pid;
	r = 0;
out_pipes:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return r;
}

/* ---- reading ----
 *
 * Each CPU's ring is in time order, but the rings are not ordered with
 * respect to each other: a thread's FORK may sit in CPU 0's ring while its
 * parent's exec COMM and MMAPs sit in CPU 1's. Records are therefore copied
 * out of every ring, sorted by timestamp and delivered in that order.
 *
 * Which records are safe to deliver (perf's "finished round"): a record read
 * in a later round was written after this round's snapshot of its ring, and
 * so after every record read in an earlier round; only a record stamped
 * before the previous rounds ended can still be missing. So each round
 * delivers the records stamped at or before the newest timestamp seen in the
 * earlier rounds and keeps the rest for the next round. A flush delivers all.
 */

static uint64_t record_time(const struct stoke_record *rec)
{
	if (rec->type == STOKE_REC_SAMPLE)
		return rec->sample.time;
	return rec->id.has_time ? rec->id.time : 0;
}

/*
 * Whether rec belongs to a target process; a FORK from one makes its child a
 * target. Nothing of another process may reach the profile: an event that
 * was opened on a TID another process had taken (see open_task) wrote into
 * the shared ring before it was closed, or its inherited copies did.
 */
static int target_record(struct stoke_sampler *s, const struct stoke_record *rec)
{
	switch (rec->type) {
	case STOKE_REC_SAMPLE:
		return pid_set_has(&s->targets, rec->sample.pid);
	case STOKE_REC_MMAP:
		return pid_set_has(&s->targets, rec->mmap.pid);
	case STOKE_REC_COMM:
		return pid_set_has(&s->targets, rec->comm.pid);
	case STOKE_REC_EXIT:
		return pid_set_has(&s->targets, rec->task.pid);
	case STOKE_REC_FORK:
		if (!pid_set_has(&s->targets, rec->task.ppid))
			return 0;
		return pid_set_add(&s->targets, rec->task.pid) < 0 ? -ENOMEM : 1;
	default:
		return 1;
	}
}

static int deliver(struct stoke_sampler *s, const void *buf, size_t len)
{
	struct stoke_record rec;
	int r;

	if (stoke_record_decode(&s->fmt, buf, len, &rec) < 0) {
		s->stats.malformed++;
		return 0;
	}
	r = target_record(s, &rec);
	if (r <= 0) {
		if (r == 0 && rec.type == STOKE_REC_SAMPLE && !s->stats.foreign++)
			log_warn("dropping samples of pid %u, which is not a target process",
				 rec.sample.pid);
		return r;
	}
	s->stats.records++;
	switch (rec.type) {
	case STOKE_REC_SAMPLE:
		s->stats.samples++;
		break;
	case STOKE_REC_LOST:
		s->stats.lost += rec.lost.lost;
		break;
	case STOKE_REC_THROTTLE:
		s->stats.throttled++;
		break;
	default:
		break;
	}
	return s->cb(&rec, s->userdata);
}

/* Copy one record into the arena and queue it. */
static int enqueue(struct stoke_sampler *s, const struct perf_event_header *h)
{
	struct stoke_record rec;
	struct queued *q;

	if (stoke_record_decode(&s->fmt, h, h->size, &rec) < 0) {
		s->stats.malformed++;
		return 0;
	}
	if (STOKE_GROW(s->arena, s->arena_cap, s->arena_len + h->size) < 0 ||
	    STOKE_GROW(s->queue, s->queue_cap, s->nqueue + 1) < 0)
		return -ENOMEM;
	q = &s->queue[s->nqueue++];
	q->time = record_time(&rec);
	q->seq = s->seq++;
	q->off = s->arena_len;
	/* Record sizes are multiples of 8 and the arena is malloc-aligned, so
	 * the decoder's borrowed u64 arrays stay aligned. */
	memcpy(s->arena + s->arena_len, h, h->size);
	s->arena_len += h->size;
	if (q->time > s->max_time)
		s->max_time = q->time;
	return 0;
}

static int read_ring(struct stoke_sampler *s, struct cpu_ring *cr)
{
	const struct perf_event_header *h;
	int r = 0;

	if (!cr->base || stoke_ring_read_init(&cr->ring) < 0)
		return 0;
	while (stoke_ring_read_event(&cr->ring, &h) == 0) {
		r = enqueue(s, h);
		stoke_ring_consume(&cr->ring);
		if (r < 0)
			break;
	}
	stoke_ring_read_done(&cr->ring);
	return r;
}

static int queued_cmp(const void *a, const void *b)
{
	const struct queued *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Deliver queued records stamped at or before limit, in order, and keep
 * the rest (compacting the arena). Returns the number delivered. */
static int queued_off_cmp(const void *a, const void *b)
{
	const struct queued *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static int deliver_queued(struct stoke_sampler *s, uint64_t limit)
{
	size_t i, keep_bytes = 0, n;
	int r = 0;

	if (!s->nqueue)
		return 0;
	qsort(s->queue, s->nqueue, sizeof(*s->queue), queued_cmp);
	for (i = 0; i < s->nqueue && s->queue[i].time <= limit; i++) {
		const struct perf_event_header *h = (const void *)(s->arena + s->queue[i].off);

		r = deliver(s, h, h->size);
		if (r < 0) {
			i++;
			break;
		}
	}
	n = i;
	/* Keep the rest: move their entries to the front of the queue and
	 * their bytes to the front of the arena. Taken in arena order, every
	 * record moves down onto bytes that are free or its own, so memmove in
	 * place is safe and nothing can fail half-way (a failure here would
	 * deliver the records above twice). */
	memmove(s->queue, s->queue + n, (s->nqueue - n) * sizeof(*s->queue));
	s->nqueue -= n;
	qsort(s->queue, s->nqueue, sizeof(*s->queue), queued_off_cmp);
	for (size_t j = 0; j < s->nqueue; j++) {
		const struct perf_event_header *h = (const void *)(s->arena + s->queue[j].off);
		size_t size = h->size;

		memmove(s->arena + keep_bytes, h, size);
		s->queue[j].off = keep_bytes;
		keep_bytes += size;
	}
	qsort(s->queue, s->nqueue, sizeof(*s->queue), queued_cmp);
	s->arena_len = keep_bytes;
	return r < 0 ? r : (int)n;
}

static int drain_rings(struct stoke_sampler *s, bool flush)
{
	uint64_t limit;
	int r;

	for (size_t i = 0; i < s->nrings; i++) {
		r = read_ring(s, &s->rings[i]);
		if (r < 0)
			return r;
	}
	limit = s->safe_time;
	if (flush || s->arena_len > STOKE_QUEUE_MAX_BYTES)
		limit = UINT64_MAX;
	r = deliver_queued(s, limit);
	s->safe_time = s->max_time;
	return r;
}

int stoke_sampler_drain(struct stoke_sampler *s)
{
	if (s->sig)
		return stoke_signal_drain(s->sig, false);
	if (s->bpf)
		return stoke_bpf_drain(s->bpf, false);
	return drain_rings(s, false);
}

int stoke_sampler_flush(struct stoke_sampler *s)
{
	if (s->sig)
		return stoke_signal_drain(s->sig, true);
	if (s->bpf)
		return stoke_bpf_drain(s->bpf, true);
	return drain_rings(s, true);
}

int stoke_sampler_pollfds(const struct stoke_sampler *s, const int **ret)
{
	if (s->sig)
		return stoke_signal_pollfds(s->sig, ret);
	if (s->bpf)
		return stoke_bpf_pollfds(s->bpf, ret);
	*ret = s->ring_fds;
	return (int)s->nrings;
}

enum stoke_event stoke_sampler_event(const struct stoke_sampler *s)
{
	return s->event;
}

bool stoke_sampler_fell_back(const struct stoke_sampler *s)
{
	return s->fell_back;
}

bool stoke_sampler_kernel_dropped(const struct stoke_sampler *s)
{
	return s->kernel_dropped;
}

void stoke_sampler_get_stats(const struct stoke_sampler *s, struct stoke_sampler_stats *ret)
{
	if (s->sig) {
		stoke_signal_get_stats(s->sig, ret);
		return;
	}
	if (s->bpf) {
		stoke_bpf_get_stats(s->bpf, ret);
		return;
	}
	*ret = s->stats;
	for (size_t i = 0; i < s->nrings; i++)
		ret->malformed += s->rings[i].ring.malformed;
}

const struct stoke_record_format *stoke_sampler_format(const struct stoke_sampler *s)
{
	return &s->fmt;
}

const char *stoke_sampler_strerror(int err)
{
	const char *bpf_msg = stoke_bpf_strerror(err);

	if (bpf_msg)
		return bpf_msg;
	switch (err) {
	case -ESRCH:
		return "no such process";
	case -EACCES:
	case -EPERM: {
		static char buf[512];
		_cleanup_free_ char *p = NULL, *status = NULL;
		const char *seccomp;
		int level = 2;

		/* Not every refusal is perf_event_paranoid's: root is above
		 * it, and a seccomp filter (a container's default profile)
		 * or a security module refuses perf_event_open to anyone. */
		if (stoke_read_file("/proc/self/status", &status, 1 << 16) > 0 &&
		    (seccomp = strstr(status, "\nSeccomp:")) && atoi(seccomp + 9) == 2) {
			snprintf(buf, sizeof(buf),
				 "perf_event_open is denied: stoke runs under a seccomp filter "
				 "(a container or sandbox). A command stoke launches can be "
				 "profiled with --sampler signal; attaching to a running process "
				 "needs perf_event (or BPF)");
			return buf;
		}
		if (geteuid() == 0) {
			snprintf(buf, sizeof(buf),
				 "perf_event_open is denied even to root (a security module: "
				 "SELinux, AppArmor, lockdown). A command stoke launches can be "
				 "profiled with --sampler signal; attaching to a running process "
				 "needs perf_event (or BPF)");
			return buf;
		}
		if (stoke_read_file("/proc/sys/kernel/perf_event_paranoid", &p, 64) > 0)
			level = atoi(p);
		snprintf(buf, sizeof(buf),
			 "permission denied (kernel.perf_event_paranoid=%d): run as root or "
			 "with CAP_PERFMON, or lower the setting with "
			 "'sysctl kernel.perf_event_paranoid=1'; another user's process "
			 "also needs CAP_SYS_PTRACE; a command stoke launches can be "
			 "profiled with --sampler signal",
			 level);
		return buf;
	}
	case -EMFILE:
	case -ENFILE:
		return "too many open files: raise the limit with 'ulimit -n'";
	case -ENOENT:
	case -EOPNOTSUPP:
		return "the event is not supported on this machine";
	case -E2BIG:
		return "too many CPUs";
	default:
		return strerror(-err);
	}
}

int stoke_callgraph_parse(const char *s, enum stoke_callgraph *ret_mode, uint32_t *ret_stack_size)
{
	char *end;
	unsigned long v;

	if (strcmp(s, "fp") == 0) {
		*ret_mode = STOKE_CALLGRAPH_FP;
		*ret_stack_size = STOKE_DWARF_STACK_DEFAULT;
		return 0;
	}
	if (strcmp(s, "auto") == 0 || strcmp(s, "dwarf") == 0) {
		*ret_mode = STOKE_CALLGRAPH_DWARF;
		*ret_stack_size = STOKE_DWARF_STACK_DEFAULT;
		return 0;
	}
	if (strncmp(s, "dwarf,", 6) != 0 || s[6] < '0' || s[6] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s + 6, &end, 10);
	if (errno || *end || v == 0 || v > 65528 || v % 8)
		return -EINVAL;
	*ret_mode = STOKE_CALLGRAPH_DWARF;
	*ret_stack_size = (uint32_t)v;
	return 0;
}

const char *stoke_callgraph_format(enum stoke_callgraph mode, uint32_t stack_size, char *buf,
				   size_t size)
{
	if (mode == STOKE_CALLGRAPH_FP)
		snprintf(buf, size, "fp");
	else if (stack_size == STOKE_DWARF_STACK_DEFAULT)
		snprintf(buf, size, "dwarf");
	else
		snprintf(buf, size, "dwarf,%u", stack_size);
	return buf;
}
