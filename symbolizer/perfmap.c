/*
 * perf-PID.map parsing and lookup (see perfmap.h).
 *
 * Entries go into one array and names into one growing string buffer; a
 * commit sorts the entries added since the last one by start (ties by line
 * order) and merges them into the sorted rest. A lookup binary-searches
 * the last entry starting at or below the address and, because JIT maps
 * overlap when code is replaced, looks back over a bounded window for the
 * newest entry that contains it.
 *
 * Cleanup style in this file: explicit frees on early return.
 */
#include "symbolizer/perfmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* How far back a lookup searches for an overlapping older entry. */
#define LOOKBACK 16

struct pm_entry {
	uint64_t start, size;
	uint32_t name; /* offset into names */
	uint32_t seq;  /* line order: later wins */
};

struct stoke_perfmap {
	struct pm_entry *e;
	size_t n, cap;
	size_t sorted; /* e[0..sorted) is sorted and visible to lookups */
	char *names;
	size_t names_len, names_cap;
	size_t malformed;
	uint64_t skipped_bytes;
	uint32_t seq;
	/* The unfinished line at the end of the last feed. */
	char line[STOKE_PERFMAP_MAX_LINE];
	size_t line_len;
	bool skipping; /* inside a line longer than the limit */
};

static bool parse_hex(const char **p, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (;; s++, digits++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (digits >= 16)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	if (!digits)
		return false;
	*p = s;
	*ret = v;
	return true;
}

/* Returns 1 when the line was added, 0 when it was malformed, -ENOMEM. */
static int add_line(struct stoke_perfmap *m, const char *line, size_t len)
{
	const char *p = line, *name;
	uint64_t start, size;
	size_t name_len;

	if (!parse_hex(&p, &start) || *p != ' ')
		return 0;
	p++;
	if (!parse_hex(&p, &size) || *p != ' ' || size == 0 || start + size < start)
		return 0;
	name = p + 1;
	name_len = len - (size_t)(name - line);
	while (name_len && (name[name_len - 1] == '\r' || name[name_len - 1] == ' '))
		name_len--;
	if (!name_len || memchr(name, '\0', name_len))
		return 0;
	name_len = STOKE_MIN(name_len, (size_t)STOKE_PERFMAP_MAX_NAME);
	if (m->names_len + name_len + 1 > UINT32_MAX)
		return -ENOMEM;
	if (STOKE_GROW(m->names, m->names_cap, m->names_len + name_len + 1) < 0 ||
	    STOKE_GROW(m->e, m->cap, m->n + 1) < 0)
		return -ENOMEM;
	memcpy(m->names + m->names_len, name, name_len);
	m->names[m->names_len + name_len] = '\0';
	m->e[m->n] = (struct pm_entry){
		.start = start,
		.size = size,
		.name = (uint32_t)m->names_len,
		.seq = m->seq++,
	};
	m->n++;
	m->names_len += name_len + 1;
	return 1;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct pm_entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int stoke_perfmap_new(struct stoke_perfmap **ret)
{
	struct stoke_perfmap *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

/* One complete line (without its newline). */
static int take_line(struct stoke_perfmap *m, const char *line, size_t len)
{
	int r;

	if (m->n >= STOKE_PERFMAP_MAX_ENTRIES)
		return 0;
	r = add_line(m, line, len);
	if (r == 0)
		m->malformed++;
	return r < 0 ? r : 0;
}

int stoke_perfmap_feed(struct stoke_perfmap *m, const char *buf, size_t len)
{
	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) : len;
		int r = 0;

		if (m->skipping) {
			m->skipped_bytes += n;
		} else if (m->line_len + n > sizeof(m->line)) {
			/* Too long: skip to its end without holding it. */
			m->skipped_bytes += m->line_len + n;
			m->line_len = 0;
			m->skipping = true;
			m->malformed++;
		} else if (nl && m->line_len == 0) {
			r = take_line(m, buf, n);
		} else {
			memcpy(m->line + m->line_len, buf, n);
			m->line_len += n;
			if (nl) {
				r = take_line(m, m->line, m->line_len);
				m->line_len = 0;
			}
		}
		if (r < 0)
			return r;
		if (!nl)
			break;
		m->skipping = false;
		buf = nl + 1;
		len -= n + 1;
	}
	return 0;
}

int stoke_perfmap_end(struct stoke_perfmap *m)
{
	int r = 0;

	if (m->line_len && !m->skipping)
		r = take_line(m, m->line, m->line_len);
	m->line_len = 0;
	m->skipping = false;
	return r;
}

int stoke_perfmap_commit(struct stoke_perfmap *m)
{
	struct pm_entry *merged;
	size_t i = 0, j = m->sorted, k = 0;

	if (m->sorted == m->n)
		return 0;
	qsort(m->e + m->sorted, m->n - m->sorted, sizeof(*m->e), entry_cmp);
	if (m->sorted == 0) {
		m->sorted = m->n;
		return 0;
	}
	merged = malloc(m->n * sizeof(*merged));
	if (!merged)
		return -ENOMEM;
	while (i < m->sorted && j < m->n)
		merged[k++] = entry_cmp(&m->e[i], &m->e[j]) <= 0 ? m->e[i++] : m->e[j++];
	while (i < m->sorted)
		merged[k++] = m->e[i++];
	while (j < m->n)
		merged[k++] = m->e[j++];
	free(m->e);
	m->e = merged;
	m->cap = m->n;
	m->sorted = m->n;
	return 0;
}

int stoke_perfmap_parse(FILE *f, struct stoke_perfmap **ret)
{
	struct stoke_perfmap *m;
	char buf[65536];
	size_t n;
	int r;

	r = stoke_perfmap_new(&m);
	if (r < 0)
		return r;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		r = stoke_perfmap_feed(m, buf, n);
		if (r < 0)
			break;
	}
	if (r >= 0 && ferror(f))
		r = -EIO;
	if (r >= 0)
		r = stoke_perfmap_end(m);
	if (r >= 0)
		r = stoke_perfmap_commit(m);
	if (r < 0) {
		stoke_perfmap_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

void stoke_perfmap_free(struct stoke_perfmap *m)
{
	if (!m)
		return;
	free(m->e);
	free(m->names);
	free(m);
}

const char *stoke_perfmap_lookup(const struct stoke_perfmap *m, uint64_t addr,
				 uint64_t *ret_start)
{
	const struct pm_entry *best = NULL;
	size_t lo = 0, hi = m->sorted;

	/* lo = number of entries starting at or below addr */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->e[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, k = 0; i > 0 && k < LOOKBACK; i--, k++) {
		const struct pm_entry *e = &m->e[i - 1];

		if (addr - e->start < e->size && (!best || e->seq > best->seq))
			best = e;
	}
	if (!best)
		return NULL;
	if (ret_start)
		*ret_start = best->start;
	return m->names + best->name;
}

size_t stoke_perfmap_count(const struct stoke_perfmap *m)
{
	return m ? m->sorted : 0;
}

uint64_t stoke_perfmap_skipped_bytes(const struct stoke_perfmap *m)
{
	return m ? m->skipped_bytes : 0;
}

size_t stoke_perfmap_malformed(const struct stoke_perfmap *m)
{
	return m ? m->malformed : 0;
}
