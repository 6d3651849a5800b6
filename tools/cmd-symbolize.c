/*
 * `stoke symbolize`: name addresses the way a profile does, outside a
 * recording. Addresses come from the command line or, without any, from
 * stdin (one or more per line), and are either ELF virtual addresses of a
 * file (-e, like addr2line) or addresses in a running process (-p, mapped
 * through its /proc/PID/maps; kernel addresses through /proc/kallsyms).
 *
 * The text output has the shape of `addr2line -a -f -i -e ELF`, so the two
 * can be diffed: the address, then a function line and a file:line line per
 * frame, innermost (inlined) first; "??" and "??:0" / "??:?" where nothing
 * is known. --json writes one JSON object per address and line instead.
 *
 * Addresses are answered in batches (see batch_run): the unique addresses
 * in address order, for cache locality, the answers in input order. On
 * stdin a batch is whatever can be read without waiting, and the output is
 * flushed after each, so that stoke can run as a coprocess (one address in,
 * its answer out) without paying a flush per address on bulk input.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "formats/escape.h"
#include "common/log.h"
#include "sampler/maps.h"
#include "symbolizer/symbolizer.h"
#include "common/util.h"

#define MAX_FRAMES 64
/* Longest stdin line. */
#define LINE_MAX_LEN ((1 << 16) - 1)
/* A batch of stdin: at most this much input, this many addresses (bounded
 * memory whatever the input's size). */
#define BATCH_MAX_BYTES (8u << 20)
#define BATCH_MAX_ADDRS (1u << 20)

struct sym_args {
	const char *exe;
	char *exe_abs; /* realpath of exe: modules are keyed by absolute path */
	pid_t pid;
	bool json;
	int jobs; /* threads resolving a large batch; 0: default */
	const char *debuginfo_path;
	enum stoke_demangle_mode demangle;
};

struct sym_ctx {
	struct sym_args *a;
	struct stoke_symbolizer *s;
};

/*
 * A worker resolves a contiguous run of a batch's sorted unique addresses
 * with its own symbolizer (its own libdwfl handles: libdw objects are not
 * shared between threads), into its own frame arena. Worker 0 is the main
 * thread; with -e, a large batch is split between --jobs workers (by
 * default one per idle CPU, at most 2), so that the per-CU index
 * and line-table builds, most of a bulk run's time, of the parts of the
 * file proceed in parallel. Each worker indexes only the CUs its addresses
 * fall in (one CU may straddle a split and be indexed twice).
 */
struct batch;

struct worker {
	struct sym_ctx ctx;
	struct stoke_symbol *frames;
	size_t nframes, frames_cap;
	struct batch *b;
	size_t from, to; /* b->uniq[from .. to) */
	uint8_t id;
	int rc;
};

#define MAX_JOBS 8
#define DEFAULT_JOBS 2
/* Fewer unique addresses than this are not worth a thread. */
#define PARALLEL_MIN_UNIQ 4096

static void usage(FILE *f)
{
	fputs("usage: stoke symbolize (-e ELF | -p PID) [OPTIONS] [ADDR...]\n"
	      "\n"
	      "Name addresses: functions (inlined ones first), source file:line.\n"
	      "Without ADDR, hex addresses are read from stdin.\n"
	      "\n"
	      "  -e, --exe ELF            ELF virtual addresses of this file (as addr2line -e)\n"
	      "  -p, --pid PID            addresses in this running process\n"
	      "      --json               one JSON object per address and line\n"
	      "      --debuginfo-path DIRS  more roots for separate debug info (colon-\n"
	      "                           separated; .build-id/ and .gnu_debuglink)\n"
	      "      --demangle=MODE      short (default: no parameters), full, none\n"
	      "  -j, --jobs N             threads for large inputs with -e (at most 8;\n"
	      "                           default: the idle CPUs, at most 2)\n"
	      "  -h, --help               this help\n",
	      f);
}

enum { OPT_JSON = 256, OPT_DEBUGINFO, OPT_DEMANGLE, OPT_JOBS };

