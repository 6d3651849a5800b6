/*
 * Unit tests for the symbol index (symbolizer/symtab.c, through the module
 * cache of elfcache.c): names as perf prints them on real binaries.
 *
 *  - libc's malloc reads "malloc", not a local alias such as
 *    "__GI___libc_malloc" (which its DWARF names it when libc6-dbg is
 *    installed), and the whole alias rule on a library of our own;
 *  - PLT stubs read "target@plt" in every layout GNU ld emits (the classic
 *    lazy .plt, IBT's .plt + .plt.sec, -z now; .plt.got in all), checked
 *    against objdump's names for the same stubs, and a static binary's
 *    IFUNC stubs by the function's name;
 *  - lookups are an index, not a scan: many distinct addresses of libc
 *    resolve in a bounded time.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "symbolizer/elfcache.h"

#define LIBC "/usr/lib/x86_64-linux-gnu/libc.so.6"

struct cache {
	struct stoke_strpool *pool;
	struct stoke_elfcache *c;
};

static void cache_open(struct cache *k)
{
	ck_assert_int_eq(stoke_strpool_new(&k->pool), 0);
	ck_assert_int_eq(stoke_elfcache_new(k->pool, &k->c), 0);
}

static void cache_close(struct cache *k)
{
	stoke_elfcache_free(k->c);
	stoke_strpool_free(k->pool);
}

static struct stoke_module *module(struct cache *k, const char *path)
{
	struct stoke_mmap m = { .pid = (uint32_t)-1, .filename = path };
	struct stoke_module *mod;

	ck_assert_int_eq(stoke_elfcache_get(k->c, &m, &mod), 0);
	ck_assert_int_eq(stoke_module_parse(k->c, mod), 0);
	return mod;
}

static const char *symbol_at(struct cache *k, struct stoke_module *mod, uint64_t vaddr)
{
	const char *name = NULL;

	ck_assert_int_eq(stoke_module_symbol(k->c, mod, vaddr, &name), 0);
	return name;
}

/* The physical (outermost) function stoke_module_frames gives. */
static const char *function_at(struct cache *k, struct stoke_module *mod, uint64_t vaddr)
{
	struct stoke_module_frame f[STOKE_MODULE_MAX_FRAMES];
	int n = stoke_module_frames(k->c, mod, vaddr, f, STOKE_MODULE_MAX_FRAMES);

	ck_assert_int_gt(n, 0);
	return f[n - 1].function;
}

/* st_value of the dynamic symbol name in path (0 when absent). */
static uint64_t dynsym_value(const char *path, const char *name)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf *elf;
	Elf_Scn *scn = NULL;
	uint64_t value = 0;

	ck_assert_int_ge(fd, 0);
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	ck_assert_ptr_nonnull(elf);
	while (!value && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *n;

			if (gelf_getsym(d, (int)i, &s) && s.st_shndx != SHN_UNDEF &&
			    (n = elf_strptr(elf, sh.sh_link, s.st_name)) && !strcmp(n, name)) {
				value = s.st_value;
				break;
			}
		}
	}
	elf_end(elf);
	close(fd);
	return value;
}

static void assert_name(const char *got, const char *want, uint64_t vaddr)
{
	ck_assert_msg(got && !strcmp(got, want), "at %#lx: expected %s, got %s",
		      (unsigned long)vaddr, want, got ? got : "(null)");
}

/* ---- aliases ---- */

START_TEST(test_libc_malloc_public_name)
{
	struct cache k;
	struct stoke_module *mod;
	uint64_t malloc_at = dynsym_value(LIBC, "malloc");

	if (access(LIBC, R_OK) != 0 || !malloc_at) {
		/* Not Debian's x86-64 layout: nothing to check here. */
		fprintf(stderr, "test-symtab: no %s with malloc; alias test not run\n", LIBC);
		return;
	}
	cache_open(&k);
	mod = module(&k, LIBC);
	/* The symbol table alone, and the frame DWARF names (libc6-dbg
	 * names it "__GI___libc_malloc" there), at the entry and inside. */
	assert_name(symbol_at(&k, mod, malloc_at), "malloc", malloc_at);
	assert_name(symbol_at(&k, mod, malloc_at + 8), "malloc", malloc_at + 8);
	assert_name(function_at(&k, mod, malloc_at), "malloc", malloc_at);
	/* perf's order beyond that: a weak name ("puts") loses to a global
	 * one ("_IO_puts"); both are public. */
	if (dynsym_value(LIBC, "_IO_puts") == dynsym_value(LIBC, "puts"))
		assert_name(symbol_at(&k, mod, dynsym_value(LIBC, "puts")), "_IO_puts",
			    dynsym_value(LIBC, "puts"));
	cache_close(&k);
}
END_TEST

