/*
 * The SVG flamegraph writer (see svg.h and FORMATS.md "SVG flamegraph").
 *
 * The samples are merged into a tree by frame *name* (siblings with the
 * same display name are one box, as flamegraph.pl does), children sorted
 * bytewise by name, and laid out in sample units: a box's x and width are
 * its offset and weight, scaled to pixels when written. Boxes narrower than
 * minwidth pixels are not written, nor their children.
 *
 * Every box is a <g> whose first child is <title>NAME (N samples, P%)</title>,
 * so tooltips work without script; the inline script (no network access)
 * adds hover details, click-to-zoom with dimmed ancestors and Reset Zoom,
 * regex search with "Matched: X%", and keeps zoom and search in the URL
 * (?x=&y= and ?s=). The script reads each box's sample offset/width from
 * fg:x / fg:w attributes, so it needs no data other than the SVG itself.
 */
#include "formats/svg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/escape.h"
#include "formats/folded.h"
#include "common/hashmap.h"
#include "common/util.h"

#define FRAME_HEIGHT 16
#define FONT_SIZE 12
#define FONT_WIDTH 0.59 /* average glyph width / font size, as flamegraph.pl */
#define XPAD 10
#define NAME_MAX_LEN 4096

struct node {
	uint32_t name;        /* offset into names pool */
	uint32_t parent;      /* node index; root is 0 */
	uint32_t first_child, next_sibling; /* node index + 1, 0 = none */
	uint32_t depth;
	uint8_t kind;
	bool inlined;
	uint64_t value;       /* samples in this subtree */
	uint64_t x;           /* offset in samples, after layout */
};

struct svg {
	const struct stoke_profile *p;
	const struct stoke_output_opts *opts;
	struct node *nodes;
	size_t nnodes, nodes_cap;
	char *names;          /* pool of NUL-terminated names */
	size_t names_len, names_cap;
	uint32_t *frame_name; /* per frame id: offset + 1 into names */
	struct stoke_hashmap index; /* (parent, name) -> node index + 1 */
	uint32_t *path;
	size_t path_cap;
	uint32_t max_depth;
	double width, scale, minwidth;
	/* differential mode: per node, the change in its share of all samples
	 * against a base profile (new share - base share), and the largest
	 * magnitude, which sets the colour scale */
	double *delta;
	double max_delta;
};

static uint64_t child_hash(uint32_t parent, const char *name)
{
	return stoke_hash_u64(stoke_hash_bytes(STOKE_HASH_INIT, name, strlen(name)) ^ parent);
}

static int name_of_frame(struct svg *g, uint32_t frame, uint32_t *ret)
{
	char buf[NAME_MAX_LEN];
	size_t n;

	if (!g->frame_name[frame]) {
		stoke_frame_display(g->p, stoke_profile_get_frame(g->p, frame), buf, sizeof(buf));
		n = strlen(buf) + 1;
		if (g->names_len + n > UINT32_MAX - 1 ||
		    STOKE_GROW(g->names, g->names_cap, g->names_len + n) < 0)
			return -ENOMEM;
		memcpy(g->names + g->names_len, buf, n);
		g->frame_name[frame] = (uint32_t)g->names_len + 1;
		g->names_len += n;
	}
	*ret = g->frame_name[frame] - 1;
	return 0;
}

static int child(struct svg *g, uint32_t parent, uint32_t frame, uint32_t *ret)
{
	const struct stoke_pframe *f = stoke_profile_get_frame(g->p, frame);
	struct stoke_hashmap_iter it;
	uint32_t name, e;
	uint64_t h;
	int r;

	r = name_of_frame(g, frame, &name);
	if (r >= 0)
		r = stoke_hashmap_reserve(&g->index, 1);
	if (r < 0)
		return r;
	h = child_hash(parent, g->names + name);
	for (e = stoke_hashmap_first(&g->index, h, &it); e; e = stoke_hashmap_next(&g->index, &it)) {
		if (g->nodes[e - 1].parent == parent &&
		    !strcmp(g->names + g->nodes[e - 1].name, g->names + name)) {
			*ret = e - 1;
			return 0;
		}
	}
	if (STOKE_GROW(g->nodes, g->nodes_cap, g->nnodes + 1) < 0)
		return -ENOMEM;
	g->nodes[g->nnodes] = (struct node){
		.name = name,
		.parent = parent,
		.depth = g->nodes[parent].depth + 1,
		.kind = f->kind,
		.inlined = f->inlined,
	};
	g->max_depth = STOKE_MAX(g->max_depth, g->nodes[g->nnodes].depth);
	stoke_hashmap_put(&g->index, h, (uint32_t)g->nnodes + 1);
	*ret = (uint32_t)g->nnodes++;
	return 0;
}

