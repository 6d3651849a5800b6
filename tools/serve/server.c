/*
 * stoke serve: the dashboard's HTTP server (libmicrohttpd, a thread per
 * connection, so a slow call graph or a big profile holds up no other
 * request). Requests that load a profile or run dot are heavy: at most
 * MAX_HEAVY run at once, the others wait for a slot. The job table is
 * shared by the connection threads and has a lock; the rest of a request's
 * state is its own.
 *
 * Every request passes three gates before anything is read or run: the Host
 * header must name the listen address (DNS rebinding), the token must come
 * with it (query "token", or the cookie set when the query carried it), and
 * anything that starts a process must be a POST whose form carries the
 * token itself. Every path a request names is opened below a served
 * directory and checked after opening (check.c). Everything from a run
 * directory (command lines, function names, file names) is escaped before
 * it reaches a page.
 */
#include "tools/serve/serve.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "formats/analysis.h"
#include "formats/escape.h"
#include "formats/load.h"
#include "formats/output.h"
#include "formats/svg.h"
#include "tools/cli.h"
#include "tools/serve/check.h"

#define MAX_ENTRIES   5000	 /* runs and suites listed */
#define MAX_DEPTH     4		 /* directory levels searched below a DIR */
#define MAX_JSON      (4 << 20)	 /* run.json / suite.json read at most */
#define MAX_POST      (64 << 10) /* a launch form */
#define MAX_JOBS      64
#define TOP_ROWS      50
#define DIFF_ROWS     40
#define DOT_TIMEOUT_S 30
#define MAX_HEAVY     4	 /* profile loads and dot runs at once */
#define HEAVY_WAIT_S  60 /* a request waits this long for a slot, then 503 */
/* SIGTERM to SIGKILL for jobs when serve exits: record's own grace for its
 * target (twice 3 s) and the writing of its run fit in it. */
#define JOB_GRACE_MS 10000
#define MAX_WORDS    250 /* words of a launched command */

struct entry {
	char *id;	/* "N/rel": root index and path below it */
	bool suite;	/* suite.json (a scenario of a suite), else run.json */
	json_object *j; /* parsed metadata */
	time_t mtime;
};

struct job {
	pid_t pid;
	bool done;
	int status;
	char *what; /* the command shown */
	char *log;  /* its stdout+stderr file */
	time_t start, end;
	char **before; /* entry ids that existed at launch */
	size_t nbefore;
};

struct server {
	char **roots; /* canonical absolute paths */
	size_t nroots;
	char *speedscope; /* canonical, or NULL when missing */
	const char *speedscope_wanted;
	char token[SERVE_TOKEN_LEN + 1];
	char cookie[64];
	char addr[64];
	unsigned port;
	char self_exe[PATH_MAX];
	char logdir[64];
	pthread_mutex_t jobs_lock; /* jobs, njobs, and launching */
	struct job jobs[MAX_JOBS];
	size_t njobs;
	sem_t heavy;	      /* MAX_HEAVY slots */
	atomic_bool stopping; /* SIGINT/SIGTERM came: dot is cut short, no launch */
};

/* ---- small output helpers ---- */

struct page {
	char *buf;
	size_t len;
	FILE *f;
};

static int page_open(struct page *pg)
{
	pg->buf = NULL;
	pg->len = 0;
	pg->f = open_memstream(&pg->buf, &pg->len);
	return pg->f ? 0 : -ENOMEM;
}

/* HTML text or a quoted attribute value. */
static void esc(FILE *f, const char *s)
{
	stoke_xml_text(f, s ? s : "");
}

/* A URL query value, inside an attribute: percent-encoded, then escaped. */
static void escurl(FILE *f, const char *s)
{
	_cleanup_free_ char *u = serve_url_encode(s ? s : "");

	esc(f, u ? u : "");
}

static const char *STYLE =
	"<style>body{font:14px sans-serif;margin:1em 2em;color:#222}"
	"table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
	"text-align:left;vertical-align:top}th{background:#eee;cursor:pointer}"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}"
	".pass{color:#060;font-weight:bold}.fail{color:#a00;font-weight:bold}"
	".warn{background:#fee;border:1px solid #c88;padding:6px}"
	"pre{background:#f6f6f6;padding:6px;overflow:auto;max-height:30em}"
	"nav a{margin-right:1em}small{color:#666}</style>";

static void page_head(FILE *f, const char *title)
{
	fputs("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>", f);
	esc(f, title);
	fputs(" - stoke</title>", f);
	fputs(STYLE, f);
	fputs("</head><body><nav><a href=\"/\">runs</a><a href=\"/jobs\">jobs</a></nav><h1>", f);
	esc(f, title);
	fputs("</h1>\n", f);
}

static void page_tail(FILE *f)
{
	fputs("</body></html>\n", f);
}

static void add_common_headers(struct MHD_Response *r)
{
	/* The token is in the URL: no Referer may carry it off-site. */
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "SAMEORIGIN");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'self' 'unsafe-inline' 'unsafe-eval' "
				"'wasm-unsafe-eval' data: blob:; frame-ancestors 'self'");
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned code, const char *type,
				char *buf, size_t len, const char *cookie)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(buf);
		return MHD_NO;
	}
	add_common_headers(r);
	MHD_add_response_header(r, "Content-Type", type);
	if (cookie)
		MHD_add_response_header(r, "Set-Cookie", cookie);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_page(struct MHD_Connection *c, unsigned code, struct page *pg)
{
	fclose(pg->f);
	pg->f = NULL;
	return send_buf(c, code, "text/html; charset=utf-8", pg->buf, pg->len, NULL);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code, const char *msg)
{
	char *b = strdup(msg);

	if (!b)
		return MHD_NO;
	return send_buf(c, code, "text/plain; charset=utf-8", b, strlen(b), NULL);
}

/* An error page: title and one escaped line. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *what,
				  const char *detail)
{
	struct page pg;

	if (page_open(&pg) < 0)
		return MHD_NO;
	page_head(pg.f, what);
	fputs("<p class=\"warn\">", pg.f);
	esc(pg.f, detail);
	fputs("</p>", pg.f);
	page_tail(pg.f);
	return send_page(c, code, &pg);
}

static enum MHD_Result redirect(struct MHD_Connection *c, const char *to, const char *cookie)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	add_common_headers(r);
	MHD_add_response_header(r, "Location", to);
	if (cookie)
		MHD_add_response_header(r, "Set-Cookie", cookie);
	ret = MHD_queue_response(c, MHD_HTTP_SEE_OTHER, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- files below the served directories ---- */

/* Split an entry id "N/rel" into its root and rel; false when malformed. */
static bool parse_id(const struct server *s, const char *id, const char **root, const char **rel)
{
	char *end;
	unsigned long n;

	if (!id || !(*id >= '0' && *id <= '9'))
		return false;
	errno = 0;
	n = strtoul(id, &end, 10);
	if (errno || *end != '/' || n >= s->nroots || !serve_relpath_ok(end + 1))
		return false;
	*root = s->roots[n];
	*rel = end + 1;
	return true;
}

/* rel/name, or name alone when rel is ".". malloc'd. */
static char *join(const char *rel, const char *name)
{
	char *p = NULL;

	if (!strcmp(rel, "."))
		return strdup(name);
	if (asprintf(&p, "%s/%s", rel, name) < 0)
		return NULL;
	return p;
}

/* Read a regular file below root (at most max bytes, NUL-terminated). */
static int read_beneath(const char *root, const char *rel, size_t max, char **ret, size_t *ret_n)
{
	_cleanup_close_ int fd = serve_open_beneath(root, rel, O_RDONLY);
	struct stat st;
	char *buf;
	size_t n = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	if ((size_t)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*ret = buf;
	if (ret_n)
		*ret_n = n;
	return 0;
}

static json_object *read_json(const char *root, const char *rel, const char *name)
{
	_cleanup_free_ char *path = join(rel, name);
	_cleanup_free_ char *buf = NULL;

	if (!path || read_beneath(root, path, MAX_JSON, &buf, NULL) < 0)
		return NULL;
	return json_tokener_parse(buf);
}

/* The profile of an entry: a run's profile.pb.gz, a suite's merged.pb.gz;
 * opened beneath its root, loaded through the open fd. */
static int load_entry(const struct server *s, const char *id, struct stoke_profile **p,
		      struct stoke_analysis **a, const char **err)
{
	const char *root, *rel;
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	json_object *sj;
	char fdpath[64];
	int r;

	*p = NULL;
	*a = NULL;
	if (!parse_id(s, id, &root, &rel)) {
		*err = "no such run";
		return -EINVAL;
	}
	sj = read_json(root, rel, "suite.json");
	path = join(rel, sj ? "merged.pb.gz" : "profile.pb.gz");
	json_object_put(sj);
	if (!path)
		return -ENOMEM;
	fd = serve_open_beneath(root, path, O_RDONLY);
	if (fd < 0) {
		*err = fd == -EACCES ? "outside the served directories" : "no profile in it";
		return fd;
	}
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	r = stoke_profile_load(fdpath, p, err);
	if (r < 0)
		return r;
	if (stoke_analysis_new(*p, a) < 0) {
		stoke_profile_free(*p);
		*p = NULL;
		*err = "out of memory";
		return -ENOMEM;
	}
	return 0;
}

/* ---- the list of runs and suites ---- */

static void entries_free(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].id);
		json_object_put(e[i].j);
	}
	free(e);
}

static void scan_dir(const struct server *s, size_t ri, const char *rel, int depth,
		     struct entry **es, size_t *n)
{
	const char *root = s->roots[ri];
	json_object *j;
	DIR *d;
	struct dirent *de;
	int fd;

