/*
 * The eBPF sampler's user space (see bpf_sampler.h for the contract and
 * bpfprof.bpf.c for the kernel side).
 *
 * Aggregates are read with lookup-and-delete, key by key: a sample counted
 * between our read of a key and its deletion would be lost, and lookup-and-
 * delete makes the two one step. Stacks are read after their counts and
 * deleted after the round, so the stack map holds one period's stacks; a
 * count whose stack was dropped meanwhile (a race with the next sample of
 * that stack, or a full stack map) is delivered without that half.
 */
#include "sampler/bpf/bpf_sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sampler/bpf/bpfprof.h"
/* The skeleton embeds the BPF object as one string literal. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "bpfprof.skel.h"
#pragma GCC diagnostic pop
#include "common/hashmap.h"
#include "common/log.h"
#include "common/u64set.h"
#include "sampler/maps.h"
#include "sampler/perf/perf.h"
#include "sampler/perf/record.h"
#include "sampler/sample.h"
#include "common/util.h"

/* How often the counts map is read and cleared. */
#define BPF_DRAIN_NS 1000000000ULL
#define BPF_DEFAULT_ENTRIES 16384
/* How long after a process maps a file its mappings are read again. */
#define BPF_MMAP_SETTLE_NS 20000000ULL

/* An off-CPU reason frame's name, made once per (state, syscall). */
struct reason {
	uint32_t state;
	int64_t syscall;
	char *name;
};

/* A thread's name as last delivered (tid 0: a new entry, not named yet). */
struct tname {
	uint32_t tid, tgid;
	char comm[BPFPROF_COMM_LEN];
};

struct stoke_bpf_sampler {
	struct stoke_sampler_opts opts;
	stoke_sampler_cb cb;
	void *userdata;

	struct bpfprof *skel;
	bool loaded, system_wide, disabled;
	int *perf_fds;
	struct bpf_link **links;
	size_t nperf;
	struct ring_buffer *rb;
	int rb_fd;
	int stats_fd; /* BPF_ENABLE_STATS: run_time_ns is counted while open */

	uint64_t period_ns;
	uint64_t last_drain;
	uint64_t off_residual; /* off-CPU ns not yet a whole sample */

	/* Processes whose mappings were delivered. */
	struct stoke_u64set procs;
	/* Processes that mapped a file since: read again once the loader
	 * is done (BPF_MMAP_SETTLE_NS), once however many mmaps it made. */
	struct dirty {
		uint32_t tgid;
		uint64_t when;
	} *dirty;
	size_t ndirty, dirty_cap;
	struct stoke_u64map tnames; /* tid -> struct tname * */
	size_t ntnames;

	/* Scratch for a drain round. */
	struct bpfprof_key *keys;
	size_t keys_cap;
	int32_t *used_stacks;
	size_t nused, used_cap;

	struct reason *reasons;
	size_t nreasons, reasons_cap;

	/* DWARF off-CPU: each blocked thread's stack copy until it runs
	 * again (pid -> struct bpfprof_offstack *). */
	struct stoke_u64map copies;
	size_t ncopies;
	uint64_t copy_residual;

	struct stoke_sampler_stats stats;
	uint64_t start_ns;
};

static const char *bpf_err_msg;
static int bpf_err_code;

static void set_error(int err, const char *msg)
{
	bpf_err_code = err;
	bpf_err_msg = msg;
}

