/*
 * libFuzzer target "record": the perf record decoder (sampler/record.h) on
 * hostile bytes.
 *
 * An input is a 24-byte prefix giving the format the events were "opened"
 * with (u64 sample_type, u64 regs_user_mask, u64 flags: bit 0 sample_id_all),
 * then the record bytes exactly as they would sit in the ring. The record is
 * copied into a malloc'd buffer of exactly its size, so ASan sees any read
 * past the end, and the buffer is 8-byte aligned as ring records are (the
 * decoder's borrowed u64 arrays rely on that).
 *
 * Beyond "does not crash", the target checks the decoder's contract: every
 * borrowed pointer is readable for the length it claims, dyn_size never
 * exceeds stack_size, strings end inside the record, and a record the encoder
 * accepts decodes back to the same fields (encode is the decoder's inverse).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/perf/record.h"

#define PREFIX_SIZE 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fail loudly: libFuzzer records the input as a crash. */
#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-record: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static volatile uint64_t sink;

/* Read every byte the decoded record borrows, so ASan checks the bounds the
 * decoder promised. */
static void touch(const struct stoke_perf_record *rec, const uint8_t *buf, size_t len)
{
	const uint8_t *end = buf + len;
	uint64_t acc = 0;

	switch (rec->type) {
	case STOKE_REC_SAMPLE: {
		const struct stoke_perf_sample *s = &rec->sample;

		for (uint64_t i = 0; i < s->nr; i++)
			acc += s->callchain[i];
		for (uint32_t i = 0; i < s->nr_regs; i++)
			acc += s->regs[i];
		REQUIRE(s->dyn_size <= s->stack_size);
		if (s->stack_size) {
			REQUIRE(s->stack >= buf && s->stack + s->stack_size <= end);
			for (uint64_t i = 0; i < s->stack_size; i++)
				acc += s->stack[i];
		}
		break;
	}
	case STOKE_REC_MMAP:
		REQUIRE(rec->mmap.filename);
		REQUIRE(rec->mmap.filename + strlen(rec->mmap.filename) < (const char *)end);
		REQUIRE(rec->mmap.build_id_size <= sizeof(rec->mmap.build_id));
		break;
	case STOKE_REC_COMM:
		REQUIRE(rec->comm.comm);
		REQUIRE(rec->comm.comm + strlen(rec->comm.comm) < (const char *)end);
		break;
	default:
		break;
	}
	REQUIRE(stoke_record_type_name(rec->type) != NULL);
	sink = acc;
}

/* The fields both decodes must agree on (MMAP is re-encoded as MMAP2, so
 * only the MMAP fields, not raw_type, are compared). */
static void require_same(const struct stoke_perf_record *a, const struct stoke_perf_record *b)
{
	REQUIRE(a->type == b->type);
	switch (a->type) {
	case STOKE_REC_SAMPLE:
		REQUIRE(a->sample.ip == b->sample.ip && a->sample.tid == b->sample.tid);
		REQUIRE(a->sample.pid == b->sample.pid && a->sample.time == b->sample.time);
		REQUIRE(a->sample.nr == b->sample.nr);
		REQUIRE(!a->sample.nr || memcmp(a->sample.callchain, b->sample.callchain,
						a->sample.nr * sizeof(uint64_t)) == 0);
		REQUIRE(a->sample.nr_regs == b->sample.nr_regs);
		REQUIRE(a->sample.stack_size == b->sample.stack_size);
		REQUIRE(a->sample.dyn_size == b->sample.dyn_size);
		break;
	case STOKE_REC_MMAP:
		REQUIRE(a->mmap.addr == b->mmap.addr && a->mmap.len == b->mmap.len);
		REQUIRE(a->mmap.pgoff == b->mmap.pgoff && a->mmap.pid == b->mmap.pid);
		REQUIRE(strcmp(a->mmap.filename, b->mmap.filename) == 0);
		break;
	case STOKE_REC_COMM:
		REQUIRE(a->comm.pid == b->comm.pid && a->comm.exec == b->comm.exec);
		REQUIRE(strcmp(a->comm.comm, b->comm.comm) == 0);
		break;
	case STOKE_REC_FORK:
	case STOKE_REC_EXIT:
		REQUIRE(memcmp(&a->task, &b->task, sizeof(a->task)) == 0);
		break;
	case STOKE_REC_LOST:
		REQUIRE(a->lost.lost == b->lost.lost);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stoke_record_format fmt = { 0 };
	struct stoke_perf_record rec, again;
	uint64_t flags;
	uint8_t *buf, *enc;
	size_t len;
	int r;

	if (size < PREFIX_SIZE)
		return 0;
	memcpy(&fmt.sample_type, data, 8);
	memcpy(&fmt.regs_user_mask, data + 8, 8);
	memcpy(&flags, data + 16, 8);
	fmt.sample_id_all = flags & 1;
	len = size - PREFIX_SIZE;
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + PREFIX_SIZE, len);

	r = stoke_record_decode(&fmt, buf, len, &rec);
	REQUIRE(r == 0 || r == -EBADMSG);
	if (r == 0) {
		touch(&rec, buf, len);
		if (rec.type != STOKE_REC_OTHER) {
			/* The largest record the kernel can write is 64 KiB;
			 * an MMAP grows by the MMAP2 fields when re-encoded. */
			enc = malloc(70000);
			if (enc) {
				r = stoke_record_encode(&fmt, &rec, enc, 70000);
				REQUIRE(r >= 0 || r == -EINVAL || r == -ENOSPC);
				if (r > 0) {
					REQUIRE(stoke_record_decode(&fmt, enc, (size_t)r, &again) == 0);
					require_same(&rec, &again);
				}
				free(enc);
			}
		}
	}
	free(buf);
	return 0;
}
