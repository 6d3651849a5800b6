/*
 * The callgrind writer (see callgrind.h), for callgrind_annotate and
 * kcachegrind.
 *
 * Positions are source lines, the one event is "Samples". A function is a
 * (display name, source file or module, module) triple. For every distinct
 * stack of weight w:
 *   - the leaf's (function, line) gets self cost w;
 *   - each caller->callee step becomes a call record at the caller's line,
 *     with count w and inclusive cost w, counted once per stack even when
 *     recursion repeats the step (so inclusive costs never exceed the total).
 * Functions are written sorted by (file, name, module), their lines and
 * calls sorted too, with name compression "(id) name" assigned in that
 * order: the file depends only on what the profile says.
 */
#include "formats/callgrind.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/escape.h"
#include "formats/folded.h"
#include "common/hashmap.h"
#include "common/util.h"

#define NAME_MAX_LEN 4096

struct cfunc {
	char *name, *file, *module;
	uint32_t id;         /* compressed id, in output order */
};

struct cost {                /* self: callee = UINT32_MAX */
	uint32_t fn, line, callee, callee_line;
	uint64_t count, incl, stamp;
};

struct cg {
	const struct stoke_profile *p;
	struct cfunc *funcs;
	size_t nfuncs, funcs_cap;
	struct stoke_hashmap fn_index;   /* (name, file, module) -> index + 1 */
	uint32_t *frame_fn;  /* per frame id: function index + 1 */
	struct cost *costs;
	size_t ncosts, costs_cap;
	struct stoke_hashmap cost_index; /* the four keys -> index + 1 */
	uint32_t *path;
	size_t path_cap;
};

/* A single-line, valid UTF-8 copy: the format is line-based. An unknown
 * file or object is "???", as valgrind writes it. */
