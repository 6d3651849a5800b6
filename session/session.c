/*
 * A profiling session: sampler records flow through here into the
 * symbolizer (mappings, exec, forks) and, for samples, are turned into
 * frames and a stack in the profile model.
 *
 * Draining the rings never waits on symbol lookups, which can take
 * milliseconds per address in a large binary: while draining, a sample is
 * only located (stoke_symbolizer_sample_locs: mappings resolved as they are
 * at sample time, user stacks unwound) and kept as raw data:
 *   - each unique location once, in a location table;
 *   - its stack as a node of a prefix tree over location ids;
 *   - the sample itself as (tid, time, node) in a pending list.
 * Naming happens when a profile is wanted (stop, sync, rotate: "settle"):
 * each unique location is named once, each tree node becomes a profile
 * stack once, and the pending samples go into the profile in the order they
 * were read, so frames, strings and stacks get the same ids as when every
 * sample was named on arrival. The tables start empty again after that, so
 * a long-running daemon session holds only one period's raw stacks.
 */
#include "session/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/hashmap.h"
#include "common/log.h"
#include "sampler/maps.h"
#include "session/driver.h"
#include "stack/cpython/source.h"
#include "stack/interp.h"
#include "session/resources.h"
#include "session/spans.h"
#include "symbolizer/symbolizer.h"
#include "common/util.h"

/* The kernel caps callchains at kernel.perf_event_max_stack (127 by
 * default); leave room for a raised sysctl. */
#define SESSION_MAX_FRAMES 1024
/* While naming, the rings are drained at least this often (a DWARF ring
 * holds about half a second of one busy thread's samples). */
#define SETTLE_DRAIN_NS 20000000ULL

struct target {
	pid_t pid;
	bool alive;
};

/* A raw stack: the prefix-tree node of its leaf location. Node 0 is the
 * root (the empty stack); a node's parent was created before it. */
struct raw_node {
	uint32_t parent;
	uint32_t loc;
};

struct pending {
	uint32_t tid;
	uint32_t node;
	uint64_t time;
	uint64_t weight; /* samples it stands for (an aggregating sampler) */
	uint8_t kind;    /* enum stoke_psample_kind */
};

/* While settling: what a location became in the current profile. */
struct loc_named {
	uint32_t first;   /* into settle_fids: frame ids, root first */
	uint16_t nframes; /* 0: not named yet */
	uint16_t unknown; /* frames without a function name */
};

/* While settling: what a node became (stack 0 is also the empty stack). */
struct node_named {
	uint32_t stack;
	uint32_t unknown; /* unknown frames on the whole stack */
	bool done;
};

struct stoke_session {
	struct stoke_session_opts opts;
	struct stoke_sampler *sampler;
	struct stoke_symbolizer *symbolizer;
	struct stoke_profile *profile;

	struct target *targets;
	size_t ntargets, targets_cap;

	struct stoke_symbol frames[SESSION_MAX_FRAMES];
	struct stoke_frame_loc locbuf[SESSION_MAX_FRAMES];

	/* Interpreter frames (CPython) spliced into samples' stacks. */
	struct stoke_interp_source interp;
	struct stoke_interp_frame iframes[256];
	struct stoke_interp_slot islots[SESSION_MAX_FRAMES];
	struct stoke_frame_loc ibuf[SESSION_MAX_FRAMES];
	uint64_t naddrs[SESSION_MAX_FRAMES];
	bool nuser[SESSION_MAX_FRAMES];
	uint64_t python_samples, python_approx;

	/* Raw stacks since the last settle (see the file comment), each
	 * table indexed by common/hashmap over ids + 1. */
	struct stoke_frame_loc *locs;
	size_t nlocs, locs_cap;
	struct stoke_hashmap loc_index;
	struct raw_node *nodes;
	size_t nnodes, nodes_cap;
	struct stoke_hashmap node_index;
	struct pending *pending;
	size_t npending, pending_cap;
	/* Settle scratch, indexed by location and node id. */
	struct loc_named *loc_named;
	struct node_named *node_named;
	uint32_t *settle_fids;
	size_t nsettle_fids, settle_fids_cap;

	/* A settle drains the rings itself every SETTLE_DRAIN_NS of naming:
	 * stoked settles on a job thread, and its loop does not drain the
	 * session meanwhile. Samples read then stay pending for the next
	 * settle (they came after the sync point). */
	size_t settle_done;       /* pending samples settled so far */
	uint64_t settle_drain_ns; /* when the last drain happened */

	uint64_t samples;
	uint64_t unknown_frames;
	uint64_t lost_limit; /* samples dropped past max_samples */
	uint64_t lost_limit_base;
	int error; /* first error seen inside the record callback */
	bool stopped;
	uint64_t window_end_ns; /* events disabled at (wall clock); 0: not yet */
	/* The targets' RSS and CPU over the window (from the first target). */
	struct stoke_rsampler *rsampler;
	/* Its points for the profile being written, copied at each settle
	 * (fill_meta): stoked reads on another thread meanwhile. */
	struct stoke_rseries res_snap;
	/* Kernel counters at the last rotation: each profile reports its own
	 * share of lost and throttled samples. */
	uint64_t lost_base, throttled_base;
	/* The first target's executable, for run.json. */
	char *exe;
	char *build_id;
	/* Open spans per thread (session/spans.h); NULL until the first. */
	struct stoke_span_tracker *spans;
};

