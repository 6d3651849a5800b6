// SPDX-License-Identifier: GPL-2.0
/*
 * The Python frame chain of a sampled thread, read at the sample (#14).
 *
 * Attached to the sampling perf events (PERF_EVENT_IOC_SET_BPF; inherited
 * with them by new threads and fork children), on_sample runs in the
 * event's overflow handler right before the sample is written. For a thread
 * whose PyThreadState user space has put in tstates, it follows
 * tstate → cframe → current_frame → previous… and sends the code object and
 * instruction pointer of each frame through a ring buffer; user space names
 * the code objects (once each) and matches the event to the perf sample by
 * thread, time and sampled IP. It always returns 1: the sample is kept.
 */
/* No CO-RE: the program reads only UAPI layouts (bpf_perf_event_data and
 * x86's pt_regs) and the target's memory, so its load needs no kernel BTF
 * (parsing /sys/kernel/btf/vmlinux was half of the load, a cost every
 * session pays, Python target or not). */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "pyframes.h"

#define NO_FIELD 0xffff

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* tid */
	__type(value, __u64); /* its PyThreadState */
	__uint(max_entries, 65536);
	/* entries allocated as user space adds them: a session that samples
	 * no Python costs no map memory */
	__uint(map_flags, BPF_F_NO_PREALLOC);
} tstates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* tgid */
	__type(value, struct pyframes_cfg);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cfgs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* Events the ring buffer had no room for. */
__u64 dropped = 0;

/* The event is built here (per CPU: a perf_event program does not nest
 * on its CPU) and copied to the ring buffer when complete. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct pyframes_event);
	__uint(max_entries, 1);
} scratch SEC(".maps");

static __always_inline int rd(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

struct walk {
	__u64 frame; /* the next frame to read; 0: the chain ended */
	struct pyframes_cfg cfg;
};

/* One frame of the chain, as bpf_loop's callback: the verifier checks it
 * once, where an unrolled loop of PYFRAMES_MAX frames was checked frame by
 * frame (8800 instructions, most of the program's load time, paid by
 * every session, Python target or not). Returns 1 to stop. */
static long walk_frame(__u64 i, void *arg)
{
	struct walk *w = arg;
	__u32 zero = 0;
	struct pyframes_event *e = bpf_map_lookup_elem(&scratch, &zero);
	__u64 next;
	__u8 flag = 0;

	if (!e || !w->frame || i >= PYFRAMES_MAX)
		return 1;
	if (rd(&e->code[i], w->frame + w->cfg.frame_code) ||
	    rd(&e->instr[i], w->frame + w->cfg.frame_prev_instr)) {
		e->truncated = 1;
		return 1;
	}
	if (w->cfg.frame_flag != NO_FIELD &&
	    bpf_probe_read_user(&flag, 1, (const void *)(w->frame + w->cfg.frame_flag))) {
		e->truncated = 1;
		return 1;
	}
	e->flag[i] = flag;
	e->nframes = i + 1;
	if (rd(&next, w->frame + w->cfg.frame_previous)) {
		e->truncated = 1;
		return 1;
	}
	w->frame = next;
	return 0;
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32, zero = 0;
	struct pyframes_cfg *cfg;
	struct pyframes_event *e;
	struct walk w = {};
	__u64 *ts, v;

	/* a thread user space has not found a PyThreadState for (every
	 * thread of a program that is not CPython): one lookup, nothing else */
	ts = bpf_map_lookup_elem(&tstates, &tid);
	if (!ts)
		return 1;
	cfg = bpf_map_lookup_elem(&cfgs, &pid);
	if (!cfg)
		return 1;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 1;
	w.cfg = *cfg;
	if (w.cfg.tstate_cframe != NO_FIELD) {
		if (rd(&v, *ts + w.cfg.tstate_cframe) || !v ||
		    rd(&w.frame, v + w.cfg.cframe_current_frame))
			w.frame = 0;
	} else if (rd(&w.frame, *ts + w.cfg.tstate_current_frame)) {
		w.frame = 0;
	}
	e->pid = pid;
	e->tid = tid;
	e->time = bpf_ktime_get_ns();
	e->ip = PT_REGS_IP(&ctx->regs);
	e->nframes = 0;
	e->truncated = 0;
	bpf_loop(PYFRAMES_MAX, walk_frame, &w, 0);
	if (w.frame && e->nframes == PYFRAMES_MAX)
		e->truncated = 1;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		__sync_fetch_and_add(&dropped, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
