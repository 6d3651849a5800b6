/*
 * `stoke suite`: run scenarios repeatedly under the profiler and summarise.
 *
 *   stoke suite --repeat N [--output-dir DIR] [--name NAME] [RECORD OPTIONS] -- CMD…
 *   stoke suite FILE [--output-dir DIR]
 *
 * Every repetition is a full `stoke record` run (the same code, in this
 * process) writing a run directory under DIR/NAME/. Per scenario,
 * DIR/NAME/suite.json holds wall and CPU time (min, median, mean, stddev,
 * p95), samples, and each repetition's path and status, and
 * DIR/NAME/merged.pb.gz is the merged profile of all repetitions.
 *
 * FILE is JSON (parsed with json-c):
 *   { "output_dir": "suite-out",
 *     "scenarios": [ { "name": "fast", "command": ["./app", "--fast"],
 *                      "repeat": 5, "record": ["-F", "499"] } ] }
 * "output_dir", "repeat" (default 3) and "record" are optional.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/atomicfile.h"
#include "tools/cli.h"
#include "formats/escape.h"
#include "formats/load.h"
#include "common/log.h"
#include "formats/output.h"
#include "common/util.h"

#define SUITE_MAX_REPEAT 10000
#define SUITE_MAX_FILE (1 << 20)

struct scenario {
	char *name;
	char **command;     /* NULL-terminated */
	char **record;      /* extra record options, NULL-terminated */
	long repeat;
};

struct rep {
	char *path;
	int exit_code;
	double wall_s, cpu_s;
	unsigned long long samples, lost;
	unsigned long long peak_rss, mean_rss; /* the resource timeline (0: none) */
	double cpu_util;
};

static void usage(FILE *f)
{
	fputs("usage: stoke suite --repeat N [--output-dir DIR] [--name NAME] [RECORD OPTIONS] -- CMD...\n"
	      "       stoke suite FILE [--output-dir DIR]\n"
	      "\n"
	      "Run each scenario N times under the profiler. Writes one run directory\n"
	      "per repetition, DIR/NAME/suite.json (wall and CPU time: min, median,\n"
	      "mean, stddev, p95; samples; every repetition's path and status) and\n"
	      "DIR/NAME/merged.pb.gz, the profile of all repetitions together.\n"
	      "RECORD OPTIONS are passed to 'stoke record' (e.g. -F 499 -g fp).\n"
	      "FILE is JSON: {\"scenarios\": [{\"name\": ..., \"command\": [...],\n"
	      "\"repeat\": N, \"record\": [...]}], \"output_dir\": ...}.\n"
	      "Default DIR: stoke-suite.\n",
	      f);
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void scenario_free(struct scenario *s)
{
	free(s->name);
	free_strv(s->command);
	free_strv(s->record);
}

/* ---- statistics ---- */

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double min, median, mean, stddev, p95;
};

/* Sample standard deviation (n-1); p95 interpolates between closest ranks. */
static void stats_of(const double *v, size_t n, struct stats *ret)
{
	double *s = malloc((n ? n : 1) * sizeof(*s)), sum = 0, sq = 0, rank;
	size_t lo;

	memset(ret, 0, sizeof(*ret));
	if (!s || !n) {
		free(s);
		return;
	}
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), dbl_cmp);
	for (size_t i = 0; i < n; i++)
		sum += s[i];
	ret->mean = sum / (double)n;
	for (size_t i = 0; i < n; i++)
		sq += (s[i] - ret->mean) * (s[i] - ret->mean);
	ret->stddev = n > 1 ? sqrt(sq / (double)(n - 1)) : 0;
	ret->min = s[0];
	ret->median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	rank = 0.95 * (double)(n - 1);
	lo = (size_t)rank;
	ret->p95 = lo + 1 < n ? s[lo] + (rank - (double)lo) * (s[lo + 1] - s[lo]) : s[lo];
	free(s);
}

static void json_stats(FILE *f, const char *key, const double *v, size_t n)
{
	struct stats st;

	stats_of(v, n, &st);
	fprintf(f, "  \"%s\": {\"min\": %.6f, \"median\": %.6f, \"mean\": %.6f, \"stddev\": %.6f, "
		   "\"p95\": %.6f},\n",
		key, st.min, st.median, st.mean, st.stddev, st.p95);
}

