/*
 * USDT probes (<sys/sdt.h>) of an ELF file: the .note.stapsdt notes, read
 * as hostile bytes, and the argument specs they carry ("8@%rdi",
 * "-4@-12(%rbp)", "8@$5").
 *
 * Used by the perf backend to enable stoke's span probes (include/stoke/
 * span.h) with uprobes; nothing here knows perf. Pure functions over bytes
 * but stoke_usdt_read_file; stoke_usdt_parse is a fuzz target.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sampler/sample.h"

struct stoke_usdt_probe {
	char provider[64];
	char name[64];
	uint64_t pc_offset;  /* file offset of the probe's nop (what a uprobe
			      * takes), prelink-adjusted through .stapsdt.base */
	uint64_t sem_offset; /* file offset of its semaphore; 0: none */
	char args[256];      /* the argument specs, as written */
};

/* Every probe of an ELF image (64-bit little-endian only: -ENOEXEC
 * otherwise). A probe whose address lies in no loadable segment is skipped.
 * *ret is malloc'ed (NULL when there is none). Returns 0, -ENOEXEC
 * (not such an ELF, or malformed) or -ENOMEM. */
int stoke_usdt_parse(const void *elf, size_t len, struct stoke_usdt_probe **ret,
		     size_t *ret_n);
/* The same, of a file (mapped, not read whole). */
int stoke_usdt_read_file(const char *path, struct stoke_usdt_probe **ret, size_t *ret_n);

enum stoke_usdt_arg_kind {
	STOKE_USDT_ARG_REG, /* the register's value */
	STOKE_USDT_ARG_MEM, /* the bytes at register + offset */
	STOKE_USDT_ARG_IMM, /* a constant */
};

struct stoke_usdt_arg {
	int size;    /* bytes; negative: signed */
	uint8_t kind; /* enum stoke_usdt_arg_kind */
	uint8_t reg;  /* DWARF number (sample.h), for REG and MEM */
	int64_t value; /* MEM: the offset; IMM: the constant */
};

/* Parse a note's argument string into at most max args. Returns the number,
 * or -EINVAL (a spec stoke cannot read: an unknown register, an index
 * register, a symbol). */
int stoke_usdt_args_parse(const char *s, struct stoke_usdt_arg *out, int max);

/* The value of an argument at a probe hit, from the registers (DWARF
 * numbering) and the copy of the stack (len bytes from stack_addr) the
 * hit carries. Returns 0, or -EFAULT when the memory is outside the copy. */
int stoke_usdt_arg_value(const struct stoke_usdt_arg *a, const uint64_t *regs,
			 const uint8_t *stack, uint64_t stack_addr, uint64_t stack_len,
			 uint64_t *ret);
