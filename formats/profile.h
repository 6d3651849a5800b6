/*
 * The profile model: what every writer reads.
 *
 *  - strings are interned; id 0 is always "".
 *  - a frame is (name, file, line, module, offset, kind, inlined), interned:
 *    the same tuple always gets the same id. Frame ids start at 1; 0 is
 *    never a valid frame.
 *  - stacks form a prefix tree of (parent stack, frame) nodes, root first, so
 *    shared prefixes are stored once. Stack id 0 is the empty stack; every
 *    other id names the node of its leaf frame.
 *  - samples are (tid, time, stack, weight), in the order added.
 *  - threads are (pid, tid, name).
 *  - metadata: what was recorded and how.
 *
 * All tables only grow; ids and the pointers returned by the accessors stay
 * valid until the next call that adds to the same table. Every resource is
 * bounded by memory only; errors are -ENOMEM or -EINVAL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stoke_pframe_kind {
	STOKE_PFRAME_USER = 0,
	STOKE_PFRAME_KERNEL,
	STOKE_PFRAME_JIT,
	STOKE_PFRAME_SYNTHETIC,
};

struct stoke_pframe {
	uint32_t name;    /* string id; 0 when the symbol is unknown */
	uint32_t file;    /* string id; 0 when unknown */
	uint32_t line;    /* 0 when unknown */
	uint32_t module;  /* string id of the module path; 0 when unknown */
	uint64_t offset;  /* module-relative address (the pprof's Location
			   * address); the per-function views set it to 0
			   * for named frames (stoke_profile_copy) */
	uint8_t kind;     /* enum stoke_pframe_kind */
	bool inlined;
	/* Where the function is defined (DWARF decl_file/decl_line): the
	 * file and first line pstats, callgrind and pprof key it by. 0 when
	 * unknown (no DWARF, or a profile stored without them). */
	uint32_t decl_file; /* string id */
	uint32_t decl_line;
};

struct stoke_pstack {
	uint32_t parent;  /* stack id of the caller prefix; 0 for a root frame */
	uint32_t frame;   /* frame id */
	uint32_t depth;   /* 1 for a root frame */
};

/* What a sample measures. Off-CPU samples (--off-cpu) stand for time a
 * thread spent blocked, in units of the sampling period, so on- and
 * off-CPU weights add up to the thread's wall-clock time. */
enum stoke_psample_kind {
	STOKE_SAMPLE_ON_CPU = 0,
	STOKE_SAMPLE_OFF_CPU,
};

struct stoke_psample {
	uint32_t tid;
	uint32_t stack;   /* stack id (0: empty) */
	uint64_t time;    /* ns, CLOCK_MONOTONIC as perf reports it */
	uint64_t weight;  /* number of samples this stands for (>= 1) */
	uint8_t kind;     /* enum stoke_psample_kind */
};

struct stoke_pthread {
	uint32_t pid, tid;
	uint32_t name;    /* string id */
	uint64_t samples; /* total weight of this thread's samples */
	uint64_t off_cpu; /* the off-CPU part of it */
};

struct stoke_pmeta {
	uint32_t event;        /* string id: "cpu-clock", … */
	uint32_t frequency;    /* Hz requested */
	uint64_t period_ns;    /* nominal ns per sample (1e9 / frequency) */
	uint64_t start_ns;     /* wall clock, ns since the epoch */
	uint64_t end_ns;
	uint64_t time_first, time_last; /* sample timestamps seen */
	uint32_t callgraph;    /* string id: "fp", "dwarf" */
	uint32_t command;      /* string id: target command line */
	uint32_t pid;          /* target pid (first) */
	uint64_t lost;         /* samples lost by the kernel */
	uint64_t throttled;
};

struct stoke_profile;

int stoke_profile_new(struct stoke_profile **ret);
void stoke_profile_free(struct stoke_profile *p);

/* Intern a NUL-terminated string (NULL means ""). Returns 0 and the id. */
int stoke_profile_intern(struct stoke_profile *p, const char *s, uint32_t *ret);
/* Intern with an explicit length (the bytes need not be NUL-terminated). */
int stoke_profile_intern_n(struct stoke_profile *p, const char *s, size_t len, uint32_t *ret);
const char *stoke_profile_string(const struct stoke_profile *p, uint32_t id);
size_t stoke_profile_nstrings(const struct stoke_profile *p);

