/*
 * Private to symbolizer/: JIT symbol maps in perf's format, as written by
 * node --perf-basic-prof, python3.12 -X perf, the JVM's perf-map-agent and
 * others, to /tmp/perf-PID.map (PID as seen inside the target's namespace).
 *
 * One line per compiled function: "START SIZE NAME", START and SIZE in hex
 * (with or without 0x), NAME running to the end of the line. A later line
 * that overlaps an earlier one wins: the JIT reused the memory.
 *
 * The parser reads any FILE* (tests and the fuzzer feed it strings); it is
 * built to take hostile input: malformed lines are skipped and counted, and
 * the number of entries and the name length are bounded.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits: names longer than this are cut; maps with more entries stop
 * growing (a JIT that never frees code writes without end). */
#define STOKE_PERFMAP_MAX_NAME 1024
#define STOKE_PERFMAP_MAX_ENTRIES (4u << 20)

struct stoke_perfmap;

/* Parse f into a new map. Returns 0, or -ENOMEM, or -EIO on a read error. */
int stoke_perfmap_parse(FILE *f, struct stoke_perfmap **ret);
void stoke_perfmap_free(struct stoke_perfmap *m);

/* The name of the entry containing addr, or NULL. *ret_start (when not NULL)
 * gets the entry's start. The string lives as long as the map. */
const char *stoke_perfmap_lookup(const struct stoke_perfmap *m, uint64_t addr,
				 uint64_t *ret_start);

size_t stoke_perfmap_count(const struct stoke_perfmap *m);
/* Lines that did not parse. */
size_t stoke_perfmap_malformed(const struct stoke_perfmap *m);
