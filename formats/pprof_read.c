/*
 * The pprof reader: profile.proto (gzipped or not) back into a model, for
 * `stoke report`. For a file stoke wrote, the model comes back equal in
 * everything a writer shows: frames in the same id order (interned in id
 * order from stoke.location_frames, which names the frame of every
 * Location line, since one Location groups an inline chain and a frame can
 * sit in several Locations), threads in the
 * same order with the same names and pids (from the stoke thread table),
 * samples in the same order with their weights and timestamps, and the
 * metadata (stoke.* comments). See pprof.h for the mapping.
 *
 * Profiles from other tools load too: threads then come from the
 * thread/thread_id labels, weights from the first sample value, and a
 * location with several lines becomes its inlined frames.
 *
 * Input is untrusted: every index and id is checked, sizes are bounded, and
 * a malformed file is -EINVAL with a one-line reason, never a crash.
 */
#include "formats/pprof.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "formats/pb.h"
#include "common/hashmap.h"
#include "common/util.h"
#include "formats/spans.h"

#define READ_MAX_INPUT (256u << 20)        /* compressed or plain bytes read */
#define MAX_INFLATED (2048ull << 20)  /* decompressed profile.proto */
/* A gzip bomb expands ~1000:1; a real profile a few times to a few tens.
 * Past INFLATE_FREE bytes, output beyond MAX_RATIO times the input consumed
 * so far is refused, as it streams: a 4 MB bomb stops at 64 MiB, at once. */
#define INFLATE_FREE (64ull << 20)
#define MAX_RATIO 200
#define MAX_DEPTH 65536               /* frames per sample */

/* Each id table (common/hashmap.h) maps a uint64 id to its position + 1. */
static bool id_put(struct stoke_u64map *m, uint64_t key, uint32_t val)
{
	/* Room for every id was reserved: -EEXIST is the only failure. */
	return stoke_u64map_add(m, key, val) == 0;
}

struct pmapping {
	uint64_t start;
	uint64_t file_offset; /* the module offset at start */
	uint64_t file; /* string index */
};

struct pfunction {
	uint64_t name, file;
	uint32_t start_line; /* the first line of its definition, or 0 */
};

struct pline {
	uint32_t function; /* index into dec.functions */
	uint32_t line;
};

struct plocation {
	uint64_t mapping_file; /* string index, when has_mapping */
	uint64_t offset;       /* module offset (address when no mapping) */
	bool has_mapping;
	uint32_t first_line;   /* index into dec.lines */
	uint32_t nlines;
	uint32_t first_frame;  /* index into dec.frames */
	uint32_t nframes;
};

struct dec {
	struct stoke_profile *p;
	const char *err;
	/* string table */
	const uint8_t **str;
	size_t *str_len;
	size_t nstr, str_cap, str_len_cap;
	uint32_t *str_id; /* model id of each string, UINT32_MAX until interned */
	/* messages, in file order */
	struct pb_reader *samples, *mappings_msg, *functions_msg, *locations_msg;
	size_t nsamples, samples_cap, nmappings, mappings_cap, nfunctions, functions_cap;
	size_t nlocations, locations_cap;
	uint64_t threads_str, frames_str; /* stoke.threads / stoke.frames, 0 = none */
	/* stoke.frame_kinds, stoke.location_frames, stoke.frame_places,
	 * stoke.frame_decls */
	uint64_t kinds_str, locframes_str, places_str, decls_str;
	bool has_locframes;
	uint64_t *comments;
	size_t ncomments, comments_cap;
	uint64_t period;
	uint64_t time_nanos, duration_nanos; /* the profile's wall-clock span */
	/* stoke.timeline: samples are (stack, thread) groups, replayed */
	bool has_timeline;
	bool time_wall;   /* stoke.time=wall: time labels are wall clock */
	uint64_t timeline_str;
	uint32_t *grp_stack, *grp_tid;
	uint8_t *grp_kind;
	uint64_t *grp_span; /* a group's "span" label string (0: none) */
	size_t ngrp, grp_cap;
	struct pb_reader period_type; /* ValueType, when has_period_type */
	bool has_period_type;
	/* decoded tables */
	struct pmapping *mappings;
	struct stoke_u64map mapping_ids;
	struct pfunction *functions;
	struct stoke_u64map function_ids;
	struct plocation *locations;
	struct stoke_u64map location_ids;
	uint32_t *frames; /* model frame ids of all locations */
	size_t nframes, frames_cap;
	struct pline *lines; /* lines of all locations */
	size_t nlines, lines_cap;
	bool stoke;       /* stoke.format comment seen */
	struct stoke_pmeta meta;
	bool meta_time;   /* time_first/time_last given */
};

#define FAIL(d, msg)              \
	do {                      \
		(d)->err = (msg); \
		return -EINVAL;   \
	} while (0)

static int push_msg(struct pb_reader **arr, size_t *n, size_t *cap, struct pb_reader r)
{
	if (STOKE_GROW(*arr, *cap, *n + 1) < 0)
		return -ENOMEM;
	(*arr)[(*n)++] = r;
	return 0;
}

