/*
 * Shared between pyframes.bpf.c (kernel side) and source.c: the Python
 * frame chain of the sampled thread, read by a BPF program attached to the
 * sampling perf event at the instant of each sample.
 */
#pragma once

#define PYFRAMES_MAX 64

/* Per process: the layout of its interpreter (offsets.h), in bytes. */
struct pyframes_cfg {
	__u16 tstate_cframe; /* 0xffff: tstate_current_frame instead */
	__u16 tstate_current_frame;
	__u16 cframe_current_frame;
	__u16 frame_code, frame_previous, frame_prev_instr;
	__u16 frame_flag; /* 3.11: is_entry; 3.12+: owner; 0xffff: none */
	__u16 pad;
};

/* One sample's Python stack, innermost first: code objects and the
 * instruction pointers into them, and each frame's flag byte. */
struct pyframes_event {
	__u32 pid, tid;
	__u64 time; /* bpf_ktime_get_ns (CLOCK_MONOTONIC; see source.c's event_of) */
	__u64 ip;   /* the sampled IP */
	__u32 nframes;
	__u32 truncated; /* 1: deeper than PYFRAMES_MAX or a read failed */
	__u64 code[PYFRAMES_MAX];
	__u64 instr[PYFRAMES_MAX];
	__u8 flag[PYFRAMES_MAX];
};
