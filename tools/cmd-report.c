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
#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/atomicfile.h"
#include "tools/cli.h"
#include "formats/load.h"
#include "common/log.h"
#include "formats/output.h"
#include "formats/pprof.h"
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
	      "  -f, --format FORMAT  folded, svg, speedscope, pstats, txt, pprof or\n"
	      "                       callgrind (default: from -o's extension; folded\n"
	      "                       on stdout)\n"
	      "  -o, --output FILE    output file (default - for stdout)\n"
	      "      --per-thread     folded: prefix stacks with comm-PID/TID\n"
	      "      --lines          one frame per source line, not per function\n"
	      "      --timeline       pprof: one sample per sample, with wall-clock time\n"
	      "                       labels (default: one per stack and thread)\n"
	      "      --title TEXT     svg: the title\n"
	      "      --width PX       svg: image width (default 1200)\n"
	      "      --inverted       svg: icicle graph (root at the top)\n"
	      "      --minwidth PX    svg: omit boxes narrower than this (default 0.1)\n",
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
	       OPT_TIMELINE };
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
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct stoke_output_opts oopts;
	struct stoke_atomic_file af;
	struct stoke_profile *p = NULL;
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
						 "pstats, txt, pprof, callgrind)",
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
	r = stoke_output_write_atomic(p, format, &oopts, &af);
	if (r < 0)
		log_error("cannot write '%s': %s", output, stoke_atomic_strerror(r));
	stoke_profile_free(p);
	return r < 0 ? 1 : 0;
}
