/*
 * Unit tests for symbolizer/: address spaces from synthesized MMAP/COMM/FORK
 * records, ELF symbol lookup on this very binary and on libc, the
 * return-address rule, the result cache, kallsyms parsing, and robustness
 * against unreadable and malformed ELF files; inlined frames and lines,
 * demangling, and JIT perf maps.
 *
 * The test feeds its own executable mappings (parsed from /proc/self/maps)
 * as MMAP records, so the names it expects are the ones the compiler gave
 * the functions below.
 */
#include <check.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "symbolizer/demangle.h"
#include "symbolizer/elfcache.h"
#include "symbolizer/perfmap.h"
#include "symbolizer/symbolizer.h"

/* ---- functions the test resolves in itself ---- */

static volatile uintptr_t recorded_return;

/* Keep the functions whole and under their own names (no clones such as
 * target_fn.constprop.0). */
#if defined(__clang__)
#define TEST_NOIPA __attribute__((noinline))
#else
#define TEST_NOIPA __attribute__((noipa))
#endif

static TEST_NOIPA void record_return(void)
{
	recorded_return = (uintptr_t)__builtin_return_address(0);
}

/* Big enough that +10 is still inside it; the call is not in tail position,
 * so its return address lies inside this function. Its DWARF lines lie
 * strictly between the two markers. */
enum { TARGET_FN_FIRST_LINE = __LINE__ };
static TEST_NOIPA int target_fn(int x)
{
	int acc = 0;

	for (int i = 0; i < x; i++)
		acc += i * 3 + (int)(recorded_return & 7);
	record_return();
	return acc + 1;
}
enum { TARGET_FN_LAST_LINE = __LINE__ };

/*
 * Two adjacent functions where the first ends with a call: the return address
 * of that call is exactly the first byte of the second. Only assembly gives
 * that layout for sure.
 */
#if defined(__x86_64__)
#define HAVE_ASM_PAIR 1
__asm__(".text\n"
	".p2align 4\n"
	".type stoke_test_asm_a, @function\n"
	"stoke_test_asm_a:\n"
	"\tnop\n"
	"\tcall stoke_test_asm_b\n"
	".size stoke_test_asm_a, .-stoke_test_asm_a\n"
	".type stoke_test_asm_b, @function\n"
	"stoke_test_asm_b:\n"
	"\tret\n"
	".size stoke_test_asm_b, .-stoke_test_asm_b\n");
#elif defined(__aarch64__)
#define HAVE_ASM_PAIR 1
__asm__(".text\n"
	".p2align 4\n"
	".type stoke_test_asm_a, %function\n"
	"stoke_test_asm_a:\n"
	"\tnop\n"
	"\tbl stoke_test_asm_b\n"
	".size stoke_test_asm_a, .-stoke_test_asm_a\n"
	".type stoke_test_asm_b, %function\n"
	"stoke_test_asm_b:\n"
	"\tret\n"
	".size stoke_test_asm_b, .-stoke_test_asm_b\n");
#endif
#ifdef HAVE_ASM_PAIR
extern void stoke_test_asm_a(void) __attribute__((visibility("hidden")));
extern void stoke_test_asm_b(void) __attribute__((visibility("hidden")));
#endif

/*
 * An always_inline helper inlined into a real function: the lea records its
 * own address, an instruction inside the inlined body, which must resolve to
 * [inl_helper (inlined, on INL_HELPER_LINE), inl_caller (at the call,
 * INL_CALL_LINE)].
 */
static volatile uintptr_t inl_addr;
static volatile int inl_helper_line, inl_call_line;
#if defined(__x86_64__)
#define HAVE_INL_MARK 1
static inline __attribute__((always_inline)) int inl_helper(int x)
{
	uintptr_t p;

	/* clang-format off */
	__asm__ volatile("1: lea 1b(%%rip), %0" : "=r"(p)); inl_helper_line = __LINE__;
	/* clang-format on */
	inl_addr = p;
	return x * 7 + (int)(p & 1);
}

static TEST_NOIPA int inl_caller(int x)
{
	/* clang-format off */
	int r = inl_helper(x) + 1; inl_call_line = __LINE__;
	/* clang-format on */
	return r;
}
#endif

/* ---- helpers ---- */

#define FAKE_PID 3999001u
#define FAKE_CHILD 3999002u
#define KBASE 0xffffffff81000000ULL

static struct stoke_symbolizer *sym_new(const char *kallsyms, bool no_kernel)
{
	struct stoke_symbolizer_opts opts = {
		.no_kernel = no_kernel,
		.kallsyms_path = kallsyms ? kallsyms : "/nonexistent/kallsyms",
	};
	struct stoke_symbolizer *s = NULL;

	ck_assert_int_eq(stoke_symbolizer_new(&opts, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static void feed_mmap_id(struct stoke_symbolizer *s, uint32_t pid, uint64_t start, uint64_t len,
			 uint64_t pgoff, const char *path, uint32_t maj, uint32_t min,
			 uint64_t ino)
{
	struct stoke_record rec = { .type = STOKE_REC_MMAP };

	rec.mmap.pid = rec.mmap.tid = pid;
	rec.mmap.addr = start;
	rec.mmap.len = len;
	rec.mmap.pgoff = pgoff;
	rec.mmap.is_mmap2 = true;
	rec.mmap.maj = maj;
	rec.mmap.min = min;
	rec.mmap.ino = ino;
	rec.mmap.prot = PROT_READ | PROT_EXEC;
	rec.mmap.filename = path;
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
}

static void feed_mmap(struct stoke_symbolizer *s, uint32_t pid, uint64_t start, uint64_t len,
		      uint64_t pgoff, const char *path)
{
	feed_mmap_id(s, pid, start, len, pgoff, path, 0, 0, 0);
}

/* Feed this process's executable mappings as MMAP records of pid. Parsed
 * here rather than with sampler/maps.c so this suite depends on symbolizer/
 * alone. Returns the number fed. */
static int feed_self_maps(struct stoke_symbolizer *s, uint32_t pid)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off, ino;
		unsigned int maj, min;
		char perms[8];
		int pos = 0;
		char *path;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
			   &min, &ino, &pos) < 7)
			continue;
		if (!strchr(perms, 'x'))
			continue;
		path = line + pos;
		path[strcspn(path, "\n")] = '\0';
		feed_mmap_id(s, pid, start, end - start, off, path, maj, min, ino);
		n++;
	}
	fclose(f);
	return n;
}

static struct stoke_symbol resolve(struct stoke_symbolizer *s, uint32_t pid, uint64_t addr,
				   bool kernel, bool ret_addr)
{
	struct stoke_symbol sym;

	memset(&sym, 0xa5, sizeof(sym)); /* catch fields left unwritten */
	ck_assert_int_eq(stoke_symbolizer_addr(s, (pid_t)pid, addr, kernel, ret_addr, &sym), 0);
	ck_assert_uint_eq(sym.addr, addr);
	return sym;
}

static struct stoke_symbolizer_stats stats_of(struct stoke_symbolizer *s)
{
	struct stoke_symbolizer_stats st;

	stoke_symbolizer_get_stats(s, &st);
	return st;
}

static void assert_fn(const struct stoke_symbol *sym, const char *name)
{
	ck_assert_msg(sym->function && strcmp(sym->function, name) == 0,
		      "expected %s, got %s (module %s, offset %#" PRIx64 ")", name,
		      sym->function ? sym->function : "(null)",
		      sym->module ? sym->module : "(null)", sym->offset);
}

static char *tmp_file(const void *data, size_t len)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *path;
	int fd;

	ck_assert_int_gt(asprintf(&path, "%s/stoke-test-symXXXXXX", dir), 0);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static char *tmp_text(const char *text)
{
	return tmp_file(text, strlen(text));
}

static uint32_t self_pid(void)
{
	return (uint32_t)getpid();
}

static char *self_exe(void)
{
	char *p = realpath("/proc/self/exe", NULL);

	ck_assert_ptr_nonnull(p);
	return p;
}

