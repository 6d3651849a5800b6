/*
 * Function-level views of a profile (see analysis.h).
 *
 * The work is done per distinct stack, not per sample: weights are first
 * summed per stack id, then each stack is walked once. A stamp per function
 * and per edge (the id of the stack that last counted it) makes totals count
 * once per stack, which is what keeps recursion from inflating them.
 */
#include "formats/analysis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/folded.h"
#include "common/hashmap.h"
#include "common/util.h"

#define NAME_MAX_LEN 4096

struct stoke_analysis_priv {
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t *name_off;  /* per function: offset of its name in the pool */
	size_t funcs_cap;
	struct stoke_hashmap fn_index;   /* name → function index + 1 */
	struct stoke_hashmap edge_index; /* (caller, callee) → edge index + 1 */
	size_t edges_cap;
	/* per function: best line and its weights, for file:line */
	uint64_t *line_self, *line_total;
};

static uint64_t name_hash(const char *s)
{
	return stoke_hash_bytes(STOKE_HASH_INIT, s, strlen(s));
}

long stoke_analysis_find(const struct stoke_analysis *a, const char *name)
{
	const struct stoke_analysis_priv *pv = a->priv;
	struct stoke_hashmap_iter it;

	for (uint32_t i = stoke_hashmap_first(&pv->fn_index, name_hash(name), &it); i;
	     i = stoke_hashmap_next(&pv->fn_index, &it))
		if (!strcmp(pv->pool + pv->name_off[i - 1], name))
			return (long)i - 1;
	return -1;
}

/* The function index for a display name, adding it when new. */
static long func_for_name(struct stoke_analysis *a, const char *name)
{
	struct stoke_analysis_priv *pv = a->priv;
	long i = stoke_analysis_find(a, name);
	size_t len = strlen(name) + 1;

	if (i >= 0)
		return i;
	if (stoke_hashmap_reserve(&pv->fn_index, 1) < 0)
		return -ENOMEM;
	if (STOKE_GROW(pv->pool, pv->pool_cap, pv->pool_len + len) < 0)
		return -ENOMEM;
	if (a->nfuncs + 1 > pv->funcs_cap) {
		size_t cap = pv->funcs_cap;

		if (STOKE_GROW(a->funcs, cap, a->nfuncs + 1) < 0 ||
		    STOKE_GROW(pv->name_off, pv->funcs_cap, a->nfuncs + 1) < 0)
			return -ENOMEM;
	}
	memcpy(pv->pool + pv->pool_len, name, len);
	pv->name_off[a->nfuncs] = (uint32_t)pv->pool_len;
	pv->pool_len += len;
	a->funcs[a->nfuncs] = (struct stoke_func_stat){ 0 };
	stoke_hashmap_put(&pv->fn_index, name_hash(name), (uint32_t)a->nfuncs + 1);
	return (long)a->nfuncs++;
}

static uint64_t edge_hash(uint32_t from, uint32_t to)
{
	return stoke_hash_u64(((uint64_t)from << 32) | to);
}

static long edge_for(struct stoke_analysis *a, uint32_t from, uint32_t to)
{
	struct stoke_analysis_priv *pv = a->priv;
	uint64_t h = edge_hash(from, to);
	struct stoke_hashmap_iter it;

	for (uint32_t i = stoke_hashmap_first(&pv->edge_index, h, &it); i;
	     i = stoke_hashmap_next(&pv->edge_index, &it))
		if (a->edges[i - 1].caller == from && a->edges[i - 1].callee == to)
			return (long)i - 1;
	if (stoke_hashmap_reserve(&pv->edge_index, 1) < 0 ||
	    STOKE_GROW(a->edges, pv->edges_cap, a->nedges + 1) < 0)
		return -ENOMEM;
	a->edges[a->nedges] = (struct stoke_func_edge){ from, to, 0 };
	stoke_hashmap_put(&pv->edge_index, h, (uint32_t)a->nedges + 1);
	return (long)a->nedges++;
}

