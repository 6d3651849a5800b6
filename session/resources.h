/*
 * The resource timeline's sampler: every interval, the resident memory
 * and CPU time of the processes a session follows (its targets and the
 * processes they fork), read from /proc/PID/stat, into a series
 * (formats/resource.h). It runs on the session's own wakeups: the driver
 * asks when the next reading is due (stoke_rsampler_next_ns) and bounds its
 * poll timeout by it, so nothing wakes the loop for it in between.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "formats/resource.h"

struct stoke_rsampler;

/* interval_ns 0: the default, 100 ms. Returns 0 or -ENOMEM. */
int stoke_rsampler_new(uint64_t interval_ns, struct stoke_rsampler **ret);
void stoke_rsampler_free(struct stoke_rsampler *r);
/* Follow process pid (its threads are in its /proc/PID/stat). born: it
 * was forked while followed, so all of its CPU time counts (else only
 * what it uses from its first reading on). A pid already followed is not
 * added twice. Returns 0 or -ENOMEM. */
int stoke_rsampler_add(struct stoke_rsampler *r, pid_t pid, bool born);
/* CLOCK_MONOTONIC ns when the next reading is due; 0 when no process is
 * followed (nothing to wait for). */
uint64_t stoke_rsampler_next_ns(const struct stoke_rsampler *r);
/* Take a reading if one is due at now_ns (or force it). A process that
 * has exited is dropped, silently: a target may exit at any time. Returns
 * 0 or -ENOMEM. */
int stoke_rsampler_tick(struct stoke_rsampler *r, uint64_t now_ns, bool force);
/* The series so far (NULL when it has no point). */
const struct stoke_rseries *stoke_rsampler_series(const struct stoke_rsampler *r);