static int parse_pid(const char *s, pid_t *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return -EINVAL;
	*ret = (pid_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct sym_args *a, int *ret_first)
{
	static const struct option longopts[] = {
		{ "exe", required_argument, NULL, 'e' },
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "debuginfo-path", required_argument, NULL, OPT_DEBUGINFO },
		{ "demangle", required_argument, NULL, OPT_DEMANGLE },
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "e:p:j:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			a->exe = optarg;
			break;
		case 'p':
			if (parse_pid(optarg, &a->pid) < 0)
				return cli_usage_error("symbolize", "bad PID '%s'", optarg);
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case 'j': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > MAX_JOBS)
				return cli_usage_error("symbolize", "--jobs takes 1 to %d, not '%s'",
						       MAX_JOBS, optarg);
			a->jobs = (int)v;
			break;
		}
		case OPT_DEBUGINFO:
			a->debuginfo_path = optarg;
			break;
		case OPT_DEMANGLE:
			if (stoke_demangle_mode_parse(optarg, &a->demangle) < 0)
				return cli_usage_error("symbolize",
						       "--demangle takes short, full or none, not '%s'",
						       optarg);
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return cli_usage_error("symbolize", "bad option");
		}
	}
	if (!a->exe == !a->pid)
		return cli_usage_error("symbolize", "give exactly one of -e ELF and -p PID");
	*ret_first = optind;
	return 0;
}

