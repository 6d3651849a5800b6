/*
 * Private to symbolizer/: JIT symbol maps in perf's format, as written by
 * node --perf-basic-prof, python3.12 -X perf, the JVM's perf-map-agent and
 * others, to /tmp/perf-PID.map (PID as seen inside the target's namespace).
 *
 * One line per compiled function: "START SIZE NAME", START and SIZE in hex
 * (with or without 0x), NAME running to the end of the line. A later line
 * that overlaps an earlier one wins: the JIT reused the memory.
 *
 * The file is the target user's and grows while the JIT runs, so it is read
 * incrementally: feed() takes whatever bytes were appended (a line cut at
 * the end waits for the rest), commit() makes the new entries visible to
 * lookups. parse() does all three on a FILE* (tests and the fuzzer feed it
 * strings). It is built to take hostile input: malformed lines are skipped
 * and counted, a line longer than STOKE_PERFMAP_MAX_LINE is skipped without
 * being held (a sparse file of zeros is one endless line), and the number of
 * entries and the name length are bounded; the caller bounds the bytes it
 * feeds (STOKE_PERFMAP_MAX_BYTES).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits: names longer than this are cut; maps with more entries stop
 * growing (a JIT that never frees code writes without end); longer lines
 * are skipped; a map is read up to STOKE_PERFMAP_MAX_BYTES (the caller's
 * bound: see jit_reload in symbolizer.c). */
#define STOKE_PERFMAP_MAX_NAME 1024
#define STOKE_PERFMAP_MAX_ENTRIES (4u << 20)
#define STOKE_PERFMAP_MAX_LINE 4096
#define STOKE_PERFMAP_MAX_BYTES (64u << 20)

struct stoke_perfmap;

/* An empty map. Returns 0 or -ENOMEM. */
int stoke_perfmap_new(struct stoke_perfmap **ret);
/* Parse the next len bytes of the file. A line not finished at the end of
 * buf is kept (up to STOKE_PERFMAP_MAX_LINE) for the next call. Returns 0 or
 * -ENOMEM. */
int stoke_perfmap_feed(struct stoke_perfmap *m, const char *buf, size_t len);
/* The file ended: parse the unfinished line too. */
int stoke_perfmap_end(struct stoke_perfmap *m);
/* Make the entries fed so far visible to lookups (sorts the new ones and
 * merges them in). Returns 0 or -ENOMEM (the new entries stay unseen). */
int stoke_perfmap_commit(struct stoke_perfmap *m);

/* Parse f into a new map: new, feed, end and commit. Returns 0, or
 * -ENOMEM, or -EIO on a read error. */
int stoke_perfmap_parse(FILE *f, struct stoke_perfmap **ret);
void stoke_perfmap_free(struct stoke_perfmap *m);

/* The name of the entry containing addr, or NULL. *ret_start (when not NULL)
 * gets the entry's start. The string lives as long as the map. */
const char *stoke_perfmap_lookup(const struct stoke_perfmap *m, uint64_t addr,
				 uint64_t *ret_start);

size_t stoke_perfmap_count(const struct stoke_perfmap *m);
/* Lines that did not parse (too long ones included). */
size_t stoke_perfmap_malformed(const struct stoke_perfmap *m);
/* Bytes of lines skipped for being longer than STOKE_PERFMAP_MAX_LINE. */
uint64_t stoke_perfmap_skipped_bytes(const struct stoke_perfmap *m);
