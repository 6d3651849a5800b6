/*
 * Private to symbolizer/: the string pool and the ELF module cache.
 *
 * The pool interns every string the symbolizer hands out (module paths,
 * function names), so a returned const char * stays valid until the pool is
 * freed and equal strings share one pointer.
 *
 * The module cache holds one struct stoke_module per mapped file, keyed by
 * file identity: (maj, min, ino, ino_generation) from MMAP2 when known, else
 * (path, build-id). The file is opened when the MMAP record arrives and parsed
 * with libdwfl on the first lookup. Modules live until the cache is freed.
 */
#pragma once

/* Modules whose files are kept open; later ones are not symbolized. */
#define STOKE_ELFCACHE_MAX_OPEN 4096

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler/sample.h"
#include "symbolizer/symbolizer.h"

#include "common/strpool.h"

struct stoke_module;
struct stoke_elfcache;

/* The cache does not own pool. */
int stoke_elfcache_new(struct stoke_strpool *pool, struct stoke_elfcache **ret);
void stoke_elfcache_free(struct stoke_elfcache *c);
/*
 * Options, before the first module is parsed: debuginfo_dirs (colon-
 * separated, or NULL) are searched after libdwfl's defaults (the file's
 * directory, its .debug/, /usr/lib/debug), both for .gnu_debuglink names
 * and for .build-id/xx/rest.debug; demangle is how names are demangled.
 * Returns 0 or -ENOMEM.
 */
int stoke_elfcache_configure(struct stoke_elfcache *c, const char *debuginfo_dirs,
			     enum stoke_demangle_mode demangle);

/*
 * Open every file a target names (mapped files, their separate debuginfo,
 * JIT maps) with fc's filesystem ids and supplementary group, when the
 * process is root and fc names another user: see stoke_file_creds.
 */
void stoke_elfcache_set_creds(struct stoke_elfcache *c, const struct stoke_file_creds *fc);
/*
 * Open path, a name a target chose, for reading with the cache's
 * credentials: only a regular file (fstat of an O_PATH open first, so no
 * device or FIFO is ever opened), O_NONBLOCK, close-on-exec; flags may add
 * O_NOFOLLOW. Returns the fd and its stat in *ret_st (when not NULL), or
 * -EINVAL (not a regular file), -EACCES, -ENOENT, -ELOOP, -EPERM, …
 */
struct stat;
int stoke_elfcache_open(struct stoke_elfcache *c, const char *path, int flags,
			struct stat *ret_st);

/*
 * The module for the file mapped by m (m->filename must be an absolute path),
 * created on first sight: its file is opened now (through /proc/PID/root
 * first, then the path, then /proc/PID/map_files, each with the credentials
 * of stoke_elfcache_set_creds) but not parsed. A file that
 * cannot be opened still gets a module, which is marked failed when first
 * used. Returns 0 or -ENOMEM.
 */
int stoke_elfcache_get(struct stoke_elfcache *c, const struct stoke_mmap *m,
		       struct stoke_module **ret);

/* Parse the module now (every lookup below does it on first use). Returns 0,
 * or -ENOEXEC when it cannot be read as ELF (or was never opened). */
int stoke_module_parse(struct stoke_elfcache *c, struct stoke_module *mod);

/* Load now everything naming an address of mod needs on first use: parse
 * it, find its DWARF (separate debuginfo too) and index its symbol table.
 * Best effort past the parse (a module without DWARF or symbols is no
 * error). Returns 0, -ENOEXEC (not ELF) or -ENOMEM. */
int stoke_module_preload(struct stoke_elfcache *c, struct stoke_module *mod);

/* Tests: sleep us microseconds before each module's DWARF is searched for
 * (see STOKE_TEST_LOAD_DELAY_US in symbolizer.c). */
void stoke_elfcache_set_load_delay(struct stoke_elfcache *c, unsigned us);

/* The module's path as mapped (interned). */
const char *stoke_module_path(const struct stoke_module *mod);

/*
 * Translate a file offset to an ELF virtual address through the PT_LOAD
 * segment that contains it (p_offset <= off < p_offset + p_filesz). Parses
 * the module on first use. Returns 0, -ENOENT when no segment holds off, or
 * -ENOEXEC when the module cannot be read as ELF.
 */
int stoke_module_vaddr(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t file_off,
		       uint64_t *ret_vaddr);

/*
 * The symbol containing vaddr (an ELF virtual address of mod), or NULL in
 * *ret_name when none does; demangled as configured. Not cached here: the
 * caller caches per address. Returns 0 or -ENOEXEC/-ENOMEM.
 */
int stoke_module_symbol(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t vaddr,
			const char **ret_name);

/* One frame of an address; strings are interned (NULL when unknown). */
struct stoke_module_frame {
	const char *function;
	const char *file;
	uint32_t line;
	const char *decl_file; /* the function's definition (srcline.h) */
	uint32_t decl_line;
};

/* The longest inline chain kept for one address. */
#define STOKE_MODULE_MAX_FRAMES 64

/*
 * The frames at vaddr, innermost first: inlined functions, then the one
 * that physically holds the address, each with its source file:line (the
 * inlined call's site for the outer ones). From DWARF when the module (or
 * its separate debuginfo) has it, else one frame named from the symbol
 * table. Names are demangled. Writes at most max (the physical function is
 * kept) and returns the count (>= 1 when max >= 1), or -ENOEXEC/-ENOMEM.
 * Not cached here.
 */
int stoke_module_frames(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t vaddr,
			struct stoke_module_frame *frames, size_t max);

/* The key results of mod are cached under: shared by every module with the
 * same build-id. Valid once the module was parsed (any lookup above). */
const void *stoke_module_key(const struct stoke_module *mod);

uint32_t stoke_elfcache_modules(const struct stoke_elfcache *c);
uint32_t stoke_elfcache_failed(const struct stoke_elfcache *c);

/*
 * Bound what parsing modules may cost (0: no bound): at most max_modules
 * modules are parsed, and a module is parsed only while the running
 * estimate of what parsed modules hold (symbol and string tables, DWARF,
 * separate debuginfo: from section sizes, see elf_estimate) stays within
 * max_bytes. A refused module keeps its name; its frames are module+0xoff.
 * set_max_bytes may be called from another thread while lookups run
 * (stoked narrows it to what is left of the user's budget).
 */
void stoke_elfcache_set_limits(struct stoke_elfcache *c, uint32_t max_modules,
			       uint64_t max_bytes);
void stoke_elfcache_set_max_bytes(struct stoke_elfcache *c, uint64_t max_bytes);
/* The running estimate, in bytes, of what parsed modules hold. */
uint64_t stoke_elfcache_bytes(const struct stoke_elfcache *c);
/* Modules (or their separate debuginfo) refused by a limit. */
uint32_t stoke_elfcache_capped(const struct stoke_elfcache *c);

/*
 * For the unwinder: the module's main ELF file (the one mapped into the
 * process, never separate debuginfo), parsed on first use. The handle is
 * libdwfl's and stays valid until the cache is freed; elf_rawfile() on it
 * gives the file's bytes. Returns 0 or -ENOEXEC/-ENOMEM.
 */
struct Elf;
int stoke_module_elf(struct stoke_elfcache *c, struct stoke_module *mod, struct Elf **ret_elf);
