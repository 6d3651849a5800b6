/*
 * Unit tests for symbolizer/unwind.c: DWARF unwinding of a sampled user
 * stack, without perf_event.
 *
 * The test takes its own "sample": a helper captures the registers libunwind
 * needs at one instruction and copies the stack above the stack pointer,
 * exactly what PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER deliver. The
 * process's executable mappings are fed as MMAP records (as perf sends
 * them), and the sample goes through stoke_symbolizer_sample, so the names
 * expected are the ones the compiler gave the functions below. This binary
 * is built with -O2 and -fomit-frame-pointer: only CFI can walk it.
 */
#include <check.h>
#include <valgrind/memcheck.h>
#include <gelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "symbolizer/elfcache.h"
#include "symbolizer/symbolizer.h"
#include "stack/unwind.h"

#if defined(__clang__)
#define TEST_NOIPA __attribute__((noinline))
#else
#define TEST_NOIPA __attribute__((noipa))
#endif

#define NREGS 20          /* the snapshot: perf's register order, mask 0xff0fff */
#define MAX_COPY 65528    /* the kernel's limit for a stack copy */
#define MAX_FRAMES 256

/* Indexes in the sample's register array (perf order, mask 0xff0fff). */
enum { R_BX = 1, R_BP = 6, R_SP = 7, R_IP = 8, R_R12 = 16, R_R13, R_R14, R_R15 };

struct snap {
	uint64_t regs[NREGS];
	uint8_t *stack;
	uint64_t len;
};

static struct snap g_snap;

static uint64_t stack_top(uint64_t sp)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long long a, b;
	char line[4096];
	uint64_t top = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx-%llx", &a, &b) == 2 && sp >= a && sp < b)
			top = b;
	fclose(f);
	ck_assert_uint_ne(top, 0);
	return top;
}

/* Copy raw stack, redzones and all, as the kernel does: not instrumented
 * (and not memcpy, which ASan intercepts). */
__attribute__((no_sanitize("address"))) static void copy_raw(uint8_t *dst, const uint8_t *src,
							     uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		dst[i] = src[i];
}

/* Capture the registers CFI may refer to at one instruction of this
 * function, then copy the stack above SP: a PERF_SAMPLE_STACK_USER copy. */
static TEST_NOIPA void capture_sample(void)
{
	uint64_t *r = g_snap.regs;
	uint64_t top;

	memset(r, 0, sizeof(g_snap.regs));
	__asm__ volatile("movq %%rbx, 8(%0)\n\t"
			 "movq %%rbp, 48(%0)\n\t"
			 "movq %%rsp, 56(%0)\n\t"
			 "leaq 0(%%rip), %%rax\n\t"
			 "movq %%rax, 64(%0)\n\t"
			 "movq %%r12, 128(%0)\n\t"
			 "movq %%r13, 136(%0)\n\t"
			 "movq %%r14, 144(%0)\n\t"
			 "movq %%r15, 152(%0)\n\t"
			 :
			 : "r"(r)
			 : "rax", "memory");
	top = stack_top(r[R_SP]);
	g_snap.len = top - r[R_SP] < MAX_COPY ? top - r[R_SP] : MAX_COPY;
	g_snap.stack = malloc(g_snap.len);
	ck_assert_ptr_nonnull(g_snap.stack);
	copy_raw(g_snap.stack, (const uint8_t *)(uintptr_t)r[R_SP], g_snap.len);
	/* The kernel's copy of a stack is plain bytes, garbage included; ours
	 * holds the test's own uninitialised slots, which memcheck would follow
	 * into every frame-pointer guess the walk makes. */
	VALGRIND_MAKE_MEM_DEFINED(g_snap.stack, g_snap.len);
}

/* A chain with work after each call, so no call is a tail call and each
 * return address lies inside its caller. */
static volatile int g_sink;

static TEST_NOIPA void t_leaf(void)
{
	capture_sample();
	g_sink++;
}

static TEST_NOIPA void t_mid(void)
{
	t_leaf();
	g_sink++;
}

static TEST_NOIPA void t_outer(void)
{
	t_mid();
	g_sink++;
}

/* Signal path: the handler captures; the walk goes through the kernel's
 * signal frame (glibc's __restore_rt) back to the interrupted code. */
static TEST_NOIPA void on_signal(int sig)
{
	capture_sample();
	g_sink += sig;
}

static TEST_NOIPA void t_raiser(void)
{
	raise(SIGUSR1);
	g_sink++;
}

static TEST_NOIPA void t_sig_outer(void)
{
	t_raiser();
	g_sink++;
}

/* ---- harness ---- */

