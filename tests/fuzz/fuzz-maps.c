/*
 * libFuzzer target "maps": the /proc/PID/maps parser (sampler/maps.h) on
 * hostile text.
 *
 * The input is read as a maps file through fmemopen (stoke_maps_parse) and,
 * line by line, through stoke_maps_parse_line on exact-size heap copies, so
 * ASan sees any read past a line's NUL. Beyond "does not crash", the target
 * checks the parser's contract: an accepted entry has start <= end, only
 * PROT_READ/WRITE/EXEC bits, and a path that is a string inside the line;
 * the count of entries plus malformed lines equals the number of lines.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sampler/maps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-maps: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static volatile size_t sink;

static void check_entry(const struct stoke_maps_entry *e)
{
	REQUIRE(e->start <= e->end);
	REQUIRE((e->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC)) == 0);
	REQUIRE(e->path != NULL);
	sink += strlen(e->path);
}

static int on_entry(const struct stoke_maps_entry *e, void *userdata)
{
	size_t *n = userdata;

	check_entry(e);
	(*n)++;
	return 0;
}

/* Every line (a NUL byte ends what the stream parser sees of a line, as
 * getline keeps it but the parser works on C strings). */
static size_t parse_lines(const uint8_t *data, size_t size, size_t *ret_lines)
{
	size_t good = 0, lines = 0;

	for (size_t pos = 0; pos < size;) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (data + pos)) + 1 : size - pos;
		char *line = malloc(n + 1);
		struct stoke_maps_entry e;

		REQUIRE(line);
		memcpy(line, data + pos, n);
		line[n] = '\0';
		if (stoke_maps_parse_line(line, &e) == 0) {
			REQUIRE(e.path >= line && e.path <= line + n);
			check_entry(&e);
			good++;
		}
		free(line);
		lines++;
		pos += n;
	}
	*ret_lines = lines;
	return good;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t entries = 0, lines, good;
	FILE *f;
	int r;

	good = parse_lines(data, size, &lines);
	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	r = stoke_maps_parse(f, on_entry, &entries);
	fclose(f);
	REQUIRE(r >= 0);
	/* Both paths see the same lines, so they must agree. */
	REQUIRE(entries == good);
	REQUIRE(entries + (size_t)r == lines);
	return 0;
}
