/*
 * The folded-stacks writer (see folded.h and FORMATS.md "Folded stacks"),
 * and the display name of a frame that every writer shares.
 *
 * The work is done in passes so that nothing is quadratic:
 *  1. aggregate sample weights by (thread, stack) in a hash table, so each
 *     distinct key is rendered once however many samples it has;
 *  2. render each key's line: frame names are sanitised once per frame id
 *     and stack strings once per stack id (both cached), so a line costs
 *     only its own length;
 *  3. sort the lines bytewise and merge equal neighbours, since different
 *     stacks can render alike (two unknown frames of one module, say);
 *  4. stream the lines out.
 */
#include "formats/folded.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/util.h"

#define NOT_RENDERED SIZE_MAX

/* A growable byte buffer of NUL-terminated strings, addressed by offset
 * because appends may move it. */
struct strbuf {
	char *buf;
	size_t len, cap;
};

static int sb_append(struct strbuf *sb, const char *s, size_t n)
{
	if (n >= SIZE_MAX - sb->len - 1)
		return -ENOMEM;
	if (STOKE_GROW(sb->buf, sb->cap, sb->len + n + 1) < 0)
		return -ENOMEM;
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

static int sb_puts(struct strbuf *sb, const char *s)
{
	return sb_append(sb, s, strlen(s));
}

/* Close the current string: the next append starts a new one. */
static int sb_end(struct strbuf *sb)
{
	if (STOKE_GROW(sb->buf, sb->cap, sb->len + 1) < 0)
		return -ENOMEM;
	sb->buf[sb->len++] = '\0';
	return 0;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

const char *stoke_frame_display(const struct stoke_profile *p, const struct stoke_pframe *f,
				char *buf, size_t size)
{
	const char *name, *module;

	if (!buf || size == 0)
		return buf;
	name = stoke_profile_string(p, f->name);
	if (name && *name) {
		snprintf(buf, size, "%s", name);
		return buf;
	}
	module = stoke_profile_string(p, f->module);
	if (module && *basename_of(module))
		snprintf(buf, size, "%s+0x%" PRIx64, basename_of(module), f->offset);
	else
		snprintf(buf, size, "[unknown]");
	return buf;
}

void stoke_folded_opts_init(struct stoke_folded_opts *opts)
{
	*opts = (struct stoke_folded_opts){
		.per_thread = false,
		.annotate = true,
	};
}

/*
 * Where the string s (of length n) ends in a number as flamegraph.pl and
 * inferno parse counts (\d+ or \d+\.\d*), the index of that number's
 * first byte; otherwise n.
 */
static size_t trailing_number(const char *s, size_t n)
{
	size_t i = n, j;

	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i > 0 && s[i - 1] == '.') {
		j = i - 1;
		while (j > 0 && s[j - 1] >= '0' && s[j - 1] <= '9')
			j--;
		/* "12." and "12.5" are numbers; ".5" is "5" after a dot. */
		if (j < i - 1)
			i = j;
	}
	return i;
}

/*
 * Sanitise what was appended to sb since start: ';' separates frames, so it
 * becomes ':'; a newline would end the line and other control bytes confuse
 * readers, so they become spaces. Finally, a name ending in " <number>"
 * would make the line look like a differential one ("stack COUNT1 COUNT2"),
 * so that space becomes '_'.
 */
static void sanitise_from(struct strbuf *sb, size_t start)
{
	char *s = sb->buf + start;
	size_t n = sb->len - start, num;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ';')
			s[i] = ':';
		else if (c < 0x20 || c == 0x7f)
			s[i] = ' ';
	}
	num = trailing_number(s, n);
	if (num < n && num > 0 && s[num - 1] == ' ')
		s[num - 1] = '_';
}

static int append_sanitised(struct strbuf *sb, const char *name)
{
	size_t start = sb->len;
	int r;

	r = sb_puts(sb, name);
	if (r >= 0)
		sanitise_from(sb, start);
	return r;
}

