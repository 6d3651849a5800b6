/*
 * stoked: the profiling daemon. It listens on a UNIX stream socket for
 * newline-delimited JSON requests (protocol.h, docs/protocol.md), runs many
 * sessions at once (sessions.h), and writes their run directories into the
 * directories its clients pass.
 *
 *   stoked [--socket PATH] [--foreground] [--output-root DIR]
 *          [--max-sessions N] [--max-clients N] [--socket-mode MODE]
 *          [--socket-group GROUP] [--admin-group GROUP] [--log FILE]
 *          [--max-user-memory SIZE] [--max-user-fds N] [--debuginfod URL]
 *          [--http ADDR:PORT [--http-allow CIDR]... [--http-token-file FILE]
 *           [--http-targets LIST]... [--http-max-seconds N]
 *           [--http-max-scrapes N]]
 *
 * One epoll loop serves the listening socket, client sockets, each
 * session's ring fds and target pidfd, one periodic timerfd (drain, rotate,
 * deadlines, re-checks), a signalfd (SIGTERM/SIGINT: flush every session
 * and exit 0; SIGHUP: reopen the log) and an eventfd that worker threads
 * signal. Everything slow runs on a worker thread per job (sessions.h:
 * attach, snapshot, rotation, the final write), so the loop only ever does
 * short work and answers every client promptly; a client whose request
 * started a job waits for its reply (and sends nothing else meanwhile, so
 * replies stay in order) while everybody else is served.
 *
 * Every resource a client can grow has a limit: sessions, clients, request
 * size, the reply bytes queued for a client that does not read, and per
 * user (root excepted) half of the sessions and clients, a memory budget
 * and an fd budget. The last fds are root's: a user can never take the
 * daemon to its fd limit, and if it gets there anyway a spare fd lets it
 * answer (and root be served) instead of spinning on accept().
 */
#include "daemon/stoked.h"
#include "daemon/http.h"

/* ---- setup ------------------------------------------------------------- */

/* A socket file left by a daemon that was killed: if nobody answers on it,
 * remove it; if somebody does, another stoked is running. */
static int clear_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket; not touching it", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		log_error("another stoked is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		log_error("cannot check the socket %s: %s", path, strerror(errno));
		return -errno;
	}
	log_info("removing the stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_socket(struct daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = d->opt.socket;
	struct stat st;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = make_parent_dir(path);
	if (r < 0) {
		log_error("cannot create the directory of %s: %s", path, strerror(-r));
		return r;
	}
	r = clear_stale_socket(path);
	if (r < 0)
		return r;
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0)
		return -errno;
	/* Bind with a tight umask so the socket is never more open than
	 * asked for, even for an instant; then set the exact mode. */
	old = umask(0177);
	r = bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		log_error("cannot bind %s: %s", path, strerror(-r));
		return r;
	}
	if (d->opt.group) {
		struct group *g = getgrnam(d->opt.group);

		if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
			log_error("cannot give %s to group %s: %s", path, d->opt.group,
				  g ? strerror(errno) : "no such group");
			return -EINVAL;
		}
	}
	if (chmod(path, d->opt.mode) < 0 || stat(path, &st) < 0) {
		r = -errno;
		log_error("cannot set the mode of %s: %s", path, strerror(-r));
		return r;
	}
	d->sock_dev = st.st_dev;
	d->sock_ino = st.st_ino;
	if (listen(d->listen_fd, 128) < 0)
		return -errno;
	return stoked_watch(d, W_LISTEN, d->listen_fd, EPOLLIN);
}

static int daemonize(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		_exit(read(pfd[0], &c, 1) == 1 ? 0 : 1);
	}
	close(pfd[0]);
	setsid();
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	return pfd[1];
}