/* ---- running ---- */

static double cpu_children(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static size_t strv_len(char **v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/* Run repetition k of s, recording into dir. */
static int run_rep(const struct scenario *s, const char *dir, long k, struct rep *ret)
{
	size_t nrec = strv_len(s->record), ncmd = strv_len(s->command), n = 0;
	char **argv = calloc(nrec + ncmd + 10, sizeof(*argv));
	char name[300];
	struct record_result res = { 0 };
	double cpu0;

	if (!argv)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%s-%ld", s->name, k);
	argv[n++] = "record";
	argv[n++] = "-q";
	for (size_t i = 0; i < nrec; i++)
		argv[n++] = s->record[i];
	argv[n++] = "--output-dir";
	argv[n++] = (char *)dir;
	argv[n++] = "--name";
	argv[n++] = name;
	argv[n++] = "--";
	for (size_t i = 0; i < ncmd; i++)
		argv[n++] = s->command[i];
	cpu0 = cpu_children();
	ret->exit_code = record_run((int)n, argv, &res);
	ret->cpu_s = cpu_children() - cpu0;
	ret->wall_s = res.wall_s;
	ret->samples = res.samples;
	ret->lost = res.lost;
	ret->peak_rss = res.peak_rss;
	ret->mean_rss = res.mean_rss;
	ret->cpu_util = res.cpu_util;
	ret->path = res.run_dir;
	free(argv);
	return WIFSIGNALED(res.child_status) &&
			       (WTERMSIG(res.child_status) == SIGINT ||
				WTERMSIG(res.child_status) == SIGTERM)
		       ? -EINTR
		       : 0;
}

static int write_suite_spans(FILE *f, const struct rep *reps, size_t n);

static int write_suite_json(const struct scenario *s, const char *dir, const struct rep *reps,
			    size_t n)
{
	double *v = calloc(n + 1, sizeof(*v));
	struct stoke_atomic_file af;
	_cleanup_free_ char *path = NULL;
	FILE *f;
	int r;

	if (!v || asprintf(&path, "%s/suite.json", dir) < 0) {
		free(v);
		return -ENOMEM;
	}
	r = stoke_atomic_open(path, &af);
	if (r < 0) {
		free(v);
		return r;
	}
	f = af.f;
	fputs("{\n  \"schema_version\": \"1\",\n  \"tool\": \"stoke " STOKE_VERSION "\",\n  \"scenario\": ", f);
	stoke_json_string(f, s->name);
	fputs(",\n  \"command\": [", f);
	for (size_t i = 0; s->command[i]; i++) {
		fputs(i ? ", " : "", f);
		stoke_json_string(f, s->command[i]);
	}
	fprintf(f, "],\n  \"repeat\": %ld,\n  \"completed\": %zu,\n", s->repeat, n);
	for (size_t i = 0; i < n; i++)
		v[i] = reps[i].wall_s;
	json_stats(f, "wall_s", v, n);
	for (size_t i = 0; i < n; i++)
		v[i] = reps[i].cpu_s;
	json_stats(f, "cpu_s", v, n);
	for (size_t i = 0; i < n; i++)
		v[i] = (double)reps[i].samples;
	json_stats(f, "samples", v, n);
	for (size_t i = 0; i < n; i++)
		v[i] = (double)reps[i].peak_rss;
	json_stats(f, "peak_rss_bytes", v, n);
	for (size_t i = 0; i < n; i++)
		v[i] = reps[i].cpu_util;
	json_stats(f, "cpu_utilization", v, n);
	r = write_suite_spans(f, reps, n);
	if (r < 0) {
		free(v);
		stoke_atomic_abort(&af);
		return r;
	}
	fputs("  \"repetitions\": [\n", f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "    {\"index\": %zu, \"path\": ", i + 1);
		if (reps[i].path)
			stoke_json_string(f, reps[i].path);
		else
			fputs("null", f);
		fprintf(f, ", \"status\": \"%s\", \"exit_code\": %d, \"wall_s\": %.6f, "
			   "\"cpu_s\": %.6f, \"samples\": %llu, \"lost\": %llu, "
			   "\"peak_rss_bytes\": %llu, \"mean_rss_bytes\": %llu, "
			   "\"cpu_utilization\": %.4f}%s\n",
			reps[i].exit_code == 0 && reps[i].path ? "ok" : "failed", reps[i].exit_code,
			reps[i].wall_s, reps[i].cpu_s, reps[i].samples, reps[i].lost,
			reps[i].peak_rss, reps[i].mean_rss, reps[i].cpu_util, i + 1 < n ? "," : "");
	}
	fputs("  ],\n  \"merged\": \"merged.pb.gz\"\n}\n", f);
	free(v);
	return stoke_atomic_commit(&af);
}

/* ---- spans ---- */

struct span_agg {
	char *name;
	double *mean, *total; /* per repetition that has the span */
	size_t n;
	unsigned long long count;
};

static void stats_obj(FILE *f, const char *key, const double *v, size_t n)
{
	struct stats st;

	stats_of(v, n, &st);
	fprintf(f, "\"%s\": {\"min\": %.0f, \"median\": %.0f, \"mean\": %.0f, "
		   "\"stddev\": %.0f, \"p95\": %.0f}",
		key, st.min, st.median, st.mean, st.stddev, st.p95);
}

/* One repetition's run.json "spans" into the aggregates. */
static int spans_of_rep(const char *rundir, size_t nreps, struct span_agg **aggs, size_t *naggs)
{
	_cleanup_free_ char *path = NULL, *buf = NULL;
	struct json_object *root, *spans;
	int r = 0;

	if (asprintf(&path, "%s/run.json", rundir) < 0)
		return -ENOMEM;
	if (stoke_read_file(path, &buf, SUITE_MAX_FILE * 64) < 0)
		return 0;
	root = json_tokener_parse(buf);
	if (!root)
		return 0;
	if (!json_object_object_get_ex(root, "spans", &spans) ||
	    !json_object_is_type(spans, json_type_array))
		goto out;
	for (size_t i = 0; r == 0 && i < json_object_array_length(spans); i++) {
		struct json_object *e = json_object_array_get_idx(spans, i), *nm, *cnt, *mean, *tot;
		struct span_agg *g = NULL;
		const char *name;

		if (!json_object_object_get_ex(e, "name", &nm) ||
		    !json_object_object_get_ex(e, "count", &cnt) ||
		    !json_object_object_get_ex(e, "mean_ns", &mean) ||
		    !json_object_object_get_ex(e, "total_ns", &tot) ||
		    !json_object_is_type(nm, json_type_string))
			continue;
		name = json_object_get_string(nm);
		for (size_t j = 0; j < *naggs; j++)
			if (!strcmp((*aggs)[j].name, name))
				g = &(*aggs)[j];
		if (!g) {
			struct span_agg *na = realloc(*aggs, (*naggs + 1) * sizeof(**aggs));

			if (!na) {
				r = -ENOMEM;
				break;
			}
			*aggs = na;
			g = &na[(*naggs)++];
			memset(g, 0, sizeof(*g));
			g->name = strdup(name);
			g->mean = calloc(nreps + 1, sizeof(double));
			g->total = calloc(nreps + 1, sizeof(double));
			if (!g->name || !g->mean || !g->total) {
				r = -ENOMEM;
				break;
			}
		}
		if (g->n == nreps)
			continue; /* a name twice in one run.json */
		g->mean[g->n] = json_object_get_double(mean);
		g->total[g->n++] = json_object_get_double(tot);
		g->count += (unsigned long long)json_object_get_int64(cnt);
	}
out:
	json_object_put(root);
	return r;
}

/* "spans": each span name's count over every repetition and the spread of
 * its per-repetition mean and total duration (ns); null without spans. */
static int write_suite_spans(FILE *f, const struct rep *reps, size_t n)
{
	struct span_agg *aggs = NULL;
	size_t naggs = 0;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++)
		if (reps[i].path)
			r = spans_of_rep(reps[i].path, n, &aggs, &naggs);
	fputs("  \"spans\": ", f);
	if (!naggs)
		fputs("null", f);
	for (size_t j = 0; j < naggs; j++) {
		fputs(j ? ",\n    {\"name\": " : "[\n    {\"name\": ", f);
		stoke_json_string(f, aggs[j].name);
		fprintf(f, ", \"repetitions\": %zu, \"count\": %llu, ", aggs[j].n, aggs[j].count);
		stats_obj(f, "mean_ns", aggs[j].mean, aggs[j].n);
		fputs(", ", f);
		stats_obj(f, "total_ns", aggs[j].total, aggs[j].n);
		fputs("}", f);
	}
	fputs(naggs ? "\n  ],\n" : ",\n", f);
	for (size_t j = 0; j < naggs; j++) {
		free(aggs[j].name);
		free(aggs[j].mean);
		free(aggs[j].total);
	}
	free(aggs);
	return r;
}

