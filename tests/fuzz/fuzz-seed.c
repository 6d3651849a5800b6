/*
 * Writes the seed corpora of the "record" and "maps" fuzz targets:
 *
 *   fuzz-seed DIR      (creates DIR/record/… and DIR/maps/…)
 *
 * Records are made with stoke_record_encode, in the two formats the sampler
 * opens events with (frame pointers; DWARF with registers and a stack copy)
 * and each prefixed with the 24-byte format header fuzz-record.c reads, so
 * every seed decodes and the fuzzer starts from real layouts. One legacy
 * PERF_RECORD_MMAP, which the encoder never writes, is laid out by hand.
 * Maps seeds are text in the kernel's format, with the awkward cases (paths
 * with spaces, " (deleted)", pseudo paths, anonymous lines). Pprof seeds are
 * profiles built through the model API and written by the pprof writer,
 * plain and gzipped, so the reader starts from what stoke itself stores.
 * Protocol seeds are requests written by stoke_request_format, the client's
 * encoder, one per operation, plus a few refusals. Perf-map seeds are text
 * in the shapes node (--perf-basic-prof), python 3.12 (-X perf) and JVM
 * agents write: with and without 0x, overlapping entries, names with
 * spaces.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "formats/pprof.h"
#include "formats/profile.h"
#include "daemon/protocol.h"
#include "sampler/perf/record.h"

#define FMT_FP (PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | \
		PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN)
#define FMT_DWARF (FMT_FP | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER)
/* AX..R15 without the segment registers, as perf asks for on x86-64. */
#define REGS_MASK 0xff0fffull

static const char *root;

