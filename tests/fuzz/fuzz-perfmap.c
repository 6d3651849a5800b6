/*
 * libFuzzer target "perfmap": the JIT symbol-map parser
 * (symbolizer/perfmap.h, /tmp/perf-PID.map as node, python and JVM agents
 * write it) on hostile text. A perf map is written by the target process,
 * so a profiler reading it for another user must not trust it.
 *
 * The input is read as a map through fmemopen. Beyond "does not crash", the
 * target checks the parser's contract: the entry count is bounded by the
 * lines and by STOKE_PERFMAP_MAX_ENTRIES, malformed lines are counted, and a
 * lookup returns a name no longer than STOKE_PERFMAP_MAX_NAME from an entry
 * that starts at or below the address. Lookups probe every line's start
 * address (read with strtoull, so the fuzzer steers them), its neighbours,
 * and the ends of the address space.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolizer/perfmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-perfmap: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static volatile size_t sink;

static void probe(const struct stoke_perfmap *m, uint64_t addr)
{
	uint64_t start = 0;
	const char *name = stoke_perfmap_lookup(m, addr, &start);

	if (!name)
		return;
	REQUIRE(start <= addr);
	REQUIRE(strlen(name) <= STOKE_PERFMAP_MAX_NAME);
	sink += strlen(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stoke_perfmap *m = NULL;
	size_t lines = 0;
	char *text;
	FILE *f;
	int r;

	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	r = stoke_perfmap_parse(f, &m);
	fclose(f);
	if (r < 0) {
		REQUIRE(r == -ENOMEM || r == -EIO);
		return 0;
	}
	REQUIRE(r == 0 && m);

	/* A NUL-terminated copy to find line starts in. */
	text = malloc(size + 1);
	REQUIRE(text);
	memcpy(text, data, size);
	text[size] = '\0';
	for (char *p = text; p < text + size;) {
		char *nl = memchr(p, '\n', (size_t)(text + size - p));
		uint64_t a = strtoull(p, NULL, 16);

		probe(m, a);
		probe(m, a - 1);
		probe(m, a + 1);
		lines++;
		p = nl ? nl + 1 : text + size;
	}
	free(text);
	probe(m, 0);
	probe(m, UINT64_MAX);
	REQUIRE(stoke_perfmap_count(m) <= STOKE_PERFMAP_MAX_ENTRIES);
	REQUIRE(stoke_perfmap_count(m) + stoke_perfmap_malformed(m) <= lines);
	stoke_perfmap_free(m);
	return 0;
}