const char *stoke_bpf_strerror(int err)
{
	return err == bpf_err_code ? bpf_err_msg : NULL;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's own messages are for debugging; ours say what failed. */
	if (stoke_log_get_level() >= STOKE_LOG_DEBUG)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int stoke_bpf_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		  struct stoke_bpf_sampler **ret)
{
	struct stoke_bpf_sampler *b;
	uint32_t entries = opts->bpf_map_entries ? opts->bpf_map_entries : BPF_DEFAULT_ENTRIES;

	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		set_error(-ENOTSUP, "the BPF sampler needs kernel BTF (/sys/kernel/btf/vmlinux is "
				    "missing: a kernel built with CONFIG_DEBUG_INFO_BTF=y)");
		return -ENOTSUP;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->opts = *opts;
	b->cb = cb;
	b->userdata = userdata;
	b->rb_fd = -1;
	b->stats_fd = -1;
	b->period_ns = 1000000000ULL / opts->freq;
	libbpf_set_print(libbpf_quiet);
	b->skel = bpfprof__open();
	if (!b->skel) {
		stoke_bpf_free(b);
		return -ENOMEM;
	}
	bpf_map__set_max_entries(b->skel->maps.counts, entries);
	bpf_map__set_max_entries(b->skel->maps.stacks, entries);
	bpf_map__set_max_entries(b->skel->maps.offstart, entries);
	b->skel->rodata->off_cpu = opts->off_cpu;
	b->skel->rodata->off_cpu_min_ns = opts->off_cpu_min_ns;
	if (opts->off_cpu && opts->callgraph == STOKE_CALLGRAPH_DWARF) {
		/* Each block sends its stack copy through the ring buffer:
		 * room for about a thousand in flight. */
		b->skel->rodata->off_cpu_stack_bytes =
			STOKE_MIN(opts->stack_size, (uint32_t)BPFPROF_MAX_STACK_COPY) & ~7u;
		bpf_map__set_max_entries(b->skel->maps.events, 16u << 20);
	}
	*ret = b;
	return 0;
}

void stoke_bpf_free(struct stoke_bpf_sampler *b)
{
	uint64_t v;

	if (!b)
		return;
	for (size_t i = 0; i < b->nperf; i++) {
		bpf_link__destroy(b->links[i]);
		close(b->perf_fds[i]);
	}
	free(b->links);
	free(b->perf_fds);
	ring_buffer__free(b->rb);
	bpfprof__destroy(b->skel);
	if (b->stats_fd >= 0)
		close(b->stats_fd);
	stoke_u64set_clear(&b->procs);
	free(b->dirty);
	for (size_t pos = 0; stoke_u64map_next(&b->tnames, &pos, NULL, &v);)
		free((struct tname *)(uintptr_t)v);
	stoke_u64map_free(&b->tnames);
	free(b->keys);
	free(b->used_stacks);
	for (size_t i = 0; i < b->nreasons; i++)
		free(b->reasons[i].name);
	free(b->reasons);
	for (size_t pos = 0; stoke_u64map_next(&b->copies, &pos, NULL, &v);)
		free((struct bpfprof_offstack *)(uintptr_t)v);
	stoke_u64map_free(&b->copies);
	free(b);
}

/* ---- processes and threads ---- */

static bool proc_known(struct stoke_bpf_sampler *b, uint32_t tgid, bool add)
{
	if (stoke_u64set_has(&b->procs, tgid))
		return true;
	if (add)
		stoke_u64set_add(&b->procs, tgid); /* without memory: read again */
	return false;
}

/* The name entry of tid, a new zeroed one (tid 0) when it has none; NULL
 * without memory. */
