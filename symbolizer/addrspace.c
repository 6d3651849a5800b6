/*
 * Per-process address spaces and the pid table (see addrspace.h).
 *
 * Mappings are kept sorted and disjoint so that a lookup is one binary
 * search. An insert costs a memmove, which is fine: MMAP records are rare
 * next to samples. The pid table is open addressing with linear probing and
 * no deletion: a process's mappings are kept after it exits, because its
 * samples may still be symbolized later and a module's fd outlives it anyway.
 */
#include "symbolizer/addrspace.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/util.h"

/* Index of the first mapping whose end is above addr (n when none). */
static size_t first_ending_after(const struct stoke_addrspace *as, uint64_t addr)
{
	size_t lo = 0, hi = as->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (as->maps[mid].end > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

int stoke_addrspace_insert(struct stoke_addrspace *as, const struct stoke_mapping *m)
{
	struct stoke_mapping left, right;
	bool has_left = false, has_right = false;
	size_t lo, hi, n_new;

	if (m->end <= m->start)
		return 0;
	lo = first_ending_after(as, m->start);
	for (hi = lo; hi < as->n && as->maps[hi].start < m->end; hi++)
		;
	/* [lo, hi) overlap m: keep the parts outside it. */
	if (lo < hi && as->maps[lo].start < m->start) {
		left = as->maps[lo];
		left.end = m->start;
		has_left = true;
	}
	if (lo < hi && as->maps[hi - 1].end > m->end) {
		right = as->maps[hi - 1];
		right.pgoff += m->end - right.start;
		right.start = m->end;
		has_right = true;
	}
	n_new = 1 + has_left + has_right;
	if (as->n - (hi - lo) + n_new > STOKE_ADDRSPACE_MAX_MAPS)
		return -ENOMEM;
	if (STOKE_GROW(as->maps, as->cap, as->n - (hi - lo) + n_new) < 0)
		return -ENOMEM;
	memmove(&as->maps[lo + n_new], &as->maps[hi], (as->n - hi) * sizeof(*as->maps));
	as->n = as->n - (hi - lo) + n_new;
	if (has_left)
		as->maps[lo++] = left;
	as->maps[lo++] = *m;
	if (has_right)
		as->maps[lo] = right;
	return 0;
}

void stoke_addrspace_clear(struct stoke_addrspace *as)
{
	as->n = 0;
}

int stoke_addrspace_copy(struct stoke_addrspace *dst, const struct stoke_addrspace *src)
{
	if (dst == src)
		return 0;
	if (STOKE_GROW(dst->maps, dst->cap, src->n) < 0)
		return -ENOMEM;
	if (src->n)
		memcpy(dst->maps, src->maps, src->n * sizeof(*src->maps));
	dst->n = src->n;
	return 0;
}

const struct stoke_mapping *stoke_addrspace_find(const struct stoke_addrspace *as, uint64_t addr)
{
	size_t i = first_ending_after(as, addr);

	if (i < as->n && as->maps[i].start <= addr)
		return &as->maps[i];
	return NULL;
}

/* ---- pid table ---- */

struct stoke_proctable {
	struct stoke_u64map procs; /* pid -> struct stoke_addrspace * */
	struct stoke_addrspace *last; /* samples come in runs of one pid */
};

int stoke_proctable_new(struct stoke_proctable **ret)
{
	struct stoke_proctable *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	*ret = t;
	return 0;
}

void stoke_proctable_free(struct stoke_proctable *t)
{
	uint64_t v;

	if (!t)
		return;
	for (size_t pos = 0; stoke_u64map_next(&t->procs, &pos, NULL, &v);) {
		struct stoke_addrspace *as = (struct stoke_addrspace *)(uintptr_t)v;

		free(as->maps);
		free(as);
	}
	stoke_u64map_free(&t->procs);
	free(t);
}

struct stoke_addrspace *stoke_proctable_find(struct stoke_proctable *t, uint32_t pid)
{
	if (t->last && t->last->pid == pid)
		return t->last;
	t->last = (struct stoke_addrspace *)(uintptr_t)stoke_u64map_get(&t->procs, pid);
	return t->last;
}

int stoke_proctable_get(struct stoke_proctable *t, uint32_t pid, struct stoke_addrspace **ret)
{
	struct stoke_addrspace *as = stoke_proctable_find(t, pid);

	if (!as) {
		if (stoke_u64map_reserve(&t->procs, 1) < 0)
			return -ENOMEM;
		as = calloc(1, sizeof(*as));
		if (!as)
			return -ENOMEM;
		as->pid = pid;
		/* Cannot fail: the pid is new and room was reserved. */
		stoke_u64map_add(&t->procs, pid, (uintptr_t)as);
		t->last = as;
	}
	*ret = as;
	return 0;
}

size_t stoke_proctable_count(const struct stoke_proctable *t)
{
	return t->procs.count;
}