/* Merge every repetition's stored profile into dir/merged.pb.gz. */
static int write_merged(const char *dir, const struct rep *reps, size_t n)
{
	struct stoke_profile *m = NULL;
	struct stoke_output_opts o;
	_cleanup_free_ char *path = NULL;
	int r = stoke_profile_new(&m);

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct stoke_profile *p = NULL;
		const char *err = NULL;

		if (!reps[i].path)
			continue;
		r = stoke_profile_load(reps[i].path, &p, &err);
		if (r == 0)
			r = stoke_profile_merge(m, p);
		else
			log_error("cannot read '%s': %s", reps[i].path, err);
		stoke_profile_free(p);
	}
	stoke_output_opts_init(&o);
	if (r == 0 && asprintf(&path, "%s/merged.pb.gz", dir) < 0)
		r = -ENOMEM;
	if (r == 0)
		r = stoke_output_write(m, STOKE_FORMAT_PPROF, &o, AT_FDCWD, path);
	stoke_profile_free(m);
	return r;
}

static void print_row(const struct scenario *s, const struct rep *reps, size_t n)
{
	double *w = calloc(n + 1, sizeof(*w)), *c = calloc(n + 1, sizeof(*c));
	double *m = calloc(n + 1, sizeof(*m)), *u = calloc(n + 1, sizeof(*u));
	struct stats sw, sc, sm, su;
	size_t failed = 0;

	if (!w || !c || !m || !u) {
		free(w);
		free(c);
		free(m);
		free(u);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		w[i] = reps[i].wall_s;
		c[i] = reps[i].cpu_s;
		m[i] = (double)reps[i].peak_rss / (1 << 20);
		u[i] = 100 * reps[i].cpu_util;
		failed += reps[i].exit_code != 0 || !reps[i].path;
	}
	stats_of(w, n, &sw);
	stats_of(c, n, &sc);
	stats_of(m, n, &sm);
	stats_of(u, n, &su);
	/* The resource timeline's medians: peak RSS and CPU use (% of a core). */
	printf("%-24s %5zu %10.3f %9.3f %9.3f %10.3f %9.3f %7zu %11.1f %7.0f%%\n", s->name, n,
	       sw.median, sw.stddev, sw.p95, sc.median, sc.stddev, failed, sm.median, su.median);
	free(w);
	free(c);
	free(m);
	free(u);
}

