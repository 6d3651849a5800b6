/*
 * `stoke report INPUT [-f FORMAT] [-o FILE] [options]`: re-render a stored
 * profile offline, without the target.
 *
 * INPUT is a pprof file stoke wrote (profile.pb.gz) or a run directory
 * (its profile.pb.gz is read); folded stacks and `perf script` output are
 * read too, from a file or stdin ("-"), as stackcollapse would. The pprof carries the whole model, so the
 * output is byte-identical to what `stoke record` wrote in that format with
 * the same options.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "tools/cli.h"
#include "formats/load.h"
#include "common/log.h"
#include "formats/output.h"
#include "formats/pprof.h"
#include "formats/resource.h"
#include "common/util.h"

static void usage(FILE *f)
{
	fputs("usage: stoke report INPUT [-f FORMAT] [-o FILE] [options]\n"
	      "\n"
	      "Write a stored profile (profile.pb.gz or a run directory) in another\n"
	      "format, exactly as `stoke record` would have written it. INPUT may\n"
	      "also be folded stacks or `perf script` output, and - reads stdin:\n"
	      "  perf script | stoke report - -o flame.svg\n"
	      "\n"
	      "  -f, --format FORMAT  folded, svg, speedscope, pstats, txt, pprof,\n"
	      "                       callgrind, html (a self-contained report) or\n"
	      "                       tree (a call tree for the terminal) (default:\n"
	      "                       from -o's extension; folded on stdout)\n"
	      "  -o, --output FILE    output file (default - for stdout)\n"
	      "      --per-thread     folded: prefix stacks with comm-PID/TID\n"
	      "      --lines          one frame per source line, not per function\n"
	      "      --timeline       pprof: one sample per sample, with wall-clock time\n"
	      "                       labels (default: one per stack and thread)\n"
	      "      --title TEXT     svg: the title\n"
	      "      --width PX       svg: image width (default 1200)\n"
	      "      --inverted       svg: icicle graph (root at the top)\n"
	      "      --minwidth PX    svg: omit boxes narrower than this (default 0.1)\n"
	      "      --threshold PCT  tree: fold away frames under PCT%% of the samples\n"
	      "                       (default 1; 0 shows every frame)\n"
	      "      --color WHEN     tree: auto (default: on a terminal, unless\n"
	      "                       NO_COLOR is set), always or never\n",
	      f);
}

#define die_usage(...) cli_usage_error("report", __VA_ARGS__)

int cli_parse_svg_option(int which, const char *arg, struct stoke_output_opts *o)
{
	char *end;
	double v;

	switch (which) {
	case CLI_SVG_TITLE:
		o->title = arg;
		return 0;
	case CLI_SVG_INVERTED:
		o->inverted = true;
		return 0;
	case CLI_SVG_WIDTH:
		errno = 0;
		v = strtod(arg, &end);
		if (errno || *end || end == arg || v != floor(v) || v < 100 || v > 100000)
			return -EINVAL;
		o->width = (unsigned)v;
		return 0;
	case CLI_SVG_MINWIDTH:
		errno = 0;
		v = strtod(arg, &end);
		if (errno || *end || end == arg || !(v >= 0) || v > 10000)
			return -EINVAL;
		o->minwidth = v;
		return 0;
	default:
		return -EINVAL;
	}
}

/* The "resources" series of run.json (formats/resource.h) back into the
 * model: point times are clock_ns + whole milliseconds, so they come back
 * exact and the HTML report is the one record wrote. */
