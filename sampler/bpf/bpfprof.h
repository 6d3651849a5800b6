/*
 * Types shared by the eBPF sampler's kernel side (bpfprof.bpf.c) and its
 * user space (bpfprof.c). Both include this file, so it uses only fixed-size
 * types that exist in both worlds.
 */
#pragma once

#define BPFPROF_COMM_LEN 16
/* Frames kept per stack (kernel and user each): the kernel's default
 * perf_event_max_stack. */
#define BPFPROF_MAX_DEPTH 127

enum bpfprof_kind {
	BPFPROF_ON_CPU = 0,  /* value: number of samples */
	BPFPROF_OFF_CPU = 1, /* value: nanoseconds blocked */
};

/* One aggregated stack of one thread. Stack ids index the stacks map; a
 * negative id is the -errno bpf_get_stackid gave (no such stack). */
struct bpfprof_key {
	unsigned int tgid, pid;
	int kstack, ustack;
	unsigned int kind;  /* enum bpfprof_kind */
	unsigned int state; /* off-CPU: the task state at switch-out */
	long long syscall;  /* off-CPU: the syscall it blocked in, or -1 */
	char comm[BPFPROF_COMM_LEN];
};

/* What the kernel side tells user space at once (ring buffer), so that a
 * process's mappings are read while it still exists. */
enum bpfprof_event_type {
	BPFPROF_EV_NEW = 1, /* first sample or switch of a process */
	BPFPROF_EV_EXEC,    /* the process exec'ed: new mappings */
	BPFPROF_EV_OFFSTACK, /* a thread blocked: its stacks (DWARF mode) */
	BPFPROF_EV_OFFEND,   /* it ran again: how long it was away */
	BPFPROF_EV_MMAP,     /* a known process maps code (dlopen) */
};

/* The user registers copied at switch-out, in perf's x86-64 order for
 * sample_regs_user 0xff0fff: AX BX CX DX SI DI BP SP IP FLAGS CS SS
 * R8..R15. */
#define BPFPROF_NR_REGS 20
/* The most user stack copied at switch-out (a ring buffer record is of
 * fixed size). */
#define BPFPROF_MAX_STACK_COPY 16384

struct bpfprof_event {
	unsigned int type;
	unsigned int tgid, pid;
	char comm[BPFPROF_COMM_LEN];
};

/* --off-cpu with -g dwarf: at switch-out, the blocked thread's kernel stack
 * and its user registers and stack bytes, for user space to unwind with
 * DWARF; the block is identified by (pid, start). */
struct bpfprof_offstack {
	unsigned int type; /* BPFPROF_EV_OFFSTACK */
	unsigned int tgid, pid;
	unsigned int state;
	long long syscall;
	unsigned long long start;
	unsigned int nkips;     /* kernel frames in kips */
	unsigned int stack_len; /* valid bytes of stack (0: not readable) */
	unsigned long long kips[BPFPROF_MAX_DEPTH];
	unsigned long long regs[BPFPROF_NR_REGS];
	unsigned char stack[BPFPROF_MAX_STACK_COPY];
};

struct bpfprof_offend {
	unsigned int type; /* BPFPROF_EV_OFFEND */
	unsigned int tgid, pid;
	char comm[BPFPROF_COMM_LEN];
	unsigned long long start, ns;
};

/* Counters (a per-CPU array indexed by these). */
enum bpfprof_counter {
	BPFPROF_CNT_SAMPLES,    /* on-CPU samples taken */
	BPFPROF_CNT_IDLE,       /* samples of the idle task (not kept) */
	BPFPROF_CNT_FILTERED,   /* samples of other processes (not kept) */
	BPFPROF_CNT_MAP_FULL,   /* samples lost: the counts map was full */
	BPFPROF_CNT_STACK_LOST, /* stacks the stack map had no room for */
	BPFPROF_CNT_EVENT_LOST, /* ring buffer full: a process not announced */
	BPFPROF_CNT_OFF_FULL,   /* switch-outs not tracked: start map full */
	BPFPROF_CNT_OFF_COPY_LOST, /* stack copies the ring buffer had no room
				    * for (those blocks are not counted) */
	BPFPROF_CNT_NR,
};
