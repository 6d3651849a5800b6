/*
 * `stoke record`: sample processes and write their profile.
 *
 *   stoke record [-p PID[,PID…] | -- CMD ARGS…] [-F HZ] [-e EVENT] [-d SECONDS]
 *                [-g fp] [-o FILE | --output-dir DIR [--name NAME]] [-f FORMAT]
 *                [--per-thread] [--title T] [--width PX] [--inverted] [--minwidth PX] [-q]
 *
 * `record` runs a session in-process (no daemon needed): it attaches to the
 * given processes or launches the command, reads samples until the duration
 * passes, every target exits, or SIGINT/SIGTERM arrives, and then writes the
 * profile atomically. With a launched command it exits with the command's
 * status.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "tools/cli.h"
#include "formats/output.h"
#include "formats/resource.h"
#include "common/log.h"
#include "session/driver.h"
#include "session/session.h"
#include "common/util.h"

#define MAX_PIDS 256
#define POLL_MS 100
#define CHILD_GRACE_MS 3000
#define PIDFD_EXITED (-2) /* pidfds[i]: that target has exited */

struct record_args {
	struct stoke_session_opts sopts;
	pid_t pids[MAX_PIDS];
	size_t npids;
	pid_t tids[MAX_PIDS];    /* -t: sample only these threads */
	pid_t tid_tgid[MAX_PIDS]; /* the process of each */
	size_t ntids;
	char **argv;
	double duration;
	const char *output;
	bool per_thread;
	enum stoke_format format;       /* -f, or from -o's extension */
	bool format_set;
	const char *output_dir;         /* --output-dir: write a run directory */
	const char *name;               /* --name: the run directory's name */
	struct stoke_output_opts oopts; /* --per-thread and the SVG options */
	bool quiet;
	bool system_wide;               /* -a: every process (BPF sampler) */
	bool callgraph_set;             /* -g MODE given */
	struct record_live *live;       /* stoke top's hooks, or NULL */
};

static void usage(FILE *f)
{
	fputs("usage: stoke record [-p PID[,PID...] | -t TID[,TID...] | -a | -- CMD [ARGS...]]\n"
	      "                    [options]\n"
	      "\n"
	      "Sample a running process (every thread, and threads born later) or a\n"
	      "command with perf_event, and write the profile.\n"
	      "\n"
	      "  -p, --pid PID[,PID...]  attach to running processes (a thread id means\n"
	      "                          its process)\n"
	      "  -t, --tid TID[,TID...]  only these threads (events on them alone, as in\n"
	      "                          perf; threads they create are not sampled)\n"
	      "  -a, --all-cpus          every process on every CPU (the BPF sampler;\n"
	      "                          give -d or stop with Ctrl-C)\n"
	      "  -F, --freq HZ           samples per second per thread (default 999)\n"
	      "  -e, --event EVENT       cpu-clock (default), task-clock or cycles\n"
	      "                          (cycles falls back to cpu-clock without a PMU),\n"
	      "                          or wall (on and off CPU: the signal sampler)\n"
	      "      --sampler KIND      auto (default: perf_event where allowed, else\n"
	      "                          signals for a launched command), perf, signal\n"
	      "                          or bpf (per-CPU events counted in the kernel:\n"
	      "                          -p PID or -a; frame-pointer stacks)\n"
	      "      --off-cpu           also the time threads spend blocked, with the\n"
	      "                          stack they blocked in (the BPF sampler; with\n"
	      "                          -g dwarf the user stack is copied and unwound)\n"
	      "      --off-cpu-min USEC  ignore blocks shorter than this (default 0)\n"
	      "      --bpf-map-size N    stacks the BPF sampler holds per second\n"
	      "                          (default 16384; more are counted lost)\n"
	      "      --signal-number N   the real-time signal the signal sampler uses\n"
	      "                          (default SIGRTMIN+6, or $STOKE_SIGNAL_NUMBER)\n"
	      "  -d, --duration SECONDS  stop after this long (default: until the\n"
	      "                          targets exit or Ctrl-C)\n"
	      "  -g, --call-graph[=MODE] fp (frame pointers), dwarf[,BYTES] (unwind a\n"
	      "                          copy of BYTES of user stack; default and\n"
	      "                          max 65528) or auto (default: dwarf); -g\n"
	      "                          alone means the default\n"
	      "  -o, --output FILE       output file (default stoke.folded; - for stdout);\n"
	      "                          the format follows the extension: .folded,\n"
	      "                          .svg, .speedscope.json or .json, .pstats/.prof,\n"
	      "                          .txt, .pb.gz, .callgrind or callgrind.out.*;\n"
	      "                          only a regular file (or a symlink to one) is\n"
	      "                          replaced\n"
	      "  -f, --format FORMAT     folded (or raw), svg, speedscope, pstats, txt,\n"
	      "                          pprof or callgrind, whatever -o's extension\n"
	      "      --output-dir DIR    write a run directory DIR/<time>_<name> with\n"
	      "                          run.json and every format (instead of -o)\n"
	      "      --name NAME         the run directory's name (default: the command)\n"
	      "      --per-thread        folded: prefix stacks with comm-PID/TID\n"
	      "      --lines             one frame per source line, not per function\n"
	      "                          (speedscope, pstats, txt, callgrind)\n"
	      "      --timeline          pprof: one sample per sample, with wall-clock\n"
	      "                          time labels (default: one per stack and thread)\n"
	      "      --title TEXT        svg: the title\n"
	      "      --width PX          svg: image width (default 1200)\n"
	      "      --inverted          svg: icicle graph (root at the top)\n"
	      "      --minwidth PX       svg: omit boxes narrower than this (default 0.1)\n"
	      "      --no-kernel         do not sample kernel stacks\n",
	      f);
	fputs("      --threshold PCT     tree (-f tree: the call tree on the terminal):\n"
	      "                          fold away frames under PCT% of the samples\n"
	      "                          (default 1; 0 shows every frame)\n"
	      "      --color WHEN        tree: auto (default: on a terminal, unless\n"
	      "                          NO_COLOR is set), always or never\n"
	      "                          (-f html writes one self-contained report)\n",
	      f);
	/* (two strings: ISO C's 4095-byte limit on one) */
	fputs("      --no-spans          do not record spans (on when the target's\n"
	      "                          modules have span probes: stoke/span.h)\n"
	      "      --no-python         no Python frames in CPython processes (on by\n"
	      "                          default: each _PyEval_EvalFrameDefault frame\n"
	      "                          becomes the Python functions it runs)\n"
	      "      --debuginfo-path DIRS  more roots for separate debug info (colon-\n"
	      "                          separated: .build-id/ and .gnu_debuglink)\n"
	      "      --demangle=MODE     short (default: no parameter lists), full, none\n"
	      "  -m, --mmap-pages PAGES  ring buffer data pages per CPU (power of 2)\n"
	      "  -q, --quiet             no progress line or summary\n"
	      "\n"
	      "other commands: stoke help, stoke --version\n",
	      f);
}

