/*
 * The pprof writer (see pprof.h for how the model maps onto profile.proto).
 *
 * The string table is the model's own string table, in id order, followed
 * by the strings this writer adds (units, label keys, comments): model
 * string ids are then pprof string indices, and index 0 is "" as
 * go tool pprof requires. The message is built in memory (a profile is a
 * few MB before compression) and then deflated to the stream in gzip
 * framing (windowBits 15 + 16).
 *
 * Locations follow the pprof inline convention: walking each sample's stack
 * leaf first, a maximal run of inlined frames and the physical frame after
 * it (the function whose code holds them) become one Location, line[0] the
 * innermost callee. Which frames group depends only on a stack node and its
 * callers, so the grouping is memoized per stack node; Locations are
 * deduplicated by their frame sequence and numbered in first-seen order.
 * Because a frame can sit in several Locations (one physical function with
 * different inline chains) and Location order is not frame-id order, the
 * stoke.location_frames table names each Location line's frame id, so the
 * reader rebuilds the frame table in id order.
 */
#include "formats/pprof.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "formats/pb.h"
#include "common/hashmap.h"
#include "common/util.h"
#include "formats/spans.h"

/* profile.proto field numbers */
enum {
	PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE, PROFILE_MAPPING, PROFILE_LOCATION,
	PROFILE_FUNCTION, PROFILE_STRING_TABLE, PROFILE_TIME_NANOS = 9,
	PROFILE_DURATION_NANOS, PROFILE_PERIOD_TYPE, PROFILE_PERIOD, PROFILE_COMMENT,
};

/* Synthetic mapping bases: module offsets stay below 1 TiB. */
#define MAPPING_SHIFT 40

struct pprof_enc {
	const struct stoke_profile *p;
	struct pb_buf out, sub, sub2;
	uint32_t nstr;             /* next extra string index */
	FILE *table;               /* memstream for the stoke.* tables */
	char *table_buf;
	size_t table_len;
	FILE *meta;                /* memstream: the stoke.* entries, NUL-separated */
	char *meta_buf;
	size_t meta_len;
	uint32_t *sample_group;    /* per model sample: its pprof Sample (0-based) */
	struct pb_buf extra;       /* extra strings, as string_table fields */
	uint32_t *module_mapping;  /* per string id: mapping id, 0 = none */
	uint64_t *mapping_limit;   /* per mapping id: max offset + 1 */
	uint64_t *mapping_base;    /* per mapping id: min offset (Mapping.file_offset) */
	uint32_t identity;         /* the mapping whose addresses are its offsets */
	bool timeline;             /* one Sample per model sample, time labels */
	bool off_cpu;              /* off-CPU samples: two more sample types */
	uint32_t *mapping_module;  /* per mapping id: module string id */
	uint32_t nmappings;
	uint32_t *frame_function;  /* per frame id: function id, 0 = no line */
	uint32_t *func_frame;      /* per function id: a frame with its name/file */
	uint32_t nfunctions;
	struct stoke_hashmap fn_index;  /* (name, file, definition) -> function id */
	/* Locations: id i + 1 holds loc_frames[locs[i].start ..+ len], leaf
	 * (innermost) first. */
	struct { uint32_t start, len; } *locs;
	size_t nlocs, locs_cap;
	uint32_t *loc_frames;
	size_t nloc_frames, loc_frames_cap;
	struct stoke_hashmap loc_index; /* frame sequence -> location id */
	uint32_t *stack_loc;       /* per stack id: the Location starting there */
	uint32_t *stack_next;      /* per stack id: the node after that Location */
	uint32_t *frame_home;      /* per frame id: first Location holding it */
	uint32_t group[STOKE_PPROF_MAX_LINES];
};

/* Add a string after the model's; returns its index. */
static uint32_t extra_string_n(struct pprof_enc *e, const char *s, size_t n)
{
	pb_ldelim(&e->extra, PROFILE_STRING_TABLE, s, n);
	return e->nstr++;
}

static uint32_t extra_string(struct pprof_enc *e, const char *s)
{
	return extra_string_n(e, s, strlen(s));
}