static int build(struct svg *g)
{
	size_t nstacks = stoke_profile_nstacks(g->p), n;
	const struct stoke_psample *s = stoke_profile_samples(g->p, &n);
	uint64_t *weight;
	int r = 0;

	weight = calloc(nstacks + 1, sizeof(*weight));
	g->frame_name = calloc(stoke_profile_nframes(g->p) + 1, sizeof(*g->frame_name));
	if (!weight || !g->frame_name || STOKE_GROW(g->nodes, g->nodes_cap, 1) < 0 ||
	    STOKE_GROW(g->names, g->names_cap, 4) < 0) {
		free(weight);
		return -ENOMEM;
	}
	memcpy(g->names, "all", 4);
	g->names_len = 4;
	g->nodes[0] = (struct node){ .name = 0 };
	g->nnodes = 1;
	for (size_t i = 0; i < n; i++)
		weight[s[i].stack] += s[i].weight;
	for (uint32_t st = 0; st <= nstacks && r >= 0; st++) {
		size_t depth;
		uint32_t node = 0;

		if (!weight[st])
			continue;
		depth = stoke_profile_stack_frames(g->p, st, NULL, 0);
		if (STOKE_GROW(g->path, g->path_cap, depth + 1) < 0) {
			r = -ENOMEM;
			break;
		}
		stoke_profile_stack_frames(g->p, st, g->path, depth);
		g->nodes[0].value += weight[st];
		for (size_t i = depth; i-- > 0 && r >= 0;) {
			r = child(g, node, g->path[i], &node);
			if (r >= 0)
				g->nodes[node].value += weight[st];
		}
	}
	free(weight);
	return r;
}

static int cmp_child(const void *a, const void *b, void *arg)
{
	const struct svg *g = arg;
	const struct node *x = &g->nodes[*(const uint32_t *)a], *y = &g->nodes[*(const uint32_t *)b];

	return strcmp(g->names + x->name, g->names + y->name);
}

/* Link children in name order and give every node its x. */
static int layout(struct svg *g)
{
	uint32_t *order, *start;
	size_t *count;
	int r = 0;

	order = malloc(g->nnodes * sizeof(*order));
	start = calloc(g->nnodes + 1, sizeof(*start));
	count = calloc(g->nnodes + 1, sizeof(*count));
	if (!order || !start || !count) {
		r = -ENOMEM;
		goto out;
	}
	/* bucket children by parent, then sort each bucket by name */
	for (size_t i = 1; i < g->nnodes; i++)
		count[g->nodes[i].parent]++;
	for (size_t i = 0, acc = 0; i < g->nnodes; i++) {
		start[i] = (uint32_t)acc;
		acc += count[i];
		count[i] = 0;
	}
	for (size_t i = 1; i < g->nnodes; i++) {
		uint32_t par = g->nodes[i].parent;

		order[start[par] + count[par]++] = (uint32_t)i;
	}
	for (size_t i = 0; i < g->nnodes; i++) {
		uint64_t x = g->nodes[i].x;

		if (count[i] > 1)
			qsort_r(order + start[i], count[i], sizeof(*order), cmp_child, g);
		/* parents precede children (index order), so x is final here */
		for (size_t k = 0; k < count[i]; k++) {
			struct node *c = &g->nodes[order[start[i] + k]];

			c->x = x;
			x += c->value;
			c->next_sibling = k + 1 < count[i] ? order[start[i] + k + 1] + 1 : 0;
		}
		g->nodes[i].first_child = count[i] ? order[start[i]] + 1 : 0;
	}
out:
	free(order);
	free(start);
	free(count);
	return r;
}

/* A warm colour from the name, as flamegraph.pl's "hot" palette; kernel,
 * JIT and inlined frames get their own hues. Deterministic per name. */