/* Pass 1: the string table and where each repeated message is. */
static int scan(struct dec *d, const uint8_t *buf, size_t len)
{
	struct pb_reader r = { buf, buf + len };
	struct pb_field f;
	int rc = 0;

	while (rc >= 0 && pb_next(&r, &f)) {
		switch (f.number) {
		case 2: case 3: case 4: case 5: case 6:
			if (f.wire != 2)
				FAIL(d, "a message field has the wrong wire type");
			break;
		case 12: case 13:
			if (f.wire != 0 && !(f.number == 13 && f.wire == 2))
				FAIL(d, "a number field has the wrong wire type");
			break;
		default:
			break;
		}
		switch (f.number) {
		case 2:
			rc = push_msg(&d->samples, &d->nsamples, &d->samples_cap, f.sub);
			break;
		case 3:
			rc = push_msg(&d->mappings_msg, &d->nmappings, &d->mappings_cap, f.sub);
			break;
		case 4:
			rc = push_msg(&d->locations_msg, &d->nlocations, &d->locations_cap, f.sub);
			break;
		case 5:
			rc = push_msg(&d->functions_msg, &d->nfunctions, &d->functions_cap, f.sub);
			break;
		case 6:
			if (STOKE_GROW(d->str, d->str_cap, d->nstr + 1) < 0 ||
			    STOKE_GROW(d->str_len, d->str_len_cap, d->nstr + 1) < 0)
				return -ENOMEM;
			d->str[d->nstr] = f.sub.p;
			d->str_len[d->nstr++] = (size_t)(f.sub.end - f.sub.p);
			break;
		case 9:
			if (f.wire == 0)
				d->time_nanos = f.value;
			break;
		case 10:
			if (f.wire == 0)
				d->duration_nanos = f.value;
			break;
		case 11:
			if (f.wire == 2) {
				d->period_type = f.sub;
				d->has_period_type = true;
			}
			break;
		case 12:
			d->period = f.value;
			break;
		case 13:
			if (f.wire == 0) {
				if (STOKE_GROW(d->comments, d->comments_cap, d->ncomments + 1) < 0)
					return -ENOMEM;
				d->comments[d->ncomments++] = f.value;
			} else {
				uint64_t v;

				while (f.sub.p < f.sub.end && pb_read_varint(&f.sub, &v)) {
					if (STOKE_GROW(d->comments, d->comments_cap,
						       d->ncomments + 1) < 0)
						return -ENOMEM;
					d->comments[d->ncomments++] = v;
				}
				if (f.sub.p != f.sub.end)
					FAIL(d, "malformed comment list");
			}
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return rc;
	if (r.p != r.end)
		FAIL(d, "malformed protobuf (not a pprof profile?)");
	if (d->nstr == 0 || d->str_len[0] != 0)
		FAIL(d, "string_table[0] is not the empty string");
	d->str_id = malloc(d->nstr * sizeof(*d->str_id));
	if (!d->str_id)
		return -ENOMEM;
	for (size_t i = 0; i < d->nstr; i++)
		d->str_id[i] = UINT32_MAX;
	return 0;
}

/* The model id of string index idx, interning it on first use. */
static int string_id(struct dec *d, uint64_t idx, uint32_t *ret)
{
	int r;

	if (idx >= d->nstr)
		FAIL(d, "a string index is out of range");
	if (d->str_id[idx] == UINT32_MAX) {
		/* Model strings are C strings: stop at an embedded NUL. */
		const char *s = (const char *)d->str[idx];
		size_t n = strnlen(s, d->str_len[idx]);

		r = stoke_profile_intern_n(d->p, s, n, &d->str_id[idx]);
		if (r < 0)
			return r;
	}
	*ret = d->str_id[idx];
	return 0;
}

/*
 * Another tool's profile (Go's) has no stoke metadata: its period type says
 * what a sample is. A period in nanoseconds gives the rate, and the type
 * ("cpu") stands for the event, so that `stoke top` prints them.
 */
static int meta_from_period_type(struct dec *d)
{
	struct pb_reader r = d->period_type;
	uint64_t type = 0, unit = 0;
	struct pb_field f;
	uint32_t id;
	int rc;

	while (pb_next(&r, &f)) {
		if (f.number == 1 && f.wire == 0)
			type = f.value;
		else if (f.number == 2 && f.wire == 0)
			unit = f.value;
	}
	if (unit && unit < d->nstr && d->period && d->period <= 1000000000 &&
	    d->str_len[unit] == 11 && !memcmp(d->str[unit], "nanoseconds", 11) &&
	    !d->meta.frequency)
		d->meta.frequency = (uint32_t)((1000000000 + d->period / 2) / d->period);
	if (type && type < d->nstr && !d->meta.event) {
		rc = string_id(d, type, &id);
		if (rc < 0)
			return rc;
		d->meta.event = id;
	}
	return 0;
}

/* A string index as a NUL-terminated copy (malloc'd). */
static char *string_dup(struct dec *d, uint64_t idx)
{
	if (idx >= d->nstr)
		return NULL;
	return strndup((const char *)d->str[idx], d->str_len[idx]);
}

static int decode_mappings(struct dec *d)
{
	int r;

	d->mappings = calloc(d->nmappings + 1, sizeof(*d->mappings));
	if (!d->mappings || (r = stoke_u64map_reserve(&d->mapping_ids, d->nmappings)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < d->nmappings; i++) {
		struct pb_reader m = d->mappings_msg[i];
		struct pb_field f;
		uint64_t id = 0;

		while (pb_next(&m, &f)) {
			if (f.wire != 0)
				continue;
			if (f.number == 1)
				id = f.value;
			else if (f.number == 2)
				d->mappings[i].start = f.value;
			else if (f.number == 4)
				d->mappings[i].file_offset = f.value;
			else if (f.number == 5)
				d->mappings[i].file = f.value;
		}
		if (m.p != m.end)
			FAIL(d, "malformed mapping");
		if (!id || !id_put(&d->mapping_ids, id, (uint32_t)i + 1))
			FAIL(d, "a mapping id is zero or duplicated");
	}
	return 0;
}

static int decode_functions(struct dec *d)
{
	d->functions = calloc(d->nfunctions + 1, sizeof(*d->functions));
	if (!d->functions || stoke_u64map_reserve(&d->function_ids, d->nfunctions) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < d->nfunctions; i++) {
		struct pb_reader m = d->functions_msg[i];
		struct pb_field f;
		uint64_t id = 0;

		while (pb_next(&m, &f)) {
			if (f.wire != 0)
				continue;
			if (f.number == 1)
				id = f.value;
			else if (f.number == 2)
				d->functions[i].name = f.value;
			else if (f.number == 4)
				d->functions[i].file = f.value;
			else if (f.number == 5 && f.value <= UINT32_MAX)
				d->functions[i].start_line = (uint32_t)f.value;
		}
		if (m.p != m.end)
			FAIL(d, "malformed function");
		if (!id || !id_put(&d->function_ids, id, (uint32_t)i + 1))
			FAIL(d, "a function id is zero or duplicated");
	}
	return 0;
}

static int add_frame(struct dec *d, struct stoke_pframe *fr, uint32_t *ret)
{
	int r;

	r = stoke_profile_frame(d->p, fr, ret);
	if (r < 0)
		return r;
	if (STOKE_GROW(d->frames, d->frames_cap, d->nframes + 1) < 0)
		return -ENOMEM;
	d->frames[d->nframes++] = *ret;
	return 0;
}

/* A decimal number in [*s, end) no larger than max; advances *s. */
static bool parse_num(const uint8_t **s, const uint8_t *end, uint64_t max, uint64_t *ret)
{
	const uint8_t *p = *s;
	uint64_t v = 0;

	if (p >= end || *p < '0' || *p > '9')
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (v > max / 10)
			return false;
		v *= 10; /* <= max */
		if (digit > max - v)
			return false;
		v += digit;
	}
	*s = p;
	*ret = v;
	return true;
}

/* Pass 2 for one Location: its mapping, address and lines (innermost
 * inlined callee first), checked but not yet made into frames. */
static int decode_location(struct dec *d, size_t i)
{
	struct pb_reader m = d->locations_msg[i];
	struct plocation *loc = &d->locations[i];
	uint64_t id = 0, mapping = 0, address = 0;
	struct pb_field f;

	loc->first_line = (uint32_t)d->nlines;
	while (pb_next(&m, &f)) {
		if (f.number == 4 && f.wire == 2) {
			struct pb_reader lm = f.sub;
			uint64_t fn = 0, line = 0;
			struct pb_field lf;
			uint32_t fi;

			if (loc->nlines == STOKE_PPROF_MAX_LINES)
				FAIL(d, "a location has too many lines");
			while (pb_next(&lm, &lf)) {
				if (lf.wire == 0 && lf.number == 1)
					fn = lf.value;
				else if (lf.wire == 0 && lf.number == 2)
					line = lf.value;
			}
			if (lm.p != lm.end)
				FAIL(d, "malformed line");
			fi = (uint32_t)stoke_u64map_get(&d->function_ids, fn);
			if (!fi)
				FAIL(d, "a line names an unknown function");
			if (STOKE_GROW(d->lines, d->lines_cap, d->nlines + 1) < 0)
				return -ENOMEM;
			d->lines[d->nlines].function = fi - 1;
			d->lines[d->nlines++].line = (uint32_t)STOKE_MIN(line, (uint64_t)UINT32_MAX);
			loc->nlines++;
		} else if (f.wire == 0) {
			if (f.number == 1)
				id = f.value;
			else if (f.number == 2)
				mapping = f.value;
			else if (f.number == 3)
				address = f.value;
		}
	}
	if (m.p != m.end)
		FAIL(d, "malformed location");
	if (!id || !id_put(&d->location_ids, id, (uint32_t)i + 1))
		FAIL(d, "a location id is zero or duplicated");
	loc->offset = address;
	if (mapping) {
		uint32_t mi = (uint32_t)stoke_u64map_get(&d->mapping_ids, mapping);

		if (!mi)
			FAIL(d, "a location names an unknown mapping");
		loc->has_mapping = true;
		loc->mapping_file = d->mappings[mi - 1].file;
		if (address >= d->mappings[mi - 1].start)
			loc->offset = address - d->mappings[mi - 1].start +
				      d->mappings[mi - 1].file_offset;
	}
	return 0;
}

/* The frame at line l of location loc (l = 0 for a Line-less one), before
 * kind, inlined flag and stoke.frame_places apply. */
static int location_frame(struct dec *d, const struct plocation *loc, uint32_t l,
			  struct stoke_pframe *fr)
{
	const struct pline *line;
	int r;

	*fr = (struct stoke_pframe){ .offset = loc->offset };
	if (loc->has_mapping) {
		r = string_id(d, loc->mapping_file, &fr->module);
		if (r < 0)
			return r;
	}
	if (!loc->nlines)
		return 0;
	line = &d->lines[loc->first_line + l];
	fr->line = line->line;
	r = string_id(d, d->functions[line->function].name, &fr->name);
	if (r >= 0)
		r = string_id(d, d->functions[line->function].file, &fr->file);
	/* start_line is where the function is defined, in its file (pprof
	 * has one file per function). */
	fr->decl_line = d->functions[line->function].start_line;
	if (fr->decl_line)
		fr->decl_file = fr->file;
	return r;
}

/* Files of other tools, and stoke.format=1: each Location's lines become
 * frames in file order, all but the last inlined into it; stoke.frames
 * (format 1) gives one kind character per Location. */
static int location_frames_in_order(struct dec *d, size_t i)
{
	struct plocation *loc = &d->locations[i];
	uint8_t kind = 0;
	bool inlined = false;
	uint32_t frame;
	int r;

	if (d->frames_str && i < d->str_len[d->frames_str]) {
		unsigned c = (unsigned)(d->str[d->frames_str][i] - '0');

		if (c > 7)
			FAIL(d, "malformed stoke frame table");
		kind = (uint8_t)(c >> 1);
		inlined = c & 1;
	}
	loc->first_frame = (uint32_t)d->nframes;
	loc->nframes = STOKE_MAX(loc->nlines, 1u);
	for (uint32_t l = 0; l < loc->nframes; l++) {
		struct stoke_pframe fr;

		r = location_frame(d, loc, l, &fr);
		if (r < 0)
			return r;
		fr.kind = kind;
		fr.inlined = inlined;
		/* Named frames intern per function, as the session does. */
		if (fr.name && !d->stoke)
			fr.offset = 0;
		/* Several lines: all but the last are inlined into it. */
		if (loc->nlines > 1)
			fr.inlined = l + 1 < loc->nlines;
		r = add_frame(d, &fr, &frame);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A stoke.format=2 file: stoke.location_frames names the frame of every
 * Location line; each frame is defined by its first occurrence, and frames
 * are interned in id order so that ids come back equal. */
static int stoke_frames(struct dec *d)
{
	const uint8_t *kinds = d->str[d->kinds_str], *s, *end;
	size_t nkinds = d->str_len[d->kinds_str];
	struct { uint32_t loc, line; } *home = NULL;
	struct { uint32_t module; uint64_t offset; bool set; } *place = NULL;
	uint32_t *decl = NULL;
	uint64_t v, mod, off;
	int r = 0;

	home = calloc(nkinds + 1, sizeof(*home));
	place = calloc(nkinds + 1, sizeof(*place));
	decl = calloc(nkinds + 1, sizeof(*decl));
	if (!home || !place || !decl) {
		r = -ENOMEM;
		goto out;
	}
	s = d->str[d->locframes_str];
	end = s + d->str_len[d->locframes_str];
	for (size_t i = 0; i < d->nlocations; i++) {
		struct plocation *loc = &d->locations[i];

		loc->first_frame = (uint32_t)d->nframes;
		loc->nframes = STOKE_MAX(loc->nlines, 1u);
		for (uint32_t l = 0; l < loc->nframes; l++) {
			if (l && (s >= end || *s++ != ','))
				goto bad_table;
			if (!parse_num(&s, end, nkinds, &v) || !v)
				goto bad_table;
			if (STOKE_GROW(d->frames, d->frames_cap, d->nframes + 1) < 0) {
				r = -ENOMEM;
				goto out;
			}
			d->frames[d->nframes++] = (uint32_t)v;
			if (!home[v].loc) {
				home[v].loc = (uint32_t)i + 1;
				home[v].line = l;
			}
		}
		if (s >= end || *s++ != ';')
			goto bad_table;
	}
	if (s != end)
		goto bad_table;
	if (d->places_str) {
		s = d->str[d->places_str];
		end = s + d->str_len[d->places_str];
		while (s < end) {
			if (!parse_num(&s, end, nkinds, &v) || !v || s >= end || *s++ != ':' ||
			    !parse_num(&s, end, d->nstr - 1, &mod) || s >= end || *s++ != ':' ||
			    !parse_num(&s, end, UINT64_MAX, &off) || s >= end || *s++ != ';')
				goto bad_table;
			r = string_id(d, mod, &place[v].module);
			if (r < 0)
				goto out;
			place[v].offset = off;
			place[v].set = true;
		}
	}
	if (d->decls_str) {
		s = d->str[d->decls_str];
		end = s + d->str_len[d->decls_str];
		while (s < end) {
			if (!parse_num(&s, end, nkinds, &v) || !v || s >= end || *s++ != ':' ||
			    !parse_num(&s, end, d->nstr - 1, &mod) || !mod || s >= end ||
			    *s++ != ';')
				goto bad_table;
			r = string_id(d, mod, &decl[v]);
			if (r < 0)
				goto out;
		}
	}
	for (uint32_t k = 1; k <= nkinds; k++) {
		unsigned c = (unsigned)(kinds[k - 1] - '0');
		struct stoke_pframe fr;
		uint32_t id;

		if (!home[k].loc || c > 7)
			goto bad_table;
		r = location_frame(d, &d->locations[home[k].loc - 1], home[k].line, &fr);
		if (r < 0)
			goto out;
		fr.kind = (uint8_t)(c >> 1);
		fr.inlined = c & 1;
		if (place[k].set) {
			fr.module = place[k].module;
			fr.offset = place[k].offset;
		}
		if (decl[k])
			fr.decl_file = decl[k];
		r = stoke_profile_frame(d->p, &fr, &id);
		if (r < 0)
			goto out;
		if (id != k)
			goto bad_table; /* two ids for one frame */
	}
	goto out;
bad_table:
	d->err = "malformed stoke frame tables";
	r = -EINVAL;
out:
	free(home);
	free(place);
	free(decl);
	return r;
}

static int decode_locations(struct dec *d)
{
	int r;

	d->locations = calloc(d->nlocations + 1, sizeof(*d->locations));
	if (!d->locations || stoke_u64map_reserve(&d->location_ids, d->nlocations) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < d->nlocations; i++) {
		r = decode_location(d, i);
		if (r >= 0 && !d->has_locframes)
			r = location_frames_in_order(d, i);
		if (r < 0)
			return r;
	}
	return d->has_locframes ? stoke_frames(d) : 0;
}

static bool parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return !errno && !*end;
}

/* The stoke thread table (stoke.threads), in order:
 * "PID/TID/LEN:NAME" repeated. */
static int decode_threads(struct dec *d)
{
	const uint8_t *s, *end;
	int r;

	if (!d->threads_str)
		return 0;
	s = d->str[d->threads_str];
	end = s + d->str_len[d->threads_str];
	while (s < end) {
		uint64_t pid, tid, len;
		char *name;

		if (!parse_num(&s, end, UINT32_MAX, &pid) || s >= end || *s++ != '/' ||
		    !parse_num(&s, end, UINT32_MAX, &tid) || s >= end || *s++ != '/' ||
		    !parse_num(&s, end, UINT64_MAX, &len) || s >= end || *s++ != ':' ||
		    len > (uint64_t)(end - s))
			FAIL(d, "malformed stoke thread table");
		name = strndup((const char *)s, (size_t)len);
		if (!name)
			return -ENOMEM;
		r = stoke_profile_thread(d->p, (uint32_t)pid, (uint32_t)tid, name);
		free(name);
		if (r < 0)
			return r;
		s += len;
	}
	return 0;
}

static int comment_string(struct dec *d, const char *v, uint32_t *ret)
{
	return stoke_profile_intern(d->p, v, ret);
}

static int comment_number(struct dec *d, const char *v, uint64_t max, uint64_t *ret)
{
	if (!parse_u64(v, ret) || *ret > max)
		FAIL(d, "malformed number in a stoke comment");
	return 0;
}

static int decode_comment(struct dec *d, const char *c)
{
	static const struct {
		const char *key;
		size_t off;
		bool is32;
	} nums[] = {
		{ "frequency", offsetof(struct stoke_pmeta, frequency), true },
		{ "pid", offsetof(struct stoke_pmeta, pid), true },
		{ "period_ns", offsetof(struct stoke_pmeta, period_ns), false },
		{ "start_ns", offsetof(struct stoke_pmeta, start_ns), false },
		{ "end_ns", offsetof(struct stoke_pmeta, end_ns), false },
		{ "time_first", offsetof(struct stoke_pmeta, time_first), false },
		{ "time_last", offsetof(struct stoke_pmeta, time_last), false },
		{ "lost", offsetof(struct stoke_pmeta, lost), false },
		{ "throttled", offsetof(struct stoke_pmeta, throttled), false },
	};
	const char *eq = strchr(c, '=');
	const char *v = eq ? eq + 1 : "";
	size_t klen;
	uint64_t n;
	int r;

	if (strncmp(c, "stoke.", 6) != 0 || !eq)
		return 0; /* someone else's comment */
	c += 6;
	klen = (size_t)(eq - c);
#define KEY(k) (klen == strlen(k) && !strncmp(c, (k), klen))
	if (KEY("format")) {
		d->stoke = true;
		return 0;
	}
	if (KEY("time")) {
		d->time_wall = !strcmp(v, "wall");
		return 0;
	}
	if (KEY("timeline")) {
		r = comment_number(d, v, d->nstr - 1, &d->timeline_str);
		d->has_timeline = r >= 0;
		return r;
	}
	if (KEY("threads") || KEY("frames") || KEY("frame_kinds") || KEY("location_frames") ||
	    KEY("frame_places") || KEY("frame_decls")) {
		r = comment_number(d, v, d->nstr - 1, &n);
		if (r < 0)
			return r;
		*(KEY("threads")       ? &d->threads_str
		  : KEY("frames")      ? &d->frames_str
		  : KEY("frame_kinds") ? &d->kinds_str
		  : KEY("frame_places") ? &d->places_str
		  : KEY("frame_decls") ? &d->decls_str
					: &d->locframes_str) = n;
		if (KEY("location_frames"))
			d->has_locframes = true;
		return 0;
	}
	if (KEY("event"))
		return comment_string(d, v, &d->meta.event);
	if (KEY("callgraph"))
		return comment_string(d, v, &d->meta.callgraph);
	if (KEY("command"))
		return comment_string(d, v, &d->meta.command);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (!KEY(nums[i].key))
			continue;
		r = comment_number(d, v, nums[i].is32 ? UINT32_MAX : UINT64_MAX, &n);
		if (r < 0)
			return r;
		if (nums[i].is32)
			*(uint32_t *)((char *)&d->meta + nums[i].off) = (uint32_t)n;
		else
			*(uint64_t *)((char *)&d->meta + nums[i].off) = n;
		if (!strcmp(nums[i].key, "time_first") || !strcmp(nums[i].key, "time_last"))
			d->meta_time = true;
		return 0;
	}
#undef KEY
	return 0; /* a newer stoke's key: ignore */
}

/* stoke.strings=N: intern string_table[1..N-1] in order, so the model's
 * string ids equal the writer's. */
static int intern_model_strings(struct dec *d, char **entries, size_t n_entries)
{
	uint64_t n = 0;
	uint32_t id;
	int r;

	for (size_t i = 0; i < n_entries; i++)
		if (!strncmp(entries[i], "stoke.strings=", 14) && !parse_u64(entries[i] + 14, &n))
			n = 0;
	if (n > d->nstr)
		FAIL(d, "stoke.strings is larger than the string table");
	for (uint64_t i = 1; i < n; i++) {
		r = string_id(d, i, &id);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The stoke entries: comment[] lines (stoke.format 1 and 2) and those of
 * the metadata string, the string table's last (format 3). */
static int collect_entries(struct dec *d, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < d->ncomments; i++) {
		if (STOKE_GROW(v, cap, n + 1) < 0)
			goto nomem;
		v[n] = string_dup(d, d->comments[i]);
		if (!v[n]) {
			*ret = v;
			*ret_n = n;
			FAIL(d, "a comment's string index is out of range");
		}
		n++;
	}
	if (d->nstr > 1 && d->str_len[d->nstr - 1] >= sizeof(STOKE_PPROF_META) &&
	    !memcmp(d->str[d->nstr - 1], STOKE_PPROF_META, sizeof(STOKE_PPROF_META))) {
		const char *m = (const char *)d->str[d->nstr - 1];
		size_t len = d->str_len[d->nstr - 1], pos = sizeof(STOKE_PPROF_META);

		while (pos < len) {
			const char *e = memchr(m + pos, '\0', len - pos);

			if (!e) {
				*ret = v;
				*ret_n = n;
				FAIL(d, "the stoke metadata string is not NUL-terminated");
			}
			if (STOKE_GROW(v, cap, n + 1) < 0)
				goto nomem;
			v[n] = strndup(m + pos, (size_t)(e - (m + pos)));
			if (!v[n])
				goto nomem;
			n++;
			pos = (size_t)(e - m) + 1;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
nomem:
	*ret = v;
	*ret_n = n;
	return -ENOMEM;
}

static int decode_comments(struct dec *d)
{
	char **entries = NULL;
	size_t n = 0;
	int r;

	r = collect_entries(d, &entries, &n);
	if (r >= 0)
		r = intern_model_strings(d, entries, n);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = decode_comment(d, entries[i]);
	for (size_t i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return r;
}

struct sample_labels {
	uint64_t tid, time, thread_str;
	uint64_t span_str; /* "span" (formats/spans.h): the sample's span */
	bool has_tid;
};

static int decode_labels(struct dec *d, struct pb_reader m, struct sample_labels *sl)
{
	struct pb_field f;
	uint64_t key = 0, str = 0, num = 0;
	const uint8_t *k;
	size_t klen;

	while (pb_next(&m, &f)) {
		if (f.wire != 0)
			continue;
		if (f.number == 1)
			key = f.value;
		else if (f.number == 2)
			str = f.value;
		else if (f.number == 3)
			num = f.value;
	}
	if (m.p != m.end || key >= d->nstr || str >= d->nstr)
		FAIL(d, "malformed label");
	k = d->str[key];
	klen = d->str_len[key];
#define LKEY(s) (klen == strlen(s) && !memcmp(k, (s), klen))
	if (LKEY("thread_id") || LKEY("tid")) {
		sl->tid = num;
		sl->has_tid = true;
	} else if (LKEY("time")) {
		sl->time = num;
	} else if (LKEY("thread")) {
		sl->thread_str = str;
	} else if (LKEY("span")) {
		sl->span_str = str;
	}
#undef LKEY
	return 0;
}

/* The last sample added was taken in span str (a "span" label). */
static int sample_span(struct dec *d, uint64_t str)
{
	char *name = string_dup(d, str);
	uint32_t id;
	size_t n;
	int r;

	if (!name)
		return -ENOMEM;
	r = stoke_profile_intern(d->p, name, &id);
	free(name);
	stoke_profile_samples(d->p, &n);
	return r < 0 ? r : stoke_profile_set_sample_span(d->p, n - 1, id);
}

static int decode_sample(struct dec *d, struct pb_reader m, uint32_t **stackbuf, size_t *stackcap)
{
	struct sample_labels sl = { 0 };
	uint64_t weight = 0, v;
	uint8_t kind = STOKE_SAMPLE_ON_CPU;
	bool have_value = false;
	size_t depth = 0;
	struct pb_field f;
	uint32_t stack = 0;
	int r;

	while (pb_next(&m, &f)) {
		if (f.number == 1) {
			struct pb_reader packed = f.sub;

			if (f.wire == 0) {
				packed = (struct pb_reader){ 0 };
				v = f.value;
				goto one_location;
			}
			if (f.wire != 2)
				FAIL(d, "malformed sample");
			while (packed.p < packed.end) {
				if (!pb_read_varint(&packed, &v))
					FAIL(d, "malformed sample");
one_location:;
				uint32_t li = (uint32_t)stoke_u64map_get(&d->location_ids, v);

				if (!li)
					FAIL(d, "a sample names an unknown location");
				if (depth + d->locations[li - 1].nframes > MAX_DEPTH)
					FAIL(d, "a sample's stack is too deep");
				if (STOKE_GROW(*stackbuf, *stackcap,
					       depth + d->locations[li - 1].nframes) < 0)
					return -ENOMEM;
				for (uint32_t k = 0; k < d->locations[li - 1].nframes; k++)
					(*stackbuf)[depth++] =
						d->frames[d->locations[li - 1].first_frame + k];
			}
		} else if (f.number == 2 && !have_value) {
			/* The first value is the sample count. */
			if (f.wire == 0) {
				weight = f.value;
			} else if (f.wire != 2 || !pb_read_varint(&f.sub, &weight)) {
				FAIL(d, "malformed sample value");
			} else if (weight == 0) {
				/* stoke's off-CPU samples (pprof.c sample_values):
				 * no samples and no CPU time, then off-CPU
				 * samples. */
				uint64_t cpu_ns, off;

				if (pb_read_varint(&f.sub, &cpu_ns) && pb_read_varint(&f.sub, &off) &&
				    off && !cpu_ns) {
					weight = off;
					kind = STOKE_SAMPLE_OFF_CPU;
				}
			}
			have_value = true;
		} else if (f.number == 3 && f.wire == 2) {
			r = decode_labels(d, f.sub, &sl);
			if (r < 0)
				return r;
		}
	}
	if (m.p != m.end)
		FAIL(d, "malformed sample");
	if (!d->has_timeline && (int64_t)weight <= 0)
		return 0; /* nothing sampled; pprof allows zero values */
	/* Leaf first in the file; the prefix tree is built root first. */
	for (size_t i = depth; i-- > 0;) {
		r = stoke_profile_stack(d->p, stack, (*stackbuf)[i], &stack);
		if (r < 0)
			return r;
	}
	if (sl.tid > UINT32_MAX)
		FAIL(d, "a thread id is out of range");
	if (!stoke_profile_find_thread(d->p, (uint32_t)sl.tid)) {
		char *name = sl.thread_str ? string_dup(d, sl.thread_str) : NULL;

		r = stoke_profile_thread(d->p, 0, (uint32_t)sl.tid, name);
		free(name);
		if (r < 0)
			return r;
	}
	if (d->has_timeline) {
		/* a group: the timeline says which samples it stands for */
		if (STOKE_GROW(d->grp_stack, d->grp_cap, d->ngrp + 1) < 0)
			return -ENOMEM;
		d->grp_tid = realloc(d->grp_tid, d->grp_cap * sizeof(*d->grp_tid));
		if (!d->grp_tid)
			return -ENOMEM;
		d->grp_kind = realloc(d->grp_kind, d->grp_cap * sizeof(*d->grp_kind));
		if (!d->grp_kind)
			return -ENOMEM;
		d->grp_span = realloc(d->grp_span, d->grp_cap * sizeof(*d->grp_span));
		if (!d->grp_span)
			return -ENOMEM;
		d->grp_span[d->ngrp] = sl.span_str;
		d->grp_kind[d->ngrp] = kind;
		d->grp_stack[d->ngrp] = stack;
		d->grp_tid[d->ngrp++] = (uint32_t)sl.tid;
		return 0;
	}
	if (d->time_wall) /* back to the perf timestamp (see pprof.h) */
		sl.time = sl.time - d->meta.start_ns + d->meta.time_first;
	r = stoke_profile_add_sample_kind(d->p, (uint32_t)sl.tid, sl.time, stack, weight, kind);
	if (r == 0 && sl.span_str)
		r = sample_span(d, sl.span_str);
	return r == -EINVAL ? (d->err = "sample weights overflow", r) : r;
}

/* stoke.timeline: "GROUP,DT[,WEIGHT];" per model sample, in order. */
static int replay_timeline(struct dec *d)
{
	const uint8_t *t = d->str[d->timeline_str];
	const uint8_t *end = t + d->str_len[d->timeline_str];
	uint64_t time = 0;

	while (t < end) {
		uint64_t g, w = 1, dt;
		bool neg;
		int r;

		if (!parse_num(&t, end, UINT32_MAX, &g) || g >= d->ngrp || t >= end ||
		    *t++ != ',')
			FAIL(d, "malformed stoke.timeline");
		neg = t < end && *t == '-';
		t += neg;
		if (!parse_num(&t, end, UINT64_MAX, &dt) || t >= end)
			FAIL(d, "malformed stoke.timeline");
		if (*t == ',') {
			t++;
			if (!parse_num(&t, end, UINT64_MAX, &w) || t >= end || w == 0)
				FAIL(d, "malformed stoke.timeline");
		}
		if (*t++ != ';')
			FAIL(d, "malformed stoke.timeline");
		time = neg ? time - dt : time + dt;
		r = stoke_profile_add_sample_kind(d->p, d->grp_tid[g], time, d->grp_stack[g], w,
						  d->grp_kind[g]);
		if (r == 0 && d->grp_span[g])
			r = sample_span(d, d->grp_span[g]);
		if (r < 0)
			return r == -EINVAL ? (d->err = "sample weights overflow", r) : r;
	}
	return 0;
}

static int decode_samples(struct dec *d)
{
	uint32_t *stackbuf = NULL;
	size_t cap = 0;
	int r = 0;

	for (size_t i = 0; i < d->nsamples && r >= 0; i++)
		r = decode_sample(d, d->samples[i], &stackbuf, &cap);
	free(stackbuf);
	if (r >= 0 && d->has_timeline)
		r = replay_timeline(d);
	return r;
}

static void dec_done(struct dec *d)
{
	free(d->str);
	free(d->str_len);
	free(d->str_id);
	free(d->samples);
	free(d->mappings_msg);
	free(d->functions_msg);
	free(d->locations_msg);
	free(d->comments);
	free(d->mappings);
	stoke_u64map_free(&d->mapping_ids);
	free(d->functions);
	stoke_u64map_free(&d->function_ids);
	free(d->locations);
	stoke_u64map_free(&d->location_ids);
	free(d->frames);
	free(d->lines);
	free(d->grp_stack);
	free(d->grp_tid);
	free(d->grp_kind);
	free(d->grp_span);
}

int stoke_pprof_decode(const uint8_t *buf, size_t len, struct stoke_profile **ret,
		       const char **ret_err)
{
	struct dec d = { 0 };
	struct stoke_pmeta *m;
	int r;

	r = stoke_profile_new(&d.p);
	if (r < 0)
		return r;
	r = scan(&d, buf, len);
	if (r >= 0)
		r = decode_comments(&d);
	if (r >= 0)
		r = decode_threads(&d);
	if (r >= 0)
		r = decode_mappings(&d);
	if (r >= 0)
		r = decode_functions(&d);
	if (r >= 0)
		r = decode_locations(&d);
	if (r >= 0)
		r = decode_samples(&d);
	if (r >= 0) {
		m = stoke_profile_meta(d.p);
		if (!d.meta_time) {
			d.meta.time_first = m->time_first;
			d.meta.time_last = m->time_last;
		}
		if (!d.meta.period_ns)
			d.meta.period_ns = d.period;
		if (!d.stoke && !d.meta.start_ns && d.time_nanos) {
			d.meta.start_ns = d.time_nanos;
			d.meta.end_ns = d.time_nanos + d.duration_nanos;
		}
		if (!d.stoke && d.has_period_type)
			r = meta_from_period_type(&d);
	}
	if (r >= 0) {
		m = stoke_profile_meta(d.p);
		*m = d.meta;
		*ret = d.p;
		d.p = NULL;
	}
	if (r < 0 && ret_err)
		*ret_err = d.err ? d.err : r == -ENOMEM ? "out of memory" : "cannot decode";
	stoke_profile_free(d.p);
	dec_done(&d);
	return r < 0 ? r : 0;
}

/* Read all of in (at most READ_MAX_INPUT bytes). */
static int slurp(FILE *in, uint8_t **ret, size_t *ret_len)
{
	return stoke_read_stream(in, READ_MAX_INPUT, (void **)ret, ret_len);
}

static int gunzip(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len,
		  const char **ret_err)
{
	z_stream z = { 0 };
	uint8_t *out = NULL;
	size_t cap = 0, olen = 0;
	int zr;

	/* 15 + 32: zlib or gzip framing, detected from the header. */
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		if (olen + 65536 > MAX_INFLATED) {
			zr = Z_MEM_ERROR;
			*ret_err = "the profile is too large when decompressed";
			break;
		}
		if (olen > INFLATE_FREE && olen / MAX_RATIO > z.total_in) {
			zr = Z_MEM_ERROR;
			*ret_err = "refused: the gzip data expands more than 200-fold "
				   "(a decompression bomb?)";
			break;
		}
		if (STOKE_GROW(out, cap, olen + 65536) < 0) {
			zr = Z_MEM_ERROR;
			break;
		}
		z.next_out = out + olen;
		z.avail_out = (uInt)(cap - olen);
		zr = inflate(&z, Z_NO_FLUSH);
		olen = cap - z.avail_out;
	} while (zr == Z_OK);
	inflateEnd(&z);
	if (zr != Z_STREAM_END) {
		free(out);
		if (zr == Z_MEM_ERROR && !*ret_err)
			return -ENOMEM;
		if (!*ret_err)
			*ret_err = "corrupt or truncated gzip data";
		return -EINVAL;
	}
	*ret = out;
	*ret_len = olen;
	return 0;
}

int stoke_pprof_read(FILE *in, struct stoke_profile **ret, const char **ret_err)
{
	uint8_t *raw = NULL, *plain = NULL;
	size_t len = 0, plen = 0;
	const char *err = NULL;
	int r;

	r = slurp(in, &raw, &len);
	if (r < 0) {
		err = r == -EFBIG ? "the file is too large" : strerror(-r);
		goto out;
	}
	if (len >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
		if (len > UINT32_MAX) {
			r = -EFBIG;
			err = "the file is too large";
			goto out;
		}
		r = gunzip(raw, len, &plain, &plen, &err);
		if (r < 0)
			goto out;
		r = stoke_pprof_decode(plain, plen, ret, &err);
	} else {
		r = stoke_pprof_decode(raw, len, ret, &err);
	}
out:
	if (r < 0 && ret_err)
		*ret_err = err ? err : strerror(-r);
	free(raw);
	free(plain);
	return r;
}
