/*
 * Span probes through the uprobe PMU (include/stoke/span.h for the probes,
 * sampler/usdt.h for finding them). Private to sampler/perf/.
 *
 * Each file with stoke span probes gets, per probe, per CPU and per thread
 * of each target process, one uprobe event, inherited (like the sampling
 * events) by the threads and children the thread creates later: the kernel
 * puts the breakpoint and raises the semaphore (ref_ctr_offset) only in the
 * targets' address spaces, so a process stoke does not profile that maps the
 * same file (another user's, under stoked) keeps its probes a nop. The
 * cost is fds: probes x CPUs x threads at the attach. The hits
 * go to rings of their own, one per CPU, because their sample format
 * (registers and a small stack copy, where the probe's payload is) differs
 * from the sampling events'. Each hit is read into a span blob (a record of
 * a private type, never a perf one) that joins the other rings' records in
 * the reordering, so spans and samples reach the session in one time order.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sampler/perf/reorder.h"
#include "sampler/sample.h"
#include "sampler/sampler.h"

struct stoke_perf_spans;

int stoke_perf_spans_new(const int *cpus, size_t ncpus, size_t page_size,
			 struct stoke_perf_spans **ret);
void stoke_perf_spans_free(struct stoke_perf_spans *sp);
/* A process to put the span probes on (an attached or launched one): every
 * probe enabled so far goes on each of its threads now, later ones when
 * their file is added. Returns 0 or -errno. */
int stoke_perf_spans_add_target(struct stoke_perf_spans *sp, pid_t pid);
/* Enable the span probes of the file at path (each file once, by device and
 * inode) on the targets' threads, and on process pid's (when it is no
 * target: a target's child that maps the file first; pid 0: none).
 * Returns the number of probes enabled (0: none, or already done), or
 * -errno (no uprobe PMU, not allowed). */
int stoke_perf_spans_add_file(struct stoke_perf_spans *sp, const char *path, pid_t pid);
/* Read every span ring into q (as span blobs). Counts into stats. */
int stoke_perf_spans_read(struct stoke_perf_spans *sp, struct stoke_reorder *q,
			  struct stoke_sampler_stats *stats);
/* A blob from stoke_perf_spans_read, back into a neutral record (which
 * borrows from data). Returns false when data is not a span blob. */
bool stoke_perf_spans_blob(const void *data, size_t len, struct stoke_record *out);
void stoke_perf_spans_disable(struct stoke_perf_spans *sp);
