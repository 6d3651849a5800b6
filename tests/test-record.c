/*
 * Unit tests for the perf record decoder and encoder (sampler/record.c).
 *
 * Round-trips cover every record type and several sample formats; records
 * laid out by hand from the comments in linux/perf_event.h pin the byte
 * layout, so a bug shared by encoder and decoder cannot hide. Truncated,
 * corrupt and mutated records are decoded from exactly-sized heap copies so
 * that the sanitizer build catches any read past the record.
 */
#include <check.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/perf/record.h"

#define BASIC_ST                                                        \
	(PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |          \
	 PERF_SAMPLE_CPU | PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN)
#define DWARF_ST (BASIC_ST | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER)
/* x86-64 user registers libunwind needs: AX..R15 minus segment regs. */
#define REGS_MASK 0xff0fffULL

static const struct stoke_record_format fmt_basic = {
	.sample_type = BASIC_ST,
	.sample_id_all = true,
};
static const struct stoke_record_format fmt_dwarf = {
	.sample_type = DWARF_ST,
	.regs_user_mask = REGS_MASK,
	.sample_id_all = true,
};
/* Every sample_id field, to pin the trailer order. */
static const struct stoke_record_format fmt_allid = {
	.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP |
		       PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR |
		       PERF_SAMPLE_ID | PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU |
		       PERF_SAMPLE_PERIOD,
	.sample_id_all = true,
};
static const struct stoke_record_format fmt_noid = {
	.sample_type = BASIC_ST,
	.sample_id_all = false,
};

/* u64-aligned scratch, as records are in the ring. */
static uint64_t buf[65536 / 8];

static int encode(const struct stoke_record_format *fmt,
		  const struct stoke_perf_record *rec)
{
	memset(buf, 0xaa, sizeof(buf));
	return stoke_record_encode(fmt, rec, buf, sizeof(buf));
}

static void roundtrip(const struct stoke_record_format *fmt,
		      const struct stoke_perf_record *in, struct stoke_perf_record *out)
{
	const struct perf_event_header *h = (const void *)buf;
	int n = encode(fmt, in);

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(n % 8, 0);
	ck_assert_int_eq(h->size, n);
	ck_assert_int_eq(stoke_record_decode(fmt, buf, (size_t)n, out), 0);
	ck_assert_int_eq(out->type, in->type);
	ck_assert_uint_eq(out->raw_type, h->type);
}

static struct stoke_perf_record make_sample(void)
{
	static const uint64_t chain[] = { PERF_CONTEXT_USER, 0x401000,
					  0x401234, 0x7f0000001000 };
	struct stoke_perf_record r = { .type = STOKE_REC_SAMPLE,
				  .misc = PERF_RECORD_MISC_USER };

	r.sample.pid = 100;
	r.sample.tid = 101;
	r.sample.ip = 0x401000;
	r.sample.time = 123456789;
	r.sample.cpu = 3;
	r.sample.period = 1001001;
	r.sample.nr = 4;
	r.sample.callchain = chain;
	return r;
}

static uint64_t regs[24];
static uint8_t stack[64];

static struct stoke_perf_record make_dwarf_sample(void)
{
	struct stoke_perf_record r = make_sample();

	for (size_t i = 0; i < 24; i++)
		regs[i] = 0x1000 + i;
	for (size_t i = 0; i < sizeof(stack); i++)
		stack[i] = (uint8_t)i;
	r.sample.regs_abi = PERF_SAMPLE_REGS_ABI_64;
	r.sample.nr_regs = 20; /* popcount(REGS_MASK) */
	r.sample.regs = regs;
	r.sample.stack_size = sizeof(stack);
	r.sample.dyn_size = 40;
	r.sample.stack = stack;
	return r;
}

static void check_sample_core(const struct stoke_perf_sample *a,
			      const struct stoke_perf_sample *b)
{
	ck_assert_uint_eq(a->pid, b->pid);
	ck_assert_uint_eq(a->tid, b->tid);
	ck_assert_uint_eq(a->ip, b->ip);
	ck_assert_uint_eq(a->time, b->time);
	ck_assert_uint_eq(a->cpu, b->cpu);
	ck_assert_uint_eq(a->period, b->period);
}

START_TEST(test_sample_callchain)
{
	struct stoke_perf_record in = make_sample(), out;

	roundtrip(&fmt_basic, &in, &out);
	check_sample_core(&in.sample, &out.sample);
	ck_assert_uint_eq(out.misc, PERF_RECORD_MISC_USER);
	ck_assert_uint_eq(out.sample.nr, 4);
	ck_assert_mem_eq(out.sample.callchain, in.sample.callchain, 4 * 8);
	/* Borrowed, not copied. */
	ck_assert_ptr_eq(out.sample.callchain, (const uint8_t *)buf + 56);
	ck_assert_uint_eq(out.sample.nr_regs, 0);
	ck_assert_ptr_null(out.sample.stack);
}
END_TEST

