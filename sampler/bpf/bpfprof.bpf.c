// SPDX-License-Identifier: GPL-2.0
/*
 * The eBPF sampler's kernel side (libbpf CO-RE, built against a vmlinux.h
 * generated from the running kernel's BTF).
 *
 *  - on_sample runs on every per-CPU cpu-clock sample (a perf_event
 *    program): it counts (tgid, tid, kernel stack, user FP stack, comm) in
 *    the counts hash map, so only distinct stacks ever reach user space.
 *  - on_switch (tp_btf/sched_switch, with --off-cpu) notes when and where a
 *    task blocks, and adds the time it was blocked to the same map (kind
 *    OFF_CPU) when it runs again.
 *  - A process seen for the first time, or exec'ing, is announced through a
 *    ring buffer at once, so user space reads its mappings while they exist.
 *
 * GPL: bpf_get_stackid and the tracing helpers are GPL-only.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpfprof.h"

#define TASK_RUNNING 0

/* Tunables, set by user space before the programs load. */
const volatile bool filter_tgid = false; /* only tgids in the targets map */
const volatile bool off_cpu = false;
const volatile unsigned long long off_cpu_min_ns = 0;
/* Bytes of user stack copied at switch-out (0: frame-pointer stacks). */
const volatile unsigned int off_cpu_stack_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bpfprof_key);
	__type(value, __u64);
	__uint(max_entries, 16384); /* resized from the options */
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, BPFPROF_MAX_DEPTH * sizeof(__u64));
	__uint(max_entries, 16384); /* resized from the options */
} stacks SEC(".maps");

/* With filter_tgid: the processes to profile (their children are added at
 * fork). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, 4096);
} targets SEC(".maps");

/* Processes already announced to user space. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, 32768);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct offstart {
	__u64 ts;
	__s32 kstack, ustack;
	__u32 state;
	__s64 syscall;
	__u32 copied; /* DWARF mode: the stacks went to user space */
};

/* Off-CPU: where each blocked thread blocked. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct offstart);
	__uint(max_entries, 16384); /* resized from the options */
} offstart SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, BPFPROF_CNT_NR);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);

	if (v)
		(*v)++;
}

static __always_inline bool wanted(__u32 tgid)
{
	return !filter_tgid || bpf_map_lookup_elem(&targets, &tgid);
}

static __always_inline void announce(__u32 type, __u32 tgid, __u32 pid, const char *comm)
{
	struct bpfprof_event *e;
	__u8 one = 1;

	if (type == BPFPROF_EV_NEW && bpf_map_update_elem(&seen, &tgid, &one, BPF_NOEXIST))
		return; /* known already (or the update failed: nothing to say) */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		/* Forget it was seen, so the next sample tries again. */
		if (type == BPFPROF_EV_NEW)
			bpf_map_delete_elem(&seen, &tgid);
		count(BPFPROF_CNT_EVENT_LOST);
		return;
	}
	e->type = type;
	e->tgid = tgid;
	e->pid = pid;
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), comm);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void add(struct bpfprof_key *key, __u64 v)
{
	__u64 *cur = bpf_map_lookup_elem(&counts, key);

	if (cur) {
		__sync_fetch_and_add(cur, v);
		return;
	}
	/* Another CPU may have made it meanwhile: then add to that. */
	if (bpf_map_update_elem(&counts, key, &v, BPF_NOEXIST) == 0)
		return;
	cur = bpf_map_lookup_elem(&counts, key);
	if (cur) {
		__sync_fetch_and_add(cur, v);
		return;
	}
	count(BPFPROF_CNT_MAP_FULL);
}

static __always_inline int stack_id(void *ctx, __u64 flags)
{
	int id = bpf_get_stackid(ctx, &stacks, flags);

	/* -EFAULT: no stack of that kind (a sample in user mode has no
	 * kernel stack). -EEXIST/-ENOMEM: no room for this stack. */
	if (id < 0 && id != -14)
		count(BPFPROF_CNT_STACK_LOST);
	return id;
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, pid = (__u32)id;
	struct bpfprof_key key = {};

	if (pid == 0) {
		count(BPFPROF_CNT_IDLE);
		return 0;
	}
	if (!wanted(tgid)) {
		count(BPFPROF_CNT_FILTERED);
		return 0;
	}
	count(BPFPROF_CNT_SAMPLES);
	key.tgid = tgid;
	key.pid = pid;
	key.kind = BPFPROF_ON_CPU;
	key.syscall = -1;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.kstack = stack_id(ctx, 0);
	key.ustack = stack_id(ctx, BPF_F_USER_STACK);
	announce(BPFPROF_EV_NEW, tgid, pid, key.comm);
	add(&key, 1);
	return 0;
}