/* Intern a frame. String ids must be valid. Returns 0 and the id (>= 1). */
int stoke_profile_frame(struct stoke_profile *p, const struct stoke_pframe *f, uint32_t *ret);
/* Frames are 1..n; returns NULL for 0 or out of range. */
const struct stoke_pframe *stoke_profile_get_frame(const struct stoke_profile *p, uint32_t id);
size_t stoke_profile_nframes(const struct stoke_profile *p); /* n (ids 1..n) */

/* The stack (parent, frame). parent 0 makes a root frame. Returns 0 and the
 * id (>= 1), or -EINVAL for an invalid parent or frame. */
int stoke_profile_stack(struct stoke_profile *p, uint32_t parent, uint32_t frame, uint32_t *ret);
const struct stoke_pstack *stoke_profile_get_stack(const struct stoke_profile *p, uint32_t id);
size_t stoke_profile_nstacks(const struct stoke_profile *p); /* n (ids 1..n) */

/* Add a sample. An unknown tid gets a thread entry with an empty name. */
int stoke_profile_add_sample(struct stoke_profile *p, uint32_t tid, uint64_t time,
			     uint32_t stack, uint64_t weight);
/* The same, of a kind (enum stoke_psample_kind). */
int stoke_profile_add_sample_kind(struct stoke_profile *p, uint32_t tid, uint64_t time,
				  uint32_t stack, uint64_t weight, uint8_t kind);
/* Sum of the weights of the samples of one kind. */
uint64_t stoke_profile_total_kind(const struct stoke_profile *p, uint8_t kind);
const struct stoke_psample *stoke_profile_samples(const struct stoke_profile *p, size_t *ret_n);
/* Sum of all sample weights. */
uint64_t stoke_profile_total(const struct stoke_profile *p);

/* Create or update a thread (the newest name wins; NULL keeps the old one). */
int stoke_profile_thread(struct stoke_profile *p, uint32_t pid, uint32_t tid, const char *name);
/* Threads in the order first seen. */
const struct stoke_pthread *stoke_profile_threads(const struct stoke_profile *p, size_t *ret_n);
/* The thread with this tid, or NULL. */
const struct stoke_pthread *stoke_profile_find_thread(const struct stoke_profile *p, uint32_t tid);

/* The spans table (formats/spans.h), owned and freed by the profile. */
struct stoke_pspans;
struct stoke_pspans *stoke_profile_get_spans(const struct stoke_profile *p);
void stoke_profile_set_spans(struct stoke_profile *p, struct stoke_pspans *t);

struct stoke_pmeta *stoke_profile_meta(struct stoke_profile *p);
const struct stoke_pmeta *stoke_profile_cmeta(const struct stoke_profile *p);

/*
 * Walk a stack from leaf to root, writing frame ids into out (at most max).
 * Returns the depth (which may exceed max; only max are written).
 */
size_t stoke_profile_stack_frames(const struct stoke_profile *p, uint32_t stack,
				  uint32_t *out, size_t max);

/*
 * Add every sample of src (with its frames, stacks and threads) to dst.
 * Metadata: the first merge into an empty dst takes src's event, frequency,
 * call-graph mode and command; later ones widen start/end and add lost and
 * throttled counts. Returns 0, -ENOMEM or -EINVAL.
 */
int stoke_profile_merge(struct stoke_profile *dst, const struct stoke_profile *src);

/* What stoke_profile_copy keeps and how. */
struct stoke_copy_opts {
	const uint32_t *tids; /* keep only these threads' samples (ntids 0: all) */
	size_t ntids;
	bool by_function;     /* one frame per function: line 0, one file */
	uint8_t kind_plus1;   /* keep only samples of kind kind_plus1 - 1
			       * (0: every kind) */
	const uint8_t *keep;  /* per sample (in order): keep it when nonzero;
			       * NULL: every sample */
};

/*
 * A new profile with src's samples, metadata and strings (same ids),
 * filtered and transformed as o says. Returns 0 or -ENOMEM / -EINVAL.
 */
int stoke_profile_copy(const struct stoke_profile *src, const struct stoke_copy_opts *o,
		       struct stoke_profile **ret);
