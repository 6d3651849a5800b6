/*
 * The one hash table of user space: open addressing with linear probing over
 * a power-of-two array of slots, kept at most half full by doubling. Two
 * flavours share that scheme:
 *
 * - struct stoke_hashmap is an index of non-zero uint32_t ids (positions in
 *   the caller's own arrays, where the keys live) under the caller's 64-bit
 *   hash. A slot keeps 32 bits of the hash beside the id, so growing needs no
 *   callback into the caller and a probe compares keys only where the hash
 *   matches. Lookup iterates over the ids stored under a hash; the caller
 *   compares its keys:
 *
 *	for (id = stoke_hashmap_first(m, h, &it); id; id = stoke_hashmap_next(m, &it))
 *		if (key_eq(id, key))
 *			return id;
 *
 * - struct stoke_u64map maps uint64_t keys (pids, offsets, file ids) to
 *   non-zero uint64_t values (positions + 1, or pointers as uintptr_t).
 *
 * A zeroed struct is an empty table of either flavour. The probes are inline:
 * the profile model and the symbolizer call them per frame.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct stoke_hashmap_slot {
	uint32_t hash; /* the caller's hash, folded to 32 bits */
	uint32_t id;   /* 0: an empty slot */
};

struct stoke_hashmap {
	struct stoke_hashmap_slot *slots;
	size_t mask; /* number of slots - 1, when slots is not NULL */
	size_t count;
};

struct stoke_hashmap_iter {
	size_t i;
	uint32_t hash;
};

static inline uint32_t stoke_hashmap_fold(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

/* The next id stored under the iterator's hash, or 0 when there is none. */
static inline uint32_t stoke_hashmap_next(const struct stoke_hashmap *m,
					  struct stoke_hashmap_iter *it)
{
	if (!m->slots)
		return 0;
	for (;;) {
		const struct stoke_hashmap_slot *s = &m->slots[it->i];

		it->i = (it->i + 1) & m->mask;
		if (!s->id)
			return 0;
		if (s->hash == it->hash)
			return s->id;
	}
}

/* The first id stored under hash h, or 0; stoke_hashmap_next gives the rest. */
static inline uint32_t stoke_hashmap_first(const struct stoke_hashmap *m, uint64_t h,
					   struct stoke_hashmap_iter *it)
{
	it->hash = stoke_hashmap_fold(h);
	it->i = it->hash & m->mask;
	return stoke_hashmap_next(m, it);
}

/* Make room for n more ids, so that as many stoke_hashmap_put calls cannot
 * fail. Returns 0 or -ENOMEM (the table is unchanged then). */
int stoke_hashmap_reserve(struct stoke_hashmap *m, size_t n);
/* Store id (non-zero) under h; room must have been reserved. The caller has
 * checked that its key is not there yet. */
void stoke_hashmap_put(struct stoke_hashmap *m, uint64_t h, uint32_t id);
/* reserve(1) + put. Returns 0 or -ENOMEM. */
int stoke_hashmap_add(struct stoke_hashmap *m, uint64_t h, uint32_t id);
/* Remove id stored under h. Returns 0, or -ENOENT. */
int stoke_hashmap_remove(struct stoke_hashmap *m, uint64_t h, uint32_t id);
/* Forget every id, keeping the slots. */
void stoke_hashmap_reset(struct stoke_hashmap *m);
/* Free the slots; the struct is an empty table again. */
void stoke_hashmap_free(struct stoke_hashmap *m);

struct stoke_u64map_slot {
	uint64_t key;
	uint64_t val; /* 0: an empty slot */
};

struct stoke_u64map {
	struct stoke_u64map_slot *slots;
	size_t mask;
	size_t count;
};

/* The value under key, or 0. */
static inline uint64_t stoke_u64map_get(const struct stoke_u64map *m, uint64_t key)
{
	size_t i;

	if (!m->slots)
		return 0;
	for (i = stoke_hash_u64(key) & m->mask; m->slots[i].val; i = (i + 1) & m->mask)
		if (m->slots[i].key == key)
			return m->slots[i].val;
	return 0;
}

/* Make room for n more keys. Returns 0 or -ENOMEM. */
int stoke_u64map_reserve(struct stoke_u64map *m, size_t n);
/* Add key with val (non-zero). Returns 0, -EEXIST when key is there (its
 * value is kept), -EINVAL for val 0, or -ENOMEM. */
int stoke_u64map_add(struct stoke_u64map *m, uint64_t key, uint64_t val);
/* Iterate: *pos starts at 0; false once every entry was given, in slot
 * order (not insertion order). */
bool stoke_u64map_next(const struct stoke_u64map *m, size_t *pos, uint64_t *ret_key,
		       uint64_t *ret_val);
void stoke_u64map_free(struct stoke_u64map *m);
