/*
 * Merging profiles: the samples of one model added into another, with its
 * strings, frames and stacks re-interned, for `stoke suite`'s merged profile
 * of all repetitions.
 */
#include <errno.h>
#include <stdlib.h>

#include "formats/profile.h"
#include "formats/spans.h"

static int map_string(struct stoke_profile *dst, const struct stoke_profile *src, uint32_t id,
		      uint32_t *ret)
{
	return stoke_profile_intern(dst, stoke_profile_string(src, id), ret);
}

static int merge_frames(struct stoke_profile *dst, const struct stoke_profile *src, uint32_t *fmap)
{
	size_t n = stoke_profile_nframes(src);

	for (size_t id = 1; id <= n; id++) {
		struct stoke_pframe f = *stoke_profile_get_frame(src, (uint32_t)id);
		int r;

		if ((r = map_string(dst, src, f.name, &f.name)) < 0 ||
		    (r = map_string(dst, src, f.file, &f.file)) < 0 ||
		    (r = map_string(dst, src, f.module, &f.module)) < 0 ||
		    (r = map_string(dst, src, f.decl_file, &f.decl_file)) < 0 ||
		    (r = stoke_profile_frame(dst, &f, &fmap[id])) < 0)
			return r;
	}
	return 0;
}

/* Stack ids are created parent first, so a parent's mapping always exists
 * when its children are reached in id order. */