static void write_file(const char *target, const char *name, const void *a, size_t na,
		       const void *b, size_t nb)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) {
		fprintf(stderr, "fuzz-seed: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static void put_record(const char *name, const struct stoke_record_format *fmt,
		       const struct stoke_perf_record *rec)
{
	uint64_t prefix[3] = { fmt->sample_type, fmt->regs_user_mask, fmt->sample_id_all };
	static uint64_t buf[8192]; /* 64 KiB, aligned */
	int n = stoke_record_encode(fmt, rec, buf, sizeof(buf));

	if (n < 0) {
		fprintf(stderr, "fuzz-seed: cannot encode %s: %s\n", name, strerror(-n));
		exit(1);
	}
	write_file("record", name, prefix, sizeof(prefix), buf, (size_t)n);
}

static void records(void)
{
	struct stoke_record_format fp = { .sample_type = FMT_FP, .sample_id_all = true };
	struct stoke_record_format dw = { .sample_type = FMT_DWARF, .regs_user_mask = REGS_MASK,
					  .sample_id_all = true };
	struct stoke_sample_id id = { .pid = 100, .tid = 101, .time = 5000, .cpu = 1,
				      .has_tid = true, .has_time = true, .has_cpu = true };
	uint64_t chain[] = { PERF_CONTEXT_KERNEL, 0xffffffff81000100ull, 0xffffffff81000200ull,
			     PERF_CONTEXT_USER, 0x401136, 0x401180, 0x4011c0, 0x7f0000021000 };
	uint64_t regs[20], stack[16];
	struct stoke_perf_record r = { .type = STOKE_REC_SAMPLE, .id = id };

	for (int i = 0; i < 20; i++)
		regs[i] = 0x7ffc00000000ull + (uint64_t)i * 8;
	for (int i = 0; i < 16; i++)
		stack[i] = 0x401000ull + (uint64_t)i * 0x10;

	r.sample = (struct stoke_perf_sample){ .pid = 100, .tid = 101, .ip = 0xffffffff81000100ull,
					  .time = 5000, .cpu = 1, .period = 1000000,
					  .nr = 8, .callchain = chain };
	put_record("sample-fp", &fp, &r);
	r.sample.nr = 3;
	r.sample.callchain = chain + 3;
	r.sample.ip = chain[4];
	r.sample.regs_abi = PERF_SAMPLE_REGS_ABI_64;
	r.sample.nr_regs = 20;
	r.sample.regs = regs;
	r.sample.stack_size = sizeof(stack);
	r.sample.dyn_size = 96;
	r.sample.stack = (const uint8_t *)stack;
	put_record("sample-dwarf", &dw, &r);
	/* A kernel thread: no user registers, an empty stack copy. */
	r.sample.regs_abi = PERF_SAMPLE_REGS_ABI_NONE;
	r.sample.nr_regs = 0;
	r.sample.regs = NULL;
	r.sample.stack_size = r.sample.dyn_size = 0;
	r.sample.stack = NULL;
	put_record("sample-dwarf-kthread", &dw, &r);

	r = (struct stoke_perf_record){ .type = STOKE_REC_MMAP, .id = id };
	r.mmap = (struct stoke_mmap){ .pid = 100, .tid = 100, .addr = 0x400000, .len = 0x2000,
				      .pgoff = 0x1000, .is_mmap2 = true, .maj = 8, .min = 1,
				      .ino = 1234, .prot = PROT_READ | PROT_EXEC,
				      .flags = MAP_PRIVATE, .filename = "/usr/bin/app" };
	put_record("mmap2-inode", &fp, &r);
	r.mmap.has_build_id = true;
	r.mmap.build_id_size = 20;
	memset(r.mmap.build_id, 0xab, 20);
	r.mmap.filename = "/usr/lib/x86_64-linux-gnu/libc.so.6";
	put_record("mmap2-buildid", &dw, &r);
	r.mmap = (struct stoke_mmap){ .pid = (uint32_t)-1, .addr = 0xffffffff81000000ull,
				      .len = 0x1000000, .is_mmap2 = true, .kernel = true,
				      .filename = "[kernel.kallsyms]_text" };
	put_record("mmap2-kernel", &fp, &r);

	r = (struct stoke_perf_record){ .type = STOKE_REC_COMM, .id = id };
	r.comm = (struct stoke_comm){ .pid = 100, .tid = 100, .exec = true, .comm = "app" };
	put_record("comm-exec", &fp, &r);
	r = (struct stoke_perf_record){ .type = STOKE_REC_FORK, .id = id };
	r.task = (struct stoke_task){ .pid = 102, .ppid = 100, .tid = 102, .ptid = 101, .time = 6000 };
	put_record("fork", &fp, &r);
	r.type = STOKE_REC_EXIT;
	put_record("exit", &dw, &r);
	r = (struct stoke_perf_record){ .type = STOKE_REC_LOST, .id = id };
	r.lost = (struct stoke_lost){ .id = 7, .lost = 42 };
	put_record("lost", &fp, &r);
	r = (struct stoke_perf_record){ .type = STOKE_REC_THROTTLE, .id = id };
	r.throttle = (struct stoke_throttle){ .time = 7000, .id = 7, .stream_id = 7 };
	put_record("throttle", &fp, &r);
	r.type = STOKE_REC_UNTHROTTLE;
	put_record("unthrottle", &fp, &r);

	/* Legacy PERF_RECORD_MMAP, no sample_id trailer. */
	{
		struct {
			struct perf_event_header h;
			uint32_t pid, tid;
			uint64_t addr, len, pgoff;
			char filename[16];
		} m = { .h = { .type = PERF_RECORD_MMAP, .misc = PERF_RECORD_MISC_USER,
			       .size = sizeof(m) },
			.pid = 100, .tid = 100, .addr = 0x7f0000000000ull, .len = 0x1000,
			.filename = "/lib/libm.so.6" };
		uint64_t prefix[3] = { FMT_FP, 0, 0 };

		write_file("record", "mmap-legacy", prefix, sizeof(prefix), &m, sizeof(m));
	}
}

static void put_text_to(const char *target, const char *name, const char *text)
{
	write_file(target, name, text, strlen(text), NULL, 0);
}

static void put_text(const char *name, const char *text)
{
	put_text_to("maps", name, text);
}

static void maps(void)
{
	put_text("typical",
		 "55d0c8a00000-55d0c8a02000 r--p 00000000 08:01 1234                       /usr/bin/app\n"
		 "55d0c8a02000-55d0c8a05000 r-xp 00002000 08:01 1234                       /usr/bin/app\n"
		 "55d0ca1e4000-55d0ca205000 rw-p 00000000 00:00 0                          [heap]\n"
		 "7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 \n"
		 "7f1e2e628000-7f1e2e7bd000 r-xp 00028000 fe:01 393249                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
		 "7ffd5a3a1000-7ffd5a3c2000 rw-p 00000000 00:00 0                          [stack]\n"
		 "7ffd5a3f3000-7ffd5a3f5000 r-xp 00000000 00:00 0                          [vdso]\n"
		 "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n");
	put_text("odd-paths",
		 "7f0000000000-7f0000001000 r-xp 00000000 103:02 99 /tmp/my lib (v2).so\n"
		 "7f0000001000-7f0000002000 r-xp 00001000 103:02 98 /tmp/gone.so (deleted)\n"
		 "7f0000002000-7f0000003000 rw-s 00000000 00:05 77 /dev/shm/ring\n"
		 "7f0000003000-7f0000004000 ---p 00000000 00:00 0");
	put_text("malformed",
		 "garbage\n"
		 "1000-0 r-xp 00000000 08:01 1 /backwards\n"
		 "1000-2000 rwxq 00000000 08:01 1 /badperm\n"
		 "1000-2000 r-xp 0 08:01 -1 /negative-inode\n"
		 "-1000-2000 r-xp 00000000 08:01 1 /sign\n"
		 "1000-2000 r-xp 00000000 0801 1 /nodev\n");
}

static uint32_t str(struct stoke_profile *p, const char *s)
{
	uint32_t id = 0;

	if (stoke_profile_intern(p, s, &id) < 0)
		exit(1);
	return id;
}

static uint32_t frame(struct stoke_profile *p, const char *name, const char *module,
		      uint64_t offset, enum stoke_pframe_kind kind, bool inlined)
{
	struct stoke_pframe f = { .name = str(p, name), .file = str(p, name ? "/src/app.c" : NULL),
				  .line = name ? 10 : 0, .module = str(p, module),
				  .offset = offset, .kind = (uint8_t)kind, .inlined = inlined };
	uint32_t id = 0;

	if (stoke_profile_frame(p, &f, &id) < 0)
		exit(1);
	return id;
}

static uint32_t stack(struct stoke_profile *p, const uint32_t *frames, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i++)
		if (stoke_profile_stack(p, s, frames[i], &s) < 0)
			exit(1);
	return s;
}

