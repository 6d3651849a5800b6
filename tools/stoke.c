/*
 * stoke: the command-line interface. This file only dispatches to the
 * subcommands (tools/cmd-*.c) and holds the helpers they share.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "common/log.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("stoke: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'stoke %s --help')\n", cmd);
	return EXIT_USAGE;
}

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "record", cmd_record, "sample a process or a command and write its profile" },
	{ "report", cmd_report, "write a stored profile (pprof or run directory) in any format" },
	{ "symbolize", cmd_symbolize, "name addresses of an ELF file or a process (like addr2line)" },
	{ "top", cmd_top, "the hottest functions of a stored profile" },
	{ "suite", cmd_suite, "run scenarios repeatedly under the profiler, with statistics" },
	{ "diff", cmd_diff, "compare two stored profiles; a regression gate for CI" },
	{ "dump", cmd_dump, "print every Python thread's current stack of a CPython process" },
	{ "serve", cmd_serve, "a local web dashboard over run directories and suites" },
	{ "annotate", cmd_annotate, "a function's source lines with their samples" },
	{ "attach", cmd_attach, "ask stoked to profile a process; prints the session id" },
	{ "detach", cmd_detach, "end a stoked session (writing its profile)" },
	{ "list", cmd_list, "stoked's sessions" },
	{ "status", cmd_status, "stoked's status, or one session's" },
	{ "snapshot", cmd_snapshot, "write a stoked session's profile now; it keeps running" },
	{ "shutdown", cmd_shutdown, "stop stoked (every session writes its profile)" },
};

static void main_usage(FILE *f)
{
	fputs("usage: stoke COMMAND [ARGS...]\n\ncommands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fputs("  help [CMD] show this help, or CMD's\n"
	      "\n'stoke COMMAND --help' describes a command's options.\n",
	      f);
}

int main(int argc, char **argv)
{
	stoke_log_set_prog("stoke");
	/* Symbolization must never wait on the network during a recording:
	 * debuginfod is opt-in through STOKE_DEBUGINFOD_URLS. */
	if (getenv("STOKE_DEBUGINFOD_URLS"))
		setenv("DEBUGINFOD_URLS", getenv("STOKE_DEBUGINFOD_URLS"), 1);
	else
		unsetenv("DEBUGINFOD_URLS");
	if (argc < 2) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") && argc > 2) {
		/* `stoke help CMD` is `stoke CMD --help`, as with git */
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
			char *sub[] = { argv[2], (char *)"--help", NULL };

			if (!strcmp(argv[2], commands[i].name))
				return commands[i].run(2, sub);
		}
		fprintf(stderr, "stoke: unknown command '%s' (see 'stoke help')\n", argv[2]);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		main_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("stoke %s\n", STOKE_VERSION);
		return 0;
	}
	fprintf(stderr, "stoke: unknown command '%s' (see 'stoke help')\n", argv[1]);
	return EXIT_USAGE;
}