static void comment(struct pprof_enc *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The table built in e->table becomes an extra string, and the comment
 * "KEY=INDEX" points at it. */
static void table_comment(struct pprof_enc *e, const char *key)
{
	long len;

	if (fflush(e->table) != 0 || (len = ftell(e->table)) < 0) {
		e->out.error = -ENOMEM;
		return;
	}
	comment(e, "%s=%" PRIu32, key, extra_string_n(e, e->table_buf, (size_t)len));
	rewind(e->table);
}

static void comment(struct pprof_enc *e, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		e->out.error = -ENOMEM;
		return;
	}
	/* Not a Profile.comment: go tool pprof prints every comment above
	 * every report. The entries go into one string instead (see
	 * write_comments). */
	if (fwrite(s, 1, (size_t)n + 1, e->meta) != (size_t)n + 1)
		e->out.error = -ENOMEM;
	free(s);
}

static void value_type(struct pprof_enc *e, uint32_t field, const char *type, const char *unit)
{
	pb_uint(&e->sub, 1, extra_string(e, type));
	pb_uint(&e->sub, 2, extra_string(e, unit));
	pb_message(&e->out, field, &e->sub);
}

/* Function ids, one per distinct (name, file, definition); frames without
 * a name, file or line get none and their location no Line. A Line's file is
 * its function's, so the file stays the line's: -list shows the right
 * source. The definition (decl_file/decl_line) is the Function's start_line;
 * its file is kept only where it is the line's file (the usual case: a
 * function's lines are in the file that defines it). */
static int assign_functions(struct pprof_enc *e)
{
	size_t nframes = stoke_profile_nframes(e->p);

	e->frame_function = calloc(nframes + 1, sizeof(*e->frame_function));
	e->func_frame = calloc(nframes + 1, sizeof(*e->func_frame));
	if (stoke_hashmap_reserve(&e->fn_index, nframes) < 0 || !e->frame_function ||
	    !e->func_frame)
		return -ENOMEM;
	for (uint32_t id = 1; id <= nframes; id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(e->p, id);
		uint64_t h = stoke_hash_u64(((uint64_t)f->name << 32 | f->file) ^
					    ((uint64_t)f->decl_file << 32 | f->decl_line));
		struct stoke_hashmap_iter it;
		uint32_t fn;

		if (!f->name && !f->file && !f->line)
			continue;
		for (fn = stoke_hashmap_first(&e->fn_index, h, &it); fn;
		     fn = stoke_hashmap_next(&e->fn_index, &it)) {
			const struct stoke_pframe *g = stoke_profile_get_frame(e->p, e->func_frame[fn]);

			if (g->name == f->name && g->file == f->file &&
			    g->decl_file == f->decl_file && g->decl_line == f->decl_line)
				break;
		}
		if (!fn) {
			fn = ++e->nfunctions;
			e->func_frame[fn] = id;
			stoke_hashmap_put(&e->fn_index, h, fn);
		}
		e->frame_function[id] = fn;
	}
	return 0;
}

/*
 * go tool pprof's -disasm and -weblist look a Location's address up in the
 * binary's symbol table as it is, untranslated. So the module holding the
 * most leaf samples (where one disassembles) gets addresses equal to its
 * module offsets, which are the binary's own addresses: its Mapping starts
 * at its page-aligned lowest offset. That range lies below the first
 * synthetic slot (1 TiB), so mappings still never overlap. Kernel modules
 * (offsets are kernel addresses) and user modules reaching past 1 TiB keep
 * a slot.
 */
static int pick_identity(struct pprof_enc *e)
{
	const struct stoke_psample *s;
	uint64_t *weight = calloc(e->nmappings + 1, sizeof(*weight)), best = 0;
	size_t n;

	if (!weight)
		return -ENOMEM;
	s = stoke_profile_samples(e->p, &n);
	for (size_t i = 0; i < n; i++) {
		const struct stoke_pstack *st = stoke_profile_get_stack(e->p, s[i].stack);
		const struct stoke_pframe *f = st ? stoke_profile_get_frame(e->p, st->frame) : NULL;

		if (f && f->module && f->kind == STOKE_PFRAME_USER)
			weight[e->module_mapping[f->module]] += s[i].weight;
	}
	for (uint32_t m = 1; m <= e->nmappings; m++) {
		if (weight[m] > best && e->mapping_limit[m] <= (1ULL << MAPPING_SHIFT)) {
			best = weight[m];
			e->identity = m;
		}
	}
	free(weight);
	return 0;
}