static int resources_from_json(struct json_object *res, struct stoke_rseries *rs)
{
	struct json_object *v, *series, *t, *rss, *cpu;
	int64_t clock_ns;
	size_t n;

	if (!json_object_object_get_ex(res, "clock_ns", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -EINVAL;
	clock_ns = json_object_get_int64(v);
	if (!json_object_object_get_ex(res, "interval_ms", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return -EINVAL;
	rs->interval_ns = (uint64_t)json_object_get_int64(v) * 1000000;
	if (!json_object_object_get_ex(res, "cpu_ns", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return -EINVAL;
	rs->cpu_ns = (uint64_t)json_object_get_int64(v);
	if (!json_object_object_get_ex(res, "series", &series) ||
	    !json_object_object_get_ex(series, "t_s", &t) ||
	    !json_object_object_get_ex(series, "rss_bytes", &rss) ||
	    !json_object_object_get_ex(series, "cpu", &cpu) ||
	    !json_object_is_type(t, json_type_array) || !json_object_is_type(rss, json_type_array) ||
	    !json_object_is_type(cpu, json_type_array))
		return -EINVAL;
	n = json_object_array_length(t);
	if (json_object_array_length(rss) != n || json_object_array_length(cpu) != n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(t, i);
		struct json_object *b = json_object_array_get_idx(rss, i);
		struct json_object *c = json_object_array_get_idx(cpu, i);
		struct stoke_rpoint pt = { .procs = 1 };
		double ts;

		if (!(json_object_is_type(a, json_type_double) || json_object_is_type(a, json_type_int)) ||
		    !json_object_is_type(b, json_type_int) ||
		    !(json_object_is_type(c, json_type_double) || json_object_is_type(c, json_type_int)))
			return -EINVAL;
		ts = json_object_get_double(a);
		/* (a rotated profile's first point may be 1 ms before it) */
		if (!(ts >= -1 && ts < 1e9) || json_object_get_int64(b) < 0)
			return -EINVAL;
		pt.t_ns = (uint64_t)(clock_ns + (int64_t)llround(ts * 1000) * 1000000);
		pt.rss = (uint64_t)json_object_get_int64(b);
		pt.cpu = json_object_get_double(c);
		if (i && pt.t_ns < rs->points[i - 1].t_ns)
			return -EINVAL;
		if (stoke_rseries_add(rs, &pt) < 0)
			return -ENOMEM;
	}
	if (n)
		rs->mono_start_ns = rs->points[0].t_ns;
	return 0;
}

int cli_load_resources(const char *input, struct stoke_rseries *rs, const char **err)
{
	struct json_object *root, *res;
	char path[4096];
	struct stat st;
	int r = 0;

	*err = NULL;
	if (stat(input, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0; /* only a run directory has run.json */
	snprintf(path, sizeof(path), "%s/run.json", input);
	if (access(path, F_OK) < 0)
		return 0;
	root = json_object_from_file(path);
	if (!root) {
		*err = "run.json is not valid JSON";
		return -EINVAL;
	}
	/* schema 1 had no resources; null: none were recorded */
	if (json_object_object_get_ex(root, "resources", &res) && res) {
		if (!json_object_is_type(res, json_type_object))
			r = -EINVAL;
		else
			r = resources_from_json(res, rs);
		if (r < 0) {
			*err = "run.json has a malformed \"resources\" object";
			stoke_rseries_free(rs);
		}
	}
	json_object_put(root);
	return r < 0 ? r : (int)rs->n;
}

int cli_parse_tree_option(bool color, const char *arg, struct stoke_output_opts *o)
{
	char *end;
	double v;

	if (color) {
		if (!strcmp(arg, "auto"))
			o->color = STOKE_COLOR_AUTO;
		else if (!strcmp(arg, "always"))
			o->color = STOKE_COLOR_ALWAYS;
		else if (!strcmp(arg, "never"))
			o->color = STOKE_COLOR_NEVER;
		else
			return -EINVAL;
		return 0;
	}
	errno = 0;
	v = strtod(arg, &end);
	if (errno || *end || end == arg || !(v >= 0) || v > 100)
		return -EINVAL;
	o->min_percent = v;
	return 0;
}

static int load(const char *path, struct stoke_profile **ret)
{
	const char *err = NULL;
	int r = stoke_profile_load(path, ret, &err);

	if (r < 0)
		log_error("cannot read '%s': %s", path, err);
	return r;
}

int cmd_report(int argc, char **argv)
{
	enum { OPT_PER_THREAD = 256, OPT_TITLE, OPT_WIDTH, OPT_INVERTED, OPT_MINWIDTH, OPT_LINES,
	       OPT_TIMELINE, OPT_THRESHOLD, OPT_COLOR };
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "per-thread", no_argument, NULL, OPT_PER_THREAD },
		{ "title", required_argument, NULL, OPT_TITLE },
		{ "width", required_argument, NULL, OPT_WIDTH },
		{ "inverted", no_argument, NULL, OPT_INVERTED },
		{ "minwidth", required_argument, NULL, OPT_MINWIDTH },
		{ "lines", no_argument, NULL, OPT_LINES },
		{ "timeline", no_argument, NULL, OPT_TIMELINE },
		{ "threshold", required_argument, NULL, OPT_THRESHOLD },
		{ "color", required_argument, NULL, OPT_COLOR },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct stoke_output_opts oopts;
	struct stoke_atomic_file af;
	struct stoke_profile *p = NULL;
	struct stoke_rseries res = { 0 };
	const char *err = NULL;
	const char *output = "-";
	enum stoke_format format = STOKE_FORMAT_FOLDED;
	bool format_set = false;
	int c, r;

	stoke_output_opts_init(&oopts);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (stoke_format_from_name(optarg, &format) < 0) {
				if (stoke_format_hint(optarg))
					return die_usage("%s", stoke_format_hint(optarg));
				return die_usage("unknown format '%s' (folded, svg, speedscope, "
						 "pstats, txt, pprof, callgrind, html, tree)",
						 optarg);
			}
			format_set = true;
			break;
		case 'o':
			output = optarg;
			break;
		case OPT_PER_THREAD:
			oopts.per_thread = true;
			break;
		case OPT_LINES:
			oopts.lines = true;
			break;
		case OPT_TIMELINE:
			oopts.timeline = true;
			break;
		case OPT_THRESHOLD:
		case OPT_COLOR:
			if (cli_parse_tree_option(c == OPT_COLOR, optarg, &oopts) < 0)
				return die_usage("invalid value '%s' for --%s", optarg,
						 c == OPT_COLOR ? "color" : "threshold");
			break;
		case OPT_TITLE:
		case OPT_WIDTH:
		case OPT_INVERTED:
		case OPT_MINWIDTH:
			if (cli_parse_svg_option(c - OPT_TITLE, optarg, &oopts) < 0)
				return die_usage("invalid value '%s' for --%s", optarg,
						 longopts[c - OPT_PER_THREAD + 2].name);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (optopt && strchr("fo", optopt))
				return die_usage("option '-%c' needs an argument", optopt);
			return die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return die_usage("%s", optind < argc ? "give one INPUT" : "give the INPUT to report");
	if (!format_set && strcmp(output, "-") != 0 && stoke_format_from_path(output, &format) < 0)
		return die_usage("cannot tell the format of '%s' from its name (use -f FORMAT)",
				 output);
	/* The output is checked (its temporary created) before the input is
	 * read: a bad -o fails at once, whatever the input costs. */
	r = stoke_atomic_open(output, &af);
	if (r < 0) {
		log_error("cannot write '%s': %s", output, stoke_atomic_strerror(r));
		return 1;
	}
	if (load(argv[optind], &p) < 0) {
		stoke_atomic_abort(&af);
		return 1;
	}
	/* A run directory's resource timeline goes into the HTML report (the
	 * other formats do not read it). */
	if (format == STOKE_FORMAT_HTML && cli_load_resources(argv[optind], &res, &err) < 0) {
		log_error("cannot read '%s': %s", argv[optind], err);
		stoke_atomic_abort(&af);
		stoke_profile_free(p);
		return 1;
	}
	oopts.resources = res.n ? &res : NULL;
	r = stoke_output_write_atomic(p, format, &oopts, &af);
	if (r < 0)
		log_error("cannot write '%s': %s", output, stoke_atomic_strerror(r));
	stoke_rseries_free(&res);
	stoke_profile_free(p);
	return r < 0 ? 1 : 0;
}
