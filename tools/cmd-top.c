/*
 * `stoke top INPUT [-n N] [--by self|total]`: the hottest functions of a
 * stored profile, with their main callers and callees.
 *
 * `stoke top -p PID` (or `-- CMD ARGS...`): the same functions live, as
 * py-spy top shows them, over a sliding window of the last seconds. The
 * recording is `stoke record`'s own (record_run_live: its targets, signals,
 * session and -o); this file only adds the view. Once a second the session
 * names what was read since the last refresh (stoke_session_sync: each new
 * location once, off the ring drain path, which goes on draining while
 * naming takes long), and the window moves over the profile's samples by
 * refresh: no sample clock is trusted against ours.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "formats/analysis.h"
#include "formats/folded.h"
#include "tools/cli.h"
#include "formats/load.h"
#include "formats/resource.h"
#include "formats/spans.h"
#include "common/log.h"
#include "session/session.h"
#include "common/util.h"

#define TOP_NEIGHBOURS 3

static void usage(FILE *f)
{
	fputs("usage: stoke top INPUT [-n N] [--by self|total]\n"
	      "       stoke top -p PID | -- CMD [ARGS...]  [live options]\n"
	      "\n"
	      "The hottest functions of a stored profile (profile.pb.gz or a run\n"
	      "directory), with their main callers and callees; or, live, of a\n"
	      "running process or a command, refreshed every second over a sliding\n"
	      "window (q or Ctrl-C quits; 1 and 2 sort by own and total time).\n"
	      "When stdout is not a terminal, a plain table is printed every second.\n"
	      "\n"
	      "  -n, --count N      functions to show (default 20; live: as many as\n"
	      "                     the terminal holds)\n"
	      "      --by KEY       rank by self (default) or total time\n"
	      "      --span NAME    only the samples taken in span NAME (innermost;\n"
	      "                     see README \"Spans\")\n"
	      "\n"
	      "live:\n"
	      "  -p, --pid PID      attach to a running process (every thread)\n"
	      "  -w, --window SECS  the window the shares are over (default 10)\n"
	      "  -o, --output FILE  on exit, write the whole profile so far to FILE\n"
	      "                     (atomically; the format follows the extension)\n"
	      "  -f, --format FMT   -o's format, as in stoke record\n"
	      "  -d, --duration S   stop after S seconds\n"
	      "  -F, --freq HZ, -e, --event EVENT, -g, --call-graph MODE, --no-kernel,\n"
	      "  --sampler KIND, --debuginfo-path DIRS, --demangle MODE: as in stoke record\n",
	      f);
}

/* Print up to TOP_NEIGHBOURS callers (or callees) of function fn with their
 * share of fn's total. */
static void neighbours(const struct stoke_analysis *a, uint32_t fn, bool callers)
{
	struct stoke_neighbour best[TOP_NEIGHBOURS];
	size_t nbest = stoke_analysis_neighbours(a, fn, callers, best, TOP_NEIGHBOURS);

	if (!nbest)
		return;
	printf("          %s ", callers ? "callers:" : "callees:");
	for (size_t j = 0; j < nbest; j++)
		printf("%s%s %.1f%%", j ? ", " : "", a->funcs[best[j].func].name,
		       stoke_pct(best[j].weight, a->funcs[fn].total));
	putchar('\n');
}

/* A run directory's resource timeline, summed up (nothing without one). */
static void resources_line(const char *input)
{
	struct stoke_rseries rs = { 0 };
	struct stoke_rsummary sum;
	const char *err;

	if (cli_load_resources(input, &rs, &err) <= 0)
		return;
	stoke_rseries_summary(&rs, &sum);
	printf("resources: peak RSS %.1f MB, mean RSS %.1f MB, CPU %.0f%% of a core (peak %.0f%%)\n",
	       (double)sum.peak_rss / (1 << 20), (double)sum.mean_rss / (1 << 20),
	       100 * sum.mean_cpu, 100 * sum.peak_cpu);
	stoke_rseries_free(&rs);
}