	if (*n >= MAX_ENTRIES)
		return;
	for (int k = 0; k < 2; k++) {
		j = read_json(root, rel, k ? "suite.json" : "run.json");
		if (j && json_object_is_type(j, json_type_object)) {
			struct entry *ne = realloc(*es, (*n + 1) * sizeof(**es));
			char *id = NULL;

			if (!ne || asprintf(&id, "%zu/%s", ri, rel) < 0) {
				if (ne)
					*es = ne;
				json_object_put(j);
				return;
			}
			*es = ne;
			ne[*n] = (struct entry){.id = id, .suite = k, .j = j};
			(*n)++;
		} else {
			json_object_put(j);
		}
	}
	if (depth >= MAX_DEPTH)
		return;
	fd = serve_open_beneath(root, rel, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char *sub;

		/* Hidden: "." and "..", and the temporary directories of run
		 * directories still being written. Symlinks are not followed
		 * while listing (d_type DT_DIR only). */
		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		sub = join(rel, de->d_name);
		if (sub && serve_relpath_ok(sub))
			scan_dir(s, ri, sub, depth + 1, es, n);
		free(sub);
	}
	closedir(d);
}

static const char *jstr(json_object *j, const char *a, const char *b)
{
	json_object *v;

	if (!json_object_object_get_ex(j, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static double jnum(json_object *j, const char *a, const char *b)
{
	json_object *v;

	if (!json_object_object_get_ex(j, a, &v))
		return -1;
	if (b && !json_object_object_get_ex(v, b, &v))
		return -1;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return -1;
	return json_object_get_double(v);
}

static int entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;
	const char *sa = jstr(a->j, "start", NULL), *sb = jstr(b->j, "start", NULL);
	int c = strcmp(sb ? sb : "", sa ? sa : ""); /* newest first */

	return c ? c : strcmp(a->id, b->id);
}

static struct entry *scan(const struct server *s, size_t *n)
{
	struct entry *es = NULL;

	*n = 0;
	for (size_t i = 0; i < s->nroots; i++)
		scan_dir(s, i, ".", 0, &es, n);
	if (*n)
		qsort(es, *n, sizeof(*es), entry_cmp);
	return es;
}

/* A suite's shown name: its scenario and command. */
static void entry_label(FILE *f, const struct entry *e)
{
	if (e->suite) {
		fputs("suite ", f);
		esc(f, jstr(e->j, "scenario", NULL));
	} else {
		esc(f, jstr(e->j, "start", NULL));
		fputs(" ", f);
		esc(f, jstr(e->j, "target", "cmd"));
	}
	fputs(" [", f);
	esc(f, e->id);
	fputs("]", f);
}

/* ---- jobs (launched records and suites) ---- */

/* With jobs_lock held. A job is its own process group (setpgid in
 * launch), so serve can end everything it started when it exits. */
static void jobs_reap(struct server *s)
{
	for (size_t i = 0; i < s->njobs; i++) {
		struct job *j = &s->jobs[i];
		int st;

		if (!j->done && waitpid(j->pid, &st, WNOHANG) == j->pid) {
			j->done = true;
			j->status = st;
			j->end = time(NULL);
		}
	}
}

/* ---- pages ---- */

static const char *SORT_JS =
	"<script>\n"
	"function stokeFilter(inp,id){var q=inp.value.toLowerCase();"
	"document.querySelectorAll('#'+id+' tbody tr').forEach(function(r){"
	"r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});}\n"
	"function stokeSort(th){var t=th.closest('table'),b=t.tBodies[0],"
	"i=Array.prototype.indexOf.call(th.parentNode.children,th),"
	"d=th.dataset.dir==='a'?'d':'a';th.dataset.dir=d;"
	"var rows=Array.prototype.slice.call(b.rows);rows.sort(function(x,y){"
	"var a=x.cells[i].dataset.v!==undefined?x.cells[i].dataset.v:x.cells[i].textContent,"
	"c=y.cells[i].dataset.v!==undefined?y.cells[i].dataset.v:y.cells[i].textContent,"
	"na=parseFloat(a),nc=parseFloat(c),r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c);"
	"return d==='a'?r:-r;});rows.forEach(function(r){b.appendChild(r);});}\n"
	"</script>\n";

/* A number cell (sortable by data-v) shown with prec decimals, or with 4
 * significant digits when prec < 0; "-" when the value is missing. */
static void num_cell(FILE *f, double v, int prec)
{
	if (v == -1) {
		fputs("<td class=\"n\" data-v=\"-1\">-</td>", f);
		return;
	}
	fprintf(f, "<td class=\"n\" data-v=\"%.15g\">", v);
	if (prec >= 0)
		fprintf(f, "%.*f", prec, v);
	else
		fprintf(f, "%.4g", v);
	fputs("</td>", f);
}

static void entry_options(FILE *f, const struct entry *es, size_t n, const char *sel)
{
	for (size_t i = 0; i < n; i++) {
		fputs("<option value=\"", f);
		esc(f, es[i].id);
		fputs("\"", f);
		if (sel && !strcmp(sel, es[i].id))
			fputs(" selected", f);
		fputs(">", f);
		entry_label(f, &es[i]);
		fputs("</option>", f);
	}
}

static enum MHD_Result page_index(struct server *s, struct MHD_Connection *c)
{
	struct page pg;
	size_t n;
	struct entry *es;
	FILE *f;

	es = scan(s, &n);
	if (page_open(&pg) < 0) {
		entries_free(es, n);
		return MHD_NO;
	}
	f = pg.f;
	page_head(f, "stoke dashboard");
	fputs(SORT_JS, f);
	fputs("<p>Serving:", f);
	for (size_t i = 0; i < s->nroots; i++) {
		fputs(" <code>", f);
		esc(f, s->roots[i]);
		fputs("</code>", f);
	}
	fputs("</p>\n<h2>Runs</h2>\n<p><input id=\"filter\" placeholder=\"filter\" "
	      "oninput=\"stokeFilter(this,'runs')\"> <small>click a column to sort</small></p>\n"
	      "<table id=\"runs\"><thead><tr><th onclick=\"stokeSort(this)\">time</th>"
	      "<th onclick=\"stokeSort(this)\">command</th><th "
	      "onclick=\"stokeSort(this)\">samples</th>"
	      "<th onclick=\"stokeSort(this)\">duration (s)</th><th "
	      "onclick=\"stokeSort(this)\">lost</th>"
	      "<th onclick=\"stokeSort(this)\">unwind "
	      "failures</th><th>directory</th></tr></thead><tbody>\n",
	      f);
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &es[i];

		if (e->suite)
			continue;
		fputs("<tr class=\"run\"><td>", f);
		esc(f, jstr(e->j, "start", NULL));
		fputs("</td><td><a class=\"runlink\" href=\"/run?run=", f);
		escurl(f, e->id);
		fputs("\">", f);
		esc(f, jstr(e->j, "target", "cmd") ? jstr(e->j, "target", "cmd") : "(no command)");
		fputs("</a></td>", f);
		num_cell(f, jnum(e->j, "samples", NULL), 0);
		num_cell(f, jnum(e->j, "duration_s", NULL), 2);
		num_cell(f, jnum(e->j, "lost_samples", NULL), 0);
		num_cell(f, jnum(e->j, "unwind_failures", NULL), 0);
		fputs("<td><small>", f);
		esc(f, e->id);
		fputs("</small></td></tr>\n", f);
	}
	fputs("</tbody></table>\n<h2>Suites</h2>\n<table id=\"suites\"><thead><tr>"
	      "<th onclick=\"stokeSort(this)\">scenario</th><th "
	      "onclick=\"stokeSort(this)\">command</th>"
	      "<th onclick=\"stokeSort(this)\">repetitions</th>"
	      "<th onclick=\"stokeSort(this)\">wall median (s)</th>"
	      "<th onclick=\"stokeSort(this)\">CPU median (s)</th>"
	      "<th onclick=\"stokeSort(this)\">samples "
	      "median</th><th>directory</th></tr></thead><tbody>\n",
	      f);
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &es[i];
		json_object *cmd;

		if (!e->suite)
			continue;
		fputs("<tr class=\"suite\"><td><a href=\"/suite?run=", f);
		escurl(f, e->id);
		fputs("\">", f);
		esc(f, jstr(e->j, "scenario", NULL));
		fputs("</a></td><td>", f);
		if (json_object_object_get_ex(e->j, "command", &cmd) &&
		    json_object_is_type(cmd, json_type_array))
			for (size_t k = 0; k < json_object_array_length(cmd); k++) {
				json_object *a = json_object_array_get_idx(cmd, k);

				fputs(k ? " " : "", f);
				esc(f, json_object_is_type(a, json_type_string)
					       ? json_object_get_string(a)
					       : "?");
			}
		fputs("</td>", f);
		num_cell(f, jnum(e->j, "completed", NULL), 0);
		num_cell(f, jnum(e->j, "wall_s", "median"), 3);
		num_cell(f, jnum(e->j, "cpu_s", "median"), 3);
		num_cell(f, jnum(e->j, "samples", "median"), 0);
		fputs("<td><small>", f);
		esc(f, e->id);
		fputs("</small></td></tr>\n", f);
	}
	fputs("</tbody></table>\n<h2>Compare</h2>\n<form id=\"compare\" method=\"get\" "
	      "action=\"/compare\"><label>base <select name=\"a\" id=\"cmp-a\">",
	      f);
	entry_options(f, es, n, NULL);
	fputs("</select></label> <label>new <select name=\"b\" id=\"cmp-b\">", f);
	entry_options(f, es, n, NULL);
	fputs("</select></label> <label>gate: fail when a function's self share grows by more "
	      "than <input name=\"max\" id=\"cmp-max\" value=\"5\" size=\"4\"> points</label> "
	      "<button type=\"submit\">compare</button></form>\n",
	      f);
	fputs("<h2>Launch</h2>\n<p>New runs are written to <code>", f);
	esc(f, s->roots[0]);
	fputs("</code>, as the user running <code>stoke serve</code>.</p>\n"
	      "<form id=\"launch-record\" method=\"post\" action=\"/launch\">"
	      "<input type=\"hidden\" name=\"token\" value=\"",
	      f);
	esc(f, s->token);
	fputs("\"><input type=\"hidden\" name=\"kind\" value=\"record\">"
	      "<label>record a command: <input name=\"command\" id=\"launch-command\" size=\"60\" "
	      "placeholder=\"./app --name 'two words' (quotes as in a shell; no $ or globs)\">"
	      "</label> <label>frequency (Hz) <input name=\"frequency\" id=\"launch-frequency\" "
	      "size=\"6\" placeholder=\"default\"></label> <label>call graph <select "
	      "name=\"call_graph\" id=\"launch-call-graph\"><option value=\"\">default</option>"
	      "<option>fp</option><option>dwarf</option><option>auto</option></select></label> "
	      "<label>duration (s) <input name=\"duration\" id=\"launch-duration\" size=\"6\" "
	      "placeholder=\"until exit\"></label> "
	      "<button type=\"submit\">record</button></form>\n"
	      "<form id=\"launch-suite\" method=\"post\" action=\"/launch\">"
	      "<input type=\"hidden\" name=\"token\" value=\"",
	      f);
	esc(f, s->token);
	fputs("\"><input type=\"hidden\" name=\"kind\" value=\"suite\">"
	      "<label>run a suite file: <input name=\"file\" id=\"launch-file\" size=\"60\" "
	      "placeholder=\"/path/to/suite.json\"></label> "
	      "<button type=\"submit\">run suite</button></form>\n",
	      f);
	page_tail(f);
	entries_free(es, n);
	return send_page(c, MHD_HTTP_OK, &pg);
}

