/*
 * The pprof writer and reader (formats/pprof.h): a golden file of the
 * uncompressed profile.proto for the synthetic profile; the exact round
 * trip that `stoke report` relies on (write, read back, write again: the
 * same bytes, in pprof and in every other format); gzip framing; and the
 * reader's refusal of malformed input with a reason instead of a crash.
 *
 * Inline chains: a model with a physical frame shared by different inline
 * chains, nested chains in one stack, a chain at the stack's root edge, a
 * lone inlined stack, an inlined frame before an unknown frame, an inlined
 * frame from another module and a chain longer than a Location may hold.
 * The encoded Locations are decoded here with the wire reader and checked
 * against the pprof convention (line[0] the innermost callee, the last the
 * physical function, location_id leaf first); the round trip stays exact.
 * A hand-built profile in another tool's style (one Location with three
 * lines) loads as three frames, the first two inlined.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/output.h"
#include "formats/pb.h"
#include "formats/pprof.h"
#include "synth.h"

START_TEST(golden_encoding)
{
	struct stoke_profile *p = synth_profile();
	uint8_t *buf = NULL;
	size_t len = 0;

	ck_assert_int_eq(stoke_pprof_encode(p, &buf, &len), 0);
	synth_golden("synth.pb", (const char *)buf, len);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

static struct stoke_profile *read_back(const char *buf, size_t len)
{
	struct stoke_profile *q = NULL;
	const char *err = NULL;
	FILE *in = fmemopen((void *)buf, len, "rb");
	int r;

	ck_assert_ptr_nonnull(in);
	r = stoke_pprof_read(in, &q, &err);
	ck_assert_msg(r == 0, "read failed: %s", err ? err : "?");
	fclose(in);
	return q;
}

/* Every format (both per-thread settings) of q equals p's. */
static void assert_same_outputs(const struct stoke_profile *p, const struct stoke_profile *q)
{
	struct stoke_output_opts opts;

	stoke_output_opts_init(&opts);
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++) {
		for (int per_thread = 0; per_thread < 2; per_thread++) {
			size_t la, lb;
			char *a, *b;
			FILE *out;
			int ra, rb;

			opts.per_thread = per_thread;
			a = NULL, b = NULL;
			out = open_memstream(&a, &la);
			ra = stoke_output_write_file(p, (enum stoke_format)f, &opts, out);
			fclose(out);
			out = open_memstream(&b, &lb);
			rb = stoke_output_write_file(q, (enum stoke_format)f, &opts, out);
			fclose(out);
			ck_assert_int_eq(ra, rb);
			if (ra == -EOPNOTSUPP) {
				free(a);
				free(b);
				continue;
			}
			ck_assert_int_eq(ra, 0);
			ck_assert_msg(la == lb && memcmp(a, b, la) == 0, "format %s differs",
				      stoke_format_name((enum stoke_format)f));
			free(a);
			free(b);
		}
	}
}

/* q holds what p holds: strings, frames (same ids), samples with the same
 * stacks, threads and metadata. */