/* Mapping ids, one per module, in first-seen frame order. */
static int assign_mappings(struct pprof_enc *e)
{
	size_t nframes = stoke_profile_nframes(e->p);

	e->module_mapping = calloc(stoke_profile_nstrings(e->p), sizeof(*e->module_mapping));
	e->mapping_limit = calloc(nframes + 1, sizeof(*e->mapping_limit));
	e->mapping_module = calloc(nframes + 1, sizeof(*e->mapping_module));
	e->mapping_base = calloc(nframes + 1, sizeof(*e->mapping_base));
	if (!e->module_mapping || !e->mapping_limit || !e->mapping_module || !e->mapping_base)
		return -ENOMEM;
	for (uint32_t id = 1; id <= nframes; id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(e->p, id);
		uint32_t m;

		if (!f->module)
			continue;
		m = e->module_mapping[f->module];
		if (!m) {
			m = e->module_mapping[f->module] = ++e->nmappings;
			e->mapping_module[m] = f->module;
			e->mapping_base[m] = f->offset;
		}
		e->mapping_base[m] = STOKE_MIN(e->mapping_base[m], f->offset);
		e->mapping_limit[m] = STOKE_MAX(e->mapping_limit[m], f->offset + 1);
	}
	/* Offsets are stored relative to the mapping's lowest one (its
	 * file_offset), so a module whose offsets are large (the kernel's
	 * addresses for unnamed kernel frames, an ELF linked high) still fits
	 * its 2^40-byte slot; only a span that large cannot. */
	for (uint32_t m = 1; m <= e->nmappings; m++) {
		/* Page-aligned, as a real mapping's offset is: pprof finds
		 * the ELF segment of a mapping by it. */
		e->mapping_base[m] &= ~(uint64_t)0xfff;
		if (e->mapping_limit[m] - e->mapping_base[m] > (1ULL << MAPPING_SHIFT))
			return -ERANGE;
	}
	return pick_identity(e);
}

/* Where mapping m starts: its slot, or its lowest offset (see above). */
static uint64_t mapping_start(const struct pprof_enc *e, uint32_t m)
{
	return m == e->identity ? e->mapping_base[m] : (uint64_t)m << MAPPING_SHIFT;
}

static void write_mappings(struct pprof_enc *e)
{
	for (uint32_t m = 1; m <= e->nmappings; m++) {
		uint64_t start = mapping_start(e, m);

		pb_uint(&e->sub, 1, m);
		pb_uint(&e->sub, 2, start);
		/* whole pages, as a real mapping's */
		pb_uint(&e->sub, 3, start + ((e->mapping_limit[m] - e->mapping_base[m] + 0xfff) &
					     ~(uint64_t)0xfff));
		pb_uint_nz(&e->sub, 4, e->mapping_base[m]);
		pb_uint(&e->sub, 5, e->mapping_module[m]);
		for (uint32_t field = 7; field <= 10; field++) /* has_functions … */
			pb_uint(&e->sub, field, 1);
		pb_message(&e->out, PROFILE_MAPPING, &e->sub);
	}
}

static uint64_t seq_hash(const uint32_t *f, size_t n)
{
	return stoke_hash_u64(stoke_hash_bytes(0xcbf29ce484222325ULL ^ n, f, n * sizeof(*f)));
}

/* The Location of frames f[0..n) (leaf first), created on first use. */
static int intern_location(struct pprof_enc *e, const uint32_t *f, size_t n, uint32_t *ret)
{
	uint64_t h = seq_hash(f, n);
	struct stoke_hashmap_iter it;
	uint32_t id;

	for (id = stoke_hashmap_first(&e->loc_index, h, &it); id;
	     id = stoke_hashmap_next(&e->loc_index, &it)) {
		if (e->locs[id - 1].len == n &&
		    !memcmp(e->loc_frames + e->locs[id - 1].start, f, n * sizeof(*f))) {
			*ret = id;
			return 0;
		}
	}
	if (e->nlocs >= UINT32_MAX - 1 || e->nloc_frames + n >= UINT32_MAX)
		return -E2BIG;
	if (stoke_hashmap_reserve(&e->loc_index, 1) < 0 ||
	    STOKE_GROW(e->locs, e->locs_cap, e->nlocs + 1) < 0 ||
	    STOKE_GROW(e->loc_frames, e->loc_frames_cap, e->nloc_frames + n) < 0)
		return -ENOMEM;
	id = (uint32_t)++e->nlocs;
	e->locs[id - 1].start = (uint32_t)e->nloc_frames;
	e->locs[id - 1].len = (uint32_t)n;
	memcpy(e->loc_frames + e->nloc_frames, f, n * sizeof(*f));
	e->nloc_frames += n;
	stoke_hashmap_put(&e->loc_index, h, id);
	for (size_t k = 0; k < n; k++)
		if (!e->frame_home[f[k]])
			e->frame_home[f[k]] = id;
	*ret = id;
	return 0;
}