/* Hex, with or without 0x, and nothing else. */
static int parse_addr(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 16);
	if (errno || end == s || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ---- output ---- */

/*
 * A small buffered writer with hand-rolled number formatting: printf's
 * format parsing was a visible share of a bulk run. Whole buffers go to the
 * FILE (full buffering makes that one write(2) each), whose error state
 * cmd_symbolize checks at the end.
 */
struct out {
	FILE *f;
	size_t len;
	char buf[1 << 16];
};

static void out_flush(struct out *o)
{
	if (o->len)
		fwrite(o->buf, 1, o->len, o->f);
	o->len = 0;
}

static void out_write(struct out *o, const char *p, size_t n)
{
	if (n > sizeof(o->buf) - o->len) {
		out_flush(o);
		if (n > sizeof(o->buf)) {
			fwrite(p, 1, n, o->f);
			return;
		}
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void out_puts(struct out *o, const char *s)
{
	out_write(o, s, strlen(s));
}

static void out_putc(struct out *o, char c)
{
	if (o->len == sizeof(o->buf))
		out_flush(o);
	o->buf[o->len++] = c;
}

/* "0x" and at least min_digits lowercase hex digits, zero-padded. */
static void out_hex(struct out *o, uint64_t v, int min_digits)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[2 + 16];
	int n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = digits[v & 15];
		v >>= 4;
	} while (v || n < min_digits);
	tmp[sizeof(tmp) - 1 - n++] = 'x';
	tmp[sizeof(tmp) - 1 - n++] = '0';
	out_write(o, tmp + sizeof(tmp) - n, (size_t)n);
}

static void out_u32(struct out *o, uint32_t v)
{
	char tmp[10];
	int n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	out_write(o, tmp + sizeof(tmp) - n, (size_t)n);
}

static void json_write(void *ctx, const char *p, size_t n)
{
	out_write(ctx, p, n);
}

/* Names come from the binaries: invalid UTF-8 becomes U+FFFD, so the
 * output is always valid JSON (formats/escape.c). */
static void json_string(struct out *o, const char *s)
{
	if (!s) {
		out_puts(o, "null");
		return;
	}
	stoke_json_string_to(s, json_write, o);
}

static const char *kind_name(enum stoke_frame_kind k)
{
	switch (k) {
	case STOKE_FRAME_KERNEL:
		return "kernel";
	case STOKE_FRAME_JIT:
		return "jit";
	case STOKE_FRAME_SYNTHETIC:
		return "synthetic";
	case STOKE_FRAME_USER:
		break;
	}
	return "user";
}

static void print_json(struct out *o, uint64_t addr, const struct stoke_symbol *fr, size_t n)
{
	out_puts(o, "{\"address\":\"");
	out_hex(o, addr, 1);
	out_puts(o, "\",\"frames\":[");
	for (size_t i = 0; i < n; i++) {
		out_puts(o, i ? ",{\"function\":" : "{\"function\":");
		json_string(o, fr[i].function);
		out_puts(o, ",\"file\":");
		json_string(o, fr[i].file);
		out_puts(o, ",\"line\":");
		out_u32(o, fr[i].line);
		out_puts(o, fr[i].inlined ? ",\"inlined\":true,\"module\":"
					  : ",\"inlined\":false,\"module\":");
		json_string(o, fr[i].module);
		out_puts(o, ",\"offset\":\"");
		out_hex(o, fr[i].offset, 1);
		out_puts(o, "\",\"kind\":\"");
		out_puts(o, kind_name(fr[i].kind));
		out_puts(o, "\"}");
	}
	out_puts(o, "]}\n");
}

/* addr2line's shape: "??" for an unknown function; "??:0" when nothing is
 * known, "??:?" for a known function without a line. */
static void print_text(struct out *o, uint64_t addr, const struct stoke_symbol *fr, size_t n)
{
	out_hex(o, addr, 16);
	out_putc(o, '\n');
	for (size_t i = 0; i < n; i++) {
		out_puts(o, fr[i].function ? fr[i].function : "??");
		out_putc(o, '\n');
		if (fr[i].file) {
			out_puts(o, fr[i].file);
			if (fr[i].line) {
				out_putc(o, ':');
				out_u32(o, fr[i].line);
				out_putc(o, '\n');
			} else {
				out_puts(o, ":?\n");
			}
		} else {
			out_puts(o, fr[i].function ? "??:?\n" : "??:0\n");
		}
	}
}

static bool addr_is_kernel(uint64_t addr)
{
	return addr >= 0xffff800000000000ULL;
}

/* The frames of addr into fr (room for MAX_FRAMES): their count, or -1
 * after saying why the file cannot be used. */
static int resolve(struct sym_ctx *ctx, uint64_t addr, struct stoke_symbol *fr)
{
	int n;

	if (!ctx->a->exe)
		return stoke_symbolizer_addr_frames(ctx->s, ctx->a->pid, addr,
						    addr_is_kernel(addr), false, fr, MAX_FRAMES);
	n = stoke_symbolizer_elf_frames(ctx->s, ctx->a->exe_abs, addr, fr, MAX_FRAMES);
	if (n < 0) {
		fprintf(stderr, "stoke: %s: %s\n", ctx->a->exe,
			n == -ENOEXEC ? "not an ELF file" : strerror(-n));
		return -1;
	}
	return n;
}

/* ---- batches ---- */

/*
 * Addresses are answered in batches: each unique address of a batch is
 * resolved once, in address order, then the answers are printed in input
 * order. Address order keeps the symbolizer's per-CU index and libdw's line
 * table warm in the cache (random order misses on nearly every lookup), and
 * deduplicating here makes the symbolizer's result cache useless, so it is
 * turned off (no_result_cache).
 */
struct apair {
	uint64_t addr;
	uint32_t idx; /* position in the input */
};

/* A unique address and its frames: workers[worker].frames[first .. first + n). */
struct uniq {
	uint64_t addr;
	uint32_t first;
	uint16_t n;
	uint8_t worker;
};

struct batch {
	struct apair *pairs, *tmp; /* input order, then sorted */
	uint32_t *uniq_of;         /* input position → unique address */
	size_t n, cap;
	struct uniq *uniq; /* unique addresses, sorted */
	size_t nuniq;
	struct worker workers[MAX_JOBS];
	int nworkers; /* set up so far; workers[1..] own their symbolizer */
};

static void batch_free(struct batch *b)
{
	free(b->pairs);
	free(b->tmp);
	free(b->uniq_of);
	free(b->uniq);
	for (int w = 0; w < MAX_JOBS; w++)
		free(b->workers[w].frames);
	for (int w = 1; w < b->nworkers; w++)
		stoke_symbolizer_free(b->workers[w].ctx.s);
}

static int batch_add(struct batch *b, uint64_t addr)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct apair *p = realloc(b->pairs, cap * sizeof(*p));

		struct uniq *uq;
		uint32_t *u;

		/* Each array keeps what it got if a later one fails. */
		if (!p)
			return -ENOMEM;
		b->pairs = p;
		p = realloc(b->tmp, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		b->tmp = p;
		u = realloc(b->uniq_of, cap * sizeof(*u));
		if (!u)
			return -ENOMEM;
		b->uniq_of = u;
		uq = realloc(b->uniq, cap * sizeof(*uq));
		if (!uq)
			return -ENOMEM;
		b->uniq = uq;
		b->cap = cap;
	}
	b->pairs[b->n] = (struct apair){ .addr = addr, .idx = (uint32_t)b->n };
	b->n++;
	return 0;
}

/* Sort pairs by address: LSD radix sort, 8 bits a pass, skipping the bytes
 * that every address shares (code addresses differ in 3 or 4 bytes). Stable,
 * so equal addresses keep their input order. */
