/*
 * Protocol-buffers wire format helpers (see pb.h).
 */
#include "formats/pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void pb_bytes(struct pb_buf *b, const void *data, size_t n)
{
	if (b->error || n == 0)
		return;
	if (n > SIZE_MAX - b->len || STOKE_GROW(b->data, b->cap, b->len + n) < 0) {
		b->error = -ENOMEM;
		return;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
}

void pb_varint(struct pb_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	pb_bytes(b, tmp, n);
}

void pb_uint(struct pb_buf *b, uint32_t field, uint64_t v)
{
	pb_varint(b, (uint64_t)field << 3);
	pb_varint(b, v);
}

void pb_uint_nz(struct pb_buf *b, uint32_t field, uint64_t v)
{
	if (v)
		pb_uint(b, field, v);
}

void pb_ldelim(struct pb_buf *b, uint32_t field, const void *data, size_t n)
{
	pb_varint(b, (uint64_t)field << 3 | 2);
	pb_varint(b, n);
	pb_bytes(b, data, n);
}

void pb_message(struct pb_buf *b, uint32_t field, struct pb_buf *sub)
{
	if (sub->error && !b->error)
		b->error = sub->error;
	pb_ldelim(b, field, sub->data, sub->len);
	sub->len = 0;
}

void pb_free(struct pb_buf *b)
{
	free(b->data);
	*b = (struct pb_buf){ 0 };
}

bool pb_read_varint(struct pb_reader *r, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t c;

		if (r->p >= r->end)
			return false;
		c = *r->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*ret = v;
			return true;
		}
	}
	return false; /* more than 10 bytes */
}

bool pb_next(struct pb_reader *r, struct pb_field *ret)
{
	uint64_t key, n;

	if (r->p >= r->end || !pb_read_varint(r, &key))
		return false;
	if ((key >> 3) == 0 || (key >> 3) > UINT32_MAX) {
		r->p = NULL; /* field 0 is invalid: mark malformed */
		return false;
	}
	ret->number = (uint32_t)(key >> 3);
	ret->wire = (uint32_t)(key & 7);
	ret->value = 0;
	ret->sub = (struct pb_reader){ 0 };
	switch (ret->wire) {
	case 0:
		if (!pb_read_varint(r, &ret->value))
			goto bad;
		return true;
	case 1:
	case 5:
		n = ret->wire == 1 ? 8 : 4;
		if ((size_t)(r->end - r->p) < n)
			goto bad;
		for (unsigned i = 0; i < n; i++)
			ret->value |= (uint64_t)r->p[i] << (8 * i);
		r->p += n;
		return true;
	case 2:
		if (!pb_read_varint(r, &n) || n > (size_t)(r->end - r->p))
			goto bad;
		ret->sub = (struct pb_reader){ r->p, r->p + n };
		r->p += n;
		return true;
	default:
		goto bad;
	}
bad:
	r->p = NULL;
	return false;
}
