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
 * On stdin the output is flushed whenever the input has no more complete
 * lines waiting, so that stoke can run as a coprocess (one address in, its
 * answer out) without paying a flush per address on bulk input.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "maps.h"
#include "symbolizer.h"

#define MAX_FRAMES 64
#define LINE_MAX_LEN 4096

struct sym_args {
	const char *exe;
	char *exe_abs; /* realpath of exe: modules are keyed by absolute path */
	pid_t pid;
	bool json;
	const char *debuginfo_path;
	enum stoke_demangle_mode demangle;
};

struct sym_ctx {
	struct sym_args *a;
	struct stoke_symbolizer *s;
	FILE *out;
};

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
	      "  -h, --help               this help\n",
	      f);
}

enum { OPT_JSON = 256, OPT_DEBUGINFO, OPT_DEMANGLE };

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
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "e:p:h", longopts, NULL)) != -1) {
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

static void json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
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

static void print_json(FILE *f, uint64_t addr, const struct stoke_symbol *fr, int n)
{
	fprintf(f, "{\"address\":\"0x%" PRIx64 "\",\"frames\":[", addr);
	for (int i = 0; i < n; i++) {
		fputs(i ? ",{\"function\":" : "{\"function\":", f);
		json_string(f, fr[i].function);
		fputs(",\"file\":", f);
		json_string(f, fr[i].file);
		fprintf(f, ",\"line\":%" PRIu32 ",\"inlined\":%s,\"module\":", fr[i].line,
			fr[i].inlined ? "true" : "false");
		json_string(f, fr[i].module);
		fprintf(f, ",\"offset\":\"0x%" PRIx64 "\",\"kind\":\"%s\"}", fr[i].offset,
			kind_name(fr[i].kind));
	}
	fputs("]}\n", f);
}

/* addr2line's shape: "??" for an unknown function; "??:0" when nothing is
 * known, "??:?" for a known function without a line. */
static void print_text(FILE *f, uint64_t addr, const struct stoke_symbol *fr, int n)
{
	fprintf(f, "0x%016" PRIx64 "\n", addr);
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s\n", fr[i].function ? fr[i].function : "??");
		if (fr[i].file && fr[i].line)
			fprintf(f, "%s:%" PRIu32 "\n", fr[i].file, fr[i].line);
		else if (fr[i].file)
			fprintf(f, "%s:?\n", fr[i].file);
		else
			fputs(fr[i].function ? "??:?\n" : "??:0\n", f);
	}
}

static bool addr_is_kernel(uint64_t addr)
{
	return addr >= 0xffff800000000000ULL;
}

static int symbolize_one(struct sym_ctx *ctx, uint64_t addr)
{
	struct stoke_symbol frames[MAX_FRAMES];
	int n;

	if (ctx->a->exe) {
		n = stoke_symbolizer_elf_frames(ctx->s, ctx->a->exe_abs, addr, frames, MAX_FRAMES);
		if (n < 0) {
			fprintf(stderr, "stoke: %s: %s\n", ctx->a->exe,
				n == -ENOEXEC ? "not an ELF file" : strerror(-n));
			return -1;
		}
	} else {
		n = stoke_symbolizer_addr_frames(ctx->s, ctx->a->pid, addr, addr_is_kernel(addr),
						 false, frames, MAX_FRAMES);
	}
	if (ctx->a->json)
		print_json(ctx->out, addr, frames, n);
	else
		print_text(ctx->out, addr, frames, n);
	return 0;
}

/* Every whitespace-separated token of line is an address. */
static int symbolize_line(struct sym_ctx *ctx, char *line, unsigned long lineno)
{
	char *save = NULL;

	for (char *tok = strtok_r(line, " \t\r\v\f", &save); tok;
	     tok = strtok_r(NULL, " \t\r\v\f", &save)) {
		uint64_t addr;

		if (parse_addr(tok, &addr) < 0) {
			fprintf(stderr, "stoke: stdin:%lu: not a hex address: '%.64s'\n", lineno,
				tok);
			return -1;
		}
		if (symbolize_one(ctx, addr) < 0)
			return -1;
	}
	return 0;
}

static int run_stdin(struct sym_ctx *ctx)
{
	static char buf[1 << 16];
	size_t len = 0;
	unsigned long lineno = 0;

	for (;;) {
		ssize_t got = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
		size_t start = 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			fprintf(stderr, "stoke: reading stdin: %s\n", strerror(errno));
			return 1;
		}
		len += (size_t)got;
		for (size_t i = 0; i < len; i++) {
			if (buf[i] != '\n')
				continue;
			buf[i] = '\0';
			if (symbolize_line(ctx, buf + start, ++lineno) < 0)
				return 1;
			start = i + 1;
		}
		memmove(buf, buf + start, len - start);
		len -= start;
		if (got == 0) {
			buf[len] = '\0';
			if (len && symbolize_line(ctx, buf, ++lineno) < 0)
				return 1;
			break;
		}
		if (len >= sizeof(buf) - 1) {
			fprintf(stderr, "stoke: stdin:%lu: line too long\n", lineno + 1);
			return 1;
		}
		/* Everything complete is answered: let a coprocess see it. */
		if (fflush(ctx->out) != 0)
			break;
	}
	return 0;
}

/* ---- -p: the process's mappings as MMAP records ---- */

static int feed_mapping(const struct stoke_maps_entry *e, void *userdata)
{
	struct sym_ctx *ctx = userdata;
	struct stoke_record rec = { .type = STOKE_REC_MMAP };

	if (!(e->prot & 4 /* PROT_EXEC */) || !e->path[0])
		return 0;
	rec.mmap.pid = rec.mmap.tid = (uint32_t)ctx->a->pid;
	rec.mmap.addr = e->start;
	rec.mmap.len = e->end - e->start;
	rec.mmap.pgoff = e->pgoff;
	rec.mmap.is_mmap2 = true;
	rec.mmap.maj = e->maj;
	rec.mmap.min = e->min;
	rec.mmap.ino = e->ino;
	rec.mmap.prot = e->prot;
	rec.mmap.filename = e->path;
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
	struct sym_args a = { 0 };
	struct sym_ctx ctx = { .a = &a, .out = stdout };
	struct stoke_symbolizer_opts so = { 0 };
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
	r = stoke_symbolizer_new(&so, &ctx.s);
	if (r < 0) {
		fprintf(stderr, "stoke: %s\n", strerror(-r));
		return 1;
	}
	/* Bulk output: the stdin loop flushes when it waits. */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	rc = open_target(&ctx);
	if (rc == 0 && first < argc) {
		for (int i = first; i < argc && rc == 0; i++) {
			uint64_t addr;

			parse_addr(argv[i], &addr);
			if (symbolize_one(&ctx, addr) < 0)
				rc = 1;
		}
	} else if (rc == 0) {
		rc = run_stdin(&ctx);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (rc == 0)
			fprintf(stderr, "stoke: writing output: %s\n", strerror(errno));
		rc = 1;
	}
	stoke_symbolizer_free(ctx.s);
	free(a.exe_abs);
	return rc;
}