static char *clean(const char *s)
{
	char *r = stoke_utf8_sanitize(s && *s ? s : "???");

	for (char *c = r; c && *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	return r;
}

static uint64_t fn_hash(const char *name, const char *file, const char *module)
{
	uint64_t h = stoke_hash_bytes(STOKE_HASH_INIT, name, strlen(name) + 1);

	h = stoke_hash_bytes(h, file, strlen(file) + 1);
	return stoke_hash_bytes(h, module, strlen(module) + 1);
}

static int function_of(struct cg *c, uint32_t frame, uint32_t *ret)
{
	const struct stoke_pframe *f = stoke_profile_get_frame(c->p, frame);
	char buf[NAME_MAX_LEN];
	char *name, *file, *module;
	struct stoke_hashmap_iter it;
	uint64_t h;
	uint32_t e;

	if (c->frame_fn[frame]) {
		*ret = c->frame_fn[frame] - 1;
		return 0;
	}
	stoke_frame_display(c->p, f, buf, sizeof(buf));
	name = clean(buf);
	module = clean(stoke_profile_string(c->p, f->module));
	/* No source file: "???", as valgrind writes it. Naming the ELF file
	 * instead made callgrind_annotate try to read a binary as source.
	 * The file of its definition (decl_file) where DWARF gives it: one
	 * function, not one per source file its lines come from. */
	file = clean(stoke_profile_string(c->p, f->decl_line && f->decl_file ? f->decl_file
									     : f->file));
	if (!name || !module || !file)
		goto nomem;
	if (stoke_hashmap_reserve(&c->fn_index, 1) < 0)
		goto nomem;
	h = fn_hash(name, file, module);
	for (e = stoke_hashmap_first(&c->fn_index, h, &it); e;
	     e = stoke_hashmap_next(&c->fn_index, &it)) {
		struct cfunc *g = &c->funcs[e - 1];

		if (!strcmp(g->name, name) && !strcmp(g->file, file) && !strcmp(g->module, module))
			break;
	}
	if (e) {
		free(name);
		free(file);
		free(module);
	} else {
		if (STOKE_GROW(c->funcs, c->funcs_cap, c->nfuncs + 1) < 0)
			goto nomem;
		c->funcs[c->nfuncs] = (struct cfunc){ name, file, module, 0 };
		e = (uint32_t)++c->nfuncs;
		stoke_hashmap_put(&c->fn_index, h, e);
	}
	c->frame_fn[frame] = e;
	*ret = e - 1;
	return 0;
nomem:
	free(name);
	free(file);
	free(module);
	return -ENOMEM;
}

static uint64_t cost_hash(uint32_t fn, uint32_t line, uint32_t callee, uint32_t cline)
{
	return stoke_hash_u64(stoke_hash_u64((uint64_t)fn << 32 | line) ^
			      ((uint64_t)callee << 32 | cline));
}

static int cost_of(struct cg *c, uint32_t fn, uint32_t line, uint32_t callee, uint32_t cline,
		   struct cost **ret)
{
	uint64_t h = cost_hash(fn, line, callee, cline);
	struct stoke_hashmap_iter it;
	uint32_t e;

	for (e = stoke_hashmap_first(&c->cost_index, h, &it); e;
	     e = stoke_hashmap_next(&c->cost_index, &it)) {
		struct cost *k = &c->costs[e - 1];

		if (k->fn == fn && k->line == line && k->callee == callee && k->callee_line == cline) {
			*ret = k;
			return 0;
		}
	}
	if (stoke_hashmap_reserve(&c->cost_index, 1) < 0 ||
	    STOKE_GROW(c->costs, c->costs_cap, c->ncosts + 1) < 0)
		return -ENOMEM;
	c->costs[c->ncosts] = (struct cost){ fn, line, callee, cline, 0, 0, 0 };
	stoke_hashmap_put(&c->cost_index, h, (uint32_t)++c->ncosts);
	*ret = &c->costs[c->ncosts - 1];
	return 0;
}

static int count_stack(struct cg *c, uint32_t stack, uint64_t w, uint64_t stamp)
{
	size_t depth = stoke_profile_stack_frames(c->p, stack, NULL, 0);
	struct cost *k;
	uint32_t fn, callee;
	int r;

	if (STOKE_GROW(c->path, c->path_cap, depth + 1) < 0)
		return -ENOMEM;
	stoke_profile_stack_frames(c->p, stack, c->path, depth); /* leaf first */
	if (depth == 0)
		return 0; /* no frame to charge; the summary still counts it */
	r = function_of(c, c->path[0], &fn);
	if (r >= 0)
		r = cost_of(c, fn, stoke_profile_get_frame(c->p, c->path[0])->line, UINT32_MAX, 0, &k);
	if (r < 0)
		return r;
	k->incl += w;
	for (size_t i = 1; i < depth; i++) {
		const struct stoke_pframe *caller = stoke_profile_get_frame(c->p, c->path[i]);
		const struct stoke_pframe *cf = stoke_profile_get_frame(c->p, c->path[i - 1]);

		r = function_of(c, c->path[i], &fn);
		if (r >= 0)
			r = function_of(c, c->path[i - 1], &callee);
		if (r >= 0)
			r = cost_of(c, fn, caller->line, callee, cf->line, &k);
		if (r < 0)
			return r;
		if (k->stamp != stamp) {
			k->stamp = stamp;
			k->count += w;
			k->incl += w;
		}
	}
	return 0;
}

static int cmp_func(const void *a, const void *b)
{
	const struct cfunc *x = *(struct cfunc *const *)a, *y = *(struct cfunc *const *)b;
	int r = strcmp(x->file, y->file);

	if (!r)
		r = strcmp(x->name, y->name);
	return r ? r : strcmp(x->module, y->module);
}

static int cmp_cost(const void *a, const void *b, void *arg)
{
	const struct cg *c = arg;
	const struct cost *x = a, *y = b;

	if (c->funcs[x->fn].id != c->funcs[y->fn].id)
		return c->funcs[x->fn].id < c->funcs[y->fn].id ? -1 : 1;
	/* self costs (callee UINT32_MAX) after calls of the same function;
	 * calls by callee id, then lines */
	if (x->callee != y->callee) {
		uint32_t xi = x->callee == UINT32_MAX ? UINT32_MAX : c->funcs[x->callee].id;
		uint32_t yi = y->callee == UINT32_MAX ? UINT32_MAX : c->funcs[y->callee].id;

		if (xi != yi)
			return xi < yi ? -1 : 1;
	}
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->callee_line < y->callee_line ? -1 : x->callee_line > y->callee_line;
}

/* "key=(id) name" the first time, "key=(id)" after. */

static void put_name(FILE *out, const char *key, uint32_t id, const char *name, bool *seen)
{
	if (seen[id]) {
		fprintf(out, "%s=(%" PRIu32 ")\n", key, id);
	} else {
		seen[id] = true;
		fprintf(out, "%s=(%" PRIu32 ") %s\n", key, id, name);
	}
}

/* Files and objects get ids by first use, functions by sorted order. */
struct strid {
	char **s;
	size_t n, cap;
};

static int strid_get(struct strid *t, char *s, uint32_t *ret)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->s[i], s)) {
			*ret = (uint32_t)i + 1;
			return 0;
		}
	if (STOKE_GROW(t->s, t->cap, t->n + 1) < 0)
		return -ENOMEM;
	t->s[t->n++] = s;
	*ret = (uint32_t)t->n;
	return 0;
}

