/*
 * The string interner (see strpool.h): strings copied into big chunks, found
 * again through an open-addressing table of (hash, string).
 */
#include "common/strpool.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define POOL_CHUNK_SIZE (64 * 1024)

struct pool_chunk {
	struct pool_chunk *next;
	size_t used, cap;
	char data[];
};

struct pool_slot {
	uint64_t hash;
	const char *str; /* NULL: empty slot */
};

struct stoke_strpool {
	struct pool_chunk *chunks;
	struct pool_slot *slots; /* open addressing, power-of-two size */
	size_t nslots, count;
};

int stoke_strpool_new(struct stoke_strpool **ret)
{
	struct stoke_strpool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->nslots = 1024;
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->slots) {
		free(p);
		return -ENOMEM;
	}
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
	free(p->slots);
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

static int pool_rehash(struct stoke_strpool *p)
{
	size_t n = p->nslots * 2;
	struct pool_slot *slots = calloc(n, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < p->nslots; i++) {
		size_t j;

		if (!p->slots[i].str)
			continue;
		for (j = p->slots[i].hash & (n - 1); slots[j].str; j = (j + 1) & (n - 1))
			;
		slots[j] = p->slots[i];
	}
	free(p->slots);
	p->slots = slots;
	p->nslots = n;
	return 0;
}

const char *stoke_strpool_intern_n(struct stoke_strpool *p, const char *s, size_t len)
{
	uint64_t h = stoke_hash_bytes(STOKE_HASH_INIT, s, len);
	size_t i;
	char *copy;

	if (p->count * 2 >= p->nslots && pool_rehash(p) < 0)
		return NULL;
	for (i = h & (p->nslots - 1); p->slots[i].str; i = (i + 1) & (p->nslots - 1)) {
		const char *t = p->slots[i].str;

		if (p->slots[i].hash == h && strncmp(t, s, len) == 0 && t[len] == '\0')
			return t;
	}
	copy = pool_alloc(p, len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	p->slots[i].hash = h;
	p->slots[i].str = copy;
	p->count++;
	return copy;
}

const char *stoke_strpool_intern(struct stoke_strpool *p, const char *s)
{
	return stoke_strpool_intern_n(p, s, strlen(s));
}
