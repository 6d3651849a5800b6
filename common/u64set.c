/*
 * The u64 set (see u64set.h).
 */
#include "common/u64set.h"

#include <errno.h>
#include <stdlib.h>

#include "common/util.h"

static size_t slot_of(const struct stoke_u64set *set, uint64_t key)
{
	size_t i = (size_t)stoke_hash_u64(key) & (set->nslots - 1);

	while (set->slots[i] && set->slots[i] != key)
		i = (i + 1) & (set->nslots - 1);
	return i;
}

bool stoke_u64set_has(const struct stoke_u64set *set, uint64_t key)
{
	return set->nslots && key && set->slots[slot_of(set, key)] == key;
}

int stoke_u64set_add(struct stoke_u64set *set, uint64_t key)
{
	if (!key || stoke_u64set_has(set, key))
		return 0;
	if ((set->count + 1) * 2 > set->nslots) {
		struct stoke_u64set grown = { .nslots = set->nslots ? set->nslots * 2 : 64 };

		grown.slots = calloc(grown.nslots, sizeof(*grown.slots));
		if (!grown.slots)
			return -ENOMEM;
		for (size_t i = 0; i < set->nslots; i++)
			if (set->slots[i])
				grown.slots[slot_of(&grown, set->slots[i])] = set->slots[i];
		grown.count = set->count;
		free(set->slots);
		*set = grown;
	}
	set->slots[slot_of(set, key)] = key;
	set->count++;
	return 0;
}

void stoke_u64set_clear(struct stoke_u64set *set)
{
	free(set->slots);
	set->slots = NULL;
	set->nslots = set->count = 0;
}