/* Up to 3 callers (or callees) of fn with their share of fn's total, as
 * stoke top shows them. */
static void neighbours(FILE *f, const struct stoke_analysis *a, uint32_t fn, bool callers)
{
	struct stoke_neighbour best[3];
	size_t nbest = stoke_analysis_neighbours(a, fn, callers, best, 3);

	for (size_t j = 0; j < nbest; j++) {
		fputs(j ? ", " : "", f);
		esc(f, a->funcs[best[j].func].name);
		fprintf(f, " %.1f%%", stoke_pct(best[j].weight, a->funcs[fn].total));
	}
}

static void top_table(FILE *f, const struct stoke_analysis *a)
{
	uint32_t *order = calloc(a->nfuncs + 1, sizeof(*order));

	if (!order) {
		fputs("<p class=\"warn\">out of memory</p>", f);
		return;
	}
	stoke_analysis_sort(a, false, order);
	fputs("<table id=\"top\"><thead><tr><th>rank</th><th>self%</th><th>total%</th>"
	      "<th>self-n</th><th>function</th><th>location</th><th>callers</th><th>callees</th>"
	      "</tr></thead><tbody>\n",
	      f);
	for (size_t i = 0; i < a->nfuncs && i < TOP_ROWS; i++) {
		const struct stoke_func_stat *fs = &a->funcs[order[i]];

		fprintf(f,
			"<tr><td class=\"n\">%zu</td><td class=\"n self\">%.1f%%</td>"
			"<td class=\"n total\">%.1f%%</td><td class=\"n\">%" PRIu64
			"</td><td class=\"fn\">",
			i + 1, stoke_pct(fs->self, a->total), stoke_pct(fs->total, a->total),
			fs->self);
		esc(f, fs->name);
		fputs("</td><td><small>", f);
		if (fs->file && fs->line) {
			esc(f, fs->file);
			fprintf(f, ":%u", fs->line);
		}
		fputs("</small></td><td><small>", f);
		neighbours(f, a, order[i], true);
		fputs("</small></td><td><small>", f);
		neighbours(f, a, order[i], false);
		fputs("</small></td></tr>\n", f);
	}
	fputs("</tbody></table>\n", f);
	free(order);
}

static void json_table(FILE *f, json_object *j, const char *const *keys, const char *const *labels)
{
	fputs("<table class=\"meta\">", f);
	for (size_t i = 0; keys[i]; i++) {
		char k1[64];
		const char *dot = strchr(keys[i], '.');
		json_object *v = NULL;

		snprintf(k1, sizeof(k1), "%.*s", dot ? (int)(dot - keys[i]) : 63, keys[i]);
		if (!json_object_object_get_ex(j, k1, &v))
			continue;
		if (dot && !json_object_object_get_ex(v, dot + 1, &v))
			continue;
		fputs("<tr><th>", f);
		esc(f, labels[i]);
		fputs("</th><td>", f);
		esc(f, json_object_is_type(v, json_type_string)
			       ? json_object_get_string(v)
			       : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		fputs("</td></tr>", f);
	}
	fputs("</table>\n", f);
}

static bool file_exists_beneath(const char *root, const char *rel, const char *name)
{
	_cleanup_free_ char *p = join(rel, name);
	int fd = p ? serve_open_beneath(root, p, O_RDONLY) : -1;

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void artifacts(FILE *f, const char *id, const char *root, const char *rel)
{
	int fd = serve_open_beneath(root, rel, O_RDONLY | O_DIRECTORY);
	DIR *d;
	struct dirent *de;

	fputs("<ul id=\"artifacts\">", f);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		fputs("</ul>", f);
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type != DT_REG)
			continue;
		fputs("<li><a href=\"/file?run=", f);
		escurl(f, id);
		fputs("&amp;name=", f);
		escurl(f, de->d_name);
		fputs("\">", f);
		esc(f, de->d_name);
		fputs("</a></li>", f);
	}
	closedir(d);
	fputs("</ul>\n", f);
}

/* The "series" arrays of run.json's resources, or false. */
static bool series(json_object *res, const char *key, json_object **ret)
{
	json_object *ser;

	return json_object_object_get_ex(res, "series", &ser) &&
	       json_object_object_get_ex(ser, key, ret) &&
	       json_object_is_type(*ret, json_type_array);
}

/* One line of a resource chart: values scaled to top, times to duration,
 * in a 1000 x 100 box. */
static void polyline(FILE *f, json_object *t, json_object *v, double duration, double top,
		     const char *color)
{
	size_t n = json_object_array_length(t);

	if (json_object_array_length(v) < n)
		n = json_object_array_length(v);
	fprintf(f,
		"<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
		"vector-effect=\"non-scaling-stroke\" points=\"",
		color);
	for (size_t i = 0; i < n; i++) {
		double x = json_object_get_double(json_object_array_get_idx(t, i));
		double y = json_object_get_double(json_object_array_get_idx(v, i));

		fprintf(f, "%s%.2f,%.2f", i ? " " : "", 1000.0 * x / duration,
			100.0 - 100.0 * (y > top ? top : y) / top);
	}
	fputs("\"/>", f);
}

/* run.json's resources (schema 2): the summary, and RSS and CPU over the
 * recording drawn on the run's time axis, so the chart lines up with the
 * time-ordered view below it. Only numbers reach the page. */
static void resources(FILE *f, json_object *j)
{
	json_object *res, *t, *rss, *cpu;
	double duration = jnum(j, "duration_s", NULL), peak, peak_cpu;

	if (!json_object_object_get_ex(j, "resources", &res) ||
	    !json_object_is_type(res, json_type_object))
		return;
	peak = jnum(res, "peak_rss_bytes", NULL);
	peak_cpu = jnum(res, "peak_cpu_utilization", NULL);
	fputs("<h2>Resources</h2>\n", f);
	fprintf(f,
		"<p id=\"resources\">peak RSS %.1f MiB, mean RSS %.1f MiB, CPU %.2f cores "
		"(peak %.2f)</p>\n",
		peak / 1048576.0, jnum(res, "mean_rss_bytes", NULL) / 1048576.0,
		jnum(res, "cpu_utilization", NULL), peak_cpu);
	if (!(duration > 0) || !series(res, "t_s", &t) || !series(res, "rss_bytes", &rss) ||
	    !series(res, "cpu", &cpu) || json_object_array_length(t) == 0)
		return;
	fputs("<p><small><span style=\"color:#1f5fbf\">&#9632; RSS</span> (top: peak) "
	      "<span style=\"color:#c0392b\">&#9632; CPU</span> (top: one core, or the peak "
	      "when higher) over the recording's ",
	      f);
	fprintf(f, "%.2f s</small></p>\n", duration);
	fputs("<svg id=\"resource-chart\" viewBox=\"0 0 1000 100\" preserveAspectRatio=\"none\" "
	      "style=\"width:100%;height:120px;border:1px solid #ccc;background:#fafafa\">",
	      f);
	if (peak > 0)
		polyline(f, t, rss, duration, peak, "#1f5fbf");
	polyline(f, t, cpu, duration, peak_cpu > 1 ? peak_cpu : 1, "#c0392b");
	fputs("</svg>\n", f);
}

static enum MHD_Result page_run(struct server *s, struct MHD_Connection *c, const char *id)
{
	static const char *const keys[] = {
		"target.cmd",	   "target.pid",       "target.exe",	"start",   "duration_s",
		"event",	   "frequency",	       "call_graph",	"samples", "lost_samples",
		"unwind_failures", "truncated_stacks", "host.hostname", NULL};
	static const char *const labels[] = {
		"command",	"pid",	 "executable",	    "start",
		"duration (s)", "event", "frequency (Hz)",  "call graph",
		"samples",	"lost",	 "unwind failures", "truncated stacks",
		"host",		NULL};
	const char *root, *rel, *err = NULL;
	struct stoke_profile *p = NULL;
	struct stoke_analysis *a = NULL;
	json_object *j;
	struct page pg;
	FILE *f;

