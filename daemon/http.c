/*
 * stoked's pprof scrape endpoint (see http.h): configuration, who may
 * connect and what may be profiled, the scrapes themselves, the labels
 * added to every profile, /debug/pprof/ and /metrics.
 */
#include "daemon/stoked.h"
#include "daemon/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <zlib.h>

#include "formats/pb.h"
#include "formats/pprof.h"
#include "session/session.h"
#include "symbolizer/symbolizer.h"

#define MAX_ALLOW	 16
#define MAX_RULES	 64
#define MAX_COMM_TARGETS 64
#define DEFAULT_MAX_SECONDS 60
#define DEFAULT_MAX_SCRAPES 2
/* Connections at once (scrapes, index and metrics requests together), and
 * per peer address: each holds a thread. */
#define MAX_CONNECTIONS	 16
#define MAX_PER_IP	 4
#define IDLE_TIMEOUT_S	 30
/* How often a scrape drains its rings. */
#define SCRAPE_DRAIN_MS 50

struct cidr {
	int family;
	uint8_t addr[16];
	unsigned bits;
};

enum rule_kind { R_UID, R_COMM };

struct rule {
	enum rule_kind kind;
	uid_t uid;
	char comm[16];
};

/* What the loop publishes each tick (stoked_http_publish). */
struct pub_session {
	uint64_t id;
	pid_t pid;
	uid_t owner;
	char comm[32];
	char state[12], mode[12];
	uint64_t samples, lost, unwind_failed;
	uint64_t runs;
};

/* A continuous session's latest rotation, gzipped pprof with labels. */
struct rotation {
	uint64_t id;
	uint8_t *gz;
	size_t len;
};

static struct {
	const char *listen;
	struct cidr allow[MAX_ALLOW];
	unsigned nallow;
	const char *token_file;
	char *token;
	struct rule rules[MAX_RULES];
	unsigned nrules;
	unsigned max_seconds, max_scrapes;
	struct MHD_Daemon *mhd;
	char host[256];
	atomic_bool stopping;
	atomic_uint in_flight;
	atomic_uint_fast64_t next_scrape;
	/* counters for /metrics */
	atomic_uint_fast64_t scrapes_ok, scrapes_refused, scrapes_error, scrapes_busy;
	atomic_uint_fast64_t scrape_samples, scrape_lost, scrape_unwind_failed;
	pthread_mutex_t lock; /* everything below */
	struct pub_session *pub;
	size_t npub;
	uint64_t pub_running, pub_ended;
	struct rotation *rots;
	size_t nrots, rots_cap;
	struct ratelimit rl;
} H = {
	.max_seconds = DEFAULT_MAX_SECONDS,
	.max_scrapes = DEFAULT_MAX_SCRAPES,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- configuration ----------------------------------------------------- */

static int parse_cidr(const char *s, struct cidr *ret)
{
	char buf[64], *slash;
	unsigned max;
	char *end;
	long bits;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(ret, 0, sizeof(*ret));
	if (inet_pton(AF_INET, buf, ret->addr) == 1) {
		ret->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, ret->addr) == 1) {
		ret->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	ret->bits = max;
	if (slash) {
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || bits < 0 || bits > (long)max)
			return -EINVAL;
		ret->bits = (unsigned)bits;
	}
	return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full))
		return false;
	if (!rest)
		return true;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* A peer's address as (family, bytes); an IPv4-mapped IPv6 address is
 * IPv4. Returns false for anything else. */
static bool peer_bytes(const struct sockaddr *sa, int *family, uint8_t out[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		*family = AF_INET;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (!memcmp(a, mapped, 12)) {
			memcpy(out, a + 12, 4);
			*family = AF_INET;
		} else {
			memcpy(out, a, 16);
			*family = AF_INET6;
		}
		return true;
	}
	return false;
}

static bool peer_is_loopback(const struct sockaddr *sa)
{
	static const uint8_t v6lo[16] = {[15] = 1};
	uint8_t b[16];
	int fam;

	if (!peer_bytes(sa, &fam, b))
		return false;
	return fam == AF_INET ? b[0] == 127 : !memcmp(b, v6lo, 16);
}

static bool peer_allowed(const struct sockaddr *sa)
{
	uint8_t b[16];
	int fam;

	if (peer_is_loopback(sa))
		return true;
	if (!peer_bytes(sa, &fam, b))
		return false;
	for (unsigned i = 0; i < H.nallow; i++)
		if (H.allow[i].family == fam && prefix_match(b, H.allow[i].addr, H.allow[i].bits))
			return true;
	return false;
}

/* "uid:1000,user:www-data,comm:nginx" */
static int parse_rules(const char *arg)
{
	_cleanup_free_ char *copy = strdup(arg);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct rule *r;
		char *colon = strchr(tok, ':');

		if (H.nrules >= MAX_RULES || !colon || !colon[1])
			return -EINVAL;
		*colon = '\0';
		r = &H.rules[H.nrules];
		if (!strcmp(tok, "uid")) {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(colon + 1, &end, 10);
			if (errno || *end || colon[1] == '-' || v >= (uid_t)-1)
				return -EINVAL;
			r->kind = R_UID;
			r->uid = (uid_t)v;
		} else if (!strcmp(tok, "user")) {
			struct passwd *pw = getpwnam(colon + 1);

			if (!pw) {
				fprintf(stderr, "stoked: --http-targets: no such user '%s'\n",
					colon + 1);
				return -EINVAL;
			}
			r->kind = R_UID;
			r->uid = pw->pw_uid;
		} else if (!strcmp(tok, "comm")) {
			if (strlen(colon + 1) >= sizeof(r->comm))
				return -EINVAL;
			r->kind = R_COMM;
			snprintf(r->comm, sizeof(r->comm), "%s", colon + 1);
		} else {
			return -EINVAL;
		}
		H.nrules++;
	}
	return 0;
}