static void header(const char *input, const struct stoke_profile *p,
		   const struct stoke_analysis *a)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	const char *event = stoke_profile_string(p, m->event);
	double dur = m->end_ns > m->start_ns ? (double)(m->end_ns - m->start_ns) / 1e9 : 0;
	char rate[64] = "";
	size_t nthreads;

	stoke_profile_threads(p, &nthreads);
	/* Profiles from other tools (Go's pprof) may carry only a period, or
	 * no rate and event at all: print what is known, never "0 Hz ?". */
	if (m->frequency)
		snprintf(rate, sizeof(rate), ", %u Hz", m->frequency);
	else if (m->period_ns)
		snprintf(rate, sizeof(rate), ", every %.3g ms", (double)m->period_ns / 1e6);
	printf("%s\n", input);
	printf("samples %" PRIu64 " (%zu thread%s), duration %.2f s%s%s%s, lost %" PRIu64
	       ", unwind failures %" PRIu64 ", truncated %" PRIu64 "\n",
	       a->total, nthreads, nthreads == 1 ? "" : "s", dur, rate, event && *event ? " " : "",
	       event && *event ? event : "", m->lost, a->unwind_failed, a->truncated);
	resources_line(input);
	putchar('\n');
}

/* --span NAME: the stored table of that span's samples only. */
static const char *top_span;

/* The stored profile's table. */
static int top_stored(const char *input, long count, bool by_total)
{
	struct stoke_profile *p = NULL;
	struct stoke_analysis *a = NULL;
	const char *err = NULL;
	uint32_t *order = NULL;
	int r;

	r = stoke_profile_load(input, &p, &err);
	if (r < 0) {
		log_error("cannot read '%s': %s", input, err);
		return 1;
	}
	if (top_span) {
		struct stoke_profile *f = NULL;

		r = stoke_span_filter(p, top_span, &f);
		stoke_profile_free(p);
		p = f;
		if (r == -ENOENT) {
			log_error("'%s' has no sample taken in span '%s'", input, top_span);
			return 1;
		}
		if (r < 0) {
			log_error("out of memory");
			return 1;
		}
	}
	r = stoke_analysis_new(p, &a);
	order = r == 0 ? calloc(a->nfuncs + 1, sizeof(*order)) : NULL;
	if (!order) {
		log_error("out of memory");
		stoke_analysis_free(a);
		stoke_profile_free(p);
		return 1;
	}
	stoke_analysis_sort(a, by_total, order);
	header(input, p, a);
	/* The count column is whichever the ranking is by: say which. */
	printf("%5s %7s %7s %9s  %-40s %s\n", "rank", "self%", "total%",
	       by_total ? "total-n" : "self-n", "function", "location");
	for (size_t i = 0; i < a->nfuncs && i < (size_t)count; i++) {
		const struct stoke_func_stat *f = &a->funcs[order[i]];
		char loc[512] = "";

		if (f->file && f->line)
			snprintf(loc, sizeof(loc), "%s:%u", f->file, f->line);
		printf("%5zu %6.1f%% %6.1f%% %9" PRIu64 "  %-40s %s\n", i + 1, stoke_pct(f->self, a->total),
		       stoke_pct(f->total, a->total), by_total ? f->total : f->self, f->name, loc);
		neighbours(a, order[i], true);
		neighbours(a, order[i], false);
	}
	free(order);
	stoke_analysis_free(a);
	stoke_profile_free(p);
	return 0;
}

/* ---- the live view ---- */

#define LIVE_MAX_FRAMES 1024
#define LIVE_MAX_WINDOW 3600

/* A function of the live view: frames with the same display name are one
 * function, as in the stored table (formats/analysis.h). */
struct live_func {
	char *name;     /* display name */
	char *where;    /* "file:line" of its definition, or its module; may be NULL */
	uint64_t self, total; /* weight over the window, at the last refresh */
	uint64_t stamp; /* the stack last counted in total (recursion counts once) */
};

/* The state at one refresh: the window starts at the oldest kept one. */
struct live_mark {
	size_t sample; /* profile samples before it */
	uint64_t lost; /* samples lost before it */
	double time;   /* monotonic seconds */
};

struct live_view {
	pid_t pid;             /* -p, or 0 */
	unsigned window;       /* seconds (refreshes) */
	long count;            /* rows wanted (0: what the screen holds) */
	bool by_total;
	bool screen;           /* stdout is a terminal: redraw in place */
	bool term_ready;       /* the terminal was set up (first refresh) */
	bool keys_raw;         /* stdin's terminal settings changed (restore) */
	struct termios saved;
	struct record_live live;
	double start;
	char status[256];      /* an error to show, or "" */