#define die_usage(...) cli_usage_error("record", __VA_ARGS__)

/*
 * -g fp | dwarf[,BYTES] | auto. auto is DWARF unwinding of every user stack
 * with the default copy size: it is right for binaries with and without
 * frame pointers alike, and online unwinding keeps up at the default rate.
 */
static int parse_callgraph(const char *s, struct stoke_sampler_opts *o)
{
	return stoke_callgraph_parse(s, &o->callgraph, &o->stack_size);
}

/* After a bare -g, whether the next word is meant as its mode: a mode's
 * name (perf's lbr too, to be refused), or any word right before "--". */
static bool looks_like_callgraph(char **argv, int i, int argc)
{
	const char *s = argv[i];

	return !strcmp(s, "fp") || !strcmp(s, "auto") || !strcmp(s, "dwarf") ||
	       !strcmp(s, "lbr") || !strncmp(s, "dwarf,", 6) ||
	       (s[0] != '-' && i + 1 < argc && !strcmp(argv[i + 1], "--"));
}

static int parse_pids(const char *s, struct record_args *a)
{
	while (*s) {
		char *end;
		long v;

		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || end == s || v <= 0 || v > 0x3fffffff || (*end && *end != ','))
			return -EINVAL;
		if (a->npids == MAX_PIDS)
			return -E2BIG;
		a->pids[a->npids++] = (pid_t)v;
		if (*end == ',' && !end[1])
			return -EINVAL;
		s = *end ? end + 1 : end;
	}
	return a->npids ? 0 : -EINVAL;
}

/* The process (thread group) a thread id belongs to, or 0 if unknown. */
static pid_t tgid_of(pid_t tid)
{
	char path[64], line[128];
	_cleanup_fclose_ FILE *f = NULL;
	long v;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %ld", &v) == 1)
			return (pid_t)v;
	return 0;
}

/*
 * -p and -t name processes: a thread id given to -p means its process, as
 * in perf (with a warning), -t's threads add their processes, and a process
 * named twice is sampled once (each attach would count every sample again).
 */
static void resolve_targets(struct record_args *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->npids; i++) {
		pid_t tgid = tgid_of(a->pids[i]);

		if (i >= a->npids - a->ntids)
			a->tid_tgid[i - (a->npids - a->ntids)] = tgid > 0 ? tgid : a->pids[i];
		if (tgid > 0 && tgid != a->pids[i]) {
			if (i < a->npids - a->ntids)
				log_warn("%d is a thread of process %d: sampling the whole process "
					 "(-t %d samples that thread alone)",
					 a->pids[i], tgid, a->pids[i]);
			a->pids[i] = tgid;
		}
	}
	for (size_t i = 0; i < a->npids; i++) {
		bool dup = false;

		for (size_t j = 0; j < n && !dup; j++)
			dup = a->pids[j] == a->pids[i];
		if (!dup)
			a->pids[n++] = a->pids[i];
	}
	a->npids = n;
}

/* -o/-f/--output-dir: which output, in which format. Returns 0 or an exit
 * code after printing the error. */
static int resolve_output(struct record_args *a, bool output_set)
{
	if (a->output_dir) {
		if (output_set || a->format_set)
			return die_usage("%s", "--output-dir writes every format: drop -o and -f");
		return 0;
	}
	if (a->name)
		return die_usage("%s", "--name names a run directory: give --output-dir too");
	if (a->live && !output_set) { /* stoke top writes only what -o asks */
		a->output = NULL;
		a->quiet = true;
		return 0;
	}
	/* The call tree is for the terminal: stdout unless -o says otherwise. */
	if (a->format_set && a->format == STOKE_FORMAT_TREE && !output_set)
		a->output = "-";
	if (a->format_set || !strcmp(a->output, "-"))
		return 0; /* stdout without -f: folded, the default format */
	if (stoke_format_from_path(a->output, &a->format) < 0)
		return die_usage("cannot tell the output format of '%s' from its extension "
				 "(use -f FORMAT)",
				 a->output);
	return 0;
}

