/*
 * The eBPF sampler (bpfprof.c): per-CPU cpu-clock events with a BPF program
 * attached that aggregates (process, thread, kernel stack, user FP stack)
 * → count in a kernel hash map, and, with --off-cpu, sched_switch programs
 * that add the time each thread spent blocked, with the stack where it
 * blocked. User space reads and clears the map about once a second and
 * delivers the same decoded records the perf_event sampler does (SAMPLE
 * with a perf-style callchain, MMAP from /proc/PID/maps, COMM), one SAMPLE
 * per sample the aggregate stands for, so the pipeline needs no change.
 *
 * System-wide (attach pid -1) or filtered in the kernel by tgid (attach
 * PID: that process and the processes it forks later). stoke_sampler
 * (sampler.h) dispatches to it when opts.backend is STOKE_BACKEND_BPF.
 * Without libbpf/bpftool at build time every call fails with -EOPNOTSUPP.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sampler/sampler.h"

struct stoke_bpf_sampler;

#ifdef STOKE_HAVE_BPF
/* Returns 0 or -errno: -ENOTSUP without kernel BTF, -EPERM without the
 * right to load BPF (both explained by stoke_bpf_strerror). */
int stoke_bpf_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		  struct stoke_bpf_sampler **ret);
/* Detaches and closes everything. Accepts NULL. */
void stoke_bpf_free(struct stoke_bpf_sampler *b);
/* pid -1: every process; else this process (and its later children).
 * The programs load and start on the first call. Returns 0 or -errno. */
int stoke_bpf_attach(struct stoke_bpf_sampler *b, pid_t pid);
/* The ring buffer's epoll fd: POLLIN when a new process shows up. */
int stoke_bpf_pollfds(const struct stoke_bpf_sampler *b, const int **ret);
/* Announce new processes; read and clear the counts map when a period
 * has passed (flush: now). Returns records delivered or the callback's
 * negative value. */
int stoke_bpf_drain(struct stoke_bpf_sampler *b, bool flush);
void stoke_bpf_disable(struct stoke_bpf_sampler *b);
void stoke_bpf_get_stats(const struct stoke_bpf_sampler *b, struct stoke_sampler_stats *ret);
/* A one-line reason for an error of stoke_bpf_new/attach, or NULL when err
 * is not one of the BPF sampler's own. */
const char *stoke_bpf_strerror(int err);
#else
static inline int stoke_bpf_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb,
				void *userdata, struct stoke_bpf_sampler **ret)
{
	return -EOPNOTSUPP;
}
static inline void stoke_bpf_free(struct stoke_bpf_sampler *b)
{
}
static inline int stoke_bpf_attach(struct stoke_bpf_sampler *b, pid_t pid)
{
	return -EOPNOTSUPP;
}
static inline int stoke_bpf_pollfds(const struct stoke_bpf_sampler *b, const int **ret)
{
	return 0;
}
static inline int stoke_bpf_drain(struct stoke_bpf_sampler *b, bool flush)
{
	return 0;
}
static inline void stoke_bpf_disable(struct stoke_bpf_sampler *b)
{
}
static inline void stoke_bpf_get_stats(const struct stoke_bpf_sampler *b,
				       struct stoke_sampler_stats *ret)
{
}
static inline const char *stoke_bpf_strerror(int err)
{
	return err == -EOPNOTSUPP ? "stoke was built without the BPF sampler (libbpf, bpftool "
				    "and clang are needed at build time)"
				  : NULL;
}
#endif