static struct tname *tname_slot(struct stoke_bpf_sampler *b, uint32_t tid)
{
	struct tname *t = (struct tname *)(uintptr_t)stoke_u64map_get(&b->tnames, tid);

	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (t && stoke_u64map_add(&b->tnames, tid, (uintptr_t)t) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

static int deliver_comm(struct stoke_bpf_sampler *b, uint32_t tgid, uint32_t tid, const char *comm,
			bool exec)
{
	struct stoke_record rec = { .type = STOKE_REC_COMM };
	char name[BPFPROF_COMM_LEN + 1];

	memcpy(name, comm, BPFPROF_COMM_LEN);
	name[BPFPROF_COMM_LEN] = '\0';
	rec.comm.pid = tgid;
	rec.comm.tid = tid;
	rec.comm.exec = exec;
	rec.comm.comm = name;
	b->stats.records++;
	return b->cb(&rec, b->userdata);
}

/* Name thread tid when it is new or its name changed. */
static int name_thread(struct stoke_bpf_sampler *b, uint32_t tgid, uint32_t tid, const char *comm)
{
	struct tname *t = tname_slot(b, tid);

	if (!t)
		return -ENOMEM;
	if (t->tid == tid && t->tgid == tgid && !memcmp(t->comm, comm, BPFPROF_COMM_LEN))
		return 0;
	if (t->tid != tid)
		b->ntnames++;
	t->tid = tid;
	t->tgid = tgid;
	memcpy(t->comm, comm, BPFPROF_COMM_LEN);
	return deliver_comm(b, tgid, tid, comm, false);
}

struct mmap_ctx {
	struct stoke_bpf_sampler *b;
	uint32_t pid;
};

static int mmap_cb(const struct stoke_maps_entry *e, void *userdata)
{
	struct mmap_ctx *ctx = userdata;
	struct stoke_record rec;

	if (!(e->prot & PROT_EXEC))
		return 0;
	stoke_maps_entry_to_record(e, ctx->pid, &rec);
	ctx->b->stats.records++;
	return ctx->b->cb(&rec, ctx->b->userdata);
}

/* Deliver the mappings of tgid, read now, while it runs: the symbolizer
 * keeps them (and opens their files) whether or not the process is still
 * there when its samples are named. */
static int learn_process(struct stoke_bpf_sampler *b, uint32_t tgid, bool exec, const char *comm)
{
	struct mmap_ctx ctx = { b, tgid };
	int r;

	if (!exec && proc_known(b, tgid, false))
		return 0;
	proc_known(b, tgid, true);
	if (exec && comm) {
		r = deliver_comm(b, tgid, tgid, comm, true);
		if (r < 0)
			return r;
		struct tname *t = tname_slot(b, tgid);
		if (t) {
			if (t->tid != tgid)
				b->ntnames++;
			t->tid = tgid;
			t->tgid = tgid;
			memcpy(t->comm, comm, BPFPROF_COMM_LEN);
		}
	}
	/* A process gone before we heard of it (or a kernel thread) has no
	 * mappings to read: its user frames stay unnamed. */
	r = stoke_maps_read_pid((pid_t)tgid, mmap_cb, &ctx);
	if (r < 0)
		log_debug("bpf: cannot read the mappings of %u: %s", tgid, strerror(-r));
	return 0;
}

static const char *reason_of(struct stoke_bpf_sampler *b, uint32_t state, int64_t syscall);

static int keep_copy(struct stoke_bpf_sampler *b, const struct bpfprof_offstack *e)
{
	struct bpfprof_offstack *c =
		(struct bpfprof_offstack *)(uintptr_t)stoke_u64map_get(&b->copies, e->pid);

	if (!c) {
		c = malloc(sizeof(*c));
		if (!c)
			return -ENOMEM;
		if (stoke_u64map_add(&b->copies, e->pid, (uintptr_t)c) < 0) {
			free(c);
			return -ENOMEM;
		}
		b->ncopies++;
	}
	memcpy(c, e, sizeof(*e));
	return 0;
}

/* A block of a thread whose stacks were copied has ended: deliver it as a
 * DWARF-mode sample (kernel callchain, user registers and stack bytes),
 * which the pipeline unwinds as it does perf_event's. */
static int deliver_copy(struct stoke_bpf_sampler *b, const struct bpfprof_offend *e)
{
	struct bpfprof_offstack *c =
		(struct bpfprof_offstack *)(uintptr_t)stoke_u64map_get(&b->copies, e->pid);
	uint64_t kips[BPFPROF_MAX_DEPTH], value, reps;
	struct stoke_record rec = { .type = STOKE_REC_SAMPLE };
	size_t n = 0;
	int r;

	if (!c || c->start != e->start || !e->ns)
		return 0; /* no copy (lost), or too short to count */
	b->stats.off_cpu_ns += e->ns;
	value = e->ns + b->copy_residual;
	reps = value / b->period_ns;
	b->copy_residual = value % b->period_ns;
	if (!reps)
		return 0;
	r = learn_process(b, e->tgid, false, NULL);
	if (r == 0)
		r = name_thread(b, e->tgid, e->pid, e->comm);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < c->nkips && i < BPFPROF_MAX_DEPTH; i++)
		kips[n++] = c->kips[i];
	rec.sample.pid = e->tgid;
	rec.sample.tid = e->pid;
	rec.sample.ip = c->regs[8];
	rec.sample.time = mono_ns();
	rec.sample.period = b->period_ns;
	rec.sample.has_stack = n > 0;
	rec.sample.kernel_ips = n ? kips : NULL;
	rec.sample.nr_kernel_ips = (uint32_t)n;
	stoke_perf_regs_to_dwarf((const uint64_t *)c->regs, &rec.sample);
	rec.sample.stack_len = c->stack_len;
	rec.sample.stack = c->stack_len ? c->stack : NULL;
	rec.sample.weight = reps;
	rec.sample.kind = 1; /* STOKE_SAMPLE_OFF_CPU (formats/profile.h) */
	rec.sample.reason = reason_of(b, c->state, c->syscall);
	if (!rec.sample.reason)
		return -ENOMEM;
	b->stats.records++;
	b->stats.samples += reps;
	return b->cb(&rec, b->userdata);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct stoke_bpf_sampler *b = ctx;
	const struct bpfprof_event *e = data;

	if (size < sizeof(e->type))
		return 0;
	switch (e->type) {
	case BPFPROF_EV_OFFSTACK:
		return size < sizeof(struct bpfprof_offstack) ? 0 : keep_copy(b, data);
	case BPFPROF_EV_OFFEND:
		return size < sizeof(struct bpfprof_offend) ? 0 : deliver_copy(b, data);
	case BPFPROF_EV_MMAP:
		if (size < sizeof(*e))
			return 0;
		for (size_t i = 0; i < b->ndirty; i++)
			if (b->dirty[i].tgid == e->tgid)
				return 0;
		if (STOKE_GROW(b->dirty, b->dirty_cap, b->ndirty + 1) < 0)
			return -ENOMEM;
		b->dirty[b->ndirty++] = (struct dirty){ e->tgid, mono_ns() };
		return 0;
	default:
		if (size < sizeof(*e))
			return 0;
		return learn_process(b, e->tgid, e->type == BPFPROF_EV_EXEC, e->comm);
	}
}

/* ---- start ---- */

static int open_cpu_events(struct stoke_bpf_sampler *b)
{
	int ncpus = libbpf_num_possible_cpus();

	if (ncpus <= 0)
		return ncpus < 0 ? ncpus : -ENODEV;
	b->perf_fds = calloc((size_t)ncpus, sizeof(*b->perf_fds));
	b->links = calloc((size_t)ncpus, sizeof(*b->links));
	if (!b->perf_fds || !b->links)
		return -ENOMEM;
	for (int cpu = 0; cpu < ncpus; cpu++) {
		int fd = stoke_perf_open_cpu_clock(cpu, b->opts.freq, b->opts.exclude_kernel);
		struct bpf_link *l;

		if (fd < 0) {
			if (fd == -ENODEV)
				continue; /* an offline CPU */
			return fd;
		}
		l = bpf_program__attach_perf_event(b->skel->progs.on_sample, (int)fd);
		if (!l) {
			int r = -errno;

			close((int)fd);
			return r;
		}
		b->perf_fds[b->nperf] = (int)fd;
		b->links[b->nperf++] = l;
	}
	return b->nperf ? 0 : -ENODEV;
}

static int start(struct stoke_bpf_sampler *b)
{
	int r;

	b->skel->rodata->filter_tgid = !b->system_wide;
	r = bpfprof__load(b->skel);
	if (r < 0) {
		/* As root, EPERM/EACCES come from a lockdown or the verifier,
		 * not from missing rights. */
		if ((r == -EPERM || r == -EACCES) && geteuid() != 0)
			set_error(r, "loading BPF programs is not allowed: the BPF sampler needs "
				     "root, or CAP_BPF and CAP_PERFMON");
		else
			set_error(r, "the kernel refused the BPF sampler's programs (a lockdown or "
				     "the verifier: STOKE_DEBUG=1 shows libbpf's log)");
		return r;
	}
	b->loaded = true;
	/* Counting the programs' run time costs a little on every run: only
	 * while we profile, and only when nobody enabled it already. */
	b->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.events), on_event, b, NULL);
	if (!b->rb)
		return -errno ? -errno : -ENOMEM;
	b->rb_fd = ring_buffer__epoll_fd(b->rb);
	if (b->opts.off_cpu) {
		b->skel->links.on_switch = bpf_program__attach(b->skel->progs.on_switch);
		if (!b->skel->links.on_switch)
			return -errno;
	}
	b->skel->links.on_fork = bpf_program__attach(b->skel->progs.on_fork);
	b->skel->links.on_exec = bpf_program__attach(b->skel->progs.on_exec);
	if (!b->skel->links.on_fork || !b->skel->links.on_exec)
		return -errno;
	/* Without this tracepoint a library
	 * loaded after a process was first seen stays unnamed. */
	b->skel->links.on_mmap = bpf_program__attach(b->skel->progs.on_mmap);
	if (!b->skel->links.on_mmap)
		log_debug("bpf: no vm_unmapped_area tracepoint (%s): later dlopens are not seen",
			  strerror(errno));
	r = open_cpu_events(b);
	if (r < 0) {
		if (r == -EACCES || r == -EPERM)
			set_error(r, "per-CPU perf events are not allowed: the BPF sampler needs "
				     "root, or CAP_PERFMON");
		return r;
	}
	b->start_ns = mono_ns();
	b->last_drain = b->start_ns;
	return 0;
}

