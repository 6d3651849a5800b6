/*
 * The backend interface: what every sampler (perf/, signal/, bpf/, a test's
 * synthetic one) implements behind struct stoke_sampler.
 *
 * A backend takes samples of target processes and delivers them, with the
 * records that describe those processes (mappings, names, forks, exits, lost
 * counts), as neutral records (sampler/sample.h) through one callback, in
 * time order. An operation a backend cannot do returns -EOPNOTSUPP (a
 * missing function pointer means the same).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sampler/sampler.h"

/* What a backend actually samples (for reports). */
struct stoke_backend_info {
	enum stoke_event event; /* the event opened (after any fallback) */
	bool fell_back;         /* the requested event was replaced */
	bool kernel_dropped;    /* kernel samples refused: user space only */
};

struct stoke_backend_ops {
	enum stoke_sampler_backend kind;
	const char *name;
	/* Set up (no target yet). Returns 0 or -errno. */
	int (*new)(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		   void **ret);
	/* Sample a running process (pid -1: every process, where the backend
	 * can). */
	int (*attach)(void *b, pid_t pid);
	/* Sample only the listed threads of process pid (record -t). */
	int (*attach_threads)(void *b, pid_t pid, const pid_t *tids, size_t n);
	/* Start argv and sample it from its first instruction; the caller
	 * reaps the child. A failed exec leaves nothing open for the child. */
	int (*launch)(void *b, char *const argv[], pid_t *ret_pid);
	/* The fds to poll for POLLIN (data) and POLLHUP (the task exited). */
	int (*pollfds)(const void *b, const int **ret);
	/* Deliver what is ready, in time order; flush: everything held back
	 * too. Returns the number delivered or the callback's error. */
	int (*drain)(void *b, bool flush);
	/* Stop sampling (before the final drain). */
	void (*disable)(void *b);
	void (*get_stats)(const void *b, struct stoke_sampler_stats *ret);
	void (*info)(const void *b, struct stoke_backend_info *ret);
	void (*free)(void *b);
};

/* The built-in backends. */
extern const struct stoke_backend_ops stoke_perf_backend;
extern const struct stoke_backend_ops stoke_signal_backend;
extern const struct stoke_backend_ops stoke_bpf_backend;