START_TEST(test_sample_no_callchain)
{
	struct stoke_record_format fmt = { .sample_type = PERF_SAMPLE_IP |
							  PERF_SAMPLE_TID |
							  PERF_SAMPLE_TIME };
	struct stoke_perf_record in = make_sample(), out;

	roundtrip(&fmt, &in, &out);
	ck_assert_int_eq(stoke_record_encode(&fmt, &in, buf, sizeof(buf)),
			 8 + 8 + 8 + 8);
	ck_assert_uint_eq(out.sample.ip, 0x401000);
	ck_assert_uint_eq(out.sample.pid, 100);
	ck_assert_uint_eq(out.sample.tid, 101);
	ck_assert_uint_eq(out.sample.time, 123456789);
	ck_assert_uint_eq(out.sample.cpu, 0);
	ck_assert_uint_eq(out.sample.nr, 0);
	ck_assert_ptr_null(out.sample.callchain);
}
END_TEST

START_TEST(test_sample_empty_callchain)
{
	struct stoke_perf_record in = make_sample(), out;

	in.sample.nr = 0;
	in.sample.callchain = NULL;
	roundtrip(&fmt_basic, &in, &out);
	ck_assert_uint_eq(out.sample.nr, 0);
	check_sample_core(&in.sample, &out.sample);
}
END_TEST

START_TEST(test_sample_regs_stack)
{
	struct stoke_perf_record in = make_dwarf_sample(), out;

	roundtrip(&fmt_dwarf, &in, &out);
	check_sample_core(&in.sample, &out.sample);
	ck_assert_uint_eq(out.sample.nr, 4);
	ck_assert_uint_eq(out.sample.regs_abi, PERF_SAMPLE_REGS_ABI_64);
	ck_assert_uint_eq(out.sample.nr_regs, 20);
	ck_assert_mem_eq(out.sample.regs, regs, 20 * 8);
	ck_assert_uint_eq(out.sample.stack_size, 64);
	ck_assert_uint_eq(out.sample.dyn_size, 40);
	ck_assert_mem_eq(out.sample.stack, stack, 64);
}
END_TEST

/* A kernel thread: abi NONE carries no regs, and an empty stack dump is a
 * lone size of 0 without dyn_size. */
START_TEST(test_sample_regs_none)
{
	struct stoke_perf_record in = make_dwarf_sample(), out;
	int n;

	in.sample.regs_abi = PERF_SAMPLE_REGS_ABI_NONE;
	in.sample.nr_regs = 0;
	in.sample.regs = NULL;
	in.sample.stack_size = 0;
	in.sample.dyn_size = 0;
	in.sample.stack = NULL;
	n = encode(&fmt_dwarf, &in);
	/* header, ip, tid, time, cpu, period, nr + 4, abi, stack size */
	ck_assert_int_eq(n, 8 * (1 + 5 + 5 + 1 + 1));
	roundtrip(&fmt_dwarf, &in, &out);
	ck_assert_uint_eq(out.sample.regs_abi, PERF_SAMPLE_REGS_ABI_NONE);
	ck_assert_uint_eq(out.sample.nr_regs, 0);
	ck_assert_ptr_null(out.sample.regs);
	ck_assert_uint_eq(out.sample.stack_size, 0);
	ck_assert_ptr_null(out.sample.stack);
}
END_TEST

START_TEST(test_sample_all_id_bits)
{
	struct stoke_perf_record in = make_sample(), out;

	roundtrip(&fmt_allid, &in, &out);
	check_sample_core(&in.sample, &out.sample);
	ck_assert_int_eq(encode(&fmt_allid, &in), 8 * 10);
}
END_TEST