void stoke_session_opts_init(struct stoke_session_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	stoke_sampler_opts_init(&opts->sampler);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint8_t pframe_kind(enum stoke_frame_kind k)
{
	switch (k) {
	case STOKE_FRAME_KERNEL:
		return STOKE_PFRAME_KERNEL;
	case STOKE_FRAME_JIT:
		return STOKE_PFRAME_JIT;
	case STOKE_FRAME_SYNTHETIC:
		return STOKE_PFRAME_SYNTHETIC;
	case STOKE_FRAME_USER:
		break;
	}
	return STOKE_PFRAME_USER;
}

/* Intern one symbolized frame, with its module offset (named ones too: the
 * pprof keeps real addresses, for -disasm; the per-function views drop it,
 * formats/merge.c). */
static int session_frame(struct stoke_session *s, const struct stoke_symbol *sym,
			 uint32_t *ret)
{
	struct stoke_pframe f = { 0 };
	int r;

	r = stoke_profile_intern(s->profile, sym->function, &f.name);
	if (r < 0)
		return r;
	r = stoke_profile_intern(s->profile, sym->file, &f.file);
	if (r < 0)
		return r;
	r = stoke_profile_intern(s->profile, sym->module, &f.module);
	if (r < 0)
		return r;
	r = stoke_profile_intern(s->profile, sym->decl_file, &f.decl_file);
	if (r < 0)
		return r;
	f.line = sym->line;
	f.decl_line = sym->decl_line;
	f.kind = pframe_kind(sym->kind);
	f.inlined = sym->inlined;
	f.offset = sym->module ? sym->offset : sym->addr;
	return stoke_profile_frame(s->profile, &f, ret);
}

/* ---- raw stacks (drain path) ---- */

static uint64_t loc_hash(const struct stoke_frame_loc *l)
{
	uint64_t h = stoke_hash_u64((uintptr_t)l->mod ^ stoke_hash_u64(l->look));

	h = stoke_hash_u64(h ^ (uintptr_t)l->function ^ ((uint64_t)l->kind << 56));
	h = stoke_hash_u64(h ^ (uintptr_t)l->module ^ ((uint64_t)l->lookup << 48));
	return stoke_hash_u64(h ^ l->addr ^ stoke_hash_u64(l->offset));
}

static bool loc_eq(const struct stoke_frame_loc *a, const struct stoke_frame_loc *b)
{
	return a->mod == b->mod && a->look == b->look && a->function == b->function &&
	       a->module == b->module && a->addr == b->addr && a->offset == b->offset &&
	       a->kind == b->kind && a->lookup == b->lookup;
}

static uint64_t node_hash(uint32_t parent, uint32_t loc)
{
	return stoke_hash_u64(((uint64_t)parent << 32 | loc) ^ 0x9e3779b97f4a7c15ULL);
}

/* The id of loc in the location table, added when new. */
static int loc_intern(struct stoke_session *s, const struct stoke_frame_loc *loc, uint32_t *ret)
{
	uint64_t h = loc_hash(loc);
	struct stoke_hashmap_iter it;
	uint32_t id;

	for (id = stoke_hashmap_first(&s->loc_index, h, &it); id;
	     id = stoke_hashmap_next(&s->loc_index, &it))
		if (loc_eq(&s->locs[id - 1], loc)) {
			*ret = id - 1;
			return 0;
		}
	if (s->nlocs >= UINT32_MAX - 1 || stoke_hashmap_reserve(&s->loc_index, 1) < 0 ||
	    STOKE_GROW(s->locs, s->locs_cap, s->nlocs + 1) < 0)
		return -ENOMEM;
	s->locs[s->nlocs] = *loc;
	stoke_hashmap_put(&s->loc_index, h, (uint32_t)++s->nlocs);
	*ret = (uint32_t)(s->nlocs - 1);
	return 0;
}

/* The child of parent for location loc, added when new. */
static int node_intern(struct stoke_session *s, uint32_t parent, uint32_t loc, uint32_t *ret)
{
	uint64_t h = node_hash(parent, loc);
	struct stoke_hashmap_iter it;
	uint32_t id;

	for (id = stoke_hashmap_first(&s->node_index, h, &it); id;
	     id = stoke_hashmap_next(&s->node_index, &it)) {
		const struct raw_node *n = &s->nodes[id - 1];

		if (n->parent == parent && n->loc == loc) {
			*ret = id - 1;
			return 0;
		}
	}
	if (s->nnodes >= UINT32_MAX - 1 || stoke_hashmap_reserve(&s->node_index, 1) < 0 ||
	    STOKE_GROW(s->nodes, s->nodes_cap, s->nnodes + 1) < 0)
		return -ENOMEM;
	s->nodes[s->nnodes] = (struct raw_node){ parent, loc };
	stoke_hashmap_put(&s->node_index, h, (uint32_t)++s->nnodes);
	*ret = (uint32_t)(s->nnodes - 1);
	return 0;
}

/* The sample limit, counting what is held raw too. */
static bool over_limit(struct stoke_session *s)
{
	size_t held;

	if (!s->opts.max_samples)
		return false;
	stoke_profile_samples(s->profile, &held);
	return held + s->npending - s->settle_done >= s->opts.max_samples;
}

/* ---- interpreter frames ---- */

/* A Python frame's location: named already (lookup NAMED), told from other
 * named locations by its module string; the file's interned pointer is in
 * look, the line in addr, the definition's line in offset. The module says
 * whether the frames were read at the sample or after it. */
static const char py_module[] = "[python]";
static const char py_module_approx[] = "[python approximate]";

static bool is_py_loc(const struct stoke_frame_loc *l)
{
	return l->lookup == STOKE_LOC_NAMED && (l->module == py_module || l->module == py_module_approx);
}

/* Replace the evaluator's native frames of locbuf[0..n) by the Python
 * frames they run. Returns the new count. */
static int splice_interp(struct stoke_session *s, const struct stoke_sample *sample, int n)
{
	bool approx = false;
	int np = s->interp.ops->frames(s->interp.impl, sample, s->iframes, ARRAY_SIZE(s->iframes),
				       &approx);
	size_t m;

	if (np <= 0)
		return n;
	for (int i = 0; i < n; i++) {
		s->naddrs[i] = s->locbuf[i].addr;
		s->nuser[i] = s->locbuf[i].kind == STOKE_FRAME_USER &&
			      s->locbuf[i].lookup != STOKE_LOC_NAMED;
	}
	m = stoke_interp_splice(&s->interp, sample->pid, s->naddrs, s->nuser, (size_t)n, s->iframes,
				(size_t)np, s->islots, SESSION_MAX_FRAMES);
	for (size_t i = 0; i < m; i++) {
		const struct stoke_interp_slot *sl = &s->islots[i];

		if (sl->native_idx >= 0) {
			s->ibuf[i] = s->locbuf[sl->native_idx];
			continue;
		}
		const struct stoke_interp_frame *f = &s->iframes[sl->interp_idx];
		s->ibuf[i] = (struct stoke_frame_loc){
			.function = f->function,
			.module = approx ? py_module_approx : py_module,
			.look = (uintptr_t)f->file,
			.addr = f->line > 0 ? (uint64_t)f->line : 0,
			.offset = f->first_line > 0 ? (uint64_t)f->first_line : 0,
			.kind = STOKE_FRAME_USER,
			.lookup = STOKE_LOC_NAMED,
		};
	}
	memcpy(s->locbuf, s->ibuf, m * sizeof(*s->ibuf));
	s->python_samples++;
	s->python_approx += approx;
	return (int)m;
}

static int session_sample(struct stoke_session *s, const struct stoke_sample *sample)
{
	uint32_t node = 0;
	int n, r;

	if (over_limit(s)) {
		/* Counted as lost; the drain goes on, so every sample past
		 * the limit is counted, and the caller learns of it from
		 * stoke_session_process. */
		s->lost_limit++;
		if (!s->error)
			s->error = -E2BIG;
		return 0;
	}
	/* Off CPU: why, as a synthetic leaf frame (the sampler keeps the
	 * string alive). */
	if (sample->reason) {
		s->locbuf[0] = (struct stoke_frame_loc){ .function = sample->reason,
							 .kind = STOKE_FRAME_SYNTHETIC };
		n = 1 + stoke_symbolizer_sample_locs(s->symbolizer, sample, s->locbuf + 1,
						     SESSION_MAX_FRAMES - 1);
	} else {
		n = stoke_symbolizer_sample_locs(s->symbolizer, sample, s->locbuf,
						 SESSION_MAX_FRAMES);
		if (s->interp.ops && n > 0)
			n = splice_interp(s, sample, n);
	}
	if (!s->nnodes) { /* node 0, the root, is in no hash slot */
		if (STOKE_GROW(s->nodes, s->nodes_cap, 1) < 0)
			return -ENOMEM;
		s->nodes[0] = (struct raw_node){ 0, UINT32_MAX };
		s->nnodes = 1;
	}
	/* Locations come leaf first; the prefix tree is built root first. */
	for (int i = n - 1; i >= 0; i--) {
		uint32_t loc;

		r = loc_intern(s, &s->locbuf[i], &loc);
		if (r < 0)
			return r;
		r = node_intern(s, node, loc, &node);
		if (r < 0)
			return r;
	}
	r = stoke_profile_thread(s->profile, sample->pid, sample->tid, NULL);
	if (r < 0)
		return r;
	if (STOKE_GROW(s->pending, s->pending_cap, s->npending + 1) < 0)
		return -ENOMEM;
	s->pending[s->npending++] = (struct pending){ sample->tid, node, sample->time,
						     sample->weight ? sample->weight : 1,
						     sample->kind };
	s->samples += sample->weight ? sample->weight : 1;
	return 0;
}

/* ---- settling: raw stacks into the profile ---- */

/* Name location id into the profile: its frames, root first. */
static int settle_loc(struct stoke_session *s, uint32_t id)
{
	struct loc_named *ln = &s->loc_named[id];
	const struct stoke_frame_loc *l = &s->locs[id];
	int n, r;

	if (is_py_loc(l)) {
		/* qualname at file:line, keyed by (file, first line, qualname)
		 * as cProfile keys a function */
		s->frames[0] = (struct stoke_symbol){
			.function = l->function,
			.file = (const char *)(uintptr_t)l->look,
			.line = (uint32_t)l->addr,
			.decl_file = (const char *)(uintptr_t)l->look,
			.decl_line = (uint32_t)l->offset,
			.module = l->module,
			.kind = STOKE_FRAME_USER,
		};
		n = 1;
	} else {
		n = stoke_symbolizer_loc_frames(s->symbolizer, l, s->frames, SESSION_MAX_FRAMES);
	}
	if (n < 1 || n > UINT16_MAX)
		return -EINVAL;
	if (STOKE_GROW(s->settle_fids, s->settle_fids_cap, s->nsettle_fids + (size_t)n) < 0)
		return -ENOMEM;
	ln->first = (uint32_t)s->nsettle_fids;
	ln->unknown = 0;
	/* Frames come leaf first (inlined ones before their physical
	 * function); stacks grow root first. */
	for (int i = n - 1; i >= 0; i--) {
		uint32_t frame;

		r = session_frame(s, &s->frames[i], &frame);
		if (r < 0)
			return r;
		ln->unknown += !s->frames[i].function;
		s->settle_fids[s->nsettle_fids++] = frame;
	}
	ln->nframes = (uint16_t)n;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Drain the rings when naming has kept them waiting too long. Only the
 * raw tables grow meanwhile; nothing settle holds a pointer into moves. */
static void settle_drain(struct stoke_session *s)
{
	uint64_t now;
	int r;

	if (s->stopped)
		return;
	now = mono_ns();
	if (now - s->settle_drain_ns < SETTLE_DRAIN_NS)
		return;
	r = stoke_sampler_drain(s->sampler);
	if (r < 0 && !s->error)
		s->error = r;
	s->settle_drain_ns = mono_ns();
}

/* The profile stack of node id, made on first use: its unsettled
 * ancestors first, root side first, exactly as naming every sample on
 * arrival would have made them. */
static int settle_node(struct stoke_session *s, uint32_t id, uint32_t *ret)
{
	uint32_t chain[SESSION_MAX_FRAMES + 1], leaf = id;
	size_t depth = 0;
	int r;

	while (!s->node_named[id].done) {
		if (depth == ARRAY_SIZE(chain))
			return -EINVAL;
		chain[depth++] = id;
		id = s->nodes[id].parent;
	}
	while (depth) {
		uint32_t n = chain[--depth], parent;
		const struct loc_named *ln;
		struct node_named *nn = &s->node_named[n];

		settle_drain(s); /* may move s->nodes, s->locs, s->pending */
		parent = s->nodes[n].parent;
		if (!s->loc_named[s->nodes[n].loc].nframes) {
			r = settle_loc(s, s->nodes[n].loc);
			if (r < 0)
				return r;
		}
		ln = &s->loc_named[s->nodes[n].loc];
		nn->stack = s->node_named[parent].stack;
		nn->unknown = s->node_named[parent].unknown + ln->unknown;
		for (uint32_t i = 0; i < ln->nframes; i++) {
			r = stoke_profile_stack(s->profile, nn->stack,
						s->settle_fids[ln->first + i], &nn->stack);
			if (r < 0)
				return r;
		}
		nn->done = true;
	}
	*ret = s->node_named[leaf].stack;
	return 0;
}

/* Drop every raw stack (after a settle, or when a settle failed). */
static void raw_reset(struct stoke_session *s)
{
	s->nlocs = 0;
	s->nnodes = 0;
	s->npending = 0;
	s->nsettle_fids = 0;
	stoke_hashmap_reset(&s->loc_index);
	stoke_hashmap_reset(&s->node_index);
}

/* Name the pending samples' stacks and add the samples to the profile.
 * Samples the rings yield meanwhile (settle_drain) stay pending, with the
 * raw tables they use. Returns 0 or -errno. */
static int settle(struct stoke_session *s)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);
	size_t n = s->npending;
	int r = 0;

	if (!n) {
		raw_reset(s);
		return 0;
	}
	/* Samples without a single frame make no location: never calloc(0).
	 * Ids made during this settle are past the ends: never looked at. */
	s->loc_named = calloc(STOKE_MAX(s->nlocs, (size_t)1), sizeof(*s->loc_named));
	s->node_named = calloc(STOKE_MAX(s->nnodes, (size_t)1), sizeof(*s->node_named));
	if (!s->loc_named || !s->node_named)
		r = -ENOMEM;
	if (r == 0)
		s->node_named[0].done = true;
	s->settle_done = 0;
	s->settle_drain_ns = mono_ns();
	for (size_t i = 0; r == 0 && i < n; i++) {
		/* A copy: a drain inside settle_node may move the array. */
		struct pending p = s->pending[i];
		uint32_t stack = 0;

		r = settle_node(s, p.node, &stack);
		if (r == 0)
			r = stoke_profile_add_sample_kind(s->profile, p.tid, p.time, stack,
							  p.weight, p.kind);
		if (r < 0)
			break;
		s->unknown_frames += s->node_named[p.node].unknown;
		if (!m->time_first || p.time < m->time_first)
			m->time_first = p.time;
		if (p.time > m->time_last)
			m->time_last = p.time;
		s->settle_done = i + 1;
	}
	log_debug("session: %zu samples named: %zu unique locations, %zu raw stacks; %zu read "
		  "meanwhile",
		  n, s->nlocs, s->nnodes, s->npending - n);
	free(s->loc_named);
	free(s->node_named);
	s->loc_named = NULL;
	s->node_named = NULL;
	s->settle_done = 0;
	s->nsettle_fids = 0;
	if (s->npending == n || r < 0) {
		raw_reset(s);
	} else {
		/* Keep what came in meanwhile, and the tables it refers to. */
		memmove(s->pending, s->pending + n, (s->npending - n) * sizeof(*s->pending));
		s->npending -= n;
	}
	return r;
}