	if (!parse_id(s, id, &root, &rel))
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such run", id ? id : "(none)");
	j = read_json(root, rel, "run.json");
	if (!j)
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such run",
				  "no readable run.json there");
	if (page_open(&pg) < 0) {
		json_object_put(j);
		return MHD_NO;
	}
	f = pg.f;
	page_head(f, jstr(j, "target", "cmd") ? jstr(j, "target", "cmd") : id);
	fputs("<h2>Metadata</h2>\n", f);
	json_table(f, j, keys, labels);
	fputs("<details><summary>run.json</summary><pre id=\"runjson\">", f);
	esc(f, json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	fputs("</pre></details>\n<h2>Top functions</h2>\n", f);
	if (load_entry(s, id, &p, &a, &err) < 0) {
		fputs("<p class=\"warn\">cannot read the profile: ", f);
		esc(f, err);
		fputs("</p>\n", f);
	} else {
		fprintf(f,
			"<p id=\"summary\">%" PRIu64 " samples, unwind failures %" PRIu64
			", truncated %" PRIu64 "</p>\n",
			a->total, a->unwind_failed, a->truncated);
		top_table(f, a);
	}
	fputs("<h2>Flame graph</h2>\n<object id=\"flame\" type=\"image/svg+xml\" "
	      "style=\"width:100%\" data=\"/flame?run=",
	      f);
	escurl(f, id);
	fputs("\"></object>\n", f);
	resources(f, j);
	fputs("<h2>Timeline (per thread)</h2>\n", f);
	if (!s->speedscope) {
		fputs("<p class=\"warn\" id=\"no-speedscope\">The speedscope viewer is not "
		      "installed: "
		      "no static build (index.html) found at <code>",
		      f);
		esc(f, s->speedscope_wanted ? s->speedscope_wanted : "(none)");
		fputs("</code>. Copy speedscope's npm package <code>dist/release</code> there, or "
		      "start <code>stoke serve --speedscope DIR</code>.</p>\n",
		      f);
	} else if (!file_exists_beneath(root, rel, "profile.speedscope.json")) {
		fputs("<p class=\"warn\">This run has no profile.speedscope.json.</p>\n", f);
	} else {
		_cleanup_free_ char *url = NULL, *enc = NULL, *eid = serve_url_encode(id);

		/* speedscope fetches the file itself: same origin, so the
		 * cookie authorises it. */
		if (eid && asprintf(&url, "/file?run=%s&name=profile.speedscope.json", eid) >= 0 &&
		    (enc = serve_url_encode(url))) {
			fputs("<iframe id=\"speedscope\" "
			      "style=\"width:100%;height:600px;border:1px solid #ccc\" "
			      "src=\"/speedscope/index.html#profileURL=",
			      f);
			esc(f, enc);
			fputs("\"></iframe>\n", f);
		}
	}
	fputs("<h2>Call graph</h2>\n<form id=\"callgraph-form\" method=\"get\" "
	      "action=\"/callgraph\">"
	      "<input type=\"hidden\" name=\"run\" value=\"",
	      f);
	esc(f, id);
	fputs("\"><label>hide functions under <input name=\"node\" value=\"0.5\" size=\"4\">% "
	      "of samples</label> <label>and calls under <input name=\"edge\" value=\"0.1\" "
	      "size=\"4\">%</label> <button type=\"submit\" id=\"callgraph-open\">open the call "
	      "graph</button></form>\n<h2>Files</h2>\n",
	      f);
	artifacts(f, id, root, rel);
	page_tail(f);
	stoke_analysis_free(a);
	stoke_profile_free(p);
	json_object_put(j);
	return send_page(c, MHD_HTTP_OK, &pg);
}

static enum MHD_Result page_suite(struct server *s, struct MHD_Connection *c, const char *id)
{
	static const char *const stats[] = {"wall_s", "cpu_s", "samples", NULL};
	static const char *const cols[] = {"min", "median", "mean", "stddev", "p95", NULL};
	const char *root, *rel, *err = NULL;
	struct stoke_profile *p = NULL;
	struct stoke_analysis *a = NULL;
	json_object *j, *reps;
	struct page pg;
	FILE *f;

	if (!parse_id(s, id, &root, &rel) || !(j = read_json(root, rel, "suite.json")))
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such suite", id ? id : "(none)");
	if (page_open(&pg) < 0) {
		json_object_put(j);
		return MHD_NO;
	}
	f = pg.f;
	page_head(f, jstr(j, "scenario", NULL) ? jstr(j, "scenario", NULL) : id);
	fprintf(f, "<p>%.0f of %.0f repetitions completed.</p>\n", jnum(j, "completed", NULL),
		jnum(j, "repeat", NULL));
	fputs("<table id=\"suite-stats\"><thead><tr><th>measure</th>", f);
	for (size_t k = 0; cols[k]; k++)
		fprintf(f, "<th>%s</th>", cols[k]);
	fputs("</tr></thead><tbody>", f);
	for (size_t i = 0; stats[i]; i++) {
		fprintf(f, "<tr><th>%s</th>", stats[i]);
		for (size_t k = 0; cols[k]; k++)
			num_cell(f, jnum(j, stats[i], cols[k]), -1);
		fputs("</tr>\n", f);
	}
	fputs("</tbody></table>\n<h2>Repetitions</h2>\n<table id=\"reps\"><thead><tr><th>#</th>"
	      "<th>status</th><th>exit</th><th>wall (s)</th><th>CPU (s)</th><th>samples</th>"
	      "<th>lost</th><th>run</th></tr></thead><tbody>\n",
	      f);
	if (json_object_object_get_ex(j, "repetitions", &reps) &&
	    json_object_is_type(reps, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(reps); i++) {
			json_object *r = json_object_array_get_idx(reps, i);
			const char *path = jstr(r, "path", NULL);
			const char *base = path ? strrchr(path, '/') : NULL;

			base = base ? base + 1 : path;
			fputs("<tr>", f);
			num_cell(f, jnum(r, "index", NULL), 0);
			fputs("<td>", f);
			esc(f, jstr(r, "status", NULL));
			fputs("</td>", f);
			num_cell(f, jnum(r, "exit_code", NULL), 0);
			num_cell(f, jnum(r, "wall_s", NULL), 3);
			num_cell(f, jnum(r, "cpu_s", NULL), 3);
			num_cell(f, jnum(r, "samples", NULL), 0);
			num_cell(f, jnum(r, "lost", NULL), 0);
			fputs("<td>", f);
			/* A repetition is a run directory inside the scenario's. */
			if (base && serve_relpath_ok(base) && !strchr(base, '/')) {
				_cleanup_free_ char *rid = join(id, base);

				if (rid) {
					fputs("<a href=\"/run?run=", f);
					escurl(f, rid);
					fputs("\">", f);
					esc(f, base);
					fputs("</a>", f);
				}
			}
			fputs("</td></tr>\n", f);
		}
	}
	fputs("</tbody></table>\n<h2>All repetitions merged: top functions</h2>\n", f);
	if (load_entry(s, id, &p, &a, &err) < 0) {
		fputs("<p class=\"warn\">cannot read merged.pb.gz: ", f);
		esc(f, err);
		fputs("</p>\n", f);
	} else {
		top_table(f, a);
	}
	fputs("<h2>Flame graph (merged)</h2>\n<object type=\"image/svg+xml\" style=\"width:100%\" "
	      "data=\"/flame?run=",
	      f);
	escurl(f, id);
	fputs("\"></object>\n", f);
	page_tail(f);
	stoke_analysis_free(a);
	stoke_profile_free(p);
	json_object_put(j);
	return send_page(c, MHD_HTTP_OK, &pg);
}

static enum MHD_Result send_svg(struct MHD_Connection *c, const struct stoke_profile *base,
				const struct stoke_profile *p, const char *title)
{
	struct stoke_output_opts o;
	struct page pg;
	int r;

	if (page_open(&pg) < 0)
		return MHD_NO;
	stoke_output_opts_init(&o);
	o.title = title;
	r = base ? stoke_svg_write_diff(base, p, &o, pg.f) : stoke_svg_write(p, &o, pg.f);
	fclose(pg.f);
	if (r < 0) {
		free(pg.buf);
		return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 "cannot write the flame graph\n");
	}
	return send_buf(c, MHD_HTTP_OK, "image/svg+xml", pg.buf, pg.len, NULL);
}

static enum MHD_Result flame(struct server *s, struct MHD_Connection *c, const char *a_id,
			     const char *b_id)
{
	struct stoke_profile *pa = NULL, *pb = NULL;
	struct stoke_analysis *aa = NULL, *ab = NULL;
	const char *err = NULL;
	enum MHD_Result ret;

	if (load_entry(s, a_id, &pa, &aa, &err) < 0)
		return send_text(c, MHD_HTTP_NOT_FOUND, err);
	if (b_id && load_entry(s, b_id, &pb, &ab, &err) < 0) {
		ret = send_text(c, MHD_HTTP_NOT_FOUND, err);
	} else {
		ret = b_id ? send_svg(c, pa, pb,
				      "Differential Flame Graph (red: grew, blue: shrank)")
			   : send_svg(c, NULL, pa, NULL);
	}
	stoke_analysis_free(aa);
	stoke_analysis_free(ab);
	stoke_profile_free(pa);
	stoke_profile_free(pb);
	return ret;
}