/* Laid out by hand in the order of the PERF_RECORD_SAMPLE comment. */
START_TEST(test_sample_kernel_layout)
{
	struct stoke_record_format fmt = fmt_dwarf;
	struct stoke_perf_record out;
	uint64_t rec[32] = { 0 };
	size_t i = 1;
	struct perf_event_header h = { .type = PERF_RECORD_SAMPLE };

	fmt.sample_type |= PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_ADDR |
			   PERF_SAMPLE_ID | PERF_SAMPLE_STREAM_ID;
	fmt.regs_user_mask = 0x7; /* 3 regs */
	rec[i++] = 0x1d;                      /* identifier */
	rec[i++] = 0xaaaa;                    /* ip */
	rec[i++] = 7 | (uint64_t)8 << 32;     /* pid 7, tid 8 */
	rec[i++] = 999;                       /* time */
	rec[i++] = 0xadd7;                    /* addr */
	rec[i++] = 0x1d2;                     /* id */
	rec[i++] = 0x57;                      /* stream_id */
	rec[i++] = 5 | (uint64_t)0xdead << 32; /* cpu 5, res */
	rec[i++] = 4000;                      /* period */
	rec[i++] = 2;                         /* nr */
	rec[i++] = PERF_CONTEXT_USER;
	rec[i++] = 0xaaaa;
	rec[i++] = PERF_SAMPLE_REGS_ABI_64;   /* abi */
	rec[i++] = 0x11;
	rec[i++] = 0x22;
	rec[i++] = 0x33;
	rec[i++] = 16;                        /* stack size */
	rec[i++] = 0x0102030405060708;
	rec[i++] = 0x1112131415161718;
	rec[i++] = 12;                        /* dyn_size */
	h.size = (uint16_t)(i * 8);
	memcpy(rec, &h, sizeof(h));

	ck_assert_int_eq(stoke_record_decode(&fmt, rec, i * 8, &out), 0);
	ck_assert_int_eq(out.type, STOKE_REC_SAMPLE);
	ck_assert_uint_eq(out.sample.ip, 0xaaaa);
	ck_assert_uint_eq(out.sample.pid, 7);
	ck_assert_uint_eq(out.sample.tid, 8);
	ck_assert_uint_eq(out.sample.time, 999);
	ck_assert_uint_eq(out.sample.cpu, 5);
	ck_assert_uint_eq(out.sample.period, 4000);
	ck_assert_uint_eq(out.sample.nr, 2);
	ck_assert_uint_eq(out.sample.callchain[1], 0xaaaa);
	ck_assert_uint_eq(out.sample.nr_regs, 3);
	ck_assert_uint_eq(out.sample.regs[2], 0x33);
	ck_assert_uint_eq(out.sample.stack_size, 16);
	ck_assert_ptr_eq(out.sample.stack, &rec[18]);
	ck_assert_uint_eq(out.sample.dyn_size, 12);

	/* And the encoder writes the same bytes (ids it cannot know are 0). */
	rec[1] = rec[5] = rec[6] = rec[7] = 0;
	rec[8] &= 0xffffffff;
	ck_assert_int_eq(stoke_record_encode(&fmt, &out, buf, sizeof(buf)),
			 (int)(i * 8));
	ck_assert_mem_eq(buf, rec, i * 8);
}
END_TEST

START_TEST(test_sample_unsupported_bits)
{
	static const uint64_t before[] = { PERF_SAMPLE_READ, PERF_SAMPLE_RAW,
					   PERF_SAMPLE_BRANCH_STACK };
	struct stoke_perf_record in = make_sample(), out;
	struct stoke_record_format fmt = fmt_basic;
	int n = encode(&fmt_basic, &in);

	for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
		fmt.sample_type = BASIC_ST | before[i];
		ck_assert_int_eq(stoke_record_decode(&fmt, buf, (size_t)n, &out),
				 -EBADMSG);
		ck_assert_int_eq(stoke_record_encode(&fmt, &in, buf, sizeof(buf)),
				 -EINVAL);
		n = encode(&fmt_basic, &in);
	}
	/* Fields after STACK_USER do not move ours: they are ignored. */
	fmt.sample_type = BASIC_ST | PERF_SAMPLE_WEIGHT | PERF_SAMPLE_DATA_SRC;
	ck_assert_int_eq(stoke_record_decode(&fmt, buf, (size_t)n, &out), 0);
	ck_assert_uint_eq(out.sample.nr, 4);
}
END_TEST

static struct stoke_perf_record make_mmap(bool build_id)
{
	struct stoke_perf_record r = { .type = STOKE_REC_MMAP };

	r.mmap.pid = 42;
	r.mmap.tid = 43;
	r.mmap.addr = 0x7f0000000000;
	r.mmap.len = 0x21000;
	r.mmap.pgoff = 0x2000;
	r.mmap.prot = 5;
	r.mmap.flags = 2;
	r.mmap.filename = "/usr/lib/x86_64-linux-gnu/libc.so.6";
	if (build_id) {
		r.mmap.has_build_id = true;
		r.mmap.build_id_size = 20;
		for (int i = 0; i < 20; i++)
			r.mmap.build_id[i] = (uint8_t)(0xb0 + i);
	} else {
		r.mmap.maj = 0xfe;
		r.mmap.min = 1;
		r.mmap.ino = 247498;
		r.mmap.ino_generation = 7;
	}
	r.id.pid = 42;
	r.id.tid = 43;
	r.id.time = 555;
	r.id.cpu = 2;
	return r;
}

static void check_id(const struct stoke_perf_record *out)
{
	ck_assert(out->id.has_tid && out->id.has_time && out->id.has_cpu);
	ck_assert_uint_eq(out->id.pid, 42);
	ck_assert_uint_eq(out->id.tid, 43);
	ck_assert_uint_eq(out->id.time, 555);
	ck_assert_uint_eq(out->id.cpu, 2);
}

START_TEST(test_mmap2_dev)
{
	struct stoke_perf_record in = make_mmap(false), out;
	const struct perf_event_header *h = (const void *)buf;

	roundtrip(&fmt_basic, &in, &out);
	ck_assert_uint_eq(h->type, PERF_RECORD_MMAP2);
	ck_assert(!(h->misc & PERF_RECORD_MISC_MMAP_BUILD_ID));
	ck_assert(out.mmap.is_mmap2 && !out.mmap.has_build_id && !out.mmap.kernel);
	ck_assert_uint_eq(out.mmap.pid, 42);
	ck_assert_uint_eq(out.mmap.tid, 43);
	ck_assert_uint_eq(out.mmap.addr, in.mmap.addr);
	ck_assert_uint_eq(out.mmap.len, in.mmap.len);
	ck_assert_uint_eq(out.mmap.pgoff, in.mmap.pgoff);
	ck_assert_uint_eq(out.mmap.maj, 0xfe);
	ck_assert_uint_eq(out.mmap.min, 1);
	ck_assert_uint_eq(out.mmap.ino, 247498);
	ck_assert_uint_eq(out.mmap.ino_generation, 7);
	ck_assert_uint_eq(out.mmap.prot, 5);
	ck_assert_uint_eq(out.mmap.flags, 2);
	ck_assert_str_eq(out.mmap.filename, in.mmap.filename);
	/* The filename sits at its kernel offset, right after prot/flags. */
	ck_assert_ptr_eq(out.mmap.filename, (const char *)buf + 72);
	check_id(&out);
}
END_TEST