int stoke_bpf_attach(struct stoke_bpf_sampler *b, pid_t pid)
{
	uint32_t tgid = (uint32_t)pid;
	uint8_t one = 1;
	int r;

	if (pid < 0) {
		if (b->loaded)
			return -EINVAL; /* -a is alone */
		b->system_wide = true;
		return start(b);
	}
	if (pid == 0 || kill(pid, 0) < 0)
		return -ESRCH;
	if (!b->loaded) {
		r = start(b);
		if (r < 0)
			return r;
	}
	if (b->system_wide)
		return 0;
	if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.targets), &tgid, &one, BPF_ANY) < 0)
		return -errno;
	/* Its mappings and thread names now: it may exit before the first
	 * drain. */
	b->stats.threads_attached++;
	return learn_process(b, tgid, false, NULL);
}

int stoke_bpf_pollfds(const struct stoke_bpf_sampler *b, const int **ret)
{
	*ret = &b->rb_fd;
	return b->rb_fd >= 0 ? 1 : 0;
}

void stoke_bpf_disable(struct stoke_bpf_sampler *b)
{
	struct stoke_sampler_stats st;

	if (b->disabled)
		return;
	b->disabled = true;
	for (size_t i = 0; i < b->nperf; i++)
		stoke_perf_disable_fd(b->perf_fds[i]);
	if (b->skel && b->skel->links.on_switch) {
		bpf_link__destroy(b->skel->links.on_switch);
		b->skel->links.on_switch = NULL;
	}
	if (!b->loaded)
		return;
	/* The cost the issue bounds: the programs' own CPU time, as the
	 * kernel measured it (bpf_stats), against one core. */
	stoke_bpf_get_stats(b, &st);
	log_info("bpf: programs ran %llu times, %.1f ms of CPU in %.1f s (%.3f%% of one core, "
		 "%.0f ns per run)%s",
		 (unsigned long long)st.bpf_run_cnt, (double)st.bpf_run_ns / 1e6,
		 (double)st.bpf_elapsed_ns / 1e9,
		 st.bpf_elapsed_ns ? 100.0 * (double)st.bpf_run_ns / (double)st.bpf_elapsed_ns : 0.0,
		 st.bpf_run_cnt ? (double)st.bpf_run_ns / (double)st.bpf_run_cnt : 0.0,
		 b->stats_fd < 0 ? " (bpf_stats could not be enabled: not measured)" : "");
	if (st.bpf_stack_lost)
		log_info("bpf: %llu stacks did not fit the stack map (--bpf-map-size)",
			 (unsigned long long)st.bpf_stack_lost);
}