/*
 * A minimal valid ELF with program headers only (no sections, so no
 * symbols): PT_LOAD 0 maps file [0, 0x1000) at 0x400000, PT_LOAD 1 maps
 * [0x1000, 0x4000) at 0x411000, a different delta, so a wrong offset->vaddr
 * conversion shows.
 */
#define MINI_SIZE 0x4000
#define MINI_SEG1_OFF 0x1000
#define MINI_SEG1_VADDR 0x411000

static char *write_mini_elf(void)
{
	static unsigned char buf[MINI_SIZE];
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(*eh));

	memset(buf, 0, sizeof(buf));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
#if defined(__x86_64__)
	eh->e_machine = EM_X86_64;
#elif defined(__aarch64__)
	eh->e_machine = EM_AARCH64;
#endif
	eh->e_version = EV_CURRENT;
	eh->e_entry = MINI_SEG1_VADDR;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 2;
	ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R, .p_offset = 0,
			      .p_vaddr = 0x400000, .p_paddr = 0x400000, .p_filesz = 0x1000,
			      .p_memsz = 0x1000, .p_align = 0x1000 };
	ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
			      .p_offset = MINI_SEG1_OFF, .p_vaddr = MINI_SEG1_VADDR,
			      .p_paddr = MINI_SEG1_VADDR, .p_filesz = 0x3000, .p_memsz = 0x3000,
			      .p_align = 0x1000 };
	return tmp_file(buf, sizeof(buf));
}

/* ---- user-space symbols ---- */

START_TEST(test_own_function)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	uint64_t fn = (uintptr_t)&target_fn;
	struct stoke_symbol a, b, r;
	char *exe = self_exe();

	ck_assert_int_eq(target_fn(5), 31); /* sets recorded_return */
	ck_assert_int_gt(feed_self_maps(s, self_pid()), 0);

	a = resolve(s, self_pid(), fn, false, false);
	assert_fn(&a, "target_fn");
	ck_assert_ptr_nonnull(a.module);
	ck_assert_str_eq(a.module, exe);
	ck_assert_int_eq(a.kind, STOKE_FRAME_USER);
	/* This file is built with -g: the line comes from DWARF. */
	ck_assert_ptr_nonnull(a.file);
	ck_assert_msg(strstr(a.file, "test-symbolizer.c"), "file %s", a.file);
	ck_assert_uint_gt(a.line, TARGET_FN_FIRST_LINE);
	ck_assert_uint_lt(a.line, TARGET_FN_LAST_LINE);
	ck_assert(!a.inlined);

	b = resolve(s, self_pid(), fn + 10, false, false);
	assert_fn(&b, "target_fn");
	ck_assert_uint_eq(b.offset - a.offset, 10);
	/* Same module string, interned once. */
	ck_assert_ptr_eq(a.module, b.module);

	/* A real return address (the end of the call insn) inside target_fn. */
	ck_assert_uint_gt(recorded_return, fn);
	r = resolve(s, self_pid(), recorded_return, false, true);
	assert_fn(&r, "target_fn");
	ck_assert_uint_eq(r.addr, recorded_return);
	ck_assert_uint_eq(r.offset - a.offset, recorded_return - fn);

	ck_assert_uint_eq(stats_of(s).unknown, 0);
	stoke_symbolizer_free(s);
	free(exe);
}
END_TEST

START_TEST(test_libc_function)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	void *p = dlsym(RTLD_DEFAULT, "getpid");
	struct stoke_symbol sym;

	ck_assert_ptr_nonnull(p);
	feed_self_maps(s, self_pid());
	sym = resolve(s, self_pid(), (uintptr_t)p, false, false);
	ck_assert_msg(sym.function && strstr(sym.function, "getpid"), "got %s",
		      sym.function ? sym.function : "(null)");
	ck_assert_ptr_nonnull(sym.module);
	ck_assert_ptr_nonnull(strstr(sym.module, "libc"));

	/* With glibc's debug symbols, dlsym is "dlsym@@GLIBC_2.34" in the
	 * .symtab: the version suffix is dropped. */
	p = dlsym(RTLD_DEFAULT, "dlsym");
	ck_assert_ptr_nonnull(p);
	sym = resolve(s, self_pid(), (uintptr_t)p, false, false);
	ck_assert_ptr_nonnull(sym.function);
	ck_assert_msg(strstr(sym.function, "dlsym") && !strchr(sym.function, '@'), "got %s",
		      sym.function);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_unknown_address)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_symbol sym;

	feed_self_maps(s, self_pid());
	sym = resolve(s, self_pid(), 0x10, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_ptr_null(sym.module);
	ck_assert_ptr_null(sym.file);
	ck_assert_uint_eq(sym.offset, 0x10);
	/* A pid we never heard of. */
	sym = resolve(s, FAKE_PID + 77, (uintptr_t)&target_fn, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_ptr_null(sym.module);
	ck_assert_uint_eq(stats_of(s).no_mapping, 2);
	ck_assert_uint_eq(stats_of(s).unknown, 2);
	ck_assert_uint_eq(stats_of(s).lookups, 2);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_no_symbol_and_vaddr)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char *path = write_mini_elf();
	const uint64_t base = 0x7f0000100000ULL;
	struct stoke_symbol sym;

	feed_mmap(s, FAKE_PID, base, 0x3000, MINI_SEG1_OFF, path);
	sym = resolve(s, FAKE_PID, base + 0x10, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_str_eq(sym.module, path);
	ck_assert_uint_eq(sym.offset, MINI_SEG1_VADDR + 0x10);
	ck_assert_uint_eq(stats_of(s).modules, 1);
	ck_assert_uint_eq(stats_of(s).modules_failed, 0);
	ck_assert_uint_eq(stats_of(s).no_mapping, 0);
	ck_assert_uint_eq(stats_of(s).unknown, 1);

	/* Return-address rule keeps addr and offset of the sampled address. */
	sym = resolve(s, FAKE_PID, base + 0x20, false, true);
	ck_assert_uint_eq(sym.addr, base + 0x20);
	ck_assert_uint_eq(sym.offset, MINI_SEG1_VADDR + 0x20);
	unlink(path);
	free(path);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_mmap_overlap_split)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char *path = write_mini_elf();
	const uint64_t base = 0x7f0000100000ULL;
	struct stoke_symbol sym;

	feed_mmap(s, FAKE_PID, base, 0x3000, MINI_SEG1_OFF, path);
	/* An anonymous mapping punches a hole in the middle. */
	feed_mmap(s, FAKE_PID, base + 0x1000, 0x1000, 0, "//anon");

	sym = resolve(s, FAKE_PID, base + 0x10, false, false);
	ck_assert_str_eq(sym.module, path);
	ck_assert_uint_eq(sym.offset, MINI_SEG1_VADDR + 0x10);
	sym = resolve(s, FAKE_PID, base + 0x1010, false, false);
	ck_assert_ptr_null(sym.module);
	ck_assert_ptr_null(sym.function);
	/* The right part keeps its file offset (pgoff moved by the cut). */
	sym = resolve(s, FAKE_PID, base + 0x2010, false, false);
	ck_assert_str_eq(sym.module, path);
	ck_assert_uint_eq(sym.offset, MINI_SEG1_VADDR + 0x2010);
	ck_assert_uint_eq(stats_of(s).no_mapping, 0);

	/* A mapping over all of it replaces every piece. */
	feed_mmap(s, FAKE_PID, base - 0x1000, 0x5000, 0, "[heap]");
	for (uint64_t a = base; a < base + 0x3000; a += 0x800) {
		sym = resolve(s, FAKE_PID, a, false, false);
		ck_assert_ptr_null(sym.module);
	}
	ck_assert_uint_eq(stats_of(s).no_mapping, 0);
	sym = resolve(s, FAKE_PID, base + 0x4000, false, false);
	ck_assert_ptr_null(sym.module);
	ck_assert_uint_eq(stats_of(s).no_mapping, 1);
	unlink(path);
	free(path);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_pseudo_mappings)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_symbol sym;

	feed_mmap(s, FAKE_PID, 0x7fff00000000ULL, 0x2000, 0, "[vdso]");
	feed_mmap(s, FAKE_PID, 0x10000, 0x1000, 0, "//anon");
	sym = resolve(s, FAKE_PID, 0x7fff00000123ULL, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_str_eq(sym.module, "[vdso]");
	ck_assert_uint_eq(sym.offset, 0x123);
	sym = resolve(s, FAKE_PID, 0x10010, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_ptr_null(sym.module);
	ck_assert_uint_eq(stats_of(s).modules, 0);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_cache_hits)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	uint64_t fn = (uintptr_t)&target_fn;
	struct stoke_symbol a, b;

	feed_self_maps(s, self_pid());
	a = resolve(s, self_pid(), fn + 4, false, false);
	ck_assert_uint_eq(stats_of(s).cache_hits, 0);
	b = resolve(s, self_pid(), fn + 4, false, false);
	ck_assert_uint_eq(stats_of(s).cache_hits, 1);
	ck_assert_ptr_eq(a.function, b.function);
	/* The return-address rule looks up fn+4: same entry. */
	resolve(s, self_pid(), fn + 5, false, true);
	ck_assert_uint_eq(stats_of(s).cache_hits, 2);
	/* A different address is a miss. */
	resolve(s, self_pid(), fn + 6, false, false);
	ck_assert_uint_eq(stats_of(s).cache_hits, 2);
	/* Another process mapping the same file shares the module and cache. */
	feed_self_maps(s, FAKE_PID);
	b = resolve(s, FAKE_PID, fn + 4, false, false);
	assert_fn(&b, "target_fn");
	ck_assert_uint_eq(stats_of(s).cache_hits, 3);
	ck_assert_uint_eq(stats_of(s).lookups, 5);
	ck_assert_uint_eq(stats_of(s).processes, 2);
	stoke_symbolizer_free(s);
}
END_TEST

