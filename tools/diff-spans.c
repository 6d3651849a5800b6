/*
 * `stoke diff --by-span BASE NEW`: each span's mean duration in two runs
 * (run.json's "spans", written by record and suite), the change in %, and
 * the regression gate applied per span. BASE and NEW are run directories or
 * run.json files; the files are read as untrusted JSON (json-c).
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "tools/diff-spans.h"

#define EXIT_REGRESSION 3
#define RUNJSON_MAX (64u << 20)

struct span_row {
	const char *name;
	double mean_ns;
	uint64_t count;
};

struct span_set {
	struct json_object *root;
	struct span_row *rows;
	size_t n;
};

static int load_spans(const char *path, struct span_set *ret)
{
	_cleanup_free_ char *file = NULL, *buf = NULL;
	struct json_object *spans;
	struct stat st;
	ssize_t len;
	size_t n;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (asprintf(&file, "%s/run.json", path) < 0)
			return -ENOMEM;
	} else {
		file = strdup(path);
		if (!file)
			return -ENOMEM;
	}
	len = stoke_read_file(file, &buf, RUNJSON_MAX);
	if (len < 0) {
		log_error("%s: %s", file, strerror((int)-len));
		return -1;
	}
	ret->root = json_tokener_parse(buf);
	if (!ret->root || !json_object_is_type(ret->root, json_type_object)) {
		log_error("%s: not a run.json (JSON object)", file);
		return -1;
	}
	if (!json_object_object_get_ex(ret->root, "spans", &spans) ||
	    json_object_is_type(spans, json_type_null)) {
		ret->n = 0;
		return 0;
	}
	if (!json_object_is_type(spans, json_type_array)) {
		log_error("%s: \"spans\" is not an array", file);
		return -1;
	}
	n = json_object_array_length(spans);
	ret->rows = calloc(n + 1, sizeof(*ret->rows));
	if (!ret->rows)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(spans, i), *name, *mean, *count;

		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "name", &name) ||
		    !json_object_is_type(name, json_type_string) ||
		    !json_object_object_get_ex(e, "mean_ns", &mean) ||
		    !(json_object_is_type(mean, json_type_int) ||
		      json_object_is_type(mean, json_type_double)) ||
		    !json_object_object_get_ex(e, "count", &count) ||
		    !json_object_is_type(count, json_type_int)) {
			log_error("%s: span %zu is not {\"name\", \"count\", \"mean_ns\", ...}", file,
				  i);
			return -1;
		}
		ret->rows[ret->n++] = (struct span_row){
			.name = json_object_get_string(name),
			.mean_ns = json_object_get_double(mean),
			.count = (uint64_t)json_object_get_int64(count),
		};
	}
	return 0;
}

static void free_spans(struct span_set *s)
{
	free(s->rows);
	json_object_put(s->root);
}

static const struct span_row *find(const struct span_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->rows[i].name, name))
			return &s->rows[i];
	return NULL;
}

static void fmt_ms(double ns, char *buf, size_t size)
{
	snprintf(buf, size, "%.3f", ns / 1e6);
}

int diff_by_span(const char *base_path, const char *new_path, double max_regression)
{
	struct span_set a = { 0 }, b = { 0 };
	int code = 1, bad = 0;

	if (load_spans(base_path, &a) < 0 || load_spans(new_path, &b) < 0)
		goto out;
	if (!a.n && !b.n) {
		log_error("neither run has spans (run.json \"spans\" is null: record a program "
			  "with span probes, see include/stoke/span.h)");
		goto out;
	}
	printf("base: %s\nnew:  %s\n\n", base_path, new_path);
	printf("%-24s %8s %8s %14s %14s %9s\n", "span", "count A", "count B", "mean A (ms)",
	       "mean B (ms)", "change");
	for (size_t i = 0; i < b.n; i++) {
		const struct span_row *nr = &b.rows[i], *br = find(&a, nr->name);
		char ma[32], mb[32];

		fmt_ms(nr->mean_ns, mb, sizeof(mb));
		if (!br) {
			printf("%-24s %8s %8llu %14s %14s %9s\n", nr->name, "-",
			       (unsigned long long)nr->count, "-", mb, "new");
			continue;
		}
		fmt_ms(br->mean_ns, ma, sizeof(ma));
		if (br->mean_ns > 0) {
			double pct = 100.0 * (nr->mean_ns - br->mean_ns) / br->mean_ns;

			printf("%-24s %8llu %8llu %14s %14s %+8.1f%%\n", nr->name,
			       (unsigned long long)br->count, (unsigned long long)nr->count, ma, mb,
			       pct);
			if (max_regression >= 0 && pct > max_regression) {
				fprintf(stderr,
					"stoke diff: span %s regressed %+.1f%% (mean %.3f ms → "
					"%.3f ms), more than --max-regression %g%%\n",
					nr->name, pct, br->mean_ns / 1e6, nr->mean_ns / 1e6,
					max_regression);
				bad++;
			}
		} else {
			printf("%-24s %8llu %8llu %14s %14s %9s\n", nr->name,
			       (unsigned long long)br->count, (unsigned long long)nr->count, ma, mb,
			       "-");
		}
	}
	for (size_t i = 0; i < a.n; i++) {
		char ma[32];

		if (find(&b, a.rows[i].name))
			continue;
		fmt_ms(a.rows[i].mean_ns, ma, sizeof(ma));
		printf("%-24s %8llu %8s %14s %14s %9s\n", a.rows[i].name,
		       (unsigned long long)a.rows[i].count, "-", ma, "-", "gone");
	}
	code = bad ? EXIT_REGRESSION : 0;
out:
	free_spans(&a);
	free_spans(&b);
	return code;
}
