/*
 * Span events (sampler/sample.h STOKE_REC_SPAN) into completed spans in a
 * profile (formats/spans.h): a stack of open spans per thread. An end closes
 * the innermost open span of its name on its thread (and counts the spans
 * above it, left open, as unmatched); an end with no such span is counted
 * too. Spans open when the recording stops are counted, not kept.
 */
#pragma once

#include <stdint.h>

#include "formats/profile.h"
#include "formats/spans.h"
#include "sampler/sample.h"

struct stoke_span_tracker;

void stoke_span_tracker_free(struct stoke_span_tracker *t);
/* Returns 0, or -ENOMEM (*t is created on first use). */
int stoke_span_tracker_event(struct stoke_span_tracker **t, struct stoke_profile *p,
			     const struct stoke_span_event *ev);
/* The recording ended: count the spans still open into p. */
int stoke_span_tracker_finish(struct stoke_span_tracker *t, struct stoke_profile *p);