START_TEST(test_mmap2_build_id)
{
	struct stoke_perf_record in = make_mmap(true), out;
	const struct perf_event_header *h = (const void *)buf;
	const uint8_t *b = (const void *)buf;

	in.mmap.kernel = true;
	roundtrip(&fmt_basic, &in, &out);
	ck_assert(h->misc & PERF_RECORD_MISC_MMAP_BUILD_ID);
	ck_assert_uint_eq(h->misc & PERF_RECORD_MISC_CPUMODE_MASK,
			  PERF_RECORD_MISC_KERNEL);
	ck_assert_uint_eq(b[40], 20); /* build_id_size */
	ck_assert_uint_eq(b[44], 0xb0);
	ck_assert(out.mmap.is_mmap2 && out.mmap.has_build_id && out.mmap.kernel);
	ck_assert_uint_eq(out.mmap.build_id_size, 20);
	ck_assert_mem_eq(out.mmap.build_id, in.mmap.build_id, 20);
	ck_assert_uint_eq(out.mmap.maj, 0);
	ck_assert_uint_eq(out.mmap.ino, 0);
	ck_assert_str_eq(out.mmap.filename, in.mmap.filename);
	check_id(&out);

	/* A build-id longer than the field is inconsistent. */
	((uint8_t *)buf)[40] = 21;
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, h->size, &out),
			 -EBADMSG);
}
END_TEST

/* PERF_RECORD_MMAP (old layout) is only decoded, so build one by hand. */
START_TEST(test_mmap_old)
{
	struct stoke_perf_record out;
	uint64_t rec[8] = { 0 };
	struct perf_event_header h = { .type = PERF_RECORD_MMAP,
				       .misc = PERF_RECORD_MISC_USER,
				       .size = 8 + 8 + 24 + 16 };
	uint32_t ids[2] = { 9, 10 };

	memcpy(rec, &h, sizeof(h));
	memcpy(&rec[1], ids, sizeof(ids));
	rec[2] = 0x400000;
	rec[3] = 0x1000;
	rec[4] = 0;
	memcpy(&rec[5], "/bin/true", 10);
	ck_assert_int_eq(stoke_record_decode(&fmt_noid, rec, h.size, &out), 0);
	ck_assert_int_eq(out.type, STOKE_REC_MMAP);
	ck_assert(!out.mmap.is_mmap2 && !out.mmap.kernel);
	ck_assert_uint_eq(out.mmap.pid, 9);
	ck_assert_uint_eq(out.mmap.tid, 10);
	ck_assert_uint_eq(out.mmap.addr, 0x400000);
	ck_assert_uint_eq(out.mmap.len, 0x1000);
	ck_assert_str_eq(out.mmap.filename, "/bin/true");
	ck_assert(!out.id.has_tid && !out.id.has_time && !out.id.has_cpu);
}
END_TEST

START_TEST(test_comm)
{
	struct stoke_perf_record in = { .type = STOKE_REC_COMM }, out;

	in.comm.pid = 7;
	in.comm.tid = 8;
	in.comm.comm = "worker-1";
	in.id = make_mmap(false).id;
	roundtrip(&fmt_basic, &in, &out);
	ck_assert(!out.comm.exec);
	ck_assert_uint_eq(out.comm.pid, 7);
	ck_assert_uint_eq(out.comm.tid, 8);
	ck_assert_str_eq(out.comm.comm, "worker-1");
	check_id(&out);

	in.comm.exec = true;
	in.comm.comm = "abcdefg"; /* 8 bytes with NUL: no padding */
	roundtrip(&fmt_noid, &in, &out);
	ck_assert(out.comm.exec);
	ck_assert(out.misc & PERF_RECORD_MISC_COMM_EXEC);
	ck_assert_str_eq(out.comm.comm, "abcdefg");
	ck_assert_int_eq(encode(&fmt_noid, &in), 8 + 8 + 8);
}
END_TEST

