/*
 * The samples and records every sampler delivers, whatever takes them.
 *
 * This is the one type the rest of the pipeline (stack/, symbolizer/,
 * session/) sees of a sampler. It knows nothing of perf_event: each backend
 * (sampler/perf/, sampler/signal/, sampler/bpf/, a test's synthetic one)
 * converts what it reads into these once, in its own folder, so a new
 * backend never has to fake another one's wire format.
 *
 * Records borrow: every pointer is valid only during the callback that
 * receives the record.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stoke_record_type {
	STOKE_REC_SAMPLE = 1,
	STOKE_REC_MMAP, /* a new mapping (or one that existed at attach) */
	STOKE_REC_COMM,
	STOKE_REC_FORK,
	STOKE_REC_EXIT,
	STOKE_REC_LOST,
	STOKE_REC_THROTTLE,
	STOKE_REC_UNTHROTTLE,
	STOKE_REC_OTHER, /* a valid record of a type nothing uses */
	STOKE_REC_SPAN,  /* a span began or ended (include/stoke/span.h) */
};

/* Where a record of another type than SAMPLE came from, when the backend
 * knows (only the has_* fields are valid). */
struct stoke_sample_id {
	uint32_t pid, tid;
	uint64_t time;
	uint32_t cpu;
	bool has_tid, has_time, has_cpu;
};

/*
 * User registers, in DWARF numbering for x86-64 (which is also
 * libunwind's): rax rdx rcx rbx rsi rdi rbp rsp r8 … r15 rip.
 */
enum {
	STOKE_DWARF_RAX = 0,
	STOKE_DWARF_RDX,
	STOKE_DWARF_RCX,
	STOKE_DWARF_RBX,
	STOKE_DWARF_RSI,
	STOKE_DWARF_RDI,
	STOKE_DWARF_RBP,
	STOKE_DWARF_RSP,
	STOKE_DWARF_R8, /* … R15 = 15 */
	STOKE_DWARF_RIP = 16,
	STOKE_DWARF_NREGS,
};

/* What a sample's registers are. */
enum stoke_regs_kind {
	STOKE_REGS_NONE = 0, /* none taken: the stack is in the IP lists */
	STOKE_REGS_X86_64,   /* regs[] holds the STOKE_DWARF_NREGS registers */
	STOKE_REGS_UNUSABLE, /* taken, but of another ABI or set: the sample
			      * wants unwinding and cannot have it */
};

struct stoke_sample {
	uint32_t pid, tid;
	uint32_t cpu;
	uint64_t time;   /* ns, CLOCK_MONOTONIC */
	uint64_t period; /* the event's period (informational) */
	uint64_t ip;     /* the sampled IP */
	/* Samplers that aggregate (bpf/) deliver one record for many samples:
	 * weight is how many (0 means 1); kind is a stoke_psample_kind (0: on
	 * CPU); off CPU, reason names why the thread was off CPU (a synthetic
	 * leaf frame; the string lives as long as the sampler). */
	uint64_t weight;
	uint8_t kind;
	const char *reason;
	/*
	 * The call stack the sampler walked itself, leaf first, split by
	 * side. has_stack is false when it walked none (then the IP alone
	 * is the stack, unless registers say to unwind); the first entry of
	 * each side is an exact IP, the others return addresses.
	 */
	bool has_stack;
	uint32_t nr_kernel_ips, nr_user_ips;
	const uint64_t *kernel_ips;
	const uint64_t *user_ips;
	/* For unwinding the user stack later (stack/): the registers and a
	 * copy of stack_len bytes of the stack starting at stack_addr. */
	uint8_t regs_kind; /* enum stoke_regs_kind */
	uint64_t regs[STOKE_DWARF_NREGS];
	uint64_t stack_addr;
	uint64_t stack_len;
	const uint8_t *stack;
};

struct stoke_mmap {
	uint32_t pid, tid;
	uint64_t addr, len, pgoff;
	/* The file's identity, when known (is_mmap2): the device and inode
	 * or a build-id. */
	bool is_mmap2;
	bool has_build_id;
	uint32_t maj, min;
	uint64_t ino, ino_generation;
	uint8_t build_id_size;
	uint8_t build_id[20];
	uint32_t prot, flags;
	bool kernel;          /* a kernel (or kernel module) mapping */
	const char *filename; /* NUL-terminated, borrowed */
};

struct stoke_comm {
	uint32_t pid, tid;
	bool exec;        /* the name changed by an exec */
	const char *comm; /* NUL-terminated, borrowed */
};

/* FORK and EXIT. */
struct stoke_task {
	uint32_t pid, ppid, tid, ptid;
	uint64_t time;
};

struct stoke_lost {
	uint64_t id, lost;
};

struct stoke_throttle {
	uint64_t time, id, stream_id;
};

/* A span probe hit (include/stoke/span.h): on thread tid at time, a span
 * named name began or ended; meta is the begin's "key=value" strings, each
 * NUL-terminated, meta_len bytes in all. Strings are borrowed. */
struct stoke_span_event {
	uint32_t pid, tid;
	uint64_t time; /* ns, CLOCK_MONOTONIC */
	bool begin;
	const char *name; /* NUL-terminated */
	const char *meta;
	size_t meta_len;
};

struct stoke_record {
	enum stoke_record_type type;
	union {
		struct stoke_sample sample;
		struct stoke_mmap mmap;
		struct stoke_comm comm;
		struct stoke_task task;
		struct stoke_lost lost;
		struct stoke_throttle throttle;
		struct stoke_span_event span;
	};
	struct stoke_sample_id id; /* records other than SAMPLE */
};

/* Name of a record type, for debugging ("sample", "mmap", …). */
const char *stoke_record_type_name(enum stoke_record_type type);