/* Returns 0 when every repetition succeeded, 1 when one failed, or a
 * negative errno for an error of the suite itself. */
static int run_scenario(const struct scenario *s, const char *root)
{
	struct rep *reps = calloc((size_t)s->repeat, sizeof(*reps));
	_cleanup_free_ char *dir = NULL;
	size_t done = 0;
	int r, failed = 0;

	if (!reps || asprintf(&dir, "%s/%s", root, s->name) < 0) {
		free(reps);
		return -ENOMEM;
	}
	r = stoke_mkdir_p(dir);
	if (r < 0) {
		log_error("cannot create '%s': %s", dir, strerror(-r));
		free(reps);
		return r;
	}
	for (long k = 1; k <= s->repeat; k++) {
		r = run_rep(s, dir, k, &reps[done++]);
		failed |= reps[done - 1].exit_code != 0 || !reps[done - 1].path;
		if (r == -EINTR) {
			log_warn("interrupted after %zu of %ld repetitions", done, s->repeat);
			break;
		}
	}
	r = write_merged(dir, reps, done);
	if (r == 0)
		r = write_suite_json(s, dir, reps, done);
	if (r < 0)
		log_error("cannot write the results in '%s': %s", dir, strerror(-r));
	else
		print_row(s, reps, done);
	for (size_t i = 0; i < done; i++)
		free(reps[i].path);
	free(reps);
	return r < 0 ? r : failed;
}

