/*
 * A minimal protocol-buffers wire encoder and decoder, enough for
 * profile.proto: varints, length-delimited fields and packed repeated
 * varints. Hand-written because the format is small and stable, and a
 * protobuf runtime would be a large dependency for a dozen fields.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable output buffer with a sticky error (like Redis' rio). */
struct pb_buf {
	uint8_t *data;
	size_t len, cap;
	int error; /* 0 or -ENOMEM, sticky */
};

void pb_bytes(struct pb_buf *b, const void *data, size_t n);
void pb_varint(struct pb_buf *b, uint64_t v);
/* field with wire type 0 (varint); pb_uint_nz skips the default 0 */
void pb_uint(struct pb_buf *b, uint32_t field, uint64_t v);
void pb_uint_nz(struct pb_buf *b, uint32_t field, uint64_t v);
/* field with wire type 2 */
void pb_ldelim(struct pb_buf *b, uint32_t field, const void *data, size_t n);
/* Append a nested message that was built in sub, then empty sub. */
void pb_message(struct pb_buf *b, uint32_t field, struct pb_buf *sub);
void pb_free(struct pb_buf *b);

/* A reader over bytes. Every call checks bounds; a malformed message
 * makes the call return false. */
struct pb_reader {
	const uint8_t *p, *end;
};

struct pb_field {
	uint32_t number;
	uint32_t wire;        /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
	uint64_t value;       /* wire types 0, 1, 5 */
	struct pb_reader sub; /* wire type 2: the payload */
};

bool pb_read_varint(struct pb_reader *r, uint64_t *ret);
/* Next field; false at the end (r->p == r->end) or on malformed input
 * (r->p != r->end). */
bool pb_next(struct pb_reader *r, struct pb_field *ret);