/* A frame can join a Location's line[] only with a Line, i.e. a Function;
 * a frame without one always stands alone in a Line-less Location. */
static bool groupable(const struct pprof_enc *e, uint32_t frame)
{
	return e->frame_function[frame] != 0;
}

/* The Location that starts at stack node st: a maximal run of inlined
 * frames and the physical frame after it, or st's frame alone. A run at
 * the root edge (a truncated stack) has no physical frame; a run longer
 * than the reader's limit is cut. Memoized in stack_loc/stack_next. */
static int group_at(struct pprof_enc *e, uint32_t st)
{
	const struct stoke_pstack *node = stoke_profile_get_stack(e->p, st);
	const struct stoke_pframe *f = stoke_profile_get_frame(e->p, node->frame);
	uint32_t next = st;
	size_t n = 0;
	int r;

	if (f->inlined && groupable(e, node->frame)) {
		while (next && n < STOKE_PPROF_MAX_LINES) {
			node = stoke_profile_get_stack(e->p, next);
			f = stoke_profile_get_frame(e->p, node->frame);
			if (!groupable(e, node->frame))
				break;
			e->group[n++] = node->frame;
			next = node->parent;
			if (!f->inlined)
				break; /* the physical frame closes the Location */
		}
	} else {
		e->group[n++] = node->frame;
		next = node->parent;
	}
	r = intern_location(e, e->group, n, &e->stack_loc[st]);
	e->stack_next[st] = next;
	return r;
}

/* Group every sample's stack into Locations, then give each frame that no
 * sample holds a Location of its own, so every frame is in the file. */
static int assign_locations(struct pprof_enc *e)
{
	size_t nframes = stoke_profile_nframes(e->p), nstacks = stoke_profile_nstacks(e->p);
	const struct stoke_psample *s;
	size_t n;
	uint32_t id;
	int r;

	e->stack_loc = calloc(nstacks + 1, sizeof(*e->stack_loc));
	e->stack_next = calloc(nstacks + 1, sizeof(*e->stack_next));
	e->frame_home = calloc(nframes + 1, sizeof(*e->frame_home));
	if (!e->stack_loc || !e->stack_next || !e->frame_home)
		return -ENOMEM;
	s = stoke_profile_samples(e->p, &n);
	for (size_t i = 0; i < n; i++) {
		/* a node already grouped was reached before, and so was the
		 * rest of its stack */
		for (uint32_t st = s[i].stack; st && !e->stack_loc[st]; st = e->stack_next[st]) {
			r = group_at(e, st);
			if (r < 0)
				return r;
		}
	}
	for (uint32_t f = 1; f <= nframes; f++) {
		if (!e->frame_home[f] && (r = intern_location(e, &f, 1, &id)) < 0)
			return r;
	}
	return 0;
}

/* The frame whose module and address a Location carries: the physical
 * one, last. */
static const struct stoke_pframe *loc_anchor(const struct pprof_enc *e, uint32_t id)
{
	return stoke_profile_get_frame(e->p, e->loc_frames[e->locs[id - 1].start +
							    e->locs[id - 1].len - 1]);
}

static void write_locations(struct pprof_enc *e)
{
	for (uint32_t id = 1; id <= e->nlocs; id++) {
		const struct stoke_pframe *f = loc_anchor(e, id);
		const uint32_t *frames = e->loc_frames + e->locs[id - 1].start;
		uint32_t m = f->module ? e->module_mapping[f->module] : 0;

		pb_uint(&e->sub, 1, id);
		pb_uint_nz(&e->sub, 2, m);
		pb_uint_nz(&e->sub, 3,
			   m ? mapping_start(e, m) + (f->offset - e->mapping_base[m]) : f->offset);
		/* line[0] is the innermost inlined callee, the last the
		 * function that physically holds the address */
		for (uint32_t k = 0; k < e->locs[id - 1].len; k++) {
			uint32_t fn = e->frame_function[frames[k]];

			if (!fn)
				continue;
			pb_uint(&e->sub2, 1, fn);
			pb_uint_nz(&e->sub2, 2, stoke_profile_get_frame(e->p, frames[k])->line);
			pb_message(&e->sub, 4, &e->sub2);
		}
		pb_message(&e->out, PROFILE_LOCATION, &e->sub);
	}
}