/* no_result_cache (stoke symbolize dedups its own input): every lookup
 * resolves afresh, with the same answers, and nothing is counted as a hit. */
START_TEST(test_no_result_cache)
{
	struct stoke_symbolizer_opts opts = {
		.no_kernel = true,
		.no_result_cache = true,
	};
	struct stoke_symbolizer *s = NULL;
	uint64_t fn = (uintptr_t)&target_fn;
	struct stoke_symbol a, b;

	ck_assert_int_eq(stoke_symbolizer_new(&opts, &s), 0);
	feed_self_maps(s, self_pid());
	a = resolve(s, self_pid(), fn + 4, false, false);
	b = resolve(s, self_pid(), fn + 4, false, false);
	assert_fn(&a, "target_fn");
	ck_assert_ptr_eq(a.function, b.function);
	ck_assert_ptr_eq(a.module, b.module);
	ck_assert_uint_eq(a.offset, b.offset);
	resolve(s, self_pid(), fn + 5, false, true);
	ck_assert_uint_eq(stats_of(s).cache_hits, 0);
	ck_assert_uint_eq(stats_of(s).lookups, 3);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_module_identity)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char *path = write_mini_elf();
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	/* Same inode in two processes: one module. */
	feed_mmap_id(s, FAKE_PID, 0x100000, 0x3000, 0x1000, path, major(st.st_dev),
		     minor(st.st_dev), st.st_ino);
	feed_mmap_id(s, FAKE_CHILD, 0x200000, 0x3000, 0x1000, path, major(st.st_dev),
		     minor(st.st_dev), st.st_ino);
	ck_assert_uint_eq(stats_of(s).modules, 1);
	/* No identity: keyed by path, a second key for the same file. */
	feed_mmap(s, FAKE_PID, 0x300000, 0x3000, 0x1000, path);
	feed_mmap(s, FAKE_CHILD, 0x300000, 0x3000, 0x1000, path);
	ck_assert_uint_eq(stats_of(s).modules, 2);
	/* Another inode at the same path: a different module. */
	feed_mmap_id(s, FAKE_PID, 0x400000, 0x3000, 0x1000, path, major(st.st_dev),
		     minor(st.st_dev), st.st_ino + 1);
	ck_assert_uint_eq(stats_of(s).modules, 3);
	unlink(path);
	free(path);
	stoke_symbolizer_free(s);
}
END_TEST

/* Preloading a mapping makes the module its MMAP record will find (one
 * module, named as usual); what is no code file is skipped. */
START_TEST(test_preload_mapping)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char *path = write_mini_elf();
	struct stoke_mmap m = { .pid = FAKE_PID, .tid = FAKE_PID, .addr = 0x100000, .len = 0x3000,
				.pgoff = MINI_SEG1_OFF, .is_mmap2 = true,
				.prot = PROT_READ | PROT_EXEC, .filename = path };
	struct stoke_symbol sym;
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	m.maj = major(st.st_dev);
	m.min = minor(st.st_dev);
	m.ino = st.st_ino;
	ck_assert_int_eq(stoke_symbolizer_preload_mapping(s, &m), 0);
	ck_assert_uint_eq(stats_of(s).modules, 1);
	ck_assert_uint_eq(stats_of(s).modules_failed, 0);
	/* Its MMAP record later: the same module, and its names. */
	feed_mmap_id(s, FAKE_PID, m.addr, m.len, m.pgoff, path, m.maj, m.min, m.ino);
	ck_assert_uint_eq(stats_of(s).modules, 1);
	sym = resolve(s, FAKE_PID, m.addr + 0x10, false, false);
	ck_assert_str_eq(sym.module, path);
	ck_assert_uint_eq(sym.offset, MINI_SEG1_VADDR + 0x10);
	ck_assert_uint_eq(stats_of(s).modules_failed, 0);
	/* Data, pseudo files and kernel maps make no module. */
	m.prot = PROT_READ;
	m.ino++;
	ck_assert_int_eq(stoke_symbolizer_preload_mapping(s, &m), 0);
	m.prot = PROT_READ | PROT_EXEC;
	m.filename = "[vdso]";
	ck_assert_int_eq(stoke_symbolizer_preload_mapping(s, &m), 0);
	m.filename = path;
	m.kernel = true;
	ck_assert_int_eq(stoke_symbolizer_preload_mapping(s, &m), 0);
	ck_assert_uint_eq(stats_of(s).modules, 1);
	/* A file that is gone: no error now, named by address later. */
	m.kernel = false;
	m.filename = "/nonexistent/stoke-preload";
	ck_assert_int_eq(stoke_symbolizer_preload_mapping(s, &m), 0);
	/* kallsyms (here a missing file) is read once, without error. */
	stoke_symbolizer_preload_kernel(s);
	unlink(path);
	free(path);
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_exec_clears)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_record rec = { .type = STOKE_REC_COMM };
	uint64_t fn = (uintptr_t)&target_fn;
	struct stoke_symbol sym;

	feed_self_maps(s, FAKE_PID);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");

	/* A plain rename (prctl) keeps the mappings. */
	rec.comm.pid = rec.comm.tid = FAKE_PID;
	rec.comm.comm = "renamed";
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");

	rec.comm.exec = true;
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	sym = resolve(s, FAKE_PID, fn, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_ptr_null(sym.module);

	/* The MMAPs after exec rebuild the space. */
	feed_self_maps(s, FAKE_PID);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	stoke_symbolizer_free(s);
}
END_TEST

/* Locating and naming are two steps (the session names long after it
 * drains): a location keeps what the mappings said at sample time, so an
 * exec between the two does not change the name, and naming it gives what
 * the one-step lookup gives. */