/* Returns 0, or an exit code after printing the error. */
static int parse_record(int argc, char **argv, struct record_args *a)
{
	enum { OPT_NO_SPANS = 512 }; /* past the enum below */
	enum { OPT_PER_THREAD = 256, OPT_TITLE, OPT_WIDTH, OPT_INVERTED, OPT_MINWIDTH,
	       OPT_OUTPUT_DIR, OPT_NAME, OPT_NO_KERNEL, OPT_DEBUGINFO_PATH, OPT_DEMANGLE,
	       OPT_LINES, OPT_TIMELINE, OPT_SAMPLER, OPT_SIGNAL_NUMBER, OPT_OFF_CPU,
	       OPT_OFF_CPU_MIN, OPT_BPF_MAP_SIZE, OPT_THRESHOLD, OPT_COLOR };
	enum { OPT_NO_PYTHON = 600 }; /* past the enums above */
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "freq", required_argument, NULL, 'F' },
		{ "event", required_argument, NULL, 'e' },
		{ "duration", required_argument, NULL, 'd' },
		{ "call-graph", optional_argument, NULL, 'g' },
		{ "output", required_argument, NULL, 'o' },
		{ "per-thread", no_argument, NULL, OPT_PER_THREAD },
		{ "format", required_argument, NULL, 'f' },
		{ "output-dir", required_argument, NULL, OPT_OUTPUT_DIR },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "title", required_argument, NULL, OPT_TITLE },
		{ "width", required_argument, NULL, OPT_WIDTH },
		{ "inverted", no_argument, NULL, OPT_INVERTED },
		{ "minwidth", required_argument, NULL, OPT_MINWIDTH },
		{ "no-kernel", no_argument, NULL, OPT_NO_KERNEL },
		{ "no-spans", no_argument, NULL, OPT_NO_SPANS },
		{ "debuginfo-path", required_argument, NULL, OPT_DEBUGINFO_PATH },
		{ "demangle", required_argument, NULL, OPT_DEMANGLE },
		{ "lines", no_argument, NULL, OPT_LINES },
		{ "timeline", no_argument, NULL, OPT_TIMELINE },
		{ "sampler", required_argument, NULL, OPT_SAMPLER },
		{ "signal-number", required_argument, NULL, OPT_SIGNAL_NUMBER },
		{ "all-cpus", no_argument, NULL, 'a' },
		{ "off-cpu", no_argument, NULL, OPT_OFF_CPU },
		{ "off-cpu-min", required_argument, NULL, OPT_OFF_CPU_MIN },
		{ "bpf-map-size", required_argument, NULL, OPT_BPF_MAP_SIZE },
		{ "no-python", no_argument, NULL, OPT_NO_PYTHON },
		{ "threshold", required_argument, NULL, OPT_THRESHOLD },
		{ "color", required_argument, NULL, OPT_COLOR },
		{ "tid", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "mmap-pages", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool output_set = false;
	int c;

	stoke_session_opts_init(&a->sopts);
	stoke_output_opts_init(&a->oopts);
	a->format = STOKE_FORMAT_FOLDED;
	parse_callgraph("auto", &a->sopts.sampler); /* the default mode */
	a->output = "stoke.folded";
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:t:F:e:d:g::o:f:m:qha", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'p':
			if (a->ntids)
				return die_usage("%s", "give either -p PID or -t TID, not both");
			if (parse_pids(optarg, a) < 0)
				return die_usage("invalid PID list '%s'", optarg);
			break;
		case 't': {
			size_t before = a->npids;

			if (a->npids > a->ntids)
				return die_usage("%s", "give either -p PID or -t TID, not both");
			if (parse_pids(optarg, a) < 0)
				return die_usage("invalid TID list '%s'", optarg);
			for (size_t i = before; i < a->npids; i++)
				a->tids[a->ntids++] = a->pids[i];
			break;
		}
		case 'F': {
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 1 || v > 100000)
				return die_usage("invalid frequency '%s' (1..100000 Hz)", optarg);
			a->sopts.sampler.freq = (unsigned)v;
			break;
		}
		case 'e':
			if (stoke_event_parse(optarg, &a->sopts.sampler.event) < 0)
				return die_usage("unknown event '%s' (cpu-clock, task-clock, cycles, wall)",
						 optarg);
			break;
		case 'd':
			errno = 0;
			a->duration = strtod(optarg, &end);
			if (errno || *end || !(a->duration > 0) || !isfinite(a->duration))
				return die_usage("invalid duration '%s' (seconds > 0)", optarg);
			break;
		case 'g':
			/* -g alone means the default, as perf and samply users type
			 * it; a mode may still follow as the next word (-g fp). */
			if (!optarg && optind < argc && looks_like_callgraph(argv, optind, argc))
				optarg = argv[optind++];
			if (!optarg)
				break;
			if (parse_callgraph(optarg, &a->sopts.sampler) < 0)
				return die_usage("invalid call-graph mode '%s' (fp, dwarf[,BYTES] "
						 "with BYTES a multiple of 8 up to 65528, or auto)",
						 optarg);
			a->callgraph_set = true;
			break;
		case 'o':
			a->output = optarg;
			output_set = true;
			break;
		case 'f':
			if (stoke_format_from_name(optarg, &a->format) < 0) {
				if (stoke_format_hint(optarg))
					return die_usage("%s", stoke_format_hint(optarg));
				return die_usage("unknown format '%s' (folded, svg, speedscope, "
						 "pstats, txt, pprof, callgrind, html, tree)",
						 optarg);
			}
			a->format_set = true;
			break;
		case OPT_OUTPUT_DIR:
			a->output_dir = optarg;
			break;
		case OPT_NAME:
			a->name = optarg;
			break;
		case OPT_PER_THREAD:
			a->per_thread = true;
			a->oopts.per_thread = true;
			break;
		case OPT_TITLE:
		case OPT_WIDTH:
		case OPT_INVERTED:
		case OPT_MINWIDTH:
			if (cli_parse_svg_option(c - OPT_TITLE, optarg, &a->oopts) < 0)
				return die_usage("invalid value '%s' for --%s", optarg,
						 c == OPT_WIDTH ? "width (100..100000)"
								: "minwidth (0..10000)");
			break;
		case OPT_THRESHOLD:
		case OPT_COLOR:
			if (cli_parse_tree_option(c == OPT_COLOR, optarg, &a->oopts) < 0)
				return die_usage("invalid value '%s' for --%s", optarg,
						 c == OPT_COLOR ? "color (auto, always, never)"
								: "threshold (0..100)");
			break;
		case OPT_LINES:
			a->oopts.lines = true;
			break;
		case OPT_TIMELINE:
			a->oopts.timeline = true;
			break;
		case OPT_SAMPLER:
			if (!strcmp(optarg, "auto"))
				a->sopts.sampler.backend = STOKE_BACKEND_AUTO;
			else if (!strcmp(optarg, "perf"))
				a->sopts.sampler.backend = STOKE_BACKEND_PERF;
			else if (!strcmp(optarg, "signal"))
				a->sopts.sampler.backend = STOKE_BACKEND_SIGNAL;
			else if (!strcmp(optarg, "bpf"))
				a->sopts.sampler.backend = STOKE_BACKEND_BPF;
			else
				return die_usage("unknown sampler '%s' (auto, perf, signal or bpf)",
						 optarg);
			break;
		case 'a':
			a->system_wide = true;
			break;
		case OPT_NO_PYTHON:
			a->sopts.no_python = true;
			break;
		case OPT_OFF_CPU:
			a->sopts.sampler.off_cpu = true;
			break;
		case OPT_OFF_CPU_MIN:
		case OPT_NO_SPANS:
			a->sopts.sampler.no_spans = true;
			break;
		case OPT_BPF_MAP_SIZE: {
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg ||
			    v > (c == OPT_BPF_MAP_SIZE ? (1ULL << 24) : 1000000000ULL) ||
			    (c == OPT_BPF_MAP_SIZE && v < 16))
				return die_usage("invalid %s '%s'",
						 c == OPT_BPF_MAP_SIZE ? "--bpf-map-size (16..16777216)"
								       : "--off-cpu-min (usec)",
						 optarg);
			if (c == OPT_BPF_MAP_SIZE)
				a->sopts.sampler.bpf_map_entries = (uint32_t)v;
			else
				a->sopts.sampler.off_cpu_min_ns = v * 1000;
			break;
		}
		case OPT_SIGNAL_NUMBER: {
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < SIGRTMIN || v > SIGRTMAX)
				return die_usage("invalid --signal-number '%s' (a real-time signal, "
						 "%d..%d)",
						 optarg, SIGRTMIN, SIGRTMAX);
			a->sopts.sampler.signal_number = (int)v;
			break;
		}
		case OPT_NO_KERNEL:
			a->sopts.sampler.exclude_kernel = true;
			a->sopts.no_kernel_symbols = true;
			break;
		case OPT_DEBUGINFO_PATH:
			a->sopts.debuginfo_path = optarg;
			break;
		case OPT_DEMANGLE:
			if (stoke_demangle_mode_parse(optarg, &a->sopts.demangle) < 0)
				return die_usage("invalid --demangle '%s' (short, full or none)",
						 optarg);
			break;
		case 'm': {
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > (1u << 20) || (v & (v - 1)))
				return die_usage("invalid ring size '%s' (a power of 2 pages)", optarg);
			a->sopts.sampler.ring_pages = (uint32_t)v;
			break;
		}
		case 'q':
			a->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case '?':
		default:
			if (optopt && strchr("ptFedofm", optopt))
				return die_usage("option '-%s' needs an argument",
						 (char[]){ (char)optopt, 0 });
			return die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		a->argv = argv + optind;
	if (!a->npids && !a->argv && !a->system_wide)
		return die_usage("%s", "nothing to profile: give -p PID, -t TID, -a or -- CMD");
	if (a->system_wide && (a->npids || a->argv))
		return die_usage("%s", "-a profiles every process: give no -p, -t or command");
	/* -a and off-CPU time need the BPF sampler; it samples per CPU and
	 * takes frame-pointer stacks (no user stack copies). */
	if (a->system_wide || a->sopts.sampler.off_cpu) {
		if (a->sopts.sampler.backend != STOKE_BACKEND_AUTO &&
		    a->sopts.sampler.backend != STOKE_BACKEND_BPF)
			return die_usage("%s", "-a and --off-cpu need the BPF sampler (--sampler bpf)");
		a->sopts.sampler.backend = STOKE_BACKEND_BPF;
	}
	if (a->sopts.sampler.backend == STOKE_BACKEND_BPF) {
		if (a->argv)
			return die_usage("%s", "the BPF sampler profiles running processes (-p PID) "
					       "or every process (-a), not a command");
		if (a->ntids)
			return die_usage("%s", "-t needs the perf_event sampler: the BPF sampler "
					       "takes -p PID or -a (--per-thread keeps threads apart)");
		if (a->sopts.sampler.event == STOKE_EVENT_WALL)
			return die_usage("%s", "-e wall needs the signal sampler (--sampler signal); "
					       "the BPF sampler has --off-cpu");
		/* On-CPU stacks are frame-pointer walks; -g dwarf with
		 * --off-cpu copies the user stack at each block instead. */
		if (!a->callgraph_set || !a->sopts.sampler.off_cpu)
			a->sopts.sampler.callgraph = STOKE_CALLGRAPH_FP;
	}
	if (a->npids && a->argv)
		return die_usage("%s", "give either -p PID or a command, not both");
	/* The signal sampler's agent goes in at exec: it cannot join a
	 * running process. */
	if (a->npids && (a->sopts.sampler.backend == STOKE_BACKEND_SIGNAL ||
			 a->sopts.sampler.event == STOKE_EVENT_WALL))
		return die_usage("%s", "attaching to a running process needs perf_event (or BPF): "
				       "--sampler signal and -e wall profile a command stoke "
				       "launches (-- CMD)");
	if (a->sopts.sampler.backend == STOKE_BACKEND_PERF &&
	    a->sopts.sampler.event == STOKE_EVENT_WALL)
		return die_usage("%s", "-e wall needs the signal sampler (--sampler signal or auto)");
	resolve_targets(a);
	return resolve_output(a, output_set);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct recorder {
	struct record_args *args;
	struct stoke_session *session;
	int sigfd;
	pid_t child;       /* launched command, 0 if none or reaped */
	int child_status;  /* waitpid status once reaped */
	bool child_reaped;
	int *pidfds;       /* for attached targets; -1 once exited */
	bool stopping;
	double stop_sent;  /* when the child was asked to stop */
	double start;
	bool tty;
	char *run_dir;     /* the run directory written, for the summary */
	double child_end;  /* when the launched command was reaped */
	struct stoke_atomic_file out; /* -o, opened before sampling */
	bool out_open;
	int out_dirfd;     /* --output-dir, opened before sampling */
};