static bool parse_pct(const char *s, double def, double *ret)
{
	char *end;

	if (!s || !*s) {
		*ret = def;
		return true;
	}
	errno = 0;
	*ret = strtod(s, &end);
	return !errno && !*end && *ret >= 0 && *ret <= 100;
}

/* Two suites compared: their statistics across repetitions side by side
 * (medians, and the change). Nothing when either is a single run. */
static void suites_side_by_side(const struct server *s, FILE *f, const char *a_id, const char *b_id)
{
	static const char *const keys[] = {"wall_s", "cpu_s", "samples", NULL};
	const char *ra, *rb, *la, *lb;
	json_object *ja, *jb;

	if (!parse_id(s, a_id, &ra, &la) || !parse_id(s, b_id, &rb, &lb))
		return;
	ja = read_json(ra, la, "suite.json");
	jb = read_json(rb, lb, "suite.json");
	if (ja && jb) {
		fputs("<h2>Suites</h2>\n<table id=\"suite-compare\"><thead><tr><th>median</th>"
		      "<th>base</th><th>new</th><th>change</th></tr></thead><tbody>\n",
		      f);
		for (size_t i = 0; keys[i]; i++) {
			double x = jnum(ja, keys[i], "median"), y = jnum(jb, keys[i], "median");

			fprintf(f, "<tr><th>%s</th>", keys[i]);
			num_cell(f, x, -1);
			num_cell(f, y, -1);
			if (x > 0 && y >= 0)
				fprintf(f, "<td class=\"n\">%+.1f%%</td></tr>\n",
					100.0 * (y - x) / x);
			else
				fputs("<td class=\"n\">-</td></tr>\n", f);
		}
		fputs("</tbody></table>\n", f);
	}
	json_object_put(ja);
	json_object_put(jb);
}

static enum MHD_Result page_compare(struct server *s, struct MHD_Connection *c, const char *a_id,
				    const char *b_id, const char *max_s)
{
	struct stoke_profile *pa = NULL, *pb = NULL;
	struct stoke_analysis *aa = NULL, *ab = NULL;
	struct diff_row *rows = NULL;
	const char *err = NULL;
	size_t n = 0, bad = 0;
	double max;
	struct page pg;
	FILE *f;

	if (!parse_pct(max_s, 5, &max))
		return send_error(c, MHD_HTTP_BAD_REQUEST, "bad threshold",
				  "the gate threshold is a number of points from 0 to 100");
	if (load_entry(s, a_id, &pa, &aa, &err) < 0 || load_entry(s, b_id, &pb, &ab, &err) < 0) {
		stoke_analysis_free(aa);
		stoke_profile_free(pa);
		return send_error(c, MHD_HTTP_NOT_FOUND, "cannot compare", err);
	}
	rows = diff_build_rows(aa, ab, &n);
	if (!rows || page_open(&pg) < 0) {
		free(rows);
		stoke_analysis_free(aa);
		stoke_analysis_free(ab);
		stoke_profile_free(pa);
		stoke_profile_free(pb);
		return MHD_NO;
	}
	f = pg.f;
	page_head(f, "Compare");
	fputs("<p>base <code>", f);
	esc(f, a_id);
	fprintf(f, "</code> (%" PRIu64 " samples), new <code>", aa->total);
	esc(f, b_id);
	fprintf(f, "</code> (%" PRIu64 " samples)</p>\n", ab->total);
	for (size_t i = 0; i < n; i++)
		if (rows[i].self_new - rows[i].self_base > max)
			bad++;
	/* The same rule as `stoke diff --max-regression`. */
	if (bad)
		fprintf(f,
			"<p id=\"verdict\" class=\"fail\">FAIL: %zu function%s self share grew "
			"by more than %g points</p>\n<ul id=\"regressions\">",
			bad, bad == 1 ? "'s" : "s'", max);
	else
		fprintf(f,
			"<p id=\"verdict\" class=\"pass\">PASS: no function's self share grew by "
			"more than %g points</p>\n",
			max);
	for (size_t i = 0; bad && i < n; i++) {
		double d = rows[i].self_new - rows[i].self_base;

		if (d <= max)
			continue;
		fputs("<li>", f);
		esc(f, rows[i].name);
		fprintf(f, " self %.1f%% &rarr; %.1f%% (%+.1f points)</li>", rows[i].self_base,
			rows[i].self_new, d);
	}
	if (bad)
		fputs("</ul>\n", f);
	suites_side_by_side(s, f, a_id, b_id);
	fputs("<h2>By function</h2>\n<table id=\"diff\"><thead><tr><th>function</th><th>self "
	      "base</th>"
	      "<th>self new</th><th>&Delta;self</th><th>total base</th><th>total new</th>"
	      "<th>&Delta;total</th></tr></thead><tbody>\n",
	      f);
	for (size_t i = 0; i < n && i < DIFF_ROWS; i++) {
		const struct diff_row *r = &rows[i];

		fputs("<tr><td class=\"fn\">", f);
		esc(f, r->name);
		fprintf(f,
			"</td><td class=\"n\">%.1f%%</td><td class=\"n\">%.1f%%</td><td "
			"class=\"n\">%+.1f</td>"
			"<td class=\"n\">%.1f%%</td><td class=\"n\">%.1f%%</td><td "
			"class=\"n\">%+.1f</td></tr>\n",
			r->self_base, r->self_new, r->self_new - r->self_base, r->total_base,
			r->total_new, r->total_new - r->total_base);
	}
	fputs("</tbody></table>\n<h2>Differential flame graph</h2>\n<object id=\"diffflame\" "
	      "type=\"image/svg+xml\" style=\"width:100%\" data=\"/diffflame?a=",
	      f);
	escurl(f, a_id);
	fputs("&amp;b=", f);
	escurl(f, b_id);
	fputs("\"></object>\n", f);
	page_tail(f);
	free(rows);
	stoke_analysis_free(aa);
	stoke_analysis_free(ab);
	stoke_profile_free(pa);
	stoke_profile_free(pb);
	return send_page(c, MHD_HTTP_OK, &pg);
}

/* ---- the call graph (graphviz dot) ---- */

/* In a forked child before exec: the signal mask and SIGPIPE's
 * disposition survive exec, and serve blocks SIGINT/SIGTERM (for sigwait)
 * and ignores SIGPIPE; the programs it runs get the defaults back. */
static void child_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* dot from STOKE_DOT or PATH, or NULL. */
static char *find_dot(void)
{
	const char *env = getenv("STOKE_DOT"), *path = getenv("PATH");
	char buf[PATH_MAX];

	if (env && *env)
		return access(env, X_OK) == 0 ? strdup(env) : NULL;
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/dot", (int)n, path);
		if (n && access(buf, X_OK) == 0)
			return strdup(buf);
		path += n + (path[n] == ':');
	}
	return NULL;
}

/* A dot double-quoted string's content. */
static void dot_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fputc(' ', f);
		else
			fputc(*s, f);
	}
}

/* gprof2dot's colour ramp: blue (cold) through green and yellow to red. */
static void dot_color(FILE *f, double pct)
{
	double t = pct / 100.0, h;

	if (t < 0)
		t = 0;
	if (t > 1)
		t = 1;
	h = (2.0 / 3.0) * (1.0 - sqrt(t));
	fprintf(f, "\"%.3f 0.85 0.75\"", h);
}

static int write_dot(FILE *f, const struct stoke_analysis *a, double node_min, double edge_min)
{
	bool *keep = calloc(a->nfuncs + 1, sizeof(*keep));

	if (!keep)
		return -ENOMEM;
	fputs("digraph stoke {\n  graph [ranksep=0.25, fontname=\"sans\"];\n"
	      "  node [shape=box, style=filled, fontcolor=white, fontname=\"sans\", fontsize=10];\n"
	      "  edge [fontname=\"sans\", fontsize=9];\n",
	      f);
	for (size_t i = 0; i < a->nfuncs; i++) {
		const struct stoke_func_stat *fs = &a->funcs[i];
		double tot = stoke_pct(fs->total, a->total), self = stoke_pct(fs->self, a->total);

		if (tot < node_min)
			continue;
		keep[i] = true;
		fprintf(f, "  f%zu [label=\"", i);
		dot_str(f, fs->name);
		fprintf(f, "\\n%.2f%%\\n(%.2f%% self)\", fillcolor=", tot, self);
		dot_color(f, tot);
		fputs("];\n", f);
	}
	for (size_t i = 0; i < a->nedges; i++) {
		const struct stoke_func_edge *e = &a->edges[i];
		double w = stoke_pct(e->weight, a->total);

		if (!keep[e->caller] || !keep[e->callee] || w < edge_min)
			continue;
		/* The label is the callee's total share that came through this
		 * call, and the edge's share of all samples. */
		fprintf(f,
			"  f%u -> f%u [label=\"%.2f%%\\n(%.0f%% of callee)\", penwidth=%.2f, "
			"color=",
			e->caller, e->callee, w, stoke_pct(e->weight, a->funcs[e->callee].total),
			0.5 + w / 10.0);
		dot_color(f, w);
		fputs("];\n", f);
	}
	fputs("}\n", f);
	free(keep);
	return 0;
}