static void sort_pairs(struct batch *b)
{
	uint64_t all_or = 0, all_and = UINT64_MAX;
	struct apair *src = b->pairs, *dst = b->tmp;

	if (b->n < 2)
		return;
	for (size_t i = 0; i < b->n; i++) {
		all_or |= src[i].addr;
		all_and &= src[i].addr;
	}
	for (unsigned shift = 0; shift < 64; shift += 8) {
		size_t count[256] = { 0 }, pos = 0;
		struct apair *t;

		if ((((all_or ^ all_and) >> shift) & 0xff) == 0)
			continue;
		for (size_t i = 0; i < b->n; i++)
			count[(src[i].addr >> shift) & 0xff]++;
		for (size_t d = 0; d < 256; d++) {
			size_t c = count[d];

			count[d] = pos;
			pos += c;
		}
		for (size_t i = 0; i < b->n; i++)
			dst[count[(src[i].addr >> shift) & 0xff]++] = src[i];
		t = src;
		src = dst;
		dst = t;
	}
	b->pairs = src;
	b->tmp = dst;
}

/* Resolve w->b->uniq[from .. to) into w->frames. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;

	w->nframes = 0;
	w->rc = 0;
	for (size_t i = w->from; i < w->to; i++) {
		struct uniq *u = &w->b->uniq[i];
		int n;

		if (STOKE_GROW(w->frames, w->frames_cap, w->nframes + MAX_FRAMES) < 0) {
			fprintf(stderr, "stoke: %s\n", strerror(ENOMEM));
			w->rc = -1;
			break;
		}
		n = resolve(&w->ctx, u->addr, w->frames + w->nframes);
		if (n < 0) {
			w->rc = -1;
			break;
		}
		u->first = (uint32_t)w->nframes;
		u->n = (uint16_t)n;
		u->worker = w->id;
		w->nframes += (size_t)n;
	}
	return NULL;
}

/*
 * Threads by default: one per CPU that nothing else is running on now (at
 * most DEFAULT_JOBS), so at least one. That is the CPUs this process may
 * use, minus the other runnable tasks (/proc/loadavg's fourth field counts
 * this thread too). A second thread on a CPU another process keeps busy
 * gains no wall time, and costs its overhead.
 */
static int default_jobs(void)
{
	int ncpu, running = 1, total, idle;
	cpu_set_t set;
	FILE *f;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	ncpu = CPU_COUNT(&set);
	f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%*s %*s %*s %d/%d", &running, &total) != 2 || running < 1)
			running = 1;
		fclose(f);
	}
	idle = ncpu - (running - 1);
	return idle < 1 ? 1 : idle > DEFAULT_JOBS ? DEFAULT_JOBS : idle;
}

/* How many workers resolve this batch: the other workers' symbolizers are
 * made on the first large batch (-e only: a -p symbolizer would need the
 * process's mappings fed to each). */
static int batch_workers(struct sym_ctx *ctx, struct batch *b)
{
	struct stoke_symbolizer_opts so = {
		.debuginfo_path = ctx->a->debuginfo_path,
		.demangle = ctx->a->demangle,
		.no_result_cache = true,
	};
	int jobs;

	if (!b->nworkers) {
		b->workers[0].ctx = *ctx;
		b->nworkers = 1;
	}
	if (!ctx->a->exe || b->nuniq < PARALLEL_MIN_UNIQ)
		return 1;
	jobs = ctx->a->jobs ? ctx->a->jobs : default_jobs();
	/* Settled before threads exist: the first call caches STOKE_DEBUG. */
	(void)stoke_log_get_level();
	while (b->nworkers < jobs) {
		struct worker *w = &b->workers[b->nworkers];

		if (stoke_symbolizer_new(&so, &w->ctx.s) < 0)
			break; /* fewer workers, same answers */
		w->ctx.a = ctx->a;
		w->id = (uint8_t)b->nworkers++;
	}
	return STOKE_MIN(jobs, b->nworkers);
}

/* Resolve the unique addresses, split between the workers. -1 after a
 * fatal error (said). */
static int batch_resolve(struct sym_ctx *ctx, struct batch *b)
{
	int nw = batch_workers(ctx, b), started = 1, rc = 0;
	pthread_t tids[MAX_JOBS];

	for (int w = 0; w < nw; w++) {
		b->workers[w].b = b;
		b->workers[w].from = b->nuniq * (size_t)w / (size_t)nw;
		b->workers[w].to = b->nuniq * (size_t)(w + 1) / (size_t)nw;
	}
	while (started < nw &&
	       pthread_create(&tids[started], NULL, worker_run, &b->workers[started]) == 0)
		started++;
	/* The parts of workers whose thread could not start are done here,
	 * each with its own symbolizer still. */
	for (int w = started; w < nw; w++)
		worker_run(&b->workers[w]);
	worker_run(&b->workers[0]);
	for (int w = 1; w < started; w++)
		pthread_join(tids[w], NULL);
	for (int w = 0; w < nw; w++)
		if (b->workers[w].rc < 0)
			rc = -1;
	return rc;
}

