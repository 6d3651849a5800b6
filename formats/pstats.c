/*
 * The pstats writer and the statistics behind it and the text table (see
 * pstats.h and FORMATS.md "pstats").
 *
 * Computation works on distinct stacks, not samples: weights are first
 * summed per stack id, so a profile with 10^6 samples over 10^4 stacks costs
 * 10^4 walks. Each walk maps frames to function keys (cached per frame id),
 * and counts every function and edge once per stack using a stamp per
 * function and per edge (the recursion-safe rule: a function that appears
 * twice in one stack gets nc twice but cc and ct once).
 *
 * Output order is by key content (file, line, name), never by string or
 * frame ids, so the file depends only on what the profile says.
 */
#include "formats/pstats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/escape.h"
#include "formats/folded.h"
#include "common/hashmap.h"
#include "common/util.h"

#define NAME_MAX_LEN 4096

/* Working state: functions by key, edges by (caller, callee). */
struct pcalc {
	struct stoke_pstats *st;
	const struct stoke_profile *p;
	uint32_t *frame_fn;      /* per frame id: function index + 1 */
	struct stoke_hashmap fn_index; /* keys -> function index + 1 */
	uint64_t *fn_stamp;      /* last stack that counted cc/ct */
	size_t fn_stamp_cap;
	struct pedge {
		uint32_t caller, callee;
		uint64_t nc, cc, tt, ct, stamp;
	} *edges;
	size_t nedges, edges_cap;
	struct stoke_hashmap edge_index; /* (caller, callee) -> edge index + 1 */
	uint32_t *path;          /* function indices of one stack, root first */
	size_t path_cap;
};

static int pool_add(struct stoke_pstats *st, const char *s, size_t *ret_off)
{
	size_t n = strlen(s) + 1;

	if (STOKE_GROW(st->pool, st->pool_cap, st->pool_len + n) < 0)
		return -ENOMEM;
	memcpy(st->pool + st->pool_len, s, n);
	*ret_off = st->pool_len;
	st->pool_len += n;
	return 0;
}

static uint64_t key_hash(const char *file, uint32_t line, const char *name)
{
	uint64_t h = stoke_hash_bytes(STOKE_HASH_INIT, file, strlen(file) + 1);

	h = stoke_hash_bytes(h, name, strlen(name) + 1);
	return stoke_hash_u64(h ^ line);
}

/* The function index of key (file, line, name), added if new. */
static int function_of(struct pcalc *c, const char *file, uint32_t line, const char *name,
		       uint32_t *ret)
{
	struct stoke_pstats *st = c->st;
	struct stoke_hashmap_iter it;
	uint64_t h = key_hash(file, line, name);
	size_t foff, noff;
	uint32_t fi;

	for (fi = stoke_hashmap_first(&c->fn_index, h, &it); fi;
	     fi = stoke_hashmap_next(&c->fn_index, &it)) {
		const struct stoke_pstats_func *f = &st->funcs[fi - 1];

		if (f->line == line && !strcmp(st->pool + (uintptr_t)f->file, file) &&
		    !strcmp(st->pool + (uintptr_t)f->name, name)) {
			*ret = fi - 1;
			return 0;
		}
	}
	if (stoke_hashmap_reserve(&c->fn_index, 1) < 0 ||
	    STOKE_GROW(st->funcs, st->funcs_cap, st->nfuncs + 1) < 0 ||
	    STOKE_GROW(c->fn_stamp, c->fn_stamp_cap, st->nfuncs + 1) < 0)
		return -ENOMEM;
	if (pool_add(st, file, &foff) < 0 || pool_add(st, name, &noff) < 0)
		return -ENOMEM;
	st->funcs[st->nfuncs] = (struct stoke_pstats_func){
		.file = (const char *)(uintptr_t)foff,
		.line = line,
		.name = (const char *)(uintptr_t)noff,
	};
	c->fn_stamp[st->nfuncs] = 0;
	stoke_hashmap_put(&c->fn_index, h, (uint32_t)st->nfuncs + 1);
	*ret = (uint32_t)st->nfuncs++;
	return 0;
}

