/*
 * A set of non-zero u64 keys (pids, tids, addresses): open addressing with
 * linear probing over a power-of-two table, at most half full. The one
 * such table in common/ for code that needs membership only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stoke_u64set {
	uint64_t *slots; /* 0: an empty slot */
	size_t nslots, count;
};

/* A zeroed struct is an empty set. */
bool stoke_u64set_has(const struct stoke_u64set *set, uint64_t key);
/* Add key (0 is ignored). Returns 0 or -ENOMEM. */
int stoke_u64set_add(struct stoke_u64set *set, uint64_t key);
void stoke_u64set_clear(struct stoke_u64set *set);