/* ---- drain ---- */

/* x86-64 numbers of the syscalls a thread commonly blocks in. */
static const char *syscall_name(int64_t nr)
{
	static const struct {
		int nr;
		const char *name;
	} names[] = {
		{ 0, "read" },		   { 1, "write" },	       { 2, "open" },
		{ 3, "close" },		   { 7, "poll" },	       { 9, "mmap" },
		{ 16, "ioctl" },	   { 17, "pread64" },	       { 18, "pwrite64" },
		{ 19, "readv" },	   { 20, "writev" },	       { 23, "select" },
		{ 24, "sched_yield" },	   { 34, "pause" },	       { 35, "nanosleep" },
		{ 42, "connect" },	   { 43, "accept" },	       { 44, "sendto" },
		{ 45, "recvfrom" },	   { 46, "sendmsg" },	       { 47, "recvmsg" },
		{ 56, "clone" },	   { 57, "fork" },	       { 59, "execve" },
		{ 61, "wait4" },	   { 74, "fsync" },	       { 75, "fdatasync" },
		{ 128, "rt_sigtimedwait" }, { 130, "rt_sigsuspend" }, { 202, "futex" },
		{ 217, "getdents64" },	   { 230, "clock_nanosleep" }, { 232, "epoll_wait" },
		{ 247, "waitid" },	   { 257, "openat" },	       { 262, "newfstatat" },
		{ 270, "pselect6" },	   { 271, "ppoll" },	       { 281, "epoll_pwait" },
		{ 288, "accept4" },	   { 299, "recvmmsg" },	       { 426, "io_uring_enter" },
		{ 435, "clone3" },	   { 441, "epoll_pwait2" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].nr == nr)
			return names[i].name;
	return NULL;
}