/* Run dot -Tsvg on src; the SVG is returned malloc'd. */
static int run_dot(const struct server *s, const char *dot, const char *src, size_t srclen,
		   char **ret, size_t *ret_n)
{
	int in = memfd_create("stoke-dot", MFD_CLOEXEC), out[2] = {-1, -1};
	struct page pg = {0};
	time_t deadline = time(NULL) + DOT_TIMEOUT_S;
	pid_t pid;
	int st = 0;
	char buf[65536];

	if (in < 0 || write(in, src, srclen) != (ssize_t)srclen || lseek(in, 0, SEEK_SET) < 0 ||
	    pipe2(out, O_CLOEXEC) < 0 || page_open(&pg) < 0) {
		int e = -errno;

		if (in >= 0)
			close(in);
		if (out[0] >= 0) {
			close(out[0]);
			close(out[1]);
		}
		return e ? e : -EIO;
	}
	pid = fork();
	if (pid == 0) {
		child_signals();
		dup2(in, 0);
		dup2(out[1], 1);
		execl(dot, "dot", "-Tsvg", (char *)NULL);
		_exit(127);
	}
	close(in);
	close(out[1]);
	if (pid < 0) {
		close(out[0]);
		fclose(pg.f);
		free(pg.buf);
		return -errno;
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t r = read(out[0], buf, sizeof(buf));

		if (r > 0) {
			fwrite(buf, 1, (size_t)r, pg.f);
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || time(NULL) > deadline || atomic_load(&s->stopping)) {
			kill(pid, SIGKILL);
			break;
		}
		usleep(10000);
	}
	close(out[0]);
	waitpid(pid, &st, 0);
	fclose(pg.f);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		free(pg.buf);
		return -EIO;
	}
	*ret = pg.buf;
	*ret_n = pg.len;
	return 0;
}

static enum MHD_Result callgraph(struct server *s, struct MHD_Connection *c, const char *id,
				 const char *node_s, const char *edge_s, bool page)
{
	_cleanup_free_ char *dot = find_dot();
	struct stoke_profile *p = NULL;
	struct stoke_analysis *a = NULL;
	const char *err = NULL;
	double node, edge;
	struct page pg, src;
	char *svg = NULL;
	size_t svglen = 0;
	enum MHD_Result ret;
	int r;

	if (!parse_pct(node_s, 0.5, &node) || !parse_pct(edge_s, 0.1, &edge))
		return send_error(c, MHD_HTTP_BAD_REQUEST, "bad threshold",
				  "thresholds are percentages from 0 to 100");
	if (page) {
		const char *root, *rel;

		if (!parse_id(s, id, &root, &rel))
			return send_error(c, MHD_HTTP_NOT_FOUND, "no such run", id ? id : "(none)");
		if (page_open(&pg) < 0)
			return MHD_NO;
		page_head(pg.f, "Call graph");
		fputs("<p><a href=\"/run?run=", pg.f);
		escurl(pg.f, id);
		fputs("\">back to the run</a></p>\n", pg.f);
		fprintf(pg.f, "<form method=\"get\" action=\"/callgraph\"><input type=\"hidden\" "
			      "name=\"run\" value=\"");
		esc(pg.f, id);
		fprintf(pg.f,
			"\"><label>hide functions under <input name=\"node\" value=\"%g\" "
			"size=\"4\">%% of samples</label> <label>and calls under <input "
			"name=\"edge\" value=\"%g\" size=\"4\">%%</label> <button "
			"type=\"submit\">redraw</button></form>\n",
			node, edge);
		if (!dot) {
			fputs("<p class=\"warn\" id=\"no-dot\">The call graph needs graphviz: its "
			      "<code>dot</code> program was not found",
			      pg.f);
			fputs(getenv("STOKE_DOT") ? " at STOKE_DOT" : " in PATH", pg.f);
			fputs(". Install it (Debian: <code>apt install graphviz</code>).</p>\n",
			      pg.f);
		} else {
			fprintf(pg.f,
				"<p><small>Boxes: function, total %% of samples (self %%); "
				"arrows: the share of all samples through that call.</small></p>\n"
				"<img id=\"callgraph\" alt=\"call graph\" "
				"src=\"/callgraph.svg?run=");
			escurl(pg.f, id);
			fprintf(pg.f, "&amp;node=%g&amp;edge=%g\">\n", node, edge);
		}
		page_tail(pg.f);
		return send_page(c, MHD_HTTP_OK, &pg);
	}
	if (!dot)
		return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "graphviz's dot was not found: install graphviz\n");
	if (load_entry(s, id, &p, &a, &err) < 0)
		return send_text(c, MHD_HTTP_NOT_FOUND, err);
	r = page_open(&src);
	if (r == 0) {
		r = write_dot(src.f, a, node, edge);
		fclose(src.f);
		if (r == 0)
			r = run_dot(s, dot, src.buf, src.len, &svg, &svglen);
		free(src.buf);
	}
	stoke_analysis_free(a);
	stoke_profile_free(p);
	if (r < 0)
		return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 "dot failed to draw the graph\n");
	ret = send_buf(c, MHD_HTTP_OK, "image/svg+xml", svg, svglen, NULL);
	return ret;
}

/* ---- files ---- */

static const char *content_type(const char *name, bool *attachment)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript"},
		{".css", "text/css"},
		{".json", "application/json"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
		{".wasm", "application/wasm"},
		{".woff2", "font/woff2"},
		{".txt", "text/plain; charset=utf-8"},
		{".folded", "text/plain; charset=utf-8"},
		{".stoke", "text/plain; charset=utf-8"},
	};
	size_t n = strlen(name);

	*attachment = false;
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		size_t k = strlen(types[i].ext);

		if (n > k && !strcmp(name + n - k, types[i].ext))
			return types[i].type;
	}
	*attachment = true;
	return "application/octet-stream";
}

/* Serve root/rel (already joined), a regular file. html_ok: whether an
 * .html file may run with the dashboard's origin (speedscope's own pages
 * only). */
static enum MHD_Result send_file(struct MHD_Connection *c, const char *root, const char *rel,
				 bool html_ok)
{
	int fd = serve_open_beneath(root, rel, O_RDONLY);
	struct MHD_Response *r;
	struct stat st;
	bool attach;
	const char *type;
	const char *base = strrchr(rel, '/');
	enum MHD_Result ret;

	if (fd < 0)
		return send_text(c, fd == -EACCES ? MHD_HTTP_FORBIDDEN : MHD_HTTP_NOT_FOUND,
				 fd == -EACCES ? "outside the served directories\n"
					       : "not found\n");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return send_text(c, MHD_HTTP_NOT_FOUND, "not a file\n");
	}
	type = content_type(rel, &attach);
	r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	add_common_headers(r);
	/* A run directory's HTML and SVG (stoke's -f html report, its
	 * flame graph: scripts, but files anyone could have written) open in
	 * a sandbox: an origin of their own, so a script in them can
	 * neither read the dashboard nor use its cookie. */
	if (!html_ok && (!strncmp(type, "text/html", 9) || !strcmp(type, "image/svg+xml")))
		MHD_add_response_header(r, "Content-Security-Policy",
					"sandbox allow-scripts; default-src 'none'; "
					"script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
					"img-src data:");
	MHD_add_response_header(r, "Content-Type", type);
	if (attach) {
		char cd[300];
		char safe[200];
		size_t k = 0;

		/* The name as a plain token: anything odd becomes '_'. */
		for (const char *p = base ? base + 1 : rel; *p && k < sizeof(safe) - 1; p++)
			safe[k++] = (*p >= 0x21 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '_';
		safe[k] = '\0';
		snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", safe);
		MHD_add_response_header(r, "Content-Disposition", cd);
	}
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result run_file(struct server *s, struct MHD_Connection *c, const char *id,
				const char *name)
{
	const char *root, *rel;
	_cleanup_free_ char *path = NULL;

	if (!parse_id(s, id, &root, &rel) || !name || !serve_relpath_ok(name) ||
	    strchr(name, '/') || !strcmp(name, "."))
		return send_text(c, MHD_HTTP_NOT_FOUND, "no such file\n");
	path = join(rel, name);
	if (!path)
		return MHD_NO;
	return send_file(c, root, path, false);
}

/* ---- launching ---- */

static void job_free_before(struct job *j)
{
	for (size_t i = 0; i < j->nbefore; i++)
		free(j->before[i]);
	free(j->before);
	j->before = NULL;
	j->nbefore = 0;
}

struct launch_form {
	const char *kind;
	const char *command, *frequency, *call_graph, *duration; /* a record */
	const char *file;					 /* a suite */
};

/* Fork and exec argv as a job in a process group of its own. With
 * jobs_lock held. */
static enum MHD_Result launch_locked(struct server *s, struct MHD_Connection *c, char **argv,
				     char *what_arg)
{
	_cleanup_free_ char *what = what_arg, *log = NULL;
	struct entry *es;
	size_t nes;
	struct job *j;
	int logfd, devnull;
	pid_t pid;

	jobs_reap(s);
	if (atomic_load(&s->stopping))
		return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping",
				  "stoke serve is exiting");
	if (s->njobs == MAX_JOBS)
		return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many jobs",
				  "restart stoke serve to launch more");
	if (!what || asprintf(&log, "%s/job-%zu.log", s->logdir, s->njobs + 1) < 0)
		return MHD_NO;
	logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || devnull < 0) {
		if (logfd >= 0)
			close(logfd);
		if (devnull >= 0)
			close(devnull);
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot launch",
				  "cannot open the job's log");
	}
	es = scan(s, &nes);
	pid = fork();
	if (pid == 0) {
		/* The child of a threaded process: only async-signal-safe
		 * calls until exec. Its own process group, which its record's
		 * target joins too: serve ends the whole group on exit. */
		setpgid(0, 0);
		child_signals();
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(s->self_exe, argv);
		_exit(127);
	}
	close(logfd);
	close(devnull);
	if (pid < 0) {
		entries_free(es, nes);
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot launch",
				  strerror(errno));
	}
	/* Also here: the group must exist before serve may signal it. */
	setpgid(pid, pid);
	j = &s->jobs[s->njobs++];
	*j = (struct job){
		.pid = pid, .what = TAKE_PTR(what), .log = TAKE_PTR(log), .start = time(NULL)};
	j->before = calloc(nes + 1, sizeof(*j->before));
	for (size_t i = 0; j->before && i < nes; i++)
		j->before[j->nbefore++] = TAKE_PTR(es[i].id);
	entries_free(es, nes);
	log_info("launched job %zu (pid %d): %s", s->njobs, (int)pid, j->what);
	return redirect(c, "/jobs", NULL);
}