START_TEST(test_task)
{
	static const enum stoke_record_type types[] = { STOKE_REC_FORK,
							STOKE_REC_EXIT };
	static const uint32_t raw[] = { PERF_RECORD_FORK, PERF_RECORD_EXIT };

	for (int i = 0; i < 2; i++) {
		struct stoke_perf_record in = { .type = types[i] }, out;

		in.task = (struct stoke_task){ 10, 1, 11, 10, 777 };
		in.id = make_mmap(false).id;
		roundtrip(&fmt_basic, &in, &out);
		ck_assert_uint_eq(out.raw_type, raw[i]);
		ck_assert_uint_eq(out.task.pid, 10);
		ck_assert_uint_eq(out.task.ppid, 1);
		ck_assert_uint_eq(out.task.tid, 11);
		ck_assert_uint_eq(out.task.ptid, 10);
		ck_assert_uint_eq(out.task.time, 777);
		check_id(&out);
	}
}
END_TEST

START_TEST(test_lost_throttle)
{
	struct stoke_perf_record in = { .type = STOKE_REC_LOST }, out;

	in.lost.id = 3;
	in.lost.lost = 1234;
	in.id = make_mmap(false).id;
	roundtrip(&fmt_basic, &in, &out);
	ck_assert_uint_eq(out.raw_type, PERF_RECORD_LOST);
	ck_assert_uint_eq(out.lost.id, 3);
	ck_assert_uint_eq(out.lost.lost, 1234);
	check_id(&out);

	for (int t = STOKE_REC_THROTTLE; t <= STOKE_REC_UNTHROTTLE; t++) {
		in = (struct stoke_perf_record){ .type = t };
		in.throttle.time = 11;
		in.throttle.id = 12;
		in.throttle.stream_id = 13;
		roundtrip(&fmt_noid, &in, &out);
		ck_assert_uint_eq(out.raw_type, t == STOKE_REC_THROTTLE ?
							PERF_RECORD_THROTTLE :
							PERF_RECORD_UNTHROTTLE);
		ck_assert_uint_eq(out.throttle.time, 11);
		ck_assert_uint_eq(out.throttle.id, 12);
		ck_assert_uint_eq(out.throttle.stream_id, 13);
		ck_assert(!out.id.has_tid);
	}
}
END_TEST

/* The trailer is at the end, in struct sample_id order. */
START_TEST(test_trailer_layout)
{
	struct stoke_perf_record out;
	uint64_t rec[16] = { 0 };
	struct perf_event_header h = { .type = PERF_RECORD_EXIT,
				       .size = 8 * (1 + 3 + 6) };

	memcpy(rec, &h, sizeof(h));
	rec[1] = 5 | (uint64_t)1 << 32; /* pid, ppid */
	rec[2] = 6 | (uint64_t)5 << 32; /* tid, ptid */
	rec[3] = 31337;                 /* time */
	rec[4] = 5 | (uint64_t)6 << 32; /* sample_id: pid, tid */
	rec[5] = 4242;                  /* time */
	rec[6] = 0x1d;                  /* id */
	rec[7] = 0x57;                  /* stream_id */
	rec[8] = 3;                     /* cpu, res */
	rec[9] = 0x1d;                  /* identifier */
	ck_assert_int_eq(stoke_record_decode(&fmt_allid, rec, h.size, &out), 0);
	ck_assert_int_eq(out.type, STOKE_REC_EXIT);
	ck_assert_uint_eq(out.task.time, 31337);
	ck_assert_uint_eq(out.id.pid, 5);
	ck_assert_uint_eq(out.id.tid, 6);
	ck_assert_uint_eq(out.id.time, 4242);
	ck_assert_uint_eq(out.id.cpu, 3);
	ck_assert(out.id.has_tid && out.id.has_time && out.id.has_cpu);
}
END_TEST

START_TEST(test_other)
{
	struct stoke_perf_record out;
	uint64_t rec[8] = { 0 };
	struct perf_event_header h = { .type = PERF_RECORD_SWITCH,
				       .size = 8 + 24 };

	memcpy(rec, &h, sizeof(h));
	rec[1] = 1 | (uint64_t)2 << 32;
	rec[2] = 77;
	rec[3] = 4;
	/* fmt_basic's trailer is tid, time, cpu: exactly the body. */
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, rec, h.size, &out), 0);
	ck_assert_int_eq(out.type, STOKE_REC_OTHER);
	ck_assert_uint_eq(out.raw_type, PERF_RECORD_SWITCH);
	ck_assert_uint_eq(out.id.time, 77);
	ck_assert_uint_eq(out.id.cpu, 4);
	ck_assert_str_eq(stoke_record_type_name(out.type), "other");
	ck_assert_str_eq(stoke_record_type_name(STOKE_REC_SAMPLE), "sample");
	ck_assert_str_eq(stoke_record_type_name(STOKE_REC_MMAP), "mmap");

	/* An OTHER record too short for its trailer is inconsistent. */
	h.size = 8 + 16;
	memcpy(rec, &h, sizeof(h));
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, rec, h.size, &out),
			 -EBADMSG);
	ck_assert_int_eq(stoke_record_encode(&fmt_basic, &out, buf, sizeof(buf)),
			 -EINVAL);
}
END_TEST

/* Every valid record this file can produce, for the truncation and fuzz
 * tests. */
struct sample_case {
	const struct stoke_record_format *fmt;
	struct stoke_perf_record rec;
};