static void pprofs(void)
{
	struct stoke_profile *p = NULL;
	struct stoke_pmeta *m;
	uint32_t f[6], s1, s2;
	uint8_t *buf = NULL;
	size_t len = 0;
	char *gz = NULL;
	FILE *out;

	if (stoke_profile_new(&p) < 0)
		exit(1);
	f[0] = frame(p, "main", "/usr/bin/app", 0x1100, STOKE_PFRAME_USER, false);
	f[1] = frame(p, "run", "/usr/bin/app", 0x1200, STOKE_PFRAME_USER, false);
	f[2] = frame(p, "inlined_leaf", "/usr/bin/app", 0x1210, STOKE_PFRAME_USER, true);
	f[3] = frame(p, "do_syscall_64", "[kernel.kallsyms]", 0, STOKE_PFRAME_KERNEL, false);
	f[4] = frame(p, "LazyCompile:*fn", "/tmp/perf-1.map", 0, STOKE_PFRAME_JIT, false);
	f[5] = frame(p, NULL, "/usr/lib/libfoo.so", 0x1234, STOKE_PFRAME_USER, false);
	s1 = stack(p, f, 4);
	s2 = stack(p, (uint32_t[]){ f[0], f[4], f[5] }, 3);
	if (stoke_profile_thread(p, 100, 100, "app") < 0 ||
	    stoke_profile_thread(p, 100, 101, "worker") < 0 ||
	    stoke_profile_add_sample(p, 100, 1000, s1, 3) < 0 ||
	    stoke_profile_add_sample(p, 101, 2000, s2, 1) < 0 ||
	    stoke_profile_add_sample(p, 100, 3000, 0, 1) < 0)
		exit(1);
	m = stoke_profile_meta(p);
	m->event = str(p, "cpu-clock");
	m->frequency = 999;
	m->period_ns = 1001001;
	m->start_ns = 1700000000000000000ull;
	m->end_ns = 1700000001000000000ull;
	m->callgraph = str(p, "fp");
	m->command = str(p, "./app");
	m->pid = 100;
	m->lost = 2;
	if (stoke_pprof_encode(p, &buf, &len) < 0)
		exit(1);
	write_file("pprof", "small.pb", buf, len, NULL, 0);
	free(buf);
	out = open_memstream(&gz, &len);
	if (!out || stoke_pprof_write(p, NULL, out) < 0 || fclose(out))
		exit(1);
	write_file("pprof", "small.pb.gz", gz, len, NULL, 0);
	free(gz);
	stoke_profile_free(p);

	/* An empty profile: only the header fields. */
	if (stoke_profile_new(&p) < 0 || stoke_pprof_encode(p, &buf, &len) < 0)
		exit(1);
	write_file("pprof", "empty.pb", buf, len, NULL, 0);
	free(buf);
	stoke_profile_free(p);
}