static void assert_same_model(const struct stoke_profile *p, const struct stoke_profile *q)
{
	const struct stoke_psample *sa, *sb;
	const struct stoke_pthread *ta, *tb;
	const struct stoke_pmeta *ma, *mb;
	size_t na, nb;

	ck_assert_uint_eq(stoke_profile_nstrings(q), stoke_profile_nstrings(p));
	for (uint32_t i = 0; i < stoke_profile_nstrings(p); i++)
		ck_assert_str_eq(stoke_profile_string(q, i), stoke_profile_string(p, i));
	ck_assert_uint_eq(stoke_profile_nframes(q), stoke_profile_nframes(p));
	for (uint32_t i = 1; i <= stoke_profile_nframes(p); i++) {
		const struct stoke_pframe *x = stoke_profile_get_frame(p, i);
		const struct stoke_pframe *y = stoke_profile_get_frame(q, i);

		ck_assert_uint_eq(x->name, y->name);
		ck_assert_uint_eq(x->file, y->file);
		ck_assert_uint_eq(x->line, y->line);
		ck_assert_uint_eq(x->module, y->module);
		ck_assert_uint_eq(x->offset, y->offset);
		ck_assert_uint_eq(x->kind, y->kind);
		ck_assert_int_eq(x->inlined, y->inlined);
	}
	sa = stoke_profile_samples(p, &na);
	sb = stoke_profile_samples(q, &nb);
	ck_assert_uint_eq(na, nb);
	for (size_t i = 0; i < na; i++) {
		uint32_t fa[512], fb[512];
		size_t da = stoke_profile_stack_frames(p, sa[i].stack, fa, 512);
		size_t db = stoke_profile_stack_frames(q, sb[i].stack, fb, 512);

		ck_assert_uint_le(da, 512);
		ck_assert_uint_eq(sa[i].tid, sb[i].tid);
		ck_assert_uint_eq(sa[i].time, sb[i].time);
		ck_assert_uint_eq(sa[i].weight, sb[i].weight);
		ck_assert_uint_eq(da, db);
		ck_assert_int_eq(memcmp(fa, fb, da * sizeof(*fa)), 0);
	}
	ta = stoke_profile_threads(p, &na);
	tb = stoke_profile_threads(q, &nb);
	ck_assert_uint_eq(na, nb);
	for (size_t i = 0; i < na; i++) {
		ck_assert_uint_eq(ta[i].pid, tb[i].pid);
		ck_assert_uint_eq(ta[i].tid, tb[i].tid);
		ck_assert_uint_eq(ta[i].samples, tb[i].samples);
		ck_assert_str_eq(stoke_profile_string(p, ta[i].name),
				 stoke_profile_string(q, tb[i].name));
	}
	ma = stoke_profile_cmeta(p);
	mb = stoke_profile_cmeta(q);
	ck_assert_int_eq(memcmp(ma, mb, sizeof(*ma)), 0);
}

/* Every format of the read-back profile equals the original's. */
START_TEST(round_trip_every_format)
{
	struct stoke_profile *p = synth_profile(), *q;
	char *gz;
	size_t gzlen;

	gz = synth_render(p, STOKE_FORMAT_PPROF, NULL, &gzlen);
	ck_assert_uint_ge(gzlen, 2);
	ck_assert_int_eq((unsigned char)gz[0], 0x1f);
	ck_assert_int_eq((unsigned char)gz[1], 0x8b);
	q = read_back(gz, gzlen);
	ck_assert_uint_eq(stoke_profile_total(q), stoke_profile_total(p));
	assert_same_outputs(p, q);
	free(gz);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

/* The model read back holds what the writer was given. */
START_TEST(round_trip_model)
{
	struct stoke_profile *p = synth_profile(), *q;
	char *gz;
	size_t gzlen;

	gz = synth_render(p, STOKE_FORMAT_PPROF, NULL, &gzlen);
	q = read_back(gz, gzlen);
	assert_same_model(p, q);
	free(gz);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

/* Unnamed kernel frames keep the kernel address as their offset, and an ELF
 * may be linked high: offsets far above a mapping's 2^40-byte slot still
 * write (relative to the mapping's file_offset) and read back exactly. */
START_TEST(large_offsets)
{
	struct stoke_profile *p, *q;
	static const uint64_t offs[] = { 0xffffffff81234567ULL, 0xffffffffc0401000ULL,
					 0x7f12345678ULL };
	static const char *mods[] = { "[kernel.kallsyms]", "[kernel.kallsyms]", "/opt/high.so" };
	uint32_t stack = 0;
	char *gz;
	size_t gzlen;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	for (size_t i = 0; i < 3; i++) {
		struct stoke_pframe f = { .offset = offs[i],
					  .kind = i < 2 ? STOKE_PFRAME_KERNEL : STOKE_PFRAME_USER };
		uint32_t id;

		ck_assert_int_eq(stoke_profile_intern(p, mods[i], &f.module), 0);
		ck_assert_int_eq(stoke_profile_frame(p, &f, &id), 0);
		ck_assert_int_eq(stoke_profile_stack(p, stack, id, &stack), 0);
	}
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 10, stack, 3), 0);
	gz = synth_render(p, STOKE_FORMAT_PPROF, NULL, &gzlen);
	ck_assert_ptr_nonnull(gz);
	q = read_back(gz, gzlen);
	assert_same_model(p, q);
	assert_same_outputs(p, q);
	free(gz);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

/* A function whose sampled line is in another file than its definition (a
 * header line in a .cpp function): the definition's file comes back, so the
 * per-function outputs of `stoke report` equal record's (the ASan suite's
 * runtime hit this and broke formats-rundir_and_report). */
START_TEST(definition_file_round_trip)
{
	struct stoke_profile *p, *q;
	struct stoke_pframe f = { .line = 606, .decl_line = 590, .kind = STOKE_PFRAME_USER };
	uint32_t id, stack = 0;
	char *gz;
	size_t gzlen;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "AddModuleSegments", &f.name), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "/src/common.h", &f.file), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "/src/linux.cpp", &f.decl_file), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "/usr/lib/libasan.so", &f.module), 0);
	f.offset = 0x1234;
	ck_assert_int_eq(stoke_profile_frame(p, &f, &id), 0);
	ck_assert_int_eq(stoke_profile_stack(p, stack, id, &stack), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 10, stack, 1), 0);
	gz = synth_render(p, STOKE_FORMAT_PPROF, NULL, &gzlen);
	ck_assert_ptr_nonnull(gz);
	q = read_back(gz, gzlen);
	assert_same_model(p, q);
	ck_assert_str_eq(stoke_profile_string(q, stoke_profile_get_frame(q, 1)->decl_file),
			 "/src/linux.cpp");
	assert_same_outputs(p, q);
	free(gz);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