/* The folded name of a frame, with its annotation suffix. */
static int append_frame(struct strbuf *sb, const struct stoke_profile *p,
			const struct stoke_pframe *f, bool annotate)
{
	const char *name = stoke_profile_string(p, f->name);
	const char *module, *base;
	int r;

	if (name && *name) {
		r = append_sanitised(sb, name);
	} else {
		module = stoke_profile_string(p, f->module);
		base = module ? basename_of(module) : "";
		if (!*base) {
			r = sb_puts(sb, "[unknown]");
		} else if (base[0] == '[' && base[strlen(base) - 1] == ']') {
			/* "[vdso]", "[kernel.kallsyms]": already bracketed. */
			r = append_sanitised(sb, base);
		} else {
			r = sb_puts(sb, "[");
			if (r >= 0)
				r = append_sanitised(sb, base);
			if (r >= 0)
				r = sb_puts(sb, "]");
		}
	}
	if (r < 0 || !annotate)
		return r;
	/* One suffix only, since readers look at the end of the name: the
	 * kernel/JIT boundary matters more than inlining, so kind wins. */
	if (f->kind == STOKE_PFRAME_KERNEL)
		return sb_puts(sb, "_[k]");
	if (f->kind == STOKE_PFRAME_JIT)
		return sb_puts(sb, "_[j]");
	if (f->inlined)
		return sb_puts(sb, "_[i]");
	return 0;
}

/* One aggregated (thread, stack) key and, later, its rendered line. */
struct entry {
	uint32_t thread; /* position + 1 in the thread list; 0 without per_thread */
	uint32_t stack;
	uint64_t weight;
	size_t off; /* offset of the line in its buffer while rendering */
	const char *line; /* the line, once the buffers are final */
};

struct folded {
	const struct stoke_profile *p;
	const struct stoke_folded_opts *opts;

	struct entry *entries;
	size_t nentries, entries_cap;
	struct stoke_hashmap index; /* entries by (thread, stack): position + 1 */

	struct strbuf frames;   /* sanitised frame names */
	size_t *frame_off;      /* per frame id, or NOT_RENDERED */
	struct strbuf stacks;   /* "root;…;leaf" per stack */
	size_t *stack_off;      /* per stack id, or NOT_RENDERED */
	uint32_t *scratch;      /* frame ids of one stack */
	size_t scratch_cap;
	struct strbuf threads;  /* "comm-PID/TID" per thread */
	size_t *thread_off;
	struct strbuf lines;    /* per_thread: thread frame + stack */
};

static void folded_done(struct folded *fo)
{
	free(fo->entries);
	stoke_hashmap_free(&fo->index);
	free(fo->frames.buf);
	free(fo->frame_off);
	free(fo->stacks.buf);
	free(fo->stack_off);
	free(fo->scratch);
	free(fo->threads.buf);
	free(fo->thread_off);
	free(fo->lines.buf);
}

static uint64_t entry_hash(uint32_t thread, uint32_t stack)
{
	return stoke_hash_u64((uint64_t)thread << 32 | stack);
}

