/*
 * Span probes through the uprobe PMU (include/stoke/span.h for the probes,
 * sampler/usdt.h for finding them). Private to sampler/perf/.
 *
 * Each file with stoke span probes gets, per probe and per CPU, one uprobe
 * event of every process (pid -1): the kernel puts the breakpoint and raises
 * the semaphore (ref_ctr_offset) wherever the file is mapped, and the
 * sampler keeps only its targets' hits (as it does for samples). The hits
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

#include "sampler/perf/reorder.h"
#include "sampler/sample.h"
#include "sampler/sampler.h"

struct stoke_perf_spans;

int stoke_perf_spans_new(const int *cpus, size_t ncpus, size_t page_size,
			 struct stoke_perf_spans **ret);
void stoke_perf_spans_free(struct stoke_perf_spans *sp);
/* Enable the span probes of the file at path (each file once, by device and
 * inode). Returns the number of probes enabled (0: none, or already done),
 * or -errno (no uprobe PMU, not allowed). */
int stoke_perf_spans_add_file(struct stoke_perf_spans *sp, const char *path);
/* Read every span ring into q (as span blobs). Counts into stats. */
int stoke_perf_spans_read(struct stoke_perf_spans *sp, struct stoke_reorder *q,
			  struct stoke_sampler_stats *stats);
/* A blob from stoke_perf_spans_read, back into a neutral record (which
 * borrows from data). Returns false when data is not a span blob. */
bool stoke_perf_spans_blob(const void *data, size_t len, struct stoke_record *out);
void stoke_perf_spans_disable(struct stoke_perf_spans *sp);