/* A new thread (FORK within a process) starts with its creator's name;
 * the kernel sends COMM only when the name changes. */
static int session_fork(struct stoke_session *s, const struct stoke_task *t)
{
	const struct stoke_pthread *parent = stoke_profile_find_thread(s->profile, t->ptid);
	const char *name = parent ? stoke_profile_string(s->profile, parent->name) : NULL;

	/* A new process: the resource timeline follows it as the events do
	 * (best effort: the timeline never fails the recording). */
	if (t->pid == t->tid && t->pid != t->ppid && s->rsampler)
		(void)stoke_rsampler_add(s->rsampler, (pid_t)t->pid, true);
	if (stoke_profile_find_thread(s->profile, t->tid))
		return 0;
	return stoke_profile_thread(s->profile, t->pid, t->tid, name);
}

static int session_record(const struct stoke_record *rec, void *userdata)
{
	struct stoke_session *s = userdata;
	int r = 0;

	switch (rec->type) {
	case STOKE_REC_SAMPLE:
		r = session_sample(s, &rec->sample);
		break;
	case STOKE_REC_COMM:
		r = stoke_symbolizer_record(s->symbolizer, rec);
		if (r == 0)
			r = stoke_profile_thread(s->profile, rec->comm.pid, rec->comm.tid,
						 rec->comm.comm);
		/* a new image: what the frame source knew of the process goes */
		if (rec->comm.exec && s->interp.ops && s->interp.ops->exec)
			s->interp.ops->exec(s->interp.impl, rec->comm.pid);
		break;
	case STOKE_REC_FORK:
		r = stoke_symbolizer_record(s->symbolizer, rec);
		if (r == 0)
			r = session_fork(s, &rec->task);
		break;
	case STOKE_REC_MMAP:
	case STOKE_REC_EXIT:
		r = stoke_symbolizer_record(s->symbolizer, rec);
		break;
	case STOKE_REC_SPAN:
		r = stoke_span_tracker_event(&s->spans, s->profile, &rec->span);
		break;
	default:
		break;
	}
	if (r < 0 && !s->error)
		s->error = r;
	return r;
}

