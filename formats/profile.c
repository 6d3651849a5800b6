/*
 * The profile model (see profile.h): interned strings, interned frames, a
 * prefix tree of stacks, samples, threads and metadata.
 *
 * Every table is a growable array indexed by id plus, where lookups by value
 * are needed, an index of ids by hash (common/hashmap.h): keys live in the
 * arrays, the index holds ids and their hashes only. All insertions and
 * lookups are amortised O(1): a profile with 10^6 samples and 10^5 stacks
 * must not cost more than a few passes over its tables.
 */
#include "formats/profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/util.h"
#include "formats/spans.h"

/* Ids are uint32_t and 0 is reserved in every table. */
#define ID_LIMIT ((size_t)UINT32_MAX)

struct stoke_profile {
	/* strings: bytes in one pool, each NUL-terminated; id 0 is "" */
	char *pool;
	size_t pool_len, pool_cap;
	size_t *str_off;
	size_t *str_len;
	size_t nstr, str_cap, str_len_cap;
	struct stoke_hashmap str_idx;

	/* frames: index 0 is an unused placeholder so ids index directly */
	struct stoke_pframe *frames;
	size_t nframes, frames_cap; /* nframes counts the placeholder */
	struct stoke_hashmap frame_idx;

	/* stacks: index 0 is the empty stack {0, 0, 0} */
	struct stoke_pstack *stacks;
	size_t nstacks, stacks_cap; /* counts the empty stack */
	struct stoke_hashmap stack_idx;

	struct stoke_psample *samples;
	size_t nsamples, samples_cap;
	uint64_t total;

	/* threads in first-seen order; the index maps tid -> position + 1 */
	struct stoke_pthread *threads;
	size_t nthreads, threads_cap;
	struct stoke_hashmap thread_idx;

	struct stoke_pmeta meta;

	struct stoke_pspans *spans; /* formats/spans.c; NULL: none */
};

/* --- lifetime -------------------------------------------------------------- */

static int add_string(struct stoke_profile *p, const char *s, size_t len, uint32_t *ret);

int stoke_profile_new(struct stoke_profile **ret)
{
	struct stoke_profile *p;
	uint32_t id;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	/* Id 0 of each table is a placeholder, so ids index the arrays. The
	 * empty string is never entered in the string index: intern
	 * short-circuits it. */
	r = add_string(p, "", 0, &id);
	if (r >= 0)
		r = STOKE_GROW(p->frames, p->frames_cap, 1);
	if (r >= 0)
		r = STOKE_GROW(p->stacks, p->stacks_cap, 1);
	if (r < 0) {
		stoke_profile_free(p);
		return r;
	}
	p->frames[0] = (struct stoke_pframe){ 0 };
	p->nframes = 1;
	p->stacks[0] = (struct stoke_pstack){ 0 };
	p->nstacks = 1;
	*ret = p;
	return 0;
}

void stoke_profile_free(struct stoke_profile *p)
{
	if (!p)
		return;
	free(p->pool);
	free(p->str_off);
	free(p->str_len);
	stoke_hashmap_free(&p->str_idx);
	free(p->frames);
	stoke_hashmap_free(&p->frame_idx);
	free(p->stacks);
	stoke_hashmap_free(&p->stack_idx);
	free(p->samples);
	free(p->threads);
	stoke_hashmap_free(&p->thread_idx);
	stoke_pspans_free(p->spans);
	free(p);
}

struct stoke_pspans *stoke_profile_get_spans(const struct stoke_profile *p)
{
	return p->spans;
}

void stoke_profile_set_spans(struct stoke_profile *p, struct stoke_pspans *t)
{
	p->spans = t;
}

/* --- strings --------------------------------------------------------------- */

/* Append s to the pool and the per-id arrays; does not touch the index. */
static int add_string(struct stoke_profile *p, const char *s, size_t len, uint32_t *ret)
{
	size_t need;

	if (p->nstr >= ID_LIMIT || len >= SIZE_MAX - p->pool_len - 1)
		return -ENOMEM;
	need = p->nstr + 1;
	if (STOKE_GROW(p->str_off, p->str_cap, need) < 0 ||
	    STOKE_GROW(p->str_len, p->str_len_cap, need) < 0 ||
	    STOKE_GROW(p->pool, p->pool_cap, p->pool_len + len + 1) < 0)
		return -ENOMEM;
	if (len)
		memcpy(p->pool + p->pool_len, s, len);
	p->pool[p->pool_len + len] = '\0';
	p->str_off[p->nstr] = p->pool_len;
	p->str_len[p->nstr] = len;
	p->pool_len += len + 1;
	*ret = (uint32_t)p->nstr++;
	return 0;
}

