/*
 * The sampler: takes samples of target processes through one backend
 * (sampler/backend.h: perf/, signal/, bpf/, or a caller's) and delivers
 * neutral records (sampler/sample.h: samples, mmaps, comms, forks, exits,
 * lost and throttle records) to one callback, in time order. It has no
 * symbol knowledge.
 *
 * stoke_sampler_attach_threads (record -t) samples the listed threads only
 * (perf: their events without inherit, as perf's -t does).
 *
 * Records that describe state which existed before the attach (the mappings
 * in /proc/PID/maps, thread names) are synthesized and delivered through the
 * same callback, before any sample of that process.
 *
 * Only records of target processes are delivered: the attached and launched
 * ones and the processes they fork. The sampler runs as root in stoked, and a
 * TID listed in /proc/PID/task may belong to another process by the time its
 * event is opened; such events are closed, and anything of another process
 * that reached a ring anyway is dropped and counted (stats.foreign). How
 * perf's events and rings are laid out: sampler/perf/perf.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sampler/sample.h"

struct stoke_backend_ops;

enum stoke_event {
	STOKE_EVENT_CPU_CLOCK,
	STOKE_EVENT_TASK_CLOCK,
	STOKE_EVENT_CYCLES,
	STOKE_EVENT_WALL, /* signal sampler only: wall-clock time, on or off CPU */
};

/* Which sampler takes the samples (see "Signal sampler" in README.md). */
enum stoke_sampler_backend {
	STOKE_BACKEND_AUTO,   /* perf_event where allowed; else, for a launched
			       * command, the signal sampler */
	STOKE_BACKEND_PERF,   /* perf_event_open */
	STOKE_BACKEND_SIGNAL, /* an agent in the launched command (signal/) */
	STOKE_BACKEND_BPF,    /* per-CPU events aggregated by BPF (bpf/): -a,
			       * -p PID, --off-cpu */
};

enum stoke_callgraph {
	STOKE_CALLGRAPH_FP,    /* kernel callchain (frame pointers) */
	STOKE_CALLGRAPH_DWARF, /* regs + user stack copy, unwound later */
};

/*
 * The default DWARF user-stack copy, in bytes: the kernel's limit. perf's
 * default is 8192, which cuts the stacks of ordinary deep programs
 * (sqlite3, bzip2, clang: 0-40% complete). 32 KB still cut clang's and
 * gcc's (LLVM passes, GCC 12's ranger with 12-20 KB frames: reads at 32-56
 * KB above SP; 96.9% and 98.6% complete with stitching); 65528 holds them
 * (100% and 99.7%), with no measurable change in the target's CPU time and
 * no lost samples in the real-program suite.
 */
#define STOKE_DWARF_STACK_DEFAULT 65528

struct stoke_sampler_opts {
	enum stoke_event event;
	unsigned freq;            /* samples per second per thread; default 999 */
	enum stoke_callgraph callgraph;
	uint32_t stack_size;      /* DWARF user-stack copy; default
				   * STOKE_DWARF_STACK_DEFAULT */
	uint32_t ring_pages;      /* data pages per CPU ring (power of 2); 0 = auto */
	bool exclude_kernel;      /* no kernel samples/callchains */
	enum stoke_sampler_backend backend; /* default AUTO */
	/* A backend of the caller's (a test's synthetic one), used instead
	 * of the built-in ones; backend is ignored then. */
	const struct stoke_backend_ops *custom;
	int signal_number;        /* signal sampler: the real-time signal the
				   * agent takes; 0 = $STOKE_SIGNAL_NUMBER or
				   * SIGRTMIN+6 */
	/* BPF sampler (bpf/bpf_sampler.h) */
	bool off_cpu;             /* also time blocked, with the blocked stack */
	uint64_t off_cpu_min_ns;  /* shorter blocks are not counted */
	uint32_t bpf_map_entries; /* counts/stacks map sizes; 0 = 16384 */
	/* perf sampler: a BPF program (BPF_PROG_TYPE_PERF_EVENT) run on every
	 * sample, attached to each event it opens (the CPython frame reader,
	 * stack/cpython/source.h); 0: none. It must return 1: 0 drops the
	 * sample. */
	int overflow_prog_fd;
	/* perf sampler: do not enable the span probes (include/stoke/span.h)
	 * of the target's modules (--no-spans); spans are on by default. */
	bool no_spans;
};

/* Called for every record, synthesized or read from a ring. The record and
 * what it points to are valid only during the call. Return 0 to continue, or
 * a negative errno to stop the current drain (it is returned by it). */
typedef int (*stoke_sampler_cb)(const struct stoke_record *rec, void *userdata);

struct stoke_sampler;

struct stoke_sampler_stats {
	uint64_t records;
	uint64_t samples;
	uint64_t lost;        /* samples the kernel dropped (PERF_RECORD_LOST) */
	uint64_t throttled;   /* THROTTLE records */
	uint64_t malformed;   /* records that did not decode */
	uint32_t events;      /* event fds open */
	uint32_t rings;
	uint32_t threads_attached; /* threads found in /proc at attach */
	uint32_t tids_left;   /* threads whose TID left the process between the
			       * scan and the open (not profiled) */
	uint64_t foreign;     /* samples of processes that are not targets
			       * (dropped): nothing of another process is
			       * delivered, whatever an event saw */
	/* BPF sampler only */
	uint64_t off_cpu_ns;      /* off-CPU time read */
	uint64_t bpf_stack_lost;  /* stacks the stack map had no room for */
	uint64_t bpf_run_ns;      /* CPU time of the BPF programs (bpf_stats) */
	uint64_t bpf_run_cnt;     /* times they ran */
	uint64_t bpf_elapsed_ns;  /* since they started */
	/* Spans (perf sampler): probes enabled, span events delivered, and
	 * events lost (the kernel's LOST in a span ring, or a hit whose
	 * payload could not be read). */
	uint32_t span_probes;
	uint64_t span_events;
	uint64_t span_lost;
};

