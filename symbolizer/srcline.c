/*
 * Source lines and inlined frames (see srcline.h).
 *
 * Index layout, per CU:
 *   nodes[]  one per subprogram / inlined_subroutine that has code, with
 *            its parent node (the function or inlined call it sits in)
 *   ivs[]    every address range of every node, sorted by (start, depth)
 *
 * Lookup of address a: J = the last interval starting at or below a. In
 * well-formed DWARF the ranges form a laminar family (any two are nested or
 * disjoint), so the deepest interval containing a is J or one of J's
 * ancestors: anything containing a and starting at or before J's start
 * either contains J or is J. So we walk up from J's node until a node
 * contains a. Sorting ties by depth puts the deeper of two intervals with
 * the same start last, so J is the deeper one. Broken DWARF only makes the
 * answer less precise (an outer frame), never unsafe: every walk is bounded
 * by the parent chain, which only points to earlier nodes.
 *
 * Building is allocation-frugal: the walk appends to scratch arrays that
 * the whole index reuses from CU to CU, and each CU keeps exact-size
 * copies; the intervals are ordered with a radix sort. (Growing per-CU
 * arrays by doubling, with their page faults, and qsort's indirect
 * compares were about a tenth of the build time of a 20k-function binary;
 * most of the rest is libdw reading line tables and DIEs.)
 *
 * CU DIEs are walked only through the tags that can hold code (functions,
 * lexical blocks, namespaces, classes); everything else is skipped with
 * dwarf_siblingof. The recursion is bounded (MAX_DIE_DEPTH) against hostile
 * input.
 *
 * Cleanup style in this file: explicit frees on early return.
 */
#include "symbolizer/srcline.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/util.h"

#define NO_NODE UINT32_MAX
#define MAX_DIE_DEPTH 128
#define MAX_CHAIN 64
/* Rows of the line table per sample (see struct sl_cu). */
#define LINE_STRIDE 16

struct sl_node {
	Dwarf_Off off;    /* the DIE: its name is looked up when first needed */
	const char *name; /* valid when named */
	const char *decl_file; /* valid when named */
	uint32_t decl_line;
	bool named;
	uint32_t parent;
	uint32_t call_file, call_line; /* of an inlined node */
	uint32_t first, nranges;       /* its ranges in cu->ranges */
	bool inlined;
};

struct sl_range {
	uint64_t lo, hi; /* [lo, hi), DWARF addresses */
	uint32_t node, depth;
};

struct sl_cu {
	Dwarf_Off off; /* key: the CU DIE's offset */
	Dwarf_Die die;
	struct sl_node *nodes;
	size_t nnodes;
	struct sl_range *ranges; /* node order: each node's ranges together */
	struct sl_range *ivs;    /* sorted */
	size_t nranges;
	Dwarf_Files *files;
	size_t nfiles;
	bool files_tried;
	/* libdw's line table (sorted by address) and a sample of it: laddr[j]
	 * is the address of row j * LINE_STRIDE. A lookup finds its stride
	 * in the sample, small enough to miss the cache little, then the
	 * row among the stride's rows. Copying every row instead meant
	 * reading all of libdw's table, many times the cache, for each CU. */
	Dwarf_Lines *lines;
	size_t nlines;
	uint64_t *laddr;
	size_t nlrows; /* samples */
	/* A direct index over laddr: lbucket[b] is the first sample at or
	 * above laddr[0] + (b << lshift). The binary search then runs over a
	 * few samples in one or two cache lines instead of missing its way
	 * down the whole sample. */
	uint32_t *lbucket;
	size_t nlbuckets;
	unsigned lshift;
	const char *comp_dir; /* DW_AT_comp_dir, or NULL */
	struct sl_range *cu_ranges; /* the CU's own ranges, sorted */
	size_t ncu_ranges;
};

/* Scratch space of a CU's walk, reused by every CU of the index. */
struct sl_build {
	struct sl_node *nodes;
	size_t nnodes, nodes_cap;
	struct sl_range *ranges, *tmp;
	size_t nranges, ranges_cap, tmp_cap;
};