/* Pass 1: sum the weights of each distinct (thread, stack). */
static int aggregate(struct folded *fo)
{
	const struct stoke_pthread *threads, *th;
	const struct stoke_psample *samples;
	size_t n, nthreads;
	int r;

	samples = stoke_profile_samples(fo->p, &n);
	threads = stoke_profile_threads(fo->p, &nthreads);
	for (size_t k = 0; k < n; k++) {
		uint32_t thread = 0, stack = samples[k].stack, e;
		struct stoke_hashmap_iter it;
		uint64_t h;

		if (fo->opts->per_thread) {
			/* add_sample made a thread for every tid it saw. */
			th = stoke_profile_find_thread(fo->p, samples[k].tid);
			if (!th)
				return -EINVAL;
			thread = (uint32_t)(th - threads) + 1;
		}
		h = entry_hash(thread, stack);
		for (e = stoke_hashmap_first(&fo->index, h, &it); e;
		     e = stoke_hashmap_next(&fo->index, &it)) {
			struct entry *en = &fo->entries[e - 1];

			if (en->thread == thread && en->stack == stack)
				break;
		}
		if (e) {
			/* No overflow: the profile's total did not. */
			fo->entries[e - 1].weight += samples[k].weight;
			continue;
		}
		r = stoke_hashmap_reserve(&fo->index, 1);
		if (r < 0)
			return r;
		r = STOKE_GROW(fo->entries, fo->entries_cap, fo->nentries + 1);
		if (r < 0)
			return r;
		fo->entries[fo->nentries] = (struct entry){
			.thread = thread,
			.stack = stack,
			.weight = samples[k].weight,
		};
		fo->nentries++;
		stoke_hashmap_put(&fo->index, h, (uint32_t)fo->nentries);
	}
	return 0;
}

static size_t *offsets_new(size_t n)
{
	size_t *o = malloc((n ? n : 1) * sizeof(*o));

	if (o) {
		for (size_t i = 0; i < n; i++)
			o[i] = NOT_RENDERED;
	}
	return o;
}

static int frame_name(struct folded *fo, uint32_t id, const char **ret)
{
	const struct stoke_pframe *f;
	int r;

	if (fo->frame_off[id] == NOT_RENDERED) {
		f = stoke_profile_get_frame(fo->p, id);
		if (!f)
			return -EINVAL;
		fo->frame_off[id] = fo->frames.len;
		r = append_frame(&fo->frames, fo->p, f, fo->opts->annotate);
		if (r >= 0)
			r = sb_end(&fo->frames);
		if (r < 0)
			return r;
	}
	*ret = fo->frames.buf + fo->frame_off[id];
	return 0;
}

/* Render stack id once into fo->stacks; the empty stack is "[unknown]". */
static int render_stack(struct folded *fo, uint32_t stack)
{
	const char *name;
	size_t depth;
	int r;

	if (fo->stack_off[stack] != NOT_RENDERED)
		return 0;
	depth = stoke_profile_stack_frames(fo->p, stack, NULL, 0);
	r = STOKE_GROW(fo->scratch, fo->scratch_cap, depth ? depth : 1);
	if (r < 0)
		return r;
	stoke_profile_stack_frames(fo->p, stack, fo->scratch, depth);
	/* Frame names go into their own buffer first, so name pointers stay
	 * valid while this stack's string grows. */
	for (size_t i = 0; i < depth; i++) {
		r = frame_name(fo, fo->scratch[i], &name);
		if (r < 0)
			return r;
	}
	fo->stack_off[stack] = fo->stacks.len;
	if (depth == 0)
		r = sb_puts(&fo->stacks, "[unknown]");
	/* The walk gave leaf first; folded wants root first. */
	for (size_t i = depth; i-- > 0 && r >= 0;) {
		name = fo->frames.buf + fo->frame_off[fo->scratch[i]];
		r = sb_puts(&fo->stacks, name);
		if (r >= 0 && i > 0)
			r = sb_puts(&fo->stacks, ";");
	}
	if (r >= 0)
		r = sb_end(&fo->stacks);
	return r;
}

/* "comm-PID/TID" for thread position pos, sanitised like any frame. */
static int render_thread(struct folded *fo, size_t pos)
{
	const struct stoke_pthread *threads;
	const char *comm;
	char tmp[64];
	size_t start, nthreads;
	int r;

	if (fo->thread_off[pos] != NOT_RENDERED)
		return 0;
	threads = stoke_profile_threads(fo->p, &nthreads);
	comm = stoke_profile_string(fo->p, threads[pos].name);
	start = fo->threads.len;
	r = sb_puts(&fo->threads, comm && *comm ? comm : "[unknown]");
	snprintf(tmp, sizeof(tmp), "-%" PRIu32 "/%" PRIu32, threads[pos].pid, threads[pos].tid);
	if (r >= 0)
		r = sb_puts(&fo->threads, tmp);
	if (r < 0)
		return r;
	/* Sanitise the whole frame at once, so the trailing-number rule sees
	 * what the reader will see. */
	sanitise_from(&fo->threads, start);
	fo->thread_off[pos] = start;
	return sb_end(&fo->threads);
}