/* Fill opts with the defaults. */
void stoke_sampler_opts_init(struct stoke_sampler_opts *opts);

/* Returns 0 or -errno. */
int stoke_sampler_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb,
		      void *userdata, struct stoke_sampler **ret);
/* Closes every event and unmaps every ring. Accepts NULL. */
void stoke_sampler_free(struct stoke_sampler *s);

/*
 * Attach to every thread of a running process, rescanning /proc/PID/task
 * until no new thread appears, and synthesize its existing mappings and
 * thread names. Events start enabled. Returns 0, or -ESRCH (no such process),
 * -EACCES/-EPERM (not allowed: see stoke_sampler_strerror), -EMFILE, …
 */
int stoke_sampler_attach(struct stoke_sampler *s, pid_t pid);
/*
 * Attach to the listed threads of process pid only (perf's -t): one event
 * per (thread, CPU) without inherit, so other and later threads are not
 * sampled. Every TID must be a thread of pid (checked after the open);
 * otherwise -ESRCH and nothing of it is sampled.
 */
int stoke_sampler_attach_threads(struct stoke_sampler *s, pid_t pid, const pid_t *tids,
				 size_t n);

/*
 * Launch argv[0] (searched in PATH) with argv: fork, hold the child on a
 * pipe, open its events with enable_on_exec, then let it exec. Returns 0 and
 * the child's pid in *ret_pid, or -ENOENT/-EACCES when the command cannot be
 * executed (the child is reaped), or another -errno. The caller reaps the
 * child with waitpid.
 */
int stoke_sampler_launch(struct stoke_sampler *s, char *const argv[], pid_t *ret_pid);

/* The event that was actually opened (cycles falls back to cpu-clock where
 * there is no PMU) and its name, for reports. */
enum stoke_event stoke_sampler_event(const struct stoke_sampler *s);
const char *stoke_event_name(enum stoke_event e);
/* The one event-name parser (the CLI and stoked's protocol): "cpu-clock",
 * "task-clock", "cycles" (or perf's "cpu-cycles"), "wall". Returns 0 or
 * -EINVAL. */
int stoke_event_parse(const char *s, enum stoke_event *ret);
/* The sampler in use: PERF or SIGNAL (AUTO is resolved by launch/attach). */
enum stoke_sampler_backend stoke_sampler_backend(const struct stoke_sampler *s);
/* Whether perf_event_open works here for this user (a probe on ourselves):
 * 0, or the -errno it fails with. */
int stoke_sampler_perf_probe(void);
/* True when the requested event was replaced by a fallback. */
bool stoke_sampler_fell_back(const struct stoke_sampler *s);
/* True when kernel samples were refused (perf_event_paranoid) and the events
 * were opened for user space only. */
bool stoke_sampler_kernel_dropped(const struct stoke_sampler *s);

/*
 * The fds to poll for POLLIN (data) and POLLHUP (the event's task exited).
 * Returns the count; *ret points at an internal array valid until the next
 * attach/launch.
 */
int stoke_sampler_pollfds(const struct stoke_sampler *s, const int **ret);

/*
 * Read every ring until empty and deliver the records in timestamp order
 * across rings. Records newer than what earlier drains saw are held back
 * until the next drain, since an older record may still be on its way in
 * another ring. Returns the number of records delivered, or the callback's
 * negative value, or -ENOMEM.
 */
int stoke_sampler_drain(struct stoke_sampler *s);
/* Like stoke_sampler_drain, but delivers every record held back too. Use it
 * after stoke_sampler_disable, at the end. */
int stoke_sampler_flush(struct stoke_sampler *s);

/* Disable every event (before the final drain). */
void stoke_sampler_disable(struct stoke_sampler *s);

void stoke_sampler_get_stats(const struct stoke_sampler *s, struct stoke_sampler_stats *ret);

/* A one-line explanation of an attach/launch error, with the fix where there
 * is one (perf_event_paranoid, CAP_PERFMON, perf_event_mlock_kb). */
const char *stoke_sampler_strerror(int err);

/*
 * Parse a call-graph mode: "fp", "dwarf" (STOKE_DWARF_STACK_DEFAULT-byte
 * stack copies),
 * "dwarf,BYTES" (8..65528, a multiple of 8) or "auto" (DWARF unwinding of
 * every user stack: right with and without frame pointers). Returns 0 or
 * -EINVAL.
 */
int stoke_callgraph_parse(const char *s, enum stoke_callgraph *ret_mode,
			  uint32_t *ret_stack_size);
/* The canonical text of a mode ("fp", "dwarf" or "dwarf,BYTES") in buf. */
const char *stoke_callgraph_format(enum stoke_callgraph mode, uint32_t stack_size, char *buf,
				   size_t size);