struct stoke_srcline {
	Dwfl_Module *mod;
	struct stoke_u64map cus; /* CU DIE offset -> struct sl_cu * */
	struct sl_build build;
};

int stoke_srcline_new(Dwfl_Module *mod, struct stoke_srcline **ret)
{
	struct stoke_srcline *sl = calloc(1, sizeof(*sl));

	if (!sl)
		return -ENOMEM;
	sl->mod = mod;
	*ret = sl;
	return 0;
}

static void cu_free(struct sl_cu *cu)
{
	if (!cu)
		return;
	free(cu->nodes);
	free(cu->ranges);
	free(cu->ivs);
	free(cu->cu_ranges);
	free(cu->laddr);
	free(cu->lbucket);
	free(cu);
}

void stoke_srcline_free(struct stoke_srcline *sl)
{
	uint64_t v;

	if (!sl)
		return;
	for (size_t pos = 0; stoke_u64map_next(&sl->cus, &pos, NULL, &v);)
		cu_free((struct sl_cu *)(uintptr_t)v);
	stoke_u64map_free(&sl->cus);
	free(sl->build.nodes);
	free(sl->build.ranges);
	free(sl->build.tmp);
	free(sl);
}

size_t stoke_srcline_cus_indexed(const struct stoke_srcline *sl)
{
	return sl->cus.count;
}

/* ---- building a CU's index ---- */

/* The attributes a function's name may come from, first of each kind. */
struct name_attrs {
	Dwarf_Attribute linkage, mips, name, origin, spec;
	bool has_linkage, has_mips, has_name, has_origin, has_spec;
};

static void keep_attr(Dwarf_Attribute *dst, bool *has, const Dwarf_Attribute *attr)
{
	if (!*has) {
		*dst = *attr;
		*has = true;
	}
}

static int name_attr(Dwarf_Attribute *attr, void *arg)
{
	struct name_attrs *na = arg;

	switch (dwarf_whatattr(attr)) {
	case DW_AT_linkage_name:
		keep_attr(&na->linkage, &na->has_linkage, attr);
		break;
	case DW_AT_MIPS_linkage_name:
		keep_attr(&na->mips, &na->has_mips, attr);
		break;
	case DW_AT_name:
		keep_attr(&na->name, &na->has_name, attr);
		break;
	case DW_AT_abstract_origin:
		keep_attr(&na->origin, &na->has_origin, attr);
		break;
	case DW_AT_specification:
		keep_attr(&na->spec, &na->has_spec, attr);
		break;
	default:
		break;
	}
	return DWARF_CB_OK;
}

/*
 * The name addr2line prints: the linkage name when there is one (C++,
 * Rust), else DW_AT_name, following abstract_origin and specification.
 * This is dwarf_attr_integrate for DW_AT_linkage_name, then
 * DW_AT_MIPS_linkage_name, then dwarf_diename, in one walk down the chain
 * that reads each DIE's attributes once (those three calls read an inlined
 * DIE and its origin some dozen times, and naming was a tenth of a bulk
 * run). Like dwarf_attr_integrate, at most 16 DIEs are followed.
 */
static const char *die_function_name(Dwarf_Die *die)
{
	Dwarf_Attribute linkage, mips, name;
	bool has_linkage = false, has_mips = false, has_name = false;
	const char *s = NULL;
	Dwarf_Die mem;
	int chain = 16;

	do {
		struct name_attrs na = { 0 };

		if (dwarf_getattrs(die, name_attr, &na, 0) != 1)
			break;
		if (na.has_linkage)
			keep_attr(&linkage, &has_linkage, &na.linkage);
		if (na.has_mips)
			keep_attr(&mips, &has_mips, &na.mips);
		if (na.has_name)
			keep_attr(&name, &has_name, &na.name);
		/* A linkage name wins over everything further down. */
		if (has_linkage && dwarf_formstring(&linkage))
			break;
		if (na.has_origin)
			die = dwarf_formref_die(&na.origin, &mem);
		else if (na.has_spec)
			die = dwarf_formref_die(&na.spec, &mem);
		else
			break;
	} while (die && --chain > 0);
	if (has_linkage)
		s = dwarf_formstring(&linkage);
	else if (has_mips)
		s = dwarf_formstring(&mips);
	return s ? s : has_name ? dwarf_formstring(&name) : NULL;
}