int stoked_http_option(const char *opt, const char *arg)
{
	unsigned long v;
	char *end;

	if (!strcmp(opt, "http")) {
		H.listen = arg;
		return 0;
	}
	if (!strcmp(opt, "http-allow")) {
		if (H.nallow >= MAX_ALLOW || parse_cidr(arg, &H.allow[H.nallow]) < 0)
			return -EINVAL;
		H.nallow++;
		return 0;
	}
	if (!strcmp(opt, "http-token-file")) {
		H.token_file = arg;
		return 0;
	}
	if (!strcmp(opt, "http-targets"))
		return parse_rules(arg);
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || arg[0] == '-')
		return -EINVAL;
	if (!strcmp(opt, "http-max-seconds") && v >= 1 && v <= 3600) {
		H.max_seconds = (unsigned)v;
		return 0;
	}
	if (!strcmp(opt, "http-max-scrapes") && v >= 1 && v <= MAX_CONNECTIONS) {
		H.max_scrapes = (unsigned)v;
		return 0;
	}
	return -EINVAL;
}

bool stoked_http_enabled(void)
{
	return H.listen != NULL;
}

/* ---- what may be profiled ---------------------------------------------- */

struct target_facts {
	pid_t pid;
	uid_t uid[3]; /* real, effective, saved */
	gid_t egid;
	char comm[32];
};

static int read_facts(pid_t pid, struct target_facts *ret)
{
	struct stoke_proc_status st;
	_cleanup_free_ char *text = NULL;
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	n = stoke_read_file(path, &text, 64 * 1024);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	if (stoke_auth_parse_status(text, (size_t)n, &st) < 0)
		return -EINVAL;
	/* A thread id opens /proc/TID too: only a process's own pid names
	 * it (so stoked's threads are never a target either). */
	{
		const char *tg = strstr(text, "\nTgid:");

		if (!tg || strtol(tg + 6, NULL, 10) != pid)
			return -ESRCH;
	}
	ret->pid = pid;
	memcpy(ret->uid, st.uid, sizeof(ret->uid));
	ret->egid = st.gid[1];
	if (stoke_driver_read_comm(pid, ret->comm, sizeof(ret->comm)) < 0)
		return -ESRCH;
	return 0;
}

/* Root's --http-targets: a uid rule needs all of the target's real,
 * effective and saved uids to be listed (a setuid program run by a listed
 * user is not that user's); a comm rule matches the name. */
static bool facts_allowed(const struct target_facts *t)
{
	bool uid_ok = true;

	for (int k = 0; k < 3; k++) {
		bool listed = false;

		for (unsigned i = 0; i < H.nrules; i++)
			listed |= H.rules[i].kind == R_UID && H.rules[i].uid == t->uid[k];
		uid_ok &= listed;
	}
	if (uid_ok)
		return true;
	for (unsigned i = 0; i < H.nrules; i++)
		if (H.rules[i].kind == R_COMM && !strcmp(H.rules[i].comm, t->comm))
			return true;
	return false;
}

/* A session (the loop's) is shown when its owner is a listed uid or its
 * target's comm is listed. */
static bool session_visible(const struct pub_session *ps)
{
	for (unsigned i = 0; i < H.nrules; i++) {
		if (H.rules[i].kind == R_UID && H.rules[i].uid == ps->owner)
			return true;
		if (H.rules[i].kind == R_COMM && !strcmp(H.rules[i].comm, ps->comm))
			return true;
	}
	return false;
}

/* ---- labels ------------------------------------------------------------ */

struct label_target {
	pid_t pid;
	char comm[32];
	char *exe;
	char *build_id;
};

struct labels {
	const char *host;
	const char *session;
	struct label_target *t;
	size_t nt;
};

struct strtab {
	const char **s;
	size_t n, cap;
	size_t base; /* index of the first added string */
};

static uint32_t strtab_add(struct strtab *st, const char *s)
{
	for (size_t i = 0; i < st->n; i++)
		if (!strcmp(st->s[i], s))
			return (uint32_t)(st->base + i);
	if (STOKE_GROW(st->s, st->cap, st->n + 1) < 0)
		return 0; /* "": the label shows empty rather than failing */
	st->s[st->n++] = s;
	return (uint32_t)(st->base + st->n - 1);
}

static void str_label(struct pb_buf *sub, struct strtab *st, const char *key, const char *val)
{
	struct pb_buf l = {0};

	pb_uint(&l, 1, strtab_add(st, key));
	pb_uint(&l, 2, strtab_add(st, val ? val : ""));
	pb_message(sub, 3, &l);
	pb_free(&l);
}

