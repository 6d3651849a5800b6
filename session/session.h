/*
 * A profiling session: one sampler, one symbolizer and one profile, wired
 * together. `stoke record` runs a session in-process; stoked runs several
 * from its event loop. The session does no I/O of its own beyond what the
 * sampler does and the final write.
 *
 * Lifecycle:
 *   stoke_session_new → stoke_session_attach / stoke_session_launch
 *   → (poll stoke_session_pollfds; stoke_session_process) …
 *   → stoke_session_stop → stoke_session_write_* → stoke_session_free
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "formats/output.h"
#include "formats/profile.h"
#include "sampler/sampler.h"
#include "symbolizer/symbolizer.h"

struct stoke_session_opts {
	struct stoke_sampler_opts sampler;
	bool no_kernel_symbols; /* do not read /proc/kallsyms */
	const char *debuginfo_path; /* extra debuginfo roots (colon-separated) */
	enum stoke_demangle_mode demangle;
	/* Whose rights files the target names are opened with: stoked sets
	 * the requester (see stoke_file_creds). */
	struct stoke_file_creds file_creds;
	/* Samples one profile may hold (0: no limit). Past it, processing
	 * fails with -E2BIG: the daemon bounds each session's memory so.
	 * Samples read past it are counted as lost (lost_limit). */
	uint64_t max_samples;
	/* Bounds on the symbolizer's module loading (0: none): modules parsed
	 * and their estimated bytes (see stoke_symbolizer_opts). */
	uint32_t max_modules;
	uint64_t max_module_bytes;
	/* Do not splice Python frames into CPython processes' stacks (#14). */
	bool no_python;
	/* Read kallsyms and the names of each attached process's mapped code
	 * before its events are enabled (stoke_symbolizer_preload_*): for a
	 * caller that names while sampling (stoke top), whose rings would
	 * overflow during those loads. Launched commands get kallsyms only. */
	bool preload_symbols;
};

struct stoke_session_stats {
	uint64_t samples;      /* samples kept (the profile's, once settled) */
	uint64_t lost;         /* every sample lost: lost_kernel + lost_limit */
	uint64_t lost_kernel;  /* dropped by the kernel (ring full: LOST records) */
	uint64_t lost_limit;   /* read past max_samples and dropped */
	uint64_t throttled;
	uint64_t malformed;    /* records that did not decode */
	uint64_t unknown_frames; /* frames without a name, over every sample (as
				  * of the last stop/sync/rotate) */
	/* DWARF mode: samples whose user stack was unwound, and why each walk
	 * ended short of the outermost frame (see stoke_symbolizer_stats). */
	uint64_t unwind_samples;
	uint64_t unwind_truncated;  /* [truncated]: stack copy too small */
	uint64_t unwind_no_cfi;     /* [unwind-failed]: no CFI */
	uint64_t unwind_bad_frame;  /* [unwind-failed]: implausible frame */
	uint64_t unwind_max_depth;  /* [truncated]: frame limit */
	uint64_t unwind_fp_links;   /* frames spliced from frame pointers */
	uint64_t unwind_stitched;   /* truncated stacks stitched complete */
	uint64_t python_samples;    /* samples given Python frames */
	uint64_t python_approx;     /* … of them read after the sample */
	uint32_t modules_capped; /* modules named module+0xoff by a bound */
	uint64_t module_bytes;   /* the symbolizer's estimate for its modules */
	uint32_t threads;      /* threads seen with samples or names */
	uint32_t targets_alive;
};

struct stoke_session;

void stoke_session_opts_init(struct stoke_session_opts *opts);
int stoke_session_new(const struct stoke_session_opts *opts, struct stoke_session **ret);
void stoke_session_free(struct stoke_session *s);
/* Change max_module_bytes; safe while another thread names samples. */
void stoke_session_set_max_module_bytes(struct stoke_session *s, uint64_t max);

/* Attach to a running process (every thread, and threads born later).
 * Returns 0 or -errno (see stoke_sampler_strerror). */
int stoke_session_attach(struct stoke_session *s, pid_t pid);
/* Attach to these threads of process pid only (record -t): see
 * stoke_sampler_attach_threads. */
int stoke_session_attach_threads(struct stoke_session *s, pid_t pid, const pid_t *tids,
				 size_t n);
/* Launch argv with the events opened before exec. *ret_pid is the child; the
 * caller reaps it and tells the session with stoke_session_target_exited. */
int stoke_session_launch(struct stoke_session *s, char *const argv[], pid_t *ret_pid);

/* Ring fds to poll (POLLIN), valid until the next attach/launch. */
int stoke_session_pollfds(const struct stoke_session *s, const int **ret);
/* Drain every ring into the profile. Returns records read or -errno. */
int stoke_session_process(struct stoke_session *s);
/* A target process (attached or launched) ended. */
void stoke_session_target_exited(struct stoke_session *s, pid_t pid);
/* Number of target processes still alive. */
unsigned stoke_session_targets_alive(const struct stoke_session *s);

/* End the recording window now: disable the events (nothing is sampled
 * after this; the profile's end time is now). stoke_session_stop does it
 * when it was not done; calling it first lets the caller stop a launched
 * command before the naming work of the stop. Idempotent. */
void stoke_session_end_window(struct stoke_session *s);

/* End the window (if not done), read what is left, name the samples into
 * the profile and fill its metadata. Idempotent. */
int stoke_session_stop(struct stoke_session *s);

/* For a session that keeps running (stoked's snapshot and continuous mode):
 * drain the rings and fill the profile's metadata (end time, lost, event) so
 * that it can be written now. Returns 0 or -errno. */
int stoke_session_sync(struct stoke_session *s);
/* Sync, then hand the current profile over (*ret, the caller frees it) and
 * start a fresh one with the same metadata and thread names, starting now.
 * The symbolizer and its caches are kept. Lost/throttled counts restart, so
 * each profile reports its own. Returns 0 or -errno (nothing changes). */
int stoke_session_rotate(struct stoke_session *s, struct stoke_profile **ret);

const struct stoke_profile *stoke_session_profile(const struct stoke_session *s);
void stoke_session_get_stats(const struct stoke_session *s, struct stoke_session_stats *ret);
/* The event actually used, and whether it replaced the requested one. */
const char *stoke_session_event_name(const struct stoke_session *s);
bool stoke_session_event_fell_back(const struct stoke_session *s);
bool stoke_session_kernel_dropped(const struct stoke_session *s);

/* The resource timeline (session/resources.h): the targets' RSS and CPU,
 * read every 100 ms while the window is open. The driver bounds its poll
 * timeout by the next reading's time (CLOCK_MONOTONIC ns; 0: none due),
 * and stoke_session_process takes the reading. stoke_session_resources:
 * the points of the profile last settled (stop, sync, rotate), NULL before
 * or when none. */
uint64_t stoke_session_resources_due_ns(const struct stoke_session *s);
const struct stoke_rseries *stoke_session_resources(const struct stoke_session *s);
/* A reading if one is due within half an interval, from a thread other
 * than the one using the session (stoked's loop, on its 100 ms timer,
 * while the session's worker names and writes a rotation). It only
 * touches the resource sampler, under its lock, and never waits for it
 * (-EBUSY). Only while the session is running: not once a stop began. */
int stoke_session_resources_poll(struct stoke_session *s);

/* What run.json needs beyond the profile: the first target's executable
 * path and build-id (valid until stoke_session_free) and the unwind
 * failure counts. */
void stoke_session_run_info(const struct stoke_session *s, struct stoke_run_info *ret);
