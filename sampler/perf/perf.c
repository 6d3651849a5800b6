/*
 * The perf_event backend (sampler/backend.h): event setup per (thread, CPU),
 * one ring buffer per CPU, attach by PID with a rescan of /proc/PID/task
 * until it is stable, launch of a held child with enable_on_exec, and
 * draining of every ring through the record decoder, in time order
 * (sampler/perf/reorder.h), into neutral records (convert.c).
 */
#include "sampler/perf/perf.h"

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
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/u64set.h"
#include "common/util.h"
#include "sampler/backend.h"
#include "sampler/maps.h"
#include "sampler/perf/record.h"
#include "sampler/perf/reorder.h"
#include "sampler/perf/ring.h"
#include "sampler/perf/spans.h"

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

/* Bound on the bytes held for reordering; past it everything is delivered. */
#define STOKE_QUEUE_MAX_BYTES (64u << 20)

struct stoke_perf_sampler {
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

	/* Records of one drain round, from every ring, copied and delivered
	 * in timestamp order. */
	struct stoke_reorder reorder;

	/* The processes whose records may reach the callback: the attached and
	 * launched ones and every process they fork (seen as FORK records). */
	struct stoke_u64set targets;

	/* The span probes of the targets' modules (NULL: --no-spans). */
	struct stoke_perf_spans *spans;

	struct stoke_sampler_stats stats;
};

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

static void setup_attr(struct stoke_perf_sampler *s)
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
		a->sample_regs_user = STOKE_PERF_REGS_MASK;
		a->sample_stack_user = s->opts.stack_size;
		/* The user part of the callchain would be a wrong FP walk. */
		a->exclude_callchain_user = 1;
	}
	a->sample_id_all = 1;
	/* Sample times in CLOCK_MONOTONIC, as sampler/sample.h promises (the
	 * default is the kernel's sched_clock, ~4.5 ms apart here): the span
	 * events, the Python frame reader's BPF events and the resource
	 * timeline are read against that clock. */
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
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