static struct stoke_symbolizer *sym_new(void)
{
	struct stoke_symbolizer_opts opts = { .no_kernel = true };
	struct stoke_symbolizer *s = NULL;

	ck_assert_int_eq(stoke_symbolizer_new(&opts, &s), 0);
	return s;
}

/* This process's executable mappings, as perf's MMAP2 records. */
static void feed_self_maps(struct stoke_symbolizer *s)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		struct stoke_record rec = { .type = STOKE_REC_MMAP };
		unsigned long long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
			   &min, &ino, &pos) < 7 ||
		    !strchr(perms, 'x'))
			continue;
		line[strcspn(line, "\n")] = '\0';
		rec.mmap.pid = rec.mmap.tid = (uint32_t)getpid();
		rec.mmap.addr = start;
		rec.mmap.len = end - start;
		rec.mmap.pgoff = off;
		rec.mmap.is_mmap2 = true;
		rec.mmap.maj = maj;
		rec.mmap.min = min;
		rec.mmap.ino = ino;
		rec.mmap.prot = PROT_READ | PROT_EXEC;
		rec.mmap.filename = line + pos;
		ck_assert_int_eq(stoke_symbolizer_record(s, &rec), 0);
	}
	fclose(f);
}

static struct stoke_sample snap_sample(uint64_t len)
{
	/* DWARF number → index in the snapshot. */
	static const uint8_t snap_of[STOKE_DWARF_NREGS] = {
		[STOKE_DWARF_RAX] = 0, [STOKE_DWARF_RDX] = 3,  [STOKE_DWARF_RCX] = 2,
		[STOKE_DWARF_RBX] = 1, [STOKE_DWARF_RSI] = 4,  [STOKE_DWARF_RDI] = 5,
		[STOKE_DWARF_RBP] = 6, [STOKE_DWARF_RSP] = 7,  [STOKE_DWARF_R8 + 0] = 12,
		[STOKE_DWARF_R8 + 1] = 13, [STOKE_DWARF_R8 + 2] = 14, [STOKE_DWARF_R8 + 3] = 15,
		[STOKE_DWARF_R8 + 4] = 16, [STOKE_DWARF_R8 + 5] = 17, [STOKE_DWARF_R8 + 6] = 18,
		[STOKE_DWARF_R8 + 7] = 19, [STOKE_DWARF_RIP] = R_IP,
	};
	struct stoke_sample smp = {
		.pid = (uint32_t)getpid(),
		.tid = (uint32_t)getpid(),
		.ip = g_snap.regs[R_IP],
		.regs_kind = STOKE_REGS_X86_64,
		.stack_addr = g_snap.regs[R_SP],
		.stack_len = len,
		.stack = g_snap.stack,
	};

	for (int i = 0; i < STOKE_DWARF_NREGS; i++)
		smp.regs[i] = g_snap.regs[snap_of[i]];
	return smp;
}

static int unwind_names(struct stoke_symbolizer *s, uint64_t len, struct stoke_symbol *frames)
{
	struct stoke_sample smp = snap_sample(len);

	return stoke_symbolizer_sample(s, &smp, frames, MAX_FRAMES);
}

static int find_frame(const struct stoke_symbol *f, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (f[i].function && strcmp(f[i].function, name) == 0)
			return i;
	return -1;
}

static void snap_free(void)
{
	free(g_snap.stack);
	g_snap.stack = NULL;
}

/* ---- tests ---- */

START_TEST(test_full_stack)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol f[MAX_FRAMES];
	struct stoke_symbolizer_stats st;
	int n;

	t_outer();
	feed_self_maps(s);
	n = unwind_names(s, g_snap.len, f);
	ck_assert_int_ge(n, 5);
	ck_assert_str_eq(f[0].function, "capture_sample");
	ck_assert_str_eq(f[1].function, "t_leaf");
	ck_assert_str_eq(f[2].function, "t_mid");
	ck_assert_str_eq(f[3].function, "t_outer");
	ck_assert_str_eq(f[4].function, "test_full_stack_fn");
	/* up through Check to our main and libc's start code */
	ck_assert_int_gt(find_frame(f, n, "main"), 4);
	ck_assert_int_ne(f[n - 1].kind, STOKE_FRAME_SYNTHETIC);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(f[i].kind, STOKE_FRAME_USER);
		ck_assert_ptr_nonnull(f[i].module); /* never a garbage frame */
	}
	/* the first frame is exact, the others are return addresses */
	ck_assert_uint_eq(f[0].addr, g_snap.regs[R_IP]);
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_samples, 1);
	ck_assert_uint_eq(st.unwind_complete, 1);
	ck_assert_uint_eq(st.unwind_fp_links, 0);

	/* the same sample again: same answer from the cached state */
	ck_assert_int_eq(unwind_names(s, g_snap.len, f), n);
	ck_assert_str_eq(f[3].function, "t_outer");
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_complete, 2);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