static void write_functions(struct pprof_enc *e)
{
	for (uint32_t fn = 1; fn <= e->nfunctions; fn++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(e->p, e->func_frame[fn]);

		pb_uint(&e->sub, 1, fn);
		pb_uint_nz(&e->sub, 2, f->name);
		pb_uint_nz(&e->sub, 3, f->name); /* no separate mangled name kept */
		pb_uint_nz(&e->sub, 4, f->file ? f->file : f->decl_file);
		pb_uint_nz(&e->sub, 5, f->decl_line); /* start_line */
		pb_message(&e->out, PROFILE_FUNCTION, &e->sub);
	}
}

static void label(struct pb_buf *b, struct pb_buf *sub, uint32_t key, uint32_t str, uint64_t num,
		  uint32_t unit)
{
	pb_uint(sub, 1, key);
	pb_uint_nz(sub, 2, str);
	pb_uint_nz(sub, 3, num);
	pb_uint_nz(sub, 4, unit);
	pb_message(b, 3, sub);
}

/*
 * One pprof Sample per distinct (stack, thread), its values the sums, in
 * first-seen order: go tool pprof -traces then lists each stack once, not
 * once per sample. The order and time of every sample, which the model
 * keeps (speedscope's timeline), go into the stoke.timeline table.
 */
/*
 * --timeline: one Sample per model sample, in order, with a "time" label:
 * its wall-clock time in ns since the epoch, as pprof defines the label,
 * anchored at the recording's start (start_ns is when the first sample's
 * perf timestamp, time_first, was taken, to within the start-up delay).
 */
/* A sample's values: samples and CPU time; with off-CPU samples in the
 * profile, two more types, off-CPU samples and time, and each sample has
 * its weight under its own kind's types and 0 under the other's. */
static void sample_values(struct pprof_enc *e, struct pb_buf *packed, uint8_t kind,
			  uint64_t weight, uint64_t period)
{
	bool off = kind == STOKE_SAMPLE_OFF_CPU;

	pb_varint(packed, off ? 0 : weight);
	pb_varint(packed, off ? 0 : weight * period);
	if (!e->off_cpu)
		return;
	pb_varint(packed, off ? weight : 0);
	pb_varint(packed, off ? weight * period : 0);
}

static int write_timeline_samples(struct pprof_enc *e)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(e->p);
	uint32_t k_thread = extra_string(e, "thread");
	uint32_t k_tid = extra_string(e, "thread_id");
	uint32_t k_time = extra_string(e, "time");
	uint32_t u_ns = extra_string(e, "nanoseconds");
	uint32_t k_span = 0, *tags = NULL;
	const struct stoke_psample *s;
	struct pb_buf packed = { 0 };
	size_t n;

	/* The innermost span each sample was taken in (formats/spans.h). */
	if (stoke_span_sample_names(e->p, &tags) < 0)
		return -ENOMEM;
	if (stoke_profile_get_spans(e->p))
		k_span = extra_string(e, "span");
	s = stoke_profile_samples(e->p, &n);
	for (size_t i = 0; i < n; i++) {
		const struct stoke_pthread *th = stoke_profile_find_thread(e->p, s[i].tid);

		for (uint32_t st = s[i].stack; st; st = e->stack_next[st])
			pb_varint(&packed, e->stack_loc[st]);
		if (packed.len)
			pb_ldelim(&e->sub, 1, packed.data, packed.len);
		packed.len = 0;
		sample_values(e, &packed, s[i].kind, s[i].weight, m->period_ns);
		pb_ldelim(&e->sub, 2, packed.data, packed.len);
		packed.len = 0;
		label(&e->sub, &e->sub2, k_thread, th ? th->name : 0, 0, 0);
		label(&e->sub, &e->sub2, k_tid, 0, s[i].tid, 0);
		label(&e->sub, &e->sub2, k_time, 0, m->start_ns + (s[i].time - m->time_first), u_ns);
		if (tags && tags[i])
			label(&e->sub, &e->sub2, k_span, tags[i], 0, 0);
		pb_message(&e->out, PROFILE_SAMPLE, &e->sub);
		if (packed.error)
			e->out.error = packed.error;
	}
	pb_free(&packed);
	free(tags);
	return e->out.error;
}

