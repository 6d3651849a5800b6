/*
 * A call tree merged by frame display name, for the views that show one
 * (`-f tree` and `-f html`): each node is a root-to-here path of function
 * names, with its inclusive weight (samples whose stack passes through it)
 * and self weight (samples whose leaf it is). Siblings with the same name
 * are one node, as in a flamegraph.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "formats/profile.h"

struct stoke_ctree_node {
	uint32_t name;      /* index into the tree's names (stoke_ctree_name) */
	uint32_t parent;    /* node index; the root (0) is its own parent */
	uint32_t first_kid; /* into kids[]: children heaviest first, ties by name */
	uint32_t nkids;
	uint32_t depth;     /* 0 for the root */
	uint8_t kind;       /* enum stoke_pframe_kind of the first frame seen */
	uint64_t value;     /* inclusive weight */
	uint64_t self;
};

struct stoke_ctree {
	struct stoke_ctree_node *nodes; /* node 0: the root, value = total */
	size_t nnodes;
	uint32_t *kids;
	uint32_t *stack_node; /* per stack id of the profile: its node */
	size_t nstacks;       /* entries in stack_node (ids 0..nstacks-1) */
	uint64_t total;
	struct stoke_profile *names; /* used as a string interner */
};

/* Build the tree of p's samples (every kind). Returns 0 or -ENOMEM. */
int stoke_ctree_build(const struct stoke_profile *p, struct stoke_ctree **ret);
void stoke_ctree_free(struct stoke_ctree *t);
/* A node's display name ("" for the root). */
const char *stoke_ctree_name(const struct stoke_ctree *t, uint32_t node);
/* The number of distinct names (ids 0..n-1; 0 is ""). */
size_t stoke_ctree_nnames(const struct stoke_ctree *t);