static enum MHD_Result launch(struct server *s, struct MHD_Connection *c,
			      const struct launch_form *fm)
{
	char *argv[MAX_WORDS + 20];
	_cleanup_free_ char **words = NULL;
	_cleanup_free_ char *freq_arg = NULL, *cg_arg = NULL, *dur_arg = NULL;
	char *what = NULL;
	size_t n = 0, nw = 0;
	enum MHD_Result ret;

	argv[n++] = s->self_exe;
	if (fm->kind && !strcmp(fm->kind, "record")) {
		const char *bad =
			serve_record_opts_check(fm->frequency, fm->call_graph, fm->duration);
		int r;

		if (bad)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "bad record option", bad);
		r = serve_split_command(fm->command ? fm->command : "", MAX_WORDS, &words, &nw);
		if (r == -ENOMEM)
			return MHD_NO;
		if (r < 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "bad command line",
					  r == -E2BIG ? "more than 250 words"
						      : "a quote is not closed, or a backslash "
							"ends the line");
		if (nw == 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "nothing to record",
					  "give the command to record");
		argv[n++] = (char *)"record";
		argv[n++] = (char *)"-q";
		argv[n++] = (char *)"--output-dir";
		argv[n++] = s->roots[0];
		/* One word each, so a value can never become another option. */
		if (fm->frequency && *fm->frequency) {
			if (asprintf(&freq_arg, "--freq=%s", fm->frequency) < 0)
				return MHD_NO;
			argv[n++] = freq_arg;
		}
		if (fm->call_graph && *fm->call_graph) {
			if (asprintf(&cg_arg, "--call-graph=%s", fm->call_graph) < 0)
				return MHD_NO;
			argv[n++] = cg_arg;
		}
		if (fm->duration && *fm->duration) {
			if (asprintf(&dur_arg, "--duration=%s", fm->duration) < 0)
				return MHD_NO;
			argv[n++] = dur_arg;
		}
		argv[n++] = (char *)"--";
		for (size_t i = 0; i < nw; i++)
			argv[n++] = words[i];
		what = strdup(fm->command);
	} else if (fm->kind && !strcmp(fm->kind, "suite")) {
		if (!fm->file || !*fm->file)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "no suite file",
					  "give the path of a suite file");
		argv[n++] = (char *)"suite";
		argv[n++] = (char *)fm->file;
		argv[n++] = (char *)"--output-dir";
		argv[n++] = s->roots[0];
		if (asprintf(&what, "suite %s", fm->file) < 0)
			what = NULL;
	} else {
		return send_error(c, MHD_HTTP_BAD_REQUEST, "unknown launch",
				  "kind is record or suite");
	}
	argv[n] = NULL;
	pthread_mutex_lock(&s->jobs_lock);
	ret = launch_locked(s, c, argv, what);
	pthread_mutex_unlock(&s->jobs_lock);
	return ret;
}

static bool in_before(const struct job *j, const char *id)
{
	for (size_t i = 0; i < j->nbefore; i++)
		if (!strcmp(j->before[i], id))
			return true;
	return false;
}

static enum MHD_Result page_jobs(struct server *s, struct MHD_Connection *c)
{
	struct entry *es = NULL;
	size_t nes = 0;
	bool running = false;
	struct page pg;
	FILE *f;

	if (page_open(&pg) < 0)
		return MHD_NO;
	/* Held to the end: the page reads the jobs' strings. */
	pthread_mutex_lock(&s->jobs_lock);
	jobs_reap(s);
	for (size_t i = 0; i < s->njobs; i++)
		running |= !s->jobs[i].done;
	f = pg.f;
	fputs("<!DOCTYPE html><html><head><meta charset=\"utf-8\">", f);
	/* Progress: the page reloads itself while a job runs. */
	if (running)
		fputs("<meta http-equiv=\"refresh\" content=\"1\">", f);
	fputs("<title>jobs - stoke</title>", f);
	fputs(STYLE, f);
	fputs("</head><body><nav><a href=\"/\">runs</a><a href=\"/jobs\">jobs</a></nav>"
	      "<h1>Jobs</h1>\n",
	      f);
	if (!s->njobs)
		fputs("<p>No job launched yet.</p>\n", f);
	es = scan(s, &nes);
	for (size_t i = s->njobs; i-- > 0;) {
		const struct job *j = &s->jobs[i];
		_cleanup_free_ char *logbuf = NULL;
		time_t now = j->done ? j->end : time(NULL);

		fprintf(f, "<div class=\"job\" id=\"job-%zu\"><h2>#%zu ", i + 1, i + 1);
		esc(f, j->what);
		fputs("</h2><p class=\"state\">", f);
		if (!j->done)
			fprintf(f, "<span class=\"running\">running</span> for %lld s",
				(long long)(now - j->start));
		else if (WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0)
			fprintf(f, "<span class=\"pass done\">done</span> in %lld s",
				(long long)(now - j->start));
		else if (WIFEXITED(j->status))
			fprintf(f, "<span class=\"fail done\">failed</span> (exit %d)",
				WEXITSTATUS(j->status));
		else
			fprintf(f, "<span class=\"fail done\">killed</span> (signal %d)",
				WTERMSIG(j->status));
		fputs("</p>", f);
		if (j->done) {
			bool any = false;

			fputs("<ul class=\"new-runs\">", f);
			for (size_t k = 0; k < nes; k++) {
				if (in_before(j, es[k].id))
					continue;
				any = true;
				fprintf(f, "<li><a class=\"new-run\" href=\"/%s?run=",
					es[k].suite ? "suite" : "run");
				escurl(f, es[k].id);
				fputs("\">", f);
				entry_label(f, &es[k]);
				fputs("</a></li>", f);
			}
			if (!any)
				fputs("<li>no new run</li>", f);
			fputs("</ul>", f);
		}
		if (read_beneath("/", j->log + 1, 1 << 20, &logbuf, NULL) == 0 && *logbuf) {
			size_t len = strlen(logbuf);
			const char *tail = len > 4000 ? logbuf + len - 4000 : logbuf;

			fputs("<pre class=\"log\">", f);
			esc(f, tail);
			fputs("</pre>", f);
		}
		fputs("</div>\n", f);
	}
	pthread_mutex_unlock(&s->jobs_lock);
	entries_free(es, nes);
	page_tail(f);
	return send_page(c, MHD_HTTP_OK, &pg);
}

/* ---- dispatch ---- */

struct conn {
	bool post;
	char *body;
	size_t len;
	bool too_big;
};

/* Find key in an application/x-www-form-urlencoded body; the value is
 * decoded into a malloc'd string. */
static char *form_value(const char *body, const char *key)
{
	size_t klen = strlen(key);
	const char *p = body;

	while (p && *p) {
		size_t n = strcspn(p, "&");

		if (n > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			char *v = strndup(p + klen + 1, n - klen - 1);

			if (!v)
				return NULL;
			for (char *q = v; *q; q++)
				if (*q == '+')
					*q = ' ';
			MHD_http_unescape(v);
			return v;
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return NULL;
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;

	if (cn) {
		free(cn->body);
		free(cn);
		*con_cls = NULL;
	}
}

static enum MHD_Result route(struct server *s, struct MHD_Connection *c, const char *url);

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct conn *cn = *con_cls;
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *qtoken = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
	const char *ctoken = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, s->cookie);
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

	if (!cn) {
		/* First call, headers only: refuse before reading a body. */
		if (!serve_host_ok(host, s->addr, s->port))
			return send_text(c, MHD_HTTP_FORBIDDEN,
					 "refused: the Host header does not name this server\n");
		if (!get && strcmp(method, "POST"))
			return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or POST only\n");
		if (get && !serve_token_equal(s->token, qtoken) &&
		    !serve_token_equal(s->token, ctoken))
			return send_text(
				c, MHD_HTTP_FORBIDDEN,
				"refused: no valid token (open the URL stoke serve printed)\n");
		cn = calloc(1, sizeof(*cn));
		if (!cn)
			return MHD_NO;
		cn->post = !get;
		*con_cls = cn;
		if (cn->post)
			return MHD_YES;
	}
	if (cn->post) {
		_cleanup_free_ char *token = NULL, *kind = NULL, *command = NULL, *file = NULL;
		_cleanup_free_ char *freq = NULL, *cg = NULL, *dur = NULL;

		if (*upload_data_size) {
			if (cn->len + *upload_data_size > MAX_POST) {
				cn->too_big = true;
			} else {
				char *nb = realloc(cn->body, cn->len + *upload_data_size + 1);

				if (!nb)
					return MHD_NO;
				memcpy(nb + cn->len, upload_data, *upload_data_size);
				cn->body = nb;
				cn->len += *upload_data_size;
				cn->body[cn->len] = '\0';
			}
			*upload_data_size = 0;
			return MHD_YES;
		}
		if (cn->too_big)
			return send_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "form too large\n");
		/* The token must be in the form itself: a cookie alone would let
		 * another site's form start a process. */
		token = cn->body ? form_value(cn->body, "token") : NULL;
		if (!serve_token_equal(s->token, token))
			return send_text(c, MHD_HTTP_FORBIDDEN,
					 "refused: no valid token in the form\n");
		if (strcmp(url, "/launch"))
			return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
		kind = form_value(cn->body, "kind");
		command = form_value(cn->body, "command");
		file = form_value(cn->body, "file");
		freq = form_value(cn->body, "frequency");
		cg = form_value(cn->body, "call_graph");
		dur = form_value(cn->body, "duration");
		return launch(s, c,
			      &(struct launch_form){.kind = kind,
						    .command = command,
						    .frequency = freq,
						    .call_graph = cg,
						    .duration = dur,
						    .file = file});
	}
	if (qtoken && serve_token_equal(s->token, qtoken)) {
		/* Jupyter's way: the URL's token becomes a cookie, and the
		 * token leaves the address bar. */
		char cookie[200];

		snprintf(cookie, sizeof(cookie), "%s=%s; HttpOnly; SameSite=Strict; Path=/",
			 s->cookie, s->token);
		if (!strcmp(url, "/"))
			return redirect(c, "/", cookie);
	}
	return route(s, c, url);
}