/* The task state letter, as ps shows it. */
static const char *state_name(uint32_t state)
{
	if ((state & 0x402) == 0x402)
		return "I (idle)";
	if (state & 0x1)
		return "S (sleeping)";
	if (state & 0x2)
		return "D (disk sleep)";
	if (state & 0x4)
		return "T (stopped)";
	if (state & 0x8)
		return "t (traced)";
	return "?";
}

/* "[off-cpu S (sleeping) nanosleep]": the synthetic leaf of a blocked
 * stack. The syscall says what the thread waited for; the kernel frames
 * below it say where. */
static const char *reason_of(struct stoke_bpf_sampler *b, uint32_t state, int64_t syscall)
{
	const char *sc = syscall >= 0 ? syscall_name(syscall) : NULL;
	char *name;
	int n;

	for (size_t i = 0; i < b->nreasons; i++)
		if (b->reasons[i].state == state && b->reasons[i].syscall == syscall)
			return b->reasons[i].name;
	if (STOKE_GROW(b->reasons, b->reasons_cap, b->nreasons + 1) < 0)
		return NULL;
	if (sc)
		n = asprintf(&name, "[off-cpu %s %s]", state_name(state), sc);
	else if (syscall >= 0)
		n = asprintf(&name, "[off-cpu %s syscall %lld]", state_name(state),
			     (long long)syscall);
	else
		n = asprintf(&name, "[off-cpu %s]", state_name(state));
	if (n < 0)
		return NULL;
	b->reasons[b->nreasons++] = (struct reason){ state, syscall, name };
	return name;
}