static int write_samples(struct pprof_enc *e)
{
	uint32_t k_thread = extra_string(e, "thread");
	uint32_t k_tid = extra_string(e, "thread_id");
	uint64_t period = stoke_profile_cmeta(e->p)->period_ns;
	const struct stoke_psample *s;
	struct pb_buf packed = { 0 };
	uint32_t *first = NULL, ngroups = 0, *tags = NULL, k_span = 0;
	struct stoke_hashmap groups = { 0 }; /* (stack, tid, kind, span) -> group + 1 */
	uint64_t *sums = NULL;
	size_t n;
	int r = 0;

	/* Samples in different spans are different Samples, with a "span"
	 * label: the innermost span they were taken in (formats/spans.h). */
	if (stoke_profile_get_spans(e->p))
		k_span = extra_string(e, "span");
	if (k_span && stoke_span_sample_names(e->p, &tags) < 0)
		return -ENOMEM;
	s = stoke_profile_samples(e->p, &n);
	first = calloc(n + 1, sizeof(*first));
	sums = calloc(n + 1, sizeof(*sums));
	e->sample_group = calloc(n + 1, sizeof(*e->sample_group));
	if (stoke_hashmap_reserve(&groups, n) < 0 || !first || !sums || !e->sample_group) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t h = stoke_hash_u64((uint64_t)s[i].stack << 32 | s[i].tid);
		struct stoke_hashmap_iter it;
		uint32_t g;

		for (g = stoke_hashmap_first(&groups, h, &it); g;
		     g = stoke_hashmap_next(&groups, &it)) {
			const struct stoke_psample *x = &s[first[g - 1]];

			if (x->stack == s[i].stack && x->tid == s[i].tid && x->kind == s[i].kind &&
			    (!tags || tags[first[g - 1]] == tags[i]))
				break;
		}
		if (!g) {
			first[ngroups] = (uint32_t)i;
			g = ++ngroups;
			stoke_hashmap_put(&groups, h, g);
		}
		e->sample_group[i] = g - 1;
		if (sums[g - 1] + s[i].weight < s[i].weight) {
			r = -EOVERFLOW;
			goto out;
		}
		sums[g - 1] += s[i].weight;
	}
	for (uint32_t g = 0; g < ngroups; g++) {
		const struct stoke_psample *x = &s[first[g]];
		const struct stoke_pthread *th = stoke_profile_find_thread(e->p, x->tid);

		/* leaf first, as the stack walk gives */
		for (uint32_t st = x->stack; st; st = e->stack_next[st])
			pb_varint(&packed, e->stack_loc[st]);
		if (packed.len)
			pb_ldelim(&e->sub, 1, packed.data, packed.len);
		packed.len = 0;
		sample_values(e, &packed, x->kind, sums[g], period);
		pb_ldelim(&e->sub, 2, packed.data, packed.len);
		packed.len = 0;
		label(&e->sub, &e->sub2, k_thread, th ? th->name : 0, 0, 0);
		label(&e->sub, &e->sub2, k_tid, 0, x->tid, 0);
		if (tags && tags[first[g]])
			label(&e->sub, &e->sub2, k_span, tags[first[g]], 0, 0);
		pb_message(&e->out, PROFILE_SAMPLE, &e->sub);
		if (packed.error)
			e->out.error = packed.error;
	}
	r = e->out.error;
out:
	pb_free(&packed);
	stoke_hashmap_free(&groups);
	free(first);
	free(sums);
	free(tags);
	return r;
}

