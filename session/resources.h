/*
 * The resource timeline's sampler: every interval, the resident memory
 * and CPU time of the processes a session follows (its targets and the
 * processes they fork), read from /proc/PID/stat, into a series
 * (formats/resource.h). It runs on the session's own wakeups: the driver
 * asks when the next reading is due (stoke_rsampler_next_ns) and bounds its
 * poll timeout by it, so nothing wakes the loop for it in between. stoked
 * reads on its loop thread (stoke_rsampler_try_tick) whatever the session's
 * worker is doing, and its writers take a snapshot. Every function may be
 * called from any thread.
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
 * added twice; past 64 processes none is added (counted, see
 * stoke_rsampler_not_followed). Returns 0 or -ENOMEM. */
int stoke_rsampler_add(struct stoke_rsampler *r, pid_t pid, bool born);
/* Processes not followed because 64 already were. */
uint64_t stoke_rsampler_not_followed(struct stoke_rsampler *r);
/* CLOCK_MONOTONIC ns when the next reading is due; 0 when no process is
 * followed (nothing to wait for). */
uint64_t stoke_rsampler_next_ns(struct stoke_rsampler *r);
/* Take a reading if one is due at now_ns (or force it). A process that
 * has exited is dropped, silently: a target may exit at any time. Returns
 * 0 or -ENOMEM. */
int stoke_rsampler_tick(struct stoke_rsampler *r, uint64_t now_ns, bool force);
/* For a caller woken by a periodic timer of the sampler's interval
 * (stoked's loop): a reading if one is due within half an interval (a
 * timer tick just before the due time would else skip a whole interval);
 * the cadence is kept all the same. Never waits: -EBUSY when another
 * thread holds the sampler (it is reading, or copying the series). */
int stoke_rsampler_try_tick(struct stoke_rsampler *r, uint64_t now_ns);
/* The series so far (NULL when it has no point), for a caller that alone
 * uses the sampler (no other thread may tick or add meanwhile). */
const struct stoke_rseries *stoke_rsampler_series(const struct stoke_rsampler *r);
/* A copy of the series' points from from_wall_ns (CLOCK_REALTIME; 0: all)
 * into *ret (freed with stoke_rseries_free; no points: empty), and the
 * sampler forgets the older ones: a session writes only profiles that
 * start at or after from_wall_ns from then on. Returns 0 or -ENOMEM. */
int stoke_rsampler_snapshot(struct stoke_rsampler *r, uint64_t from_wall_ns,
			    struct stoke_rseries *ret);
