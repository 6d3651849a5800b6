/*
 * libFuzzer target "protocol": stoked's request parser (daemon/protocol.h)
 * on hostile bytes, the one input a root daemon takes from other users.
 *
 * The input is one request line. Beyond "does not crash", the target checks
 * the parser's contract: a refusal is -EINVAL, -E2BIG or -ENOMEM with a
 * NUL-terminated one-line reason (which must also make a well-formed error
 * reply, since the daemon echoes it); an accepted request is in range, and
 * formatting it (stoke_request_format, what the client sends) parses back to
 * the same request.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-protocol: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static bool same_double(double a, double b)
{
	return a == b || fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b));
}

static void require_same(const struct stoke_request *a, const struct stoke_request *b)
{
	REQUIRE(a->op == b->op && a->pid == b->pid && a->freq == b->freq);
	REQUIRE(a->event == b->event && a->callgraph == b->callgraph);
	REQUIRE(same_double(a->duration, b->duration) && same_double(a->rotate, b->rotate));
	REQUIRE(a->continuous == b->continuous && a->keep == b->keep);
	REQUIRE(a->per_thread == b->per_thread && a->no_kernel == b->no_kernel);
	REQUIRE(strcmp(a->name, b->name) == 0);
	REQUIRE(a->session == b->session && a->discard == b->discard);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stoke_request req, again;
	char err[256], err2[256];
	char *line, *reply;
	int r;

	memset(err, 0x55, sizeof(err));
	r = stoke_request_parse((const char *)data, size, &req, err, sizeof(err));
	if (r < 0) {
		REQUIRE(r == -EINVAL || r == -E2BIG || r == -ENOMEM);
		REQUIRE(memchr(err, '\0', sizeof(err)) != NULL);
		REQUIRE(err[0] != '\0' && strchr(err, '\n') == NULL);
		reply = stoke_reply_error(-r, err);
		if (reply) {
			size_t n = strlen(reply);

			REQUIRE(n > 0 && reply[n - 1] == '\n' && !memchr(reply, '\n', n - 1));
			free(reply);
		}
		return 0;
	}
	REQUIRE(r == 0);
	REQUIRE(req.op != STOKE_OP_NONE);
	REQUIRE(req.freq <= STOKE_PROTO_FREQ_MAX && req.keep <= STOKE_PROTO_KEEP_MAX);
	REQUIRE(strlen(req.name) <= STOKE_PROTO_NAME_MAX);
	r = stoke_request_format(&req, &line);
	if (r == -ENOMEM)
		return 0;
	REQUIRE(r == 0);
	r = stoke_request_parse(line, strlen(line), &again, err2, sizeof(err2));
	if (r != 0)
		fprintf(stderr, "fuzz-protocol: %s does not parse back: %s\n", line, err2);
	REQUIRE(r == 0);
	require_same(&req, &again);
	free(line);
	return 0;
}