int stoke_perf_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb,
		      void *userdata, struct stoke_perf_sampler **ret)
{
	int cpus[STOKE_SAMPLER_MAX_CPUS];
	size_t ncpus = 0;
	struct stoke_perf_sampler *s;
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
	stoke_reorder_init(&s->reorder, STOKE_QUEUE_MAX_BYTES);
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
		stoke_perf_free(s);
		return -ENOMEM;
	}
	s->nrings = ncpus;
	for (size_t i = 0; i < ncpus; i++) {
		s->rings[i].cpu = cpus[i];
		s->rings[i].fd = -1;
		s->ring_fds[i] = -1;
	}
	if (!opts->no_spans) {
		r = stoke_perf_spans_new(cpus, ncpus, s->page_size, &s->spans);
		if (r < 0) {
			stoke_perf_free(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

void stoke_perf_free(struct stoke_perf_sampler *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nrings; i++) {
		if (s->rings[i].base)
			munmap(s->rings[i].base, s->rings[i].map_len);
		stoke_ring_exit(&s->rings[i].ring);
	}
	for (size_t i = 0; i < s->nfds; i++)
		close(s->fds[i]);
	free(s->fds);
	stoke_perf_spans_free(s->spans);
	stoke_reorder_exit(&s->reorder);
	free(s->rings);
	free(s->ring_fds);
	stoke_u64set_clear(&s->targets);
	free(s);
}

/* Map the ring for cpu r, halving the size while the mlock limit refuses it
 * (perf_event_mlock_kb bounds unprivileged users). */
static int ring_map(struct stoke_perf_sampler *s, struct cpu_ring *cr, int fd)
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

static int fds_push(struct stoke_perf_sampler *s, int fd)
{
	if (STOKE_GROW(s->fds, s->fds_cap, s->nfds + 1) < 0)
		return -ENOMEM;
	s->fds[s->nfds++] = fd;
	s->stats.events++;
	return 0;
}

/* Open the event on (pid, cpu) with the configured event, falling back from
 * cycles to cpu-clock where there is no PMU. */
static int open_one(struct stoke_perf_sampler *s, pid_t pid, int cpu)
{
	for (;;) {
		long fd = perf_event_open(&s->attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);

		/* threads and children that inherit the event inherit the
		 * program too; where it cannot attach, samples go without */
		if (fd >= 0 && s->opts.overflow_prog_fd > 0 &&
		    ioctl((int)fd, PERF_EVENT_IOC_SET_BPF, s->opts.overflow_prog_fd) < 0)
			log_debug("perf: no BPF program on the event: %s", strerror(errno));
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
static int commit_task(struct stoke_perf_sampler *s, int *fds)
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
static int open_task(struct stoke_perf_sampler *s, pid_t tid, int procfd)
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

static void enable_all(struct stoke_perf_sampler *s, size_t from)
{
	for (size_t i = from; i < s->nfds; i++)
		ioctl(s->fds[i], PERF_EVENT_IOC_ENABLE, 0);
}

void stoke_perf_disable(struct stoke_perf_sampler *s)
{
	for (size_t i = 0; i < s->nfds; i++)
		ioctl(s->fds[i], PERF_EVENT_IOC_DISABLE, 0);
	stoke_perf_spans_disable(s->spans);
}

/* Enable the span probes of a module a target maps (an executable mapping
 * of a file): path as the target sees it, through /proc/PID/root. A module
 * mapped after the start has its probes from the drain that reads its MMAP
 * on: hits before that are not seen. Failure only costs the spans. */
static void spans_add_module(struct stoke_perf_sampler *s, uint32_t pid, const char *filename)
{
	char path[4096 + 64];
	int r;

	if (!s->spans || !filename || filename[0] != '/')
		return;
	snprintf(path, sizeof(path), "/proc/%u/root%s", pid, filename);
	r = stoke_perf_spans_add_file(s->spans, path, (pid_t)pid);
	if (r > 0)
		s->stats.span_probes += (uint32_t)r;
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
static int attach_scan(struct stoke_perf_sampler *s, int procfd, struct tid_set *seen)
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

static int synth_comm(struct stoke_perf_sampler *s, pid_t pid, pid_t tid)
{
	char path[96];
	_cleanup_free_ char *comm = NULL;
	struct stoke_record rec = { .type = STOKE_REC_COMM };
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
	struct stoke_perf_sampler *s;
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
	if (rec.type == STOKE_REC_MMAP && !rec.mmap.kernel)
		spans_add_module(ctx->s, (uint32_t)ctx->pid, rec.mmap.filename);
	ctx->s->stats.records++;
	return ctx->s->cb(&rec, ctx->s->userdata);
}

/* The children of thread tid of the process at procfd become targets: one
 * forked before the events were enabled inherited them without a FORK
 * record. (A child from before the attach has no events: harmless.) */
static int add_children(struct stoke_perf_sampler *s, int procfd, long tid)
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
		r = stoke_u64set_add(&s->targets, (uint32_t)child);
	}
	return r;
}

/* A thread born after the last pass and before the events were enabled
 * inherited them disabled, and the kernel sends no FORK or COMM for what a
 * disabled event sees: name such threads now, from /proc (they belong to the
 * process: they are listed in its task directory), and make the processes
 * forked in that window targets. Returns 0 or -errno. */
static int name_unseen(struct stoke_perf_sampler *s, int procfd, pid_t pid,
		       const struct tid_set *seen)
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

int stoke_perf_attach(struct stoke_perf_sampler *s, pid_t pid)
{
	struct tid_set seen = { 0 };
	struct synth_ctx ctx = { s, pid };
	size_t first_fd = s->nfds;
	uint32_t tids_left = s->stats.tids_left;
	char path[64];
	int r, rounds = 0, procfd;

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
	r = stoke_u64set_add(&s->targets, (uint32_t)pid);
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
	/* Its threads get the span probes known so far (of another target's
	 * files); its own modules' come with the mappings below. */
	if (s->spans)
		stoke_perf_spans_add_target(s->spans, pid);

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
int stoke_perf_attach_threads(struct stoke_perf_sampler *s, pid_t pid, const pid_t *tids,
			      size_t n)
{
	struct synth_ctx ctx = { s, pid };
	size_t first_fd = s->nfds;
	char path[64];
	int r = 0, procfd;

	if (s->opts.backend == STOKE_BACKEND_SIGNAL || s->opts.event == STOKE_EVENT_WALL)
		return -EOPNOTSUPP;
	if (pid <= 0 || n == 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	s->threads_only = true;
	setup_attr(s);
	r = stoke_u64set_add(&s->targets, (uint32_t)pid);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = open_task(s, tids[i], procfd);
	if (r < 0)
		goto out;
	s->stats.threads_attached += (uint32_t)n;
	if (s->spans)
		stoke_perf_spans_add_target(s->spans, pid);
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

/* Undo the events opened since first_fd (a launch that failed): close them
 * and unmap the rings they own, so a failed exec leaves nothing of the
 * child open. */
static void close_since(struct stoke_perf_sampler *s, size_t first_fd)
{
	for (size_t i = 0; i < s->nrings; i++) {
		struct cpu_ring *cr = &s->rings[i];
		bool ours = false;

		for (size_t j = first_fd; j < s->nfds && cr->fd >= 0; j++)
			ours |= s->fds[j] == cr->fd;
		if (!ours)
			continue;
		munmap(cr->base, cr->map_len);
		stoke_ring_exit(&cr->ring);
		cr->base = NULL;
		cr->map_len = 0;
		cr->fd = -1;
		s->ring_fds[i] = -1;
		s->stats.rings--;
	}
	for (size_t j = first_fd; j < s->nfds; j++) {
		close(s->fds[j]);
		s->stats.events--;
	}
	s->nfds = first_fd;
}

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

int stoke_perf_open_cpu_clock(int cpu, unsigned freq, bool exclude_kernel)
{
	struct perf_event_attr a = {
		.size = sizeof(a),
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.freq = 1,
		.sample_freq = freq,
		.exclude_kernel = exclude_kernel,
	};
	long fd = perf_event_open(&a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);

	return fd < 0 ? -errno : (int)fd;
}

void stoke_perf_disable_fd(int fd)
{
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
}

int stoke_perf_probe(void)
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

/* The file execvp will run for name (malloc'ed), or NULL. */
static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(name, '/'))
		return strdup(name);
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name) <
				 sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return strdup(buf);
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

int stoke_perf_launch(struct stoke_perf_sampler *s, char *const argv[], pid_t *ret_pid)
{
	int go[2], errp[2], err = 0, r;
	size_t first_fd = s->nfds;
	pid_t pid;
	ssize_t n;

	if (!argv || !argv[0])
		return -EINVAL;
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

	/* The command's own span probes, before it runs (its libraries' come
	 * with their MMAP records). */
	if (s->spans) {
		_cleanup_free_ char *exe = find_in_path(argv[0]);

		stoke_perf_spans_add_target(s->spans, pid);
		if (exe && (r = stoke_perf_spans_add_file(s->spans, exe, pid)) > 0)
			s->stats.span_probes += (uint32_t)r;
	}
	/* enable_on_exec: counting starts at the exec, so the held child and
	 * our fork are never sampled. */
	s->launching = true;
	setup_attr(s);
	r = stoke_u64set_add(&s->targets, (uint32_t)pid);
	if (r == 0)
		r = open_task(s, pid, -1);
	s->launching = false;
	setup_attr(s);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close_since(s, first_fd);
		goto out_pipes;
	}
	if (write(go[1], "g", 1) != 1) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close_since(s, first_fd);
		goto out_pipes;
	}
	/* EOF means the exec succeeded (the pipe is O_CLOEXEC); an int means it
	 * failed with that errno. */
	do {
		n = read(errp[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		close_since(s, first_fd);
		r = -err;
		goto out_pipes;
	}
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
 * out of every ring and delivered in timestamp order by the reordering
 * module (sampler/perf/reorder.h, which says which records are safe to
 * deliver in each round).
 */

static uint64_t record_time(const struct stoke_perf_record *rec)
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
static int target_record(struct stoke_perf_sampler *s, const struct stoke_perf_record *rec)
{
	switch (rec->type) {
	case STOKE_REC_SAMPLE:
		return stoke_u64set_has(&s->targets, rec->sample.pid);
	case STOKE_REC_MMAP:
		return stoke_u64set_has(&s->targets, rec->mmap.pid);
	case STOKE_REC_COMM:
		return stoke_u64set_has(&s->targets, rec->comm.pid);
	case STOKE_REC_EXIT:
		return stoke_u64set_has(&s->targets, rec->task.pid);
	case STOKE_REC_FORK:
		if (!stoke_u64set_has(&s->targets, rec->task.ppid))
			return 0;
		return stoke_u64set_add(&s->targets, rec->task.pid) < 0 ? -ENOMEM : 1;
	default:
		return 1;
	}
}

static int deliver(struct stoke_perf_sampler *s, const void *buf, size_t len)
{
	struct stoke_perf_record rec;
	struct stoke_record out;
	int r;

	if (stoke_perf_spans_blob(buf, len, &out)) {
		if (!stoke_u64set_has(&s->targets, out.span.pid))
			return 0; /* not a target (a TID reused, see open_task) */
		s->stats.span_events++;
		return s->cb(&out, s->userdata);
	}
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
	stoke_perf_record_convert(&rec, s->fmt.regs_user_mask, &out);
	/* (the events report executable mappings only: no mmap_data) */
	if (out.type == STOKE_REC_MMAP && !out.mmap.kernel)
		spans_add_module(s, out.mmap.pid, out.mmap.filename);
	return s->cb(&out, s->userdata);
}

/* Keep one record for this round's reordering. */
static int enqueue(struct stoke_perf_sampler *s, const struct perf_event_header *h)
{
	struct stoke_perf_record rec;

	if (stoke_record_decode(&s->fmt, h, h->size, &rec) < 0) {
		s->stats.malformed++;
		return 0;
	}
	return stoke_reorder_push(&s->reorder, record_time(&rec), h, h->size);
}

static int read_ring(struct stoke_perf_sampler *s, struct cpu_ring *cr)
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

static int deliver_cb(const void *data, size_t len, void *userdata)
{
	return deliver(userdata, data, len);
}

static int drain_rings(struct stoke_perf_sampler *s, bool flush)
{
	int r;

	for (size_t i = 0; i < s->nrings; i++) {
		r = read_ring(s, &s->rings[i]);
		if (r < 0)
			return r;
	}
	r = stoke_perf_spans_read(s->spans, &s->reorder, &s->stats);
	if (r < 0)
		return r;
	return stoke_reorder_round(&s->reorder, flush, deliver_cb, s);
}

int stoke_perf_drain(struct stoke_perf_sampler *s, bool flush)
{
	return drain_rings(s, flush);
}

int stoke_perf_pollfds(const struct stoke_perf_sampler *s, const int **ret)
{
	*ret = s->ring_fds;
	return (int)s->nrings;
}

void stoke_perf_info(const struct stoke_perf_sampler *s, struct stoke_backend_info *ret)
{
	ret->event = s->event;
	ret->fell_back = s->fell_back;
	ret->kernel_dropped = s->kernel_dropped;
}

void stoke_perf_get_stats(const struct stoke_perf_sampler *s, struct stoke_sampler_stats *ret)
{
	*ret = s->stats;
	for (size_t i = 0; i < s->nrings; i++)
		ret->malformed += s->rings[i].ring.malformed;
}

/* ---- the backend table ---- */

static int ops_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		   void **ret)
{
	return stoke_perf_new(opts, cb, userdata, (struct stoke_perf_sampler **)ret);
}

static int ops_attach(void *b, pid_t pid)
{
	return stoke_perf_attach(b, pid);
}

static int ops_attach_threads(void *b, pid_t pid, const pid_t *tids, size_t n)
{
	return stoke_perf_attach_threads(b, pid, tids, n);
}

static int ops_launch(void *b, char *const argv[], pid_t *ret_pid)
{
	return stoke_perf_launch(b, argv, ret_pid);
}

static int ops_pollfds(const void *b, const int **ret)
{
	return stoke_perf_pollfds(b, ret);
}

static int ops_drain(void *b, bool flush)
{
	return stoke_perf_drain(b, flush);
}

static void ops_disable(void *b)
{
	stoke_perf_disable(b);
}

static void ops_get_stats(const void *b, struct stoke_sampler_stats *ret)
{
	stoke_perf_get_stats(b, ret);
}

static void ops_info(const void *b, struct stoke_backend_info *ret)
{
	stoke_perf_info(b, ret);
}

static void ops_free(void *b)
{
	stoke_perf_free(b);
}

const struct stoke_backend_ops stoke_perf_backend = {
	.kind = STOKE_BACKEND_PERF,
	.name = "perf",
	.new = ops_new,
	.attach = ops_attach,
	.attach_threads = ops_attach_threads,
	.launch = ops_launch,
	.pollfds = ops_pollfds,
	.drain = ops_drain,
	.disable = ops_disable,
	.get_stats = ops_get_stats,
	.info = ops_info,
	.free = ops_free,
};
