/*
 * libFuzzer target "elf": symbolizing against a mutated ELF file, through
 * the public symbolizer API only (symbolizer/symbolizer.h).
 *
 * Each input is written to a regular temporary file (the symbolizer opens
 * only regular files, never through a symlink such as /proc/self/fd/N) and
 * mapped into a made-up process with a synthetic MMAP record naming it,
 * exactly as the sampler reports a mapped file; then addresses inside the
 * mapping are resolved one
 * by one and as a sample's callchain. Whatever the symbolizer parses from
 * the file (program headers, symbol tables, and the DWARF it will read for
 * lines and inlined frames) is thereby exercised on hostile bytes. A fresh
 * symbolizer per input keeps the module cache from hiding later inputs.
 *
 * The addresses come from the input's last bytes (so the fuzzer steers them)
 * plus fixed offsets at the start of the mapping. A third pass unwinds a
 * DWARF-mode sample (user registers and a stack copy whose slots point into
 * the mapping) so the unwinder reads the mutated file's .eh_frame_hdr and
 * CFI too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "symbolizer/symbolizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-elf: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

#define MAP_BASE 0x10000000ull
#define N_ADDRS 16
/* A made-up stack for the DWARF-mode sample. */
#define STACK_BASE 0x7ffd00000000ull
#define STACK_SLOTS 64

static int elf_fd = -1;
static char dir[] = "/tmp/stoke-fuzz-elf-XXXXXX";
static char path[sizeof(dir) + 16];
static volatile size_t sink;

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Never reach out to debuginfod from a fuzzer. */
	unsetenv("DEBUGINFOD_URLS");
	if (!mkdtemp(dir)) {
		perror("fuzz-elf: mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/target.so", dir);
	elf_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (elf_fd < 0) {
		perror("fuzz-elf: open");
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

static void check_symbol(const struct stoke_symbol *sym)
{
	if (sym->function)
		sink += strlen(sym->function);
	if (sym->file)
		sink += strlen(sym->file);
	if (sym->module)
		sink += strlen(sym->module);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stoke_symbolizer_opts opts = { .no_kernel = true };
	struct stoke_record rec = { .type = STOKE_REC_MMAP };
	struct stoke_symbol frames[64];
	uint64_t chain[N_ADDRS + 1];
	uint64_t stack[STACK_SLOTS];
	struct stoke_sample sample = { 0 };
	struct stoke_symbolizer *s;
	uint64_t len = (size + 0xfff) & ~0xfffull;
	pid_t pid = getpid();
	int n;

	if (ftruncate(elf_fd, 0) < 0 || pwrite(elf_fd, data, size, 0) != (ssize_t)size)
		abort();
	if (!len)
		len = 0x1000;

	REQUIRE(stoke_symbolizer_new(&opts, &s) == 0);
	rec.mmap = (struct stoke_mmap){
		.pid = (uint32_t)pid,
		.tid = (uint32_t)pid,
		.addr = MAP_BASE,
		.len = len,
		.pgoff = 0,
		.prot = PROT_READ | PROT_EXEC,
		.flags = MAP_PRIVATE,
		.filename = path,
	};
	REQUIRE(stoke_symbolizer_record(s, &rec) == 0);

	chain[0] = 0; /* unused: the user IPs start at chain + 1 */
	for (int i = 0; i < N_ADDRS; i++) {
		uint64_t off = (uint64_t)i * 0x40;
		struct stoke_symbol sym;

		/* Half the addresses from the input's tail, half fixed. */
		if (i % 2 == 0 && size >= 4 * (size_t)(i / 2 + 1)) {
			uint32_t v;

			memcpy(&v, data + size - 4 * (size_t)(i / 2 + 1), sizeof(v));
			off = v % len;
		}
		REQUIRE(stoke_symbolizer_addr(s, pid, MAP_BASE + off, false, i > 0, &sym) == 0);
		check_symbol(&sym);
		chain[i + 1] = MAP_BASE + off;
	}
	sample.pid = sample.tid = (uint32_t)pid;
	sample.ip = chain[1];
	sample.has_stack = true;
	sample.nr_user_ips = N_ADDRS;
	sample.user_ips = chain + 1;
	n = stoke_symbolizer_sample(s, &sample, frames, sizeof(frames) / sizeof(frames[0]));
	REQUIRE(n >= 0 && (size_t)n <= sizeof(frames) / sizeof(frames[0]));
	for (int i = 0; i < n; i++)
		check_symbol(&frames[i]);

	/* DWARF mode: IP at the first address, SP/BP in a stack copy whose
	 * slots alternate frame links and return addresses in the mapping. */
	sample.regs[STOKE_DWARF_RIP] = chain[1];
	sample.regs[STOKE_DWARF_RSP] = STACK_BASE;
	sample.regs[STOKE_DWARF_RBP] = STACK_BASE + 16;
	for (int i = 0; i < STACK_SLOTS; i++)
		stack[i] = i % 2 ? chain[1 + (i / 2) % N_ADDRS] : STACK_BASE + 16 * (uint64_t)(i / 2 + 1);
	sample.has_stack = false;
	sample.nr_user_ips = 0;
	sample.user_ips = NULL;
	sample.regs_kind = STOKE_REGS_X86_64;
	sample.stack_addr = STACK_BASE;
	sample.stack_len = sizeof(stack);
	sample.stack = (const uint8_t *)stack;
	n = stoke_symbolizer_sample(s, &sample, frames, sizeof(frames) / sizeof(frames[0]));
	REQUIRE(n >= 0 && (size_t)n <= sizeof(frames) / sizeof(frames[0]));
	for (int i = 0; i < n; i++)
		check_symbol(&frames[i]);
	stoke_symbolizer_free(s);
	return 0;
}