	/* Per function and the ids that map to it. Frames with a name map by
	 * the name's string id (one id per string), unnamed frames each by
	 * their own frame id; 0 is "not seen yet", else index + 1. */
	struct live_func *funcs;
	size_t nfuncs, funcs_cap;
	uint32_t *frame_func;  /* by frame id */
	size_t frame_func_cap;
	uint32_t *name_func;   /* by string id */
	size_t name_func_cap;

	/* The window: weights by stack and by thread index. */
	uint64_t *stack_w;
	size_t stack_w_cap;
	uint32_t *active;      /* stacks whose weight may be non-zero */
	size_t nactive, active_cap;
	uint64_t *thread_w;
	size_t thread_w_cap;
	size_t head, tail;     /* samples [tail, head) are in the window */
	uint64_t window_total;
	struct live_mark marks[LIVE_MAX_WINDOW + 1];
	size_t nmarks;         /* ring of the last window + 1 refreshes */
	size_t mark0;          /* its oldest */
	uint64_t lost, throttled, samples;
	uint32_t threads_seen;
	unsigned refreshes;
	bool exited;           /* the recording ended with every target gone */
};

static double live_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Grow a zero-filled array to hold index need - 1. */
static int grow_zero(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t old = *cap;
	int r = stoke_grow(arr, cap, need, elem);

	if (r == 0 && *cap > old)
		memset((char *)*arr + old * elem, 0, (*cap - old) * elem);
	return r;
}

static const char *base_name(const char *path)
{
	const char *b = path ? strrchr(path, '/') : NULL;

	return b ? b + 1 : path;
}

/* The function of frame id, made on first sight. Returns its index or -1
 * (out of memory). */
static long live_func_of(struct live_view *v, const struct stoke_profile *p, uint32_t id)
{
	const struct stoke_pframe *f = stoke_profile_get_frame(p, id);
	uint32_t *slot;
	char buf[512], where[512] = "";
	const char *file, *module;
	struct live_func *fn;

	if (!f)
		return -1;
	if (grow_zero((void **)&v->frame_func, &v->frame_func_cap, (size_t)id + 1,
		      sizeof(*v->frame_func)) < 0)
		return -1;
	if (v->frame_func[id])
		return v->frame_func[id] - 1;
	slot = &v->frame_func[id];
	if (f->name) {
		if (grow_zero((void **)&v->name_func, &v->name_func_cap, (size_t)f->name + 1,
			      sizeof(*v->name_func)) < 0)
			return -1;
		if (v->name_func[f->name]) {
			*slot = v->name_func[f->name];
			return *slot - 1;
		}
	}
	if (STOKE_GROW(v->funcs, v->funcs_cap, v->nfuncs + 1) < 0)
		return -1;
	fn = &v->funcs[v->nfuncs];
	memset(fn, 0, sizeof(*fn));
	file = f->decl_file ? stoke_profile_string(p, f->decl_file)
			    : stoke_profile_string(p, f->file);
	module = stoke_profile_string(p, f->module);
	if (file && *file && f->decl_line)
		snprintf(where, sizeof(where), "%s:%u", base_name(file), f->decl_line);
	else if (file && *file)
		snprintf(where, sizeof(where), "%s", base_name(file));
	else if (f->name && module && *module)
		snprintf(where, sizeof(where), "%s", base_name(module));
	fn->name = strdup(stoke_frame_display(p, f, buf, sizeof(buf)));
	fn->where = *where ? strdup(where) : NULL;
	if (!fn->name)
		return -1;
	v->nfuncs++;
	*slot = (uint32_t)v->nfuncs;
	if (f->name)
		v->name_func[f->name] = *slot;
	return *slot - 1;
}