START_TEST(test_locate_then_name)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_record rec = { .type = STOKE_REC_COMM };
	uint64_t fn = (uintptr_t)&target_fn;
	struct stoke_frame_loc loc, again, ret_loc;
	struct stoke_symbol one, two[4];

	feed_self_maps(s, FAKE_PID);
	one = resolve(s, FAKE_PID, fn + 4, false, false);
	assert_fn(&one, "target_fn");
	ck_assert_int_eq(stoke_symbolizer_locate(s, FAKE_PID, fn + 4, false, false, &loc), 0);
	ck_assert_int_eq(loc.lookup, STOKE_LOC_MODULE);
	ck_assert_ptr_nonnull(loc.mod);
	ck_assert_ptr_eq(loc.module, one.module);
	ck_assert_uint_eq(loc.offset, one.offset);
	ck_assert_uint_eq(loc.addr, fn + 4);
	/* Equal addresses locate to equal locations, field by field. */
	ck_assert_int_eq(stoke_symbolizer_locate(s, FAKE_PID, fn + 4, false, false, &again), 0);
	ck_assert_int_eq(memcmp(&loc, &again, sizeof(loc)), 0);
	/* The -1 rule is applied when locating: look moves, addr does not. */
	ck_assert_int_eq(stoke_symbolizer_locate(s, FAKE_PID, fn + 5, false, true, &ret_loc), 0);
	ck_assert_uint_eq(ret_loc.look, loc.look);
	ck_assert_uint_eq(ret_loc.addr, fn + 5);

	/* exec: the process's mappings are gone ... */
	rec.comm.pid = rec.comm.tid = FAKE_PID;
	rec.comm.comm = "other";
	rec.comm.exec = true;
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	one = resolve(s, FAKE_PID, fn + 4, false, false);
	ck_assert_ptr_null(one.function);
	/* ... and the location made before still names target_fn. */
	ck_assert_int_eq(stoke_symbolizer_loc_frames(s, &loc, two, 4), 1);
	assert_fn(&two[0], "target_fn");
	ck_assert_uint_eq(two[0].addr, fn + 4);
	ck_assert_int_eq(two[0].kind, STOKE_FRAME_USER);
	ck_assert_int_eq(stoke_symbolizer_loc_frames(s, &loc, two, 0), 0);

	/* An address in no mapping is a named (unknown) location. */
	ck_assert_int_eq(stoke_symbolizer_locate(s, FAKE_PID, 0x10, false, false, &loc), 0);
	ck_assert_int_eq(loc.lookup, STOKE_LOC_NAMED);
	ck_assert_int_eq(stoke_symbolizer_loc_frames(s, &loc, two, 4), 1);
	ck_assert_ptr_null(two[0].function);
	ck_assert_ptr_null(two[0].module);
	ck_assert_uint_eq(two[0].offset, 0x10);
	stoke_symbolizer_free(s);
}
END_TEST

static void feed_fork(struct stoke_symbolizer *s, uint32_t pid, uint32_t ppid)
{
	struct stoke_record rec = { .type = STOKE_REC_FORK };

	rec.task.pid = rec.task.tid = pid;
	rec.task.ppid = rec.task.ptid = ppid;
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
}

START_TEST(test_fork_copies)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_record rec = { .type = STOKE_REC_COMM };
	uint64_t fn = (uintptr_t)&target_fn;
	struct stoke_symbol sym;

	feed_self_maps(s, FAKE_PID);
	/* A new thread: no new process. */
	feed_fork(s, FAKE_PID, FAKE_PID);
	ck_assert_uint_eq(stats_of(s).processes, 1);

	feed_fork(s, FAKE_CHILD, FAKE_PID);
	ck_assert_uint_eq(stats_of(s).processes, 2);
	sym = resolve(s, FAKE_CHILD, fn, false, false);
	assert_fn(&sym, "target_fn");

	/* A copy, not a share: the child's exec leaves the parent alone. */
	rec.comm.pid = rec.comm.tid = FAKE_CHILD;
	rec.comm.exec = true;
	rec.comm.comm = "child";
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	sym = resolve(s, FAKE_CHILD, fn, false, false);
	ck_assert_ptr_null(sym.module);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	stoke_symbolizer_free(s);
}
END_TEST

START_TEST(test_return_address_rule)
{
#ifdef HAVE_ASM_PAIR
	struct stoke_symbolizer *s = sym_new(NULL, false);
	uint64_t a = (uintptr_t)&stoke_test_asm_a, b = (uintptr_t)&stoke_test_asm_b;
	uint64_t chain[] = { b, b };
	struct stoke_sample sample = { .pid = FAKE_PID, .tid = FAKE_PID, .ip = b,
				       .has_stack = true, .nr_user_ips = 2, .user_ips = chain };
	struct stoke_symbol sym, frames[4];

	ck_assert_uint_gt(b, a);
	feed_self_maps(s, FAKE_PID);
	sym = resolve(s, FAKE_PID, b, false, false);
	assert_fn(&sym, "stoke_test_asm_b");
	sym = resolve(s, FAKE_PID, b, false, true);
	assert_fn(&sym, "stoke_test_asm_a");
	ck_assert_uint_eq(sym.addr, b);

	/* In a callchain: the exact IP first, then a return address. */
	ck_assert_int_eq(stoke_symbolizer_sample(s, &sample, frames, 4), 2);
	assert_fn(&frames[0], "stoke_test_asm_b");
	assert_fn(&frames[1], "stoke_test_asm_a");
	ck_assert_uint_eq(frames[1].addr, b);
	stoke_symbolizer_free(s);
#endif
}
END_TEST

START_TEST(test_malformed_elf)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	unsigned char garbage[8192];
	Elf64_Ehdr *eh = (Elf64_Ehdr *)garbage;
	uint32_t x = 12345;
	char *bad, *text;
	struct stoke_symbol sym;

	for (size_t i = 0; i < sizeof(garbage); i++) {
		x = x * 1103515245u + 12345u;
		garbage[i] = (unsigned char)(x >> 16);
	}
	memcpy(garbage, ELFMAG, SELFMAG);
	garbage[EI_CLASS] = ELFCLASS64;
	garbage[EI_DATA] = ELFDATA2LSB;
	garbage[EI_VERSION] = EV_CURRENT;
	eh->e_phoff = 0xfffffffff000ULL; /* far past the end */
	eh->e_phnum = 0xfff0;
	bad = tmp_file(garbage, sizeof(garbage));
	text = tmp_text("this is not an ELF file\n");

	feed_mmap(s, FAKE_PID, 0x100000, 0x2000, 0, bad);
	feed_mmap(s, FAKE_PID, 0x200000, 0x1000, 0, text);
	feed_mmap(s, FAKE_PID, 0x300000, 0x1000, 0, "/nonexistent/libgone.so");
	ck_assert_uint_eq(stats_of(s).modules, 3);
	ck_assert_uint_eq(stats_of(s).modules_failed, 0); /* parsed lazily */

	for (int round = 0; round < 2; round++) {
		sym = resolve(s, FAKE_PID, 0x100010, false, false);
		ck_assert_ptr_null(sym.function);
		ck_assert_str_eq(sym.module, bad);
		ck_assert_uint_eq(sym.offset, 0x10); /* the file offset */
		sym = resolve(s, FAKE_PID, 0x200010, false, true);
		ck_assert_ptr_null(sym.function);
		ck_assert_str_eq(sym.module, text);
		sym = resolve(s, FAKE_PID, 0x300010, false, false);
		ck_assert_ptr_null(sym.function);
		ck_assert_str_eq(sym.module, "/nonexistent/libgone.so");
	}
	/* Each counted once. */
	ck_assert_uint_eq(stats_of(s).modules_failed, 3);
	ck_assert_uint_eq(stats_of(s).unknown, 6);
	unlink(bad);
	unlink(text);
	free(bad);
	free(text);
	stoke_symbolizer_free(s);
}
END_TEST

/* The executable file is kept open from its MMAP record on: deleting it
 * before the first lookup must not matter. */
START_TEST(test_file_kept_open)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char *exe = self_exe();
	char *copy;
	struct stoke_symbol sym;
	uint64_t fn = (uintptr_t)&target_fn;
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	int fed = 0;

	/* Copy the executable, map the copy where the real one is. */
	{
		char *data;
		size_t len;
		FILE *in = fopen(exe, "rb");

		ck_assert_ptr_nonnull(in);
		fseek(in, 0, SEEK_END);
		len = (size_t)ftell(in);
		rewind(in);
		data = malloc(len);
		ck_assert_uint_eq(fread(data, 1, len, in), len);
		fclose(in);
		copy = tmp_file(data, len);
		free(data);
	}
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		char perms[8];
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %*x:%*x %*u %n", &start, &end, perms, &off,
			   &pos) < 4 || !strchr(perms, 'x') || !pos)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line + pos, exe) != 0)
			continue;
		feed_mmap(s, FAKE_PID, start, end - start, off, copy);
		fed++;
	}
	fclose(f);
	ck_assert_int_gt(fed, 0);
	ck_assert_int_eq(unlink(copy), 0);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	ck_assert_str_eq(sym.module, copy);
	free(copy);
	free(exe);
	stoke_symbolizer_free(s);
}
END_TEST