static int used_stack(struct stoke_bpf_sampler *b, int32_t id)
{
	if (id < 0)
		return 0;
	if (STOKE_GROW(b->used_stacks, b->used_cap, b->nused + 1) < 0)
		return -ENOMEM;
	b->used_stacks[b->nused++] = id;
	return 0;
}

/* Read stack id into ips (leaf first); returns the depth, 0 when absent. */
static size_t read_stack(struct stoke_bpf_sampler *b, int32_t id, uint64_t *ips)
{
	size_t n = 0;

	if (id < 0)
		return 0;
	memset(ips, 0, BPFPROF_MAX_DEPTH * sizeof(*ips));
	if (bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.stacks), &id, ips) < 0)
		return 0;
	while (n < BPFPROF_MAX_DEPTH && ips[n])
		n++;
	return n;
}

static int deliver_key(struct stoke_bpf_sampler *b, const struct bpfprof_key *k, uint64_t value,
		       uint64_t now)
{
	uint64_t kips[BPFPROF_MAX_DEPTH], uips[BPFPROF_MAX_DEPTH];
	struct stoke_record rec = { .type = STOKE_REC_SAMPLE };
	size_t nk = read_stack(b, k->kstack, kips), nu = read_stack(b, k->ustack, uips);
	uint64_t reps;
	int r;

	if (k->kind == BPFPROF_OFF_CPU) {
		/* Time in sampling periods, so on- and off-CPU weights add
		 * up; what is left of a period is carried to the next. */
		b->stats.off_cpu_ns += value;
		value += b->off_residual;
		reps = value / b->period_ns;
		b->off_residual = value % b->period_ns;
		if (!reps)
			return 0;
		rec.sample.kind = 1; /* STOKE_SAMPLE_OFF_CPU (formats/profile.h) */
		rec.sample.reason = reason_of(b, k->state, k->syscall);
		if (!rec.sample.reason)
			return -ENOMEM;
	} else {
		reps = value;
	}
	if ((k->kstack >= 0 && !nk) || (k->ustack >= 0 && !nu)) {
		/* Its stack went (see the file comment): lost. */
		b->stats.lost += reps;
		return 0;
	}
	if (used_stack(b, k->kstack) < 0 || used_stack(b, k->ustack) < 0)
		return -ENOMEM;
	r = learn_process(b, k->tgid, false, NULL);
	if (r == 0)
		r = name_thread(b, k->tgid, k->pid, k->comm);
	if (r < 0)
		return r;
	rec.sample.pid = k->tgid;
	rec.sample.tid = k->pid;
	rec.sample.ip = nk ? kips[0] : nu ? uips[0] : 0;
	rec.sample.time = now;
	rec.sample.period = b->period_ns;
	rec.sample.has_stack = nk || nu;
	rec.sample.kernel_ips = nk ? kips : NULL;
	rec.sample.nr_kernel_ips = (uint32_t)nk;
	rec.sample.user_ips = nu ? uips : NULL;
	rec.sample.nr_user_ips = (uint32_t)nu;
	rec.sample.weight = reps;
	b->stats.records++;
	b->stats.samples += reps;
	return b->cb(&rec, b->userdata);
}

