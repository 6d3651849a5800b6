/*
 * The terminal call tree (see tree.h).
 *
 * The walk is iterative (a profile read from a file may hold stacks of any
 * depth) and the drawing prefix of a line is rebuilt from one "is the last
 * shown child" bit per level. Names are hostile input on a terminal: an
 * escape sequence in a symbol must not reach it, so control characters
 * become '?' and invalid UTF-8 becomes U+FFFD.
 */
#include "formats/tree.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "formats/calltree.h"
#include "formats/escape.h"

#define RESET "\033[0m"
#define FAINT "\033[2m"
#define BOLD "\033[1m"

struct tctx {
	const struct stoke_profile *p;
	const struct stoke_ctree *t;
	FILE *out;
	bool color;
	double period_s; /* seconds per unit of weight; 0: show samples */
	double min_pct;
	bool *last;      /* per depth: the node at that depth is its parent's
			  * last shown line */
};

static bool use_color(const struct stoke_output_opts *opts, FILE *out)
{
	const char *nc = getenv("NO_COLOR");
	int fd;

	if (opts->color == STOKE_COLOR_ALWAYS)
		return true;
	if (opts->color == STOKE_COLOR_NEVER)
		return false;
	/* https://no-color.org: set and not empty disables colour. */
	if (nc && *nc)
		return false;
	fd = fileno(out);
	return fd >= 0 && isatty(fd);
}

/* pyinstrument's scale: red from 60% of the time, yellow 30, green 20. */
static const char *share_color(double pct)
{
	if (pct >= 60)
		return "\033[31m";
	if (pct >= 30)
		return "\033[33m";
	if (pct >= 20)
		return "\033[32m";
	return "\033[36m";
}

static void put_name(FILE *out, const char *name)
{
	char *s = stoke_utf8_sanitize(name);
	const char *src = s ? s : name;

	for (const unsigned char *c = (const unsigned char *)src; *c; c++)
		fputc(*c < 0x20 || *c == 0x7f || (!s && *c >= 0x80) ? '?' : *c, out);
	free(s);
}

static void put_prefix(struct tctx *c, uint32_t depth)
{
	/* Depth 1 (the roots) has no connector; level d > 1 draws under the
	 * line of its ancestor at depth d - 1. */
	for (uint32_t d = 2; d < depth; d++)
		fputs(c->last[d] ? "   " : "│  ", c->out);
	if (depth > 1)
		fputs(c->last[depth] ? "└─ " : "├─ ", c->out);
}

static void put_amount(struct tctx *c, uint64_t value)
{
	double pct = c->t->total ? 100.0 * (double)value / (double)c->t->total : 0;

	if (c->color)
		fputs(share_color(pct), c->out);
	if (c->period_s > 0)
		fprintf(c->out, "%.3fs %5.1f%%", (double)value * c->period_s, pct);
	else
		fprintf(c->out, "%" PRIu64 " %5.1f%%", value, pct);
	if (c->color)
		fputs(RESET, c->out);
}

static bool shown(const struct tctx *c, uint32_t node)
{
	return c->t->nodes[node].value &&
	       (double)c->t->nodes[node].value * 100.0 >= c->min_pct * (double)c->t->total;
}

/* Children of node that are shown (they come first: kids are heaviest
 * first), and the weight and count of the hidden rest. */
static uint32_t count_shown(const struct tctx *c, uint32_t node, uint64_t *hidden_w,
			    uint32_t *hidden_n)
{
	const struct stoke_ctree_node *n = &c->t->nodes[node];
	uint32_t k = 0;

	*hidden_w = 0;
	*hidden_n = 0;
	for (uint32_t i = 0; i < n->nkids; i++) {
		uint32_t kid = c->t->kids[n->first_kid + i];

		if (shown(c, kid))
			k++;
		else if (c->t->nodes[kid].value) {
			*hidden_w += c->t->nodes[kid].value;
			(*hidden_n)++;
		}
	}
	return k;
}

static void put_hidden(struct tctx *c, uint32_t depth, uint64_t w, uint32_t n)
{
	c->last[depth] = true;
	put_prefix(c, depth);
	if (c->color)
		fputs(FAINT, c->out);
	fprintf(c->out, "[%" PRIu32 " frame%s hidden, %.1f%%]", n, n == 1 ? "" : "s",
		c->t->total ? 100.0 * (double)w / (double)c->t->total : 0);
	if (c->color)
		fputs(RESET, c->out);
	fputc('\n', c->out);
}

struct level {
	uint32_t node;
	uint32_t next;   /* next kid position */
	uint32_t nshown; /* kids shown */
	uint64_t hidden_w;
	uint32_t hidden_n;
};

static int walk(struct tctx *c)
{
	const struct stoke_ctree *t = c->t;
	struct level *st;
	size_t max_depth = 0, sp = 0;

	for (size_t i = 0; i < t->nnodes; i++)
		max_depth = STOKE_MAX(max_depth, (size_t)t->nodes[i].depth);
	st = calloc(max_depth + 2, sizeof(*st));
	c->last = calloc(max_depth + 3, sizeof(*c->last));
	if (!st || !c->last) {
		free(st);
		return -ENOMEM;
	}
	st[0].node = 0;
	st[0].nshown = count_shown(c, 0, &st[0].hidden_w, &st[0].hidden_n);
	for (;;) {
		struct level *l = &st[sp];
		const struct stoke_ctree_node *n = &t->nodes[l->node];
		uint32_t depth = n->depth + 1, kid;

		if (l->next >= l->nshown) {
			if (l->hidden_n)
				put_hidden(c, depth, l->hidden_w, l->hidden_n);
			if (sp == 0)
				break;
			sp--;
			continue;
		}
		kid = t->kids[n->first_kid + l->next++];
		c->last[depth] = l->next == l->nshown && !l->hidden_n;
		put_prefix(c, depth);
		put_amount(c, t->nodes[kid].value);
		fputs("  ", c->out);
		if (c->color && t->nodes[kid].self * 100 >= t->total * 5)
			fputs(BOLD, c->out); /* a hot leaf: where the time goes */
		put_name(c->out, stoke_ctree_name(t, kid));
		if (c->color && t->nodes[kid].self * 100 >= t->total * 5)
			fputs(RESET, c->out);
		fputc('\n', c->out);
		st[++sp] = (struct level){ .node = kid };
		st[sp].nshown = count_shown(c, kid, &st[sp].hidden_w, &st[sp].hidden_n);
	}
	free(st);
	return 0;
}

int stoke_tree_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	const char *event = stoke_profile_string(p, m->event);
	struct stoke_ctree *t = NULL;
	struct tctx c = { .p = p, .out = out };
	int r;

	r = stoke_ctree_build(p, &t);
	if (r < 0)
		return r;
	c.t = t;
	c.color = use_color(opts, out);
	c.period_s = (double)m->period_ns / 1e9;
	c.min_pct = opts->min_percent < 0 ? 0 : opts->min_percent;
	if (c.color)
		fputs(FAINT, out);
	fprintf(out, "stoke: %" PRIu64 " samples", t->total);
	if (c.period_s > 0)
		fprintf(out, ", %.3fs", (double)t->total * c.period_s);
	if (event && *event) {
		fputs(" of ", out);
		put_name(out, event);
	}
	if (c.min_pct > 0)
		fprintf(out, "; frames under %g%% hidden", c.min_pct);
	fputc('\n', out);
	if (c.color)
		fputs(RESET, out);
	r = walk(&c);
	free(c.last);
	stoke_ctree_free(t);
	if (r == 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
	return r;
}