int stoke_profile_intern_n(struct stoke_profile *p, const char *s, size_t len, uint32_t *ret)
{
	struct stoke_hashmap *t = &p->str_idx;
	struct stoke_hashmap_iter it;
	uint64_t h;
	uint32_t id;
	int r;

	if (len == 0) {
		*ret = 0;
		return 0;
	}
	if (!s)
		return -EINVAL;
	h = stoke_hash_bytes(STOKE_HASH_INIT, s, len);
	for (id = stoke_hashmap_first(t, h, &it); id; id = stoke_hashmap_next(t, &it)) {
		if (p->str_len[id] == len && memcmp(p->pool + p->str_off[id], s, len) == 0) {
			*ret = id;
			return 0;
		}
	}
	/* Reserve first so that a failure leaves no unindexed string behind. */
	r = stoke_hashmap_reserve(t, 1);
	if (r < 0)
		return r;
	r = add_string(p, s, len, &id);
	if (r < 0)
		return r;
	stoke_hashmap_put(t, h, id);
	*ret = id;
	return 0;
}

int stoke_profile_intern(struct stoke_profile *p, const char *s, uint32_t *ret)
{
	return stoke_profile_intern_n(p, s, s ? strlen(s) : 0, ret);
}

/* NULL for an id that was never handed out. */
const char *stoke_profile_string(const struct stoke_profile *p, uint32_t id)
{
	if (id >= p->nstr)
		return NULL;
	return p->pool + p->str_off[id];
}

size_t stoke_profile_nstrings(const struct stoke_profile *p)
{
	return p->nstr;
}

/* --- frames ---------------------------------------------------------------- */

/*
 * Hash the fields one by one, never the struct's bytes: its padding is
 * indeterminate in a caller's automatic variable.
 */
static uint64_t frame_hash(const struct stoke_pframe *f)
{
	uint64_t h = STOKE_HASH_INIT;

	h = stoke_hash_u64(h ^ f->name);
	h = stoke_hash_u64(h ^ ((uint64_t)f->file << 32 | f->line));
	h = stoke_hash_u64(h ^ f->module);
	h = stoke_hash_u64(h ^ f->offset);
	h = stoke_hash_u64(h ^ ((uint64_t)f->kind << 1 | (f->inlined ? 1 : 0)));
	return h;
}

static bool frame_eq(const struct stoke_pframe *a, const struct stoke_pframe *b)
{
	return a->name == b->name && a->file == b->file && a->line == b->line &&
	       a->module == b->module && a->offset == b->offset && a->kind == b->kind &&
	       a->inlined == b->inlined && a->decl_file == b->decl_file &&
	       a->decl_line == b->decl_line;
}

int stoke_profile_frame(struct stoke_profile *p, const struct stoke_pframe *f, uint32_t *ret)
{
	struct stoke_hashmap *t = &p->frame_idx;
	struct stoke_hashmap_iter it;
	struct stoke_pframe *nf;
	uint64_t h;
	uint32_t id;
	int r;

	if (!f || f->name >= p->nstr || f->file >= p->nstr || f->module >= p->nstr ||
	    f->decl_file >= p->nstr ||
	    f->kind > STOKE_PFRAME_SYNTHETIC)
		return -EINVAL;
	h = frame_hash(f);
	for (id = stoke_hashmap_first(t, h, &it); id; id = stoke_hashmap_next(t, &it)) {
		if (frame_eq(&p->frames[id], f)) {
			*ret = id;
			return 0;
		}
	}
	if (p->nframes >= ID_LIMIT)
		return -ENOMEM;
	r = stoke_hashmap_reserve(t, 1);
	if (r < 0)
		return r;
	r = STOKE_GROW(p->frames, p->frames_cap, p->nframes + 1);
	if (r < 0)
		return r;
	id = (uint32_t)p->nframes++;
	nf = &p->frames[id];
	/* Copy field by field so the stored copy's padding is zeroed. */
	memset(nf, 0, sizeof(*nf));
	nf->name = f->name;
	nf->file = f->file;
	nf->line = f->line;
	nf->module = f->module;
	nf->offset = f->offset;
	nf->kind = f->kind;
	nf->inlined = f->inlined;
	nf->decl_file = f->decl_file;
	nf->decl_line = f->decl_line;
	stoke_hashmap_put(t, h, id);
	*ret = id;
	return 0;
}