/*
 * Where a function is defined: dwarf_decl_file reads the index in the
 * table of the DIE's own CU, but an abstract origin may live in another CU
 * (LTO, DW_FORM_ref_addr), whose table the index is for; and it takes index
 * 0 for "none", which DWARF 5 makes the CU's primary file (clang names it
 * so). So: the table of the CU holding the attribute, 0 valid from DWARF 5.
 */
static const char *die_decl_file(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	Dwarf_Die cudie;
	Dwarf_Files *files;
	Dwarf_Half version;
	Dwarf_Word idx;
	size_t nfiles;

	if (!dwarf_attr_integrate(die, DW_AT_decl_file, &attr) ||
	    dwarf_formudata(&attr, &idx) != 0 ||
	    !dwarf_cu_die(attr.cu, &cudie, &version, NULL, NULL, NULL, NULL, NULL))
		return NULL;
	if ((idx == 0 && version < 5) || dwarf_getsrcfiles(&cudie, &files, &nfiles) != 0 ||
	    idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

static uint32_t die_udata(Dwarf_Die *die, unsigned name)
{
	Dwarf_Attribute attr;
	Dwarf_Word v;

	if (!dwarf_attr(die, name, &attr) || dwarf_formudata(&attr, &v) != 0 || v > UINT32_MAX)
		return 0;
	return (uint32_t)v;
}

/* Add die as a node with its ranges. *ret_node stays NO_NODE when the DIE
 * has no code (a declaration, an abstract instance). */
static int add_node(struct sl_build *b, Dwarf_Die *die, bool inlined, uint32_t parent,
		    uint32_t depth, uint32_t *ret_node)
{
	Dwarf_Addr base, lo, hi;
	ptrdiff_t off = 0;
	uint32_t id = (uint32_t)b->nnodes;
	size_t first = b->nranges;

	*ret_node = NO_NODE;
	if (b->nnodes >= NO_NODE - 1)
		return 0;
	while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0) {
		if (hi <= lo)
			continue;
		if (STOKE_GROW(b->ranges, b->ranges_cap, b->nranges + 1) < 0)
			return -ENOMEM;
		b->ranges[b->nranges++] = (struct sl_range){
			.lo = lo, .hi = hi, .node = id, .depth = depth,
		};
	}
	if (b->nranges == first)
		return 0;
	if (STOKE_GROW(b->nodes, b->nodes_cap, b->nnodes + 1) < 0)
		return -ENOMEM;
	b->nodes[b->nnodes++] = (struct sl_node){
		.off = dwarf_dieoffset(die),
		.parent = parent,
		.call_file = inlined ? die_udata(die, DW_AT_call_file) : 0,
		.call_line = inlined ? die_udata(die, DW_AT_call_line) : 0,
		.first = (uint32_t)first,
		.nranges = (uint32_t)(b->nranges - first),
		.inlined = inlined,
	};
	*ret_node = id;
	return 0;
}

static int walk(struct sl_build *b, Dwarf_Die *die, uint32_t parent, uint32_t depth,
		unsigned die_depth)
{
	Dwarf_Die child;
	int r;

	if (die_depth >= MAX_DIE_DEPTH || dwarf_child(die, &child) != 0)
		return 0;
	do {
		uint32_t node;
		int tag = dwarf_tag(&child);

		switch (tag) {
		case DW_TAG_subprogram:
		case DW_TAG_inlined_subroutine:
			r = add_node(b, &child, tag == DW_TAG_inlined_subroutine, parent, depth,
				     &node);
			if (r < 0)
				return r;
			/* No code: nothing inside can have code either. */
			if (node == NO_NODE)
				break;
			r = walk(b, &child, node, depth + 1, die_depth + 1);
			if (r < 0)
				return r;
			break;
		case DW_TAG_lexical_block:
		case DW_TAG_try_block:
		case DW_TAG_catch_block:
		case DW_TAG_namespace:
		case DW_TAG_module:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
			r = walk(b, &child, parent, depth, die_depth + 1);
			if (r < 0)
				return r;
			break;
		default:
			break;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return 0;
}

/* One stable counting pass over a byte of key(): src → dst. */
#define RADIX_PASS(src, dst, n, key, shift)                                         \
	do {                                                                       \
		size_t count_[256] = { 0 }, pos_ = 0;                              \
		for (size_t i_ = 0; i_ < (n); i_++)                                \
			count_[((key)((src)[i_]) >> (shift)) & 0xff]++;            \
		for (size_t d_ = 0; d_ < 256; d_++) {                              \
			size_t c_ = count_[d_];                                    \
			count_[d_] = pos_;                                         \
			pos_ += c_;                                                \
		}                                                                  \
		for (size_t i_ = 0; i_ < (n); i_++)                                \
			(dst)[count_[((key)((src)[i_]) >> (shift)) & 0xff]++] =     \
				(src)[i_];                                         \
	} while (0)

static inline uint64_t range_lo(struct sl_range r)
{
	return r.lo;
}

static inline uint64_t range_depth(struct sl_range r)
{
	return r.depth;
}

/*
 * Sort v[0..n) by (lo, depth) as range_cmp orders them, with tmp as room
 * for n more: an LSD radix sort (stable, so ties keep the walk's order),
 * one pass per byte of depth, then of lo, in which the keys differ.
 * Returns the array holding the result (v or tmp).
 */
static struct sl_range *sort_ranges(struct sl_range *v, struct sl_range *tmp, size_t n)
{
	uint64_t lo_or = 0, lo_and = UINT64_MAX, d_or = 0, d_and = UINT64_MAX;
	struct sl_range *src = v, *dst = tmp, *t;

	for (size_t i = 0; i < n; i++) {
		lo_or |= v[i].lo;
		lo_and &= v[i].lo;
		d_or |= v[i].depth;
		d_and &= v[i].depth;
	}
	for (unsigned shift = 0; shift < 32; shift += 8) {
		if ((((d_or ^ d_and) >> shift) & 0xff) == 0)
			continue;
		RADIX_PASS(src, dst, n, range_depth, shift);
		t = src, src = dst, dst = t;
	}
	for (unsigned shift = 0; shift < 64; shift += 8) {
		if ((((lo_or ^ lo_and) >> shift) & 0xff) == 0)
			continue;
		RADIX_PASS(src, dst, n, range_lo, shift);
		t = src, src = dst, dst = t;
	}
	return src;
}

static int range_cmp(const void *a, const void *b)
{
	const struct sl_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->depth < y->depth ? -1 : x->depth > y->depth;
}

/* libdwfl maps an address in a gap between CUs to the CU before it, so a
 * lookup checks the CU's own ranges. */
static int cu_own_ranges(struct sl_cu *cu)
{
	Dwarf_Addr base, lo, hi;
	ptrdiff_t off = 0;
	size_t cap = 0;

	while ((off = dwarf_ranges(&cu->die, off, &base, &lo, &hi)) > 0) {
		if (hi <= lo)
			continue;
		if (STOKE_GROW(cu->cu_ranges, cap, cu->ncu_ranges + 1) < 0)
			return -ENOMEM;
		cu->cu_ranges[cu->ncu_ranges++] = (struct sl_range){ .lo = lo, .hi = hi };
	}
	if (cu->ncu_ranges > 1)
		qsort(cu->cu_ranges, cu->ncu_ranges, sizeof(*cu->cu_ranges), range_cmp);
	return 0;
}

static bool cu_covers(const struct sl_cu *cu, uint64_t a)
{
	size_t lo = 0, hi = cu->ncu_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cu->cu_ranges[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a < cu->cu_ranges[lo - 1].hi;
}

/* About one bucket per 64 bytes of code, fewer when the CU's code is
 * spread far apart (hot/cold splitting): at most ~2 buckets per sample. */
static int cu_line_buckets(struct sl_cu *cu)
{
	uint64_t span = cu->laddr[cu->nlrows - 1] - cu->laddr[0];
	unsigned shift = 6;
	size_t row = 0;

	while (shift < 40 && (span >> shift) > 2 * cu->nlrows + 64)
		shift++;
	cu->lshift = shift;
	cu->nlbuckets = (size_t)(span >> shift) + 2;
	cu->lbucket = malloc(cu->nlbuckets * sizeof(*cu->lbucket));
	if (!cu->lbucket)
		return -ENOMEM;
	for (size_t b = 0; b < cu->nlbuckets; b++) {
		uint64_t start = cu->laddr[0] + ((uint64_t)b << shift);

		while (row < cu->nlrows && cu->laddr[row] < start)
			row++;
		cu->lbucket[b] = (uint32_t)row;
	}
	return 0;
}

/* The address of row i of the line table (i < nlines). */
static uint64_t row_addr(const struct sl_cu *cu, size_t i)
{
	Dwarf_Addr addr;

	if (dwarf_lineaddr(dwarf_onesrcline(cu->lines, i), &addr) != 0)
		return UINT64_MAX; /* not for a row in range */
	return addr;
}

static int cu_lines(struct sl_cu *cu)
{
	size_t n;

	if (dwarf_getsrclines(&cu->die, &cu->lines, &n) != 0 || n == 0 || n > UINT32_MAX)
		return 0; /* no line table: lookups give no lines */
	cu->nlines = n;
	cu->nlrows = (n + LINE_STRIDE - 1) / LINE_STRIDE;
	cu->laddr = malloc(cu->nlrows * sizeof(*cu->laddr));
	if (!cu->laddr)
		return -ENOMEM;
	for (size_t j = 0; j < cu->nlrows; j++)
		cu->laddr[j] = row_addr(cu, j * LINE_STRIDE);
	return cu_line_buckets(cu);
}

/*
 * The line row for a, as dwarf_getsrc_die gives it: the last row at or
 * below a (of the rows sharing an address, libdw answers with the last),
 * unless that row ends a sequence; or NULL.
 */
static Dwarf_Line *cu_line(const struct sl_cu *cu, uint64_t a)
{
	size_t lo = 0, hi = cu->nlrows, b;
	Dwarf_Line *line;
	bool end;

	if (!cu->nlrows || a < cu->laddr[0])
		return NULL;
	b = (size_t)((a - cu->laddr[0]) >> cu->lshift);
	if (b + 1 < cu->nlbuckets) {
		/* Samples from lbucket[b + 1] on are above a; the answer is
		 * at or after the last sample before lbucket[b]. */
		lo = cu->lbucket[b] ? cu->lbucket[b] - 1 : 0;
		hi = cu->lbucket[b + 1];
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cu->laddr[mid] <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Sample lo - 1 is at or below a and the next one (if any) above:
	 * the answer is among that sample's stride of rows, after its first. */
	hi = STOKE_MIN((lo - 1) * LINE_STRIDE + LINE_STRIDE, cu->nlines);
	lo = (lo - 1) * LINE_STRIDE + 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (row_addr(cu, mid) <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	line = dwarf_onesrcline(cu->lines, lo - 1);
	if (!line || dwarf_lineendsequence(line, &end) != 0 || end)
		return NULL;
	return line;
}

/* Exact-size copies of the walk's nodes and ranges, and the sorted
 * intervals. */
static int cu_take_walk(struct sl_cu *cu, struct sl_build *b)
{
	struct sl_range *sorted;

	cu->nnodes = b->nnodes;
	cu->nranges = b->nranges;
	cu->nodes = malloc(b->nnodes * sizeof(*cu->nodes));
	cu->ranges = malloc(b->nranges * sizeof(*cu->ranges));
	cu->ivs = malloc(b->nranges * sizeof(*cu->ivs));
	if (!cu->nodes || !cu->ranges || !cu->ivs)
		return -ENOMEM;
	memcpy(cu->nodes, b->nodes, b->nnodes * sizeof(*cu->nodes));
	memcpy(cu->ranges, b->ranges, b->nranges * sizeof(*cu->ranges));
	if (STOKE_GROW(b->tmp, b->tmp_cap, b->nranges) < 0)
		return -ENOMEM;
	/* The scratch ranges are free to reorder now. */
	sorted = sort_ranges(b->ranges, b->tmp, b->nranges);
	memcpy(cu->ivs, sorted, b->nranges * sizeof(*cu->ivs));
	return 0;
}

static int cu_build(struct sl_cu *cu, struct sl_build *b)
{
	int r = cu_own_ranges(cu);

	if (r < 0)
		return r;
	r = cu_lines(cu);
	if (r < 0)
		return r;
	b->nnodes = b->nranges = 0;
	r = walk(b, &cu->die, NO_NODE, 0, 0);
	if (r < 0)
		return r;
	if (!b->nranges)
		return 0;
	return cu_take_walk(cu, b);
}

/* The index of the CU cudie, built on first use. A CU whose walk ran out of
 * memory is not kept, so a later lookup retries. */
static int get_cu(struct stoke_srcline *sl, Dwarf_Die *cudie, struct sl_cu **ret)
{
	Dwarf_Off off = dwarf_dieoffset(cudie);
	struct sl_cu *cu = (struct sl_cu *)(uintptr_t)stoke_u64map_get(&sl->cus, off);
	int r;

	if (cu) {
		*ret = cu;
		return 0;
	}
	r = stoke_u64map_reserve(&sl->cus, 1);
	if (r < 0)
		return r;
	cu = calloc(1, sizeof(*cu));
	if (!cu)
		return -ENOMEM;
	cu->off = off;
	cu->die = *cudie;
	{
		Dwarf_Attribute attr;

		cu->comp_dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &attr));
	}
	r = cu_build(cu, &sl->build);
	if (r < 0) {
		cu_free(cu);
		return r;
	}
	/* Cannot fail: the offset is new and room was reserved. */
	stoke_u64map_add(&sl->cus, off, (uintptr_t)cu);
	*ret = cu;
	return 0;
}

/* ---- lookup ---- */

static bool node_contains(const struct sl_cu *cu, const struct sl_node *n, uint64_t a)
{
	for (uint32_t i = 0; i < n->nranges; i++) {
		const struct sl_range *r = &cu->ranges[n->first + i];

		if (a >= r->lo && a < r->hi)
			return true;
	}
	return false;
}

/* The deepest node containing a, or NO_NODE. */
static uint32_t find_node(const struct sl_cu *cu, uint64_t a)
{
	size_t lo = 0, hi = cu->nranges;
	uint32_t node;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cu->ivs[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NO_NODE;
	if (a < cu->ivs[lo - 1].hi)
		return cu->ivs[lo - 1].node;
	/* Parents are added before their children, so the walk ends. */
	for (node = cu->nodes[cu->ivs[lo - 1].node].parent; node != NO_NODE;
	     node = cu->nodes[node].parent)
		if (node_contains(cu, &cu->nodes[node], a))
			return node;
	return NO_NODE;
}

static const char *cu_file(struct sl_cu *cu, uint32_t idx)
{
	if (!cu->files_tried) {
		cu->files_tried = true;
		if (dwarf_getsrcfiles(&cu->die, &cu->files, &cu->nfiles) != 0)
			cu->files = NULL;
	}
	if (!cu->files || idx >= cu->nfiles)
		return NULL;
	return dwarf_filesrc(cu->files, idx, NULL, NULL);
}

static const char *node_name(const struct sl_cu *cu, struct sl_node *nd)
{
	Dwarf_Die die;

	if (!nd->named) {
		nd->named = true;
		if (dwarf_offdie(dwarf_cu_getdwarf(cu->die.cu), nd->off, &die)) {
			int line;

			nd->name = die_function_name(&die);
			/* Both integrate abstract_origin and specification:
			 * an inlined or out-of-line instance has its
			 * definition's. */
			nd->decl_file = die_decl_file(&die);
			if (dwarf_decl_line(&die, &line) == 0 && line > 0)
				nd->decl_line = (uint32_t)line;
		}
	}
	return nd->name;
}

/* libdw hands out file names as the line table spells them; a relative one
 * is relative to the CU's compilation directory. */
static const char *cu_dir(const struct sl_cu *cu, const char *file)
{
	return file && file[0] != '/' ? cu->comp_dir : NULL;
}

int stoke_srcline_lookup(struct stoke_srcline *sl, uint64_t addr, struct stoke_srcframe *frames,
			 size_t max)
{
	struct stoke_srcframe chain[MAX_CHAIN];
	Dwarf_Die *cudie;
	Dwarf_Addr bias;
	Dwarf_Line *line;
	struct sl_cu *cu;
	uint32_t node;
	size_t n = 0;
	int r, lineno;
	uint64_t a;

	if (max == 0)
		return 0;
	cudie = dwfl_module_addrdie(sl->mod, addr, &bias);
	if (!cudie)
		return 0;
	a = addr - bias;
	r = get_cu(sl, cudie, &cu);
	if (r < 0)
		return r;
	if (!cu_covers(cu, a))
		return 0;
	chain[0] = (struct stoke_srcframe){ 0 };
	line = cu_line(cu, a);
	if (line && dwarf_lineno(line, &lineno) == 0 && lineno > 0) {
		chain[0].file = dwarf_linesrc(line, NULL, NULL);
		chain[0].line = (uint32_t)lineno;
		chain[0].dir = cu_dir(cu, chain[0].file);
	} else {
		/* No line row (startup code built without -g lines): the
		 * CU's own name still says where the code comes from. */
		chain[0].file = dwarf_diename(&cu->die);
	}
	node = cu->nranges ? find_node(cu, a) : NO_NODE;
	if (node == NO_NODE) {
		/* Neither a line nor a function (assembly in the CU's range,
		 * past its line table): nothing DWARF says about a, and
		 * addr2line prints ??:? there, not the CU's name. */
		if (!chain[0].line)
			return 0;
		frames[0] = chain[0];
		return 1;
	}
	/* Innermost first; past MAX_CHAIN, the innermost frames slide out so
	 * that the physical function stays last. */
	for (;;) {
		const struct sl_node *nd = &cu->nodes[node];

		chain[n].function = node_name(cu, &cu->nodes[node]);
		chain[n].decl_file = nd->decl_file;
		chain[n].decl_dir = cu_dir(cu, nd->decl_file);
		chain[n++].decl_line = nd->decl_line;
		if (!nd->inlined || nd->parent == NO_NODE)
			break;
		if (n == MAX_CHAIN) {
			memmove(chain, chain + 1, (MAX_CHAIN - 1) * sizeof(*chain));
			n--;
		}
		/* The caller's location is this inlined call's site. */
		chain[n] = (struct stoke_srcframe){
			.file = cu_file(cu, nd->call_file),
			.line = nd->call_line,
		};
		chain[n].dir = cu_dir(cu, chain[n].file);
		node = nd->parent;
	}
	if (n > max) {
		memmove(chain, chain + (n - max), max * sizeof(*chain));
		n = max;
	}
	memcpy(frames, chain, n * sizeof(*chain));
	return (int)n;
}