/* ---- bounds on module loading (issue #12) ---- */

/* A copy of the test executable (a distinct file: its own module). */
static char *exe_copy(const char *exe)
{
	FILE *in = fopen(exe, "rb");
	char *data, *copy;
	size_t len;

	ck_assert_ptr_nonnull(in);
	fseek(in, 0, SEEK_END);
	len = (size_t)ftell(in);
	rewind(in);
	data = malloc(len);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(fread(data, 1, len, in), len);
	fclose(in);
	copy = tmp_file(data, len);
	free(data);
	return copy;
}

/* Map file (a copy of exe) into pid where exe's code is mapped in us. */
static void feed_as_exe(struct stoke_symbolizer *s, uint32_t pid, const char *exe,
			const char *file)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	int fed = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		char perms[8];
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %*x:%*x %*u %n", &start, &end, perms, &off,
			   &pos) < 4 || !strchr(perms, 'x') || !pos)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line + pos, exe) != 0)
			continue;
		feed_mmap(s, pid, start, end - start, off, file);
		fed++;
	}
	fclose(f);
	ck_assert_int_gt(fed, 0);
}

static struct stoke_symbolizer *sym_new_bounded(uint32_t max_modules, uint64_t max_bytes)
{
	struct stoke_symbolizer_opts opts = {
		.no_kernel = true,
		.kallsyms_path = "/nonexistent/kallsyms",
		.max_modules = max_modules,
		.max_module_bytes = max_bytes,
	};
	struct stoke_symbolizer *s = NULL;

	ck_assert_int_eq(stoke_symbolizer_new(&opts, &s), 0);
	return s;
}

/* Past max_modules, or past max_module_bytes of estimated memory, a module
 * is not loaded: its frames keep the module and offset, counted once. The
 * estimate grows with what is loaded, and the bound can be lowered while
 * the symbolizer is in use (stoked does). */
START_TEST(test_module_bounds)
{
	uint64_t fn = (uintptr_t)&target_fn;
	char *exe = self_exe();
	char *a = exe_copy(exe), *b = exe_copy(exe);
	struct stoke_symbolizer *s;
	struct stoke_symbol sym;
	uint64_t one;

	/* No bound: both named; the estimate counts each module. */
	s = sym_new_bounded(0, 0);
	feed_as_exe(s, FAKE_PID, exe, a);
	feed_as_exe(s, FAKE_PID + 1, exe, b);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	one = stats_of(s).module_bytes;
	ck_assert_uint_gt(one, 4096); /* a symbol table, at least */
	sym = resolve(s, FAKE_PID + 1, fn, false, false);
	assert_fn(&sym, "target_fn");
	ck_assert_uint_eq(stats_of(s).module_bytes, 2 * one);
	ck_assert_uint_eq(stats_of(s).modules_capped, 0);
	stoke_symbolizer_free(s);

	/* One module: the second is module+0xoff. */
	s = sym_new_bounded(1, 0);
	feed_as_exe(s, FAKE_PID, exe, a);
	feed_as_exe(s, FAKE_PID + 1, exe, b);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	for (int round = 0; round < 2; round++) {
		sym = resolve(s, FAKE_PID + 1, fn, false, false);
		ck_assert_ptr_null(sym.function);
		ck_assert_str_eq(sym.module, b);
		ck_assert_uint_gt(sym.offset, 0);
	}
	ck_assert_uint_eq(stats_of(s).modules_capped, 1);
	ck_assert_uint_eq(stats_of(s).modules_failed, 0);
	ck_assert_uint_eq(stats_of(s).module_bytes, one);
	stoke_symbolizer_free(s);

	/* Room for one module's estimate, not two. */
	s = sym_new_bounded(0, one + one / 2);
	feed_as_exe(s, FAKE_PID, exe, a);
	feed_as_exe(s, FAKE_PID + 1, exe, b);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	sym = resolve(s, FAKE_PID + 1, fn, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_str_eq(sym.module, b);
	ck_assert_uint_eq(stats_of(s).modules_capped, 1);
	ck_assert_uint_le(stats_of(s).module_bytes, one + one / 2);
	stoke_symbolizer_free(s);

	/* Lowered while in use: nothing more loads. */
	s = sym_new_bounded(0, 0);
	feed_as_exe(s, FAKE_PID, exe, a);
	feed_as_exe(s, FAKE_PID + 1, exe, b);
	sym = resolve(s, FAKE_PID, fn, false, false);
	assert_fn(&sym, "target_fn");
	stoke_symbolizer_set_max_module_bytes(s, 1);
	sym = resolve(s, FAKE_PID + 1, fn, false, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_uint_eq(stats_of(s).modules_capped, 1);
	ck_assert_uint_eq(stats_of(s).module_bytes, one);
	stoke_symbolizer_free(s);

	unlink(a);
	unlink(b);
	free(a);
	free(b);
	free(exe);
}
END_TEST

/* ---- inlined frames, demangling, JIT maps ---- */

#ifdef HAVE_INL_MARK
START_TEST(test_inlined_frames)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_symbol fr[8];
	uint64_t chain[1] = { 0 };
	struct stoke_sample sample = { 0 };
	int n;

	ck_assert_int_eq(inl_caller(3), 22 + (int)(inl_addr & 1));
	feed_self_maps(s, self_pid());
	n = stoke_symbolizer_addr_frames(s, (pid_t)self_pid(), inl_addr, false, false, fr, 8);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(fr[0].function, "inl_helper");
	ck_assert(fr[0].inlined);
	ck_assert_uint_eq(fr[0].line, (unsigned)inl_helper_line);
	ck_assert_ptr_nonnull(strstr(fr[0].file, "test-symbolizer.c"));
	ck_assert_str_eq(fr[1].function, "inl_caller");
	ck_assert(!fr[1].inlined);
	ck_assert_uint_eq(fr[1].line, (unsigned)inl_call_line);
	/* Both frames are the same address in the same module. */
	ck_assert_uint_eq(fr[0].addr, fr[1].addr);
	ck_assert_ptr_eq(fr[0].module, fr[1].module);

	/* The single-frame API gives the physical function. */
	fr[0] = resolve(s, self_pid(), inl_addr, false, false);
	ck_assert_str_eq(fr[0].function, "inl_caller");
	ck_assert(!fr[0].inlined);

	/* Too little room: the inner frame goes, the physical one stays. */
	ck_assert_int_eq(stoke_symbolizer_addr_frames(s, (pid_t)self_pid(), inl_addr, false,
						      false, fr, 1),
			 1);
	ck_assert_str_eq(fr[0].function, "inl_caller");

	/* A sample expands in place, leaf first; cached the second time. */
	chain[0] = inl_addr;
	sample.pid = sample.tid = self_pid();
	sample.has_stack = true;
	sample.nr_user_ips = 1;
	sample.user_ips = chain;
	for (int round = 0; round < 2; round++) {
		n = stoke_symbolizer_sample(s, &sample, fr, 8);
		ck_assert_int_eq(n, 2);
		ck_assert_str_eq(fr[0].function, "inl_helper");
		ck_assert_str_eq(fr[1].function, "inl_caller");
	}
	ck_assert_uint_ge(stats_of(s).cache_hits, 1);
	stoke_symbolizer_free(s);
}
END_TEST
#endif

START_TEST(test_demangle)
{
	static const struct {
		const char *in, *sht, *full;
	} cases[] = {
		{ "_ZN3geo5AccumIdE3addEd", "geo::Accum<double>::add",
		  "geo::Accum<double>::add(double)" },
		{ "_ZN3geo9run_accumIdEET_d", "geo::run_accum<double>",
		  "double geo::run_accum<double>(double)" },
		{ "_ZNK3foo3Bar3getEv", "foo::Bar::get", "foo::Bar::get() const" },
		/* Rust legacy: the hash goes in both modes. */
		{ "_ZN4core3ptr13drop_in_place17h0123456789abcdefE", "core::ptr::drop_in_place",
		  "core::ptr::drop_in_place" },
		/* Rust v0 */
		{ "_RNvCs15kBYyAo9fc_7mycrate7example", "mycrate::example", "mycrate::example" },
	};
	char *d;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		d = stoke_demangle(cases[i].in, STOKE_DEMANGLE_SHORT);
		ck_assert_msg(d && !strcmp(d, cases[i].sht), "%s: short %s", cases[i].in, d);
		free(d);
		d = stoke_demangle(cases[i].in, STOKE_DEMANGLE_FULL);
		ck_assert_msg(d && !strcmp(d, cases[i].full), "%s: full %s", cases[i].in, d);
		free(d);
		ck_assert_ptr_null(stoke_demangle(cases[i].in, STOKE_DEMANGLE_NONE));
	}
	/* Not mangled: NULL, the caller keeps the name. */
	ck_assert_ptr_null(stoke_demangle("main", STOKE_DEMANGLE_SHORT));
	ck_assert_ptr_null(stoke_demangle("_start", STOKE_DEMANGLE_FULL));
	ck_assert_ptr_null(stoke_demangle("_Z", STOKE_DEMANGLE_FULL));
	ck_assert_ptr_null(stoke_demangle("", STOKE_DEMANGLE_FULL));
	{
		enum stoke_demangle_mode m;

		ck_assert_int_eq(stoke_demangle_mode_parse("full", &m), 0);
		ck_assert_int_eq(m, STOKE_DEMANGLE_FULL);
		ck_assert_int_eq(stoke_demangle_mode_parse("none", &m), 0);
		ck_assert_int_eq(m, STOKE_DEMANGLE_NONE);
		ck_assert_int_eq(stoke_demangle_mode_parse("Full", &m), -EINVAL);
	}
}
END_TEST