const struct stoke_pframe *stoke_profile_get_frame(const struct stoke_profile *p, uint32_t id)
{
	if (id == 0 || id >= p->nframes)
		return NULL;
	return &p->frames[id];
}

size_t stoke_profile_nframes(const struct stoke_profile *p)
{
	return p->nframes - 1;
}

/* --- stacks ---------------------------------------------------------------- */

static uint64_t stack_hash(uint32_t parent, uint32_t frame)
{
	return stoke_hash_u64((uint64_t)parent << 32 | frame);
}

int stoke_profile_stack(struct stoke_profile *p, uint32_t parent, uint32_t frame, uint32_t *ret)
{
	struct stoke_hashmap *t = &p->stack_idx;
	struct stoke_hashmap_iter it;
	struct stoke_pstack *s;
	uint64_t h;
	uint32_t id;
	int r;

	if (parent >= p->nstacks || frame == 0 || frame >= p->nframes)
		return -EINVAL;
	h = stack_hash(parent, frame);
	for (id = stoke_hashmap_first(t, h, &it); id; id = stoke_hashmap_next(t, &it)) {
		s = &p->stacks[id];
		if (s->parent == parent && s->frame == frame) {
			*ret = id;
			return 0;
		}
	}
	if (p->nstacks >= ID_LIMIT)
		return -ENOMEM;
	r = stoke_hashmap_reserve(t, 1);
	if (r < 0)
		return r;
	r = STOKE_GROW(p->stacks, p->stacks_cap, p->nstacks + 1);
	if (r < 0)
		return r;
	id = (uint32_t)p->nstacks++;
	/* Depth cannot overflow: it is at most the number of stacks. */
	p->stacks[id] = (struct stoke_pstack){
		.parent = parent,
		.frame = frame,
		.depth = p->stacks[parent].depth + 1,
	};
	stoke_hashmap_put(t, h, id);
	*ret = id;
	return 0;
}

/* Stack 0 (the empty stack, depth 0) is valid here; NULL when out of range. */
const struct stoke_pstack *stoke_profile_get_stack(const struct stoke_profile *p, uint32_t id)
{
	if (id >= p->nstacks)
		return NULL;
	return &p->stacks[id];
}

size_t stoke_profile_nstacks(const struct stoke_profile *p)
{
	return p->nstacks - 1;
}

size_t stoke_profile_stack_frames(const struct stoke_profile *p, uint32_t stack,
				  uint32_t *out, size_t max)
{
	size_t depth, i = 0;

	if (stack >= p->nstacks)
		return 0;
	depth = p->stacks[stack].depth;
	/* The parent links lead to the root, so only the leaf-most max frames
	 * are written; callers that want all of them retry with depth. */
	for (uint32_t s = stack; s && i < max; s = p->stacks[s].parent)
		out[i++] = p->stacks[s].frame;
	return depth;
}

/* --- threads --------------------------------------------------------------- */

/* The thread with tid, or NULL. Pure lookup: no state changes. */
static struct stoke_pthread *thread_lookup(const struct stoke_profile *p, uint32_t tid)
{
	const struct stoke_hashmap *t = &p->thread_idx;
	struct stoke_hashmap_iter it;
	uint32_t pos1;

	for (pos1 = stoke_hashmap_first(t, stoke_hash_u64(tid), &it); pos1;
	     pos1 = stoke_hashmap_next(t, &it))
		if (p->threads[pos1 - 1].tid == tid)
			return &p->threads[pos1 - 1];
	return NULL;
}

static int thread_add(struct stoke_profile *p, uint32_t pid, uint32_t tid, uint32_t name,
		      struct stoke_pthread **ret)
{
	struct stoke_hashmap *t = &p->thread_idx;
	int r;

