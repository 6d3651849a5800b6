/*
 * Reading text profiles into the model (see textprof.h): folded stacks, as
 * every stackcollapse tool and `stoke record -f folded` write them, and the
 * output of `perf script`, so that `perf script | stoke report -` turns a
 * perf.data into any of stoke's formats.
 *
 * Both are parsed line by line from a buffer in memory; any line that does
 * not parse fails the whole read with its line number, rather than being
 * dropped silently (a dropped line would be lost samples).
 */
#include "formats/textprof.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct reader {
	struct stoke_profile *p;
	const char *err;
	size_t lineno;
	uint32_t *frames; /* one sample's frame ids, as read */
	size_t nframes, frames_cap;
};

static int fail(struct reader *rd, const char *what)
{
	/* The reason outlives the read: the caller prints it. */
	static __thread char errbuf[128];

	snprintf(errbuf, sizeof(errbuf), "line %zu: %s", rd->lineno, what);
	rd->err = errbuf;
	return -EINVAL;
}

static int push_frame(struct reader *rd, const struct stoke_pframe *f)
{
	uint32_t id;
	int r = stoke_profile_frame(rd->p, f, &id);

	if (r < 0)
		return r;
	if (STOKE_GROW(rd->frames, rd->frames_cap, rd->nframes + 1) < 0)
		return -ENOMEM;
	rd->frames[rd->nframes++] = id;
	return 0;
}

/* Add the frames read as one stack; root_first says their order. */
static int add_stack(struct reader *rd, bool root_first, uint32_t tid, uint64_t weight)
{
	uint32_t s = 0;
	int r = 0;

	for (size_t i = 0; i < rd->nframes && r == 0; i++) {
		size_t k = root_first ? i : rd->nframes - 1 - i;

		r = stoke_profile_stack(rd->p, s, rd->frames[k], &s);
	}
	if (r == 0)
		r = stoke_profile_add_sample(rd->p, tid, 0, s, weight);
	rd->nframes = 0;
	return r;
}

static bool ends_with_n(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);

	return n > m && !memcmp(s + n - m, suffix, m);
}

/* One folded frame: the _[k] / _[j] / _[i] annotations become its kind. */
static int folded_frame(struct reader *rd, const char *s, size_t n)
{
	struct stoke_pframe f = { 0 };
	int r;

	if (ends_with_n(s, n, "_[k]")) {
		f.kind = STOKE_PFRAME_KERNEL;
		n -= 4;
	} else if (ends_with_n(s, n, "_[j]")) {
		f.kind = STOKE_PFRAME_JIT;
		n -= 4;
	} else if (ends_with_n(s, n, "_[i]")) {
		f.inlined = true;
		n -= 4;
	}
	if (n == 0)
		return fail(rd, "an empty frame name");
	r = stoke_profile_intern_n(rd->p, s, n, &f.name);
	return r < 0 ? r : push_frame(rd, &f);
}

static int folded_line(struct reader *rd, const char *s, size_t n)
{
	const char *sp = NULL, *frame;
	uint64_t count = 0;
	int r;

	for (size_t i = n; i > 0; i--) {
		if (s[i - 1] == ' ') {
			sp = s + i - 1;
			break;
		}
	}
	if (!sp || sp == s || sp + 1 == s + n)
		return fail(rd, "not 'frame;frame;... COUNT'");
	for (const char *c = sp + 1; c < s + n; c++) {
		if (*c < '0' || *c > '9' || count > (UINT64_MAX - 9) / 10)
			return fail(rd, "the count is not a whole number");
		count = count * 10 + (uint64_t)(*c - '0');
	}
	frame = s;
	for (const char *c = s; c <= sp; c++) {
		if (c == sp || *c == ';') {
			r = folded_frame(rd, frame, (size_t)(c - frame));
			if (r < 0)
				return r;
			frame = c + 1;
		}
	}
	if (count == 0) {
		rd->nframes = 0;
		return 0;
	}
	return add_stack(rd, true, 0, count);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * From the first sample line's "TIME: PERIOD EVENT:" tail: the event, and
 * for the clock events (whose period is in ns) the period, so that times in
 * pstats and the text table mean something.
 */
static void perf_event_meta(struct reader *rd, const char *s, size_t n)
{
	struct stoke_pmeta *m = stoke_profile_meta(rd->p);
	char *copy = strndup(s, n), *save = NULL, *prev = NULL;
	unsigned long long period = 0;

	if (!copy)
		return;
	for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		size_t len = strlen(t);

		if (prev && prev[strlen(prev) - 1] == ':' && t[len - 1] != ':')
			period = strtoull(t, NULL, 10);
		if (prev && len > 1 && t[len - 1] == ':' && strchr(t, '.') == NULL &&
		    !(t[0] >= '0' && t[0] <= '9')) {
			t[len - 1] = 0;
			if (stoke_profile_intern(rd->p, t, &m->event) == 0 &&
			    (!strcmp(t, "cpu-clock") || !strcmp(t, "task-clock")) && period)
				m->period_ns = period;
			break;
		}
		prev = t;
	}
	free(copy);
}

/*
 * A perf script sample header: "comm  PID/TID [CPU] TIME: [PERIOD] EVENT:".
 * The command name may hold spaces; the first all-digit token (PID/TID or a
 * lone TID) after it ends it.
 */