/* Whether url loads a profile or runs dot. */
static bool heavy_url(const char *url)
{
	static const char *const heavy[] = {"/run",	"/suite",	  "/flame", "/diffflame",
					    "/compare", "/callgraph.svg", NULL};

	for (size_t i = 0; heavy[i]; i++)
		if (!strcmp(url, heavy[i]))
			return true;
	return false;
}

static enum MHD_Result route_light(struct server *s, struct MHD_Connection *c, const char *url)
{
#define ARG(k) MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k)
	if (!strcmp(url, "/"))
		return page_index(s, c);
	if (!strcmp(url, "/run"))
		return page_run(s, c, ARG("run"));
	if (!strcmp(url, "/suite"))
		return page_suite(s, c, ARG("run"));
	if (!strcmp(url, "/flame"))
		return flame(s, c, ARG("run"), NULL);
	if (!strcmp(url, "/diffflame"))
		return flame(s, c, ARG("a"), ARG("b") ? ARG("b") : "");
	if (!strcmp(url, "/compare"))
		return page_compare(s, c, ARG("a"), ARG("b"), ARG("max"));
	if (!strcmp(url, "/callgraph"))
		return callgraph(s, c, ARG("run"), ARG("node"), ARG("edge"), true);
	if (!strcmp(url, "/callgraph.svg"))
		return callgraph(s, c, ARG("run"), ARG("node"), ARG("edge"), false);
	if (!strcmp(url, "/file"))
		return run_file(s, c, ARG("run"), ARG("name"));
	if (!strcmp(url, "/jobs"))
		return page_jobs(s, c);
	if (!strncmp(url, "/speedscope/", 12)) {
		if (!s->speedscope)
			return send_text(c, MHD_HTTP_NOT_FOUND, "speedscope is not installed\n");
		if (!serve_relpath_ok(url + 12))
			return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
		return send_file(c, s->speedscope, url + 12, true);
	}
#undef ARG
	return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* A heavy request waits for one of MAX_HEAVY slots; the light ones (the
 * lists, the jobs, files) never wait. */
static enum MHD_Result route(struct server *s, struct MHD_Connection *c, const char *url)
{
	struct timespec ts;
	enum MHD_Result ret;
	int r;

	if (!heavy_url(url))
		return route_light(s, c, url);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += HEAVY_WAIT_S;
	while ((r = sem_clockwait(&s->heavy, CLOCK_MONOTONIC, &ts)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "busy: too many profiles being loaded; try again\n");
	ret = route_light(s, c, url);
	sem_post(&s->heavy);
	return ret;
}

/* ---- start and stop ---- */

static bool is_dir_with_index(const char *dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/index.html", dir);
	return access(p, R_OK) == 0;
}

/* SIGTERM to every running job's process group, then SIGKILL to the
 * groups after JOB_GRACE_MS, and reap. A job leader that has exited stays
 * unreaped (waitid WNOWAIT) until the SIGKILL, so its group id cannot have
 * passed to anyone else. */
static void jobs_end(struct server *s)
{
	bool term_sent[MAX_JOBS] = {false};
	struct timespec t0, now;

	pthread_mutex_lock(&s->jobs_lock);
	jobs_reap(s);
	for (size_t i = 0; i < s->njobs; i++) {
		if (s->jobs[i].done)
			continue;
		log_info("stopping job %zu (pid %d)", i + 1, (int)s->jobs[i].pid);
		kill(-s->jobs[i].pid, SIGTERM);
		term_sent[i] = true;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		bool left = false;

		for (size_t i = 0; i < s->njobs; i++) {
			siginfo_t si = {0};

			if (!term_sent[i])
				continue;
			if (waitid(P_PID, (id_t)s->jobs[i].pid, &si, WEXITED | WNOHANG | WNOWAIT) <
				    0 ||
			    si.si_pid == 0)
				left = true;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!left ||
		    (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
			    JOB_GRACE_MS)
			break;
		usleep(20000);
	}
	for (size_t i = 0; i < s->njobs; i++) {
		int st;

		if (!term_sent[i])
			continue;
		/* Whatever is left of the group: a target that ignored
		 * SIGTERM, or a leader that did. */
		kill(-s->jobs[i].pid, SIGKILL);
		kill(s->jobs[i].pid, SIGKILL);
		if (waitpid(s->jobs[i].pid, &st, 0) == s->jobs[i].pid) {
			s->jobs[i].done = true;
			s->jobs[i].status = st;
		}
	}
	pthread_mutex_unlock(&s->jobs_lock);
}

int serve_run(const struct serve_opts *o)
{
	struct server *s = calloc(1, sizeof(*s));
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct MHD_Daemon *d = NULL;
	int lfd = -1;
	sigset_t set;
	ssize_t n;
	int sig, code = 1;

	if (!s)
		return 1;
	pthread_mutex_init(&s->jobs_lock, NULL);
	sem_init(&s->heavy, 0, MAX_HEAVY);
	snprintf(s->addr, sizeof(s->addr), "%s", o->addr ? o->addr : "127.0.0.1");
	if (inet_pton(AF_INET, s->addr, &sin.sin_addr) != 1) {
		log_error("--bind takes an IPv4 address, not '%s'", s->addr);
		goto out;
	}
	sin.sin_port = htons((uint16_t)o->port);
	s->roots = calloc(o->ndirs + 1, sizeof(*s->roots));
	if (!s->roots)
		goto out;
	for (size_t i = 0; i < o->ndirs; i++) {
		struct stat st;

		s->roots[i] = realpath(o->dirs[i], NULL);
		if (!s->roots[i] || stat(s->roots[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
			log_error("'%s' is not a directory", o->dirs[i]);
			goto out;
		}
		s->nroots++;
	}
	s->speedscope_wanted = o->speedscope;
	if (o->speedscope && is_dir_with_index(o->speedscope))
		s->speedscope = realpath(o->speedscope, NULL);
	if (!s->speedscope)
		log_warn("no speedscope static build at '%s': the time-ordered view will say so",
			 o->speedscope ? o->speedscope : "(none)");
	n = readlink("/proc/self/exe", s->self_exe, sizeof(s->self_exe) - 1);
	if (n < 0) {
		log_error("cannot find stoke's own executable: %s", strerror(errno));
		goto out;
	}
	s->self_exe[n] = '\0';
	snprintf(s->logdir, sizeof(s->logdir), "/tmp/stoke-serve-XXXXXX");
	if (!mkdtemp(s->logdir)) {
		log_error("cannot create a directory for job logs: %s", strerror(errno));
		goto out;
	}
	if (serve_token_new(s->token) < 0) {
		log_error("cannot draw a random token: %s", strerror(errno));
		goto out;
	}
	/* The MHD thread inherits this mask: the signals reach sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The socket is bound here, before any request thread exists: the
	 * port and the cookie's name that every request reads are set
	 * first, and only then does a connection get through. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 64) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &(socklen_t){sizeof(sin)}) < 0) {
		log_error("cannot listen on %s:%u: %s", s->addr, o->port, strerror(errno));
		goto out;
	}
	s->port = ntohs(sin.sin_port);
	snprintf(s->cookie, sizeof(s->cookie), "stoke_token_%u", s->port);
	d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
		0, NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, lfd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
	if (!d) {
		log_error("cannot serve on %s:%u: %s", s->addr, s->port, strerror(errno));
		goto out;
	}
	lfd = -1; /* the daemon's now, closed by MHD_stop_daemon */
	if (strncmp(s->addr, "127.", 4))
		log_warn("listening on %s, not loopback: anyone who can reach it and learns the "
			 "token can launch commands as you",
			 s->addr);
	printf("stoke serve: http://%s:%u/?token=%s\n", s->addr, s->port, s->token);
	fflush(stdout);
	do {
		if (sigwait(&set, &sig) != 0)
			break;
	} while (sig == SIGHUP);
	code = 0;
out:
	/* No new launch from here, and a dot running is cut short; the jobs
	 * get SIGTERM now and wind down while the requests in flight end. */
	atomic_store(&s->stopping, true);
	if (d) {
		jobs_end(s);
		MHD_stop_daemon(d);
	}
	if (lfd >= 0)
		close(lfd);
	for (size_t i = 0; i < s->njobs; i++) {
		unlink(s->jobs[i].log);
		free(s->jobs[i].log);
		free(s->jobs[i].what);
		job_free_before(&s->jobs[i]);
	}
	if (s->logdir[0] && strcmp(s->logdir, "/tmp/stoke-serve-XXXXXX"))
		rmdir(s->logdir);
	for (size_t i = 0; i < s->nroots; i++)
		free(s->roots[i]);
	free(s->roots);
	free(s->speedscope);
	sem_destroy(&s->heavy);
	pthread_mutex_destroy(&s->jobs_lock);
	free(s);
	return code;
}
