/*
 * The symbolizer: turns the raw addresses of a sample into named frames.
 *
 * It keeps one address space per process, built from MMAP records (the
 * sampler synthesizes them from /proc/PID/maps at attach, and the kernel
 * sends them for later mmaps), and a cache of ELF modules keyed by file
 * identity (device/inode, else path) that is shared by every process mapping
 * the same file. A module's file is opened when its MMAP record arrives, so a
 * target that has exited by the end of the run still symbolizes; it is parsed
 * (libdwfl) only on the first lookup. Results are cached per (module,
 * address), so each unique address is symbolized once.
 *
 * Kernel addresses are named from /proc/kallsyms, loaded on first use.
 *
 * This is the only folder that uses libelf and libdw.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sampler/sample.h"

enum stoke_frame_kind {
	STOKE_FRAME_USER = 0,
	STOKE_FRAME_KERNEL,
	STOKE_FRAME_JIT,
	STOKE_FRAME_SYNTHETIC, /* e.g. [truncated]; function carries the name */
};

/*
 * One resolved frame. Strings are owned by the symbolizer and stay valid
 * until stoke_symbolizer_free. An unknown frame has function == NULL and
 * keeps its module (NULL when the address is in no mapping) and offset.
 */
struct stoke_symbol {
	const char *function; /* symbol name (as in the symbol table) or NULL;
			       * a symbol-version suffix ("@@GLIBC_2.34") is
			       * dropped */
	const char *file;     /* source file (from DWARF) or NULL */
	uint32_t line;        /* 0 when unknown */
	const char *decl_file; /* the function's definition: its file and */
	uint32_t decl_line;    /* first line (DWARF decl_file/decl_line), as
				* cProfile keys a function; NULL/0 unknown */
	const char *module;   /* full path of the mapped file, "[kernel.kallsyms]",
			       * "[vdso]", or NULL; for a kernel module's
			       * symbol, its name in brackets ("[ext4]") */
	uint64_t addr;        /* the address as sampled (before the -1 rule) */
	uint64_t offset;      /* module-relative address: ELF virtual address for
			       * ELF modules, the kernel address for the kernel */
	enum stoke_frame_kind kind;
	bool inlined;         /* an inlined frame: a function inlined into the
			       * frame that follows it */
};

/* How function names are demangled (C++ and Rust, through libiberty). */
enum stoke_demangle_mode {
	STOKE_DEMANGLE_SHORT = 0, /* default: without parameter lists */
	STOKE_DEMANGLE_FULL,      /* with parameter lists and qualifiers */
	STOKE_DEMANGLE_NONE,      /* names as in the binary */
};

/* "full", "none" (and "short", the default) → *ret. Returns 0 or -EINVAL. */
int stoke_demangle_mode_parse(const char *s, enum stoke_demangle_mode *ret);

/*
 * Whose rights files named by a target are opened with. The symbolizer
 * opens paths the target chooses (its mappings, their debuginfo, its
 * /tmp/perf-PID.map); run as root for another user (stoked), it must not
 * read for them what they could not. With set and a non-zero uid, a root
 * process opens each such file with that uid's fsuid, gid's fsgid and gid
 * as the only supplementary group; otherwise with its own rights.
 */
struct stoke_file_creds {
	bool set;
	uid_t uid;
	gid_t gid;
};

struct stoke_symbolizer_opts {
	bool no_kernel;       /* never read /proc/kallsyms */
	const char *kallsyms_path; /* default /proc/kallsyms (tests override) */
	const char *debuginfo_path; /* extra debuginfo roots, colon-separated:
				     * searched for .gnu_debuglink files and
				     * .build-id/xx/yyyy.debug, after the file's
				     * own dir, its .debug/ and /usr/lib/debug */
	enum stoke_demangle_mode demangle;
	bool no_result_cache; /* never keep results: for callers that look
			       * each address up once (stoke symbolize
			       * dedups its input), where the cache only
			       * costs memory and hash probes */
	struct stoke_file_creds file_creds; /* the requester (stoked) */
	/* Bounds on loading modules' symbols and debug info (0: none): see
	 * stoke_elfcache_set_limits. Frames of a module past them are
	 * module+0xoff, counted in stats.modules_capped. */
	uint32_t max_modules;
	uint64_t max_module_bytes;
};