/*
 * The key of a frame, as cProfile keys a function: (the file and first line
 * of its definition (DWARF decl_file/decl_line); name). Without those: (the
 * source file, or module path, or '~'; 0; name).
 * Names are made valid UTF-8 here, since marshal "u" strings that are not
 * make pstats fail to load the whole file.
 */
static int frame_function(struct pcalc *c, uint32_t frame, uint32_t *ret)
{
	const struct stoke_pframe *f;
	const char *file, *module;
	char name[NAME_MAX_LEN];
	char *sfile, *sname;
	uint32_t line = 0;
	int r;

	if (c->frame_fn[frame]) {
		*ret = c->frame_fn[frame] - 1;
		return 0;
	}
	f = stoke_profile_get_frame(c->p, frame);
	if (!f)
		return -EINVAL;
	stoke_frame_display(c->p, f, name, sizeof(name));
	file = stoke_profile_string(c->p, f->file);
	module = stoke_profile_string(c->p, f->module);
	if (f->decl_line && *stoke_profile_string(c->p, f->decl_file)) {
		file = stoke_profile_string(c->p, f->decl_file);
		line = f->decl_line;
	}
	if (!*file)
		file = *module ? module : "~";
	sfile = stoke_utf8_sanitize(file);
	sname = stoke_utf8_sanitize(name);
	if (!sfile || !sname) {
		free(sfile);
		free(sname);
		return -ENOMEM;
	}
	r = function_of(c, sfile, line, sname, ret);
	free(sfile);
	free(sname);
	if (r >= 0)
		c->frame_fn[frame] = *ret + 1;
	return r;
}

static int edge_of(struct pcalc *c, uint32_t caller, uint32_t callee, struct pedge **ret)
{
	uint64_t h = stoke_hash_u64((uint64_t)caller << 32 | callee);
	struct stoke_hashmap_iter it;
	uint32_t e;

	for (e = stoke_hashmap_first(&c->edge_index, h, &it); e;
	     e = stoke_hashmap_next(&c->edge_index, &it)) {
		if (c->edges[e - 1].caller == caller && c->edges[e - 1].callee == callee) {
			*ret = &c->edges[e - 1];
			return 0;
		}
	}
	if (stoke_hashmap_reserve(&c->edge_index, 1) < 0 ||
	    STOKE_GROW(c->edges, c->edges_cap, c->nedges + 1) < 0)
		return -ENOMEM;
	c->edges[c->nedges] = (struct pedge){ .caller = caller, .callee = callee };
	stoke_hashmap_put(&c->edge_index, h, (uint32_t)c->nedges + 1);
	*ret = &c->edges[c->nedges++];
	return 0;
}

/* Count one stack (function indices root first) of weight w. */
static int count_path(struct pcalc *c, size_t depth, uint64_t w, uint64_t stamp)
{
	struct stoke_pstats *st = c->st;
	struct pedge *e;
	int r;

	for (size_t i = 0; i < depth; i++) {
		struct stoke_pstats_func *f = &st->funcs[c->path[i]];

		f->nc += w;
		if (c->fn_stamp[c->path[i]] != stamp) {
			c->fn_stamp[c->path[i]] = stamp;
			f->cc += w;
			f->ct += w;
		}
		if (i == 0)
			continue;
		r = edge_of(c, c->path[i - 1], c->path[i], &e);
		if (r < 0)
			return r;
		e->nc += w;
		if (e->stamp != stamp) {
			e->stamp = stamp;
			e->cc += w;
			e->ct += w;
		}
		if (i == depth - 1)
			e->tt += w;
	}
	st->funcs[c->path[depth - 1]].tt += w;
	return 0;
}

