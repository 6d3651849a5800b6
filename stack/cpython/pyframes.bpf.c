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

static __always_inline int rd(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	struct pyframes_cfg *cfg;
	struct pyframes_event *e;
	__u64 *ts, frame = 0, v;

	ts = bpf_map_lookup_elem(&tstates, &tid);
	if (!ts)
		return 1;
	cfg = bpf_map_lookup_elem(&cfgs, &pid);
	if (!cfg)
		return 1;
	if (cfg->tstate_cframe != NO_FIELD) {
		if (rd(&v, *ts + cfg->tstate_cframe) || !v || rd(&frame, v + cfg->cframe_current_frame))
			frame = 0;
	} else if (rd(&frame, *ts + cfg->tstate_current_frame)) {
		frame = 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return 1;
	}
	e->pid = pid;
	e->tid = tid;
	e->time = bpf_ktime_get_ns();
	e->ip = PT_REGS_IP(&ctx->regs);
	e->nframes = 0;
	e->truncated = 0;
	for (int i = 0; i < PYFRAMES_MAX; i++) {
		__u8 flag = 0;

		if (!frame)
			break;
		if (rd(&e->code[i], frame + cfg->frame_code) ||
		    rd(&e->instr[i], frame + cfg->frame_prev_instr)) {
			e->truncated = 1;
			break;
		}
		if (cfg->frame_flag != NO_FIELD &&
		    bpf_probe_read_user(&flag, 1, (const void *)(frame + cfg->frame_flag))) {
			e->truncated = 1;
			break;
		}
		e->flag[i] = flag;
		e->nframes = i + 1;
		if (rd(&frame, frame + cfg->frame_previous)) {
			e->truncated = 1;
			break;
		}
	}
	if (frame && e->nframes == PYFRAMES_MAX)
		e->truncated = 1;
	bpf_ringbuf_submit(e, 0);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