static void num_label(struct pb_buf *sub, struct strtab *st, const char *key, int64_t v)
{
	struct pb_buf l = {0};

	pb_uint(&l, 1, strtab_add(st, key));
	pb_uint(&l, 3, (uint64_t)v);
	pb_message(sub, 3, &l);
	pb_free(&l);
}

static const struct label_target *target_of_tid(const struct labels *lb,
						const struct stoke_profile *p, int64_t tid)
{
	const struct stoke_pthread *th = tid >= 0 ? stoke_profile_find_thread(p, (uint32_t)tid) : NULL;

	if (lb->nt == 1 || !th)
		return lb->nt ? &lb->t[0] : NULL;
	for (size_t i = 0; i < lb->nt; i++)
		if ((uint32_t)lb->t[i].pid == th->pid)
			return &lb->t[i];
	return NULL;
}

/*
 * The labels Parca and Pyroscope key targets by, on every Sample (host,
 * pid, comm, exe, build_id, session) and as comment[] lines. stoke's
 * writer leaves both out (its metadata hides in the last string, as
 * pprof.h says), so they are added to its encoding here: each Sample is
 * copied with the label messages appended, the new strings go just before
 * the metadata string (which stays last, so `stoke report` still reads
 * the file; no Profile field refers to a string past the model's), and
 * the comments follow at the end.
 */
static int add_labels(const uint8_t *buf, size_t len, const struct stoke_profile *p,
		      const struct labels *lb, struct pb_buf *out)
{
	struct pb_reader r = {buf, buf + len};
	struct strtab st = {0};
	struct pb_field f;
	size_t nstrings = 0, si = 0;
	int64_t k_tid = -1;
	char line[1024];
	char **comments = NULL;
	size_t ncomments = 0;
	int ret = 0;

	/* Pass 1: the string table's size and the thread_id key. */
	while (pb_next(&r, &f))
		if (f.number == 6 && f.wire == 2) {
			size_t n = (size_t)(f.sub.end - f.sub.p);

			if (n == strlen("thread_id") && !memcmp(f.sub.p, "thread_id", n))
				k_tid = (int64_t)nstrings;
			nstrings++;
		}
	if (r.p != r.end || nstrings == 0)
		return -EINVAL;
	st.base = nstrings - 1; /* the new strings take the metadata's place */
	/* Pass 2. */
	r = (struct pb_reader){buf, buf + len};
	while (pb_next(&r, &f)) {
		if (f.number == 2 && f.wire == 2) {
			struct pb_reader sr = f.sub;
			struct pb_field sf;
			struct pb_buf sub = {0};
			const struct label_target *t;
			int64_t tid = -1;

			while (pb_next(&sr, &sf)) {
				struct pb_reader lr;
				struct pb_field lf;
				int64_t key = -1, num = -1;

				if (sf.number != 3 || sf.wire != 2)
					continue;
				lr = sf.sub;
				while (pb_next(&lr, &lf)) {
					if (lf.number == 1)
						key = (int64_t)lf.value;
					else if (lf.number == 3)
						num = (int64_t)lf.value;
				}
				if (key == k_tid)
					tid = num;
			}
			pb_bytes(&sub, f.sub.p, (size_t)(f.sub.end - f.sub.p));
			str_label(&sub, &st, "host", lb->host);
			str_label(&sub, &st, "session", lb->session);
			t = target_of_tid(lb, p, tid);
			if (t) {
				num_label(&sub, &st, "pid", t->pid);
				str_label(&sub, &st, "comm", t->comm);
				str_label(&sub, &st, "exe", t->exe);
				str_label(&sub, &st, "build_id", t->build_id);
			}
			ret = sub.error;
			pb_message(out, 2, &sub);
			pb_free(&sub);
		} else if (f.number == 6 && f.wire == 2 && si++ == nstrings - 1) {
			/* The metadata string: the labels' strings first. */
			for (size_t i = 0; i < st.n; i++)
				pb_ldelim(out, 6, st.s[i], strlen(st.s[i]));
			pb_ldelim(out, 6, f.sub.p, (size_t)(f.sub.end - f.sub.p));
		} else {
			/* Copy the field as it was: its tag, then the rest. */
			pb_varint(out, (uint64_t)f.number << 3 | f.wire);
			if (f.wire == 0)
				pb_varint(out, f.value);
			else if (f.wire == 2) {
				pb_varint(out, (uint64_t)(f.sub.end - f.sub.p));
				pb_bytes(out, f.sub.p, (size_t)(f.sub.end - f.sub.p));
			} else if (f.wire == 1) {
				uint64_t v = f.value;

				pb_bytes(out, &v, 8);
			} else {
				uint32_t v = (uint32_t)f.value;

				pb_bytes(out, &v, 4);
			}
		}
	}
	/* Comments: strings of their own, after everything (go tool pprof
	 * prints each above its report, which is what they are for). */
	comments = calloc(4 + 4 * lb->nt, sizeof(*comments));
	if (!comments) {
		free(st.s);
		return -ENOMEM;
	}
	snprintf(line, sizeof(line), "host=%s", lb->host);
	comments[ncomments++] = strdup(line);
	snprintf(line, sizeof(line), "session=%s", lb->session);
	comments[ncomments++] = strdup(line);
	for (size_t i = 0; i < lb->nt; i++) {
		snprintf(line, sizeof(line), "pid=%d comm=%s exe=%s build_id=%s", lb->t[i].pid,
			 lb->t[i].comm, lb->t[i].exe ? lb->t[i].exe : "",
			 lb->t[i].build_id ? lb->t[i].build_id : "");
		comments[ncomments++] = strdup(line);
	}
	for (size_t i = 0; i < ncomments; i++) {
		if (!comments[i]) {
			ret = -ENOMEM;
			continue;
		}
		pb_ldelim(out, 6, comments[i], strlen(comments[i]));
		pb_uint(out, 13, nstrings + st.n + i);
	}
	for (size_t i = 0; i < ncomments; i++)
		free(comments[i]);
	free(comments);
	free(st.s);
	if (r.p != r.end)
		return -EINVAL;
	return ret ? ret : out->error;
}

