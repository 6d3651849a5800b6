/*
 * Unit tests for the USDT note parser and argument specs (sampler/usdt.h):
 * the span fixture's probes, every truncation and many corruptions of it
 * (hostile notes: errors, never crashes), and the argument forms GCC writes.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/usdt.h"

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

START_TEST(test_fixture_probes)
{
	struct stoke_usdt_probe *p = NULL;
	struct stoke_usdt_arg args[4];
	size_t n = 0, len;
	int begin = 0, end = 0;
	uint8_t *elf = slurp(FIXTURE_DIR "/spans", &len);

	ck_assert_int_eq(stoke_usdt_parse(elf, len, &p, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(p[i].provider, "stoke"))
			continue;
		begin += !strcmp(p[i].name, "span_begin");
		end += !strcmp(p[i].name, "span_end");
		ck_assert_uint_gt(p[i].pc_offset, 0);
		ck_assert_uint_lt(p[i].pc_offset, len);
		/* the probe is a nop */
		ck_assert_uint_eq(elf[p[i].pc_offset], 0x90);
		ck_assert_uint_gt(p[i].sem_offset, 0);
		ck_assert_uint_lt(p[i].sem_offset + 2, len);
		ck_assert_int_eq(stoke_usdt_args_parse(p[i].args, args, 4), 2);
	}
	ck_assert_int_ge(begin, 1);
	ck_assert_int_ge(end, 1);
	free(p);
	/* A file without probes has none, and is no error. */
	free(elf);
	elf = slurp(FIXTURE_DIR "/spans-nospans", &len);
	ck_assert_int_eq(stoke_usdt_parse(elf, len, &p, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(p);
	free(elf);
}
END_TEST

START_TEST(test_hostile)
{
	size_t len;
	uint8_t *elf = slurp(FIXTURE_DIR "/spans", &len);
	uint8_t *copy = malloc(len);
	uint32_t seed = 12345;

	/* Every truncation (in steps: the whole file is large). */
	for (size_t cut = 0; cut < len; cut += cut < 256 ? 1 : 61) {
		struct stoke_usdt_probe *p = NULL;
		size_t n = 0;
		uint8_t *t = malloc(cut ? cut : 1);
		int r;

		memcpy(t, elf, cut);
		r = stoke_usdt_parse(t, cut, &p, &n);
		ck_assert(r == 0 || r == -ENOEXEC);
		free(p);
		free(t);
	}
	/* Random corruptions of a few bytes each. */
	for (int round = 0; round < 3000; round++) {
		struct stoke_usdt_probe *p = NULL;
		size_t n = 0;
		int r;

		memcpy(copy, elf, len);
		for (int k = 0; k < 4; k++) {
			seed = seed * 1103515245u + 12345u;
			/* Mostly the headers and the tail (section headers,
			 * notes), where the offsets are. */
			size_t at = (seed >> 8) % (round % 2 ? 256 : len);

			if (round % 3 == 0)
				at = len - 1 - (seed >> 8) % (len < 4096 ? len : 4096);
			copy[at] ^= (uint8_t)(seed >> 3) | 1;
		}
		r = stoke_usdt_parse(copy, len, &p, &n);
		ck_assert(r == 0 || r == -ENOEXEC);
		for (size_t i = 0; i < n; i++) {
			ck_assert_uint_lt(p[i].pc_offset, len);
			ck_assert(memchr(p[i].provider, 0, sizeof(p[i].provider)));
			ck_assert(memchr(p[i].args, 0, sizeof(p[i].args)));
		}
		free(p);
	}
	free(copy);
	free(elf);
}
END_TEST

START_TEST(test_args)
{
	struct stoke_usdt_arg a[8];
	uint64_t regs[STOKE_DWARF_NREGS] = { 0 }, v;
	uint8_t stack[64];

	ck_assert_int_eq(stoke_usdt_args_parse("8@%rdi -4@-12(%rbp) 8@$5 8@(%rsp) -1@%r11d", a, 8),
			 5);
	ck_assert_int_eq(a[0].kind, STOKE_USDT_ARG_REG);
	ck_assert_int_eq(a[0].reg, STOKE_DWARF_RDI);
	ck_assert_int_eq(a[1].kind, STOKE_USDT_ARG_MEM);
	ck_assert_int_eq(a[1].reg, STOKE_DWARF_RBP);
	ck_assert_int_eq(a[1].value, -12);
	ck_assert_int_eq(a[1].size, -4);
	ck_assert_int_eq(a[2].kind, STOKE_USDT_ARG_IMM);
	ck_assert_int_eq(a[2].value, 5);
	ck_assert_int_eq(a[3].kind, STOKE_USDT_ARG_MEM);
	ck_assert_int_eq(a[3].value, 0);
	ck_assert_int_eq(a[4].reg, 11);
	ck_assert_int_eq(stoke_usdt_args_parse("", a, 8), 0);
	ck_assert_int_eq(stoke_usdt_args_parse("8@%xmm0", a, 8), -EINVAL);
	ck_assert_int_eq(stoke_usdt_args_parse("3@%rax", a, 8), -EINVAL);
	ck_assert_int_eq(stoke_usdt_args_parse("8@sym(%rip)", a, 8), -EINVAL);
	ck_assert_int_eq(stoke_usdt_args_parse("8@(%rax,%rbx,8)", a, 8), -EINVAL);
	ck_assert_int_eq(stoke_usdt_args_parse("8@%rax 8@%rdx", a, 1), -EINVAL);
	ck_assert_int_eq(stoke_usdt_args_parse("8@", a, 8), -EINVAL);

	/* Values: registers, memory inside the stack copy only, signs. */
	for (size_t i = 0; i < sizeof(stack); i++)
		stack[i] = (uint8_t)i;
	regs[STOKE_DWARF_RSP] = 0x1000;
	regs[STOKE_DWARF_RBP] = 0x1010;
	regs[STOKE_DWARF_RDI] = 0xdeadbeef;
	regs[11] = 0xff;
	ck_assert_int_eq(stoke_usdt_args_parse("8@%rdi 8@8(%rsp) -4@-12(%rbp) 8@60(%rsp) -1@%r11d "
					       "4@-8(%rsp)",
					       a, 8),
			 6);
	ck_assert_int_eq(stoke_usdt_arg_value(&a[0], regs, stack, 0x1000, 64, &v), 0);
	ck_assert_uint_eq(v, 0xdeadbeef);
	ck_assert_int_eq(stoke_usdt_arg_value(&a[1], regs, stack, 0x1000, 64, &v), 0);
	ck_assert_uint_eq(v, 0x0f0e0d0c0b0a0908ULL);
	ck_assert_int_eq(stoke_usdt_arg_value(&a[2], regs, stack, 0x1000, 64, &v), 0);
	ck_assert_uint_eq(v, 0x07060504);
	/* 60 + 8 > 64: outside the copy */
	ck_assert_int_eq(stoke_usdt_arg_value(&a[3], regs, stack, 0x1000, 64, &v), -EFAULT);
	ck_assert_int_eq(stoke_usdt_arg_value(&a[4], regs, stack, 0x1000, 64, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX); /* -1 as a signed byte */
	/* below the copy */
	ck_assert_int_eq(stoke_usdt_arg_value(&a[5], regs, stack, 0x1000, 64, &v), -EFAULT);
	ck_assert_int_eq(stoke_usdt_arg_value(&a[1], regs, NULL, 0x1000, 0, &v), -EFAULT);
}
END_TEST

static Suite *usdt_suite(void)
{
	Suite *s = suite_create("usdt");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fixture_probes);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_args);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(usdt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