/* Why a process gets no Python frames: a CPython stoke cannot read is
 * worth a line; a process that is no CPython at all is the common case. */
static void python_note(void *ctx, int level, const char *why)
{
	if (level > 0)
		log_warn("no Python frames: %s", why);
	else
		log_debug("no Python frames: %s", why);
}

int stoke_session_new(const struct stoke_session_opts *opts, struct stoke_session **ret)
{
	struct stoke_symbolizer_opts sopts = {
		.no_kernel = opts->no_kernel_symbols,
		.debuginfo_path = opts->debuginfo_path,
		.demangle = opts->demangle,
		.file_creds = opts->file_creds,
		.max_modules = opts->max_modules,
		.max_module_bytes = opts->max_module_bytes,
	};
	struct stoke_session *s;
	struct stoke_pmeta *m;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	r = stoke_profile_new(&s->profile);
	if (r == 0)
		r = stoke_symbolizer_new(&sopts, &s->symbolizer);
	/* the frame source first: its BPF program goes on the sampler's
	 * events as they are opened */
	if (r == 0 && !opts->no_python)
		r = stoke_cpython_source_new(python_note, s, &s->interp);
	if (r == 0) {
		struct stoke_sampler_opts so = opts->sampler;

		if (s->interp.ops && stoke_cpython_source_prog_fd(&s->interp) > 0)
			so.overflow_prog_fd = stoke_cpython_source_prog_fd(&s->interp);
		r = stoke_sampler_new(&so, session_record, s, &s->sampler);
	}
	if (r < 0) {
		stoke_session_free(s);
		return r;
	}
	m = stoke_profile_meta(s->profile);
	m->frequency = opts->sampler.freq;
	m->period_ns = 1000000000ULL / opts->sampler.freq;
	m->start_ns = wall_ns();
	r = stoke_profile_intern(s->profile,
				 opts->sampler.callgraph == STOKE_CALLGRAPH_DWARF ? "dwarf" : "fp",
				 &m->callgraph);
	if (r < 0) {
		stoke_session_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void stoke_session_free(struct stoke_session *s)
{
	if (!s)
		return;
	stoke_sampler_free(s->sampler);
	stoke_interp_free(&s->interp);
	stoke_symbolizer_free(s->symbolizer);
	stoke_profile_free(s->profile);
	stoke_span_tracker_free(s->spans);
	free(s->locs);
	stoke_hashmap_free(&s->loc_index);
	free(s->nodes);
	stoke_hashmap_free(&s->node_index);
	free(s->pending);
	free(s->settle_fids);
	free(s->targets);
	stoke_rsampler_free(s->rsampler);
	stoke_rseries_free(&s->res_snap);
	free(s->exe);
	free(s->build_id);
	free(s);
}

/* Note the executable of the first target while it is alive: its path and
 * build-id identify what was profiled. */
static void note_exe(struct stoke_session *s, pid_t pid)
{
	char path[64];
	int fd;

	if (s->exe)
		return;
	s->exe = stoke_driver_read_exe(pid);
	if (!s->exe)
		return;
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (stoke_elf_build_id_hex(fd, &s->build_id) < 0)
			s->build_id = NULL;
		close(fd);
	}
}

void stoke_session_run_info(const struct stoke_session *s, struct stoke_run_info *ret)
{
	struct stoke_session_stats st;

	stoke_session_get_stats(s, &st);
	memset(ret, 0, sizeof(*ret));
	ret->exe = s->exe;
	ret->build_id = s->build_id;
	ret->unwind_failed = st.unwind_no_cfi + st.unwind_bad_frame;
	ret->truncated = st.unwind_truncated + st.unwind_max_depth;
	ret->stitched = st.unwind_stitched;
	ret->modules_capped = st.modules_capped;
	ret->resources = s->res_snap.n ? &s->res_snap : NULL;
}

static int add_target(struct stoke_session *s, pid_t pid)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);

	if (STOKE_GROW(s->targets, s->targets_cap, s->ntargets + 1) < 0)
		return -ENOMEM;
	s->targets[s->ntargets++] = (struct target){ pid, true };
	if (pid > 0 && !s->rsampler && stoke_rsampler_new(0, &s->rsampler) < 0)
		return -ENOMEM;
	if (pid > 0 && stoke_rsampler_add(s->rsampler, pid, false) < 0)
		return -ENOMEM;
	if (!m->pid && pid > 0) /* -1: every process (record -a) */
		m->pid = (uint32_t)pid;
	note_exe(s, pid);
	return 0;
}