/* Add (sign 1) or take out (-1) one sample's weight from the window. */
static int live_count(struct live_view *v, const struct stoke_profile *p,
		      const struct stoke_psample *sm, int sign)
{
	const struct stoke_pthread *th = stoke_profile_find_thread(p, sm->tid);
	size_t nthreads;
	const struct stoke_pthread *base = stoke_profile_threads(p, &nthreads);

	if (grow_zero((void **)&v->stack_w, &v->stack_w_cap, (size_t)sm->stack + 1,
		      sizeof(*v->stack_w)) < 0 ||
	    grow_zero((void **)&v->thread_w, &v->thread_w_cap, nthreads + 1,
		      sizeof(*v->thread_w)) < 0)
		return -ENOMEM;
	if (sign > 0) {
		if (!v->stack_w[sm->stack]) {
			if (STOKE_GROW(v->active, v->active_cap, v->nactive + 1) < 0)
				return -ENOMEM;
			v->active[v->nactive++] = sm->stack;
		}
		v->stack_w[sm->stack] += sm->weight;
		v->window_total += sm->weight;
		if (th)
			v->thread_w[th - base] += sm->weight;
	} else {
		v->stack_w[sm->stack] -= sm->weight;
		v->window_total -= sm->weight;
		if (th)
			v->thread_w[th - base] -= sm->weight;
	}
	return 0;
}

/* Move the window: the samples named since the last refresh come in, the
 * ones of the refresh that falls out go. */
