/*
 * The speedscope writer (see speedscope.h and FORMATS.md "speedscope JSON").
 *
 * Frames: one speedscope frame per distinct (display name, file, line),
 * numbered in model frame-id order, so equal frames never get two indices
 * (that breaks speedscope's merged views). Samples: the model's samples are
 * ordered once by (thread position, time, original index) — stable, so a
 * profile read back from pprof sorts the same — and each thread's run of
 * samples becomes one "sampled" profile whose stacks are written root first,
 * with consecutive identical stacks merged into one weight. Weights are in
 * nanoseconds (weight x period).
 */
#include "formats/speedscope.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/escape.h"
#include "formats/folded.h"
#include "common/hashmap.h"
#include "common/util.h"
#include "formats/spans.h"

#define NAME_MAX_LEN 4096

struct sframe_key {
	char *name;
	uint32_t file, line; /* file: model string id (same content, same id) */
};

struct sctx {
	const struct stoke_profile *p;
	uint32_t *frame_index;     /* per frame id: speedscope index */
	uint32_t *first_frame;     /* per speedscope index: a frame id */
	char **names;              /* per speedscope index */
	uint32_t nindex;
	struct stoke_hashmap index; /* (name, file, line) -> speedscope index + 1 */
	size_t *order;             /* sample indices in output order */
	size_t *thread_pos;        /* per sample: its thread's position */
	uint32_t *scratch;
	size_t scratch_cap;
};

static uint64_t skey_hash(const char *name, uint32_t file, uint32_t line)
{
	uint64_t h = stoke_hash_bytes(STOKE_HASH_INIT, name, strlen(name));

	return stoke_hash_u64(h ^ ((uint64_t)file << 32 | line));
}

static int assign_frames(struct sctx *c)
{
	size_t n = stoke_profile_nframes(c->p);
	char name[NAME_MAX_LEN];

	if (stoke_hashmap_reserve(&c->index, n) < 0)
		return -ENOMEM;
	c->frame_index = calloc(n + 1, sizeof(*c->frame_index));
	c->first_frame = calloc(n + 1, sizeof(*c->first_frame));
	c->names = calloc(n + 1, sizeof(*c->names));
	if (!c->frame_index || !c->first_frame || !c->names)
		return -ENOMEM;
	for (uint32_t id = 1; id <= n; id++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(c->p, id);
		struct stoke_hashmap_iter it;
		uint64_t h;
		uint32_t e;

		stoke_frame_display(c->p, f, name, sizeof(name));
		h = skey_hash(name, f->file, f->line);
		for (e = stoke_hashmap_first(&c->index, h, &it); e;
		     e = stoke_hashmap_next(&c->index, &it)) {
			const struct stoke_pframe *g = stoke_profile_get_frame(c->p,
									      c->first_frame[e - 1]);

			if (g->file == f->file && g->line == f->line && !strcmp(c->names[e - 1], name))
				break;
		}
		if (!e) {
			c->names[c->nindex] = strdup(name);
			if (!c->names[c->nindex])
				return -ENOMEM;
			c->first_frame[c->nindex] = id;
			e = ++c->nindex;
			stoke_hashmap_put(&c->index, h, e);
		}
		c->frame_index[id] = e - 1;
	}
	return 0;
}

static void write_frames(struct sctx *c, FILE *out)
{
	fputs("\"shared\":{\"frames\":[", out);
	for (uint32_t i = 0; i < c->nindex; i++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(c->p, c->first_frame[i]);
		const char *file = stoke_profile_string(c->p, f->file);

		fputs(i ? ",\n{\"name\":" : "\n{\"name\":", out);
		stoke_json_string(out, c->names[i]);
		if (*file) {
			fputs(",\"file\":", out);
			stoke_json_string(out, file);
		}
		if (f->line)
			fprintf(out, ",\"line\":%" PRIu32, f->line);
		putc('}', out);
	}
	fputs("]},\n", out);
}