static void usage(FILE *f)
{
	fputs("usage: stoked [options]\n"
	      "\n"
	      "The stoke profiling daemon: profiles processes on request from\n"
	      "`stoke attach` and friends over a UNIX socket.\n"
	      "\n"
	      "  -s, --socket PATH        listen here (default " DEFAULT_SOCKET ",\n"
	      "                           or $STOKE_SOCKET)\n"
	      "  -f, --foreground         do not detach (systemd, tests)\n"
	      "      --output-root DIR    run directories of requests that pass no\n"
	      "                           directory go to DIR/UID (default " DEFAULT_OUTPUT_ROOT
	      ")\n"
	      "      --max-sessions N     running sessions at most (default 64)\n"
	      "      --max-samples N      samples one session's profile may hold; the\n"
	      "                           session ends there (default 10000000; 0: none)\n"
	      "      --max-clients N      connected clients at most (default 64)\n"
	      "      --socket-mode MODE   octal mode of the socket (default 0660)\n"
	      "      --socket-group GROUP group that owns the socket (who may connect)\n"
	      "      --admin-group GROUP  members (at connect time) may profile any\n"
	      "                           process, as root may\n"
	      "      --max-user-memory SIZE  memory the sessions of one user may hold,\n"
	      "                           estimated (default 512M; K, M, G suffixes; 0: none)\n"
	      "      --max-user-fds N     file descriptors one user's clients and\n"
	      "                           sessions may hold (default: a quarter of\n"
	      "                           the fd limit)\n"
	      "      --debuginfod URL     fetch missing debug info by build-id from URL\n"
	      "                           (default: $STOKE_DEBUGINFOD_URLS; none)\n"
	      "      --http ADDR:PORT     serve pprof for scrapers (Parca, Pyroscope,\n"
	      "                           go tool pprof) there; off by default\n"
	      "      --http-allow CIDR    peers beyond loopback that may connect\n"
	      "                           (repeatable; needs --http-token-file)\n"
	      "      --http-token-file FILE  the bearer token every request must send\n"
	      "      --http-targets LIST  what may be profiled over HTTP: uid:N, user:NAME,\n"
	      "                           comm:NAME, comma-separated (repeatable; none\n"
	      "                           by default)\n"
	      "      --http-max-seconds N longest seconds= a scrape may ask (default 60)\n"
	      "      --http-max-scrapes N scrapes at once (default 2)\n"
	      "      --log FILE           log here (reopened on SIGHUP); default stderr,\n"
	      "                           or " DEFAULT_LOG " when detached\n"
	      "  -h, --help               this help\n"
	      "      --version            print the version\n",
	      f);
}

static int parse_uint(const char *s, unsigned min, unsigned max, int base, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* "512M", "2G", "1048576": bytes. */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	else if (*end)
		return -EINVAL;
	if (shift && end[1])
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum {
		O_ROOT = 256,
		O_MAXS,
		O_MAXC,
		O_MODE,
		O_GROUP,
		O_LOG,
		O_VERSION,
		O_MAXSAMPLES,
		O_ADMIN,
		O_MAXMEM,
		O_MAXFDS,
		O_HTTP,
		O_DEBUGINFOD
	};
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},
		{"output-root", required_argument, NULL, O_ROOT},
		{"max-sessions", required_argument, NULL, O_MAXS},
		{"max-clients", required_argument, NULL, O_MAXC},
		{"max-samples", required_argument, NULL, O_MAXSAMPLES},
		{"socket-mode", required_argument, NULL, O_MODE},
		{"socket-group", required_argument, NULL, O_GROUP},
		{"admin-group", required_argument, NULL, O_ADMIN},
		{"max-user-memory", required_argument, NULL, O_MAXMEM},
		{"max-user-fds", required_argument, NULL, O_MAXFDS},
		{"log", required_argument, NULL, O_LOG},
		{"debuginfod", required_argument, NULL, O_DEBUGINFOD},
		{"http", required_argument, NULL, O_HTTP},
		{"http-allow", required_argument, NULL, O_HTTP},
		{"http-token-file", required_argument, NULL, O_HTTP},
		{"http-targets", required_argument, NULL, O_HTTP},
		{"http-max-seconds", required_argument, NULL, O_HTTP},
		{"http-max-scrapes", required_argument, NULL, O_HTTP},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{0},
	};
	unsigned v;
	int c, idx = 0;

	o->socket = getenv("STOKE_SOCKET") && *getenv("STOKE_SOCKET") ? getenv("STOKE_SOCKET")
								      : DEFAULT_SOCKET;
	o->output_root = DEFAULT_OUTPUT_ROOT;
	o->mode = 0660;
	o->max_sessions = DEFAULT_MAX_SESSIONS;
	o->max_clients = DEFAULT_MAX_CLIENTS;
	o->max_user_memory = DEFAULT_MAX_USER_MEMORY;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "s:fh", longopts, &idx)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case O_ROOT:
			o->output_root = optarg;
			break;
		case O_MAXS:
			if (parse_uint(optarg, 1, 100000, 10, &o->max_sessions) < 0)
				goto bad_value;
			break;
		case O_MAXSAMPLES: {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-')
				goto bad_value;
			stoked_sessions_set_max_samples(n);
			break;
		}
		case O_MAXC:
			if (parse_uint(optarg, 1, 100000, 10, &o->max_clients) < 0)
				goto bad_value;
			break;
		case O_MODE:
			if (parse_uint(optarg, 0, 0777, 8, &v) < 0)
				goto bad_value;
			o->mode = (mode_t)v;
			break;
		case O_GROUP:
			o->group = optarg;
			break;
		case O_ADMIN:
			o->admin_group = optarg;
			break;
		case O_MAXMEM:
			if (parse_size(optarg, &o->max_user_memory) < 0)
				goto bad_value;
			break;
		case O_MAXFDS:
			if (parse_uint(optarg, 8, 1U << 30, 10, &o->max_user_fds) < 0)
				goto bad_value;
			break;
		case O_LOG:
			o->log = optarg;
			break;
		case O_DEBUGINFOD:
			o->debuginfod = optarg;
			break;
		case O_HTTP:
			if (stoked_http_option(longopts[idx].name, optarg) < 0) {
				fprintf(stderr,
					"stoked: invalid value '%s' for --%s (see 'stoked --help')\n",
					optarg, longopts[idx].name);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case O_VERSION:
			printf("stoked %s\n", STOKE_VERSION);
			exit(0);
		default:
			fprintf(stderr,
				"stoked: unknown option or missing argument: '%s' (see "
				"'stoked --help')\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "stoked: unexpected argument '%s' (see 'stoked --help')\n",
			argv[optind]);
		return 2;
	}
	return 0;