static struct stoke_perfmap *perfmap_of(const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	struct stoke_perfmap *m = NULL;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(stoke_perfmap_parse(f, &m), 0);
	fclose(f);
	return m;
}

START_TEST(test_perfmap_parse)
{
	static const char text[] =
		"7f0000001000 100 LazyCompile:*hot /app/x.js:1\n"
		"0x7f0000002000 0x20 JS:~cold\r\n"
		"7f0000001080 10 replaced_inside\n" /* later: wins where it overlaps */
		"garbage\n"
		"7f0000003000 0 zero_size\n"
		"7f0000004000 10\n"                 /* no name */
		"7f0000005000 zz bad_size\n"
		"ffffffffffffffff 10 wraps\n"
		"7f0000006000 8 last_no_newline";
	struct stoke_perfmap *m = perfmap_of(text);
	uint64_t start = 0;

	ck_assert_uint_eq(stoke_perfmap_count(m), 4);
	ck_assert_uint_eq(stoke_perfmap_malformed(m), 5);
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x7f0000001000, &start),
			 "LazyCompile:*hot /app/x.js:1");
	ck_assert_uint_eq(start, 0x7f0000001000);
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x7f0000001085, NULL), "replaced_inside");
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x7f00000010ff, NULL),
			 "LazyCompile:*hot /app/x.js:1");
	ck_assert_ptr_null(stoke_perfmap_lookup(m, 0x7f0000001100, NULL));
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x7f000000201f, NULL), "JS:~cold");
	ck_assert_ptr_null(stoke_perfmap_lookup(m, 0x7f0000002020, NULL));
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x7f0000006007, NULL), "last_no_newline");
	ck_assert_ptr_null(stoke_perfmap_lookup(m, 0x1000, NULL));
	stoke_perfmap_free(m);

	m = perfmap_of("");
	ck_assert_uint_eq(stoke_perfmap_count(m), 0);
	ck_assert_ptr_null(stoke_perfmap_lookup(m, 0, NULL));
	stoke_perfmap_free(m);

	/* A long name is cut at the limit, not refused. */
	{
		size_t len = STOKE_PERFMAP_MAX_NAME * 3;
		char *big = malloc(len + 32);

		ck_assert_ptr_nonnull(big);
		strcpy(big, "1000 10 ");
		memset(big + 8, 'n', len);
		big[8 + len] = '\0';
		m = perfmap_of(big);
		ck_assert_uint_eq(strlen(stoke_perfmap_lookup(m, 0x1000, NULL)),
				  STOKE_PERFMAP_MAX_NAME);
		stoke_perfmap_free(m);
		free(big);
	}
}
END_TEST

/* A growing map is fed as it grows: a line cut between two feeds waits for
 * its end, a line past STOKE_PERFMAP_MAX_LINE (a sparse file's zeros) is
 * skipped without being held, and a later line still wins an overlap after
 * the merge of a commit. */
START_TEST(test_perfmap_incremental)
{
	struct stoke_perfmap *m = NULL;
	size_t zeros = 3 * STOKE_PERFMAP_MAX_LINE;
	char *hole = calloc(1, zeros);

	ck_assert_ptr_nonnull(hole);
	ck_assert_int_eq(stoke_perfmap_new(&m), 0);
	ck_assert_int_eq(stoke_perfmap_feed(m, "1000 100 first\n2000 10 cu", 25), 0);
	ck_assert_int_eq(stoke_perfmap_commit(m), 0);
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x1010, NULL), "first");
	ck_assert_ptr_null(stoke_perfmap_lookup(m, 0x2000, NULL));
	ck_assert_int_eq(stoke_perfmap_feed(m, "t\n", 2), 0);
	ck_assert_int_eq(stoke_perfmap_feed(m, hole, zeros), 0);
	ck_assert_int_eq(stoke_perfmap_feed(m, hole, zeros), 0);
	ck_assert_int_eq(stoke_perfmap_feed(m, "\n1010 8 newer\n", 15), 0);
	ck_assert_int_eq(stoke_perfmap_commit(m), 0);
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x2005, NULL), "cut");
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x1012, NULL), "newer");
	ck_assert_str_eq(stoke_perfmap_lookup(m, 0x1020, NULL), "first");
	ck_assert_uint_eq(stoke_perfmap_count(m), 3);
	ck_assert_uint_eq(stoke_perfmap_malformed(m), 1);
	ck_assert_uint_eq(stoke_perfmap_skipped_bytes(m), 2 * zeros);
	stoke_perfmap_free(m);
	free(hole);
}
END_TEST

/* Files a target names are opened with the requester's rights (as root:
 * the test needs to change its filesystem ids), and those of the thread come
 * back afterwards; a device is refused without being opened. */
