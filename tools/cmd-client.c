/*
 * The stoked client commands:
 *
 *   stoke attach PID [options]   start a session, print its id
 *   stoke detach ID [--discard]  end it (writing its final profile)
 *   stoke list                   sessions (yours; root sees all)
 *   stoke status [ID]            the daemon, or one session
 *   stoke snapshot ID            write the profile so far, keep running
 *   stoke shutdown               flush every session and stop stoked
 *
 * Each sends one request line to stoked (daemon/protocol.h) and prints the
 * reply: a table or short text by default, the reply's JSON with --json.
 * `attach` passes its output directory as an open fd (SCM_RIGHTS), so the
 * daemon writes exactly where the user could write, and as the user.
 *
 * Exit codes: 0 done, 1 refused or failed (the daemon's message is
 * printed), 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/cli.h"
#include "daemon/protocol.h"
#include "common/util.h"

#define DEFAULT_SOCKET "/run/stoke/stoked.sock"
/* Replies are small (a list of at most max-sessions entries); this bounds
 * what a confused peer can make us buffer. */
#define MAX_REPLY (4 * 1024 * 1024)

struct client_opts {
	const char *socket;
	bool json;
};

static const char *default_socket(void)
{
	const char *s = getenv("STOKE_SOCKET");

	return s && *s ? s : DEFAULT_SOCKET;
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "stoke: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		fprintf(stderr,
			"stoke: cannot connect to stoked at %s: %s (is stoked running? see "
			"--socket or STOKE_SOCKET)\n",
			path, strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

/* Send line, with dirfd attached when >= 0. */
static int send_request(int fd, const char *line, int dirfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cmsg;
	size_t len = strlen(line), off = 0;

	while (off < len) {
		struct iovec iov = {(char *)line + off, len - off};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		/* The fd travels with the first byte of the request. */
		if (off == 0 && dirfd >= 0) {
			struct cmsghdr *cm;

			memset(&cmsg, 0, sizeof(cmsg));
			mh.msg_control = cmsg.buf;
			mh.msg_controllen = sizeof(cmsg.buf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &dirfd, sizeof(int));
		}
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Read one reply line (without its newline). */
static int read_reply(int fd, char **ret)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;
		char *nl;

		if (len + 1 >= cap) {
			char *b;

			if (cap >= MAX_REPLY) {
				free(buf);
				return -E2BIG;
			}
			b = realloc(buf, cap * 2);
			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -ECONNRESET;
		}
		len += (size_t)n;
		buf[len] = '\0';
		nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			*ret = buf;
			return 0;
		}
	}
}

/* One request/reply exchange. On success *ret is the parsed reply with
 * "ok": true; a refusal is printed and returns 1. */
static int exchange(const struct client_opts *o, const struct stoke_request *req, int dirfd,
		    json_object **ret)
{
	_cleanup_free_ char *line = NULL, *reply = NULL;
	json_object *obj, *v;
	int fd, r;

	r = stoke_request_format(req, &line);
	if (r < 0) {
		fprintf(stderr, "stoke: %s\n", strerror(-r));
		return 1;
	}
	fd = connect_daemon(o->socket);
	if (fd < 0)
		return 1;
	r = send_request(fd, line, dirfd);
	/* A connection stoked refuses (too many clients, out of fds) gets
	 * its one-line reason and is closed, possibly before the request is
	 * sent: read the reason rather than report the broken pipe. */
	if (r == 0 || r == -EPIPE || r == -ECONNRESET) {
		int rr = read_reply(fd, &reply);

		if (r == 0 || rr == 0)
			r = rr;
	}
	close(fd);
	if (r < 0) {
		fprintf(stderr, "stoke: no reply from stoked at %s: %s\n", o->socket,
			r == -ECONNRESET ? "connection closed" : strerror(-r));
		return 1;
	}
	obj = json_tokener_parse(reply);
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		fprintf(stderr, "stoke: stoked sent a malformed reply\n");
		return 1;
	}
	if (!json_object_object_get_ex(obj, "ok", &v) || !json_object_get_boolean(v)) {
		json_object *msg = json_object_object_get(obj, "message");

		if (o->json)
			printf("%s\n", reply);
		fprintf(stderr, "stoke: %s\n",
			msg ? json_object_get_string(msg) : "stoked refused the request");
		json_object_put(obj);
		return 1;
	}
	if (o->json)
		printf("%s\n", reply);
	*ret = obj;
	return 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