/* Sum sample weights per stack id. */
static uint64_t *stack_weights(const struct stoke_profile *p, uint64_t *ret_total)
{
	size_t nstacks = stoke_profile_nstacks(p), n;
	const struct stoke_psample *s = stoke_profile_samples(p, &n);
	uint64_t *w = calloc(nstacks + 1, sizeof(*w)), total = 0;

	if (!w)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		w[s[i].stack] += s[i].weight;
		total += s[i].weight;
	}
	*ret_total = total;
	return w;
}

/* The function index of each frame id (by display name). */
static long *frame_funcs(struct stoke_analysis *a, const struct stoke_profile *p)
{
	size_t nframes = stoke_profile_nframes(p);
	long *map = calloc(nframes + 1, sizeof(*map));
	char buf[NAME_MAX_LEN];

	if (!map)
		return NULL;
	for (size_t id = 1; id <= nframes; id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(p, (uint32_t)id);

		map[id] = func_for_name(a, stoke_frame_display(p, f, buf, sizeof(buf)));
		if (map[id] < 0) {
			free(map);
			return NULL;
		}
	}
	return map;
}

/* Remember the line with the most self (then total) weight per function. */
static void note_line(struct stoke_analysis *a, const struct stoke_profile *p,
		      const struct stoke_pframe *f, long fn, uint64_t self, uint64_t total)
{
	struct stoke_analysis_priv *pv = a->priv;
	struct stoke_func_stat *st = &a->funcs[fn];

	if (!f->line)
		return;
	if (self > pv->line_self[fn] || (self == pv->line_self[fn] && total > pv->line_total[fn])) {
		pv->line_self[fn] = self;
		pv->line_total[fn] = total;
		st->file = stoke_profile_string(p, f->file);
		st->line = f->line;
	}
}

/* Per-walk scratch: which stack last counted each function and edge. */
struct stamps {
	uint32_t *func;
	uint32_t *edge;
	size_t edge_len, edge_cap;
};

static int walk_stack(struct stoke_analysis *a, const struct stoke_profile *p, uint32_t stack,
		      uint64_t w, const long *fmap, struct stamps *sp)
{
	const struct stoke_pstack *node = stoke_profile_get_stack(p, stack);
	const struct stoke_pframe *root = NULL;
	long callee = -1;
	bool leaf = true;

	while (node && node->frame) {
		long fn = fmap[node->frame];

		if (leaf)
			a->funcs[fn].self += w;
		if (sp->func[fn] != stack) {
			sp->func[fn] = stack;
			a->funcs[fn].total += w;
		}
		if (callee >= 0) {
			long e = edge_for(a, (uint32_t)fn, (uint32_t)callee);

			if (e < 0)
				return (int)e;
			if (STOKE_GROW(sp->edge, sp->edge_cap, (size_t)e + 1) < 0)
				return -ENOMEM;
			while (sp->edge_len <= (size_t)e)
				sp->edge[sp->edge_len++] = 0; /* stack ids start at 1 */
			if (sp->edge[e] != stack) {
				sp->edge[e] = stack;
				a->edges[e].weight += w;
			}
		}
		root = stoke_profile_get_frame(p, node->frame);
		callee = fn;
		leaf = false;
		node = node->parent ? stoke_profile_get_stack(p, node->parent) : NULL;
	}
	if (root && root->kind == STOKE_PFRAME_SYNTHETIC) {
		const char *name = stoke_profile_string(p, root->name);

		if (name && !strcmp(name, "[unwind-failed]"))
			a->unwind_failed += w;
		else if (name && !strcmp(name, "[truncated]"))
			a->truncated += w;
	}
	return 0;
}

static int edge_cmp(const void *x, const void *y)
{
	const struct stoke_func_edge *a = x, *b = y;

	if (a->caller != b->caller)
		return a->caller < b->caller ? -1 : 1;
	if (a->weight != b->weight)
		return a->weight > b->weight ? -1 : 1;
	return a->callee < b->callee ? -1 : a->callee > b->callee;
}

/* Best line per function: a second pass over frames weighted by how much
 * self/total each frame carries. */
