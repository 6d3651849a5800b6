/*
 * Private to symbolizer/: source lines and inlined frames from DWARF.
 *
 * libdw answers "which line holds this address" quickly (the line table is
 * sorted once per CU), but "which inlined calls hold this address" through
 * dwarf_getscopes walks the CU's DIE tree again for every address: that is
 * why eu-addr2line -i is 30x slower than binutils. So each CU's DIE tree is
 * walked once, on the first address that lands in it, into an interval
 * index: every DW_TAG_subprogram and DW_TAG_inlined_subroutine with code
 * becomes a node (name, parent, call site), every one of its address ranges
 * an interval, sorted by start. A lookup is one binary search plus a short
 * walk up the parents.
 */
#pragma once

#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <stdint.h>

struct stoke_srcframe {
	const char *function; /* the DWARF name (the linkage name when there is
			       * one, else DW_AT_name), borrowed from libdw;
			       * NULL when no function DIE covers the address */
	const char *file;     /* borrowed from libdw, or NULL; when the address
			       * has no line, the CU's name (as addr2line) */
	const char *dir;      /* the compilation directory a relative file is
			       * relative to, or NULL */
	uint32_t line;        /* 0 when unknown */
	/* Where the function is defined (DW_AT_decl_file/decl_line, through
	 * abstract_origin and specification): its first line, as cProfile
	 * keys a function. NULL/0 when DWARF does not say. */
	const char *decl_file;
	const char *decl_dir; /* as dir, for decl_file */
	uint32_t decl_line;
};

struct stoke_srcline;

/* An index over mod's DWARF, built lazily per CU. mod must outlive it. */
int stoke_srcline_new(Dwfl_Module *mod, struct stoke_srcline **ret);
void stoke_srcline_free(struct stoke_srcline *sl);

/*
 * The frames holding addr (a Dwfl module address: ELF vaddr + bias),
 * innermost first: the inlined functions, then the function that physically
 * holds the address. The first frame's file:line is the line table's; each
 * outer frame's is the call site of the frame inside it. With more than max
 * frames, the innermost ones are dropped (the physical function is always
 * kept). Returns the number of frames, 0 when no DWARF describes addr (no
 * debug info, or a gap), or -ENOMEM.
 */
int stoke_srcline_lookup(struct stoke_srcline *sl, uint64_t addr, struct stoke_srcframe *frames,
			 size_t max);

/* CUs indexed so far (for tests: each CU is walked once). */
size_t stoke_srcline_cus_indexed(const struct stoke_srcline *sl);