static int live_advance(struct live_view *v, struct stoke_session *s)
{
	const struct stoke_profile *p = stoke_session_profile(s);
	struct stoke_session_stats st;
	size_t n;
	const struct stoke_psample *sm = stoke_profile_samples(p, &n);
	struct live_mark *m;
	int r;

	for (; v->head < n; v->head++) {
		r = live_count(v, p, &sm[v->head], 1);
		if (r < 0)
			return r;
	}
	stoke_session_get_stats(s, &st);
	v->lost = st.lost;
	v->throttled = st.throttled;
	v->samples = st.samples;
	v->threads_seen = st.threads;
	if (v->nmarks == ARRAY_SIZE(v->marks) || v->nmarks > v->window) {
		v->mark0 = (v->mark0 + 1) % ARRAY_SIZE(v->marks);
		v->nmarks--;
	}
	m = &v->marks[(v->mark0 + v->nmarks++) % ARRAY_SIZE(v->marks)];
	*m = (struct live_mark){ n, v->lost, live_now() };
	/* The window holds the last `window` refreshes' samples. */
	for (; v->tail < v->marks[v->mark0].sample; v->tail++) {
		r = live_count(v, p, &sm[v->tail], -1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Per-function weights over the window. */
static int live_tally(struct live_view *v, const struct stoke_profile *p)
{
	uint32_t frames[LIVE_MAX_FRAMES];
	size_t keep = 0;

	for (size_t i = 0; i < v->nfuncs; i++)
		v->funcs[i].self = v->funcs[i].total = 0;
	for (size_t i = 0; i < v->nactive; i++) {
		uint32_t stack = v->active[i];
		uint64_t w = v->stack_w[stack];
		size_t depth;

		if (!w)
			continue; /* left the window: dropped from the list */
		v->active[keep++] = stack;
		if (!stack)
			continue;
		depth = stoke_profile_stack_frames(p, stack, frames, LIVE_MAX_FRAMES);
		if (depth > LIVE_MAX_FRAMES)
			depth = LIVE_MAX_FRAMES;
		for (size_t d = 0; d < depth; d++) {
			long fi = live_func_of(v, p, frames[d]);

			if (fi < 0)
				return -ENOMEM;
			if (d == 0)
				v->funcs[fi].self += w;
			if (v->funcs[fi].stamp != (uint64_t)stack + 1) {
				v->funcs[fi].stamp = (uint64_t)stack + 1;
				v->funcs[fi].total += w;
			}
		}
	}
	v->nactive = keep;
	/* The stamps name stacks: a stack counted again next refresh must not
	 * look counted already. */
	for (size_t i = 0; i < v->nfuncs; i++)
		v->funcs[i].stamp = 0;
	return 0;
}

static int live_cmp(const void *x, const void *y, void *ctx)
{
	const struct live_view *v = ctx;
	const struct live_func *a = &v->funcs[*(const uint32_t *)x];
	const struct live_func *b = &v->funcs[*(const uint32_t *)y];
	uint64_t ka = v->by_total ? a->total : a->self, kb = v->by_total ? b->total : b->self;

	if (ka != kb)
		return ka > kb ? -1 : 1;
	if (a->total != b->total)
		return a->total > b->total ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* One line of the view: on the screen, cut at its width and the rest of
 * the terminal line cleared. */
static void live_line(const struct live_view *v, int cols, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void live_line(const struct live_view *v, int cols, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (v->screen && cols > 0 && (size_t)cols < sizeof(buf))
		buf[cols] = '\0';
	fputs(buf, stdout);
	fputs(v->screen ? "\033[K\n" : "\n", stdout);
}

static void live_render(struct live_view *v, struct stoke_session *s)
{
	const struct stoke_profile *p = stoke_session_profile(s);
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	const struct live_mark *first = &v->marks[v->mark0];
	double span = v->nmarks > 1 ? live_now() - first->time : live_now() - v->start;
	double period = m->period_ns ? (double)m->period_ns / 1e9 : 0;
	struct winsize ws = { 0 };
	uint32_t *order = NULL;
	const char *cmd = stoke_profile_string(p, m->command);
	size_t rows, active = 0;
	int cols = 0;

	for (size_t i = 0; i < v->thread_w_cap; i++)
		active += v->thread_w[i] != 0;
	if (v->screen && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
		cols = ws.ws_col;
	}
	if (live_tally(v, p) < 0)
		snprintf(v->status, sizeof(v->status), "out of memory");
	else if (v->nfuncs)
		order = calloc(v->nfuncs, sizeof(*order));
	if (v->screen)
		fputs("\033[H", stdout);
	live_line(v, cols, "stoke top: pid %d%s%.200s%s  %.1f s  (q quits, 1/2: sort by own/total)",
		  (int)m->pid, cmd && *cmd ? " (" : "",
		  cmd && *cmd ? cmd : "", cmd && *cmd ? ")" : "", live_now() - v->start);
	live_line(v, cols,
		  "window %us: %.1f samples/s, %" PRIu64 " samples; total %" PRIu64
		  " samples, lost %" PRIu64 " (%" PRIu64 " in window), threads %zu active, %u "
		  "seen%s",
		  v->window, span > 0 ? (double)v->window_total / span : 0.0, v->window_total,
		  v->samples, v->lost, v->lost - first->lost, active, v->threads_seen,
		  v->throttled ? ", throttled" : "");
	if (v->screen || *v->status) /* a plain table has no blank line inside */
		live_line(v, cols, "%s", v->status);
	live_line(v, cols, "%7s %7s %9s %9s  %s", "%Own", "%Total", "OwnTime", "TotalTime",
		  "Function (where)");
	rows = v->count > 0 ? (size_t)v->count : 20;
	if (v->screen && ws.ws_row > 5)
		rows = v->count > 0 && (size_t)v->count < ws.ws_row - 5u ? (size_t)v->count
									  : ws.ws_row - 5u;
	if (order) {
		for (size_t i = 0; i < v->nfuncs; i++)
			order[i] = (uint32_t)i;
		qsort_r(order, v->nfuncs, sizeof(*order), live_cmp, v);
		for (size_t i = 0; i < v->nfuncs && i < rows; i++) {
			const struct live_func *f = &v->funcs[order[i]];

			if (!f->total)
				break;
			live_line(v, cols, "%6.1f%% %6.1f%% %8.2fs %8.2fs  %s%s%s%s",
				  stoke_pct(f->self, v->window_total),
				  stoke_pct(f->total, v->window_total), (double)f->self * period,
				  (double)f->total * period, f->name, f->where ? " (" : "",
				  f->where ? f->where : "", f->where ? ")" : "");
		}
	}
	if (!v->window_total)
		live_line(v, cols, "%s", "(no samples in the window: is the target on CPU?)");
	if (v->screen)
		fputs("\033[J", stdout);
	else
		putchar('\n');
	fflush(stdout);
	free(order);
}

static void live_setup_terminal(struct live_view *v);

static bool live_tick(struct stoke_session *s, bool readable, void *userdata)
{
	struct live_view *v = userdata;
	int r;

	/* Not before: what record says when it cannot start stays on the
	 * terminal's main screen. */
	if (!v->term_ready) {
		v->term_ready = true;
		live_setup_terminal(v);
	}
	if (readable) {
		char keys[64];
		ssize_t n = read(v->live.fd, keys, sizeof(keys));
		bool redraw = false;

		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
			v->live.fd = -1; /* the keyboard is gone: Ctrl-C still stops */
			return false;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (keys[i] == 'q' || keys[i] == 'Q')
				return true;
			if (keys[i] == '1' || keys[i] == '2') {
				v->by_total = keys[i] == '2';
				redraw = true;
			}
		}
		if (redraw && v->refreshes)
			live_render(v, s);
		return false;
	}
	/* Name what was read since the last refresh; the rings keep being
	 * drained while naming is slow (session.c's settle). */
	r = stoke_session_sync(s);
	if (r < 0)
		snprintf(v->status, sizeof(v->status), "naming failed: %s", strerror(-r));
	r = live_advance(v, s);
	if (r < 0)
		snprintf(v->status, sizeof(v->status), "out of memory");
	v->refreshes++;
	live_render(v, s);
	return false;
}

static void live_restore(struct live_view *v)
{
	if (v->keys_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &v->saved);
		v->keys_raw = false;
	}
	if (v->screen) {
		fputs("\033[?25h\033[?1049l", stdout); /* cursor back, main screen */
		fflush(stdout);
		v->screen = false;
	}
}

static void live_done(struct stoke_session *s, void *userdata)
{
	struct live_view *v = userdata;

	v->exited = stoke_session_targets_alive(s) == 0;
	live_restore(v);
}

static void live_setup_terminal(struct live_view *v)
{
	v->live.fd = -1;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &v->saved) == 0) {
		struct termios t = v->saved;

		/* Keys one at a time, unechoed; Ctrl-C stays a signal. */
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
			v->keys_raw = true;
			v->live.fd = STDIN_FILENO;
		}
	}
	v->screen = isatty(STDOUT_FILENO);
	if (v->screen) {
		fputs("\033[?1049h\033[?25l\033[H\033[J", stdout); /* own screen, no cursor */
		fflush(stdout);
	}
}