static int hot_lines(struct stoke_analysis *a, const struct stoke_profile *p, const uint64_t *w,
		     const long *fmap)
{
	size_t nframes = stoke_profile_nframes(p), nstacks = stoke_profile_nstacks(p);
	uint64_t *fself = calloc(nframes + 1, sizeof(*fself));
	uint64_t *ftotal = calloc(nframes + 1, sizeof(*ftotal));
	struct stoke_analysis_priv *pv = a->priv;

	pv->line_self = calloc(a->nfuncs + 1, sizeof(uint64_t));
	pv->line_total = calloc(a->nfuncs + 1, sizeof(uint64_t));
	if (!fself || !ftotal || !pv->line_self || !pv->line_total) {
		free(fself);
		free(ftotal);
		return -ENOMEM;
	}
	for (size_t id = 1; id <= nstacks; id++) {
		const struct stoke_pstack *st = stoke_profile_get_stack(p, (uint32_t)id);

		if (!w[id])
			continue;
		fself[st->frame] += w[id];
		/* A frame's total here may count a recursive frame twice; it only
		 * breaks ties between lines. */
		for (const struct stoke_pstack *n = st; n && n->frame;
		     n = n->parent ? stoke_profile_get_stack(p, n->parent) : NULL)
			ftotal[n->frame] += w[id];
	}
	for (size_t id = 1; id <= nframes; id++)
		if (fself[id] || ftotal[id])
			note_line(a, p, stoke_profile_get_frame(p, (uint32_t)id), fmap[id], fself[id],
				  ftotal[id]);
	free(fself);
	free(ftotal);
	return 0;
}

int stoke_analysis_new(const struct stoke_profile *p, struct stoke_analysis **ret)
{
	size_t nstacks = stoke_profile_nstacks(p);
	struct stoke_analysis *a = calloc(1, sizeof(*a));
	uint64_t *w = NULL;
	long *fmap = NULL;
	struct stamps sp = { 0 };
	int r = -ENOMEM;

	if (!a || !(a->priv = calloc(1, sizeof(*a->priv))))
		goto out;
	w = stack_weights(p, &a->total);
	fmap = w ? frame_funcs(a, p) : NULL;
	sp.func = fmap ? calloc(a->nfuncs + 1, sizeof(*sp.func)) : NULL;
	if (!sp.func)
		goto out;
	for (size_t id = 1; id <= nstacks; id++) {
		if (!w[id])
			continue;
		r = walk_stack(a, p, (uint32_t)id, w[id], fmap, &sp);
		if (r < 0)
			goto out;
	}
	r = hot_lines(a, p, w, fmap);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < a->nfuncs; i++)
		a->funcs[i].name = a->priv->pool + a->priv->name_off[i];
	if (a->nedges) /* qsort(NULL, 0) is undefined */
		qsort(a->edges, a->nedges, sizeof(*a->edges), edge_cmp);
	*ret = a;
	a = NULL;
	r = 0;
out:
	free(w);
	free(fmap);
	free(sp.func);
	free(sp.edge);
	stoke_analysis_free(a);
	return r;
}

void stoke_analysis_free(struct stoke_analysis *a)
{
	if (!a)
		return;
	if (a->priv) {
		free(a->priv->pool);
		free(a->priv->name_off);
		stoke_hashmap_free(&a->priv->fn_index);
		stoke_hashmap_free(&a->priv->edge_index);
		free(a->priv->line_self);
		free(a->priv->line_total);
		free(a->priv);
	}
	free(a->funcs);
	free(a->edges);
	free(a);
}

struct sort_ctx {
	const struct stoke_analysis *a;
	bool by_total;
};

/* qsort_r: stoke serve builds top tables on several threads at once. */
static int func_cmp(const void *x, const void *y, void *arg)
{
	const struct sort_ctx *ctx = arg;
	const struct stoke_func_stat *a = &ctx->a->funcs[*(const uint32_t *)x];
	const struct stoke_func_stat *b = &ctx->a->funcs[*(const uint32_t *)y];
	uint64_t ka = ctx->by_total ? a->total : a->self, kb = ctx->by_total ? b->total : b->self;

	if (ka != kb)
		return ka > kb ? -1 : 1;
	if (a->total != b->total)
		return a->total > b->total ? -1 : 1;
	return strcmp(a->name, b->name);
}