static void progress(struct recorder *rec, bool final)
{
	struct stoke_session_stats st;

	if (!rec->tty || rec->args->quiet)
		return;
	if (final) {
		fputs("\r\033[K", stderr);
		return;
	}
	stoke_session_get_stats(rec->session, &st);
	fprintf(stderr, "\r\033[K[stoke] %.1fs  %llu samples  %llu lost  %u threads",
		mono_s() - rec->start, (unsigned long long)st.samples,
		(unsigned long long)st.lost, st.threads);
	fflush(stderr);
}

static void reap_child(struct recorder *rec)
{
	int status;

	if (!rec->child || rec->child_reaped)
		return;
	if (waitpid(rec->child, &status, WNOHANG) == rec->child) {
		rec->child_reaped = true;
		rec->child_status = status;
		rec->child_end = mono_s();
		stoke_session_target_exited(rec->session, rec->child);
	}
}

/* SIGINT/SIGTERM (or stoke top's q as SIGINT): stop. A launched command
 * gets the same signal and is waited for, so its exit status is ours. */
static void request_stop(struct recorder *rec, int sig)
{
	if (rec->stopping)
		return;
	rec->stopping = true;
	rec->stop_sent = mono_s();
	if (rec->child && !rec->child_reaped)
		kill(rec->child, sig);
}