/* The syscall a task is in (x86-64: orig_ax of its user registers), or -1
 * for a kernel thread or a task not in a syscall. */
static __always_inline __s64 task_syscall(struct task_struct *t)
{
	struct pt_regs *regs;

	if (!BPF_CORE_READ(t, mm))
		return -1;
	regs = (struct pt_regs *)bpf_task_pt_regs(t);
	if (!regs)
		return -1;
	return (__s64)BPF_CORE_READ(regs, orig_ax);
}

/* DWARF mode: the blocked thread's user registers (as at its syscall entry)
 * and the top of its user stack, and its kernel stack, to user space now;
 * the time comes when it runs again (BPFPROF_EV_OFFEND). */
static __always_inline bool copy_stacks(void *ctx, struct task_struct *t, __u32 tgid, __u32 pid,
					struct offstart *s)
{
	struct bpfprof_offstack *e;
	struct pt_regs *regs;
	__u64 sp;
	long n;

	if (!BPF_CORE_READ(t, mm))
		return false; /* a kernel thread: no user stack */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(BPFPROF_CNT_OFF_COPY_LOST);
		return false;
	}
	e->type = BPFPROF_EV_OFFSTACK;
	e->tgid = tgid;
	e->pid = pid;
	e->state = s->state;
	e->syscall = s->syscall;
	e->start = s->ts;
	n = bpf_get_stack(ctx, e->kips, sizeof(e->kips), 2 & BPF_F_SKIP_FIELD_MASK);
	e->nkips = n > 0 ? (__u64)n / 8 : 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(t);
	e->regs[0] = BPF_CORE_READ(regs, ax);
	e->regs[1] = BPF_CORE_READ(regs, bx);
	e->regs[2] = BPF_CORE_READ(regs, cx);
	e->regs[3] = BPF_CORE_READ(regs, dx);
	e->regs[4] = BPF_CORE_READ(regs, si);
	e->regs[5] = BPF_CORE_READ(regs, di);
	e->regs[6] = BPF_CORE_READ(regs, bp);
	e->regs[7] = sp = BPF_CORE_READ(regs, sp);
	e->regs[8] = BPF_CORE_READ(regs, ip);
	e->regs[9] = BPF_CORE_READ(regs, flags);
	e->regs[10] = BPF_CORE_READ(regs, cs);
	e->regs[11] = BPF_CORE_READ(regs, ss);
	e->regs[12] = BPF_CORE_READ(regs, r8);
	e->regs[13] = BPF_CORE_READ(regs, r9);
	e->regs[14] = BPF_CORE_READ(regs, r10);
	e->regs[15] = BPF_CORE_READ(regs, r11);
	e->regs[16] = BPF_CORE_READ(regs, r12);
	e->regs[17] = BPF_CORE_READ(regs, r13);
	e->regs[18] = BPF_CORE_READ(regs, r14);
	e->regs[19] = BPF_CORE_READ(regs, r15);
	/* Pages not resident cannot be read here (no faults): then only
	 * what is left of the page sp is in, which is always touched. */
	e->stack_len = 0;
	if (off_cpu_stack_bytes && off_cpu_stack_bytes <= BPFPROF_MAX_STACK_COPY) {
		if (bpf_probe_read_user(e->stack, off_cpu_stack_bytes, (void *)sp) == 0) {
			e->stack_len = off_cpu_stack_bytes;
		} else {
			__u32 rest = 4096 - (sp & 4095);

			if (rest > off_cpu_stack_bytes)
				rest = off_cpu_stack_bytes;
			if (rest <= BPFPROF_MAX_STACK_COPY &&
			    bpf_probe_read_user(e->stack, rest, (void *)sp) == 0)
				e->stack_len = rest;
		}
	}
	bpf_ringbuf_submit(e, 0);
	return true;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u32 pid = BPF_CORE_READ(prev, pid), tgid = BPF_CORE_READ(prev, tgid);
	__u64 now = bpf_ktime_get_ns();
	struct offstart *st;

	if (!off_cpu)
		return 0;
	/* The task going off CPU: note where it blocks. Preempted tasks
	 * (still runnable) are not blocked: that is CPU contention. */
	if (pid && prev_state != TASK_RUNNING && wanted(tgid)) {
		struct offstart s = {
			.ts = now,
			.state = prev_state,
			.syscall = task_syscall(prev),
		};

		/* prev is still current here: these are its stacks. The
		 * kernel one without its 2 innermost frames, this program
		 * and bpf_trace_run4: it ends in __schedule. */
		if (off_cpu_stack_bytes) {
			s.kstack = s.ustack = -1;
			s.copied = copy_stacks(ctx, prev, tgid, pid, &s);
		} else {
			s.kstack = stack_id(ctx, 2 & BPF_F_SKIP_FIELD_MASK);
			s.ustack = stack_id(ctx, BPF_F_USER_STACK);
		}
		if (bpf_map_update_elem(&offstart, &pid, &s, BPF_ANY))
			count(BPFPROF_CNT_OFF_FULL);
	}
	/* The task coming back: add the time it was away. */
	pid = BPF_CORE_READ(next, pid);
	st = bpf_map_lookup_elem(&offstart, &pid);
	if (!st)
		return 0;
	if (st->copied) {
		struct bpfprof_offend *e;

		/* Always, even when short: user space drops the copy. */
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			e->type = BPFPROF_EV_OFFEND;
			e->tgid = BPF_CORE_READ(next, tgid);
			e->pid = pid;
			bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), next->comm);
			e->start = st->ts;
			e->ns = now - st->ts >= off_cpu_min_ns ? now - st->ts : 0;
			bpf_ringbuf_submit(e, 0);
		} else {
			count(BPFPROF_CNT_OFF_COPY_LOST);
		}
	} else if (!off_cpu_stack_bytes && now - st->ts >= off_cpu_min_ns) {
		struct bpfprof_key key = {};

		key.tgid = BPF_CORE_READ(next, tgid);
		key.pid = pid;
		key.kstack = st->kstack;
		key.ustack = st->ustack;
		key.kind = BPFPROF_OFF_CPU;
		key.state = st->state;
		key.syscall = st->syscall;
		bpf_probe_read_kernel_str(key.comm, sizeof(key.comm), next->comm);
		announce(BPFPROF_EV_NEW, key.tgid, pid, key.comm);
		add(&key, now - st->ts);
	}
	bpf_map_delete_elem(&offstart, &pid);
	return 0;
}