static int gzip_mem(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len)
{
	z_stream z = {0};
	uLong bound;
	uint8_t *out;

	if (len > UINT32_MAX)
		return -E2BIG;
	/* windowBits 15 + 16: gzip framing, as Go's endpoint sends. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	bound = deflateBound(&z, (uLong)len);
	out = malloc(bound);
	if (!out) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return -EIO;
	}
	*ret_len = z.total_out;
	deflateEnd(&z);
	*ret = out;
	return 0;
}

/* p as gzipped pprof with lb's labels. */
static int encode_labelled(const struct stoke_profile *p, const struct labels *lb, uint8_t **ret,
			   size_t *ret_len)
{
	struct pb_buf out = {0};
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	int r;

	r = stoke_pprof_encode(p, &raw, &rawlen);
	if (r < 0)
		return r;
	r = add_labels(raw, rawlen, p, lb, &out);
	free(raw);
	if (r == 0)
		r = gzip_mem(out.data, out.len, ret, ret_len);
	pb_free(&out);
	return r;
}

static char *exe_build_id(pid_t pid)
{
	char path[64], *hex = NULL;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	if (stoke_elf_build_id_hex(fd, &hex) < 0)
		hex = NULL;
	close(fd);
	return hex;
}

static void label_target_free(struct label_target *t)
{
	free(t->exe);
	free(t->build_id);
}

/* ---- scrapes ----------------------------------------------------------- */

struct scrape {
	struct target_facts t[MAX_COMM_TARGETS];
	size_t nt;
	double seconds;
	char err[256];
	int status;    /* HTTP status of a failure */
	uint8_t *gz;   /* the result */
	size_t gzlen;
};

static int find_by_comm(struct scrape *sc, const char *comm)
{
	struct dirent *de;
	DIR *dir = opendir("/proc");

	if (!dir)
		return -errno;
	while ((de = readdir(dir)) && sc->nt < MAX_COMM_TARGETS) {
		struct target_facts tf;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == getpid())
			continue;
		if (read_facts((pid_t)pid, &tf) < 0 || strcmp(tf.comm, comm) || !facts_allowed(&tf))
			continue;
		sc->t[sc->nt++] = tf;
	}
	closedir(dir);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Profile sc's targets for sc->seconds in this (the connection's) thread. */
static int run_scrape(struct scrape *sc)
{
	struct stoke_session_opts so;
	struct stoke_session *s = NULL;
	struct stoke_session_stats stats;
	struct label_target lt[MAX_COMM_TARGETS] = {0};
	struct labels lb = {.host = H.host, .t = lt};
	char session[32];
	size_t attached = 0;
	double end;
	int r;

	/* Below the loop thread, as the sessions' workers are (nice is per
	 * thread on Linux; this one ends with its connection). */
	(void)!setpriority(PRIO_PROCESS, (id_t)gettid(), 5);
	stoke_session_opts_init(&so);
	so.max_samples = STOKED_DEFAULT_MAX_SAMPLES;
	/* Files the targets name are opened with the (first) target's ids:
	 * the profile never shows what its owner could not read. */
	so.file_creds = (struct stoke_file_creds){true, sc->t[0].uid[1], sc->t[0].egid};
	r = stoke_session_new(&so, &s);
	if (r < 0) {
		snprintf(sc->err, sizeof(sc->err), "cannot start a session: %s",
			 stoke_sampler_strerror(r));
		return r;
	}
	for (size_t i = 0; i < sc->nt; i++) {
		struct target_facts again;

		r = stoke_session_attach(s, sc->t[i].pid);
		if (r < 0) {
			snprintf(sc->err, sizeof(sc->err), "cannot attach to process %d: %s",
				 sc->t[i].pid, stoke_sampler_strerror(r));
			continue;
		}
		/* The pid may have been reused between the check and the
		 * attach: check what is attached now. */
		if (read_facts(sc->t[i].pid, &again) < 0 || !facts_allowed(&again)) {
			snprintf(sc->err, sizeof(sc->err), "process %d changed during the attach",
				 sc->t[i].pid);
			sc->status = MHD_HTTP_FORBIDDEN;
			stoke_session_free(s);
			return -EPERM;
		}
		lt[attached].pid = sc->t[i].pid;
		snprintf(lt[attached].comm, sizeof(lt[attached].comm), "%s", sc->t[i].comm);
		lt[attached].exe = stoke_driver_read_exe(sc->t[i].pid);
		lt[attached].build_id = exe_build_id(sc->t[i].pid);
		attached++;
	}
	lb.nt = attached;
	if (!attached) {
		stoke_session_free(s);
		return r < 0 ? r : -ESRCH;
	}
	end = stoked_mono_s() + sc->seconds;
	while (!atomic_load(&H.stopping) && stoked_mono_s() < end) {
		sleep_ms(SCRAPE_DRAIN_MS);
		r = stoke_session_process(s);
		if (r == -E2BIG)
			break; /* the sample limit: write what it has */
		if (r < 0) {
			snprintf(sc->err, sizeof(sc->err), "reading samples failed: %s",
				 strerror(-r));
			goto out;
		}
	}
	r = stoke_session_stop(s);
	if (r < 0 && r != -E2BIG) {
		snprintf(sc->err, sizeof(sc->err), "reading the last samples failed: %s",
			 strerror(-r));
		goto out;
	}
	stoke_session_get_stats(s, &stats);
	atomic_fetch_add(&H.scrape_samples, stats.samples);
	atomic_fetch_add(&H.scrape_lost, stats.lost);
	atomic_fetch_add(&H.scrape_unwind_failed,
			 stats.unwind_no_cfi + stats.unwind_bad_frame + stats.unwind_truncated +
				 stats.unwind_max_depth);
	snprintf(session, sizeof(session), "scrape-%llu",
		 (unsigned long long)atomic_fetch_add(&H.next_scrape, 1) + 1);
	lb.session = session;
	r = encode_labelled(stoke_session_profile(s), &lb, &sc->gz, &sc->gzlen);
	if (r < 0)
		snprintf(sc->err, sizeof(sc->err), "cannot encode the profile: %s", strerror(-r));
out:
	for (size_t i = 0; i < attached; i++)
		label_target_free(&lt[i]);
	stoke_session_free(s);
	return r < 0 ? r : 0;
}