static void handle_signals(struct recorder *rec)
{
	struct signalfd_siginfo si;

	while (read(rec->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			reap_child(rec);
		else
			request_stop(rec, (int)si.ssi_signo);
	}
}

static int setup_signals(struct recorder *rec)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGCHLD };
	int fd = stoke_driver_signalfd(sigs, ARRAY_SIZE(sigs));

	if (fd < 0)
		return fd;
	rec->sigfd = fd;
	return 0;
}

static int start_targets(struct recorder *rec)
{
	struct record_args *a = rec->args;
	int r;

	if (a->system_wide) {
		r = stoke_session_attach(rec->session, -1);
		if (r < 0) {
			log_error("cannot sample every CPU: %s", stoke_sampler_strerror(r));
			return 1;
		}
		return 0;
	}
	if (a->argv) {
		r = stoke_session_launch(rec->session, a->argv, &rec->child);
		if (r < 0) {
			log_error("cannot execute '%s': %s", a->argv[0],
				  r == -ENOENT || r == -EACCES ? strerror(-r)
							       : stoke_sampler_strerror(r));
			return r == -ENOENT ? 127 : r == -EACCES ? 126 : 1;
		}
		return 0;
	}
	rec->pidfds = malloc(a->npids * sizeof(int));
	if (!rec->pidfds)
		return 1;
	for (size_t i = 0; i < a->npids; i++)
		rec->pidfds[i] = -1;
	for (size_t i = 0; i < a->npids; i++) {
		pid_t tids[MAX_PIDS];
		size_t n = 0;

		/* Without a pidfd (an old kernel), exit is noticed by polling
		 * kill(pid, 0) every round instead. */
		rec->pidfds[i] = stoke_driver_pidfd(a->pids[i]);
		if (rec->pidfds[i] < 0)
			rec->pidfds[i] = -1;
		for (size_t j = 0; j < a->ntids; j++) {
			bool dup = false;

			for (size_t k = 0; k < n && !dup; k++)
				dup = tids[k] == a->tids[j];
			if (a->tid_tgid[j] == a->pids[i] && !dup)
				tids[n++] = a->tids[j]; /* -t T,T: one event each */
		}
		if (n) {
			r = stoke_session_attach_threads(rec->session, a->pids[i], tids, n);
			if (r < 0) {
				log_error("cannot attach to the threads of PID %d: %s", a->pids[i],
					  r == -ESRCH ? "a TID is not (or no longer) its thread"
						      : stoke_sampler_strerror(r));
				return 1;
			}
			continue;
		}
		r = stoke_session_attach(rec->session, a->pids[i]);
		if (r < 0) {
			log_error("cannot attach to PID %d: %s", a->pids[i],
				  stoke_sampler_strerror(r));
			return 1;
		}
	}
	return 0;
}