static void live_free(struct live_view *v)
{
	for (size_t i = 0; i < v->nfuncs; i++) {
		free(v->funcs[i].name);
		free(v->funcs[i].where);
	}
	free(v->funcs);
	free(v->frame_func);
	free(v->name_func);
	free(v->stack_w);
	free(v->active);
	free(v->thread_w);
}

/* Run the live view over `stoke record` with argv (record's options). */
static int top_live(char **rargv, int rargc, struct live_view *v, const char *output)
{
	struct record_result res = { 0 };
	int code;

	v->live.interval_ms = 1000;
	v->live.tick = live_tick;
	v->live.done = live_done;
	v->live.userdata = v;
	v->start = live_now();
	/* The first window starts with the recording. */
	v->marks[0] = (struct live_mark){ 0, 0, v->start };
	v->nmarks = 1;
	v->live.fd = -1; /* the keyboard, from the first refresh on */
	code = record_run_live(rargc, rargv, &res, &v->live);
	live_restore(v); /* idempotent: done() did it unless the loop never ran */
	if (v->exited && code == 0)
		fprintf(stderr, "stoke top: the target exited after %.1f s (%llu samples, %llu lost)\n",
			res.wall_s, res.samples, res.lost);
	if (output && code == 0)
		fprintf(stderr, "stoke top: wrote %s (%llu samples, %llu lost)\n", output,
			res.samples, res.lost);
	free(res.run_dir);
	live_free(v);
	return code;
}

/* "-c" for a short option that record takes as it is. */
static const char *short_flag(int c)
{
	static const char flags[] = "pofdFeg";
	static const char *const names[] = { "-p", "-o", "-f", "-d", "-F", "-e", "-g" };
	const char *at = strchr(flags, c);

	return names[at - flags];
}

