/*
 * `stoke serve [DIR...] [--port N] [--bind ADDR] [--speedscope DIR]`: a
 * local web dashboard over run directories and suites (tools/serve/).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/serve/serve.h"

#ifndef STOKE_SPEEDSCOPE_DIR
#define STOKE_SPEEDSCOPE_DIR "/usr/local/share/stoke/speedscope"
#endif

static void usage(FILE *f)
{
	fputs("usage: stoke serve [DIR...] [--port N] [--bind ADDR] [--speedscope DIR]\n"
	      "\n"
	      "A web dashboard over run directories and suites found in DIRs (default:\n"
	      "the current directory, searched 4 levels deep): runs with their top\n"
	      "functions, flame graph, timeline and call graph; suites' statistics;\n"
	      "comparisons with a regression gate; records and suites launched from the\n"
	      "page (written to the first DIR, run as you, and ended when serve exits).\n"
	      "Prints the URL to open; it carries a random token, without which every\n"
	      "request is refused.\n"
	      "\n"
	      "  -p, --port N          port (default 8470; 0: any free port)\n"
	      "      --bind ADDR       IPv4 address to listen on (default 127.0.0.1)\n"
	      "      --speedscope DIR  speedscope's static build (its npm package's\n"
	      "                        dist/release; default $STOKE_SPEEDSCOPE_DIR, or\n"
	      "                        " STOKE_SPEEDSCOPE_DIR ")\n",
	      f);
}

int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"port", required_argument, NULL, 'p'},
		{"bind", required_argument, NULL, 'b'},
		{"speedscope", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const here[] = {"."};
	struct serve_opts o = {.port = 8470};
	int c;

	o.speedscope = getenv("STOKE_SPEEDSCOPE_DIR");
	if (!o.speedscope) {
		o.speedscope = STOKE_SPEEDSCOPE_DIR;
#ifdef STOKE_SPEEDSCOPE_SRC
		/* Not installed yet: the source tree's copy (tests/readers). */
		if (access(STOKE_SPEEDSCOPE_DIR "/index.html", R_OK) < 0 &&
		    access(STOKE_SPEEDSCOPE_SRC "/index.html", R_OK) == 0)
			o.speedscope = STOKE_SPEEDSCOPE_SRC;
#endif
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		char *end;
		long v;

		switch (c) {
		case 'p':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 0 || v > 65535)
				return cli_usage_error("serve", "invalid port '%s'", optarg);
			o.port = (unsigned)v;
			break;
		case 'b':
			o.addr = optarg;
			break;
		case 's':
			o.speedscope = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		o.dirs = (const char *const *)(argv + optind);
		o.ndirs = (size_t)(argc - optind);
	} else {
		o.dirs = here;
		o.ndirs = 1;
	}
	return serve_run(&o);
}