/* The command line of pid, with NULs turned into spaces. */
static void set_command_from_proc(struct stoke_session *s, pid_t pid)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);
	_cleanup_free_ char *buf = NULL;
	char path[64];
	ssize_t n;

	if (m->command)
		return;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	n = stoke_read_file(path, &buf, 64 * 1024);
	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	(void)stoke_profile_intern(s->profile, buf, &m->command);
}

struct preload_ctx {
	struct stoke_session *s;
	pid_t pid;
	int error;
};

static int preload_mapping(const struct stoke_maps_entry *e, void *userdata)
{
	struct preload_ctx *c = userdata;
	struct stoke_record rec;
	int r;

	stoke_maps_entry_to_record(e, (uint32_t)c->pid, &rec);
	r = stoke_symbolizer_preload_mapping(c->s->symbolizer, &rec.mmap);
	if (r < 0 && !c->error)
		c->error = r;
	return 0;
}

/* With preload_symbols, before pid's events are enabled: the loads naming
 * would take at the first sync, which drains nothing while one runs (see
 * symbolizer.h), done while there is nothing to drain. Best effort: what
 * is not loaded now is loaded on first use. */
static void preload(struct stoke_session *s, pid_t pid)
{
	struct preload_ctx c = { s, pid, 0 };
	uint64_t t0 = mono_ns();

	if (!s->opts.preload_symbols)
		return;
	stoke_symbolizer_preload_kernel(s->symbolizer);
	if (pid > 0)
		(void)stoke_maps_read_pid(pid, preload_mapping, &c);
	log_debug("session: names of pid %d loaded before sampling in %.3f s%s", (int)pid,
		  (double)(mono_ns() - t0) / 1e9, c.error ? " (out of memory for some)" : "");
}