static void color(const struct node *n, const char *name, char *buf, size_t size)
{
	uint64_t h = stoke_hash_bytes(STOKE_HASH_INIT, name, strlen(name));
	unsigned v1 = (unsigned)(h & 0xff), v2 = (unsigned)(h >> 8 & 0xff);

	if (n->kind == STOKE_PFRAME_KERNEL)
		snprintf(buf, size, "rgb(%u,%u,%u)", 200 + v1 % 55, 120 + v2 % 60, 40);
	else if (n->kind == STOKE_PFRAME_JIT)
		snprintf(buf, size, "rgb(%u,%u,%u)", 60 + v1 % 60, 190 + v2 % 60, 60);
	else if (n->inlined)
		snprintf(buf, size, "rgb(%u,%u,%u)", 80 + v1 % 50, 200 + v2 % 50, 200 + v2 % 50);
	else if (n->kind == STOKE_PFRAME_SYNTHETIC)
		snprintf(buf, size, "rgb(%u,%u,%u)", 160 + v1 % 40, 160 + v1 % 40, 180);
	else
		snprintf(buf, size, "rgb(%u,%u,%u)", 205 + v1 % 50, v2 * 230 / 255, 55);
}

/* The label shown in a box: the name cut to what fits, "..' appended. */
static void write_label(FILE *out, const char *name, double width)
{
	size_t fit = (size_t)(width / (FONT_SIZE * FONT_WIDTH)), chars = 0, i = 0, n;
	const unsigned char *u = (const unsigned char *)name;
	uint32_t cp;
	char *cut;

	n = strlen(name);
	if (fit < 3)
		return;
	/* count characters, not bytes, and never split a UTF-8 sequence */
	while (i < n && chars < fit) {
		size_t len = stoke_utf8_decode(u + i, n - i, &cp);

		i += len ? len : 1;
		chars++;
	}
	if (i >= n) {
		stoke_xml_text(out, name);
		return;
	}
	i = 0;
	for (size_t c = 0; c + 2 < fit && i < n; c++) {
		size_t len = stoke_utf8_decode(u + i, n - i, &cp);

		i += len ? len : 1;
	}
	cut = strndup(name, i);
	if (cut) {
		stoke_xml_text(out, cut);
		fputs("..", out);
	}
	free(cut);
}

/* Differential colour: red where the share grew, blue where it shrank, the
 * more saturated the larger the change (white for none). */
static void diff_color(double delta, double max, char *buf, size_t size)
{
	double d = max > 0 ? delta / max : 0;
	unsigned fade = (unsigned)(220.0 * (1.0 - (d < 0 ? -d : d)));

	if (d >= 0)
		snprintf(buf, size, "rgb(255,%u,%u)", fade + 35 * (d == 0), fade + 35 * (d == 0));
	else
		snprintf(buf, size, "rgb(%u,%u,255)", fade, fade);
}

static void write_box(struct svg *g, const struct node *n, double height, FILE *out)
{
	const char *name = g->names + n->name;
	double x = XPAD + (double)n->x * g->scale, w = (double)n->value * g->scale, y;
	double total = (double)g->nodes[0].value;
	char fill[32];
	size_t idx = (size_t)(n - g->nodes);

	if (g->opts->inverted)
		y = FONT_SIZE * 3 + (double)n->depth * FRAME_HEIGHT;
	else
		y = height - (FONT_SIZE * 2 + 10) - (double)(n->depth + 1) * FRAME_HEIGHT;
	if (g->delta)
		diff_color(g->delta[idx], g->max_delta, fill, sizeof(fill));
	else
		color(n, name, fill, sizeof(fill));
	fputs("<g class=\"f\"><title>", out);
	stoke_xml_text(out, name);
	fprintf(out, " (%" PRIu64 " samples, %.2f%%", n->value,
		total > 0 ? 100.0 * (double)n->value / total : 0.0);
	if (g->delta)
		fprintf(out, ", %+.2f points", 100.0 * g->delta[idx]);
	fputs(")</title>", out);
	fprintf(out,
		"<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\" rx=\"2\" "
		"ry=\"2\" fg:x=\"%" PRIu64 "\" fg:w=\"%" PRIu64 "\" fg:d=\"%" PRIu32 "\"/>",
		x, y, w, FRAME_HEIGHT - 1, fill, n->x, n->value, n->depth);
	fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">", x + 3, y + FRAME_HEIGHT - 5.0);
	write_label(out, name, w - 6);
	fputs("</text></g>\n", out);
}