/* ---- the loop's sessions ----------------------------------------------- */

void stoked_http_publish(struct daemon *d)
{
	struct pub_session *pub;
	uint64_t running = 0, ended = 0;
	size_t n = 0;
	double now = stoked_mono_s();

	if (!H.mhd)
		return;
	pub = calloc(d->nsessions ? d->nsessions : 1, sizeof(*pub));
	if (!pub)
		return;
	for (size_t i = 0; i < d->nsessions; i++) {
		struct stoked_session *ds = d->sessions[i];
		struct stoke_session_info info;
		struct stoke_session_stats st;

		stoked_session_info(ds, now, &info);
		stoked_session_stats(ds, &st);
		if (stoked_session_running(ds))
			running++;
		else
			ended++;
		pub[n] = (struct pub_session){
			.id = info.id,
			.pid = info.pid,
			.owner = info.uid,
			.samples = info.samples,
			.lost = info.lost,
			.unwind_failed = st.unwind_no_cfi + st.unwind_bad_frame +
					 st.unwind_truncated + st.unwind_max_depth,
			.runs = info.runs_written,
		};
		snprintf(pub[n].comm, sizeof(pub[n].comm), "%s", info.comm ? info.comm : "");
		snprintf(pub[n].state, sizeof(pub[n].state), "%s", info.state);
		snprintf(pub[n].mode, sizeof(pub[n].mode), "%s", info.mode);
		n++;
	}
	pthread_mutex_lock(&H.lock);
	free(H.pub);
	H.pub = pub;
	H.npub = n;
	H.pub_running = running;
	H.pub_ended = ended;
	/* Rotations of sessions that are gone go too. */
	for (size_t i = 0; i < H.nrots;) {
		bool found = false;

		for (size_t j = 0; j < n && !found; j++)
			found = pub[j].id == H.rots[i].id;
		if (found) {
			i++;
			continue;
		}
		free(H.rots[i].gz);
		H.rots[i] = H.rots[--H.nrots];
	}
	pthread_mutex_unlock(&H.lock);
}

void stoked_http_rotation(uint64_t id, pid_t pid, const char *comm,
			  const struct stoke_profile *p, const struct stoke_run_info *info)
{
	struct label_target lt = {.pid = pid};
	struct labels lb = {.host = H.host, .t = &lt, .nt = 1};
	char session[32];
	uint8_t *gz = NULL;
	size_t len = 0;
	bool stored = false;

	if (!H.mhd)
		return;
	snprintf(session, sizeof(session), "%llu", (unsigned long long)id);
	lb.session = session;
	snprintf(lt.comm, sizeof(lt.comm), "%s", comm ? comm : "");
	lt.exe = info && info->exe ? strdup(info->exe) : NULL;
	lt.build_id = info && info->build_id ? strdup(info->build_id) : NULL;
	if (encode_labelled(p, &lb, &gz, &len) < 0) {
		label_target_free(&lt);
		return;
	}
	label_target_free(&lt);
	pthread_mutex_lock(&H.lock);
	/* stoked_http_stop may have emptied the table meanwhile. */
	if (atomic_load(&H.stopping)) {
		pthread_mutex_unlock(&H.lock);
		free(gz);
		return;
	}
	for (size_t i = 0; i < H.nrots && !stored; i++)
		if (H.rots[i].id == id) {
			free(H.rots[i].gz);
			H.rots[i].gz = gz;
			H.rots[i].len = len;
			stored = true;
		}
	if (!stored && STOKE_GROW(H.rots, H.rots_cap, H.nrots + 1) == 0) {
		H.rots[H.nrots++] = (struct rotation){id, gz, len};
		stored = true;
	}
	pthread_mutex_unlock(&H.lock);
	if (!stored)
		free(gz);
}