static int merge_stacks(struct stoke_profile *dst, const struct stoke_profile *src,
			const uint32_t *fmap, uint32_t *smap)
{
	size_t n = stoke_profile_nstacks(src);

	smap[0] = 0;
	for (size_t id = 1; id <= n; id++) {
		const struct stoke_pstack *st = stoke_profile_get_stack(src, (uint32_t)id);
		int r;

		if (st->parent >= id)
			return -EINVAL;
		r = stoke_profile_stack(dst, smap[st->parent], fmap[st->frame], &smap[id]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void merge_meta(struct stoke_profile *dst, const struct stoke_profile *src, bool first)
{
	struct stoke_pmeta *d = stoke_profile_meta(dst);
	const struct stoke_pmeta *s = stoke_profile_cmeta(src);

	if (first || (s->start_ns && s->start_ns < d->start_ns))
		d->start_ns = s->start_ns;
	if (s->end_ns > d->end_ns)
		d->end_ns = s->end_ns;
	d->lost += s->lost;
	d->throttled += s->throttled;
	if (first) {
		d->frequency = s->frequency;
		d->period_ns = s->period_ns;
		d->pid = s->pid;
	}
}

int stoke_profile_merge(struct stoke_profile *dst, const struct stoke_profile *src)
{
	const struct stoke_pmeta *sm = stoke_profile_cmeta(src);
	struct stoke_pmeta *dm = stoke_profile_meta(dst);
	bool first = stoke_profile_total(dst) == 0 && !dm->event;
	uint32_t *fmap = calloc(stoke_profile_nframes(src) + 1, sizeof(*fmap));
	uint32_t *smap = calloc(stoke_profile_nstacks(src) + 1, sizeof(*smap));
	const struct stoke_pthread *threads;
	const struct stoke_psample *samples;
	size_t n;
	int r = -ENOMEM;

	if (!fmap || !smap)
		goto out;
	r = merge_frames(dst, src, fmap);
	if (r == 0)
		r = merge_stacks(dst, src, fmap, smap);
	threads = stoke_profile_threads(src, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = stoke_profile_thread(dst, threads[i].pid, threads[i].tid,
					 stoke_profile_string(src, threads[i].name));
	samples = stoke_profile_samples(src, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = stoke_profile_add_sample_kind(dst, samples[i].tid, samples[i].time,
						  smap[samples[i].stack], samples[i].weight,
						  samples[i].kind);
	if (r == 0 && first) {
		if ((r = map_string(dst, src, sm->event, &dm->event)) == 0 &&
		    (r = map_string(dst, src, sm->callgraph, &dm->callgraph)) == 0)
			r = map_string(dst, src, sm->command, &dm->command);
	}
	if (r == 0)
		merge_meta(dst, src, first);
out:
	free(fmap);
	free(smap);
	return r;
}

/*
 * A function-level view: every named frame of one function (the same name)
 * becomes one frame at offset 0, keyed as cProfile keys a function: the file
 * and first line of its definition (DWARF decl_file/decl_line, from the
 * first frame in id order that has them). Without them (no DWARF, an old
 * stored profile), the file of its first frame in id order and the lowest
 * line seen in that file. Unnamed frames keep their module offset and stay
 * distinct.
 */
static int copy_frames(struct stoke_profile *dst, const struct stoke_profile *src,
		       const struct stoke_copy_opts *o, uint32_t *fmap)
{
	size_t n = stoke_profile_nframes(src), ns = stoke_profile_nstrings(src) + 1;
	uint32_t *first_file = NULL, *first_line = NULL, *decl_file = NULL, *decl_line = NULL;
	int r = 0;

	if (o->by_function) {
		first_file = calloc(ns, sizeof(*first_file));
		first_line = calloc(ns, sizeof(*first_line));
		decl_file = calloc(ns, sizeof(*decl_file));
		decl_line = calloc(ns, sizeof(*decl_line));
		if (!first_file || !first_line || !decl_file || !decl_line) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t id = 1; id <= n; id++) {
			const struct stoke_pframe *f = stoke_profile_get_frame(src, (uint32_t)id);

			if (!f->name)
				continue;
			if (f->decl_line && f->decl_file && !decl_line[f->name]) {
				decl_file[f->name] = f->decl_file;
				decl_line[f->name] = f->decl_line;
			}
			/* file + 1: 0 means not seen yet */
			if (!first_file[f->name])
				first_file[f->name] = f->file + 1;
			if (first_file[f->name] == f->file + 1 && f->line &&
			    (!first_line[f->name] || f->line < first_line[f->name]))
				first_line[f->name] = f->line;
		}
	}
	for (size_t id = 1; id <= n && r == 0; id++) {
		struct stoke_pframe f = *stoke_profile_get_frame(src, (uint32_t)id);

		if (first_file && f.name) {
			f.file = first_file[f.name] - 1;
			f.line = first_line[f.name];
			f.decl_file = decl_file[f.name];
			f.decl_line = decl_line[f.name];
			if (f.decl_line) {
				f.file = f.decl_file;
				f.line = f.decl_line;
			}
			f.offset = 0; /* the address within it, too */
		}
		if ((r = map_string(dst, src, f.name, &f.name)) < 0 ||
		    (r = map_string(dst, src, f.file, &f.file)) < 0 ||
		    (r = map_string(dst, src, f.module, &f.module)) < 0 ||
		    (r = map_string(dst, src, f.decl_file, &f.decl_file)) < 0)
			break;
		r = stoke_profile_frame(dst, &f, &fmap[id]);
	}
out:
	free(first_file);
	free(first_line);
	free(decl_file);
	free(decl_line);
	return r;
}

static bool keep_tid(const struct stoke_copy_opts *o, uint32_t tid)
{
	if (!o->ntids)
		return true;
	for (size_t i = 0; i < o->ntids; i++)
		if (o->tids[i] == tid)
			return true;
	return false;
}

int stoke_profile_copy(const struct stoke_profile *src, const struct stoke_copy_opts *o,
		       struct stoke_profile **ret)
{
	const struct stoke_pmeta *sm = stoke_profile_cmeta(src);
	uint32_t *fmap = calloc(stoke_profile_nframes(src) + 1, sizeof(*fmap));
	uint32_t *smap = calloc(stoke_profile_nstacks(src) + 1, sizeof(*smap));
	struct stoke_profile *dst = NULL;
	const struct stoke_pthread *threads;
	const struct stoke_psample *samples;
	struct stoke_pmeta *dm;
	uint32_t *tags = NULL;
	size_t n;
	int r = -ENOMEM;

	if (!fmap || !smap || stoke_profile_new(&dst) < 0)
		goto out;
	/* Strings first, in order, so that string ids (and every writer's
	 * tie-breaks on them) stay as in src. */
	r = 0;
	for (size_t i = 1; r == 0 && i < stoke_profile_nstrings(src); i++) {
		uint32_t id;

		r = stoke_profile_intern(dst, stoke_profile_string(src, (uint32_t)i), &id);
	}
	if (r == 0)
		r = copy_frames(dst, src, o, fmap);
	if (r == 0)
		r = merge_stacks(dst, src, fmap, smap);
	threads = stoke_profile_threads(src, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (keep_tid(o, threads[i].tid))
			r = stoke_profile_thread(dst, threads[i].pid, threads[i].tid,
						 stoke_profile_string(src, threads[i].name));
	samples = stoke_profile_samples(src, &n);
	/* Each kept sample keeps its span (formats/spans.h) explicitly. */
	if (r == 0 && stoke_profile_get_spans(src))
		r = stoke_span_sample_names(src, &tags);
	for (size_t i = 0, kept = 0; r == 0 && i < n; i++)
		if (keep_tid(o, samples[i].tid) && (!o->keep || o->keep[i]) &&
		    (!o->kind_plus1 || samples[i].kind + 1 == o->kind_plus1)) {
			r = stoke_profile_add_sample_kind(dst, samples[i].tid, samples[i].time,
							  smap[samples[i].stack],
							  samples[i].weight, samples[i].kind);
			if (r == 0 && tags && tags[i])
				r = stoke_profile_set_sample_span(dst, kept, tags[i]);
			kept++;
		}
	free(tags);
	/* Spans (formats/spans.h) of the threads kept: string ids are the
	 * same in both. */
	if (r == 0) {
		const struct stoke_pspan *sp = stoke_profile_spans(src, &n);

		for (size_t i = 0; r == 0 && i < n; i++)
			if (keep_tid(o, sp[i].tid))
				r = stoke_profile_add_span(dst, &sp[i]);
		if (r == 0 && stoke_profile_spans_get_unmatched(src))
			r = stoke_profile_spans_unmatched(dst,
							  stoke_profile_spans_get_unmatched(src));
		if (r == 0 && stoke_profile_spans_get_lost(src))
			r = stoke_profile_spans_set_lost(dst, stoke_profile_spans_get_lost(src));
	}
	if (r < 0)
		goto out;
	dm = stoke_profile_meta(dst);
	*dm = *sm;
	if ((r = map_string(dst, src, sm->event, &dm->event)) < 0 ||
	    (r = map_string(dst, src, sm->callgraph, &dm->callgraph)) < 0 ||
	    (r = map_string(dst, src, sm->command, &dm->command)) < 0)
		goto out;
	*ret = dst;
	dst = NULL;
out:
	stoke_profile_free(dst);
	free(fmap);
	free(smap);
	return r;
}
