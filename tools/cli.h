/*
 * Shared by the stoke subcommands: one entry point per command file
 * (tools/cmd-NAME.c) and the helpers in stoke.c.
 */
#pragma once

#include <stdbool.h>

#define EXIT_USAGE 2

/* Print "stoke: <message> (see 'stoke CMD --help')" and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int cmd_record(int argc, char **argv);

/* One recording, as `stoke record ARGS` would run it (argv[0] is "record"),
 * returning its exit code and what `stoke suite` measures. */
struct record_result {
	double wall_s;      /* from the launch until the command was reaped */
	int child_status;   /* waitpid status of a launched command */
	unsigned long long samples, lost;
	char *run_dir;      /* with --output-dir: the run directory (malloc'd) */
	/* The resource timeline's summary (0 when it has no point). */
	unsigned long long peak_rss, mean_rss; /* bytes */
	double cpu_util;    /* CPU time over elapsed time, in cores */
};
int record_run(int argc, char **argv, struct record_result *res);

/* What `stoke top -p` adds to a recording: record's own loop (targets,
 * signals, -o) runs, and calls these from it. Without -o or --output-dir
 * nothing is written. */
struct stoke_session;
struct record_live {
	int fd;               /* polled too (POLLIN) when >= 0: the keyboard */
	unsigned interval_ms; /* tick at least this often */
	/* Every interval_ms, and when fd is readable (readable true).
	 * Returns true to end the recording as SIGINT would. */
	bool (*tick)(struct stoke_session *s, bool readable, void *userdata);
	/* Once, when the recording loop has ended (before the stop's naming
	 * and the output's writing). */
	void (*done)(struct stoke_session *s, void *userdata);
	void *userdata;
};
int record_run_live(int argc, char **argv, struct record_result *res, struct record_live *live);
int cmd_report(int argc, char **argv);

/* The SVG options shared by record and report (defined in cmd-report.c):
 * which is a CLI_SVG_* value, arg the option's argument (NULL for
 * --inverted). Returns 0 or -EINVAL for a bad value. */
enum { CLI_SVG_TITLE, CLI_SVG_WIDTH, CLI_SVG_INVERTED, CLI_SVG_MINWIDTH };
struct stoke_output_opts;
int cli_parse_svg_option(int which, const char *arg, struct stoke_output_opts *o);
/* The resource timeline of a run directory's run.json into rs (defined in
 * cmd-report.c): its number of points, 0 when input is not a run
 * directory or has none, or -errno with *err saying what is wrong. */
struct stoke_rseries;
int cli_load_resources(const char *input, struct stoke_rseries *rs, const char **err);
/* tree's --threshold PCT (color false) or --color auto|always|never
 * (defined in cmd-report.c). Returns 0 or -EINVAL. */
int cli_parse_tree_option(bool color, const char *arg, struct stoke_output_opts *o);
int cmd_symbolize(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_annotate(int argc, char **argv);
int cmd_diff(int argc, char **argv);
/* stoke diff's rows (cmd-diff.c), largest change first: one per function in
 * either profile, shares in percent. malloc'd; NULL on ENOMEM. The gate
 * fails a row whose self_new - self_base exceeds the threshold. */
struct stoke_analysis;
struct diff_row {
	const char *name; /* owned by one of the analyses */
	double self_base, self_new, total_base, total_new;
};
struct diff_row *diff_build_rows(const struct stoke_analysis *base,
				 const struct stoke_analysis *new, size_t *ret_n);
int cmd_suite(int argc, char **argv);
/* stoke serve: the dashboard (cmd-serve.c, tools/serve/) */
int cmd_serve(int argc, char **argv);
/* stoke dump PID: Python stacks of a running CPython (cmd-dump.c) */
int cmd_dump(int argc, char **argv);
/* stoked client commands (cmd-client.c) */
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