/* ---- the scenario file ---- */

static char **strv_from_json(struct json_object *arr, const char **err)
{
	size_t n;
	char **v;

	if (!json_object_is_type(arr, json_type_array)) {
		*err = "must be an array of strings";
		return NULL;
	}
	n = json_object_array_length(arr);
	v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(e, json_type_string)) {
			*err = "must be an array of strings";
			free_strv(v);
			return NULL;
		}
		v[i] = strdup(json_object_get_string(e));
		if (!v[i]) {
			free_strv(v);
			return NULL;
		}
	}
	return v;
}

static bool name_ok(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 200)
		return false;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

static int parse_scenario(struct json_object *o, struct scenario *s, const char **err)
{
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object))
		return (*err = "a scenario must be an object"), -EINVAL;
	if (!json_object_object_get_ex(o, "name", &v) || !json_object_is_type(v, json_type_string) ||
	    !name_ok(json_object_get_string(v)))
		return (*err = "a scenario needs a \"name\" usable as a directory name"), -EINVAL;
	s->name = strdup(json_object_get_string(v));
	if (!json_object_object_get_ex(o, "command", &v))
		return (*err = "a scenario needs a \"command\""), -EINVAL;
	s->command = strv_from_json(v, err);
	if (!s->command || !s->command[0])
		return (*err = *err ? *err : "\"command\" is empty"), -EINVAL;
	s->repeat = 3;
	if (json_object_object_get_ex(o, "repeat", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
		    json_object_get_int64(v) > SUITE_MAX_REPEAT)
			return (*err = "\"repeat\" must be an integer from 1 to 10000"), -EINVAL;
		s->repeat = (long)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(o, "record", &v)) {
		s->record = strv_from_json(v, err);
		if (!s->record)
			return -EINVAL;
	}
	return s->name ? 0 : -ENOMEM;
}

static int parse_file(const char *path, struct scenario **ret, size_t *ret_n, char **ret_outdir)
{
	_cleanup_free_ char *text = NULL;
	struct json_object *root, *arr, *v;
	struct scenario *sc = NULL;
	const char *err = NULL;
	ssize_t len = stoke_read_file(path, &text, SUITE_MAX_FILE);
	size_t n = 0;
	int r = -EINVAL;

	if (len < 0) {
		log_error("cannot read '%s': %s", path, strerror((int)-len));
		return (int)len;
	}
	root = json_tokener_parse(text);
	if (!root) {
		log_error("'%s' is not valid JSON", path);
		return -EINVAL;
	}
	if (!json_object_object_get_ex(root, "scenarios", &arr) ||
	    !json_object_is_type(arr, json_type_array) || !json_object_array_length(arr)) {
		err = "it needs a non-empty \"scenarios\" array";
		goto out;
	}
	if (json_object_object_get_ex(root, "output_dir", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			err = "\"output_dir\" must be a string";
			goto out;
		}
		*ret_outdir = strdup(json_object_get_string(v));
	}
	n = json_object_array_length(arr);
	sc = calloc(n, sizeof(*sc));
	if (!sc) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		r = parse_scenario(json_object_array_get_idx(arr, i), &sc[i], &err);
		if (r < 0)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(sc[j].name, sc[i].name)) {
				err = "scenario names must be unique";
				r = -EINVAL;
				goto out;
			}
	}
	*ret = TAKE_PTR(sc);
	*ret_n = n;
	r = 0;