int stoke_session_attach(struct stoke_session *s, pid_t pid)
{
	int r;

	set_command_from_proc(s, pid);
	preload(s, pid);
	r = stoke_sampler_attach(s->sampler, pid);
	if (r < 0)
		return r;
	if (s->error)
		return s->error;
	return add_target(s, pid);
}

int stoke_session_attach_threads(struct stoke_session *s, pid_t pid, const pid_t *tids, size_t n)
{
	int r;

	set_command_from_proc(s, pid);
	preload(s, pid);
	r = stoke_sampler_attach_threads(s->sampler, pid, tids, n);
	if (r < 0)
		return r;
	if (s->error)
		return s->error;
	return add_target(s, pid);
}

int stoke_session_launch(struct stoke_session *s, char *const argv[], pid_t *ret_pid)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);
	size_t len = 0;
	char *cmd;
	int r;

	for (size_t i = 0; argv[i]; i++)
		len += strlen(argv[i]) + 1;
	cmd = malloc(len + 1);
	if (!cmd)
		return -ENOMEM;
	cmd[0] = '\0';
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			strcat(cmd, " ");
		strcat(cmd, argv[i]);
	}
	r = stoke_profile_intern(s->profile, cmd, &m->command);
	free(cmd);
	if (r < 0)
		return r;
	preload(s, 0); /* kallsyms: its code is not mapped yet */
	r = stoke_sampler_launch(s->sampler, argv, ret_pid);
	if (r < 0)
		return r;
	return add_target(s, *ret_pid);
}

