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
 *  - Locations group inline chains, as pprof expects: walking a sample's
 *    stack leaf first, each maximal run of inlined frames together with the
 *    physical (not inlined) frame after it is one Location, whose line[]
 *    lists them innermost first (line[0] the innermost inlined callee, the
 *    last entry the function that physically holds the address). Every
 *    other frame is a Location of its own. A run with no physical frame
 *    after it (a truncated stack, or a frame without a Function after it)
 *    is a Location by itself; a run longer than STOKE_PPROF_MAX_LINES is
 *    cut. Locations are deduplicated by their frame sequence and numbered
 *    1, 2, ... in first-seen order (samples in order, leaf first); frames no
 *    sample holds follow, one Location each, so every frame is in the file.
 *  - a Location's mapping and address are its last frame's: frames of a
 *    module share a Mapping (filename = module path), and the address is
 *    the mapping's synthetic start (1 TiB * mapping id) plus the frame's
 *    module offset less the mapping's lowest offset, which is the
 *    Mapping's file_offset (so the kernel's addresses, kept as offsets of
 *    unnamed kernel frames, fit too); mappings never overlap. A module
 *    whose offsets span 1 TiB or more cannot be written (-ERANGE). Each
 *    Line names a Function
 *    (one per distinct name and file; line = frame line); frames with
 *    neither name, file nor line have no Function and are always a
 *    Line-less Location alone.
 *  - one Sample per distinct (stack, thread), in first-seen order:
 *    location_id leaf first, value [sum of weights, sum * period], labels
 *    thread (string, the thread's name) and thread_id (number). So
 *    go tool pprof -traces lists each stack once.
 *  - the metadata is not in comment[] (go tool pprof prints every comment
 *    above every report) but in the string table's last string:
 *    STOKE_PPROF_META, a NUL, then "stoke.KEY=VALUE" entries each ended by
 *    a NUL. No Profile field references it, so no reader shows it:
 *      stoke.format=3, stoke.strings=N (string_table[0..N-1] is the model's
 *      string table, in id order), stoke.event, stoke.frequency, stoke.period_ns,
 *      stoke.start_ns, stoke.end_ns, stoke.time_first, stoke.time_last,
 *      stoke.callgraph, stoke.command, stoke.pid, stoke.lost,
 *      stoke.throttled.
 *      stoke.timeline=I: string_table[I] has "GROUP,DT[,WEIGHT];" per model
 *      sample in order: the index of its Sample, its perf timestamp less
 *      the previous sample's (signed; the first's less 0) and its weight
 *      when not 1.
 *      stoke.time=wall instead, with --timeline: one Sample per model
 *      sample, in order, with a "time" label (unit nanoseconds): the
 *      wall-clock time, start_ns + (perf timestamp - time_first).
      stoke.threads=I: string_table[I] is the thread table, in the model's
 *      order and including threads without samples: "PID/TID/LEN:NAME"
 *      repeated, NAME being LEN bytes.
 *      stoke.frame_kinds=I: string_table[I] has one character per frame,
 *      in frame-id order: '0' + (kind << 1 | inlined), kind 0 user,
 *      1 kernel, 2 JIT, 3 synthetic.
 *      stoke.location_frames=I: string_table[I] lists, for each Location in
 *      file order, the model frame id of each of its lines (one id for a
 *      Line-less Location): "ID,ID,...;" per Location. A frame's first
 *      occurrence defines it (name, file and line from that Line; module
 *      and offset from that Location's mapping and address), and the
 *      reader interns frames in id order, so frame ids come back equal.
 *      stoke.frame_places=I: string_table[I] holds "ID:MODULE:OFFSET;" for
 *      each frame whose module (a string index) or offset differs from its
 *      first Location's (an inlined frame whose Location is anchored in
 *      another module or at another offset).
 *      Files of stoke.format=2 (the entries as comment[] lines, one Sample
 *      per model sample with a time label) and stoke.format=1 (one Location
 *      per frame, stoke.frames: one kind character per Location) still load.
 *    Only standard profile.proto fields are used (pprof-format, the npm
 *    reader, cannot even skip field numbers above 15).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

/* Lines per Location: the writer cuts longer inline chains, the reader
 * refuses more. */
#define STOKE_PPROF_MAX_LINES 256

/* The head of the metadata string (see above). */
#define STOKE_PPROF_META "stoke.meta"

int stoke_pprof_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		      FILE *out);
/* The uncompressed profile.proto bytes (malloc'd), for tests. */
int stoke_pprof_encode(const struct stoke_profile *p, uint8_t **ret_buf, size_t *ret_len);
/* The same; timeline: one Sample per model sample with a wall-clock "time"
 * label (--timeline) instead of one per stack and thread. */
int stoke_pprof_encode_timeline(const struct stoke_profile *p, bool timeline, uint8_t **ret_buf,
				size_t *ret_len);

/*
 * Read a pprof file (gzipped or plain) written by stoke back into a new
 * model. Profiles from other tools load too (the stoke.* comments are then
 * absent and threads come from the thread/thread_id labels; a Location's
 * line[] becomes that many frames, all but the last inlined). Returns 0 or
 * -EINVAL for malformed input (-ENOMEM, -EIO); on error *ret_err, if given,
 * points to a static one-line reason.
 */
int stoke_pprof_read(FILE *in, struct stoke_profile **ret, const char **ret_err);
int stoke_pprof_decode(const uint8_t *buf, size_t len, struct stoke_profile **ret,
		       const char **ret_err);