static int read_counts(struct stoke_bpf_sampler *b)
{
	int fd = bpf_map__fd(b->skel->maps.counts), sfd = bpf_map__fd(b->skel->maps.stacks);
	struct bpfprof_key key, *prev = NULL;
	size_t nkeys = 0;
	uint64_t now = mono_ns();
	int r = 0;

	/* Keys first: deleting while walking would restart the walk. */
	while (bpf_map_get_next_key(fd, prev, &key) == 0) {
		if (STOKE_GROW(b->keys, b->keys_cap, nkeys + 1) < 0)
			return -ENOMEM;
		b->keys[nkeys++] = key;
		prev = &b->keys[nkeys - 1];
	}
	b->nused = 0;
	for (size_t i = 0; i < nkeys; i++) {
		uint64_t v;

		if (bpf_map_lookup_and_delete_elem(fd, &b->keys[i], &v) < 0)
			continue;
		r = deliver_key(b, &b->keys[i], v, now);
		if (r < 0)
			break;
	}
	for (size_t i = 0; i < b->nused; i++)
		bpf_map_delete_elem(sfd, &b->used_stacks[i]);
	return r;
}

int stoke_bpf_drain(struct stoke_bpf_sampler *b, bool flush)
{
	uint64_t before = b->stats.records, now;
	int r;

	if (!b->loaded)
		return 0;
	r = ring_buffer__consume(b->rb);
	if (r < 0)
		return r;
	/* New file mappings: the announcement comes with the first mmap of
	 * a dlopen, the code segment follows it; read a little later (at
	 * the stop, now). */
	now = mono_ns();
	for (size_t i = 0; i < b->ndirty;) {
		struct mmap_ctx ctx = { b, b->dirty[i].tgid };

		if (!flush && now - b->dirty[i].when < BPF_MMAP_SETTLE_NS) {
			i++;
			continue;
		}
		r = stoke_maps_read_pid((pid_t)ctx.pid, mmap_cb, &ctx);
		if (r < 0 && r != -ESRCH && r != -ENOENT)
			log_debug("bpf: cannot read the mappings of %u: %s", ctx.pid, strerror(-r));
		b->dirty[i] = b->dirty[--b->ndirty];
	}
	if (!flush && now - b->last_drain < BPF_DRAIN_NS)
		return (int)(b->stats.records - before);
	b->last_drain = now;
	r = read_counts(b);
	if (r < 0)
		return r;
	return (int)STOKE_MIN(b->stats.records - before, (uint64_t)INT32_MAX);
}

void stoke_bpf_get_stats(const struct stoke_bpf_sampler *b, struct stoke_sampler_stats *ret)
{
	uint64_t cnt[BPFPROF_CNT_NR] = { 0 };
	int ncpus = libbpf_num_possible_cpus();

	*ret = b->stats;
	ret->events = (uint32_t)b->nperf;
	if (!b->loaded || ncpus <= 0)
		return;
	for (uint32_t i = 0; i < BPFPROF_CNT_NR; i++) {
		_cleanup_free_ uint64_t *v = calloc((size_t)ncpus, sizeof(*v));

		if (v && bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.counters), &i, v) == 0)
			for (int c = 0; c < ncpus; c++)
				cnt[i] += v[c];
	}
	ret->lost += cnt[BPFPROF_CNT_MAP_FULL];
	ret->lost += cnt[BPFPROF_CNT_OFF_COPY_LOST]; /* blocks without their stacks */
	ret->bpf_stack_lost = cnt[BPFPROF_CNT_STACK_LOST];
	ret->foreign = cnt[BPFPROF_CNT_FILTERED];
	{
		struct bpf_program *progs[] = { b->skel->progs.on_sample, b->skel->progs.on_switch,
						b->skel->progs.on_fork, b->skel->progs.on_exec,
						b->skel->progs.on_mmap };

		for (size_t i = 0; i < ARRAY_SIZE(progs); i++) {
			struct bpf_prog_info info = { 0 };
			uint32_t len = sizeof(info);

			if (bpf_obj_get_info_by_fd(bpf_program__fd(progs[i]), &info, &len) == 0) {
				ret->bpf_run_ns += info.run_time_ns;
				ret->bpf_run_cnt += info.run_cnt;
			}
		}
	}
	ret->bpf_elapsed_ns = mono_ns() - b->start_ns;
}