void stoke_analysis_sort(const struct stoke_analysis *a, bool by_total, uint32_t *order)
{
	struct sort_ctx ctx = { .a = a, .by_total = by_total };

	for (size_t i = 0; i < a->nfuncs; i++)
		order[i] = (uint32_t)i;
	if (a->nfuncs) /* qsort(NULL, 0) is undefined */
		qsort_r(order, a->nfuncs, sizeof(*order), func_cmp, &ctx);
}

size_t stoke_analysis_neighbours(const struct stoke_analysis *a, uint32_t fn, bool callers,
				 struct stoke_neighbour *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < a->nedges; i++) {
		const struct stoke_func_edge *e = &a->edges[i];
		uint32_t self = callers ? e->callee : e->caller;
		uint32_t other = callers ? e->caller : e->callee;
		size_t j;

		if (self != fn || other == fn)
			continue;
		/* Keep the heaviest few: insertion into a small sorted array. */
		for (j = n; j > 0 && out[j - 1].weight < e->weight; j--)
			if (j < max)
				out[j] = out[j - 1];
		if (j < max) {
			out[j].func = other;
			out[j].weight = e->weight;
			if (n < max)
				n++;
		}
	}
	return n;
}

/* ---- per-line view ---- */

static int line_cmp(const void *x, const void *y)
{
	const struct stoke_line_stat *a = x, *b = y;
	int c = strcmp(a->file ? a->file : "", b->file ? b->file : "");

	if (c)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

long stoke_analysis_lines(const struct stoke_profile *p, const char *name,
			  struct stoke_line_stat **ret)
{
	size_t nframes = stoke_profile_nframes(p), nstacks = stoke_profile_nstacks(p);
	struct stoke_line_stat *lines = NULL;
	size_t nlines = 0, cap = 0;
	long *frame_line = calloc(nframes + 1, sizeof(*frame_line));
	uint32_t *stamp = NULL;
	uint64_t total, *w = stack_weights(p, &total);
	char buf[NAME_MAX_LEN];
	long r = -ENOMEM;

	if (!frame_line || !w)
		goto out;
	/* Map each frame of the function (one per file:line) to a line slot. */
	for (size_t id = 1; id <= nframes; id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(p, (uint32_t)id);
		size_t i;

		frame_line[id] = -1;
		if (!f->line || strcmp(stoke_frame_display(p, f, buf, sizeof(buf)), name))
			continue;
		for (i = 0; i < nlines; i++)
			if (lines[i].line == f->line &&
			    lines[i].file == stoke_profile_string(p, f->file))
				break;
		if (i == nlines) {
			if (STOKE_GROW(lines, cap, nlines + 1) < 0)
				goto out;
			lines[nlines++] = (struct stoke_line_stat){
				.file = stoke_profile_string(p, f->file), .line = f->line };
		}
		frame_line[id] = (long)i;
	}
	stamp = calloc(nlines + 1, sizeof(*stamp));
	if (!stamp)
		goto out;
	for (size_t id = 1; id <= nstacks; id++) {
		const struct stoke_pstack *n = stoke_profile_get_stack(p, (uint32_t)id);
		bool leaf = true;

		if (!w[id])
			continue;
		for (; n && n->frame; n = n->parent ? stoke_profile_get_stack(p, n->parent) : NULL) {
			long li = frame_line[n->frame];

			if (li >= 0) {
				if (leaf)
					lines[li].self += w[id];
				if (stamp[li] != id) {
					stamp[li] = (uint32_t)id;
					lines[li].total += w[id];
				}
			}
			leaf = false;
		}
	}
	if (nlines) /* qsort(NULL, 0) is undefined */
		qsort(lines, nlines, sizeof(*lines), line_cmp);
	*ret = lines;
	lines = NULL;
	r = (long)nlines;
out:
	free(lines);
	free(frame_line);
	free(stamp);
	free(w);
	return r;
}