/* --- inline chains ------------------------------------------------------ */

#define DEEP 300 /* inlined frames in one chain: more than a Location holds */

/* The inline model and its sample stacks, in sample order. */
struct inl_model {
	struct stoke_profile *p;
	uint32_t stacks[16];
	size_t nstacks;
};

static struct stoke_profile *inline_profile(struct inl_model *im)
{
	struct stoke_profile *p = NULL;
	uint32_t inner, outer, other, main_, run, work, callee, inl_x, inl_y, foreign, edge_outer,
		edge_inner, leaf, lone, unk, inl_u, kinl, kphys, deep[DEEP + 2];
	struct stoke_pmeta *m;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	/* Inlined frames first, and one no sample uses: frame ids are then
	 * not in Location order, which the reader must undo. */
	inner = synth_frame(p, "inl_inner", "/src/inl.h", 3, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			    true);
	outer = synth_frame(p, "inl_outer", "/src/inl.h", 9, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			    true);
	other = synth_frame(p, "inl_other", "/src/other.h", 4, "/usr/bin/app", 0,
			    STOKE_PFRAME_USER, true);
	(void)synth_frame(p, "inl_unused", "/src/inl.h", 20, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			  true);
	main_ = synth_frame(p, "main", "/src/app.c", 10, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			    false);
	run = synth_frame(p, "run", "/src/app.c", 20, "/usr/bin/app", 0, STOKE_PFRAME_USER, false);
	work = synth_frame(p, "work", "/src/app.c", 30, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			   false);
	callee = synth_frame(p, "callee", "/src/lib.c", 5, "/usr/lib/libx.so", 0,
			     STOKE_PFRAME_USER, false);
	inl_x = synth_frame(p, "inl_x", "/src/app.c", 33, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			    true);
	inl_y = synth_frame(p, "inl_y", "/src/lib.h", 7, "/usr/lib/libx.so", 0, STOKE_PFRAME_USER,
			    true);
	/* another module and a non-zero offset than the Location it joins */
	foreign = synth_frame(p, "inl_foreign", "/src/f.h", 8, "/usr/lib/libother.so", 0x10,
			      STOKE_PFRAME_USER, true);
	edge_outer = synth_frame(p, "edge_outer", "/src/e.h", 1, "/usr/bin/app", 0,
				 STOKE_PFRAME_USER, true);
	edge_inner = synth_frame(p, "edge_inner", "/src/e.h", 2, "/usr/bin/app", 0,
				 STOKE_PFRAME_USER, true);
	leaf = synth_frame(p, "leaf", "/src/app.c", 40, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			   false);
	lone = synth_frame(p, "inl_lone", "/src/l.h", 1, "/usr/bin/app", 0, STOKE_PFRAME_USER,
			   true);
	unk = synth_frame(p, NULL, NULL, 0, "/usr/lib/libz.so", 0x777, STOKE_PFRAME_USER, false);
	inl_u = synth_frame(p, "inl_before_unknown", "/src/u.h", 2, "/usr/bin/app", 0,
			    STOKE_PFRAME_USER, true);
	kinl = synth_frame(p, "kinl", NULL, 0, "[kernel.kallsyms]", 0, STOKE_PFRAME_KERNEL, true);
	kphys = synth_frame(p, "kphys", NULL, 0, "[kernel.kallsyms]", 0, STOKE_PFRAME_KERNEL,
			    false);
	deep[0] = main_;
	deep[1] = run;
	for (int i = 0; i < DEEP; i++) {
		char name[32];

		snprintf(name, sizeof(name), "deep%d", i);
		deep[i + 2] = synth_frame(p, name, "/src/deep.h", (uint32_t)i + 1, "/usr/bin/app",
					  0, STOKE_PFRAME_USER, true);
	}
	im->nstacks = 0;
	/* root first; the comment shows the expected Locations, leaf first */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, run, outer, inner);
	/* [inl_inner inl_outer run] [main] */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, run, other);
	/* [inl_other run] [main]: the same physical frame, another chain */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, run, outer);
	/* [inl_outer run] [main]: part of the first chain */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, run);
	/* [run] [main]: the physical frame alone */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, work, inl_x, callee, inl_y, foreign);
	/* [inl_foreign inl_y callee] [inl_x work] [main]: nested chains */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, edge_outer, edge_inner, leaf);
	/* [leaf] [edge_inner edge_outer]: a chain at the root edge */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, lone);
	/* [inl_lone]: a lone inlined frame */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, unk, inl_u);
	/* [inl_before_unknown] [?] [main]: an unknown frame has no Line */
	im->stacks[im->nstacks++] = SYNTH_STACK(p, main_, kphys, kinl);
	/* [kinl kphys] [main]: kernel frames */
	{
		uint32_t st = 0;

		for (int i = 0; i < DEEP + 2; i++)
			ck_assert_int_eq(stoke_profile_stack(p, st, deep[i], &st), 0);
		im->stacks[im->nstacks++] = st;
	}
	/* [deep299 .. deep44] [deep43 .. deep0 run] [main]: 256 lines at most */
	ck_assert_int_eq(stoke_profile_thread(p, 7, 7, "inl"), 0);
	ck_assert_int_eq(stoke_profile_thread(p, 7, 8, "inl-2"), 0);
	for (size_t i = 0; i < im->nstacks; i++)
		ck_assert_int_eq(stoke_profile_add_sample(p, 7 + (uint32_t)(i & 1), 1000 * (i + 1),
							  im->stacks[i], i + 1),
				 0);
	/* the first stack again, from the other thread: the same Locations */
	ck_assert_int_eq(stoke_profile_add_sample(p, 8, 99000, im->stacks[0], 2), 0);
	m = stoke_profile_meta(p);
	m->event = synth_intern(p, "cpu-clock");
	m->frequency = 1000;
	m->period_ns = 1000000;
	m->start_ns = 1700000000000000000ULL;
	m->end_ns = 1700000001000000000ULL;
	m->callgraph = synth_intern(p, "dwarf");
	m->command = synth_intern(p, "./inline 2");
	m->pid = 7;
	im->p = p;
	return p;
}