/* Depth-first in layout order, skipping subtrees below minwidth. */
static int write_boxes(struct svg *g, double height, FILE *out)
{
	uint32_t *stack = NULL;
	size_t n = 0, cap = 0;

	if (STOKE_GROW(stack, cap, 1) < 0)
		return -ENOMEM;
	stack[n++] = 0;
	while (n) {
		const struct node *node = &g->nodes[stack[--n]];
		size_t first = n;

		if ((double)node->value * g->scale < g->minwidth)
			continue;
		write_box(g, node, height, out);
		for (uint32_t c = node->first_child; c; c = g->nodes[c - 1].next_sibling) {
			if (STOKE_GROW(stack, cap, n + 1) < 0) {
				free(stack);
				return -ENOMEM;
			}
			stack[n++] = c - 1;
		}
		/* reverse so the first child is written first */
		for (size_t a = first, b = n; a + 1 < b; a++, b--) {
			uint32_t t = stack[a];

			stack[a] = stack[b - 1];
			stack[b - 1] = t;
		}
	}
	free(stack);
	return 0;
}

static const char script[] =
	"<script type=\"text/ecmascript\"><![CDATA[\n"
	"'use strict';\n"
	"var NS='urn:stoke:flamegraph', svg, details, matchedtxt, unzoombtn, searchbtn;\n"
	"var W, XPAD=" "10" ", FONTW=" "7.08" ", MINW, total, frames=[], zoomed=null, searching=null;\n"
	"function init(){svg=document.documentElement;details=document.getElementById('details').firstChild;\n"
	" matchedtxt=document.getElementById('matched');unzoombtn=document.getElementById('unzoom');\n"
	" searchbtn=document.getElementById('search');W=+svg.getAttribute('fg:width');MINW=+svg.getAttribute('fg:minwidth');\n"
	" var gs=document.getElementsByClassName('f');\n"
	" for(var i=0;i<gs.length;i++){var g=gs[i],r=g.getElementsByTagName('rect')[0],t=g.getElementsByTagName('title')[0].textContent;\n"
	"  frames.push({g:g,r:r,t:g.getElementsByTagName('text')[0],x:+r.getAttributeNS(NS,'x'),w:+r.getAttributeNS(NS,'w'),d:+r.getAttributeNS(NS,'d'),\n"
	"   name:t.replace(/ \\([^(]*\\)$/,''),title:t,fill:r.getAttribute('fill')});}\n"
	" total=frames.length?frames[0].w:0;\n"
	" frames.forEach(function(f){f.g.addEventListener('mouseover',function(){details.nodeValue='Function: '+f.title;});\n"
	"  f.g.addEventListener('mouseout',function(){details.nodeValue=' ';});\n"
	"  f.g.addEventListener('click',function(){zoom(f);});});\n"
	" unzoombtn.addEventListener('click',function(){unzoom();});\n"
	" searchbtn.addEventListener('click',function(){search_prompt();});\n"
	" var p=new URLSearchParams(document.location.search);\n"
	" if(p.has('x')&&p.has('y')){var x=+p.get('x'),d=+p.get('y');frames.forEach(function(f){if(f.x===x&&f.d===d)zoom(f);});}\n"
	" if(p.get('s'))search(p.get('s'));}\n"
	"function seturl(){var p=new URLSearchParams();if(zoomed){p.set('x',zoomed.x);p.set('y',zoomed.d);}\n"
	" if(searching)p.set('s',searching);var q=p.toString();\n"
	" try{history.replaceState(null,'',document.location.pathname+(q?'?'+q:''));}catch(e){}}\n"
	"function label(f,w){var n=Math.floor((w-6)/FONTW);if(n<3)return '';\n"
	" var c=Array.from(f.name);return c.length<=n?f.name:c.slice(0,n-2).join('')+'..';}\n"
	"function place(f,x,w,show){f.g.style.display=show?'':'none';if(!show)return;\n"
	" f.r.setAttribute('x',x.toFixed(1));f.r.setAttribute('width',w.toFixed(1));\n"
	" f.t.setAttribute('x',(x+3).toFixed(2));f.t.textContent=label(f,w);}\n"
	"function zoom(z){zoomed=z;unzoombtn.classList.remove('hide');var sc=(W-2*XPAD)/z.w;\n"
	" frames.forEach(function(f){var anc=f.d<z.d&&f.x<=z.x&&f.x+f.w>=z.x+z.w;\n"
	"  var inside=f.d>=z.d&&f.x>=z.x&&f.x+f.w<=z.x+z.w;f.g.classList.toggle('parent',anc);\n"
	"  if(anc)place(f,XPAD,W-2*XPAD,true);else if(inside){var w=f.w*sc;place(f,XPAD+(f.x-z.x)*sc,w,w>=MINW);}\n"
	"  else place(f,0,0,false);});seturl();}\n"
	"function unzoom(){zoomed=null;unzoombtn.classList.add('hide');var sc=(W-2*XPAD)/total;\n"
	" frames.forEach(function(f){f.g.classList.remove('parent');var w=f.w*sc;place(f,XPAD+f.x*sc,w,w>=MINW);});seturl();}\n"
	"function search_prompt(){if(searching){reset_search();seturl();return;}\n"
	" var t=prompt('Enter a search term (regexp allowed, eg: ^ext4_)','');if(t)search(t);}\n"
	"function reset_search(){searching=null;frames.forEach(function(f){f.r.setAttribute('fill',f.fill);});\n"
	" matchedtxt.classList.add('hide');searchbtn.classList.remove('show');}\n"
	"function search(term){var re;try{re=new RegExp(term);}catch(e){return;}reset_search();searching=term;\n"
	" var spans=[];frames.forEach(function(f){if(re.test(f.name)){f.r.setAttribute('fill','rgb(230,0,230)');spans.push([f.x,f.x+f.w]);}});\n"
	" spans.sort(function(a,b){return a[0]-b[0]||b[1]-a[1];});\n"
	" var m=0,end=-1;spans.forEach(function(s){if(s[0]>=end){m+=s[1]-s[0];end=s[1];}else if(s[1]>end){m+=s[1]-end;end=s[1];}});\n"
	" var pct=total?100*m/total:0;matchedtxt.firstChild.nodeValue='Matched: '+(pct===100?'100':pct.toFixed(1))+'%';\n"
	" matchedtxt.classList.remove('hide');searchbtn.classList.add('show');seturl();}\n"
	"window.addEventListener('load',init);\n"
	"]]></script>\n";