static int emit(struct cg *c, FILE *out)
{
	struct cfunc **sorted = malloc((c->nfuncs + 1) * sizeof(*sorted));
	bool *fn_seen = calloc(c->nfuncs + 2, sizeof(bool));
	uint32_t *fl_id = calloc(c->nfuncs + 1, sizeof(uint32_t));
	uint32_t *ob_id = calloc(c->nfuncs + 1, sizeof(uint32_t));
	bool *fl_seen = calloc(c->nfuncs + 2, sizeof(bool));
	bool *ob_seen = calloc(c->nfuncs + 2, sizeof(bool));
	struct strid files = { 0 }, objs = { 0 };
	uint32_t cur = UINT32_MAX;
	int r = 0;

	if (!sorted || !fn_seen || !fl_id || !ob_id || !fl_seen || !ob_seen) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->nfuncs; i++)
		sorted[i] = &c->funcs[i];
	if (c->nfuncs)
		qsort(sorted, c->nfuncs, sizeof(*sorted), cmp_func);
	for (size_t i = 0; i < c->nfuncs; i++)
		sorted[i]->id = (uint32_t)i + 1;
	/* string ids in function order, so they too depend on content only */
	for (size_t i = 0; i < c->nfuncs && r >= 0; i++) {
		r = strid_get(&files, sorted[i]->file, &fl_id[sorted[i]->id]);
		if (r >= 0)
			r = strid_get(&objs, sorted[i]->module, &ob_id[sorted[i]->id]);
	}
	if (r < 0)
		goto out;
	if (c->ncosts)
		qsort_r(c->costs, c->ncosts, sizeof(*c->costs), cmp_cost, c);
	for (size_t i = 0; i < c->ncosts; i++) {
		const struct cost *k = &c->costs[i];
		const struct cfunc *f = &c->funcs[k->fn];

		if (k->fn != cur) {
			cur = k->fn;
			putc('\n', out);
			put_name(out, "ob", ob_id[f->id], f->module, ob_seen);
			put_name(out, "fl", fl_id[f->id], f->file, fl_seen);
			put_name(out, "fn", f->id, f->name, fn_seen);
		}
		if (k->callee == UINT32_MAX) {
			fprintf(out, "%" PRIu32 " %" PRIu64 "\n", k->line, k->incl);
			continue;
		}
		{
			const struct cfunc *g = &c->funcs[k->callee];

			put_name(out, "cob", ob_id[g->id], g->module, ob_seen);
			put_name(out, "cfi", fl_id[g->id], g->file, fl_seen);
			put_name(out, "cfn", g->id, g->name, fn_seen);
			fprintf(out, "calls=%" PRIu64 " %" PRIu32 "\n%" PRIu32 " %" PRIu64 "\n", k->count,
				k->callee_line, k->line, k->incl);
		}
	}
out:
	free(sorted);
	free(fn_seen);
	free(fl_id);
	free(ob_id);
	free(fl_seen);
	free(ob_seen);
	free(files.s);
	free(objs.s);
	return r;
}

int stoke_callgrind_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
			  FILE *out)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	struct cg c = { .p = p };
	size_t nstacks = stoke_profile_nstacks(p), n;
	const struct stoke_psample *s = stoke_profile_samples(p, &n);
	uint64_t *weight, stamp = 0;
	char *cmd;
	int r = 0;

	weight = calloc(nstacks + 1, sizeof(*weight));
	c.frame_fn = calloc(stoke_profile_nframes(p) + 1, sizeof(*c.frame_fn));
	if (!weight || !c.frame_fn) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		weight[s[i].stack] += s[i].weight;
	for (uint32_t st = 0; st <= nstacks && r >= 0; st++)
		if (weight[st])
			r = count_stack(&c, st, weight[st], ++stamp);
	if (r < 0)
		goto out;
	cmd = clean(stoke_profile_string(p, m->command));
	fputs("# callgrind format\nversion: 1\ncreator: stoke " STOKE_VERSION "\n", out);
	fprintf(out, "pid: %" PRIu32 "\ncmd: %s\npart: 1\n\n", m->pid, cmd ? cmd : "");
	free(cmd);
	fputs("positions: line\nevents: Samples\n", out);
	fprintf(out, "summary: %" PRIu64 "\n", stoke_profile_total(p));
	r = emit(&c, out);
	fprintf(out, "\ntotals: %" PRIu64 "\n", stoke_profile_total(p));
	if (r >= 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
out:
	for (size_t i = 0; i < c.nfuncs; i++) {
		free(c.funcs[i].name);
		free(c.funcs[i].file);
		free(c.funcs[i].module);
	}
	free(c.funcs);
	stoke_hashmap_free(&c.fn_index);
	free(c.frame_fn);
	free(c.costs);
	stoke_hashmap_free(&c.cost_index);
	free(c.path);
	free(weight);
	return r;
}