static int cmp_sample(const void *a, const void *b, void *arg)
{
	const struct sctx *sort_ctx = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const struct stoke_psample *s = stoke_profile_samples(sort_ctx->p, &(size_t){ 0 });

	if (sort_ctx->thread_pos[x] != sort_ctx->thread_pos[y])
		return sort_ctx->thread_pos[x] < sort_ctx->thread_pos[y] ? -1 : 1;
	if (s[x].time != s[y].time)
		return s[x].time < s[y].time ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int order_samples(struct sctx *c, size_t n)
{
	const struct stoke_psample *s = stoke_profile_samples(c->p, &(size_t){ 0 });
	const struct stoke_pthread *threads = stoke_profile_threads(c->p, &(size_t){ 0 });

	c->order = malloc((n + 1) * sizeof(*c->order));
	c->thread_pos = malloc((n + 1) * sizeof(*c->thread_pos));
	if (!c->order || !c->thread_pos)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c->order[i] = i;
		/* One profile per thread and sample kind: off-CPU time is a
		 * profile of its own, beside the thread's on-CPU one. */
		c->thread_pos[i] =
			(size_t)(stoke_profile_find_thread(c->p, s[i].tid) - threads) * 2 + s[i].kind;
	}
	if (n)
		qsort_r(c->order, n, sizeof(*c->order), cmp_sample, c);
	return 0;
}

static int write_stack(struct sctx *c, uint32_t stack, FILE *out)
{
	size_t depth = stoke_profile_stack_frames(c->p, stack, NULL, 0);

	if (STOKE_GROW(c->scratch, c->scratch_cap, depth + 1) < 0)
		return -ENOMEM;
	stoke_profile_stack_frames(c->p, stack, c->scratch, depth);
	putc('[', out);
	for (size_t i = depth; i-- > 0;)
		fprintf(out, i + 1 < depth ? ",%" PRIu32 : "%" PRIu32, c->frame_index[c->scratch[i]]);
	putc(']', out);
	return 0;
}

/* One profile over order[begin, end), all of one thread (or named title). */
static int write_profile(struct sctx *c, size_t begin, size_t end, const char *title, FILE *out)
{
	const struct stoke_psample *s = stoke_profile_samples(c->p, &(size_t){ 0 });
	const struct stoke_pthread *th = stoke_profile_find_thread(c->p, s[c->order[begin]].tid);
	uint64_t period = stoke_profile_cmeta(c->p)->period_ns, total = 0;
	char label[64];
	bool first = true;
	int r;

	fputs("{\"type\":\"sampled\",\"name\":", out);
	/* "NAME (TID)": the JSON escaper handles whatever the name holds */
	if (title) {
		stoke_json_string(out, title);
	} else {
		const char *name = stoke_profile_string(c->p, th->name);
		size_t len = strlen(name);
		char *full = malloc(len + sizeof(label));

		if (!full)
			return -ENOMEM;
		snprintf(full, len + sizeof(label), "%s (%" PRIu32 ")%s", *name ? name : "[unknown]",
			 th->tid, s[c->order[begin]].kind == STOKE_SAMPLE_OFF_CPU ? " off-CPU" : "");
		stoke_json_string(out, full);
		free(full);
	}
	fputs(",\"unit\":\"nanoseconds\",\"startValue\":0,\"endValue\":", out);
	for (size_t k = begin; k < end; k++)
		total += s[c->order[k]].weight * period;
	fprintf(out, "%" PRIu64 ",\n\"samples\":[", total);
	for (size_t k = begin; k < end; k++) {
		if (k > begin && s[c->order[k]].stack == s[c->order[k - 1]].stack)
			continue;
		if (!first)
			fputs(",\n", out);
		first = false;
		r = write_stack(c, s[c->order[k]].stack, out);
		if (r < 0)
			return r;
	}
	fputs("],\n\"weights\":[", out);
	first = true;
	for (size_t k = begin; k < end;) {
		uint64_t w = 0;
		uint32_t stack = s[c->order[k]].stack;

		for (; k < end && s[c->order[k]].stack == stack; k++)
			w += s[c->order[k]].weight * period;
		fprintf(out, first ? "%" PRIu64 : ",%" PRIu64, w);
		first = false;
	}
	fputs("]}", out);
	return 0;
}