int cmd_top(int argc, char **argv)
{
	enum { OPT_BY = 256, OPT_NO_KERNEL, OPT_SAMPLER, OPT_DEBUGINFO_PATH, OPT_DEMANGLE,
	       OPT_SPAN };
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "by", required_argument, NULL, OPT_BY },
		{ "span", required_argument, NULL, OPT_SPAN },
		{ "pid", required_argument, NULL, 'p' },
		{ "window", required_argument, NULL, 'w' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' },
		{ "freq", required_argument, NULL, 'F' },
		{ "event", required_argument, NULL, 'e' },
		{ "call-graph", required_argument, NULL, 'g' },
		{ "no-kernel", no_argument, NULL, OPT_NO_KERNEL },
		{ "sampler", required_argument, NULL, OPT_SAMPLER },
		{ "debuginfo-path", required_argument, NULL, OPT_DEBUGINFO_PATH },
		{ "demangle", required_argument, NULL, OPT_DEMANGLE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct live_view view; /* large (the marks); one per process */
	_cleanup_free_ char **rargv = calloc((size_t)argc * 2 + 4, sizeof(char *));
	const char *output = NULL, *pid = NULL;
	bool by_total = false, live_opt = false, dashdash = false;
	long count = 0, window = 10;
	int rargc = 0, c;

	if (!rargv) {
		log_error("out of memory");
		return 1;
	}
	/* "--" starts a command to run (the live view); the options before
	 * it are ours, or record's (passed on as they are). */
	for (int i = 1; i < argc && !dashdash; i++)
		dashdash = !strcmp(argv[i], "--");
	rargv[rargc++] = "record";
	rargv[rargc++] = "-q";
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:p:w:o:f:d:F:e:g:h", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count < 1)
				return cli_usage_error("top", "invalid count '%s'", optarg);
			break;
		case OPT_SPAN:
			top_span = optarg;
			break;
		case OPT_BY:
			if (!strcmp(optarg, "self"))
				by_total = false;
			else if (!strcmp(optarg, "total"))
				by_total = true;
			else
				return cli_usage_error("top", "--by takes self or total, not '%s'",
						       optarg);
			break;
		case 'w':
			errno = 0;
			window = strtol(optarg, &end, 10);
			if (errno || *end || window < 1 || window > LIVE_MAX_WINDOW)
				return cli_usage_error("top", "invalid window '%s' (1..%d seconds)",
						       optarg, LIVE_MAX_WINDOW);
			live_opt = true;
			break;
		case 'p':
			pid = optarg; /* and passed on to record */
			/* fall through */
		case 'o':
		case 'f':
		case 'd':
		case 'F':
		case 'e':
		case 'g':
			if (c == 'o') {
				if (!strcmp(optarg, "-"))
					return cli_usage_error("top", "%s",
							       "-o - is the screen: give a file");
				output = optarg;
			}
			rargv[rargc++] = (char *)short_flag(c);
			rargv[rargc++] = optarg;
			live_opt = true;
			break;
		case OPT_NO_KERNEL:
			rargv[rargc++] = "--no-kernel";
			live_opt = true;
			break;
		case OPT_SAMPLER:
		case OPT_DEBUGINFO_PATH:
		case OPT_DEMANGLE:
			rargv[rargc++] = c == OPT_SAMPLER	 ? "--sampler"
					 : c == OPT_DEMANGLE ? "--demangle"
							     : "--debuginfo-path";
			rargv[rargc++] = optarg;
			live_opt = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (optopt && strchr("npwofdFeg", optopt))
				return cli_usage_error("top", "option '-%c' needs an argument",
						       (char)optopt);
			return cli_usage_error("top", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!pid && !dashdash) {
		if (live_opt)
			return cli_usage_error("top", "%s",
					       "live options need -p PID or -- CMD (a stored "
					       "profile is read whole)");
		if (optind + 1 != argc)
			return cli_usage_error("top", "%s", "give exactly one INPUT");
		return top_stored(argv[optind], count ? count : 20, by_total);
	}
	if (top_span)
		return cli_usage_error("top", "%s", "--span reads a stored profile, not a live one");
	if (pid && dashdash)
		return cli_usage_error("top", "%s", "give either -p PID or -- CMD, not both");
	if (!dashdash && optind != argc)
		return cli_usage_error("top", "unexpected argument '%s'", argv[optind]);
	if (dashdash && optind == argc)
		return cli_usage_error("top", "%s", "no command after --");
	for (size_t i = 0; i + 1 < (size_t)rargc; i++)
		if (!strcmp(rargv[i], "-f") && !output)
			return cli_usage_error("top", "%s", "-f is -o's format: give -o FILE");
	if (dashdash) {
		rargv[rargc++] = "--";
		while (optind < argc)
			rargv[rargc++] = argv[optind++];
	}
	rargv[rargc] = NULL;
	view = (struct live_view){ .pid = pid ? (pid_t)atoi(pid) : 0,
				   .window = (unsigned)window,
				   .count = count,
				   .by_total = by_total };
	return top_live(rargv, rargc, &view, output);
}