static void put_perfmap(const char *name, const char *text)
{
	write_file("perfmap", name, text, strlen(text), NULL, 0);
}

static void perfmaps(void)
{
	put_perfmap("node",
		   "3ef414c0398 46 RegExp:[{(]\n"
		   "3ef414c0c20 2d4 LazyCompile:~fib /app/fib.js:1\n"
		   "3ef414c1000 120 LazyCompile:*fib /app/fib.js:1\n"
		   "3ef414c1080 40 Builtin:ArgumentsAdaptorTrampoline\n");
	put_perfmap("python",
		   "0x7f3c5a5c8000 0x0b py::_run_code:/usr/lib/python3.12/runpy.py\n"
		   "0x7f3c5a5c800b 0x0b py::<module>:/app/main.py\n");
	put_perfmap("malformed",
		   "zz 10 bad-start\n"
		   "1000 zz bad-size\n"
		   "1000\n"
		   "\n"
		   "2000 10\n"
		   "ffffffffffffffff 10 wraps\n");
}

static void put_request(const char *name, const struct stoke_request *req)
{
	char *line = NULL;

	if (stoke_request_format(req, &line) < 0)
		exit(1);
	write_file("protocol", name, line, strlen(line), NULL, 0);
	free(line);
}

static void requests(void)
{
	struct stoke_request r;

	stoke_request_init(&r);
	r.op = STOKE_OP_ATTACH;
	r.pid = 1234;
	r.freq = 499;
	r.callgraph = STOKE_CALLGRAPH_DWARF;
	r.duration = 30.5;
	r.per_thread = true;
	snprintf(r.name, sizeof(r.name), "web-1");
	put_request("attach", &r);
	r.continuous = true;
	r.rotate = 60;
	r.keep = 24;
	r.event = STOKE_EVENT_TASK_CLOCK;
	r.no_kernel = true;
	put_request("attach-continuous", &r);
	stoke_request_init(&r);
	r.op = STOKE_OP_DETACH;
	r.session = 3;
	r.discard = true;
	put_request("detach", &r);
	r.discard = false;
	r.op = STOKE_OP_SNAPSHOT;
	put_request("snapshot", &r);
	r.op = STOKE_OP_STATUS;
	put_request("status", &r);
	stoke_request_init(&r);
	r.op = STOKE_OP_LIST;
	put_request("list", &r);
	r.op = STOKE_OP_SHUTDOWN;
	put_request("shutdown", &r);
	put_text_to("protocol", "bad-unknown-key", "{\"op\":\"list\",\"x\":1}\n");
	put_text_to("protocol", "bad-nested", "{\"op\":[[[[{\"a\":1}]]]]}\n");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-seed DIR\n");
		return 2;
	}
	root = argv[1];
	records();
	maps();
	pprofs();
	requests();
	perfmaps();
	return 0;
}