bad_value:
	/* Every value checked above is a long option's, and getopt_long set idx
	 * to it; argv[optind - 1] is the value itself when it came as its own
	 * argument. */
	fprintf(stderr, "stoked: invalid value '%s' for --%s (see 'stoked --help')\n", optarg,
		longopts[idx].name);
	return 2;
}

/* Flush every running session (their final profiles), close everything. */
static void teardown(struct daemon *d)
{
	d->stopping = true; /* sessions end synchronously from here on */
	stoked_http_stop();
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		int r;

		/* A job in flight finishes first (its write, its attach). */
		stoked_session_wait(ds);
		stoked_session_job_done(ds, &r, NULL, NULL, 0);
		if (stoked_session_active(ds))
			stoked_end_session(d, ds, false, "stoked is stopping", NULL, 0);
		stoked_session_free(ds);
	}
	free(d->sessions);
	while (d->nclients) {
		struct client *c = d->clients[0];

		stoked_client_flush(d, c); /* the shutdown reply, best effort */
		stoked_client_close(d, c);
	}
	free(d->clients);
	if (d->listen_fd >= 0) {
		struct stat st;

		/* Remove the socket only if it is still ours: a second
		 * daemon may have replaced it. */
		if (stat(d->opt.socket, &st) == 0 && st.st_dev == d->sock_dev &&
		    st.st_ino == d->sock_ino)
			unlink(d->opt.socket);
		close(d->listen_fd);
	}
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	if (d->job_fd >= 0)
		close(d->job_fd);
	while (d->nspare)
		close(d->spare[--d->nspare]);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->ep >= 0)
		close(d->ep);
	log_info("stopped");
	stoke_log_set_file(NULL);
	if (d->logf)
		fclose(d->logf);
}