/* A target's children are targets too. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid), ctgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	if (filter_tgid && ptgid != ctgid && bpf_map_lookup_elem(&targets, &ptgid))
		bpf_map_update_elem(&targets, &ctgid, &one, BPF_ANY);
	return 0;
}

/*
 * A process stoke knows maps a file where the kernel chooses the address:
 * the first mmap of a dlopen (the loader reserves the library's whole span,
 * then maps its segments over it). Its mappings are read again, so the new
 * module is named too. No kprobe or syscall tracepoint is needed: the
 * tracepoint is BTF-typed, and the mmap's own arguments are the thread's
 * saved user registers (x86-64: nr 9, fd in r8).
 */
SEC("tp_btf/vm_unmapped_area")
int BPF_PROG(on_mmap, unsigned long addr, struct vm_unmapped_area_info *info)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	char comm[BPFPROF_COMM_LEN];
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	if (BPF_CORE_READ(regs, orig_ax) != 9 || (long)BPF_CORE_READ(regs, r8) < 0)
		return 0;
	if (!bpf_map_lookup_elem(&seen, &tgid) || !wanted(tgid))
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	announce(BPFPROF_EV_MMAP, tgid, (__u32)id, comm);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (!wanted(tgid))
		return 0;
	announce(BPFPROF_EV_EXEC, tgid, BPF_CORE_READ(p, pid), p->comm);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