/* The parts of an encoded profile the inline checks look at. */
struct tloc {
	uint64_t id, mapping, address;
	size_t nlines;
	uint64_t fn[STOKE_PPROF_MAX_LINES], line[STOKE_PPROF_MAX_LINES];
};

struct tdec {
	struct tloc *loc;
	size_t nloc;
	struct { uint64_t id, name; } fn[512];
	size_t nfn;
	uint64_t samples[32][512];
	size_t depth[32], nsamples;
	const uint8_t *str[4096];
	size_t slen[4096], nstr;
};

static size_t tdec_varints(struct pb_field *f, uint64_t *out, size_t max)
{
	struct pb_reader r = f->sub;
	size_t n = 0;

	if (f->wire == 0) {
		out[0] = f->value;
		return 1;
	}
	while (r.p < r.end) {
		ck_assert_uint_lt(n, max);
		ck_assert(pb_read_varint(&r, &out[n++]));
	}
	return n;
}

static void tdec_parse(struct tdec *t, const uint8_t *buf, size_t len)
{
	struct pb_reader r = { buf, buf + len };
	struct pb_field f, g, h;

	memset(t, 0, sizeof(*t));
	t->loc = calloc(4096, sizeof(*t->loc));
	ck_assert_ptr_nonnull(t->loc);
	while (pb_next(&r, &f)) {
		if (f.number == 2) {
			struct pb_reader m = f.sub;

			ck_assert_uint_lt(t->nsamples, 32);
			while (pb_next(&m, &g))
				if (g.number == 1)
					t->depth[t->nsamples] +=
						tdec_varints(&g, t->samples[t->nsamples] +
									 t->depth[t->nsamples],
							     512 - t->depth[t->nsamples]);
			t->nsamples++;
		} else if (f.number == 4) {
			struct pb_reader m = f.sub;
			struct tloc *l = &t->loc[t->nloc++];

			ck_assert_uint_le(t->nloc, 4096);
			while (pb_next(&m, &g)) {
				if (g.number == 1)
					l->id = g.value;
				else if (g.number == 2)
					l->mapping = g.value;
				else if (g.number == 3)
					l->address = g.value;
				else if (g.number == 4) {
					struct pb_reader lm = g.sub;

					while (pb_next(&lm, &h)) {
						if (h.number == 1)
							l->fn[l->nlines] = h.value;
						else if (h.number == 2)
							l->line[l->nlines] = h.value;
					}
					l->nlines++;
				}
			}
		} else if (f.number == 5) {
			struct pb_reader m = f.sub;

			ck_assert_uint_lt(t->nfn, 512);
			while (pb_next(&m, &g)) {
				if (g.number == 1)
					t->fn[t->nfn].id = g.value;
				else if (g.number == 2)
					t->fn[t->nfn].name = g.value;
			}
			t->nfn++;
		} else if (f.number == 6) {
			ck_assert_uint_lt(t->nstr, 4096);
			t->str[t->nstr] = f.sub.p;
			t->slen[t->nstr++] = (size_t)(f.sub.end - f.sub.p);
		}
	}
	ck_assert(r.p == r.end);
	ck_assert_uint_ge(t->nstr, 1);
	ck_assert_uint_eq(t->slen[0], 0); /* string_table[0] = "" */
}