static size_t all_cases(struct sample_case *c)
{
	size_t n = 0;

	c[n++] = (struct sample_case){ &fmt_basic, make_sample() };
	c[n++] = (struct sample_case){ &fmt_dwarf, make_dwarf_sample() };
	c[n++] = (struct sample_case){ &fmt_allid, make_sample() };
	c[n++] = (struct sample_case){ &fmt_basic, make_mmap(false) };
	c[n++] = (struct sample_case){ &fmt_noid, make_mmap(true) };
	c[n++] = (struct sample_case){ &fmt_allid, make_mmap(true) };
	c[n] = (struct sample_case){ &fmt_basic, { .type = STOKE_REC_COMM } };
	c[n++].rec.comm.comm = "abcdefg";
	c[n] = (struct sample_case){ &fmt_noid, { .type = STOKE_REC_COMM } };
	c[n++].rec.comm.comm = "x";
	c[n++] = (struct sample_case){ &fmt_basic, { .type = STOKE_REC_FORK } };
	c[n++] = (struct sample_case){ &fmt_noid, { .type = STOKE_REC_EXIT } };
	c[n++] = (struct sample_case){ &fmt_allid, { .type = STOKE_REC_LOST } };
	c[n++] = (struct sample_case){ &fmt_basic,
				       { .type = STOKE_REC_THROTTLE } };
	c[n++] = (struct sample_case){ &fmt_noid,
				       { .type = STOKE_REC_UNTHROTTLE } };
	return n;
}

/* Decode from an exactly-sized heap copy so ASan sees any overread. */
static int decode_copy(const struct stoke_record_format *fmt, const void *src,
		       size_t len)
{
	struct stoke_perf_record out;
	void *p = malloc(len ? len : 1);
	int r;

	ck_assert_ptr_nonnull(p);
	memcpy(p, src, len);
	r = stoke_record_decode(fmt, p, len, &out);
	free(p);
	return r;
}

START_TEST(test_truncated)
{
	struct sample_case cases[16];
	size_t n = all_cases(cases);

	for (size_t i = 0; i < n; i++) {
		int size = encode(cases[i].fmt, &cases[i].rec);
		struct perf_event_header *h = (void *)buf;

		ck_assert_int_gt(size, 0);
		ck_assert_int_eq(decode_copy(cases[i].fmt, buf, (size_t)size), 0);
		/* Fewer bytes available than header.size says. */
		for (int len = 0; len < size; len++)
			ck_assert_msg(decode_copy(cases[i].fmt, buf, (size_t)len) ==
					      -EBADMSG,
				      "case %zu len %d", i, len);
		/* header.size itself cut short: every field is required, and a
		 * string's NUL lives in its last u64. */
		for (int cut = 0; cut < size; cut++) {
			h->size = (uint16_t)cut;
			ck_assert_msg(decode_copy(cases[i].fmt, buf, (size_t)cut) ==
					      -EBADMSG,
				      "case %zu size %d", i, cut);
		}
	}
}
END_TEST

START_TEST(test_bad_header)
{
	struct stoke_perf_record in = make_sample(), out;
	struct perf_event_header *h = (void *)buf;
	int n = encode(&fmt_basic, &in);

	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, 4, &out), -EBADMSG);
	h->size = 0;
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, (size_t)n, &out),
			 -EBADMSG);
	h->size = 4;
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, (size_t)n, &out),
			 -EBADMSG);
	h->size = (uint16_t)(n - 4); /* not u64-aligned */
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, (size_t)n, &out),
			 -EBADMSG);
	h->size = (uint16_t)(n + 8); /* more than len */
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, (size_t)n, &out),
			 -EBADMSG);
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, NULL, 64, &out), -EBADMSG);
}
END_TEST

/* nr * 8 wraps for these; the bound must not. */
START_TEST(test_callchain_nr_overflow)
{
	static const uint64_t bad[] = { 5, 1ULL << 61, (1ULL << 61) + 1,
					(1ULL << 63) + 1, UINT64_MAX,
					UINT64_MAX / 8 + 1 };
	struct stoke_perf_record in = make_sample(), out;
	int n = encode(&fmt_basic, &in);

	/* nr sits after header, ip, tid, time, cpu, period. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf[6] = bad[i];
		ck_assert_msg(decode_copy(&fmt_basic, buf, (size_t)n) == -EBADMSG,
			      "nr %#llx", (unsigned long long)bad[i]);
	}
	buf[6] = 3; /* fewer than present: fine, rest is trailing data */
	ck_assert_int_eq(stoke_record_decode(&fmt_basic, buf, (size_t)n, &out), 0);
	ck_assert_uint_eq(out.sample.nr, 3);
}
END_TEST