/* Pass 2: every entry's line, as an offset into stacks or lines. */
static int render(struct folded *fo)
{
	size_t nthreads;
	int r;

	stoke_profile_threads(fo->p, &nthreads);
	fo->frame_off = offsets_new(stoke_profile_nframes(fo->p) + 1);
	fo->stack_off = offsets_new(stoke_profile_nstacks(fo->p) + 1);
	fo->thread_off = offsets_new(nthreads);
	if (!fo->frame_off || !fo->stack_off || !fo->thread_off)
		return -ENOMEM;
	for (size_t e = 0; e < fo->nentries; e++) {
		struct entry *en = &fo->entries[e];

		if (!fo->opts->per_thread || en->stack) {
			r = render_stack(fo, en->stack);
			if (r < 0)
				return r;
		}
		if (!fo->opts->per_thread) {
			en->off = fo->stack_off[en->stack];
			continue;
		}
		r = render_thread(fo, en->thread - 1);
		if (r < 0)
			return r;
		en->off = fo->lines.len;
		r = sb_puts(&fo->lines, fo->threads.buf + fo->thread_off[en->thread - 1]);
		if (r >= 0 && en->stack) {
			r = sb_puts(&fo->lines, ";");
			if (r >= 0)
				r = sb_puts(&fo->lines, fo->stacks.buf + fo->stack_off[en->stack]);
		}
		if (r >= 0)
			r = sb_end(&fo->lines);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->line, y->line);
}

/* Pass 3: sort bytewise (strcmp compares as unsigned char). Only now are
 * the buffers final, so offsets can become pointers. */
static void sort_lines(struct folded *fo)
{
	const char *base = fo->opts->per_thread ? fo->lines.buf : fo->stacks.buf;

	/* qsort's array must not be NULL even for 0 elements. */
	if (fo->nentries == 0)
		return;
	for (size_t e = 0; e < fo->nentries; e++)
		fo->entries[e].line = base + fo->entries[e].off;
	qsort(fo->entries, fo->nentries, sizeof(*fo->entries), cmp_line);
}

/* Pass 4: write, merging equal neighbours. */
static int emit(struct folded *fo, FILE *out)
{
	for (size_t e = 0; e < fo->nentries;) {
		const char *line = fo->entries[e].line;
		uint64_t w = 0;

		for (; e < fo->nentries && strcmp(fo->entries[e].line, line) == 0; e++)
			w += fo->entries[e].weight;
		fputs(line, out);
		fprintf(out, " %" PRIu64 "\n", w);
		/* Stop early on a dead stream rather than render megabytes. */
		if (ferror(out))
			return -EIO;
	}
	/* Surface errors of buffered streams here, not at the caller's fclose. */
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}

int stoke_folded_write(const struct stoke_profile *p, const struct stoke_folded_opts *opts,
		       FILE *out)
{
	struct stoke_folded_opts defaults;
	struct folded fo = { .p = p, .opts = opts };
	int r;

	if (!p || !out)
		return -EINVAL;
	if (!opts) {
		stoke_folded_opts_init(&defaults);
		fo.opts = &defaults;
	}
	r = aggregate(&fo);
	if (r >= 0)
		r = render(&fo);
	if (r >= 0) {
		sort_lines(&fo);
		r = emit(&fo, out);
	}
	folded_done(&fo);
	return r;
}