/* Resolve and print the batch, then empty it. -1 after a fatal error. */
static int batch_run(struct sym_ctx *ctx, struct batch *b, struct out *o)
{
	b->nuniq = 0;
	sort_pairs(b);
	for (size_t i = 0; i < b->n; i++) {
		if (!b->nuniq || b->pairs[i].addr != b->uniq[b->nuniq - 1].addr)
			b->uniq[b->nuniq++] = (struct uniq){ .addr = b->pairs[i].addr };
		b->uniq_of[b->pairs[i].idx] = (uint32_t)(b->nuniq - 1);
	}
	if (batch_resolve(ctx, b) < 0)
		return -1;
	/* Input order jumps around the results: fetch ahead of the reads. */
	for (size_t i = 0; i < b->n; i++) {
		const struct uniq *u = &b->uniq[b->uniq_of[i]];
		const struct stoke_symbol *fr = b->workers[u->worker].frames + u->first;

		if (i + 32 < b->n)
			__builtin_prefetch(&b->uniq[b->uniq_of[i + 32]]);
		if (i + 16 < b->n) {
			const struct uniq *ahead = &b->uniq[b->uniq_of[i + 16]];
			const struct stoke_symbol *f = b->workers[ahead->worker].frames + ahead->first;

			__builtin_prefetch(f);
			__builtin_prefetch(f + ahead->n - 1);
		}
		if (ctx->a->json)
			print_json(o, u->addr, fr, u->n);
		else
			print_text(o, u->addr, fr, u->n);
	}
	b->n = 0;
	return 0;
}

/* ---- stdin ---- */

/* Every whitespace-separated token of line is an address. A batch that
 * fills up is answered on the way; on a bad token, the addresses before it
 * are answered first. */
static int parse_line(struct sym_ctx *ctx, struct batch *b, struct out *o, char *line,
		      unsigned long lineno)
{
	char *save = NULL;

	for (char *tok = strtok_r(line, " \t\r\v\f", &save); tok;
	     tok = strtok_r(NULL, " \t\r\v\f", &save)) {
		uint64_t addr;

		if (parse_addr(tok, &addr) < 0) {
			if (batch_run(ctx, b, o) < 0)
				return -1;
			fprintf(stderr, "stoke: stdin:%lu: not a hex address: '%.64s'\n", lineno,
				tok);
			return -1;
		}
		if (batch_add(b, addr) < 0) {
			fprintf(stderr, "stoke: %s\n", strerror(ENOMEM));
			return -1;
		}
		if (b->n >= BATCH_MAX_ADDRS && batch_run(ctx, b, o) < 0)
			return -1;
	}
	return 0;
}

/* Whether a read of stdin would not block: more input is already there
 * (or EOF, or an error, which the read reports). */
static bool input_ready(void)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/*
 * Everything that can be read without waiting makes one batch (at most
 * BATCH_MAX_BYTES of input, BATCH_MAX_ADDRS addresses): a file or a bulk
 * pipe is answered in a few large batches, while a coprocess that writes
 * one address and waits for its answer (as perf's addr2line pipe does) gets
 * it at once, since the output is flushed whenever input would block.
 */