/* ---- PLT stubs ---- */

struct stub {
	uint64_t addr;
	char name[256];
};

static void section_range(const char *path, const char *name, uint64_t *addr, uint64_t *size);

/* The stubs objdump names "<x@plt>" in path's PLT sections. */
static size_t objdump_stubs(const char *path, struct stub *stubs, size_t max)
{
	static const char *const sections[] = { ".plt", ".plt.sec", ".plt.got" };
	char cmd[4096], line[512];
	size_t n = 0, len;
	FILE *f;

	len = (size_t)snprintf(cmd, sizeof(cmd), "objdump -d");
	/* objdump fails on a -j for a section the file lacks. */
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		uint64_t addr, size;

		section_range(path, sections[i], &addr, &size);
		if (size)
			len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, " -j %s",
						sections[i]);
	}
	snprintf(cmd + len, sizeof(cmd) - len, " '%s'", path);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long long addr;
		char name[256];

		/* "0000000000001030 <free@plt>:" */
		if (sscanf(line, "%llx <%255[^>]>:", &addr, name) == 2 && strstr(name, "@plt") &&
		    !strchr(name, '+') && !strchr(name, '-')) {
			stubs[n].addr = addr;
			snprintf(stubs[n].name, sizeof(stubs[n].name), "%s", name);
			n++;
		}
	}
	ck_assert_int_eq(pclose(f), 0);
	return n;
}

static bool has_stub(const struct stub *stubs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(stubs[i].name, name))
			return true;
	return false;
}

/* [addr, addr + size) of section name in path, or size 0. */
static void section_range(const char *path, const char *name, uint64_t *addr, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf *elf;
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	*addr = *size = 0;
	ck_assert_int_ge(fd, 0);
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	ck_assert_ptr_nonnull(elf);
	ck_assert_int_eq(elf_getshdrstrndx(elf, &shstrndx), 0);
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *n;

		if (gelf_getshdr(scn, &sh) && (n = elf_strptr(elf, shstrndx, sh.sh_name)) &&
		    !strcmp(n, name)) {
			*addr = sh.sh_addr;
			*size = sh.sh_size;
		}
	}
	elf_end(elf);
	close(fd);
}

static void check_plt_fixture(const char *exe, bool ibt)
{
	struct stub stubs[64];
	struct cache k;
	struct stoke_module *mod;
	size_t n = objdump_stubs(exe, stubs, 64);

	/* Our library, libc, and .plt.got's weak __cxa_finalize. */
	ck_assert_msg(has_stub(stubs, n, "pltnames_tiny@plt") && has_stub(stubs, n, "malloc@plt") &&
			      has_stub(stubs, n, "__cxa_finalize@plt"),
		      "objdump does not show the expected stubs in %s (%zu found)", exe, n);
	cache_open(&k);
	mod = module(&k, exe);
	for (size_t i = 0; i < n; i++) {
		/* The entry and an address inside it (the jmp's last byte). */
		assert_name(symbol_at(&k, mod, stubs[i].addr), stubs[i].name, stubs[i].addr);
		assert_name(symbol_at(&k, mod, stubs[i].addr + 5), stubs[i].name,
			    stubs[i].addr + 5);
		/* No DWARF covers a stub: the frame is named the same way. */
		assert_name(function_at(&k, mod, stubs[i].addr), stubs[i].name, stubs[i].addr);
	}
	if (ibt) {
		/* IBT's .plt keeps the lazy-binding halves (endbr64; push
		 * index; jmp PLT0) that objdump leaves unnamed: entry i + 1
		 * of .plt belongs to entry i of .plt.sec. */
		uint64_t plt, plt_size, sec, sec_size;

		section_range(exe, ".plt", &plt, &plt_size);
		section_range(exe, ".plt.sec", &sec, &sec_size);
		ck_assert_uint_gt(sec_size, 0);
		for (uint64_t off = 0; off < sec_size && off + 16 < plt_size; off += 16) {
			const char *want = symbol_at(&k, mod, sec + off);

			ck_assert_ptr_nonnull(want);
			assert_name(symbol_at(&k, mod, plt + 16 + off), want, plt + 16 + off);
		}
	}
	/* PLT0 (the resolver's trampoline) is nobody's stub. */
	{
		uint64_t plt, plt_size;

		section_range(exe, ".plt", &plt, &plt_size);
		ck_assert_ptr_null(symbol_at(&k, mod, plt));
	}
	cache_close(&k);
}

