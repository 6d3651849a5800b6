/*
 * pprof (profile.proto, gzipped): the canonical stored profile.
 *
 * The writer emits everything the model holds, so that `stoke report` can
 * read the file back (stoke_pprof_read) into an equal model and render every
 * other format byte-identically. How the model maps onto profile.proto:
 *
 *  - sample_type [samples/count, cpu/nanoseconds], period_type
 *    cpu/nanoseconds, period = meta.period_ns, time_nanos = meta.start_ns,
 *    duration_nanos = end - start.
 *  - one Location per frame, ids = frame ids, written in id order; its single
 *    Line names a Function (name, filename = frame file, line = frame line);
 *    unknown frames have no Line. Frames of a module share a Mapping
 *    (filename = module path); Location.address is the mapping's synthetic
 *    start (1 TiB * mapping id) plus the frame's module offset, so mappings
 *    never overlap.
 *  - one Sample per model sample, in model order: location_id leaf first,
 *    value [weight, weight * period], labels thread (string, the thread's
 *    name), thread_id (number), and time (number, unit "nanoseconds": the
 *    perf timestamp).
 *  - comment[] holds "stoke.KEY=VALUE" lines for the metadata and the thread
 *    table (go tool pprof -comments shows them):
 *      stoke.format=1, stoke.strings=N (string_table[0..N-1] is the model's
 *      string table, in id order), stoke.event, stoke.frequency, stoke.period_ns,
 *      stoke.start_ns, stoke.end_ns, stoke.time_first, stoke.time_last,
 *      stoke.callgraph, stoke.command, stoke.pid, stoke.lost,
 *      stoke.throttled.
 *      stoke.threads=I: string_table[I] is the thread table, in the model's
 *      order and including threads without samples: "PID/TID/LEN:NAME"
 *      repeated, NAME being LEN bytes.
 *      stoke.frames=I: string_table[I] has one character per Location, in
 *      order: '0' + (kind << 1 | inlined), kind 0 user, 1 kernel, 2 JIT,
 *      3 synthetic.
 *    Only standard profile.proto fields are used (pprof-format, the npm
 *    reader, cannot even skip field numbers above 15).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "output.h"
#include "profile.h"

int stoke_pprof_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		      FILE *out);
/* The uncompressed profile.proto bytes (malloc'd), for tests. */
int stoke_pprof_encode(const struct stoke_profile *p, uint8_t **ret_buf, size_t *ret_len);

/*
 * Read a pprof file (gzipped or plain) written by stoke back into a new
 * model. Profiles from other tools load too (the stoke.* comments are then
 * absent and threads come from the thread/thread_id labels). Returns 0 or
 * -EINVAL for malformed input (-ENOMEM, -EIO); on error *ret_err, if given,
 * points to a static one-line reason.
 */
int stoke_pprof_read(FILE *in, struct stoke_profile **ret, const char **ret_err);
int stoke_pprof_decode(const uint8_t *buf, size_t len, struct stoke_profile **ret,
		       const char **ret_err);