int stoke_session_pollfds(const struct stoke_session *s, const int **ret)
{
	return stoke_sampler_pollfds(s->sampler, ret);
}

int stoke_session_process(struct stoke_session *s)
{
	int r = stoke_sampler_drain(s->sampler);

	/* The resource timeline, when a reading is due: the driver's poll
	 * timeout is bounded by stoke_session_resources_due_ns. */
	if (!s->window_end_ns)
		(void)stoke_rsampler_tick(s->rsampler, mono_ns(), false);
	if (s->error)
		return s->error;
	return r;
}

uint64_t stoke_session_resources_due_ns(const struct stoke_session *s)
{
	return s->window_end_ns ? 0 : stoke_rsampler_next_ns(s->rsampler);
}

const struct stoke_rseries *stoke_session_resources(const struct stoke_session *s)
{
	return s->res_snap.n ? &s->res_snap : NULL;
}

int stoke_session_resources_poll(struct stoke_session *s)
{
	return stoke_rsampler_try_tick(s->rsampler, mono_ns());
}

void stoke_session_target_exited(struct stoke_session *s, pid_t pid)
{
	for (size_t i = 0; i < s->ntargets; i++)
		if (s->targets[i].pid == pid)
			s->targets[i].alive = false;
}

unsigned stoke_session_targets_alive(const struct stoke_session *s)
{
	unsigned n = 0;

	for (size_t i = 0; i < s->ntargets; i++)
		n += s->targets[i].alive;
	return n;
}

/* After reading records (r: how that went), name the raw stacks into the
 * profile and bring its metadata up to date: when counters is set, the end
 * of the recording window (end_ns, taken before naming, which is not part
 * of the window) and this profile's share of the lost samples (the
 * kernel's and the sample limit's) and throttle count; and the event's
 * name. */
static int fill_meta(struct stoke_session *s, int r, bool counters, uint64_t end_ns)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);
	int sr = settle(s);

	if (sr < 0 && r >= 0)
		r = sr;
	if (counters) {
		struct stoke_sampler_stats st;

		if (s->error)
			r = s->error;
		stoke_sampler_get_stats(s->sampler, &st);
		m->end_ns = end_ns;
		m->lost = st.lost - s->lost_base + s->lost_limit - s->lost_limit_base;
		m->throttled = st.throttled - s->throttled_base;
	}
	if (stoke_profile_intern(s->profile, stoke_event_name(stoke_sampler_event(s->sampler)),
				 &m->event) < 0 && r >= 0)
		r = -ENOMEM;
	/* The timeline's points for this profile (best effort: without
	 * memory for them it goes without a timeline). */
	stoke_rseries_free(&s->res_snap);
	(void)stoke_rsampler_snapshot(s->rsampler, m->start_ns, &s->res_snap);
	return r < 0 ? r : 0;
}

void stoke_session_end_window(struct stoke_session *s)
{
	if (s->window_end_ns)
		return;
	stoke_sampler_disable(s->sampler);
	/* The timeline's last reading, at the window's end. */
	(void)stoke_rsampler_tick(s->rsampler, mono_ns(), true);
	/* No sample is taken after this: the window ends here. */
	s->window_end_ns = wall_ns();
}

int stoke_session_stop(struct stoke_session *s)
{
	int r;

	if (s->stopped)
		return 0;
	stoke_session_end_window(s);
	s->stopped = true;
	r = stoke_sampler_flush(s->sampler);
	if (r >= 0) {
		struct stoke_sampler_stats st;
		int e = stoke_span_tracker_finish(s->spans, s->profile);

		stoke_sampler_get_stats(s->sampler, &st);
		if (e == 0 && st.span_lost) {
			log_warn("%llu span events lost (the span ring was full): the span "
				 "statistics miss them",
				 (unsigned long long)st.span_lost);
			e = stoke_profile_spans_set_lost(s->profile, st.span_lost);
		}
		r = e < 0 ? e : r;
	}
	return fill_meta(s, r, true, s->window_end_ns);
}

