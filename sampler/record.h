/*
 * perf_event records, decoded.
 *
 * The decoder is a pure function over bytes: it takes one record exactly as
 * the kernel lays it out in the ring buffer (struct perf_event_header first)
 * and the sample format the events were opened with, and fills a plain-data
 * struct whose pointers borrow from the input buffer. It never reads past
 * header.size and rejects anything inconsistent with -EBADMSG, so it is safe
 * on untrusted bytes (it is a fuzz target).
 *
 * The encoder is the inverse, used to synthesize records (from /proc at
 * attach) and by tests for round-trips.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the decoder needs to know about how the events were opened. */
struct stoke_record_format {
	uint64_t sample_type;    /* perf_event_attr.sample_type */
	uint64_t regs_user_mask; /* perf_event_attr.sample_regs_user */
	bool sample_id_all;      /* perf_event_attr.sample_id_all */
};

enum stoke_record_type {
	STOKE_REC_SAMPLE = 1,
	STOKE_REC_MMAP,  /* PERF_RECORD_MMAP or MMAP2 */
	STOKE_REC_COMM,
	STOKE_REC_FORK,
	STOKE_REC_EXIT,
	STOKE_REC_LOST,
	STOKE_REC_THROTTLE,
	STOKE_REC_UNTHROTTLE,
	STOKE_REC_OTHER, /* a valid record of a type we do not use */
};

/* Fields appended to non-sample records when sample_id_all is set; only the
 * ones selected by sample_type are valid (see has_*). */
struct stoke_sample_id {
	uint32_t pid, tid;
	uint64_t time;
	uint32_t cpu;
	bool has_tid, has_time, has_cpu;
};

#define STOKE_MAX_REGS 64

struct stoke_sample {
	uint32_t pid, tid;
	uint64_t ip;
	uint64_t time;
	uint32_t cpu;
	uint64_t period;
	/* PERF_SAMPLE_CALLCHAIN: nr entries, context markers
	 * (PERF_CONTEXT_KERNEL/USER, >= PERF_CONTEXT_MAX) included as the kernel
	 * wrote them. Borrowed from the record. */
	uint64_t nr;
	const uint64_t *callchain;
	/* PERF_SAMPLE_REGS_USER: abi is PERF_SAMPLE_REGS_ABI_*; regs has one value
	 * per bit set in regs_user_mask, in bit order; nr_regs is 0 when abi is
	 * NONE (e.g. a kernel thread). Borrowed. */
	uint64_t regs_abi;
	uint32_t nr_regs;
	const uint64_t *regs;
	/* PERF_SAMPLE_STACK_USER: the copy (stack_size bytes) and the valid
	 * prefix length (dyn_size <= stack_size). Borrowed. */
	uint64_t stack_size;
	uint64_t dyn_size;
	const uint8_t *stack;
	/* Samplers that aggregate in the kernel (bpf/) deliver one record
	 * for many samples: weight is how many (0 means 1); kind is a
	 * stoke_psample_kind (0: on CPU); off CPU, reason names why the
	 * thread was off CPU (a synthetic leaf frame; the string lives as
	 * long as the sampler). Never set by the decoder. */
	uint64_t weight;
	uint8_t kind;
	const char *reason;
};

struct stoke_mmap {
	uint32_t pid, tid;
	uint64_t addr, len, pgoff;
	/* MMAP2 only (is_mmap2): either the device identity or a build-id. */
	bool is_mmap2;
	bool has_build_id;
	uint32_t maj, min;
	uint64_t ino, ino_generation;
	uint8_t build_id_size;
	uint8_t build_id[20];
	uint32_t prot, flags;
	bool kernel;  /* header.misc has PERF_RECORD_MISC_KERNEL */
	const char *filename; /* NUL-terminated, borrowed */
};

struct stoke_comm {
	uint32_t pid, tid;
	bool exec; /* PERF_RECORD_MISC_COMM_EXEC */
	const char *comm; /* NUL-terminated, borrowed */
};

/* FORK and EXIT share the kernel layout. */
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

struct stoke_record {
	enum stoke_record_type type;
	uint32_t raw_type; /* perf_event_header.type */
	uint16_t misc;     /* perf_event_header.misc */
	union {
		struct stoke_sample sample;
		struct stoke_mmap mmap;
		struct stoke_comm comm;
		struct stoke_task task;
		struct stoke_lost lost;
		struct stoke_throttle throttle;
	};
	struct stoke_sample_id id; /* non-sample records with sample_id_all */
};

/*
 * Decode the record at buf (len bytes available, which must cover
 * header.size). Returns 0, or -EBADMSG for a truncated or inconsistent record.
 * On success *ret is filled; its pointers borrow from buf.
 */
int stoke_record_decode(const struct stoke_record_format *fmt, const void *buf,
			size_t len, struct stoke_record *ret);

/*
 * Encode rec (any type but OTHER) into buf of cap bytes, as the kernel would
 * lay it out for fmt (8-byte aligned, sample_id trailer when sample_id_all).
 * MMAP records are written as PERF_RECORD_MMAP2. Returns the record size, or
 * -ENOSPC when cap is too small, or -EINVAL.
 */
int stoke_record_encode(const struct stoke_record_format *fmt,
			const struct stoke_record *rec, void *buf, size_t cap);

/* Name of a decoded type, for debugging ("sample", "mmap", …). */
const char *stoke_record_type_name(enum stoke_record_type type);