static void write_comments(struct pprof_enc *e)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(e->p);
	const struct stoke_pthread *th;
	size_t n;

	if (fwrite(STOKE_PPROF_META, 1, sizeof(STOKE_PPROF_META), e->meta) !=
	    sizeof(STOKE_PPROF_META))
		e->out.error = -ENOMEM;
	comment(e, "stoke.format=3");
	/* The reader interns string_table[1..N-1] first, in order, so the
	 * model it builds has the same string ids: `stoke report` is then
	 * byte-identical even for pprof itself. */
	comment(e, "stoke.strings=%zu", stoke_profile_nstrings(e->p));
	comment(e, "stoke.event=%s", stoke_profile_string(e->p, m->event));
	comment(e, "stoke.frequency=%" PRIu32, m->frequency);
	comment(e, "stoke.period_ns=%" PRIu64, m->period_ns);
	comment(e, "stoke.start_ns=%" PRIu64, m->start_ns);
	comment(e, "stoke.end_ns=%" PRIu64, m->end_ns);
	comment(e, "stoke.time_first=%" PRIu64, m->time_first);
	comment(e, "stoke.time_last=%" PRIu64, m->time_last);
	comment(e, "stoke.callgraph=%s", stoke_profile_string(e->p, m->callgraph));
	comment(e, "stoke.command=%s", stoke_profile_string(e->p, m->command));
	comment(e, "stoke.pid=%" PRIu32, m->pid);
	comment(e, "stoke.lost=%" PRIu64, m->lost);
	comment(e, "stoke.throttled=%" PRIu64, m->throttled);
	/* Tables go into one string each, named by a short comment: go tool
	 * pprof prints every comment above its report, and a server has
	 * hundreds of threads. No extension fields either: pprof-format (npm)
	 * cannot skip field numbers above 15. */
	th = stoke_profile_threads(e->p, &n);
	for (size_t i = 0; i < n; i++) {
		const char *name = stoke_profile_string(e->p, th[i].name);

		if (fprintf(e->table, "%" PRIu32 "/%" PRIu32 "/%zu:%s", th[i].pid, th[i].tid,
			    strlen(name), name) < 0)
			e->out.error = -ENOMEM;
	}
	table_comment(e, "stoke.threads");
	for (uint32_t id = 1; id <= stoke_profile_nframes(e->p); id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(e->p, id);

		putc('0' + (f->kind << 1 | f->inlined), e->table);
	}
	table_comment(e, "stoke.frame_kinds");
	for (uint32_t id = 1; id <= e->nlocs; id++) {
		const uint32_t *frames = e->loc_frames + e->locs[id - 1].start;

		for (uint32_t k = 0; k < e->locs[id - 1].len; k++)
			fprintf(e->table, "%s%" PRIu32, k ? "," : "", frames[k]);
		putc(';', e->table);
	}
	table_comment(e, "stoke.location_frames");
	/* Module and offset come from the frame's first Location (its
	 * physical frame's); frames that differ say so. */
	for (uint32_t id = 1; id <= stoke_profile_nframes(e->p); id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(e->p, id);
		const struct stoke_pframe *a = loc_anchor(e, e->frame_home[id]);

		if (f->module != a->module || f->offset != a->offset)
			fprintf(e->table, "%" PRIu32 ":%" PRIu32 ":%" PRIu64 ";", id, f->module,
				f->offset);
	}
	table_comment(e, "stoke.frame_places");
	/* A function's definition file, where it is not the line's file (a
	 * Function has one file, the line's): without it a profile read back
	 * would key such a function by the wrong file. */
	{
		bool any = false;

		for (uint32_t id = 1; id <= stoke_profile_nframes(e->p); id++) {
			const struct stoke_pframe *f = stoke_profile_get_frame(e->p, id);

			if (f->decl_file && f->decl_file != f->file) {
				fprintf(e->table, "%" PRIu32 ":%" PRIu32 ";", id, f->decl_file);
				any = true;
			}
		}
		/* only when needed, so other profiles' files stay as they were */
		if (any)
			table_comment(e, "stoke.frame_decls");
	}
	/* "GROUP,DT[,WEIGHT];" per model sample in order: its pprof Sample,
	 * its time less the previous sample's, and its weight when not 1.
	 * A timeline pprof has the samples themselves instead. */
	if (e->timeline) {
		comment(e, "stoke.time=wall");
	} else {
		const struct stoke_psample *s = stoke_profile_samples(e->p, &n);
		uint64_t prev = 0;

		for (size_t i = 0; i < n; i++) {
			fprintf(e->table, "%" PRIu32 ",%" PRId64, e->sample_group[i],
				(int64_t)(s[i].time - prev));
			if (s[i].weight != 1)
				fprintf(e->table, ",%" PRIu64, s[i].weight);
			putc(';', e->table);
			prev = s[i].time;
		}
		table_comment(e, "stoke.timeline");
	}
	/* Every entry in one string, the string table's last: readers show no
	 * string that nothing references, and stoke's reader looks there. */
	if (fflush(e->meta) != 0) {
		e->out.error = -ENOMEM;
		return;
	}
	(void)extra_string_n(e, e->meta_buf, e->meta_len);
}

static void enc_done(struct pprof_enc *e)
{
	if (e->table)
		fclose(e->table);
	free(e->table_buf);
	if (e->meta)
		fclose(e->meta);
	free(e->meta_buf);
	free(e->sample_group);
	pb_free(&e->sub);
	pb_free(&e->sub2);
	pb_free(&e->extra);
	free(e->module_mapping);
	free(e->mapping_limit);
	free(e->mapping_base);
	free(e->mapping_module);
	free(e->frame_function);
	free(e->func_frame);
	stoke_hashmap_free(&e->fn_index);
	free(e->locs);
	free(e->loc_frames);
	stoke_hashmap_free(&e->loc_index);
	free(e->stack_loc);
	free(e->stack_next);
	free(e->frame_home);
}