/* One poll round: wait for ring data, signals or target exit. */
static int record_poll(struct recorder *rec, struct pollfd *pfd, size_t nring, int timeout_ms)
{
	size_t n = nring;
	struct record_args *a = rec->args;
	struct record_live *live = a->live;
	int r;

	pfd[n++] = (struct pollfd){ .fd = rec->sigfd, .events = POLLIN };
	for (size_t i = 0; rec->pidfds && i < a->npids; i++)
		pfd[n++] = (struct pollfd){ .fd = rec->pidfds[i], .events = POLLIN };
	if (live && live->fd >= 0)
		pfd[n++] = (struct pollfd){ .fd = live->fd, .events = POLLIN };
	r = poll(pfd, n, timeout_ms);
	if (r < 0 && errno != EINTR)
		return -errno;
	if (live && live->fd >= 0 && pfd[n - 1].revents &&
	    live->tick(rec->session, true, live->userdata))
		request_stop(rec, SIGINT);
	stoke_driver_drop_hung_rings(pfd, nring);
	for (size_t i = 0; rec->pidfds && i < a->npids; i++) {
		struct pollfd *p = &pfd[nring + 1 + i];

		if (rec->pidfds[i] == PIDFD_EXITED ||
		    !stoke_driver_target_exited(rec->pidfds[i],
						p->fd >= 0 && (p->revents & POLLIN), a->pids[i]))
			continue;
		stoke_session_target_exited(rec->session, a->pids[i]);
		if (rec->pidfds[i] >= 0)
			close(rec->pidfds[i]);
		rec->pidfds[i] = PIDFD_EXITED;
	}
	if (pfd[nring].revents & POLLIN)
		handle_signals(rec);
	reap_child(rec);
	return 0;
}

/* Ask a launched command that outlived the recording to stop, then wait. */
static void finish_child(struct recorder *rec)
{
	int status;

	if (!rec->child || rec->child_reaped)
		return;
	kill(rec->child, SIGTERM);
	for (int i = 0; i < CHILD_GRACE_MS / 10; i++) {
		if (waitpid(rec->child, &status, WNOHANG) == rec->child)
			goto reaped;
		usleep(10000);
	}
	kill(rec->child, SIGKILL);
	waitpid(rec->child, &status, 0);
reaped:
	rec->child_reaped = true;
	rec->child_status = status;
	rec->child_end = mono_s();
}

/* Until the duration's deadline or the resource timeline's next reading,
 * whichever comes first (at most POLL_MS): nothing else wakes the loop. */
static int record_timeout(struct recorder *rec, double now, double deadline)
{
	uint64_t due = stoke_session_resources_due_ns(rec->session);
	int timeout = stoke_driver_timeout_ms(now, deadline, POLL_MS);

	if (due)
		timeout = stoke_driver_timeout_ms(now, (double)due / 1e9, timeout);
	return timeout;
}

static int record_loop(struct recorder *rec)
{
	const int *ringfds;
	size_t nring = (size_t)stoke_session_pollfds(rec->session, &ringfds);
	size_t cap = nring + 2 + rec->args->npids;
	_cleanup_free_ struct pollfd *pfd = calloc(cap, sizeof(*pfd));
	double deadline = rec->args->duration > 0 ? rec->start + rec->args->duration : 0;
	double next_progress = 0;
	struct record_live *live = rec->args->live;
	double next_tick = live ? rec->start + live->interval_ms / 1000.0 : 0;

	if (!pfd)
		return -ENOMEM;
	for (size_t i = 0; i < nring; i++)
		pfd[i] = (struct pollfd){ .fd = ringfds[i], .events = POLLIN };
	for (;;) {
		double now = mono_s();
		int timeout, r;

		if (deadline && now >= deadline)
			break;
		timeout = record_timeout(rec, now, deadline);
		if (live)
			timeout = stoke_driver_timeout_ms(now, next_tick, timeout);
		r = record_poll(rec, pfd, nring, timeout);
		if (r < 0)
			return r;
		r = stoke_session_process(rec->session);
		if (r < 0)
			return r;
		if (stoke_session_targets_alive(rec->session) == 0)
			break;
		if (live && mono_s() >= next_tick) {
			if (live->tick(rec->session, false, live->userdata))
				request_stop(rec, SIGINT);
			next_tick = mono_s() + live->interval_ms / 1000.0;
		}
		if (rec->stopping &&
		    (!rec->child || (mono_s() - rec->stop_sent) * 1000 > CHILD_GRACE_MS))
			break;
		if (mono_s() >= next_progress) {
			progress(rec, false);
			next_progress = mono_s() + 0.25;
		}
	}
	return 0;
}

