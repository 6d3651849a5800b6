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

#include "sampler/sample.h"

/* What the decoder needs to know about how the events were opened. */
struct stoke_record_format {
	uint64_t sample_type;    /* perf_event_attr.sample_type */
	uint64_t regs_user_mask; /* perf_event_attr.sample_regs_user */
	bool sample_id_all;      /* perf_event_attr.sample_id_all */
};

#define STOKE_MAX_REGS 64

/* A PERF_RECORD_SAMPLE as the kernel wrote it. */
struct stoke_perf_sample {
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
};

/* A decoded perf record: the neutral records (sample.h) for every type but
 * SAMPLE, which stays perf's until stoke_perf_sample_convert. */
struct stoke_perf_record {
	enum stoke_record_type type;
	uint32_t raw_type; /* perf_event_header.type */
	uint16_t misc;     /* perf_event_header.misc */
	union {
		struct stoke_perf_sample sample;
		struct stoke_mmap mmap;
		struct stoke_comm comm;
		struct stoke_task task;
		struct stoke_lost lost;
		struct stoke_throttle throttle;
	};
	struct stoke_sample_id id; /* non-sample records with sample_id_all */
};

/* The x86-64 user registers stoke asks perf for (PERF_REG_X86_AX ..
 * PERF_REG_X86_R15 without the segment registers DS/ES/FS/GS, which do not
 * exist in 64-bit mode): exactly the DWARF set of sample.h. */
#define STOKE_PERF_REGS_MASK 0xff0fffULL

/*
 * The neutral sample of a perf one (perf's one conversion): the callchain's
 * context markers become the kernel and user IP lists, perf's register
 * order and ABI become DWARF-numbered registers (regs_user_mask is the mask
 * the events were opened with). ret borrows from ps.
 */
void stoke_perf_sample_convert(const struct stoke_perf_sample *ps, uint64_t regs_user_mask,
			       struct stoke_sample *ret);

/*
 * Registers laid out as perf writes them for STOKE_PERF_REGS_MASK (AX BX CX
 * DX SI DI BP SP IP FLAGS CS SS R8..R15: the layout the signal agent and the
 * bpf program copy too) into ret's DWARF-numbered regs; sets regs_kind and
 * stack_addr (the stack copy starts at SP).
 */
void stoke_perf_regs_to_dwarf(const uint64_t *regs, struct stoke_sample *ret);

/* The neutral record of a decoded one (see stoke_perf_sample_convert). */
void stoke_perf_record_convert(const struct stoke_perf_record *pr, uint64_t regs_user_mask,
			       struct stoke_record *ret);

/*
 * Decode the record at buf (len bytes available, which must cover
 * header.size). Returns 0, or -EBADMSG for a truncated or inconsistent record.
 * On success *ret is filled; its pointers borrow from buf.
 */
int stoke_record_decode(const struct stoke_record_format *fmt, const void *buf,
			size_t len, struct stoke_perf_record *ret);

/*
 * Encode rec (any type but OTHER) into buf of cap bytes, as the kernel would
 * lay it out for fmt (8-byte aligned, sample_id trailer when sample_id_all).
 * MMAP records are written as PERF_RECORD_MMAP2. Returns the record size, or
 * -ENOSPC when cap is too small, or -EINVAL.
 */
int stoke_record_encode(const struct stoke_record_format *fmt,
			const struct stoke_perf_record *rec, void *buf, size_t cap);

