/*
 * libFuzzer target "usdt": the USDT note parser and argument specs
 * (sampler/usdt.h) on hostile ELF bytes.
 *
 * The input is parsed as an ELF image from an exact-size heap copy (ASan
 * sees any read past it). Beyond "does not crash": an accepted probe has a
 * file offset inside the image, NUL-terminated strings, and its argument
 * string parses or is refused cleanly; each parsed argument is evaluated
 * against a small stack copy, inside it or refused.
 *
 * Seed (corpus/usdt/probes-begin-end.elf, 1.4 KB): `int main(void) {
 * STOKE_SPAN_BEGIN("s", "k=v"); STOKE_SPAN_END("s"); return 0; }` built with
 * gcc -Os -static -nostdlib -nostartfiles -e main -fno-asynchronous-unwind-
 * tables -Wl,-z,max-page-size=16 -Wl,-z,noseparate-code -Wl,--build-id=none,
 * then strip --keep-section=.note.stapsdt --keep-section=.stapsdt.base.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/usdt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-usdt: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	struct stoke_usdt_probe *p = NULL;
	uint64_t regs[STOKE_DWARF_NREGS], v;
	uint8_t stack[64] = { 0 };
	size_t n = 0;
	int r;

	REQUIRE(copy);
	memcpy(copy, data, size);
	r = stoke_usdt_parse(copy, size, &p, &n);
	REQUIRE(r == 0 || r == -ENOEXEC || r == -ENOMEM);
	for (size_t i = 0; i < STOKE_DWARF_NREGS; i++)
		regs[i] = 0x1000 + i * 8;
	for (size_t i = 0; i < n; i++) {
		struct stoke_usdt_arg a[12];
		int na;

		REQUIRE(p[i].pc_offset > 0 && p[i].pc_offset < size);
		REQUIRE(p[i].sem_offset < size);
		REQUIRE(memchr(p[i].provider, 0, sizeof(p[i].provider)));
		REQUIRE(memchr(p[i].name, 0, sizeof(p[i].name)));
		REQUIRE(memchr(p[i].args, 0, sizeof(p[i].args)));
		na = stoke_usdt_args_parse(p[i].args, a, 12);
		REQUIRE(na >= -EINVAL && na <= 12);
		for (int k = 0; k < na; k++) {
			r = stoke_usdt_arg_value(&a[k], regs, stack, 0x1000, sizeof(stack), &v);
			REQUIRE(r == 0 || r == -EFAULT);
		}
	}
	free(p);
	free(copy);
	return 0;
}