int stoke_session_sync(struct stoke_session *s)
{
	uint64_t end;
	int r;

	if (s->stopped)
		return fill_meta(s, 0, false, 0);
	/* A drain holds back what is newer than the rounds before it (an
	 * older record may still be on its way in another ring). After a
	 * pause (the daemon names and writes on a job thread, and does not
	 * drain meanwhile) that is nearly everything: a second round at once
	 * delivers what the first one read. */
	r = stoke_sampler_drain(s->sampler);
	if (r >= 0)
		r = stoke_sampler_drain(s->sampler);
	end = wall_ns();
	return fill_meta(s, r, true, end);
}

/* Copy what describes the recording, not its samples, into a fresh profile.
 * String ids are per profile, so strings are interned again. */
static int carry_over(const struct stoke_profile *from, struct stoke_profile *to)
{
	const struct stoke_pmeta *a = stoke_profile_cmeta(from);
	struct stoke_pmeta *b = stoke_profile_meta(to);
	const struct stoke_pthread *th;
	size_t n = 0;
	int r;

	b->frequency = a->frequency;
	b->period_ns = a->period_ns;
	b->pid = a->pid;
	b->start_ns = a->end_ns;
	r = stoke_profile_intern(to, stoke_profile_string(from, a->callgraph), &b->callgraph);
	if (r == 0)
		r = stoke_profile_intern(to, stoke_profile_string(from, a->command), &b->command);
	if (r == 0)
		r = stoke_profile_intern(to, stoke_profile_string(from, a->event), &b->event);
	th = stoke_profile_threads(from, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = stoke_profile_thread(to, th[i].pid, th[i].tid,
					 stoke_profile_string(from, th[i].name));
	return r;
}

int stoke_session_rotate(struct stoke_session *s, struct stoke_profile **ret)
{
	struct stoke_sampler_stats st;
	struct stoke_profile *fresh;
	int r;

	r = stoke_session_sync(s);
	if (r < 0)
		return r;
	r = stoke_profile_new(&fresh);
	if (r < 0)
		return r;
	r = carry_over(s->profile, fresh);
	if (r < 0) {
		stoke_profile_free(fresh);
		return r;
	}
	stoke_sampler_get_stats(s->sampler, &st);
	s->lost_base = st.lost;
	s->throttled_base = st.throttled;
	s->lost_limit_base = s->lost_limit;
	*ret = s->profile;
	s->profile = fresh;
	return 0;
}

const struct stoke_profile *stoke_session_profile(const struct stoke_session *s)
{
	return s->profile;
}

void stoke_session_get_stats(const struct stoke_session *s, struct stoke_session_stats *ret)
{
	struct stoke_sampler_stats st;
	size_t nthreads = 0;

	stoke_sampler_get_stats(s->sampler, &st);
	stoke_profile_threads(s->profile, &nthreads);
	memset(ret, 0, sizeof(*ret));
	ret->samples = s->samples;
	ret->lost = st.lost + s->lost_limit;
	ret->lost_kernel = st.lost;
	ret->lost_limit = s->lost_limit;
	ret->throttled = st.throttled;
	ret->malformed = st.malformed;
	ret->unknown_frames = s->unknown_frames;
	{
		struct stoke_symbolizer_stats ss;

		stoke_symbolizer_get_stats(s->symbolizer, &ss);
		ret->unwind_samples = ss.unwind_samples;
		ret->unwind_truncated = ss.unwind_truncated;
		ret->unwind_no_cfi = ss.unwind_no_cfi;
		ret->unwind_bad_frame = ss.unwind_bad_frame;
		ret->unwind_max_depth = ss.unwind_max_depth;
		ret->unwind_fp_links = ss.unwind_fp_links;
		ret->unwind_stitched = ss.unwind_stitched;
		ret->modules_capped = ss.modules_capped;
		ret->module_bytes = ss.module_bytes;
	}
	ret->python_samples = s->python_samples;
	ret->python_approx = s->python_approx;
	ret->threads = (uint32_t)nthreads;
	ret->targets_alive = stoke_session_targets_alive(s);
}

void stoke_session_set_max_module_bytes(struct stoke_session *s, uint64_t max)
{
	stoke_symbolizer_set_max_module_bytes(s->symbolizer, max);
}

const char *stoke_session_event_name(const struct stoke_session *s)
{
	return stoke_event_name(stoke_sampler_event(s->sampler));
}

bool stoke_session_event_fell_back(const struct stoke_session *s)
{
	return stoke_sampler_fell_back(s->sampler);
}

bool stoke_session_kernel_dropped(const struct stoke_session *s)
{
	return stoke_sampler_kernel_dropped(s->sampler);
}
