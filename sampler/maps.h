/*
 * Parser for /proc/PID/maps.
 *
 * The parser takes any FILE* (so tests feed it a string with fmemopen) and
 * calls back once per line. A wrapper opens /proc/PID/maps. Lines that do not
 * parse are skipped and counted.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct stoke_maps_entry {
	uint64_t start, end, pgoff;
	uint32_t maj, min;
	uint64_t ino;
	uint32_t prot;      /* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;        /* 's' rather than 'p' */
	const char *path;   /* "" for anonymous; "[vdso]", "[stack]", …; file
			     * paths may end in " (deleted)". Borrowed for the
			     * duration of the callback. */
};

/* Return 0 to continue, anything else to stop (and be returned). */
typedef int (*stoke_maps_cb)(const struct stoke_maps_entry *e, void *userdata);

/* Returns the callback's non-zero value, or the number of malformed lines
 * skipped (>= 0), or -errno on a read error. */
int stoke_maps_parse(FILE *f, stoke_maps_cb cb, void *userdata);
/* Parse one line (no trailing newline needed). Returns 0 or -EINVAL. The
 * path points into line. */
int stoke_maps_parse_line(char *line, struct stoke_maps_entry *ret);
/* The MMAP record (sampler/sample.h) a sampler delivers for this mapping of pid
 * (filename borrowed from e). */
struct stoke_record;
void stoke_maps_entry_to_record(const struct stoke_maps_entry *e, uint32_t pid,
				struct stoke_record *ret);
/* Opens /proc/PID/maps. Returns as stoke_maps_parse, or -ESRCH/-EACCES/… */
int stoke_maps_read_pid(pid_t pid, stoke_maps_cb cb, void *userdata);
