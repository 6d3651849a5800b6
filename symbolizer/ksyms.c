/*
 * Kernel symbols from a kallsyms-format file ("ADDR TYPE NAME[\t[MODULE]]").
 *
 * Only text symbols are kept (t T w W, for the core kernel and modules): a
 * sampled kernel IP is always in text, and data symbols between functions
 * would steal addresses. Names and module names live in one string pool;
 * the symbols are an array sorted by address, searched in binary. Symbols at
 * address 0 are dropped, so a file read under kptr_restrict (every address
 * zero) loads with no symbols rather than naming everything after one.
 *
 * Parsing (from a FILE*) is separate from opening the file so that it can
 * be fed anything.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "symbolizer/symbolizer.h"
#include "common/util.h"

/* A kallsyms has ~2*10^5 lines; refuse files far beyond that. */
#define KSYMS_MAX_SYMS (1u << 24)
#define KSYMS_MAX_POOL (1u << 30)

struct ksym {
	uint64_t addr;
	uint32_t name; /* offsets into pool */
	uint32_t module;
	uint32_t seq; /* file order, to break ties deterministically */
};

struct stoke_ksyms {
	struct ksym *syms;
	size_t n, cap;
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t last_module; /* the previous line's module, reused when equal */
};

static int pool_add(struct stoke_ksyms *k, const char *s, size_t len, uint32_t *ret)
{
	if (k->pool_len + len + 1 > KSYMS_MAX_POOL)
		return -EFBIG;
	if (STOKE_GROW(k->pool, k->pool_cap, k->pool_len + len + 1) < 0)
		return -ENOMEM;
	memcpy(k->pool + k->pool_len, s, len);
	k->pool[k->pool_len + len] = '\0';
	*ret = (uint32_t)k->pool_len;
	k->pool_len += len + 1;
	return 0;
}

static bool is_text_type(char t)
{
	return t == 't' || t == 'T' || t == 'w' || t == 'W';
}

/* Parse one line; lines that are not text symbols or do not parse are
 * skipped (return 0). */
static int parse_line(struct stoke_ksyms *k, char *line)
{
	const char *name, *mod = "";
	size_t name_len, mod_len = 0;
	uint64_t addr;
	char *p, type;
	uint32_t name_off, mod_off;
	int r;

	errno = 0;
	addr = strtoull(line, &p, 16);
	if (errno || p == line || *p != ' ')
		return 0;
	type = p[1];
	if (!type || p[2] != ' ' || !is_text_type(type) || addr == 0)
		return 0;
	name = p + 3;
	name_len = strcspn(name, " \t\n");
	if (!name_len)
		return 0;
	p = (char *)name + name_len;
	p += strspn(p, " \t");
	if (*p == '[') {
		mod = p + 1;
		mod_len = strcspn(mod, "]\n");
		if (mod[mod_len] != ']')
			mod_len = 0;
	}
	if (k->n >= KSYMS_MAX_SYMS)
		return -EFBIG;
	r = pool_add(k, name, name_len, &name_off);
	if (r < 0)
		return r;
	if (mod_len == 0)
		mod_off = 0; /* the "" at the pool's start */
	else if (strlen(k->pool + k->last_module) == mod_len &&
		 memcmp(k->pool + k->last_module, mod, mod_len) == 0)
		mod_off = k->last_module;
	else if ((r = pool_add(k, mod, mod_len, &mod_off)) < 0)
		return r;
	k->last_module = mod_off;
	if (STOKE_GROW(k->syms, k->cap, k->n + 1) < 0)
		return -ENOMEM;
	k->syms[k->n] = (struct ksym){
		.addr = addr, .name = name_off, .module = mod_off, .seq = (uint32_t)k->n
	};
	k->n++;
	return 0;
}

/* Compare, never subtract: the difference of two addresses does not fit in
 * an int. */
static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int ksyms_parse(FILE *f, struct stoke_ksyms *k)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	uint32_t empty;
	int r;

	r = pool_add(k, "", 0, &empty);
	if (r < 0)
		return r;
	while (getline(&line, &cap, f) >= 0) {
		r = parse_line(k, line);
		if (r < 0)
			return r;
	}
	if (ferror(f))
		return -EIO;
	if (k->n > 1)
		qsort(k->syms, k->n, sizeof(*k->syms), ksym_cmp);
	return 0;
}

int stoke_ksyms_load(const char *path, struct stoke_ksyms **ret)
{
	struct stoke_ksyms *k;
	FILE *f;
	int r;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	k = calloc(1, sizeof(*k));
	if (!k) {
		fclose(f);
		return -ENOMEM;
	}
	r = ksyms_parse(f, k);
	fclose(f);
	if (r < 0) {
		log_debug("ksyms: %s: %s", path, strerror(-r));
		stoke_ksyms_free(k);
		return r;
	}
	log_debug("ksyms: %zu text symbols from %s", k->n, path);
	*ret = k;
	return 0;
}

void stoke_ksyms_free(struct stoke_ksyms *k)
{
	if (!k)
		return;
	free(k->syms);
	free(k->pool);
	free(k);
}

const char *stoke_ksyms_lookup(const struct stoke_ksyms *k, uint64_t addr, uint64_t *ret_start,
			       const char **ret_module)
{
	size_t lo = 0, hi;
	const struct ksym *s;

	if (!k)
		return NULL;
	/* The first symbol whose start is above addr; the one before holds it. */
	hi = k->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->syms[mid].addr > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo == 0)
		return NULL;
	s = &k->syms[lo - 1];
	/* Aliases share an address: name it after the first one in the file. */
	while (s > k->syms && (s - 1)->addr == s->addr)
		s--;
	if (ret_start)
		*ret_start = s->addr;
	if (ret_module)
		*ret_module = k->pool + s->module;
	return k->pool + s->name;
}

size_t stoke_ksyms_count(const struct stoke_ksyms *k)
{
	return k ? k->n : 0;
}