START_TEST(test_regs_stack_corrupt)
{
	struct stoke_perf_record in = make_dwarf_sample(), out;
	struct stoke_record_format fmt = fmt_dwarf;
	int n = encode(&fmt_dwarf, &in);
	/* header, 5 fixed, nr + 4 ips, abi, 20 regs, size, 8 stack, dyn */
	size_t abi = 1 + 5 + 5, size = abi + 1 + 20, dyn = size + 1 + 8;

	ck_assert_int_eq(n, (int)(8 * (dyn + 1)));
	/* A mask with more registers than the record holds. */
	fmt.regs_user_mask = ~0ULL;
	ck_assert_int_eq(decode_copy(&fmt, buf, (size_t)n), -EBADMSG);

	buf[dyn] = 65; /* dyn_size > stack size */
	ck_assert_int_eq(decode_copy(&fmt_dwarf, buf, (size_t)n), -EBADMSG);
	buf[dyn] = 64;
	ck_assert_int_eq(decode_copy(&fmt_dwarf, buf, (size_t)n), 0);
	for (uint64_t s = 72; s; s <<= 1) {
		buf[size] = s; /* stack size past the record */
		ck_assert_int_eq(decode_copy(&fmt_dwarf, buf, (size_t)n),
				 -EBADMSG);
	}
	buf[size] = UINT64_MAX;
	ck_assert_int_eq(decode_copy(&fmt_dwarf, buf, (size_t)n), -EBADMSG);
	/* Without the stack, abi NONE means no regs follow. */
	buf[abi] = PERF_SAMPLE_REGS_ABI_NONE;
	fmt.sample_type = DWARF_ST & ~PERF_SAMPLE_STACK_USER;
	fmt.regs_user_mask = REGS_MASK;
	ck_assert_int_eq(stoke_record_decode(&fmt, buf, (size_t)n, &out), 0);
	ck_assert_uint_eq(out.sample.nr_regs, 0);
}
END_TEST

START_TEST(test_string_unterminated)
{
	struct stoke_perf_record in = make_mmap(false);
	int n = encode(&fmt_basic, &in);
	/* The trailer (tid, time, cpu) follows the padded filename. */
	size_t end = (size_t)n - 24;

	memset((uint8_t *)buf + 72, 'A', end - 72);
	ck_assert_int_eq(decode_copy(&fmt_basic, buf, (size_t)n), -EBADMSG);
	/* A NUL in the trailer does not terminate the name. */
	ck_assert_int_eq(((uint8_t *)buf)[end + 4 + 3], 0);

	in = (struct stoke_perf_record){ .type = STOKE_REC_COMM };
	in.comm.comm = "abcdefg";
	n = encode(&fmt_noid, &in);
	((uint8_t *)buf)[16 + 7] = 'h';
	ck_assert_int_eq(decode_copy(&fmt_noid, buf, (size_t)n), -EBADMSG);
}
END_TEST

/* Random byte flips of valid records: any result is fine but a crash or an
 * overread (caught by the sanitizer build). */
START_TEST(test_mutations)
{
	struct sample_case cases[16];
	size_t n = all_cases(cases);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int ok = 0;

	for (size_t i = 0; i < n; i++) {
		int size = encode(cases[i].fmt, &cases[i].rec);
		uint64_t orig[4096];

		memcpy(orig, buf, (size_t)size);
		for (int iter = 0; iter < 2000; iter++) {
			int r;

			memcpy(buf, orig, (size_t)size);
			for (int k = 0; k < 3; k++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				((uint8_t *)buf)[x % (uint64_t)size] = (uint8_t)(x >> 32);
			}
			r = decode_copy(cases[i].fmt, buf, (size_t)size);
			ck_assert(r == 0 || r == -EBADMSG);
			ok += r == 0;
		}
	}
	ck_assert_int_gt(ok, 0);
}
END_TEST

START_TEST(test_encode_errors)
{
	static uint8_t big_stack[65528];
	struct stoke_perf_record in = make_dwarf_sample();
	int n = encode(&fmt_dwarf, &in);

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, (size_t)n), n);
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, (size_t)n - 1),
			 -ENOSPC);
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, 0), -ENOSPC);

	in.sample.nr_regs = 19; /* must match the mask */
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, sizeof(buf)),
			 -EINVAL);
	in = make_dwarf_sample();
	in.sample.dyn_size = 65;
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, sizeof(buf)),
			 -EINVAL);
	in = make_dwarf_sample();
	in.sample.stack_size = 60; /* not u64-aligned */
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, sizeof(buf)),
			 -EINVAL);

	/* Larger than header.size can express. */
	in = make_dwarf_sample();
	in.sample.stack_size = 65528;
	in.sample.dyn_size = 0;
	in.sample.stack = big_stack;
	ck_assert_int_eq(stoke_record_encode(&fmt_dwarf, &in, buf, sizeof(buf)),
			 -EINVAL);

	in = make_mmap(false);
	in.mmap.filename = NULL;
	ck_assert_int_eq(stoke_record_encode(&fmt_basic, &in, buf, sizeof(buf)),
			 -EINVAL);
}
END_TEST

/* ---- perf → neutral (sampler/perf/convert.c) ---- */

