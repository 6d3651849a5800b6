/*
 * The hash tables (see hashmap.h): growth, insertion and removal. Probing is
 * inline in the header.
 */
#include "common/hashmap.h"

#include <errno.h>
#include <stdlib.h>

/* The smallest table: a profile or a symbolizer that holds anything soon
 * holds dozens of keys, and 64 slots cost 512 bytes (1 KiB for u64map). */
#define MIN_SLOTS 64

/* The number of slots that holds count keys at most half full, or 0 when
 * that does not fit a size_t. */
static size_t slots_for(size_t cur, size_t count)
{
	size_t n = cur ? cur : MIN_SLOTS;

	if (count > SIZE_MAX / 2)
		return 0;
	while (n < count * 2) {
		if (n > SIZE_MAX / 2)
			return 0;
		n *= 2;
	}
	return n;
}

static void put_slot(struct stoke_hashmap_slot *slots, size_t mask, uint32_t hash, uint32_t id)
{
	size_t i = hash & mask;

	while (slots[i].id)
		i = (i + 1) & mask;
	slots[i].hash = hash;
	slots[i].id = id;
}

int stoke_hashmap_reserve(struct stoke_hashmap *m, size_t n)
{
	size_t size = m->slots ? m->mask + 1 : 0, nsize;
	struct stoke_hashmap_slot *slots;

	if (n > SIZE_MAX - m->count)
		return -ENOMEM;
	if (m->slots && (m->count + n) * 2 <= size)
		return 0;
	nsize = slots_for(size, m->count + n);
	if (!nsize || nsize > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = calloc(nsize, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	/* Growing reinserts every id under its kept hash: no key is read. */
	for (size_t i = 0; i < size; i++)
		if (m->slots[i].id)
			put_slot(slots, nsize - 1, m->slots[i].hash, m->slots[i].id);
	free(m->slots);
	m->slots = slots;
	m->mask = nsize - 1;
	return 0;
}

void stoke_hashmap_put(struct stoke_hashmap *m, uint64_t h, uint32_t id)
{
	put_slot(m->slots, m->mask, stoke_hashmap_fold(h), id);
	m->count++;
}

int stoke_hashmap_add(struct stoke_hashmap *m, uint64_t h, uint32_t id)
{
	int r = stoke_hashmap_reserve(m, 1);

	if (r < 0)
		return r;
	stoke_hashmap_put(m, h, id);
	return 0;
}

int stoke_hashmap_remove(struct stoke_hashmap *m, uint64_t h, uint32_t id)
{
	uint32_t hash = stoke_hashmap_fold(h);
	size_t i, j;

	if (!m->slots)
		return -ENOENT;
	for (i = hash & m->mask; m->slots[i].id != id; i = (i + 1) & m->mask)
		if (!m->slots[i].id)
			return -ENOENT;
	/*
	 * Backward-shift deletion: every later slot of the run whose home is
	 * not between the hole and itself (cyclically) moves into the hole, so
	 * no probe sequence is cut and no tombstones build up.
	 */
	for (j = (i + 1) & m->mask; m->slots[j].id; j = (j + 1) & m->mask) {
		size_t home = m->slots[j].hash & m->mask;

		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i] = (struct stoke_hashmap_slot){ 0 };
	m->count--;
	return 0;
}

void stoke_hashmap_reset(struct stoke_hashmap *m)
{
	if (m->slots)
		for (size_t i = 0; i <= m->mask; i++)
			m->slots[i] = (struct stoke_hashmap_slot){ 0 };
	m->count = 0;
}

void stoke_hashmap_free(struct stoke_hashmap *m)
{
	free(m->slots);
	*m = (struct stoke_hashmap){ 0 };
}

static size_t u64map_slot(const struct stoke_u64map_slot *slots, size_t mask, uint64_t key)
{
	size_t i = stoke_hash_u64(key) & mask;

	while (slots[i].val && slots[i].key != key)
		i = (i + 1) & mask;
	return i;
}

int stoke_u64map_reserve(struct stoke_u64map *m, size_t n)
{
	size_t size = m->slots ? m->mask + 1 : 0, nsize;
	struct stoke_u64map_slot *slots;

	if (n > SIZE_MAX - m->count)
		return -ENOMEM;
	if (m->slots && (m->count + n) * 2 <= size)
		return 0;
	nsize = slots_for(size, m->count + n);
	if (!nsize || nsize > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = calloc(nsize, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < size; i++)
		if (m->slots[i].val)
			slots[u64map_slot(slots, nsize - 1, m->slots[i].key)] = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->mask = nsize - 1;
	return 0;
}

int stoke_u64map_add(struct stoke_u64map *m, uint64_t key, uint64_t val)
{
	size_t i;
	int r;

	if (!val)
		return -EINVAL;
	if (stoke_u64map_get(m, key))
		return -EEXIST;
	r = stoke_u64map_reserve(m, 1);
	if (r < 0)
		return r;
	i = u64map_slot(m->slots, m->mask, key);
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->count++;
	return 0;
}

bool stoke_u64map_next(const struct stoke_u64map *m, size_t *pos, uint64_t *ret_key,
		       uint64_t *ret_val)
{
	if (!m->slots)
		return false;
	for (; *pos <= m->mask; (*pos)++) {
		const struct stoke_u64map_slot *s = &m->slots[*pos];

		if (s->val) {
			(*pos)++;
			if (ret_key)
				*ret_key = s->key;
			if (ret_val)
				*ret_val = s->val;
			return true;
		}
	}
	return false;
}

void stoke_u64map_free(struct stoke_u64map *m)
{
	free(m->slots);
	*m = (struct stoke_u64map){ 0 };
}