int main(int argc, char **argv)
{
	struct daemon d = {.ep = -1,
			   .listen_fd = -1,
			   .sig_fd = -1,
			   .timer_fd = -1,
			   .job_fd = -1,
			   .admin_gid = (gid_t)-1,
			   .next_id = 1};
	struct epoll_event evs[64];
	int ready_fd = -1, r;

	stoke_log_set_prog("stoked");
	r = parse_options(argc, argv, &d.opt);
	if (r)
		return r;
	/* Symbolization must never wait on the network (as in stoke) unless
	 * root configured a debuginfod server. */
	if (d.opt.debuginfod)
		setenv("DEBUGINFOD_URLS", d.opt.debuginfod, 1);
	else if (getenv("STOKE_DEBUGINFOD_URLS"))
		setenv("DEBUGINFOD_URLS", getenv("STOKE_DEBUGINFOD_URLS"), 1);
	else
		unsetenv("DEBUGINFOD_URLS");
	if (getenv("DEBUGINFOD_URLS")) {
		/* libdebuginfod caches under $HOME, which a service may not
		 * have, and waits 90 s for a server, three times, by default:
		 * a server that does not answer would stall a module's
		 * symbolization (and a scrape) 270 s. The symbolizer then
		 * leaves the build-id alone for 10 minutes. */
		if (!getenv("DEBUGINFOD_CACHE_PATH")) {
			setenv("DEBUGINFOD_CACHE_PATH", DEFAULT_DEBUGINFOD_CACHE, 1);
			(void)!stoke_mkdir_p(DEFAULT_DEBUGINFOD_CACHE);
		}
		if (!getenv("DEBUGINFOD_TIMEOUT"))
			setenv("DEBUGINFOD_TIMEOUT", "5", 1);
		if (!getenv("DEBUGINFOD_RETRY_LIMIT"))
			setenv("DEBUGINFOD_RETRY_LIMIT", "0", 1);
	}
	if (!d.opt.foreground) {
		if (!d.opt.log)
			d.opt.log = DEFAULT_LOG;
		ready_fd = daemonize();
		if (ready_fd < 0) {
			log_error("cannot detach: %s", strerror(-ready_fd));
			return 1;
		}
	}
	r = stoked_open_log(&d);
	if (r < 0) {
		log_error("cannot open the log %s: %s", d.opt.log, strerror(-r));
		return 1;
	}
	/* Supplementary groups would be checked on top of a requester's ids
	 * when writing as them (sessions.c): a root daemon needs none. */
	if (geteuid() == 0)
		(void)!setgroups(0, NULL);
	d.fd_limit = stoke_driver_raise_nofile();
	/* Every session has a worker thread, and glibc gives threads arenas
	 * of their own (up to 8 per core), each keeping what was freed in
	 * it: the daemon's memory would grow with the number of sessions it
	 * ever ran (measured: 8 MB over 180 attach/detach cycles with two
	 * arenas, 1.7 MB with one). Malloc's critical sections are short, so
	 * sharing one arena costs the loop little. */
	mallopt(M_ARENA_MAX, 1);
	if (d.opt.admin_group) {
		struct group *g = getgrnam(d.opt.admin_group);

		if (!g) {
			log_error("--admin-group %s: no such group", d.opt.admin_group);
			return 1;
		}
		d.admin_gid = g->gr_gid;
	}
	d.started = stoked_mono_s();
	r = stoked_setup_loop(&d);
	if (r < 0) {
		log_error("cannot set up the event loop: %s", strerror(-r));
		teardown(&d);
		return 1;
	}
	r = listen_socket(&d);
	if (r < 0) {
		teardown(&d);
		return 1;
	}
	r = stoked_http_start();
	if (r < 0) {
		teardown(&d);
		return 1;
	}
	if (getenv("DEBUGINFOD_URLS"))
		log_info("debuginfod: %s (cache %s, timeout %s s)", getenv("DEBUGINFOD_URLS"),
			 getenv("DEBUGINFOD_CACHE_PATH"), getenv("DEBUGINFOD_TIMEOUT"));
	log_info("stoke %s listening on %s (mode %04o, at most %u sessions, %u clients)",
		 STOKE_VERSION, d.opt.socket, (unsigned)d.opt.mode, d.opt.max_sessions,
		 d.opt.max_clients);
	stoke_sd_notify("READY=1\nSTATUS=listening");
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "", 1);
		close(ready_fd);
	}
	while (!d.stopping) {
		int n = epoll_wait(d.ep, evs, (int)ARRAY_SIZE(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !d.stopping; i++)
			stoked_dispatch(&d, &evs[i]);
	}
	stoke_sd_notify("STOPPING=1");
	teardown(&d);
	return 0;
}