/* ---- requests ---------------------------------------------------------- */

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type,
				void *buf, size_t len, bool gz)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	if (gz)
		MHD_add_response_header(resp, "Content-Disposition",
					"attachment; filename=\"profile\"");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
	r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return send_buf(c, status, "text/plain; charset=utf-8", s, (size_t)n, false);
}

/* A name as it may appear in text and in a Prometheus label value: control
 * characters, quotes and backslashes become '?'. */
static void clean(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
			*s = '?';
}

static void refused(const struct sockaddr *sa, const char *what)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	uint8_t b[16];
	int fam;
	bool log;

	atomic_fetch_add(&H.scrapes_refused, 1);
	if (sa && peer_bytes(sa, &fam, b))
		inet_ntop(fam, b, addr, sizeof(addr));
	pthread_mutex_lock(&H.lock);
	log = stoked_ratelimit_ok(&H.rl, stoked_mono_s(), "refused HTTP requests");
	pthread_mutex_unlock(&H.lock);
	if (log)
		log_warn("http: refused %s: %s", addr, what);
}

static bool token_ok(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	size_t n, m;
	unsigned char diff = 0;

	if (!H.token)
		return false;
	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	m = strlen(H.token);
	/* Constant time in the token's contents. */
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char)(H.token[i] ^ (i < n ? h[i] : 0));
	return diff == 0 && n == m;
}

static enum MHD_Result do_index(struct MHD_Connection *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return MHD_NO;
	fprintf(f, "stoked %s on %s: pprof scrape endpoint\n\n"
		   "/debug/pprof/profile?seconds=N&pid=PID   profile a process for N s\n"
		   "/debug/pprof/profile?seconds=N&comm=NAME the processes named NAME\n"
		   "/debug/pprof/profile?session=ID          a continuous session's latest "
		   "rotation\n/metrics                                 Prometheus metrics\n\n"
		   "sessions:\n",
		STOKE_VERSION, H.host);
	pthread_mutex_lock(&H.lock);
	for (size_t i = 0; i < H.npub; i++) {
		struct pub_session ps = H.pub[i];
		bool latest = false;

		if (!session_visible(&ps))
			continue;
		for (size_t j = 0; j < H.nrots; j++)
			latest |= H.rots[j].id == ps.id;
		clean(ps.comm);
		fprintf(f, "session %llu pid %d comm %s %s %s samples %llu lost %llu%s%llu\n",
			(unsigned long long)ps.id, ps.pid, ps.comm, ps.mode, ps.state,
			(unsigned long long)ps.samples, (unsigned long long)ps.lost,
			latest ? " latest: /debug/pprof/profile?session=" : "",
			latest ? (unsigned long long)ps.id : 0ULL);
	}
	pthread_mutex_unlock(&H.lock);
	if (fclose(f) != 0) {
		free(buf);
		return MHD_NO;
	}
	return send_buf(c, MHD_HTTP_OK, "text/plain; charset=utf-8", buf, len, false);
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static enum MHD_Result do_metrics(struct MHD_Connection *c)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} per_session[] = {
		{"stoked_session_samples", "Samples in the session's current profile.",
		 offsetof(struct pub_session, samples)},
		{"stoked_session_lost_samples",
		 "Samples lost (ring overflows, the sample limit) in the session's current "
		 "profile.",
		 offsetof(struct pub_session, lost)},
		{"stoked_session_unwind_failures",
		 "Stacks in the session's current profile whose unwinding stopped short "
		 "(no CFI, a bad frame, truncated, too deep).",
		 offsetof(struct pub_session, unwind_failed)},
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return MHD_NO;
	pthread_mutex_lock(&H.lock);
	metric_head(f, "stoked_sessions", "gauge", "Sessions stoked holds, by state.");
	fprintf(f, "stoked_sessions{state=\"running\"} %llu\n",
		(unsigned long long)H.pub_running);
	fprintf(f, "stoked_sessions{state=\"ended\"} %llu\n", (unsigned long long)H.pub_ended);
	for (size_t k = 0; k < ARRAY_SIZE(per_session); k++) {
		metric_head(f, per_session[k].name, "gauge", per_session[k].help);
		for (size_t i = 0; i < H.npub; i++) {
			struct pub_session ps = H.pub[i];

			if (!session_visible(&ps))
				continue;
			clean(ps.comm);
			fprintf(f, "%s{session=\"%llu\",pid=\"%d\",comm=\"%s\"} %llu\n",
				per_session[k].name, (unsigned long long)ps.id, ps.pid, ps.comm,
				(unsigned long long)*(const uint64_t *)((const char *)&ps +
									per_session[k].off));
		}
	}
	pthread_mutex_unlock(&H.lock);
	metric_head(f, "stoked_scrapes_total", "counter",
		    "Profile requests served over HTTP, by result.");
	fprintf(f, "stoked_scrapes_total{result=\"ok\"} %llu\n",
		(unsigned long long)atomic_load(&H.scrapes_ok));
	fprintf(f, "stoked_scrapes_total{result=\"refused\"} %llu\n",
		(unsigned long long)atomic_load(&H.scrapes_refused));
	fprintf(f, "stoked_scrapes_total{result=\"busy\"} %llu\n",
		(unsigned long long)atomic_load(&H.scrapes_busy));
	fprintf(f, "stoked_scrapes_total{result=\"error\"} %llu\n",
		(unsigned long long)atomic_load(&H.scrapes_error));
	metric_head(f, "stoked_scrape_samples_total", "counter",
		    "Samples in the profiles of finished scrapes.");
	fprintf(f, "stoked_scrape_samples_total %llu\n",
		(unsigned long long)atomic_load(&H.scrape_samples));
	metric_head(f, "stoked_scrape_lost_samples_total", "counter",
		    "Samples lost during finished scrapes.");
	fprintf(f, "stoked_scrape_lost_samples_total %llu\n",
		(unsigned long long)atomic_load(&H.scrape_lost));
	metric_head(f, "stoked_scrape_unwind_failures_total", "counter",
		    "Stacks of finished scrapes whose unwinding stopped short.");
	fprintf(f, "stoked_scrape_unwind_failures_total %llu\n",
		(unsigned long long)atomic_load(&H.scrape_unwind_failed));
	metric_head(f, "stoked_scrapes_in_flight", "gauge", "Scrapes running now.");
	fprintf(f, "stoked_scrapes_in_flight %u\n", atomic_load(&H.in_flight));
	if (fclose(f) != 0) {
		free(buf);
		return MHD_NO;
	}
	return send_buf(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf, len,
			false);
}