/* Spans (formats/spans.h): after the threads' profiles, one per span name,
 * "span: NAME", of the samples taken in it (their innermost span), every
 * thread's, each thread's in time order. */
static int write_span_profiles(struct sctx *c, size_t n, size_t *nprofiles, FILE *out)
{
	size_t *all = c->order, *idx = NULL, m;
	uint32_t *tags = NULL, *done = NULL;
	size_t ndone = 0;
	int r = stoke_span_sample_names(c->p, &tags);

	if (r < 0 || !tags)
		return r;
	idx = malloc((n + 1) * sizeof(*idx));
	done = malloc((n + 1) * sizeof(*done));
	if (!idx || !done)
		r = -ENOMEM;
	for (size_t k = 0; r >= 0 && k < n; k++) {
		uint32_t t = tags[all[k]];
		const char *name;
		char *title;
		bool seen = !t;

		for (size_t j = 0; !seen && j < ndone; j++)
			seen = done[j] == t;
		if (seen)
			continue;
		done[ndone++] = t;
		m = 0;
		for (size_t j = k; j < n; j++)
			if (tags[all[j]] == t)
				idx[m++] = all[j];
		name = stoke_profile_string(c->p, t);
		title = malloc(strlen(name) + sizeof("span: "));
		if (!title) {
			r = -ENOMEM;
			break;
		}
		strcpy(title, "span: ");
		strcat(title, name);
		fputs(",\n", out);
		c->order = idx;
		r = write_profile(c, 0, m, title, out);
		c->order = all;
		free(title);
		(*nprofiles)++;
	}
	free(idx);
	free(done);
	free(tags);
	return r;
}

static void sctx_done(struct sctx *c)
{
	for (uint32_t i = 0; c->names && i < c->nindex; i++)
		free(c->names[i]);
	free(c->names);
	free(c->frame_index);
	free(c->first_frame);
	stoke_hashmap_free(&c->index);
	free(c->order);
	free(c->thread_pos);
	free(c->scratch);
}

int stoke_speedscope_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
			   FILE *out)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	struct sctx c = { .p = p };
	size_t n, nprofiles = 0, active = 0;
	uint64_t best = 0;
	int r;

	stoke_profile_samples(p, &n);
	r = assign_frames(&c);
	if (r >= 0)
		r = order_samples(&c, n);
	if (r < 0)
		goto out;
	fputs("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\n", out);
	fputs("\"exporter\":\"stoke@" STOKE_VERSION "\",\"name\":", out);
	stoke_json_string(out, *stoke_profile_string(p, m->command)
				       ? stoke_profile_string(p, m->command)
				       : "stoke profile");
	fputs(",\n", out);
	write_frames(&c, out);
	fputs("\"profiles\":[\n", out);
	for (size_t k = 0; k < n && r >= 0;) {
		size_t end = k;
		uint64_t w = 0;

		for (; end < n && c.thread_pos[c.order[end]] == c.thread_pos[c.order[k]]; end++)
			w += stoke_profile_samples(p, &(size_t){ 0 })[c.order[end]].weight;
		if (nprofiles)
			fputs(",\n", out);
		/* open on the busiest thread */
		if (w > best) {
			best = w;
			active = nprofiles;
		}
		r = write_profile(&c, k, end, NULL, out);
		nprofiles++;
		k = end;
	}
	if (r >= 0)
		r = write_span_profiles(&c, n, &nprofiles, out);
	if (r < 0)
		goto out;
	/* speedscope rejects a file without profiles: an empty one says "nothing" */
	if (!nprofiles)
		fputs("{\"type\":\"sampled\",\"name\":\"no samples\",\"unit\":\"nanoseconds\","
		      "\"startValue\":0,\"endValue\":0,\"samples\":[],\"weights\":[]}",
		      out);
	fprintf(out, "\n],\"activeProfileIndex\":%zu}\n", active);
	if (fflush(out) != 0 || ferror(out))
		r = -EIO;
out:
	sctx_done(&c);
	return r;
}