static int run_stdin(struct sym_ctx *ctx, struct batch *b, struct out *o)
{
	const size_t cap = BATCH_MAX_BYTES + LINE_MAX_LEN;
	char *buf = malloc(cap + 1);
	unsigned long lineno = 0;
	size_t len = 0;
	int rc = 0;

	if (!buf) {
		fprintf(stderr, "stoke: %s\n", strerror(ENOMEM));
		return 1;
	}
	for (;;) {
		ssize_t got = read(STDIN_FILENO, buf + len, cap - len);
		size_t start = 0;
		bool eof = got == 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			fprintf(stderr, "stoke: reading stdin: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		len += (size_t)got;
		if (!eof && len < BATCH_MAX_BYTES && input_ready())
			continue;
		for (size_t i = 0; i < len; i++) {
			if (buf[i] != '\n')
				continue;
			buf[i] = '\0';
			if (parse_line(ctx, b, o, buf + start, ++lineno) < 0) {
				rc = 1;
				goto out;
			}
			start = i + 1;
		}
		memmove(buf, buf + start, len - start);
		len -= start;
		if (eof) {
			buf[len] = '\0';
			if (len && parse_line(ctx, b, o, buf, ++lineno) < 0)
				rc = 1;
			else if (batch_run(ctx, b, o) < 0)
				rc = 1;
			break;
		}
		if (len >= LINE_MAX_LEN) {
			fprintf(stderr, "stoke: stdin:%lu: line too long\n", lineno + 1);
			rc = 1;
			break;
		}
		/* Everything complete is answered: let a coprocess see it. */
		if (batch_run(ctx, b, o) < 0) {
			rc = 1;
			break;
		}
		out_flush(o);
		if (fflush(o->f) != 0)
			break;
	}
out:
	out_flush(o);
	free(buf);
	return rc;
}

/* ---- -p: the process's mappings as MMAP records ---- */

static int feed_mapping(const struct stoke_maps_entry *e, void *userdata)
{
	struct sym_ctx *ctx = userdata;
	struct stoke_record rec;

	if (!(e->prot & 4 /* PROT_EXEC */) || !e->path[0])
		return 0;
	stoke_maps_entry_to_record(e, (uint32_t)ctx->a->pid, &rec);
	return stoke_symbolizer_record(ctx->s, &rec) < 0 ? -ENOMEM : 0;
}

static int open_target(struct sym_ctx *ctx)
{
	struct sym_args *a = ctx->a;
	struct stoke_symbol probe;
	int fd, r;

	if (a->exe) {
		/* Say why a file cannot be used before any address is read. */
		fd = open(a->exe, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "stoke: %s: %s\n", a->exe, strerror(errno));
			return 1;
		}
		close(fd);
		a->exe_abs = realpath(a->exe, NULL);
		if (!a->exe_abs) {
			fprintf(stderr, "stoke: %s: %s\n", a->exe, strerror(errno));
			return 1;
		}
		r = stoke_symbolizer_elf_frames(ctx->s, a->exe_abs, 0, &probe, 1);
		if (r < 0) {
			fprintf(stderr, "stoke: %s: %s\n", a->exe,
				r == -ENOEXEC ? "not an ELF file" : strerror(-r));
			return 1;
		}
		return 0;
	}
	r = stoke_maps_read_pid(a->pid, feed_mapping, ctx);
	if (r == -ENOENT || r == -ESRCH) {
		fprintf(stderr, "stoke: no such process %d\n", (int)a->pid);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "stoke: reading /proc/%d/maps: %s\n", (int)a->pid, strerror(-r));
		return 1;
	}
	return 0;
}

int cmd_symbolize(int argc, char **argv)
{
	static struct out o; /* 64 KiB: not on the stack */
	struct sym_args a = { 0 };
	struct sym_ctx ctx = { .a = &a };
	struct stoke_symbolizer_opts so = { 0 };
	struct batch b = { 0 };
	int first = 0, r, rc = 0;

	r = parse_args(argc, argv, &a, &first);
	if (r)
		return r < 0 ? 0 : r;
	for (int i = first; i < argc; i++) {
		uint64_t addr;

		if (parse_addr(argv[i], &addr) < 0)
			return cli_usage_error("symbolize", "not a hex address: '%s'", argv[i]);
	}
	so.debuginfo_path = a.debuginfo_path;
	so.demangle = a.demangle;
	/* Each batch resolves its unique addresses once (batch_run). */
	so.no_result_cache = true;
	r = stoke_symbolizer_new(&so, &ctx.s);
	if (r < 0) {
		fprintf(stderr, "stoke: %s\n", strerror(-r));
		return 1;
	}
	/* Bulk output: the stdin loop flushes when it waits. */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	o.f = stdout;
	rc = open_target(&ctx);
	if (rc == 0 && first < argc) {
		/* The command line is one batch. */
		for (int i = first; i < argc && rc == 0; i++) {
			uint64_t addr;

			parse_addr(argv[i], &addr);
			if (batch_add(&b, addr) < 0) {
				fprintf(stderr, "stoke: %s\n", strerror(ENOMEM));
				rc = 1;
			}
		}
		if (rc == 0 && batch_run(&ctx, &b, &o) < 0)
			rc = 1;
		out_flush(&o);
	} else if (rc == 0) {
		rc = run_stdin(&ctx, &b, &o);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (rc == 0)
			fprintf(stderr, "stoke: writing output: %s\n", strerror(errno));
		rc = 1;
	}
	batch_free(&b);
	stoke_symbolizer_free(ctx.s);
	free(a.exe_abs);
	return rc;
}