struct stoke_symbolizer_stats {
	uint64_t lookups;       /* addresses looked up */
	uint64_t cache_hits;
	uint64_t unknown;       /* frames left without a function name */
	uint64_t no_mapping;    /* user addresses outside every mapping */
	uint64_t jit_maps_read; /* /tmp/perf-PID.map files (re)read */
	uint64_t jit_bytes_refused; /* of them, bytes past the size caps */
	/* DWARF unwinding of user stacks (samples with user registers); every
	 * unwound sample ends in exactly one of the reasons below. */
	uint64_t unwind_samples;
	uint64_t unwind_complete;   /* reached the outermost frame */
	uint64_t unwind_truncated;  /* [truncated]: the stack copy was too small */
	uint64_t unwind_no_cfi;     /* [unwind-failed]: no CFI, no plausible FP link */
	uint64_t unwind_bad_frame;  /* [unwind-failed]: implausible frame or
				     * libunwind error */
	uint64_t unwind_max_depth;  /* [truncated]: the frame limit */
	uint64_t unwind_fp_links;   /* frames spliced from frame-pointer links */
	uint64_t unwind_stitched;   /* truncated stacks completed from the
				     * thread's previous stack (in complete) */
	uint32_t modules;       /* modules known */
	uint32_t modules_failed;/* modules whose ELF could not be read */
	uint32_t modules_capped;/* modules (or debuginfo) refused by a bound */
	uint64_t module_bytes;  /* estimated memory of loaded modules */
	uint32_t processes;
};

struct stoke_symbolizer;

int stoke_symbolizer_new(const struct stoke_symbolizer_opts *opts,
			 struct stoke_symbolizer **ret);
void stoke_symbolizer_free(struct stoke_symbolizer *s);

/*
 * Feed a record. MMAP adds a mapping to its process; COMM with exec drops the
 * process's mappings (the MMAPs after it rebuild them); FORK of a new process
 * copies the parent's mappings. Other records are ignored. Returns 0 or
 * -ENOMEM.
 */
int stoke_symbolizer_record(struct stoke_symbolizer *s, const struct stoke_record *rec);

/*
 * Resolve a sample's stack (stack/stack.h) into frames, leaf first: its
 * kernel IPs then its user IPs. Every IP but the first of each side is a
 * return address and is looked up at addr - 1, so call sites resolve to the
 * caller. When the sample has no stack, sample->ip alone is used. Writes at
 * most max frames and returns the number written.
 *
 * A sample with user registers and a user stack copy (DWARF mode) gets its
 * user frames by DWARF unwinding instead (libunwind, see stack/unwind.h);
 * the kernel frames still come from its kernel IPs, on top. The -1 rule applies
 * to every unwound frame but the first and the one a signal interrupted. A
 * stack that does not reach its outermost frame ends, root side, with a
 * STOKE_FRAME_SYNTHETIC frame named "[truncated]" (the stack copy or the
 * frame limit was too small) or "[unwind-failed]" (no CFI, or a frame that
 * is not plausible); the reasons are counted in the stats.
 */
int stoke_symbolizer_sample(struct stoke_symbolizer *s, const struct stoke_sample *sample,
			    struct stoke_symbol *frames, size_t max);

/*
 * Two-step resolution, for callers that must not wait on symbol lookups
 * (the session drains the rings with step 1 only and names each unique
 * location once, later, with step 2).
 *
 * Step 1, locating, is cheap and needs the process's mappings as they are
 * now: it finds the mapping of an address (so it must run before a later
 * exec or munmap changes them), turns it into a module-relative address,
 * names JIT frames from the process's perf map (JITs reuse addresses) and
 * vDSO frames, and unwinds DWARF-mode stacks. Step 2, naming, reads symbol
 * tables and DWARF, through the result cache; it depends on the location
 * alone, never on a process.
 */
enum stoke_loc_lookup {
	STOKE_LOC_NAMED = 0, /* nothing to look up: the location is its frame */
	STOKE_LOC_KERNEL,    /* kallsyms at look */
	STOKE_LOC_MODULE,    /* mod's symbols and DWARF at look */
};

struct stoke_module;

/* A located frame. Every field is set (unused ones zero), so two locations
 * that name the same frame compare equal field by field. */
struct stoke_frame_loc {
	struct stoke_module *mod; /* STOKE_LOC_MODULE: the module */
	const char *function;     /* STOKE_LOC_NAMED: the name, or NULL */
	const char *module;       /* as stoke_symbol.module */
	uint64_t addr;            /* as stoke_symbol.addr */
	uint64_t offset;          /* as stoke_symbol.offset */
	uint64_t look;            /* the address looked up (after the -1 rule):
				   * an ELF vaddr of mod, or a kernel address */
	uint8_t kind;             /* enum stoke_frame_kind */
	uint8_t lookup;           /* enum stoke_loc_lookup */
};