static int walk_stacks(struct pcalc *c, const uint64_t *stack_weight, bool synthetic_root)
{
	size_t nstacks = stoke_profile_nstacks(c->p);
	uint32_t root = 0, unknown = UINT32_MAX, frames[1];
	uint64_t stamp = 0;
	int r;

	if (synthetic_root) {
		r = function_of(c, "~", 0, "<all threads>", &root);
		if (r < 0)
			return r;
	}
	for (uint32_t s = 0; s <= nstacks; s++) {
		size_t depth, start = synthetic_root ? 1 : 0;

		if (!stack_weight[s])
			continue;
		depth = stoke_profile_stack_frames(c->p, s, frames, 0);
		if (STOKE_GROW(c->path, c->path_cap, depth + 2) < 0)
			return -ENOMEM;
		if (synthetic_root)
			c->path[0] = root;
		if (depth == 0) {
			/* An empty stack still took time: give it a leaf so that
			 * the sum of tt is the total. */
			if (unknown == UINT32_MAX) {
				r = function_of(c, "~", 0, "[unknown]", &unknown);
				if (r < 0)
					return r;
			}
			c->path[start] = unknown;
			depth = 1;
		} else {
			/* Leaf-first walk, written backwards: root first. */
			size_t i = depth;

			for (uint32_t n = s; n; n = stoke_profile_get_stack(c->p, n)->parent) {
				r = frame_function(c, stoke_profile_get_stack(c->p, n)->frame,
						   &c->path[start + --i]);
				if (r < 0)
					return r;
			}
		}
		r = count_path(c, start + depth, stack_weight[s], ++stamp);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_func(const void *a, const void *b)
{
	const struct stoke_pstats_func *x = a, *y = b;
	int r = strcmp(x->file, y->file);

	if (r)
		return r;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_edge(const void *a, const void *b)
{
	const struct stoke_pstats_edge *x = a, *y = b;

	return x->caller < y->caller ? -1 : x->caller > y->caller;
}

/* Offsets become pointers, functions are sorted by key and each gets its
 * callers (sorted by the caller's position). */
static int finish(struct pcalc *c)
{
	struct stoke_pstats *st = c->st;
	uint32_t *pos;
	size_t *ncallers;

	for (size_t i = 0; i < st->nfuncs; i++) {
		st->funcs[i].file = st->pool + (uintptr_t)st->funcs[i].file;
		st->funcs[i].name = st->pool + (uintptr_t)st->funcs[i].name;
		/* remember the pre-sort index in callers (unused until below) */
		st->funcs[i].ncallers = i;
	}
	pos = malloc((st->nfuncs + 1) * sizeof(*pos));
	ncallers = calloc(st->nfuncs + 1, sizeof(*ncallers));
	if (!pos || !ncallers) {
		free(pos);
		free(ncallers);
		return -ENOMEM;
	}
	if (st->nfuncs)
		qsort(st->funcs, st->nfuncs, sizeof(*st->funcs), cmp_func);
	for (size_t i = 0; i < st->nfuncs; i++) {
		pos[st->funcs[i].ncallers] = (uint32_t)i;
		st->funcs[i].ncallers = 0;
	}
	for (size_t k = 0; k < c->nedges; k++)
		ncallers[pos[c->edges[k].callee]]++;
	for (size_t i = 0; i < st->nfuncs; i++) {
		st->funcs[i].callers = calloc(ncallers[i] ? ncallers[i] : 1,
					      sizeof(*st->funcs[i].callers));
		if (!st->funcs[i].callers) {
			free(pos);
			free(ncallers);
			return -ENOMEM;
		}
	}
	for (size_t k = 0; k < c->nedges; k++) {
		struct pedge *e = &c->edges[k];
		struct stoke_pstats_func *f = &st->funcs[pos[e->callee]];

		f->callers[f->ncallers++] = (struct stoke_pstats_edge){
			.caller = pos[e->caller], .nc = e->nc, .cc = e->cc, .tt = e->tt, .ct = e->ct,
		};
	}
	for (size_t i = 0; i < st->nfuncs; i++)
		if (st->funcs[i].ncallers > 1)
			qsort(st->funcs[i].callers, st->funcs[i].ncallers,
			      sizeof(*st->funcs[i].callers), cmp_edge);
	free(pos);
	free(ncallers);
	return 0;
}

static bool several_threads(const struct stoke_profile *p)
{
	const struct stoke_pthread *th;
	size_t n, with_samples = 0;

	th = stoke_profile_threads(p, &n);
	for (size_t i = 0; i < n; i++)
		with_samples += th[i].samples > 0;
	return with_samples > 1;
}

int stoke_pstats_compute(const struct stoke_profile *p, struct stoke_pstats *ret)
{
	struct pcalc c = { .st = ret, .p = p };
	const struct stoke_psample *s;
	uint64_t *stack_weight;
	size_t n;
	uint32_t none;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->period_s = (double)stoke_profile_cmeta(p)->period_ns / 1e9;
	stack_weight = calloc(stoke_profile_nstacks(p) + 1, sizeof(*stack_weight));
	c.frame_fn = calloc(stoke_profile_nframes(p) + 1, sizeof(*c.frame_fn));
	if (!stack_weight || !c.frame_fn) {
		r = -ENOMEM;
		goto out;
	}
	s = stoke_profile_samples(p, &n);
	for (size_t i = 0; i < n; i++)
		stack_weight[s[i].stack] += s[i].weight;
	r = walk_stacks(&c, stack_weight, several_threads(p));
	/* An empty dict does not load: say so with one entry. */
	if (r >= 0 && ret->nfuncs == 0)
		r = function_of(&c, "~", 0, "<no samples>", &none);
	if (r >= 0)
		r = finish(&c);
out:
	free(stack_weight);
	free(c.frame_fn);
	stoke_hashmap_free(&c.fn_index);
	free(c.fn_stamp);
	free(c.edges);
	stoke_hashmap_free(&c.edge_index);
	free(c.path);
	if (r < 0)
		stoke_pstats_done(ret);
	return r;
}

void stoke_pstats_done(struct stoke_pstats *st)
{
	for (size_t i = 0; st->funcs && i < st->nfuncs; i++)
		free(st->funcs[i].callers);
	free(st->funcs);
	free(st->pool);
	memset(st, 0, sizeof(*st));
}

/* --- marshal ---------------------------------------------------------------- */

static void m_i32(FILE *out, int32_t v)
{
	uint32_t u = (uint32_t)v;

	for (int i = 0; i < 4; i++)
		putc((int)(u >> (8 * i)) & 0xff, out);
}

/* An int: 'i' when it fits in int32, else 'l' (15-bit digits). */
static void m_int(FILE *out, uint64_t v)
{
	uint16_t digits[8];
	int n = 0;

	if (v <= INT32_MAX) {
		putc('i', out);
		m_i32(out, (int32_t)v);
		return;
	}
	for (; v; v >>= 15)
		digits[n++] = (uint16_t)(v & 0x7fff);
	putc('l', out);
	m_i32(out, n);
	for (int i = 0; i < n; i++) {
		putc(digits[i] & 0xff, out);
		putc(digits[i] >> 8, out);
	}
}

static void m_float(FILE *out, double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	putc('g', out);
	for (int i = 0; i < 8; i++)
		putc((int)(u >> (8 * i)) & 0xff, out);
}

/* s is valid UTF-8 already (sanitised when the key was made). */
static void m_str(FILE *out, const char *s)
{
	size_t n = strlen(s);

	putc('u', out);
	m_i32(out, (int32_t)n);
	fwrite(s, 1, n, out);
}

static void m_key(FILE *out, const struct stoke_pstats_func *f)
{
	putc(')', out);
	putc(3, out);
	m_str(out, f->file);
	m_int(out, f->line);
	m_str(out, f->name);
}

int stoke_pstats_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		       FILE *out)
{
	struct stoke_pstats st;
	int r;

	r = stoke_pstats_compute(p, &st);
	if (r < 0)
		return r;
	putc('{', out);
	for (size_t i = 0; i < st.nfuncs; i++) {
		const struct stoke_pstats_func *f = &st.funcs[i];

		m_key(out, f);
		putc(')', out);
		putc(5, out);
		m_int(out, f->cc);
		m_int(out, f->nc);
		m_float(out, (double)f->tt * st.period_s);
		m_float(out, (double)f->ct * st.period_s);
		putc('{', out);
		for (size_t k = 0; k < f->ncallers; k++) {
			const struct stoke_pstats_edge *e = &f->callers[k];

			m_key(out, &st.funcs[e->caller]);
			/* (nc, cc, tt, ct): swapped against the main tuple, as
			 * cProfile writes it and pstats reads it */
			putc(')', out);
			putc(4, out);
			m_int(out, e->nc);
			m_int(out, e->cc);
			m_float(out, (double)e->tt * st.period_s);
			m_float(out, (double)e->ct * st.period_s);
		}
		putc('0', out);
	}
	putc('0', out);
	stoke_pstats_done(&st);
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}