static enum MHD_Result do_session(struct MHD_Connection *c, const char *arg)
{
	char *end;
	unsigned long long id;
	uint8_t *copy = NULL;
	size_t len = 0;
	bool visible = false;

	errno = 0;
	id = strtoull(arg, &end, 10);
	if (errno || *end || end == arg || arg[0] == '-')
		return send_text(c, MHD_HTTP_BAD_REQUEST, "session=: not a session id\n");
	pthread_mutex_lock(&H.lock);
	for (size_t i = 0; i < H.npub; i++)
		if (H.pub[i].id == id)
			visible = session_visible(&H.pub[i]);
	for (size_t i = 0; i < H.nrots && visible; i++)
		if (H.rots[i].id == id && (copy = malloc(H.rots[i].len))) {
			memcpy(copy, H.rots[i].gz, H.rots[i].len);
			len = H.rots[i].len;
		}
	pthread_mutex_unlock(&H.lock);
	/* Another user's session is answered as one that does not exist. */
	if (!copy)
		return send_text(c, MHD_HTTP_NOT_FOUND,
				 visible ? "session %llu has no rotation yet\n"
					 : "no session %llu (among the sessions --http-targets "
					   "shows)\n",
				 id);
	atomic_fetch_add(&H.scrapes_ok, 1);
	return send_buf(c, MHD_HTTP_OK, "application/octet-stream", copy, len, true);
}