START_TEST(test_truncated_copy)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol full[MAX_FRAMES], f[MAX_FRAMES];
	struct stoke_symbolizer_stats st;
	int nfull, n;

	t_outer();
	feed_self_maps(s);
	/* A copy that ends a little above the leaf's frame: the walk must stop
	 * with [truncated], after a correct prefix. (Truncated first: after a
	 * complete stack of the same thread it would be stitched.) */
	n = unwind_names(s, 96, f);
	nfull = unwind_names(s, g_snap.len, full);
	ck_assert_int_ge(n, 2);
	ck_assert_int_lt(n, nfull);
	ck_assert_int_eq(f[n - 1].kind, STOKE_FRAME_SYNTHETIC);
	ck_assert_str_eq(f[n - 1].function, "[truncated]");
	for (int i = 0; i < n - 1; i++)
		ck_assert_str_eq(f[i].function, full[i].function);
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_truncated, 1);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

/*
 * The smallest copy (in 32-byte steps from 96) that cuts the walk above the
 * leaf's frame: at least the leaf and its caller, then [truncated]. The leaf
 * frame's size depends on the build (ASan's redzones make it larger), so it
 * is measured on a symbolizer of its own, which keeps no stitching state.
 */
static uint64_t cut_above_leaf(void)
{
	struct stoke_symbol f[MAX_FRAMES];

	for (uint64_t len = 96; len < g_snap.len; len += 32) {
		struct stoke_symbolizer *s = sym_new();
		bool cut;
		int n;

		feed_self_maps(s);
		n = unwind_names(s, len, f);
		/* names belong to the symbolizer: compare before freeing it */
		cut = n >= 3 && !strcmp(f[n - 1].function, "[truncated]");
		stoke_symbolizer_free(s);
		if (cut)
			return len;
	}
	ck_abort_msg("no copy size cuts the walk above the leaf");
	return 0;
}

/* A truncated stack of a thread whose previous stack was complete, with
 * the same return address and stack pointer at the cut, is completed from
 * it and counted; another thread's stack is not used. */
START_TEST(test_stitch)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol full[MAX_FRAMES], f[MAX_FRAMES];
	struct stoke_symbolizer_stats st;
	struct stoke_sample smp;
	uint64_t cut;
	int nfull, n;

	t_outer();
	cut = cut_above_leaf();
	feed_self_maps(s);
	nfull = unwind_names(s, g_snap.len, full);
	ck_assert_int_ge(nfull, 5);
	ck_assert_int_ne(full[nfull - 1].kind, STOKE_FRAME_SYNTHETIC);

	/* another thread: nothing to stitch onto */
	smp = snap_sample(cut);
	smp.tid = smp.pid + 1;
	n = stoke_symbolizer_sample(s, &smp, f, MAX_FRAMES);
	ck_assert_int_lt(n, nfull);
	ck_assert_str_eq(f[n - 1].function, "[truncated]");
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_stitched, 0);
	ck_assert_uint_eq(st.unwind_truncated, 1);

	/* the same thread: stitched, and the same stack as the full copy */
	n = unwind_names(s, cut, f);
	ck_assert_int_eq(n, nfull);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_eq(f[i].addr, full[i].addr);
		ck_assert_int_eq(f[i].kind, STOKE_FRAME_USER);
	}
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_stitched, 1);
	ck_assert_uint_eq(st.unwind_complete, 2);
	ck_assert_uint_eq(st.unwind_truncated, 1);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

START_TEST(test_no_mappings)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol f[MAX_FRAMES];
	struct stoke_symbolizer_stats st;
	int n;

	t_outer();
	/* no MMAP records: nothing has CFI, and no return address is
	 * plausible; only the exact leaf survives */
	n = unwind_names(s, g_snap.len, f);
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(f[0].addr, g_snap.regs[R_IP]);
	ck_assert_str_eq(f[1].function, "[unwind-failed]");
	ck_assert_int_eq(f[1].kind, STOKE_FRAME_SYNTHETIC);
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_no_cfi + st.unwind_bad_frame, 1);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

START_TEST(test_garbage_stack)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol f[MAX_FRAMES];
	int n;

	t_outer();
	feed_self_maps(s);
	/* Every word of the copy is junk: the leaf's return address is not
	 * code. The walk must stop rather than invent frames. */
	for (uint64_t i = 0; i + 8 <= g_snap.len; i += 8)
		memcpy(g_snap.stack + i, &(uint64_t){ 0x4141414141414141ULL }, 8);
	n = unwind_names(s, g_snap.len, f);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(f[0].function, "capture_sample");
	ck_assert_str_eq(f[1].function, "[unwind-failed]");
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