START_TEST(test_convert_callchain)
{
	struct stoke_perf_record in = make_sample();
	struct stoke_record out;
	const uint64_t chain[] = { PERF_CONTEXT_KERNEL, 0xffffffff81000010ULL, 0x1000,
				   PERF_CONTEXT_USER,   0x401000,              0x401234,
				   PERF_CONTEXT_GUEST,  0x5000 };

	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert_int_eq(out.type, STOKE_REC_SAMPLE);
	ck_assert_uint_eq(out.sample.pid, 100);
	ck_assert_uint_eq(out.sample.tid, 101);
	ck_assert_uint_eq(out.sample.time, 123456789);
	ck_assert_uint_eq(out.sample.cpu, 3);
	ck_assert_uint_eq(out.sample.ip, 0x401000);
	ck_assert(out.sample.has_stack);
	ck_assert_uint_eq(out.sample.nr_kernel_ips, 0);
	ck_assert_uint_eq(out.sample.nr_user_ips, 3);
	ck_assert_uint_eq(out.sample.user_ips[0], 0x401000);
	ck_assert_uint_eq(out.sample.user_ips[2], 0x7f0000001000);
	ck_assert_int_eq(out.sample.regs_kind, STOKE_REGS_NONE);

	/* The markers, not the values, decide the side; a guest's frames are
	 * not ours. */
	in.sample.callchain = chain;
	in.sample.nr = sizeof(chain) / sizeof(chain[0]);
	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert_uint_eq(out.sample.nr_kernel_ips, 2);
	ck_assert_uint_eq(out.sample.kernel_ips[1], 0x1000);
	ck_assert_uint_eq(out.sample.nr_user_ips, 2);
	ck_assert_uint_eq(out.sample.user_ips[0], 0x401000);

	/* No markers at all: by address. */
	in.sample.callchain = chain + 1;
	in.sample.nr = 1;
	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert_uint_eq(out.sample.nr_kernel_ips, 1);
	ck_assert_uint_eq(out.sample.nr_user_ips, 0);

	/* No callchain: no stack, the IP alone. */
	in.sample.nr = 0;
	in.sample.callchain = NULL;
	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert(!out.sample.has_stack);
}
END_TEST

START_TEST(test_convert_regs)
{
	struct stoke_perf_record in = make_dwarf_sample();
	struct stoke_record out;

	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert_int_eq(out.sample.regs_kind, STOKE_REGS_X86_64);
	/* regs[i] = 0x1000 + i in mask order: AX BX CX DX SI DI BP SP IP
	 * FLAGS CS SS R8..R15 */
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_RAX], 0x1000);
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_RDX], 0x1003);
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_RBX], 0x1001);
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_RSP], 0x1007);
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_RIP], 0x1008);
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_R8], 0x100c);
	ck_assert_uint_eq(out.sample.regs[STOKE_DWARF_R8 + 7], 0x1013);
	ck_assert_uint_eq(out.sample.stack_addr, 0x1007);
	ck_assert_uint_eq(out.sample.stack_len, 40); /* dyn_size */
	ck_assert_ptr_eq(out.sample.stack, stack);

	/* Another ABI, or another register set: wants unwinding, cannot. */
	in.sample.regs_abi = PERF_SAMPLE_REGS_ABI_32;
	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert_int_eq(out.sample.regs_kind, STOKE_REGS_UNUSABLE);
	in = make_dwarf_sample();
	in.sample.nr_regs = 3;
	stoke_perf_record_convert(&in, 0x7, &out);
	ck_assert_int_eq(out.sample.regs_kind, STOKE_REGS_UNUSABLE);
	/* A kernel thread: none. */
	in.sample.regs_abi = PERF_SAMPLE_REGS_ABI_NONE;
	in.sample.nr_regs = 0;
	in.sample.regs = NULL;
	stoke_perf_record_convert(&in, REGS_MASK, &out);
	ck_assert_int_eq(out.sample.regs_kind, STOKE_REGS_NONE);
}
END_TEST

static Suite *record_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("roundtrip");
	TCase *bad = tcase_create("corrupt");

	tcase_add_test(tc, test_sample_callchain);
	tcase_add_test(tc, test_sample_no_callchain);
	tcase_add_test(tc, test_sample_empty_callchain);
	tcase_add_test(tc, test_sample_regs_stack);
	tcase_add_test(tc, test_sample_regs_none);
	tcase_add_test(tc, test_sample_all_id_bits);
	tcase_add_test(tc, test_sample_kernel_layout);
	tcase_add_test(tc, test_sample_unsupported_bits);
	tcase_add_test(tc, test_mmap2_dev);
	tcase_add_test(tc, test_mmap2_build_id);
	tcase_add_test(tc, test_mmap_old);
	tcase_add_test(tc, test_comm);
	tcase_add_test(tc, test_task);
	tcase_add_test(tc, test_lost_throttle);
	tcase_add_test(tc, test_trailer_layout);
	tcase_add_test(tc, test_other);
	tcase_add_test(tc, test_encode_errors);
	tcase_add_test(tc, test_convert_callchain);
	tcase_add_test(tc, test_convert_regs);
	suite_add_tcase(s, tc);

	tcase_add_test(bad, test_truncated);
	tcase_add_test(bad, test_bad_header);
	tcase_add_test(bad, test_callchain_nr_overflow);
	tcase_add_test(bad, test_regs_stack_corrupt);
	tcase_add_test(bad, test_string_unterminated);
	tcase_add_test(bad, test_mutations);
	tcase_set_timeout(bad, 30);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(record_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