static const struct tloc *tdec_loc(const struct tdec *t, uint64_t id)
{
	const struct tloc *found = NULL;

	ck_assert_uint_ne(id, 0);
	for (size_t i = 0; i < t->nloc; i++) {
		if (t->loc[i].id == id) {
			ck_assert_msg(!found, "location id %llu is duplicated", (unsigned long long)id);
			found = &t->loc[i];
		}
	}
	ck_assert_msg(found != NULL, "location %llu is not resolvable", (unsigned long long)id);
	return found;
}

/* The name of a line's function, as a NUL-terminated copy in buf. */
static const char *tdec_fn_name(const struct tdec *t, uint64_t fn, char *buf, size_t size)
{
	for (size_t i = 0; i < t->nfn; i++) {
		if (t->fn[i].id == fn) {
			uint64_t s = t->fn[i].name;

			ck_assert_uint_lt(s, t->nstr);
			snprintf(buf, size, "%.*s", (int)t->slen[s], (const char *)t->str[s]);
			return buf;
		}
	}
	ck_abort_msg("function %llu is not resolvable", (unsigned long long)fn);
	return NULL;
}

/* A sample's Locations, leaf first, as "[a b] [c]" ("?" for no Line). */
static char *tdec_sample_str(const struct tdec *t, size_t i)
{
	char *s = NULL, name[256];
	size_t n = 0;
	FILE *out = open_memstream(&s, &n);

	for (size_t k = 0; k < t->depth[i]; k++) {
		const struct tloc *l = tdec_loc(t, t->samples[i][k]);

		fputs(k ? " [" : "[", out);
		if (!l->nlines)
			fputs("?", out);
		for (size_t j = 0; j < l->nlines; j++)
			fprintf(out, "%s%s", j ? " " : "",
				tdec_fn_name(t, l->fn[j], name, sizeof(name)));
		fputs("]", out);
	}
	fclose(out);
	return s;
}

/* The pprof convention, checked on the wire: each sample's Locations,
 * leaf first, with line[0] the innermost callee and the physical frame
 * last, spell the model's stack; deduplicated Locations; a chain's
 * Location shares the address of its physical frame. */