START_TEST(test_open_as_requester)
{
	struct stoke_file_creds nobody = { true, 65534, 65534 };
	struct stoke_strpool *pool;
	struct stoke_elfcache *c;
	gid_t groups[64], after[64];
	char dir[] = "/tmp/stoke-creds-XXXXXX", path[64];
	int ngroups, fd;

	if (geteuid() != 0) {
		fprintf(stderr, "test_open_as_requester: not root, nothing to switch: skipped\n");
		return;
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ngroups = getgroups(64, groups);
	ck_assert_int_eq(stoke_strpool_new(&pool), 0);
	ck_assert_int_eq(stoke_elfcache_new(pool, &c), 0);

	/* As root (no requester): the root-only file opens. */
	fd = stoke_elfcache_open(c, path, O_NOFOLLOW, NULL);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* As nobody: refused, and the thread is root again afterwards. */
	stoke_elfcache_set_creds(c, &nobody);
	ck_assert_int_eq(stoke_elfcache_open(c, path, O_NOFOLLOW, NULL), -EACCES);
	ck_assert_int_eq(setfsuid((uid_t)-1), 0);
	ck_assert_int_eq(setfsgid((gid_t)-1), 0);
	ck_assert_int_eq(getgroups(64, after), ngroups);
	ck_assert_mem_eq(after, groups, (size_t)ngroups * sizeof(gid_t));
	/* A device is never opened, whoever asks. */
	ck_assert_int_eq(stoke_elfcache_open(c, "/dev/null", 0, NULL), -EINVAL);

	stoke_elfcache_free(c);
	stoke_strpool_free(pool);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* A FIFO (or a symlink) where the JIT map should be must neither block the
 * symbolizer (stoked's loop runs it) nor be read. */
START_TEST(test_jit_map_fifo)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char path[64], target[64];
	struct stoke_symbol sym;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/perf-%u.map", FAKE_PID);
	unlink(path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	alarm(20); /* a regression hangs here: fail instead of blocking the suite */
	sym = resolve(s, FAKE_PID, 0x40001010, false, false);
	ck_assert_ptr_null(sym.function);
	unlink(path);
	/* A symlink to a map-shaped file is not followed either. */
	snprintf(target, sizeof(target), "/tmp/perf-%u.target", FAKE_PID);
	f = fopen(target, "w");
	ck_assert_ptr_nonnull(f);
	fputs("40001000 100 JS:*viaLink\n", f);
	fclose(f);
	ck_assert_int_eq(symlink(target, path), 0);
	sym = resolve(s, FAKE_PID, 0x40001010, false, false);
	ck_assert_ptr_null(sym.function);
	alarm(0);
	unlink(path);
	unlink(target);
	stoke_symbolizer_free(s);
}
END_TEST

/* A target can rename its mapped file and put a FIFO at the path its MMAP
 * record names: the module must fail (unknown frames), not block. */
START_TEST(test_module_fifo)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char path[] = "/tmp/stoke-test-fifo-XXXXXX";
	struct stoke_symbol sym;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	unlink(path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	alarm(20);
	feed_mmap(s, FAKE_PID, 0x500000, 0x10000, 0, path);
	sym = resolve(s, FAKE_PID, 0x500100, false, false);
	alarm(0);
	ck_assert_ptr_null(sym.function);
	ck_assert_ptr_nonnull(sym.module);
	unlink(path);
	stoke_symbolizer_free(s);
}
END_TEST

/* A process without a mapping at the address: the JIT map names it, and a
 * map that grows is read again. */
START_TEST(test_jit_frames)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	char path[64];
	struct stoke_symbol sym;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/perf-%u.map", FAKE_PID);
	unlink(path); /* whatever an interrupted run left there (a FIFO) */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("40001000 100 JS:*stokeHot\n", f);
	fclose(f);
	sym = resolve(s, FAKE_PID, 0x40001010, false, false);
	ck_assert_str_eq(sym.function, "JS:*stokeHot");
	ck_assert_int_eq(sym.kind, STOKE_FRAME_JIT);
	ck_assert_ptr_nonnull(strstr(sym.module, "perf-"));
	/* Code compiled later: found once the map is re-read (rate limited). */
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fputs("40002000 100 JS:*later\n", f);
	fclose(f);
	for (int i = 0; i < 100; i++) {
		sym = resolve(s, FAKE_PID, 0x40002000, false, false);
		if (sym.function)
			break;
		usleep(20000);
	}
	ck_assert_msg(sym.function && !strcmp(sym.function, "JS:*later"), "got %s",
		      sym.function ? sym.function : "(null)");
	ck_assert_uint_ge(stats_of(s).jit_maps_read, 2);
	/* Outside every entry: unknown, no module. */
	sym = resolve(s, FAKE_PID, 0x50000000, false, false);
	ck_assert_ptr_null(sym.function);
	unlink(path);
	stoke_symbolizer_free(s);
}
END_TEST

/* ---- kernel symbols ---- */

static const char kallsyms_text[] =
	"0000000000000000 A fixed_percpu_data\n"
	"ffffffff81000000 T _stext\n"
	"ffffffff81000100 t secondary_fn\n"
	"ffffffff81000180 D some_data\n"
	"ffffffff81000200 W weak_fn\n"
	"0000000000001000 T low_fn\n" /* out of order: the sort must fix it */
	"ffffffffc0001000 t mod_fn\t[mymod]\n"
	"ffffffffc0001100 T mod_fn2\t[mymod]\n"
	"ffffffffc0002000 t other_fn\t[othermod]\n"
	"garbage line\n"
	"ffffffffc0003000 r mod_rodata\t[othermod]\n";

START_TEST(test_ksyms_parse)
{
	char *path = tmp_text(kallsyms_text);
	struct stoke_ksyms *k = NULL;
	const char *mod = NULL;
	uint64_t start = 0;

	ck_assert_int_eq(stoke_ksyms_load(path, &k), 0);
	ck_assert_uint_eq(stoke_ksyms_count(k), 7);

	ck_assert_str_eq(stoke_ksyms_lookup(k, KBASE + 0x50, &start, &mod), "_stext");
	ck_assert_uint_eq(start, KBASE);
	ck_assert_str_eq(mod, "");
	ck_assert_str_eq(stoke_ksyms_lookup(k, KBASE, NULL, NULL), "_stext");
	ck_assert_str_eq(stoke_ksyms_lookup(k, KBASE + 0x100, &start, NULL), "secondary_fn");
	ck_assert_uint_eq(start, KBASE + 0x100);
	/* Data symbols are not kept. */
	ck_assert_str_eq(stoke_ksyms_lookup(k, KBASE + 0x1f0, NULL, NULL), "secondary_fn");
	ck_assert_str_eq(stoke_ksyms_lookup(k, KBASE + 0x200, NULL, NULL), "weak_fn");
	/* Before the first, and between two far apart (64-bit ordering). */
	ck_assert_ptr_null(stoke_ksyms_lookup(k, 0xfff, NULL, NULL));
	ck_assert_ptr_null(stoke_ksyms_lookup(k, 0, NULL, NULL));
	ck_assert_str_eq(stoke_ksyms_lookup(k, 0x1000, NULL, NULL), "low_fn");
	ck_assert_str_eq(stoke_ksyms_lookup(k, 0xffffffff80000000ULL, NULL, NULL), "low_fn");
	ck_assert_str_eq(stoke_ksyms_lookup(k, KBASE - 1, NULL, NULL), "low_fn");
	/* Module column. */
	ck_assert_str_eq(stoke_ksyms_lookup(k, 0xffffffffc0001050ULL, NULL, &mod), "mod_fn");
	ck_assert_str_eq(mod, "mymod");
	ck_assert_str_eq(stoke_ksyms_lookup(k, 0xffffffffc0001100ULL, NULL, &mod), "mod_fn2");
	ck_assert_str_eq(mod, "mymod");
	ck_assert_str_eq(stoke_ksyms_lookup(k, 0xffffffffc0003010ULL, NULL, &mod), "other_fn");
	ck_assert_str_eq(mod, "othermod");
	stoke_ksyms_free(k);
	stoke_ksyms_free(NULL);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_ksyms_all_zero)
{
	char *path = tmp_text("0000000000000000 T _stext\n"
			      "0000000000000000 t secondary_fn\n"
			      "0000000000000000 t mod_fn\t[mymod]\n");
	struct stoke_ksyms *k = NULL;
	struct stoke_symbolizer *s;
	struct stoke_symbol sym;

	ck_assert_int_eq(stoke_ksyms_load(path, &k), 0);
	ck_assert_uint_eq(stoke_ksyms_count(k), 0);
	ck_assert_ptr_null(stoke_ksyms_lookup(k, KBASE, NULL, NULL));
	stoke_ksyms_free(k);

	s = sym_new(path, false);
	sym = resolve(s, 0, KBASE + 0x10, true, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_str_eq(sym.module, "[kernel.kallsyms]");
	ck_assert_int_eq(sym.kind, STOKE_FRAME_KERNEL);
	ck_assert_uint_eq(sym.offset, KBASE + 0x10);
	stoke_symbolizer_free(s);
	unlink(path);
	free(path);

	ck_assert_int_eq(stoke_ksyms_load("/nonexistent/kallsyms", &k), -ENOENT);
}
END_TEST

START_TEST(test_kernel_frames)
{
	char *path = tmp_text(kallsyms_text);
	struct stoke_symbolizer *s = sym_new(path, false);
	struct stoke_symbol sym;

	sym = resolve(s, 0, KBASE + 0x150, true, false);
	assert_fn(&sym, "secondary_fn");
	ck_assert_str_eq(sym.module, "[kernel.kallsyms]");
	ck_assert_int_eq(sym.kind, STOKE_FRAME_KERNEL);
	ck_assert_uint_eq(sym.offset, KBASE + 0x150);
	/* The start of the next function as a return address. */
	sym = resolve(s, 0, KBASE + 0x100, true, true);
	assert_fn(&sym, "_stext");
	ck_assert_uint_eq(sym.addr, KBASE + 0x100);
	sym = resolve(s, 0, 0xffffffffc0001010ULL, true, false);
	assert_fn(&sym, "mod_fn");
	ck_assert_str_eq(sym.module, "[mymod]");
	ck_assert_uint_eq(stats_of(s).unknown, 0);
	stoke_symbolizer_free(s);

	/* no_kernel: never read, frames stay unknown. */
	s = sym_new(path, true);
	sym = resolve(s, 0, KBASE + 0x150, true, false);
	ck_assert_ptr_null(sym.function);
	ck_assert_str_eq(sym.module, "[kernel.kallsyms]");
	ck_assert_int_eq(sym.kind, STOKE_FRAME_KERNEL);
	stoke_symbolizer_free(s);
	unlink(path);
	free(path);
}
END_TEST

/* ---- whole samples ---- */

START_TEST(test_sample_callchain)
{
	char *path = tmp_text(kallsyms_text);
	struct stoke_symbolizer *s = sym_new(path, false);
	uint64_t fn = (uintptr_t)&target_fn;
	uint64_t kchain[] = { KBASE + 0x150, KBASE + 0x100 };
	uint64_t chain[] = { fn + 10, fn, recorded_return };
	struct stoke_sample sample = {
		.pid = FAKE_PID, .tid = FAKE_PID, .ip = KBASE + 0x150, .has_stack = true,
		.nr_kernel_ips = 2, .kernel_ips = kchain, .nr_user_ips = 3, .user_ips = chain,
	};
	struct stoke_symbol frames[8];
	int n;

	target_fn(2);
	chain[2] = recorded_return;
	feed_self_maps(s, FAKE_PID);
	n = stoke_symbolizer_sample(s, &sample, frames, 8);
	ck_assert_int_eq(n, 5);
	assert_fn(&frames[0], "secondary_fn");
	ck_assert_int_eq(frames[0].kind, STOKE_FRAME_KERNEL);
	assert_fn(&frames[1], "_stext"); /* return address: KBASE+0x100 - 1 */
	ck_assert_uint_eq(frames[1].addr, KBASE + 0x100);
	ck_assert_int_eq(frames[1].kind, STOKE_FRAME_KERNEL);
	assert_fn(&frames[2], "target_fn"); /* the user side's leaf is exact again */
	ck_assert_int_eq(frames[2].kind, STOKE_FRAME_USER);
	ck_assert_uint_eq(frames[2].addr, fn + 10);
	/* fn as a return address is fn - 1: not target_fn. */
	ck_assert(!frames[3].function || strcmp(frames[3].function, "target_fn") != 0);
	ck_assert_uint_eq(frames[3].addr, fn);
	assert_fn(&frames[4], "target_fn");

	/* The side, not the address value, decides the context: a low
	 * address among the kernel IPs is still a kernel address. */
	{
		uint64_t k2[] = { 0x1010 }, u2[] = { fn + 10 };
		struct stoke_sample s2 = sample;

		s2.kernel_ips = k2;
		s2.nr_kernel_ips = 1;
		s2.user_ips = u2;
		s2.nr_user_ips = 1;
		ck_assert_int_eq(stoke_symbolizer_sample(s, &s2, frames, 8), 2);
		assert_fn(&frames[0], "low_fn");
		ck_assert_int_eq(frames[0].kind, STOKE_FRAME_KERNEL);
		assert_fn(&frames[1], "target_fn");
		ck_assert_int_eq(frames[1].kind, STOKE_FRAME_USER);
	}

	/* max truncates. */
	ck_assert_int_eq(stoke_symbolizer_sample(s, &sample, frames, 2), 2);
	ck_assert_int_eq(stoke_symbolizer_sample(s, &sample, frames, 0), 0);

	/* No stack walked: the IP alone, kind from the address. */
	sample.has_stack = false;
	sample.nr_kernel_ips = sample.nr_user_ips = 0;
	sample.kernel_ips = sample.user_ips = NULL;
	ck_assert_int_eq(stoke_symbolizer_sample(s, &sample, frames, 8), 1);
	assert_fn(&frames[0], "secondary_fn");
	ck_assert_int_eq(frames[0].kind, STOKE_FRAME_KERNEL);
	sample.ip = fn + 10;
	ck_assert_int_eq(stoke_symbolizer_sample(s, &sample, frames, 8), 1);
	assert_fn(&frames[0], "target_fn");
	ck_assert_int_eq(frames[0].kind, STOKE_FRAME_USER);
	stoke_symbolizer_free(s);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_ignored_records)
{
	struct stoke_symbolizer *s = sym_new(NULL, false);
	struct stoke_record rec = { .type = STOKE_REC_EXIT };
	struct stoke_symbol sym;

	feed_self_maps(s, FAKE_PID);
	rec.task.pid = rec.task.tid = FAKE_PID;
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	rec.type = STOKE_REC_LOST;
	ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	/* Samples of an exited process still symbolize. */
	sym = resolve(s, FAKE_PID, (uintptr_t)&target_fn, false, false);
	assert_fn(&sym, "target_fn");
	stoke_symbolizer_free(s);
	stoke_symbolizer_free(NULL);
}
END_TEST

static Suite *symbolizer_suite(void)
{
	Suite *su = suite_create("symbolizer");
	TCase *tc = tcase_create("user");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_own_function);
	tcase_add_test(tc, test_libc_function);
	tcase_add_test(tc, test_unknown_address);
	tcase_add_test(tc, test_no_symbol_and_vaddr);
	tcase_add_test(tc, test_mmap_overlap_split);
	tcase_add_test(tc, test_pseudo_mappings);
	tcase_add_test(tc, test_cache_hits);
	tcase_add_test(tc, test_no_result_cache);
	tcase_add_test(tc, test_module_identity);
	tcase_add_test(tc, test_preload_mapping);
	tcase_add_test(tc, test_exec_clears);
	tcase_add_test(tc, test_locate_then_name);
	tcase_add_test(tc, test_fork_copies);
	tcase_add_test(tc, test_return_address_rule);
	tcase_add_test(tc, test_malformed_elf);
	tcase_add_test(tc, test_file_kept_open);
	tcase_add_test(tc, test_ignored_records);
	tcase_add_test(tc, test_module_bounds);
	suite_add_tcase(su, tc);

	tc = tcase_create("lines");
	tcase_set_timeout(tc, 30);
#ifdef HAVE_INL_MARK
	tcase_add_test(tc, test_inlined_frames);
#endif
	tcase_add_test(tc, test_demangle);
	tcase_add_test(tc, test_perfmap_parse);
	tcase_add_test(tc, test_perfmap_incremental);
	tcase_add_test(tc, test_open_as_requester);
	tcase_add_test(tc, test_jit_frames);
	tcase_add_test(tc, test_jit_map_fifo);
	tcase_add_test(tc, test_module_fifo);
	suite_add_tcase(su, tc);

	tc = tcase_create("kernel");
	tcase_add_test(tc, test_ksyms_parse);
	tcase_add_test(tc, test_ksyms_all_zero);
	tcase_add_test(tc, test_kernel_frames);
	tcase_add_test(tc, test_sample_callchain);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(symbolizer_suite());
	int failed;

	/* Hermetic: no debuginfod downloads from the test. */
	unsetenv("DEBUGINFOD_URLS");
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