int stoke_pprof_encode(const struct stoke_profile *p, uint8_t **ret_buf, size_t *ret_len)
{
	return stoke_pprof_encode_timeline(p, false, ret_buf, ret_len);
}

int stoke_pprof_encode_timeline(const struct stoke_profile *p, bool timeline, uint8_t **ret_buf,
				size_t *ret_len)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	struct pprof_enc e = { .p = p, .timeline = timeline };
	size_t nstr = stoke_profile_nstrings(p);
	int r;

	if (nstr >= UINT32_MAX / 2)
		return -E2BIG;
	e.nstr = (uint32_t)nstr;
	e.table = open_memstream(&e.table_buf, &e.table_len);
	e.meta = open_memstream(&e.meta_buf, &e.meta_len);
	if (!e.table || !e.meta) {
		r = -ENOMEM;
		goto out;
	}
	r = assign_functions(&e);
	if (r >= 0)
		r = assign_mappings(&e);
	if (r >= 0)
		r = assign_locations(&e);
	if (r < 0)
		goto out;
	value_type(&e, PROFILE_SAMPLE_TYPE, "samples", "count");
	value_type(&e, PROFILE_SAMPLE_TYPE, "cpu", "nanoseconds");
	e.off_cpu = stoke_profile_total_kind(p, STOKE_SAMPLE_OFF_CPU) != 0;
	if (e.off_cpu) {
		value_type(&e, PROFILE_SAMPLE_TYPE, "off_cpu_samples", "count");
		value_type(&e, PROFILE_SAMPLE_TYPE, "off_cpu", "nanoseconds");
	}
	r = timeline ? write_timeline_samples(&e) : write_samples(&e);
	if (r < 0)
		goto out;
	write_mappings(&e);
	write_locations(&e);
	write_functions(&e);
	/* The model's strings first, so their ids are their indices. */
	for (uint32_t id = 0; id < nstr; id++) {
		const char *s = stoke_profile_string(p, id);

		pb_ldelim(&e.out, PROFILE_STRING_TABLE, s, strlen(s));
	}
	pb_uint_nz(&e.out, PROFILE_TIME_NANOS, m->start_ns);
	pb_uint_nz(&e.out, PROFILE_DURATION_NANOS,
		   m->end_ns > m->start_ns ? m->end_ns - m->start_ns : 0);
	value_type(&e, PROFILE_PERIOD_TYPE, "cpu", "nanoseconds");
	pb_uint_nz(&e.out, PROFILE_PERIOD, m->period_ns);
	write_comments(&e);
	/* The extra strings follow the model's: order within string_table is
	 * what gives indices, and fields may appear in any order otherwise. */
	pb_bytes(&e.out, e.extra.data, e.extra.len);
	r = e.out.error ? e.out.error : e.extra.error ? e.extra.error : e.sub.error;
	if (r >= 0) {
		*ret_buf = e.out.data;
		*ret_len = e.out.len;
		e.out.data = NULL;
	}
out:
	pb_free(&e.out);
	enc_done(&e);
	return r < 0 ? r : 0;
}

/* gzip buf to out in chunks. */
static int gzip_to(const uint8_t *buf, size_t len, FILE *out)
{
	uint8_t chunk[64 * 1024];
	z_stream z = { 0 };
	int zr;

	/* windowBits 15 + 16: gzip framing, which go tool pprof expects. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)buf;
	do {
		size_t chunk_in = STOKE_MIN(len, (size_t)UINT32_MAX);

		z.avail_in = (uInt)chunk_in;
		buf += chunk_in;
		len -= chunk_in;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof(chunk);
			zr = deflate(&z, len ? Z_NO_FLUSH : Z_FINISH);
			if (zr == Z_STREAM_ERROR) {
				deflateEnd(&z);
				return -EIO;
			}
			if (fwrite(chunk, 1, sizeof(chunk) - z.avail_out, out) !=
			    sizeof(chunk) - z.avail_out) {
				deflateEnd(&z);
				return -EIO;
			}
		} while (z.avail_out == 0);
		z.next_in = (Bytef *)(uintptr_t)buf;
	} while (len);
	deflateEnd(&z);
	return zr == Z_STREAM_END ? 0 : -EIO;
}

int stoke_pprof_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		      FILE *out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	r = stoke_pprof_encode_timeline(p, opts && opts->timeline, &buf, &len);
	if (r < 0)
		return r;
	r = gzip_to(buf, len, out);
	free(buf);
	if (r >= 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
	return r;
}