/* The run directory's default name: the command's (or first target's)
 * executable name. */
static const char *run_name(struct recorder *rec)
{
	const struct stoke_profile *p = stoke_session_profile(rec->session);
	const char *cmd = stoke_profile_string(p, stoke_profile_cmeta(p)->command);
	static char buf[64];
	const char *base;
	size_t n;

	if (rec->args->name)
		return rec->args->name;
	n = strcspn(cmd, " ");
	snprintf(buf, sizeof(buf), "%.*s", (int)n, cmd);
	base = strrchr(buf, '/');
	return base ? base + 1 : buf;
}

/*
 * Check the output before sampling, as perf does, so that a bad path costs
 * nothing rather than the whole recording: -o's temporary file is created
 * now (in the destination's directory, so its permissions, filesystem and
 * free inodes are tested for real) and kept open until the profile is
 * written; --output-dir is created and opened now and must be writable.
 * Returns 0 or 1 after printing the error.
 */
static int open_output(struct recorder *rec)
{
	struct record_args *a = rec->args;
	int r;

	rec->out_dirfd = -1;
	if (!a->output_dir && !a->output)
		return 0;
	if (!a->output_dir) {
		r = stoke_atomic_open(a->output, &rec->out);
		if (r < 0) {
			log_error("cannot write '%s': %s", a->output, stoke_atomic_strerror(r));
			return 1;
		}
		rec->out_open = true;
		return 0;
	}
	r = stoke_mkdir_p(a->output_dir);
	if (r == 0) {
		rec->out_dirfd = open(a->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rec->out_dirfd < 0)
			r = -errno;
	}
	/* AT_EACCESS: the effective ids are the ones that will write. */
	if (r == 0 && faccessat(rec->out_dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0)
		r = -errno;
	if (r < 0) {
		log_error("cannot write a run directory in '%s': %s", a->output_dir, strerror(-r));
		return 1;
	}
	return 0;
}

static int write_output(struct recorder *rec)
{
	const struct stoke_profile *p = stoke_session_profile(rec->session);
	struct record_args *a = rec->args;
	struct stoke_run_info info = { 0 };
	_cleanup_free_ char *dir = NULL;
	int r;

	if (!a->output_dir && !a->output)
		return 0;
	if (!a->output_dir) {
		rec->out_open = false;
		/* -f html shows the resource timeline too */
		a->oopts.resources = stoke_session_resources(rec->session);
		r = stoke_output_write_atomic(p, a->format, &a->oopts, &rec->out);
		if (r < 0)
			log_error("cannot write '%s': %s", a->output, stoke_atomic_strerror(r));
		return r;
	}
	stoke_session_run_info(rec->session, &info);
	r = stoke_rundir_write(p, &info, &a->oopts, rec->out_dirfd, run_name(rec), &dir);
	if (r < 0) {
		log_error("cannot write a run directory in '%s': %s", a->output_dir, strerror(-r));
		return r;
	}
	free(rec->run_dir);
	if (asprintf(&rec->run_dir, "%s/%s", a->output_dir, dir) < 0)
		rec->run_dir = NULL;
	return 0;
}

/* DWARF mode: how many user stacks did not unwind to their outermost frame,
 * by reason. */
static void unwind_summary(const struct stoke_session_stats *st)
{
	uint64_t bad = st->unwind_truncated + st->unwind_max_depth + st->unwind_no_cfi +
		       st->unwind_bad_frame;

	fprintf(stderr,
		"stoke: unwound %llu user stacks, %llu incomplete (%.1f%%): %llu truncated "
		"(stack copy), %llu max-depth, %llu no-cfi, %llu bad-frame; %llu fp-links, "
		"%llu stitched\n",
		(unsigned long long)st->unwind_samples, (unsigned long long)bad,
		100.0 * (double)bad / (double)st->unwind_samples,
		(unsigned long long)st->unwind_truncated, (unsigned long long)st->unwind_max_depth,
		(unsigned long long)st->unwind_no_cfi, (unsigned long long)st->unwind_bad_frame,
		(unsigned long long)st->unwind_fp_links, (unsigned long long)st->unwind_stitched);
}

static void summary(struct recorder *rec, double elapsed)
{
	struct stoke_session_stats st;

	stoke_session_get_stats(rec->session, &st);
	if (st.lost_kernel && rec->args->sopts.sampler.backend == STOKE_BACKEND_BPF)
		log_warn("%llu samples lost (the BPF map of stacks was full; raise "
			 "--bpf-map-size or lower -F)",
			 (unsigned long long)st.lost_kernel);
	else if (st.lost_kernel)
		log_warn("%llu samples lost (the ring buffer filled up; try a lower -F)",
			 (unsigned long long)st.lost_kernel);
	if (st.lost_limit)
		log_warn("%llu samples lost (past the sample limit)",
			 (unsigned long long)st.lost_limit);
	if (st.throttled)
		log_warn("the kernel throttled sampling %llu times (samples not taken; "
			 "kernel.perf_cpu_time_max_percent)",
			 (unsigned long long)st.throttled);
	if (rec->args->quiet)
		return;
	/* Every sample lost anywhere is in "lost"; the time is the whole
	 * run, symbolizing and writing included (the recording window is
	 * run.json's duration_s). */
	fprintf(stderr,
		"stoke: %llu samples, %llu lost, %llu throttled, %u threads, %.2f s -> %s\n",
		(unsigned long long)st.samples, (unsigned long long)st.lost,
		(unsigned long long)st.throttled, st.threads, elapsed,
		rec->run_dir ? rec->run_dir
			     : strcmp(rec->args->output, "-") ? rec->args->output : "stdout");
	if (st.unwind_samples)
		unwind_summary(&st);
	if (st.python_samples)
		fprintf(stderr,
			"stoke: python: %llu samples with Python frames, %llu of them read after "
			"the sample (approximate)\n",
			(unsigned long long)st.python_samples, (unsigned long long)st.python_approx);
}

/* An empty profile is almost always a surprise: say why it may be empty. */
static void warn_if_empty(struct recorder *rec)
{
	if (stoke_profile_total(stoke_session_profile(rec->session)) != 0)
		return;
	log_warn("the profile is empty: no samples were taken (cpu-clock and task-clock "
		 "count CPU time only, so a target that sleeps or waits yields none)");
}

static int exit_code_of(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

int cmd_record(int argc, char **argv)
{
	return record_run(argc, argv, NULL);
}

/* What stoke suite needs from one recording. */
static void fill_result(struct recorder *rec, struct record_result *res)
{
	struct stoke_session_stats st;

	stoke_session_get_stats(rec->session, &st);
	res->samples = st.samples;
	res->lost = st.lost;
	res->child_status = rec->child_status;
	res->wall_s = (rec->child_end ? rec->child_end : mono_s()) - rec->start;
	res->run_dir = TAKE_PTR(rec->run_dir);
	if (stoke_session_resources(rec->session)) {
		struct stoke_rsummary rs;

		stoke_rseries_summary(stoke_session_resources(rec->session), &rs);
		res->peak_rss = rs.peak_rss;
		res->mean_rss = rs.mean_rss;
		res->cpu_util = rs.mean_cpu;
	}
}

int record_run(int argc, char **argv, struct record_result *res)
{
	return record_run_live(argc, argv, res, NULL);
}

int record_run_live(int argc, char **argv, struct record_result *res, struct record_live *live)
{
	struct record_args args = { .live = live };
	struct recorder rec = { .args = &args, .sigfd = -1, .out_dirfd = -1 };
	int code, r;

	code = parse_record(argc, argv, &args);
	if (code)
		return code;
	/* The live view names once a second while sampling: the loads of the
	 * first naming go before the events are enabled. */
	args.sopts.preload_symbols = live != NULL;
	code = open_output(&rec);
	if (code)
		goto out;
	stoke_driver_raise_nofile();
	if (setup_signals(&rec) < 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		code = 1;
		goto out;
	}
	r = stoke_session_new(&args.sopts, &rec.session);
	if (r < 0) {
		log_error("cannot start: %s", stoke_sampler_strerror(r));
		code = 1;
		goto out;
	}
	rec.tty = isatty(STDERR_FILENO);
	rec.start = mono_s();
	code = start_targets(&rec);
	if (code)
		goto out;
	if (stoke_session_event_fell_back(rec.session))
		log_warn("event '%s' is not supported here (no PMU); using cpu-clock",
			 stoke_event_name(args.sopts.sampler.event));
	if (stoke_session_kernel_dropped(rec.session) && !args.sopts.sampler.exclude_kernel)
		log_warn("kernel stacks are not sampled: kernel.perf_event_paranoid allows "
			 "user space only (run as root or with CAP_PERFMON)");
	r = record_loop(&rec);
	if (live && live->done)
		live->done(rec.session, live->userdata);
	progress(&rec, true);
	if (r < 0)
		log_error("recording failed: %s", strerror(-r));
	/* The window ends now; a launched command that outlived it is
	 * stopped before the stop's naming work, not after. */
	stoke_session_end_window(rec.session);
	finish_child(&rec);
	if (stoke_session_stop(rec.session) < 0 && r == 0)
		r = -EIO;
	if (write_output(&rec) < 0)
		code = 1;
	summary(&rec, mono_s() - rec.start);
	warn_if_empty(&rec);
	if (!code)
		code = r < 0 ? 1 : 0;
	if (!code && rec.child)
		code = exit_code_of(rec.child_status);
	if (res)
		fill_result(&rec, res);
out:
	if (rec.child && !rec.child_reaped)
		finish_child(&rec);
	for (size_t i = 0; rec.pidfds && i < args.npids; i++)
		if (rec.pidfds[i] >= 0)
			close(rec.pidfds[i]);
	free(rec.pidfds);
	free(rec.run_dir);
	if (rec.out_open)
		stoke_atomic_abort(&rec.out);
	if (rec.out_dirfd >= 0)
		close(rec.out_dirfd);
	stoke_session_free(rec.session);
	if (rec.sigfd >= 0)
		close(rec.sigfd);
	return code;
}