static enum MHD_Result do_profile(struct MHD_Connection *c, const struct sockaddr *peer)
{
	const char *sec = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seconds");
	const char *pid = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pid");
	const char *comm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "comm");
	const char *session = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "session");
	struct scrape *sc;
	enum MHD_Result res;
	unsigned busy;
	char *end;
	int r;

	if (session)
		return do_session(c, session);
	if (!!pid == !!comm)
		return send_text(c, MHD_HTTP_BAD_REQUEST,
				 "name the target with pid=PID or comm=NAME (one of them)\n");
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return MHD_NO;
	sc->seconds = 30; /* Go's default */
	if (sec) {
		double v;

		errno = 0;
		v = strtod(sec, &end);
		if (errno || *end || end == sec || !(v > 0) || v > H.max_seconds) {
			free(sc);
			return send_text(c, MHD_HTTP_BAD_REQUEST,
					 "seconds=%s: must be more than 0 and at most %u "
					 "(stoked --http-max-seconds)\n",
					 sec, H.max_seconds);
		}
		sc->seconds = v;
	} else if (sc->seconds > H.max_seconds) {
		sc->seconds = H.max_seconds;
	}
	if (pid) {
		long v;

		errno = 0;
		v = strtol(pid, &end, 10);
		if (errno || *end || end == pid || v <= 0 || v > INT32_MAX) {
			free(sc);
			return send_text(c, MHD_HTTP_BAD_REQUEST, "pid=: not a process id\n");
		}
		r = read_facts((pid_t)v, &sc->t[0]);
		if (r < 0 || (pid_t)v == getpid() || !facts_allowed(&sc->t[0])) {
			free(sc);
			refused(peer, "a pid outside --http-targets (or none)");
			/* The same answer whether or not it exists: which pids
			 * run is not the scraper's to learn. */
			return send_text(c, MHD_HTTP_FORBIDDEN,
					 "pid %ld may not be profiled over HTTP (stoked "
					 "--http-targets)\n",
					 v);
		}
		sc->nt = 1;
	} else {
		find_by_comm(sc, comm);
		if (!sc->nt) {
			free(sc);
			refused(peer, "no process of that comm in --http-targets");
			return send_text(c, MHD_HTTP_FORBIDDEN,
					 "no process named that may be profiled over HTTP (stoked "
					 "--http-targets)\n");
		}
	}
	busy = atomic_fetch_add(&H.in_flight, 1);
	if (busy >= H.max_scrapes) {
		atomic_fetch_sub(&H.in_flight, 1);
		atomic_fetch_add(&H.scrapes_busy, 1);
		free(sc);
		return send_text(c, MHD_HTTP_TOO_MANY_REQUESTS,
				 "%u scrapes are running (stoked --http-max-scrapes)\n", busy);
	}
	r = run_scrape(sc);
	atomic_fetch_sub(&H.in_flight, 1);
	if (r < 0) {
		atomic_fetch_add(&H.scrapes_error, 1);
		res = send_text(c, sc->status ? (unsigned)sc->status : MHD_HTTP_INTERNAL_SERVER_ERROR,
				"%s\n", sc->err[0] ? sc->err : strerror(-r));
		free(sc);
		return res;
	}
	atomic_fetch_add(&H.scrapes_ok, 1);
	res = send_buf(c, MHD_HTTP_OK, "application/octet-stream", sc->gz, sc->gzlen, true);
	free(sc);
	return res;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	static int first;
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *peer;

	if (!*req_cls) {
		*req_cls = &first; /* answer once the headers are all in */
		return MHD_YES;
	}
	if (*upload_data_size)
		return MHD_NO; /* no bodies here */
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	peer = ci ? ci->client_addr : NULL;
	if (!peer || !peer_allowed(peer)) {
		refused(peer, "not loopback nor in --http-allow");
		return MHD_NO;
	}
	/* A token, once configured, is asked of everyone; without one only
	 * loopback gets here (stoked_http_start). */
	if ((H.token || !peer_is_loopback(peer)) && !token_ok(c)) {
		refused(peer, "no or a wrong bearer token");
		return send_text(c, MHD_HTTP_UNAUTHORIZED,
				 "a bearer token is required (Authorization: Bearer ...)\n");
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
	if (!strcmp(url, "/debug/pprof/profile"))
		return do_profile(c, peer);
	if (!strcmp(url, "/debug/pprof/") || !strcmp(url, "/debug/pprof"))
		return do_index(c);
	if (!strcmp(url, "/metrics"))
		return do_metrics(c);
	return send_text(c, MHD_HTTP_NOT_FOUND,
			 "not found; see /debug/pprof/ (profile, sessions) and /metrics\n");
}

/* Refused addresses are closed before a thread is made for them. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
	if (peer_allowed(addr))
		return MHD_YES;
	refused(addr, "not loopback nor in --http-allow");
	return MHD_NO;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("http: %s", msg);
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	size_t hl;
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	hl = (size_t)(colon - s);
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
}

static int read_token(void)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	char buf[4096];
	ssize_t n;

	fd = open(H.token_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_error("--http-token-file %s: %s", H.token_file, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 0077)) {
		log_error("--http-token-file %s: must be a regular file that only its owner may "
			  "read (chmod 600)",
			  H.token_file);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) < 16) {
		log_error("--http-token-file %s: the token must be at least 16 characters",
			  H.token_file);
		return -EINVAL;
	}
	H.token = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return H.token ? 0 : -ENOMEM;
}

int stoked_http_start(void)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG;
	int r;

	if (!H.listen)
		return 0;
	if (parse_listen(H.listen, &ss, &sl) < 0) {
		log_error("--http %s: expected ADDR:PORT (127.0.0.1:6060, [::1]:6060)", H.listen);
		return -EINVAL;
	}
	if (H.nallow && !H.token_file) {
		log_error("--http-allow needs --http-token-file: only loopback may scrape without "
			  "a token");
		return -EINVAL;
	}
	if (H.token_file) {
		r = read_token();
		if (r < 0)
			return r;
	}
	if (!H.nrules)
		log_warn("http: no --http-targets: no process may be profiled over HTTP");
	if (gethostname(H.host, sizeof(H.host) - 1) < 0)
		snprintf(H.host, sizeof(H.host), "unknown");
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	H.mhd = MHD_start_daemon(flags, 0, accept_policy, NULL, handle, NULL,
				 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
				 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_PER_IP,
				 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
				 MHD_OPTION_THREAD_STACK_SIZE, (size_t)(8u << 20), MHD_OPTION_END);
	if (!H.mhd) {
		log_error("--http %s: cannot listen there", H.listen);
		return -EADDRNOTAVAIL;
	}
	log_info("http: serving pprof on %s (%s)", H.listen,
		 H.nallow ? "loopback and --http-allow, with a token" : "loopback only");
	return 0;
}

void stoked_http_stop(void)
{
	if (!H.mhd)
		return;
	atomic_store(&H.stopping, true);
	MHD_stop_daemon(H.mhd);
	H.mhd = NULL;
	pthread_mutex_lock(&H.lock);
	for (size_t i = 0; i < H.nrots; i++)
		free(H.rots[i].gz);
	free(H.rots);
	H.rots = NULL;
	H.nrots = H.rots_cap = 0;
	free(H.pub);
	H.pub = NULL;
	H.npub = 0;
	pthread_mutex_unlock(&H.lock);
	if (H.token) {
		explicit_bzero(H.token, strlen(H.token));
		free(H.token);
		H.token = NULL;
	}
}