START_TEST(test_plt_classic)
{
	check_plt_fixture(FIXTURE_DIR "/plt-names", false);
}
END_TEST

START_TEST(test_plt_ibt)
{
	check_plt_fixture(FIXTURE_DIR "/plt-names-ibt", true);
}
END_TEST

START_TEST(test_plt_now)
{
	check_plt_fixture(FIXTURE_DIR "/plt-names-now", false);
}
END_TEST

/* A static binary's .plt: 8-byte IFUNC stubs, named after the function
 * each resolves (objdump has no name for them). */
START_TEST(test_plt_static)
{
	const char *exe = FIXTURE_DIR "/plt-static";
	uint64_t plt, size;
	struct cache k;
	struct stoke_module *mod;
	bool strlen_seen = false;

	section_range(exe, ".plt", &plt, &size);
	ck_assert_uint_ge(size, 8);
	cache_open(&k);
	mod = module(&k, exe);
	for (uint64_t off = 0; off + 8 <= size; off += 8) {
		const char *name = symbol_at(&k, mod, plt + off);
		size_t len = name ? strlen(name) : 0;

		ck_assert_msg(len > 4 && !strcmp(name + len - 4, "@plt") && name[0] != '*',
			      "static .plt entry %#lx named %s", (unsigned long)(plt + off),
			      name ? name : "(null)");
		strlen_seen |= !strcmp(name, "strlen@plt");
	}
	ck_assert_msg(strlen_seen, "no strlen@plt in the static binary's .plt");
	cache_close(&k);
}
END_TEST

/* libc's own PLT calls to its IFUNCs (IRELATIVE slots) read by the
 * function's public name, and its ordinary slots by their target. */
START_TEST(test_plt_libc)
{
	struct stub stubs[128];
	struct cache k;
	struct stoke_module *mod;
	size_t n, named = 0;

	if (access(LIBC, R_OK) != 0) {
		fprintf(stderr, "test-symtab: no %s; libc PLT test not run\n", LIBC);
		return;
	}
	n = objdump_stubs(LIBC, stubs, 128);
	cache_open(&k);
	mod = module(&k, LIBC);
	for (size_t i = 0; i < n; i++) {
		if (stubs[i].name[0] == '*')
			continue; /* "*ABS*+0x9f550@plt": objdump has no name */
		assert_name(symbol_at(&k, mod, stubs[i].addr), stubs[i].name, stubs[i].addr);
		named++;
	}
	ck_assert_uint_gt(named, 5);
	cache_close(&k);
}
END_TEST

/* ---- index, not scan ---- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * 300k lookups (30k under valgrind) at distinct addresses of libc's
 * text. A scan of its ~10k symbols per lookup (dwfl_module_addrinfo)
 * takes minutes here; the index, a few tens of milliseconds. The bound
 * leaves a wide margin for a loaded machine.
 */
START_TEST(test_lookup_is_indexed)
{
	uint64_t text, size;
	struct cache k;
	struct stoke_module *mod;
	/* CK_FORK=no: the valgrind setup (tests/meson.build), 50x slower. */
	bool valgrind = getenv("CK_FORK") && !strcmp(getenv("CK_FORK"), "no");
	size_t named = 0, n = valgrind ? 30000 : 300000;
	double t0, dt;

	if (access(LIBC, R_OK) != 0) {
		fprintf(stderr, "test-symtab: no %s; index test not run\n", LIBC);
		return;
	}
	section_range(LIBC, ".text", &text, &size);
	ck_assert_uint_gt(size, n);
	cache_open(&k);
	mod = module(&k, LIBC);
	t0 = now();
	for (size_t i = 0; i < n; i++)
		named += symbol_at(&k, mod, text + i * (size / n)) != NULL;
	dt = now() - t0;
	ck_assert_msg(named > n * 9 / 10, "only %zu of %zu addresses named", named, n);
	ck_assert_msg(dt < (valgrind ? 30.0 : 4.0),
		      "%zu lookups took %.2f s: a scan per lookup?", n, dt);
	cache_close(&k);
}
END_TEST

static Suite *symtab_suite(void)
{
	Suite *su = suite_create("symtab");
	TCase *tc = tcase_create("names");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_libc_malloc_public_name);
	tcase_add_test(tc, test_plt_classic);
	tcase_add_test(tc, test_plt_ibt);
	tcase_add_test(tc, test_plt_now);
	tcase_add_test(tc, test_plt_static);
	tcase_add_test(tc, test_plt_libc);
	tcase_add_test(tc, test_lookup_is_indexed);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(symtab_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
