/*
 * Private to symbolizer/: per-process address spaces.
 *
 * An address space is a sorted array of non-overlapping mappings, searched in
 * binary. Inserting follows mmap semantics: a new mapping replaces whatever it
 * overlaps, splitting the mappings it cuts. The process table maps a pid to
 * its address space.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct stoke_module;

struct stoke_mapping {
	uint64_t start, end; /* [start, end) */
	uint64_t pgoff;      /* file offset of start */
	struct stoke_module *mod; /* NULL for pseudo and anonymous mappings */
	const char *name;    /* interned: the file path, "[vdso]", … or NULL */
};

/* Limits: a process with more mappings than this is refused (the kernel's
 * default vm.max_map_count is 65530). */
#define STOKE_ADDRSPACE_MAX_MAPS (1u << 20)

struct stoke_addrspace {
	uint32_t pid;
	struct stoke_mapping *maps;
	size_t n, cap;
};

/* Insert m (end > start), replacing and splitting what it overlaps. Returns 0
 * or -ENOMEM (also when the limit is reached). */
int stoke_addrspace_insert(struct stoke_addrspace *as, const struct stoke_mapping *m);
/* Drop every mapping (exec). */
void stoke_addrspace_clear(struct stoke_addrspace *as);
/* Replace dst's mappings with a copy of src's (fork). Returns 0 or -ENOMEM
 * (dst unchanged). */
int stoke_addrspace_copy(struct stoke_addrspace *dst, const struct stoke_addrspace *src);
/* The mapping containing addr, or NULL. */
const struct stoke_mapping *stoke_addrspace_find(const struct stoke_addrspace *as, uint64_t addr);

struct stoke_proctable;

int stoke_proctable_new(struct stoke_proctable **ret);
void stoke_proctable_free(struct stoke_proctable *t);
/* The address space of pid, or NULL. */
struct stoke_addrspace *stoke_proctable_find(struct stoke_proctable *t, uint32_t pid);
/* The address space of pid, created empty when new. Returns 0 or -ENOMEM. */
int stoke_proctable_get(struct stoke_proctable *t, uint32_t pid, struct stoke_addrspace **ret);
size_t stoke_proctable_count(const struct stoke_proctable *t);