static void write_header(struct svg *g, double height, FILE *out)
{
	const char *cmd = stoke_profile_string(g->p, stoke_profile_cmeta(g->p)->command);
	/* By default the title says what was profiled: the command line. */
	const char *title = g->opts->title ? g->opts->title
			    : cmd && *cmd  ? cmd
			    : g->opts->inverted ? "Icicle Graph"
						: "Flame Graph";

	fputs("<?xml version=\"1.0\" standalone=\"no\"?>\n", out);
	fprintf(out,
		"<svg version=\"1.1\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
		"xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" "
		"xmlns:fg=\"urn:stoke:flamegraph\" fg:width=\"%.0f\" fg:minwidth=\"%g\">\n",
		g->width, height, g->width, height, g->width, g->minwidth);
	fputs("<style type=\"text/css\">\n"
	      "text{font-family:Verdana,sans-serif;font-size:12px;fill:rgb(0,0,0)}\n"
	      "#title{text-anchor:middle;font-size:17px}\n"
	      "#search,#unzoom{cursor:pointer}\n"
	      "#search.show{fill:rgb(230,0,230)}\n"
	      ".f:hover rect{stroke:black;stroke-width:0.5;cursor:pointer}\n"
	      ".parent{opacity:0.5}\n"
	      ".hide{display:none}\n"
	      "#matched{text-anchor:end}\n"
	      "</style>\n",
	      out);
	fputs(script, out);
	fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"rgb(248,248,248)\"/>\n",
		g->width, height);
	fprintf(out, "<text id=\"title\" x=\"%.1f\" y=\"24\">", g->width / 2);
	stoke_xml_text(out, title);
	fputs("</text>\n", out);
	fprintf(out, "<text id=\"details\" x=\"%d\" y=\"%.0f\"> </text>\n", XPAD, height - 17);
	fprintf(out, "<text id=\"unzoom\" class=\"hide\" x=\"%d\" y=\"24\">Reset Zoom</text>\n", XPAD);
	fprintf(out, "<text id=\"search\" x=\"%.0f\" y=\"24\" text-anchor=\"end\">Search</text>\n",
		g->width - XPAD);
	fprintf(out, "<text id=\"matched\" class=\"hide\" x=\"%.0f\" y=\"%.0f\"> </text>\n",
		g->width - XPAD, height - 17);
}

