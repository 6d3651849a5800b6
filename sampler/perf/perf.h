/*
 * The perf_event backend (see sampler/backend.h for the interface, and
 * sampler/sampler.h for what each operation means). Events are opened per
 * (thread, CPU) with inherit=1, so threads the target creates later are
 * sampled too; the kernel refuses mmap on inherited per-thread (cpu == -1)
 * events, which is why they are per CPU. Each CPU has one ring buffer;
 * every other event on that CPU is redirected into it with
 * PERF_EVENT_IOC_SET_OUTPUT.
 *
 * Nothing here leaks perf's types: records leave as neutral ones
 * (sampler/sample.h).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "sampler/backend.h"
#include "sampler/sampler.h"

struct stoke_perf_sampler;

int stoke_perf_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		   struct stoke_perf_sampler **ret);
void stoke_perf_free(struct stoke_perf_sampler *s);
int stoke_perf_attach(struct stoke_perf_sampler *s, pid_t pid);
int stoke_perf_attach_threads(struct stoke_perf_sampler *s, pid_t pid, const pid_t *tids,
			      size_t n);
int stoke_perf_launch(struct stoke_perf_sampler *s, char *const argv[], pid_t *ret_pid);
int stoke_perf_pollfds(const struct stoke_perf_sampler *s, const int **ret);
int stoke_perf_drain(struct stoke_perf_sampler *s, bool flush);
void stoke_perf_disable(struct stoke_perf_sampler *s);
void stoke_perf_get_stats(const struct stoke_perf_sampler *s, struct stoke_sampler_stats *ret);
void stoke_perf_info(const struct stoke_perf_sampler *s, struct stoke_backend_info *ret);
/* A per-CPU cpu-clock event of every process, sampling at freq Hz, not yet
 * counting anything into a ring (the bpf sampler attaches its program to
 * it). Returns the fd, or -errno (-ENODEV: an offline CPU). */
int stoke_perf_open_cpu_clock(int cpu, unsigned freq, bool exclude_kernel);
/* Stop an event counting (PERF_EVENT_IOC_DISABLE). */
void stoke_perf_disable_fd(int fd);
/* Whether perf_event_open works here for this user (a probe on ourselves):
 * 0, or the -errno it fails with. */
int stoke_perf_probe(void);
