/*
 * libFuzzer target "pprof": the stored-profile reader behind `stoke report`
 * (formats/pprof.h) on hostile bytes.
 *
 * An input starting with the gzip magic goes through stoke_pprof_read (a
 * FILE*, gunzipped by the reader, as `stoke report` opens files); anything
 * else is plain profile.proto for stoke_pprof_decode. Beyond "does not
 * crash", the target checks the reader's contract: a refusal is -EINVAL,
 * -ENOMEM or -EIO with a reason string; an accepted profile is a model the
 * writer can encode, and that encoding (a stoke-written file) reads back into
 * a model that encodes to the very same bytes, the exact round trip the
 * pprof format promises.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pprof.h"
#include "formats/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-pprof: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static int read_input(const uint8_t *data, size_t size, struct stoke_profile **ret,
		      const char **err)
{
	FILE *f;
	int r;

	if (size < 2 || data[0] != 0x1f || data[1] != 0x8b)
		return stoke_pprof_decode(data, size, ret, err);
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return -ENOMEM;
	r = stoke_pprof_read(f, ret, err);
	fclose(f);
	return r;
}

static void round_trip(const struct stoke_profile *p)
{
	struct stoke_profile *q = NULL;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	const char *err = NULL;
	int r;

	r = stoke_pprof_encode(p, &a, &alen);
	/* The writer refuses module offsets of 2^40 and more (its synthetic
	 * mapping layout), which a foreign file may carry: a clean refusal,
	 * not a reader bug. */
	if (r == -ENOMEM || r == -ERANGE)
		return;
	if (r != 0)
		fprintf(stderr, "fuzz-pprof: cannot encode a model the reader accepted: %s\n",
			strerror(-r));
	REQUIRE(r == 0);
	r = stoke_pprof_decode(a, alen, &q, &err);
	if (r != 0)
		fprintf(stderr, "fuzz-pprof: re-reading our own encoding failed: %s\n",
			err ? err : "(no reason)");
	REQUIRE(r == 0);
	REQUIRE(stoke_pprof_encode(q, &b, &blen) == 0);
	REQUIRE(alen == blen && memcmp(a, b, alen) == 0);
	stoke_profile_free(q);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stoke_profile *p = NULL;
	const char *err = NULL;
	int r;

	r = read_input(data, size, &p, &err);
	if (r < 0) {
		REQUIRE(r == -EINVAL || r == -ENOMEM || r == -EIO);
		REQUIRE(r != -EINVAL || (err && *err));
		return 0;
	}
	REQUIRE(r == 0 && p);
	round_trip(p);
	stoke_profile_free(p);
	return 0;
}