static const char *jstr_or(json_object *o, const char *key, const char *dflt)
{
	const char *v = jstr(o, key);

	return v ? v : dflt;
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static double jdbl(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

/* ---- option parsing shared by every subcommand ------------------------- */

enum {
	OPT_SOCKET = 300,
	OPT_JSON,
	OPT_CONTINUOUS,
	OPT_ROTATE,
	OPT_KEEP,
	OPT_PER_THREAD,
	OPT_NO_KERNEL,
	OPT_NAME,
	OPT_DISCARD
};

/* clang-format off */
#define COMMON_LONGOPTS                                     \
	{ "socket", required_argument, NULL, OPT_SOCKET },  \
	{ "json", no_argument, NULL, OPT_JSON },            \
	{ "help", no_argument, NULL, 'h' }
/* clang-format on */

static bool common_opt(int c, struct client_opts *o)
{
	if (c == OPT_SOCKET)
		o->socket = optarg;
	else if (c == OPT_JSON)
		o->json = true;
	else
		return false;
	return true;
}

static int parse_id(const char *cmd, const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || s[0] == '-' || v > (1ULL << 53))
		return cli_usage_error(cmd, "invalid session id '%s'", s);
	*ret = v;
	return 0;
}

static void simple_usage(const char *cmd, const char *args, const char *what, FILE *f)
{
	fprintf(f,
		"usage: stoke %s %s[--socket PATH] [--json]\n"
		"\n%s\n\n"
		"  --socket PATH   stoked's socket (default $STOKE_SOCKET or " DEFAULT_SOCKET ")\n"
		"  --json          print the daemon's JSON reply\n",
		cmd, args, what);
}

/* ---- attach ------------------------------------------------------------ */

static void attach_usage(FILE *f)
{
	fputs("usage: stoke attach PID [options]\n"
	      "\n"
	      "Ask stoked to profile process PID; prints the session id. The run\n"
	      "directories are written into DIR as you (default: the current directory).\n"
	      "\n"
	      "  -o, --output-dir DIR    where run directories go (default .)\n"
	      "  -F, --freq HZ           samples per second per thread (default 999)\n"
	      "  -e, --event EVENT       cpu-clock (default), task-clock or cycles\n"
	      "  -d, --duration SECONDS  end the session after this long\n"
	      "  -g, --call-graph MODE   auto (default: dwarf), dwarf[,BYTES] or fp\n"
	      "      --continuous        write a run directory every --rotate seconds\n"
	      "      --rotate SECONDS    rotation interval (continuous; >= 1)\n"
	      "      --keep N            keep the newest N run directories (continuous)\n"
	      "      --per-thread        folded: prefix stacks with comm-PID/TID\n"
	      "      --no-kernel         do not sample kernel stacks\n"
	      "      --name NAME         run directory name (default: the process name)\n"
	      "      --socket PATH       stoked's socket (default $STOKE_SOCKET or " DEFAULT_SOCKET
	      ")\n"
	      "      --json              print the daemon's JSON reply\n",
	      f);
}

static int parse_number(const char *cmd, const char *opt, const char *s, double min, double max,
			double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return cli_usage_error(cmd, "invalid %s '%s' (%g..%g)", opt, s, min, max);
	*ret = v;
	return 0;
}

static int parse_attach(int argc, char **argv, struct client_opts *o, struct stoke_request *req,
			const char **outdir)
{
	static const struct option longopts[] = {
		{"output-dir", required_argument, NULL, 'o'},
		{"freq", required_argument, NULL, 'F'},
		{"event", required_argument, NULL, 'e'},
		{"duration", required_argument, NULL, 'd'},
		{"call-graph", required_argument, NULL, 'g'},
		{"continuous", no_argument, NULL, OPT_CONTINUOUS},
		{"rotate", required_argument, NULL, OPT_ROTATE},
		{"keep", required_argument, NULL, OPT_KEEP},
		{"per-thread", no_argument, NULL, OPT_PER_THREAD},
		{"no-kernel", no_argument, NULL, OPT_NO_KERNEL},
		{"name", required_argument, NULL, OPT_NAME},
		COMMON_LONGOPTS,
		{0},
	};
	bool rotate_given = false, keep_given = false;
	double v;
	int c, r;

	stoke_request_init(req);
	req->op = STOKE_OP_ATTACH;
	*outdir = ".";
	while ((c = getopt_long(argc, argv, "o:F:e:d:g:h", longopts, NULL)) != -1) {
		if (common_opt(c, o))
			continue;
		switch (c) {
		case 'o':
			*outdir = optarg;
			break;
		case 'F':
			if ((r = parse_number("attach", "frequency", optarg, 1,
					      STOKE_PROTO_FREQ_MAX, &v)))
				return r;
			if (v != floor(v))
				return cli_usage_error("attach", "invalid frequency '%s'", optarg);
			req->freq = (unsigned)v;
			break;
		case 'e':
			/* wall is the signal sampler's: launched commands only */
			if (stoke_event_parse(optarg, &req->event) < 0 ||
			    req->event == STOKE_EVENT_WALL)
				return cli_usage_error("attach",
						       "unknown event '%s' (cpu-clock, task-clock, "
						       "cycles)",
						       optarg);
			break;
		case 'd':
			if ((r = parse_number("attach", "duration", optarg, 0.001,
					      STOKE_PROTO_DURATION_MAX, &req->duration)))
				return r;
			break;
		case 'g':
			if (stoke_callgraph_parse(optarg, &req->callgraph, &req->stack_size) < 0)
				return cli_usage_error("attach",
						       "invalid call-graph mode '%s' (fp, dwarf[,BYTES], auto)",
						       optarg);
			break;
		case OPT_CONTINUOUS:
			req->continuous = true;
			break;
		case OPT_ROTATE:
			if ((r = parse_number("attach", "rotation interval", optarg,
					      STOKE_PROTO_ROTATE_MIN, STOKE_PROTO_ROTATE_MAX,
					      &req->rotate)))
				return r;
			rotate_given = true;
			break;
		case OPT_KEEP:
			if ((r = parse_number("attach", "--keep count", optarg, 0,
					      STOKE_PROTO_KEEP_MAX, &v)))
				return r;
			if (v != floor(v))
				return cli_usage_error("attach", "invalid --keep count '%s'",
						       optarg);
			req->keep = (unsigned)v;
			keep_given = true;
			break;
		case OPT_PER_THREAD:
			req->per_thread = true;
			break;
		case OPT_NO_KERNEL:
			req->no_kernel = true;
			break;
		case OPT_NAME:
			if (strlen(optarg) > STOKE_PROTO_NAME_MAX)
				return cli_usage_error("attach", "name too long (at most %d)",
						       STOKE_PROTO_NAME_MAX);
			strcpy(req->name, optarg);
			break;
		case 'h':
			attach_usage(stdout);
			exit(0);
		default:
			return cli_usage_error("attach", "unknown option or missing argument '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("attach", "%s",
				       optind == argc ? "give the PID to profile"
						      : "give exactly one PID");
	{
		char *end;
		long pid;

		errno = 0;
		pid = strtol(argv[optind], &end, 10);
		if (errno || end == argv[optind] || *end || pid <= 0 || pid > 0x3fffffff)
			return cli_usage_error("attach", "invalid PID '%s'", argv[optind]);
		req->pid = (pid_t)pid;
	}
	if (req->continuous && !rotate_given)
		return cli_usage_error("attach", "%s", "--continuous needs --rotate SECONDS");
	if (!req->continuous && (rotate_given || keep_given))
		return cli_usage_error("attach", "%s", "--rotate and --keep need --continuous");
	return 0;
}

int cmd_attach(int argc, char **argv)
{
	struct client_opts o = {.socket = default_socket()};
	struct stoke_request req;
	const char *outdir;
	json_object *reply = NULL, *s;
	int dirfd, r;

	optind = 1;
	opterr = 0;
	r = parse_attach(argc, argv, &o, &req, &outdir);
	if (r)
		return r;
	dirfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		fprintf(stderr, "stoke: cannot open the output directory %s: %s\n", outdir,
			strerror(errno));
		return 1;
	}
	r = exchange(&o, &req, dirfd, &reply);
	close(dirfd);
	if (r)
		return r;
	s = json_object_object_get(reply, "session");
	if (!o.json)
		printf("%lld\n", (long long)jint(s, "id"));
	json_object_put(reply);
	return 0;
}

/* ---- detach, snapshot, status, list, shutdown --------------------------- */

/* Parse [--socket] [--json] [--discard] and up to max_args positionals. */
static int parse_simple(const char *cmd, const char *args, const char *what, int argc, char **argv,
			struct client_opts *o, bool *discard, int min_args, int max_args)
{
	static const struct option longopts[] = {
		COMMON_LONGOPTS,
		{"discard", no_argument, NULL, OPT_DISCARD},
		{0},
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (common_opt(c, o))
			continue;
		if (c == OPT_DISCARD && discard) {
			*discard = true;
			continue;
		}
		if (c == 'h') {
			simple_usage(cmd, args, what, stdout);
			exit(0);
		}
		return cli_usage_error(cmd, "unknown option or missing argument '%s'",
				       argv[optind - 1]);
	}
	if (argc - optind < min_args)
		return cli_usage_error(cmd, "%s", "give the session id");
	if (argc - optind > max_args)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + max_args]);
	return 0;
}

