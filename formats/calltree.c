/*
 * The call tree merged by display name (see calltree.h).
 *
 * Stack ids grow from the root (a stack's parent always has a smaller id),
 * so one pass over the profile's stacks in id order maps each to its tree
 * node: the child of its parent's node with its frame's name. A hash on
 * (parent node, name id) finds that child. Then the samples add their
 * weights, and each node's children are sorted heaviest first.
 */
#include "formats/calltree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/util.h"
#include "formats/folded.h"

#define NAME_MAX_LEN 4096

struct build {
	struct stoke_ctree *t;
	size_t nodes_cap;
	struct stoke_hashmap index; /* (parent, name) -> node index + 1 */
};

static uint64_t key_hash(uint32_t parent, uint32_t name)
{
	return stoke_hash_u64((uint64_t)parent << 32 | name);
}

static int child(struct build *b, uint32_t parent, uint32_t name, uint8_t kind, uint32_t *ret)
{
	struct stoke_ctree *t = b->t;
	uint64_t h = key_hash(parent, name);
	struct stoke_hashmap_iter it;

	for (uint32_t id = stoke_hashmap_first(&b->index, h, &it); id;
	     id = stoke_hashmap_next(&b->index, &it)) {
		const struct stoke_ctree_node *n = &t->nodes[id - 1];

		if (n->parent == parent && n->name == name) {
			*ret = id - 1;
			return 0;
		}
	}
	if (t->nnodes >= UINT32_MAX - 1 || stoke_hashmap_reserve(&b->index, 1) < 0 ||
	    STOKE_GROW(t->nodes, b->nodes_cap, t->nnodes + 1) < 0)
		return -ENOMEM;
	t->nodes[t->nnodes] = (struct stoke_ctree_node){
		.name = name,
		.parent = parent,
		.depth = t->nodes[parent].depth + 1,
		.kind = kind,
	};
	stoke_hashmap_put(&b->index, h, (uint32_t)++t->nnodes);
	*ret = (uint32_t)(t->nnodes - 1);
	return 0;
}

/* qsort_r: stoked writes profiles on several threads at once. */
static int cmp_kids(const void *a, const void *b, void *ctx)
{
	const struct stoke_ctree *t = ctx;
	const struct stoke_ctree_node *x = &t->nodes[*(const uint32_t *)a];
	const struct stoke_ctree_node *y = &t->nodes[*(const uint32_t *)b];

	if (x->value != y->value)
		return x->value > y->value ? -1 : 1;
	return strcmp(stoke_ctree_name(t, *(const uint32_t *)a),
		      stoke_ctree_name(t, *(const uint32_t *)b));
}

static int link_kids(struct stoke_ctree *t)
{
	uint32_t *fill;

	t->kids = calloc(t->nnodes ? t->nnodes : 1, sizeof(*t->kids));
	fill = calloc(t->nnodes ? t->nnodes : 1, sizeof(*fill));
	if (!t->kids || !fill) {
		free(fill);
		return -ENOMEM;
	}
	for (size_t i = 1; i < t->nnodes; i++)
		t->nodes[t->nodes[i].parent].nkids++;
	for (size_t i = 0, at = 0; i < t->nnodes; i++) {
		t->nodes[i].first_kid = (uint32_t)at;
		at += t->nodes[i].nkids;
	}
	for (size_t i = 1; i < t->nnodes; i++) {
		struct stoke_ctree_node *p = &t->nodes[t->nodes[i].parent];

		t->kids[p->first_kid + fill[t->nodes[i].parent]++] = (uint32_t)i;
	}
	free(fill);
	for (size_t i = 0; i < t->nnodes; i++)
		if (t->nodes[i].nkids > 1)
			qsort_r(t->kids + t->nodes[i].first_kid, t->nodes[i].nkids, sizeof(uint32_t),
				cmp_kids, t);
	return 0;
}

int stoke_ctree_build(const struct stoke_profile *p, struct stoke_ctree **ret)
{
	struct build b = { 0 };
	struct stoke_ctree *t;
	const struct stoke_psample *s;
	uint32_t *frame_name = NULL;
	size_t nframes = stoke_profile_nframes(p), n;
	char buf[NAME_MAX_LEN];
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	b.t = t;
	r = stoke_profile_new(&t->names);
	t->nstacks = stoke_profile_nstacks(p) + 1;
	t->stack_node = calloc(t->nstacks, sizeof(*t->stack_node));
	frame_name = calloc(nframes + 1, sizeof(*frame_name));
	if (r == 0 && (!t->stack_node || !frame_name ||
		       STOKE_GROW(t->nodes, b.nodes_cap, 1) < 0))
		r = -ENOMEM;
	if (r == 0) {
		t->nodes[0] = (struct stoke_ctree_node){ 0 };
		t->nnodes = 1;
	}
	for (uint32_t f = 1; r == 0 && f <= nframes; f++)
		r = stoke_profile_intern(t->names,
					 stoke_frame_display(p, stoke_profile_get_frame(p, f), buf,
							     sizeof(buf)),
					 &frame_name[f]);
	for (uint32_t id = 1; r == 0 && id < t->nstacks; id++) {
		const struct stoke_pstack *st = stoke_profile_get_stack(p, id);

		r = child(&b, t->stack_node[st->parent], frame_name[st->frame],
			  stoke_profile_get_frame(p, st->frame)->kind, &t->stack_node[id]);
	}
	s = stoke_profile_samples(p, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		uint32_t node = t->stack_node[s[i].stack];

		t->nodes[node].self += s[i].weight;
		t->total += s[i].weight;
	}
	/* Inclusive weights: children have larger indices than their parent
	 * (a node is made after its parent), so one backward pass sums up. */
	if (r == 0) {
		for (size_t i = t->nnodes - 1; i > 0; i--) {
			t->nodes[i].value += t->nodes[i].self;
			t->nodes[t->nodes[i].parent].value += t->nodes[i].value;
		}
		t->nodes[0].value += t->nodes[0].self;
		r = link_kids(t);
	}
	free(frame_name);
	stoke_hashmap_free(&b.index);
	if (r < 0) {
		stoke_ctree_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

void stoke_ctree_free(struct stoke_ctree *t)
{
	if (!t)
		return;
	free(t->nodes);
	free(t->kids);
	free(t->stack_node);
	stoke_profile_free(t->names);
	free(t);
}

const char *stoke_ctree_name(const struct stoke_ctree *t, uint32_t node)
{
	const char *s = stoke_profile_string(t->names, t->nodes[node].name);

	return s ? s : "";
}

size_t stoke_ctree_nnames(const struct stoke_ctree *t)
{
	return stoke_profile_nstrings(t->names);
}