	if (p->nthreads >= ID_LIMIT)
		return -ENOMEM;
	r = stoke_hashmap_reserve(t, 1);
	if (r < 0)
		return r;
	r = STOKE_GROW(p->threads, p->threads_cap, p->nthreads + 1);
	if (r < 0)
		return r;
	p->threads[p->nthreads] = (struct stoke_pthread){
		.pid = pid,
		.tid = tid,
		.name = name,
	};
	p->nthreads++;
	stoke_hashmap_put(t, stoke_hash_u64(tid), (uint32_t)p->nthreads);
	*ret = &p->threads[p->nthreads - 1];
	return 0;
}

int stoke_profile_thread(struct stoke_profile *p, uint32_t pid, uint32_t tid, const char *name)
{
	struct stoke_pthread *th;
	uint32_t nid = 0;
	int r;

	/* Intern first: a failure must not leave a half-made thread. */
	if (name) {
		r = stoke_profile_intern(p, name, &nid);
		if (r < 0)
			return r;
	}
	th = thread_lookup(p, tid);
	if (!th)
		return thread_add(p, pid, tid, nid, &th);
	/* A thread created by a sample has pid 0 until someone knows better;
	 * a known pid is never overwritten by 0. */
	if (pid)
		th->pid = pid;
	if (name)
		th->name = nid;
	return 0;
}

const struct stoke_pthread *stoke_profile_threads(const struct stoke_profile *p, size_t *ret_n)
{
	*ret_n = p->nthreads;
	return p->threads;
}

const struct stoke_pthread *stoke_profile_find_thread(const struct stoke_profile *p, uint32_t tid)
{
	return thread_lookup(p, tid);
}

/* --- samples --------------------------------------------------------------- */

/*
 * Also keeps meta.time_first/time_last as the range of sample times seen,
 * unless the caller has already set a range, which is widened instead.
 */
int stoke_profile_add_sample(struct stoke_profile *p, uint32_t tid, uint64_t time,
			     uint32_t stack, uint64_t weight)
{
	return stoke_profile_add_sample_kind(p, tid, time, stack, weight, STOKE_SAMPLE_ON_CPU);
}

uint64_t stoke_profile_total_kind(const struct stoke_profile *p, uint8_t kind)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < p->nsamples; i++)
		if (p->samples[i].kind == kind)
			sum += p->samples[i].weight;
	return sum;
}

int stoke_profile_add_sample_kind(struct stoke_profile *p, uint32_t tid, uint64_t time,
				  uint32_t stack, uint64_t weight, uint8_t kind)
{
	struct stoke_pthread *th;
	uint64_t total;
	int r;

	if (stack >= p->nstacks || weight == 0 || kind > STOKE_SAMPLE_OFF_CPU)
		return -EINVAL;
	/* Refuse what would wrap the totals rather than report nonsense. */
	if (__builtin_add_overflow(p->total, weight, &total))
		return -EINVAL;
	r = STOKE_GROW(p->samples, p->samples_cap, p->nsamples + 1);
	if (r < 0)
		return r;
	th = thread_lookup(p, tid);
	if (!th) {
		r = thread_add(p, 0, tid, 0, &th);
		if (r < 0)
			return r;
	}
	p->samples[p->nsamples] = (struct stoke_psample){
		.tid = tid,
		.stack = stack,
		.time = time,
		.weight = weight,
		.kind = kind,
	};
	if (p->nsamples == 0 && p->meta.time_first == 0 && p->meta.time_last == 0) {
		p->meta.time_first = time;
		p->meta.time_last = time;
	} else {
		p->meta.time_first = STOKE_MIN(p->meta.time_first, time);
		p->meta.time_last = STOKE_MAX(p->meta.time_last, time);
	}
	p->nsamples++;
	p->total = total;
	/* Cannot overflow: a thread's weight is part of the total. */
	th->samples += weight;
	if (kind == STOKE_SAMPLE_OFF_CPU)
		th->off_cpu += weight;
	return 0;
}

const struct stoke_psample *stoke_profile_samples(const struct stoke_profile *p, size_t *ret_n)
{
	*ret_n = p->nsamples;
	return p->samples;
}

uint64_t stoke_profile_total(const struct stoke_profile *p)
{
	return p->total;
}

/* --- metadata -------------------------------------------------------------- */

struct stoke_pmeta *stoke_profile_meta(struct stoke_profile *p)
{
	return &p->meta;
}

const struct stoke_pmeta *stoke_profile_cmeta(const struct stoke_profile *p)
{
	return &p->meta;
}