out:
	if (err)
		log_error("%s: %s", path, err);
	if (sc)
		for (size_t i = 0; i < n; i++)
			scenario_free(&sc[i]);
	free(sc);
	json_object_put(root);
	return r;
}

/* ---- the command line ---- */

struct suite_args {
	const char *outdir;
	const char *file;
	struct scenario one;
	bool have_repeat;
};

/* Suite options are taken out; anything else before "--" goes to record. */
static int parse_args(int argc, char **argv, struct suite_args *a)
{
	size_t nrec = 0;
	int i;

	a->one.record = calloc((size_t)argc + 1, sizeof(char *));
	if (!a->one.record)
		return 1;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		char *end;

		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(arg, "--repeat") || !strcmp(arg, "--output-dir") || !strcmp(arg, "--name")) {
			if (i + 1 >= argc)
				return cli_usage_error("suite", "option '%s' needs an argument", arg);
			if (!strcmp(arg, "--repeat")) {
				errno = 0;
				a->one.repeat = strtol(argv[++i], &end, 10);
				if (errno || *end || a->one.repeat < 1 || a->one.repeat > SUITE_MAX_REPEAT)
					return cli_usage_error("suite", "invalid --repeat '%s' (1..10000)",
							       argv[i]);
				a->have_repeat = true;
			} else if (!strcmp(arg, "--output-dir")) {
				a->outdir = argv[++i];
			} else {
				if (!name_ok(argv[i + 1]))
					return cli_usage_error("suite", "invalid --name '%s'", argv[i + 1]);
				a->one.name = strdup(argv[++i]);
			}
			continue;
		}
		if (arg[0] != '-' && !a->file && !a->have_repeat && nrec == 0) {
			a->file = arg;
			continue;
		}
		a->one.record[nrec] = strdup(arg);
		if (!a->one.record[nrec++])
			return 1;
	}
	if (a->file) {
		if (i < argc || a->have_repeat || nrec)
			return cli_usage_error("suite", "%s",
					       "give either FILE or --repeat N [options] -- CMD");
		return 0;
	}
	if (i >= argc)
		return cli_usage_error("suite", "%s", "give a scenario FILE or --repeat N -- CMD");
	if (!a->have_repeat)
		return cli_usage_error("suite", "%s", "--repeat N is needed with a command");
	a->one.command = calloc((size_t)(argc - i) + 1, sizeof(char *));
	if (!a->one.command)
		return 1;
	for (int k = 0; i < argc; i++, k++)
		a->one.command[k] = strdup(argv[i]);
	if (!a->one.name) {
		const char *base = strrchr(a->one.command[0], '/');

		a->one.name = strdup(base ? base + 1 : a->one.command[0]);
	}
	return 0;
}

int cmd_suite(int argc, char **argv)
{
	struct suite_args a = { 0 };
	struct scenario *sc = NULL;
	char *file_outdir = NULL;
	size_t n = 0;
	int code, failed = 0;

	code = parse_args(argc, argv, &a);
	if (code)
		goto out;
	if (a.file) {
		if (parse_file(a.file, &sc, &n, &file_outdir) < 0) {
			code = 1;
			goto out;
		}
	} else {
		sc = &a.one;
		n = 1;
	}
	if (!a.outdir)
		a.outdir = file_outdir ? file_outdir : "stoke-suite";
	printf("%-24s %5s %10s %9s %9s %10s %9s %7s %11s %8s\n", "scenario", "runs", "wall med",
	       "stddev", "p95", "cpu med", "stddev", "failed", "rss MB med", "cpu% med");
	for (size_t i = 0; i < n; i++) {
		int r = run_scenario(&sc[i], a.outdir);

		if (r < 0) {
			code = 1;
			break;
		}
		failed |= r;
	}
	if (!code && failed) {
		log_error("some repetitions failed (see suite.json)");
		code = 1;
	}
	if (!code)
		printf("results in %s/\n", a.outdir);
out:
	if (sc && sc != &a.one) {
		for (size_t i = 0; i < n; i++)
			scenario_free(&sc[i]);
		free(sc);
	}
	scenario_free(&a.one);
	free(file_outdir);
	return code;
}