static int perf_header(struct reader *rd, const char *s, size_t n, uint32_t *ret_tid)
{
	const char *end = s + n, *tok = s, *comm_end = NULL;
	unsigned long pid = 0, tid = 0;

	while (tok < end) {
		const char *t = tok, *e;

		while (t < end && is_space(*t))
			t++;
		e = t;
		while (e < end && !is_space(*e))
			e++;
		if (t > s && e > t && t[0] >= '0' && t[0] <= '9') {
			char buf[32];
			char *p;

			if ((size_t)(e - t) >= sizeof(buf))
				break;
			memcpy(buf, t, (size_t)(e - t));
			buf[e - t] = 0;
			pid = strtoul(buf, &p, 10);
			if (*p == '/')
				tid = strtoul(p + 1, &p, 10);
			else
				tid = pid;
			if (!*p) {
				comm_end = tok;
				break;
			}
		}
		tok = e;
	}
	if (!comm_end || tid == 0 || tid > UINT32_MAX || pid > UINT32_MAX)
		return fail(rd, "not a perf script sample line (no PID/TID)");
	if (!stoke_profile_cmeta(rd->p)->event)
		perf_event_meta(rd, comm_end, (size_t)(end - comm_end));
	while (comm_end > s && is_space(comm_end[-1]))
		comm_end--;
	{
		char *comm = strndup(s, (size_t)(comm_end - s));
		int r;

		if (!comm)
			return -ENOMEM;
		r = stoke_profile_thread(rd->p, (uint32_t)pid, (uint32_t)tid, comm);
		free(comm);
		if (r < 0)
			return r;
	}
	*ret_tid = (uint32_t)tid;
	return 0;
}

/* A callchain line: "ADDR SYMBOL[+0xOFF] (MODULE)", leaf first. */
static int perf_frame(struct reader *rd, const char *s, size_t n)
{
	const char *end = s + n, *sym, *sym_end, *mod = NULL, *mod_end = NULL;
	struct stoke_pframe f = { 0 };
	unsigned long long addr;
	char *p;
	int r;

	errno = 0;
	addr = strtoull(s, &p, 16);
	if (errno || p == s || (p < end && !is_space(*p)))
		return fail(rd, "a callchain line does not start with an address");
	sym = p;
	while (sym < end && is_space(*sym))
		sym++;
	sym_end = end;
	if (end > sym && end[-1] == ')') {
		/* the module is the last parenthesised group */
		int depth = 0;

		for (const char *c = end - 1; c >= sym; c--) {
			if (*c == ')')
				depth++;
			else if (*c == '(' && --depth == 0) {
				mod = c + 1;
				mod_end = end - 1;
				sym_end = c;
				break;
			}
		}
	}
	while (sym_end > sym && is_space(sym_end[-1]))
		sym_end--;
	/* "sym+0x1f": the offset is not part of the name */
	for (const char *c = sym_end; c - sym > 3; c--) {
		if (c[-1] == '+' && c[0] == '0' && c + 1 < sym_end && c[1] == 'x') {
			sym_end = c - 1;
			break;
		}
	}
	if (mod && mod_end > mod) {
		r = stoke_profile_intern_n(rd->p, mod, (size_t)(mod_end - mod), &f.module);
		if (r < 0)
			return r;
		if ((size_t)(mod_end - mod) >= 7 && !memcmp(mod, "[kernel", 7))
			f.kind = STOKE_PFRAME_KERNEL;
	}
	if (sym_end > sym && !(sym_end - sym == 9 && !memcmp(sym, "[unknown]", 9))) {
		r = stoke_profile_intern_n(rd->p, sym, (size_t)(sym_end - sym), &f.name);
		if (r < 0)
			return r;
	} else {
		f.offset = addr; /* unnamed frames stay distinct by address */
	}
	return push_frame(rd, &f);
}

static bool is_perf_script(const char *buf, size_t len)
{
	/* perf script indents its callchain lines; folded lines never start
	 * with white space. */
	for (size_t i = 0; i < len; i++)
		if ((i == 0 || buf[i - 1] == '\n') && is_space(buf[i]))
			return true;
	return false;
}

int stoke_textprof_read(const char *buf, size_t len, struct stoke_profile **ret,
			const char **ret_err)
{
	struct reader rd = { 0 };
	bool perf = is_perf_script(buf, len), in_sample = false;
	uint32_t tid = 0;
	size_t pos = 0;
	int r;

	r = stoke_profile_new(&rd.p);
	if (r < 0)
		return r;
	while (r == 0 && pos < len) {
		const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		size_t lead = 0;

		pos += n + (nl ? 1 : 0);
		rd.lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		while (lead < n && is_space(line[lead]))
			lead++;
		if (!perf) {
			if (n)
				r = folded_line(&rd, line, n);
			continue;
		}
		if (lead == n) { /* a blank line ends a sample */
			if (in_sample)
				r = add_stack(&rd, false, tid, 1);
			in_sample = false;
			continue;
		}
		if (line[0] == '#')
			continue; /* perf script -D/--header comments */
		if (lead == 0) {
			if (in_sample)
				r = add_stack(&rd, false, tid, 1);
			if (r == 0)
				r = perf_header(&rd, line, n, &tid);
			in_sample = r == 0;
		} else if (!in_sample) {
			r = fail(&rd, "a callchain line before any sample line");
		} else {
			r = perf_frame(&rd, line + lead, n - lead);
		}
	}
	if (r == 0 && in_sample)
		r = add_stack(&rd, false, tid, 1);
	if (r == 0 && stoke_profile_total(rd.p) == 0) {
		rd.err = "no samples in the input";
		r = -EINVAL;
	}
	free(rd.frames);
	if (r < 0) {
		if (ret_err)
			*ret_err = rd.err ? rd.err : strerror(-r);
		stoke_profile_free(rd.p);
		return r;
	}
	*ret = rd.p;
	return 0;
}