START_TEST(inline_locations)
{
	static const char *const want[] = {
		"[inl_inner inl_outer run] [main]",
		"[inl_other run] [main]",
		"[inl_outer run] [main]",
		"[run] [main]",
		"[inl_foreign inl_y callee] [inl_x work] [main]",
		"[leaf] [edge_inner edge_outer]",
		"[inl_lone]",
		"[inl_before_unknown] [?] [main]",
		"[kinl kphys] [main]",
	};
	struct inl_model im;
	struct stoke_profile *p = inline_profile(&im);
	const struct tloc *l, *chain = NULL, *alone = NULL;
	struct tdec *t = calloc(1, sizeof(*t));
	uint8_t *buf = NULL;
	size_t len = 0, want_n = sizeof(want) / sizeof(want[0]);
	char name[64];

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(stoke_pprof_encode(p, &buf, &len), 0);
	tdec_parse(t, buf, len);
	ck_assert_uint_eq(t->nsamples, im.nstacks + 1);
	for (size_t i = 0; i < want_n; i++) {
		char *got = tdec_sample_str(t, i);

		ck_assert_msg(!strcmp(got, want[i]), "sample %zu: %s, want %s", i, got, want[i]);
		free(got);
	}
	/* the repeated stack names the very same Locations */
	ck_assert_uint_eq(t->depth[im.nstacks], t->depth[0]);
	ck_assert_int_eq(memcmp(t->samples[im.nstacks], t->samples[0],
				t->depth[0] * sizeof(uint64_t)), 0);
	/* the 300-deep chain: cut at 256 lines, then the rest with run */
	ck_assert_uint_eq(t->depth[want_n], 3);
	l = tdec_loc(t, t->samples[want_n][0]);
	ck_assert_uint_eq(l->nlines, STOKE_PPROF_MAX_LINES);
	ck_assert_str_eq(tdec_fn_name(t, l->fn[0], name, sizeof(name)), "deep299");
	ck_assert_str_eq(tdec_fn_name(t, l->fn[l->nlines - 1], name, sizeof(name)), "deep44");
	l = tdec_loc(t, t->samples[want_n][1]);
	ck_assert_uint_eq(l->nlines, DEEP - STOKE_PPROF_MAX_LINES + 1);
	ck_assert_str_eq(tdec_fn_name(t, l->fn[0], name, sizeof(name)), "deep43");
	ck_assert_str_eq(tdec_fn_name(t, l->fn[l->nlines - 2], name, sizeof(name)), "deep0");
	ck_assert_str_eq(tdec_fn_name(t, l->fn[l->nlines - 1], name, sizeof(name)), "run");
	/* lines carry the frames' source lines: inl_inner.h:3, inl_outer:9 */
	l = tdec_loc(t, t->samples[0][0]);
	ck_assert_uint_eq(l->line[0], 3);
	ck_assert_uint_eq(l->line[1], 9);
	ck_assert_uint_eq(l->line[2], 20);
	/* Locations are unique by line sequence; every id resolves once */
	for (size_t i = 0; i < t->nloc; i++) {
		(void)tdec_loc(t, t->loc[i].id);
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(t->loc[i].nlines != t->loc[j].nlines || !t->loc[i].nlines ||
					      memcmp(t->loc[i].fn, t->loc[j].fn,
						     t->loc[i].nlines * sizeof(uint64_t)) ||
					      memcmp(t->loc[i].line, t->loc[j].line,
						     t->loc[i].nlines * sizeof(uint64_t)),
				      "locations %zu and %zu are the same", i, j);
		if (t->loc[i].nlines == 3 &&
		    !strcmp(tdec_fn_name(t, t->loc[i].fn[0], name, sizeof(name)), "inl_inner"))
			chain = &t->loc[i];
		if (t->loc[i].nlines == 1 &&
		    !strcmp(tdec_fn_name(t, t->loc[i].fn[0], name, sizeof(name)), "run"))
			alone = &t->loc[i];
	}
	/* a chain's address is its physical frame's */
	ck_assert_ptr_nonnull(chain);
	ck_assert_ptr_nonnull(alone);
	ck_assert_uint_eq(chain->address, alone->address);
	ck_assert_uint_eq(chain->mapping, alone->mapping);
	/* the unused inlined frame still has a Location of its own */
	ck_assert_uint_gt(t->nloc, 0);
	l = &t->loc[t->nloc - 1];
	ck_assert_uint_eq(l->nlines, 1);
	ck_assert_str_eq(tdec_fn_name(t, l->fn[0], name, sizeof(name)), "inl_unused");
	free(t->loc);
	free(t);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* Decode and re-encode: the same bytes, the same model (frame ids in the
 * same order), and every writer's output the same. */
START_TEST(inline_round_trip)
{
	struct inl_model im;
	struct stoke_profile *p = inline_profile(&im), *q = NULL, *q2 = NULL;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0, gzlen;
	const char *err = NULL;
	char *gz;

	ck_assert_int_eq(stoke_pprof_encode(p, &a, &alen), 0);
	ck_assert_int_eq(stoke_pprof_decode(a, alen, &q, &err), 0);
	assert_same_model(p, q);
	ck_assert_int_eq(stoke_pprof_encode(q, &b, &blen), 0);
	ck_assert_msg(alen == blen && !memcmp(a, b, alen), "re-encoding differs");
	assert_same_outputs(p, q);
	/* through gzip and stoke_pprof_read, as `stoke report` reads */
	gz = synth_render(p, STOKE_FORMAT_PPROF, NULL, &gzlen);
	q2 = read_back(gz, gzlen);
	assert_same_model(p, q2);
	assert_same_outputs(p, q2);
	free(gz);
	free(a);
	free(b);
	stoke_profile_free(q2);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

/* Another tool's profile: one Location with three lines (innermost first)
 * and a caller Location. It loads as four frames, the first two inlined,
 * in stack order; written again, the chain is one Location once more. */
START_TEST(foreign_multi_line_location)
{
	static const char *const strs[] = { "", "inner", "outer", "phys", "main", "f.c",
					    "samples", "count" };
	struct pb_buf out = { 0 }, sub = { 0 }, sub2 = { 0 };
	struct stoke_profile *q = NULL, *q2 = NULL;
	const struct stoke_psample *s;
	struct tdec *t = calloc(1, sizeof(*t));
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t n, enclen = 0, enc2len = 0;
	const char *err = NULL;
	uint32_t frames[8];
	char *got;

	ck_assert_ptr_nonnull(t);
	pb_uint(&sub, 1, 6);
	pb_uint(&sub, 2, 7);
	pb_message(&out, 1, &sub);
	for (uint32_t fn = 1; fn <= 4; fn++) {
		pb_uint(&sub, 1, fn);
		pb_uint(&sub, 2, fn);
		pb_uint(&sub, 4, 5);
		pb_message(&out, 5, &sub);
	}
	/* location 70: inner (line 3) inlined into outer (4) inlined into phys (5) */
	pb_uint(&sub, 1, 70);
	pb_uint(&sub, 3, 0x401234);
	for (uint32_t fn = 1; fn <= 3; fn++) {
		pb_uint(&sub2, 1, fn);
		pb_uint(&sub2, 2, fn + 2);
		pb_message(&sub, 4, &sub2);
	}
	pb_message(&out, 4, &sub);
	pb_uint(&sub, 1, 90);
	pb_uint(&sub, 3, 0x400100);
	pb_uint(&sub2, 1, 4);
	pb_uint(&sub2, 2, 9);
	pb_message(&sub, 4, &sub2);
	pb_message(&out, 4, &sub);
	pb_ldelim(&sub, 1, "\x46\x5a", 2); /* location_id [70, 90], leaf first */
	pb_ldelim(&sub, 2, "\x03", 1);
	pb_message(&out, 2, &sub);
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		pb_ldelim(&out, 6, strs[i], strlen(strs[i]));
	ck_assert_int_eq(out.error, 0);

	ck_assert_int_eq(stoke_pprof_decode(out.data, out.len, &q, &err), 0);
	s = stoke_profile_samples(q, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(s[0].weight, 3);
	ck_assert_uint_eq(stoke_profile_stack_frames(q, s[0].stack, frames, 8), 4);
	for (int i = 0; i < 4; i++) {
		const struct stoke_pframe *f = stoke_profile_get_frame(q, frames[i]);

		ck_assert_str_eq(stoke_profile_string(q, f->name), strs[i + 1]);
		ck_assert_uint_eq(f->line, i < 3 ? (uint32_t)i + 3 : 9);
		ck_assert_int_eq(f->inlined, i < 2);
	}
	ck_assert_int_eq(stoke_pprof_encode(q, &enc, &enclen), 0);
	tdec_parse(t, enc, enclen);
	got = tdec_sample_str(t, 0);
	ck_assert_str_eq(got, "[inner outer phys] [main]");
	free(got);
	ck_assert_int_eq(stoke_pprof_decode(enc, enclen, &q2, &err), 0);
	assert_same_model(q, q2);
	ck_assert_int_eq(stoke_pprof_encode(q2, &enc2, &enc2len), 0);
	ck_assert(enclen == enc2len && !memcmp(enc, enc2, enclen));
	free(t->loc);
	free(t);
	free(enc);
	free(enc2);
	pb_free(&out);
	pb_free(&sub);
	pb_free(&sub2);
	stoke_profile_free(q);
	stoke_profile_free(q2);
}
END_TEST

static int decode_err(const void *buf, size_t len, const char **err)
{
	struct stoke_profile *q = NULL;
	int r = stoke_pprof_decode(buf, len, &q, err);

	stoke_profile_free(q);
	return r;
}

START_TEST(malformed_input)
{
	struct stoke_profile *p = synth_profile();
	const char *err = NULL;
	uint8_t *buf = NULL, *copy;
	size_t len = 0;

	/* truncated varint, bad wire type, empty, missing "" */
	ck_assert_int_eq(decode_err("\x08\xff", 2, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(decode_err("\x0f", 1, &err), -EINVAL);
	ck_assert_int_eq(decode_err("", 0, &err), -EINVAL);
	ck_assert_int_eq(decode_err("\x32\x01x", 3, &err), -EINVAL);
	/* every truncation of a valid file fails cleanly or succeeds */
	ck_assert_int_eq(stoke_pprof_encode(p, &buf, &len), 0);
	for (size_t cut = 0; cut < len; cut += 7) {
		copy = malloc(cut + 1);
		memcpy(copy, buf, cut);
		(void)decode_err(copy, cut, &err);
		free(copy);
	}
	/* flipped bytes never crash */
	copy = malloc(len);
	for (size_t i = 0; i < len; i += 3) {
		memcpy(copy, buf, len);
		copy[i] ^= 0x5a;
		(void)decode_err(copy, len, &err);
	}
	free(copy);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* Bad stoke frame tables are refused with a reason; no edit of an inline
 * profile's bytes crashes the reader. */
START_TEST(malformed_inline_tables)
{
	static const char *const bad[] = { "9,2,6;", "0,2,6;", "1,2,6,", "1;2,6;", "1,2,6x" };
	struct inl_model im;
	struct stoke_profile *p = inline_profile(&im);
	const char *err = NULL;
	uint8_t *buf = NULL, *copy, *hit;
	size_t len = 0;

	ck_assert_int_eq(stoke_pprof_encode(p, &buf, &len), 0);
	copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	/* stoke.location_frames begins with the first Location: inl_inner (1),
	 * inl_outer (2), run (6). Frame 1 then has no Location; frame 99 and
	 * frame 0 do not exist; a missing ';' breaks the table. */
	hit = memmem(buf, len, "1,2,6;", 6);
	ck_assert_ptr_nonnull(hit);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(copy, buf, len);
		memcpy(copy + (hit - buf), bad[i], 6);
		err = NULL;
		ck_assert_int_eq(decode_err(copy, len, &err), -EINVAL);
		ck_assert_str_eq(err, "malformed stoke frame tables");
	}
	for (size_t cut = 0; cut < len; cut += 5)
		(void)decode_err(buf, cut, &err);
	for (size_t i = 0; i < len; i += 2) {
		memcpy(copy, buf, len);
		copy[i] ^= 0x21;
		(void)decode_err(copy, len, &err);
	}
	free(copy);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

START_TEST(not_gzip_not_proto)
{
	struct stoke_profile *q = NULL;
	const char *err = NULL;
	const char text[] = "main;run 12\n";
	const unsigned char badgz[] = { 0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02 };
	FILE *in;

	in = fmemopen((void *)text, sizeof(text) - 1, "rb");
	ck_assert_int_eq(stoke_pprof_read(in, &q, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	fclose(in);
	in = fmemopen((void *)badgz, sizeof(badgz), "rb");
	ck_assert_int_eq(stoke_pprof_read(in, &q, &err), -EINVAL);
	ck_assert_str_eq(err, "corrupt or truncated gzip data");
	fclose(in);
}
END_TEST

static Suite *pprof_suite(void)
{
	Suite *s = suite_create("pprof");
	TCase *tc = tcase_create("pprof");

	tcase_add_test(tc, golden_encoding);
	tcase_add_test(tc, round_trip_every_format);
	tcase_add_test(tc, round_trip_model);
	tcase_add_test(tc, definition_file_round_trip);
	tcase_add_test(tc, large_offsets);
	tcase_add_test(tc, inline_locations);
	tcase_add_test(tc, inline_round_trip);
	tcase_add_test(tc, foreign_multi_line_location);
	tcase_add_test(tc, malformed_input);
	tcase_add_test(tc, malformed_inline_tables);
	tcase_add_test(tc, not_gzip_not_proto);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pprof_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
