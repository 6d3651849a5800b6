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
		s.kstack = stack_id(ctx, 2 & BPF_F_SKIP_FIELD_MASK);
		s.ustack = stack_id(ctx, BPF_F_USER_STACK);
		if (bpf_map_update_elem(&offstart, &pid, &s, BPF_ANY))
			count(BPFPROF_CNT_OFF_FULL);
	}
	/* The task coming back: add the time it was away. */
	pid = BPF_CORE_READ(next, pid);
	st = bpf_map_lookup_elem(&offstart, &pid);
	if (!st)
		return 0;
	if (now - st->ts >= off_cpu_min_ns) {
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