/* Step 1 of stoke_symbolizer_addr_frames: locate one address. Returns 0. */
int stoke_symbolizer_locate(struct stoke_symbolizer *s, pid_t pid, uint64_t addr, bool kernel,
			    bool return_addr, struct stoke_frame_loc *ret);

/*
 * Step 1 of stoke_symbolizer_sample: the sample's locations, leaf first, one
 * per address (kernel, then user; unwound in DWARF mode, with the synthetic
 * "[truncated]"/"[unwind-failed]" root frame). Writes at most max and
 * returns the count.
 */
int stoke_symbolizer_sample_locs(struct stoke_symbolizer *s, const struct stoke_sample *sample,
				 struct stoke_frame_loc *locs, size_t max);

/*
 * Step 2: name a location, as stoke_symbolizer_addr_frames does (inlined
 * frames first, then the physical function). Writes at most max and returns
 * the count (>= 1 when max >= 1).
 */
int stoke_symbolizer_loc_frames(struct stoke_symbolizer *s, const struct stoke_frame_loc *loc,
				struct stoke_symbol *frames, size_t max);

/*
 * Take now the slow first steps of naming, which nothing can split (reading
 * kallsyms: tenths of a second on a loaded machine; finding and opening a
 * module's DWARF, as long for a libc with debuginfo), so that a caller who
 * names while sampling (stoke top) does so before its events are enabled.
 * _kernel reads kallsyms (not with no_kernel). _mapping loads the names of
 * the file an executable mapping m maps (the record the sampler will
 * synthesize for it finds the same module); other mappings are skipped.
 * _mapping returns 0 (an unreadable file too: it is named by address later)
 * or -ENOMEM.
 */
void stoke_symbolizer_preload_kernel(struct stoke_symbolizer *s);
int stoke_symbolizer_preload_mapping(struct stoke_symbolizer *s, const struct stoke_mmap *m);

/*
 * Resolve one address of process pid (kernel addresses when kernel is true).
 * return_addr applies the -1 rule. Returns 0 (ret filled, possibly unknown).
 * When the address is inside inlined code, ret is the function that
 * physically holds it (the last of stoke_symbolizer_addr_frames).
 */
int stoke_symbolizer_addr(struct stoke_symbolizer *s, pid_t pid, uint64_t addr,
			  bool kernel, bool return_addr, struct stoke_symbol *ret);

/*
 * Resolve one address into all its frames, innermost first: the inlined
 * functions (inlined = true, each at its file:line), then the function that
 * physically holds the address. Unknown addresses give one unknown frame.
 * Writes at most max frames (dropping inner ones first, so the physical
 * function stays) and returns the count (>= 1 when max >= 1).
 */
int stoke_symbolizer_addr_frames(struct stoke_symbolizer *s, pid_t pid, uint64_t addr,
				 bool kernel, bool return_addr, struct stoke_symbol *frames,
				 size_t max);

/*
 * Resolve vaddr, an ELF virtual address of the file at path (as addr2line
 * -e does), into frames as stoke_symbolizer_addr_frames. The file is opened
 * and parsed on first use and kept. Returns the frame count, or -ENOENT /
 * -EACCES / … when the file cannot be opened, -ENOEXEC when it is not ELF.
 */
int stoke_symbolizer_elf_frames(struct stoke_symbolizer *s, const char *path, uint64_t vaddr,
				struct stoke_symbol *frames, size_t max);

void stoke_symbolizer_get_stats(const struct stoke_symbolizer *s,
				struct stoke_symbolizer_stats *ret);
/* Narrow (or widen) max_module_bytes while lookups may run on another
 * thread: stoked keeps it at what is left of the owner's budget. */
void stoke_symbolizer_set_max_module_bytes(struct stoke_symbolizer *s, uint64_t max);

/* ---- kernel symbols (kallsyms), usable on their own ---- */

struct stoke_ksyms;
/* Load a kallsyms-format file. Returns 0, or -errno. An all-zero address file
 * (kptr_restrict) loads with no symbols. */
int stoke_ksyms_load(const char *path, struct stoke_ksyms **ret);
void stoke_ksyms_free(struct stoke_ksyms *k);
/* The symbol containing addr (the greatest start <= addr), or NULL. *ret_module
 * is the module name ("" for the core kernel) when non-NULL. */
const char *stoke_ksyms_lookup(const struct stoke_ksyms *k, uint64_t addr,
			       uint64_t *ret_start, const char **ret_module);
size_t stoke_ksyms_count(const struct stoke_ksyms *k);

/* The GNU build-id of the ELF file open on fd, as lowercase hex (malloc'd).
 * Returns 0, -ENOENT when the file has none, -EINVAL when it is not ELF. */
int stoke_elf_build_id_hex(int fd, char **ret);