static void print_duration(double s)
{
	if (s < 60)
		printf("%.1fs", s);
	else if (s < 3600)
		printf("%dm%02ds", (int)s / 60, (int)s % 60);
	else
		printf("%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void print_session(json_object *s)
{
	const char *v;

	printf("session:     %lld\n", (long long)jint(s, "id"));
	printf("pid:         %lld (%s)\n", (long long)jint(s, "pid"),
	       (v = jstr(s, "comm")) ? v : "?");
	printf("owner uid:   %lld\n", (long long)jint(s, "uid"));
	printf("state:       %s\n", (v = jstr(s, "state")) ? v : "?");
	printf("mode:        %s", (v = jstr(s, "mode")) ? v : "?");
	if (jdbl(s, "rotate_s") > 0)
		printf(" (every %gs, keep %lld)", jdbl(s, "rotate_s"), (long long)jint(s, "keep"));
	printf("\nevent:       %s at %lld Hz\n", (v = jstr(s, "event")) ? v : "?",
	       (long long)jint(s, "freq"));
	printf("elapsed:     ");
	print_duration(jdbl(s, "elapsed_s"));
	if (jdbl(s, "duration_s") > 0) {
		printf(" of ");
		print_duration(jdbl(s, "duration_s"));
	}
	printf("\nsamples:     %lld (%lld lost), %lld threads\n", (long long)jint(s, "samples"),
	       (long long)jint(s, "lost"), (long long)jint(s, "threads"));
	printf("runs:        %lld written", (long long)jint(s, "runs_written"));
	if ((v = jstr(s, "last_run")))
		printf(", newest %s", v);
	printf("\n");
	if ((v = jstr(s, "last_error")))
		printf("last error:  %s\n", v);
}

int cmd_detach(int argc, char **argv)
{
	struct client_opts o = {.socket = default_socket()};
	struct stoke_request req;
	json_object *reply = NULL;
	const char *run;
	bool discard = false;
	int r;

	r = parse_simple("detach", "ID [--discard] ",
			 "End a session and write its final profile (--discard: without writing).",
			 argc, argv, &o, &discard, 1, 1);
	if (r)
		return r;
	stoke_request_init(&req);
	req.op = STOKE_OP_DETACH;
	req.discard = discard;
	if ((r = parse_id("detach", argv[optind], &req.session)))
		return r;
	r = exchange(&o, &req, -1, &reply);
	if (r)
		return r;
	if (!o.json) {
		run = jstr(reply, "run");
		if (run)
			printf("session %llu detached; profile in %s\n",
			       (unsigned long long)req.session, run);
		else
			printf("session %llu detached\n", (unsigned long long)req.session);
	}
	json_object_put(reply);
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	struct client_opts o = {.socket = default_socket()};
	struct stoke_request req;
	json_object *reply = NULL;
	const char *run;
	int r;

	r = parse_simple("snapshot", "ID ",
			 "Write the profile collected so far as a run directory; the session "
			 "keeps running.",
			 argc, argv, &o, NULL, 1, 1);
	if (r)
		return r;
	stoke_request_init(&req);
	req.op = STOKE_OP_SNAPSHOT;
	if ((r = parse_id("snapshot", argv[optind], &req.session)))
		return r;
	r = exchange(&o, &req, -1, &reply);
	if (r)
		return r;
	if (!o.json && (run = jstr(reply, "run")))
		printf("%s\n", run);
	json_object_put(reply);
	return 0;
}

int cmd_list(int argc, char **argv)
{
	struct client_opts o = {.socket = default_socket()};
	struct stoke_request req;
	json_object *reply = NULL, *a;
	size_t n;
	int r;

	r = parse_simple("list", "", "List sessions (your own; root sees every session).", argc,
			 argv, &o, NULL, 0, 0);
	if (r)
		return r;
	stoke_request_init(&req);
	req.op = STOKE_OP_LIST;
	r = exchange(&o, &req, -1, &reply);
	if (r)
		return r;
	if (!o.json) {
		a = json_object_object_get(reply, "sessions");
		n = a ? json_object_array_length(a) : 0;
		printf("%-6s %-8s %-6s %-16s %-10s %-8s %9s %10s %6s  %s\n", "ID", "PID", "UID",
		       "COMM", "MODE", "STATE", "ELAPSED", "SAMPLES", "LOST", "LAST RUN");
		for (size_t i = 0; i < n; i++) {
			json_object *s = json_object_array_get_idx(a, i);
			char el[32];

			snprintf(el, sizeof(el), "%.1fs", jdbl(s, "elapsed_s"));
			printf("%-6lld %-8lld %-6lld %-16.16s %-10s %-8s %9s %10lld %6lld  %s\n",
			       (long long)jint(s, "id"), (long long)jint(s, "pid"),
			       (long long)jint(s, "uid"), jstr_or(s, "comm", "?"),
			       jstr_or(s, "mode", "?"), jstr_or(s, "state", "?"), el,
			       (long long)jint(s, "samples"), (long long)jint(s, "lost"),
			       jstr_or(s, "last_run", "-"));
		}
	}
	json_object_put(reply);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct client_opts o = {.socket = default_socket()};
	struct stoke_request req;
	json_object *reply = NULL, *d;
	int r;

	r = parse_simple("status", "[ID] ", "Show the daemon's status, or one session's.", argc,
			 argv, &o, NULL, 0, 1);
	if (r)
		return r;
	stoke_request_init(&req);
	req.op = STOKE_OP_STATUS;
	if (optind < argc && (r = parse_id("status", argv[optind], &req.session)))
		return r;
	r = exchange(&o, &req, -1, &reply);
	if (r)
		return r;
	if (!o.json) {
		if (req.session) {
			print_session(json_object_object_get(reply, "session"));
		} else {
			const char *v;

			d = json_object_object_get(reply, "daemon");
			printf("stoked %s, pid %lld, up ", (v = jstr(d, "version")) ? v : "?",
			       (long long)jint(d, "pid"));
			print_duration(jdbl(d, "uptime_s"));
			printf("\nsessions: %lld running (at most %lld)\nclients:  %lld (at most "
			       "%lld)\nsocket:   %s\n",
			       (long long)jint(d, "sessions"), (long long)jint(d, "max_sessions"),
			       (long long)jint(d, "clients"), (long long)jint(d, "max_clients"),
			       o.socket);
		}
	}
	json_object_put(reply);
	return 0;
}

int cmd_shutdown(int argc, char **argv)
{
	struct client_opts o = {.socket = default_socket()};
	struct stoke_request req;
	json_object *reply = NULL;
	int r;

	r = parse_simple("shutdown", "",
			 "Stop stoked: every session writes its final profile first.", argc, argv,
			 &o, NULL, 0, 0);
	if (r)
		return r;
	stoke_request_init(&req);
	req.op = STOKE_OP_SHUTDOWN;
	r = exchange(&o, &req, -1, &reply);
	if (r)
		return r;
	if (!o.json)
		printf("stoked is shutting down\n");
	json_object_put(reply);
	return 0;
}
