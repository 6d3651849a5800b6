/*
 * The string interner (see strpool.h): strings copied into big chunks, found
 * again through common/hashmap over the list of strings.
 */
#include "common/strpool.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/util.h"

#define POOL_CHUNK_SIZE (64 * 1024)

struct pool_chunk {
	struct pool_chunk *next;
	size_t used, cap;
	char data[];
};

struct stoke_strpool {
	struct pool_chunk *chunks;
	const char **strs; /* in the order interned */
	size_t count, strs_cap;
	struct stoke_hashmap index; /* hash -> position in strs + 1 */
};

int stoke_strpool_new(struct stoke_strpool **ret)
{
	struct stoke_strpool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

void stoke_strpool_free(struct stoke_strpool *p)
{
	if (!p)
		return;
	while (p->chunks) {
		struct pool_chunk *next = p->chunks->next;

		free(p->chunks);
		p->chunks = next;
	}
	free(p->strs);
	stoke_hashmap_free(&p->index);
	free(p);
}

static char *pool_alloc(struct stoke_strpool *p, size_t size)
{
	struct pool_chunk *c = p->chunks;

	if (!c || c->cap - c->used < size) {
		size_t cap = STOKE_MAX((size_t)POOL_CHUNK_SIZE, size);

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		/* A big string gets its own chunk behind the current one, so
		 * the current one keeps filling up. */
		if (p->chunks && cap > POOL_CHUNK_SIZE) {
			c->next = p->chunks->next;
			p->chunks->next = c;
		} else {
			c->next = p->chunks;
			p->chunks = c;
		}
	}
	c->used += size;
	return c->data + c->used - size;
}

const char *stoke_strpool_intern_n(struct stoke_strpool *p, const char *s, size_t len)
{
	uint64_t h = stoke_hash_bytes(STOKE_HASH_INIT, s, len);
	struct stoke_hashmap_iter it;
	char *copy;

	for (uint32_t id = stoke_hashmap_first(&p->index, h, &it); id;
	     id = stoke_hashmap_next(&p->index, &it)) {
		const char *t = p->strs[id - 1];

		if (strncmp(t, s, len) == 0 && t[len] == '\0')
			return t;
	}
	if (p->count >= UINT32_MAX || stoke_hashmap_reserve(&p->index, 1) < 0 ||
	    STOKE_GROW(p->strs, p->strs_cap, p->count + 1) < 0)
		return NULL;
	copy = pool_alloc(p, len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	p->strs[p->count++] = copy;
	stoke_hashmap_put(&p->index, h, (uint32_t)p->count);
	return copy;
}

const char *stoke_strpool_intern(struct stoke_strpool *p, const char *s)
{
	return stoke_strpool_intern_n(p, s, strlen(s));
}