START_TEST(test_signal_frame)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol f[MAX_FRAMES];
	int n, h, r, o;

	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	t_sig_outer();
	feed_self_maps(s);
	n = unwind_names(s, g_snap.len, f);
	h = find_frame(f, n, "on_signal");
	r = find_frame(f, n, "t_raiser");
	o = find_frame(f, n, "t_sig_outer");
	ck_assert_int_eq(h, 1);
	/* through the signal frame and libc's raise back to the raiser */
	ck_assert_int_gt(r, h + 1);
	ck_assert_int_eq(o, r + 1);
	ck_assert_int_gt(find_frame(f, n, "main"), o);
	ck_assert_int_ne(f[n - 1].kind, STOKE_FRAME_SYNTHETIC);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

START_TEST(test_other_abi)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol f[MAX_FRAMES];
	struct stoke_sample smp;
	struct stoke_symbolizer_stats st;
	int n;

	t_outer();
	feed_self_maps(s);
	smp = snap_sample(g_snap.len);
	smp.regs_kind = STOKE_REGS_UNUSABLE; /* another ABI: not ours to unwind */
	n = stoke_symbolizer_sample(s, &smp, f, MAX_FRAMES);
	ck_assert_int_eq(n, 1); /* the sampled IP alone */
	ck_assert_str_eq(f[0].function, "capture_sample");
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_samples, 0);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

START_TEST(test_frame_limit)
{
	struct stoke_symbolizer *s = sym_new();
	struct stoke_symbol f[MAX_FRAMES];
	struct stoke_sample smp;
	struct stoke_symbolizer_stats st;
	int n;

	t_outer();
	feed_self_maps(s);
	smp = snap_sample(g_snap.len);
	n = stoke_symbolizer_sample(s, &smp, f, 4);
	ck_assert_int_eq(n, 4);
	ck_assert_str_eq(f[2].function, "t_mid");
	ck_assert_str_eq(f[3].function, "[truncated]");
	stoke_symbolizer_get_stats(s, &st);
	ck_assert_uint_eq(st.unwind_max_depth, 1);
	stoke_symbolizer_free(s);
	snap_free();
}
END_TEST

/* The vDSO has no file: its symbols come from our own image. */
START_TEST(test_vdso_symbol)
{
	const uint8_t *base = (const uint8_t *)getauxval(AT_SYSINFO_EHDR);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Shdr *sh;
	struct stoke_strpool *pool;
	struct stoke_unwinder *u;
	uint64_t start = 0, load_vaddr = 0;
	const char *name;

	if (!base)
		return; /* no vDSO (vdso=0 on the kernel command line) */
	/* Find clock_gettime's address in our vDSO by hand. */
	sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD) {
			load_vaddr = ph->p_vaddr - ph->p_offset;
			break;
		}
	}
	for (int i = 0; i < eh->e_shnum && !start; i++) {
		const Elf64_Sym *sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
		const char *str = (const char *)base + sh[sh[i].sh_link].sh_offset;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		for (size_t j = 0; j < sh[i].sh_size / sizeof(*sym); j++)
			if (strcmp(str + sym[j].st_name, "__vdso_clock_gettime") == 0)
				start = sym[j].st_value - load_vaddr;
	}
	ck_assert_uint_ne(start, 0);

	ck_assert_int_eq(stoke_strpool_new(&pool), 0);
	ck_assert_int_eq(stoke_unwinder_new(NULL, pool, &u), 0);
	name = stoke_unwind_vdso_symbol(u, (uintptr_t)base, (uintptr_t)base + start + 1);
	ck_assert_ptr_nonnull(name);
	ck_assert_ptr_nonnull(strstr(name, "clock_gettime"));
	ck_assert_ptr_null(stoke_unwind_vdso_symbol(u, (uintptr_t)base, (uintptr_t)base - 1));
	stoke_unwinder_free(u);
	stoke_strpool_free(pool);
}
END_TEST

static Suite *unwind_suite(void)
{
	Suite *su = suite_create("unwind");
	TCase *tc = tcase_create("dwarf");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_full_stack);
	tcase_add_test(tc, test_truncated_copy);
	tcase_add_test(tc, test_stitch);
	tcase_add_test(tc, test_no_mappings);
	tcase_add_test(tc, test_garbage_stack);
	tcase_add_test(tc, test_signal_frame);
	tcase_add_test(tc, test_other_abi);
	tcase_add_test(tc, test_frame_limit);
	tcase_add_test(tc, test_vdso_symbol);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(unwind_suite());
	int failed;

	unsetenv("DEBUGINFOD_URLS");
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