static int svg_prepare(struct svg *g)
{
	int r;

	g->width = g->opts->width ? g->opts->width : 1200;
	g->minwidth = g->opts->minwidth > 0 ? g->opts->minwidth : 0.1;
	r = build(g);
	if (r >= 0)
		r = layout(g);
	return r;
}

static int svg_emit(struct svg *g, FILE *out)
{
	double height;
	int r;

	g->scale = g->nodes[0].value ? (g->width - 2 * XPAD) / (double)g->nodes[0].value : 0;
	height = (double)(g->max_depth + 1) * FRAME_HEIGHT + FONT_SIZE * 3 + FONT_SIZE * 2 + 10;
	write_header(g, height, out);
	fputs("<g id=\"frames\">\n", out);
	r = write_boxes(g, height, out);
	fputs("</g>\n</svg>\n", out);
	if (r >= 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
	return r;
}

static void svg_free(struct svg *g)
{
	free(g->nodes);
	free(g->names);
	free(g->frame_name);
	stoke_hashmap_free(&g->index);
	free(g->path);
	free(g->delta);
}

int stoke_svg_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		    FILE *out)
{
	struct svg g = { .p = p, .opts = opts };
	int r = svg_prepare(&g);

	if (r >= 0)
		r = svg_emit(&g, out);
	svg_free(&g);
	return r;
}

/* The node of b under parent with this name, or -1. */
static long find_child(const struct svg *b, uint32_t parent, const char *name)
{
	struct stoke_hashmap_iter it;
	uint32_t e;

	for (e = stoke_hashmap_first(&b->index, child_hash(parent, name), &it); e;
	     e = stoke_hashmap_next(&b->index, &it))
		if (b->nodes[e - 1].parent == parent && !strcmp(b->names + b->nodes[e - 1].name, name))
			return (long)e - 1;
	return -1;
}

/* For every node of g, its share minus the share of the same path (root to
 * node, by name) in b. Nodes come parents first, so a node's match is found
 * under its parent's match. */
static int diff_deltas(struct svg *g, const struct svg *b)
{
	long *match = malloc(g->nnodes * sizeof(*match));
	double tg = (double)g->nodes[0].value, tb = (double)b->nodes[0].value;

	g->delta = calloc(g->nnodes, sizeof(*g->delta));
	if (!match || !g->delta) {
		free(match);
		return -ENOMEM;
	}
	match[0] = 0;
	for (size_t i = 0; i < g->nnodes; i++) {
		const struct node *n = &g->nodes[i];
		double share = tg > 0 ? (double)n->value / tg : 0, base = 0;
		double mag;

		if (i > 0) {
			long pm = match[n->parent];

			match[i] = pm < 0 ? -1 : find_child(b, (uint32_t)pm, g->names + n->name);
		}
		if (match[i] >= 0 && tb > 0)
			base = (double)b->nodes[match[i]].value / tb;
		g->delta[i] = share - base;
		mag = g->delta[i] < 0 ? -g->delta[i] : g->delta[i];
		if (mag > g->max_delta)
			g->max_delta = mag;
	}
	free(match);
	return 0;
}

int stoke_svg_write_diff(const struct stoke_profile *base, const struct stoke_profile *p,
			 const struct stoke_output_opts *opts, FILE *out)
{
	struct svg g = { .p = p, .opts = opts }, b = { .p = base, .opts = opts };
	int r = svg_prepare(&g);

	if (r >= 0)
		r = build(&b);
	if (r >= 0)
		r = diff_deltas(&g, &b);
	if (r >= 0)
		r = svg_emit(&g, out);
	svg_free(&g);
	svg_free(&b);
	return r;
}
