/*
 * Run directories (FORMATS.md "Run directory"): run.json plus every format,
 * in a directory named "<YYYY-MM-DDTHH-MM-SS>_<name>" after the profile's
 * start time (UTC).
 *
 * The directory appears whole or not at all: everything is written into a
 * hidden temporary directory beside it, which is then renamed into place
 * with RENAME_NOREPLACE. NOREPLACE matters twice: a plain rename would
 * silently replace an existing *empty* directory of the same name, and the
 * collision suffixes (_2, _3, …) are taken race-free by trying each name in
 * turn, so two writers started in the same second never share a directory.
 *
 * A writer killed mid-way (kill -9, a crash) leaves its hidden directory
 * behind. Each writer holds an flock on its temporary directory for as long
 * as it writes; the kernel drops the lock when the process dies, however it
 * dies. So every write first sweeps the parent for temporary directories
 * whose lock is free, i.e. whose writer is gone, and removes them. A pid in
 * the name would not do: pids are reused, and are per pid namespace.
 */
#include "formats/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "formats/escape.h"
#include "formats/spans.h"
#include "formats/resource.h"
#include "common/util.h"

#define RUNJSON "run.json"
#define MAX_SUFFIX 10000

void stoke_host_get(struct stoke_host *h)
{
	struct utsname u;

	memset(h, 0, sizeof(*h));
	if (gethostname(h->hostname, sizeof(h->hostname) - 1) < 0)
		h->hostname[0] = '\0';
	if (uname(&u) == 0)
		snprintf(h->kernel, sizeof(h->kernel), "%s", u.release);
	h->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (h->cpus < 0)
		h->cpus = 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ISO-8601 UTC with milliseconds: "2024-05-01T12:00:00.123Z". */
#define ISO_SIZE 128
static void iso8601(uint64_t ns, char buf[static ISO_SIZE])
{
	time_t t = (time_t)(ns / 1000000000ULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, ISO_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ns % 1000000000ULL / 1000000ULL));
}

void stoke_rundir_basename(uint64_t start_ns, const char *name, char *buf, size_t size)
{
	time_t t = (time_t)(start_ns / 1000000000ULL);
	size_t n, max_name = 64;
	struct tm tm;

	gmtime_r(&t, &tm);
	n = (size_t)snprintf(buf, size, "%04d-%02d-%02dT%02d-%02d-%02d_", tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n >= size)
		return;
	/* The name becomes part of a path: keep it to a safe alphabet, so a
	 * command line such as "../x" cannot point anywhere else. */
	for (const char *s = name ? name : ""; *s && n + 1 < size && max_name; s++, max_name--) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			c = '_';
		buf[n++] = c;
	}
	if (!name || !*name)
		n += (size_t)snprintf(buf + n, size - n, "stoke");
	else if (buf[n - 1] == '.')
		buf[n - 1] = '_'; /* no name ending in "." or ".." */
	if (n < size)
		buf[n] = '\0';
}

static void json_u64(FILE *out, const char *key, uint64_t v, bool comma)
{
	fprintf(out, "  \"%s\": %" PRIu64 "%s\n", key, v, comma ? "," : "");
}

static void json_str_or_null(FILE *out, const char *s)
{
	if (s && *s)
		stoke_json_string(out, s);
	else
		fputs("null", out);
}

static void runjson_threads(const struct stoke_profile *p, FILE *out)
{
	const struct stoke_pthread *th;
	size_t n;

	th = stoke_profile_threads(p, &n);
	fputs("  \"threads\": [", out);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "%s\n    {\"pid\": %" PRIu32 ", \"tid\": %" PRIu32 ", \"name\": ",
			i ? "," : "", th[i].pid, th[i].tid);
		stoke_json_string(out, stoke_profile_string(p, th[i].name));
		fprintf(out, ", \"samples\": %" PRIu64 "}", th[i].samples);
	}
	fputs(n ? "\n  ],\n" : "],\n", out);
}

int stoke_runjson_write(const struct stoke_profile *p, const struct stoke_run_info *info,
			const struct stoke_host *host, unsigned files, FILE *out)
{
	const struct stoke_pmeta *m = stoke_profile_cmeta(p);
	struct stoke_run_info noinfo = { 0 };
	struct stoke_host here;
	char start[ISO_SIZE], end[ISO_SIZE];
	bool first = true;

	if (!info)
		info = &noinfo;
	if (!host) {
		stoke_host_get(&here);
		host = &here;
	}
	iso8601(m->start_ns, start);
	iso8601(m->end_ns, end);
	/* "2": "resources" (the target's RSS and CPU over the recording) and
	 * "spans" added. */
	fputs("{\n  \"schema_version\": \"2\",\n", out);
	fputs("  \"tool\": {\"name\": \"stoke\", \"version\": \"" STOKE_VERSION "\"},\n", out);
	fprintf(out, "  \"target\": {\"pid\": %" PRIu32 ", \"cmd\": ", m->pid);
	json_str_or_null(out, stoke_profile_string(p, m->command));
	fputs(", \"exe\": ", out);
	json_str_or_null(out, info->exe);
	fputs(", \"build_id\": ", out);
	json_str_or_null(out, info->build_id);
	fprintf(out, "},\n  \"start\": \"%s\",\n  \"end\": \"%s\",\n", start, end);
	fprintf(out, "  \"duration_s\": %.3f,\n",
		m->end_ns > m->start_ns ? (double)(m->end_ns - m->start_ns) / 1e9 : 0.0);
	fputs("  \"event\": ", out);
	stoke_json_string(out, stoke_profile_string(p, m->event));
	fprintf(out, ",\n  \"frequency\": %" PRIu32 ",\n", m->frequency);
	json_u64(out, "period_ns", m->period_ns, true);
	fputs("  \"call_graph\": ", out);
	stoke_json_string(out, stoke_profile_string(p, m->callgraph));
	fputs(",\n", out);
	json_u64(out, "samples", stoke_profile_total(p), true);
	json_u64(out, "lost_samples", m->lost, true);
	json_u64(out, "throttled", m->throttled, true);
	json_u64(out, "unwind_failures", info->unwind_failed, true);
	json_u64(out, "truncated_stacks", info->truncated, true);
	json_u64(out, "stitched_stacks", info->stitched, true);
	if (info->modules_capped)
		json_u64(out, "modules_capped", info->modules_capped, true);
	runjson_threads(p, out);
	fputs("  \"resources\": ", out);
	if (info->resources)
		stoke_rseries_json(info->resources, m->start_ns, out);
	else
		fputs("null", out);
	fputs(",\n", out);
	/* Per span name (include/stoke/span.h): null without spans. */
	fputs("  \"spans\": ", out);
	stoke_spans_json(p, out);
	fputs(",\n", out);
	fputs("  \"host\": {\"hostname\": ", out);
	stoke_json_string(out, host->hostname);
	fputs(", \"kernel\": ", out);
	stoke_json_string(out, host->kernel);
	fprintf(out, ", \"cpus\": %ld},\n", host->cpus);
	fputs("  \"files\": {", out);
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++) {
		if (!(files & (1u << f)))
			continue;
		fprintf(out, "%s\"%s\": ", first ? "" : ", ", stoke_format_name((enum stoke_format)f));
		stoke_json_string(out, stoke_format_rundir_name((enum stoke_format)f));
		first = false;
	}
	fputs("}\n}\n", out);
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}

/* ".<base>.tmp-<digits>-<digits>": the names make_tmpdir gives. */
static bool is_tmpdir_name(const char *n)
{
	const char *t;
	size_t digits;

	if (n[0] != '.' || !(t = strstr(n + 1, ".tmp-")))
		return false;
	for (;;) {
		const char *next = strstr(t + 1, ".tmp-");

		if (!next)
			break;
		t = next;
	}
	t += 5;
	for (digits = 0; *t >= '0' && *t <= '9'; t++)
		digits++;
	if (!digits || *t++ != '-')
		return false;
	for (digits = 0; *t >= '0' && *t <= '9'; t++)
		digits++;
	return digits && !*t;
}

/* Empty and remove the temporary directory name (open as fd, its lock
 * held): only the regular files in it, which is all a writer puts there. */
static void remove_abandoned(int parent, const char *name, int fd)
{
	struct dirent *de;
	int dfd = dup(fd);
	DIR *d;

	if (dfd < 0)
		return;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
			unlinkat(fd, de->d_name, 0);
	closedir(d);
	unlinkat(parent, name, AT_REMOVEDIR);
}

/* Remove the temporary directories in parent whose writers are gone (see
 * the top of the file). Best effort: whatever cannot be removed stays. */
static void sweep_abandoned(int parent)
{
	struct dirent *de;
	int dfd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (dfd < 0)
		return;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		int fd;

		if ((de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) ||
		    !is_tmpdir_name(de->d_name))
			continue;
		fd = openat(parent, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			remove_abandoned(parent, de->d_name, fd);
		close(fd); /* and the lock with it */
	}
	closedir(d);
}

/*
 * Make a hidden temporary directory under parent, its name in buf, and
 * return an fd on it that holds its lock. The name is taken, opened and
 * locked in three steps, and a sweeper may remove the directory in between
 * (it takes the lock first): then the open fails, or the lock, or the
 * directory is found deleted, and the next name is tried.
 */
static int make_tmpdir(int parent, const char *base, char *buf, size_t size)
{
	for (unsigned i = 0; i < 1000; i++) {
		struct stat st;
		int fd;

		snprintf(buf, size, ".%s.tmp-%ld-%u", base, (long)getpid(), i);
		if (mkdirat(parent, buf, 0777) < 0) {
			if (errno != EEXIST)
				return -errno;
			continue;
		}
		fd = openat(parent, buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		/* A filesystem without flock: no sweeper can lock it either,
		 * so the directory is safe (and an abandoned one stays). */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				return fd;
			close(fd); /* a sweeper holds it, and removes it */
			continue;
		}
		if (fstat(fd, &st) == 0 && st.st_nlink > 0)
			return fd;
		close(fd);
	}
	return -EEXIST;
}

static void remove_tmpdir(int parent, const char *tmp, int dirfd, unsigned written)
{
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++)
		if ((written & (1u << f)) && stoke_format_rundir_name((enum stoke_format)f))
			unlinkat(dirfd, stoke_format_rundir_name((enum stoke_format)f), 0);
	unlinkat(dirfd, RUNJSON, 0);
	unlinkat(parent, tmp, AT_REMOVEDIR);
}

static int write_runjson(const struct stoke_profile *p, const struct stoke_run_info *info,
			 unsigned files, int dirfd)
{
	struct stoke_atomic_file af;
	int r;

	r = stoke_atomic_openat(dirfd, RUNJSON, &af);
	if (r < 0)
		return r;
	r = stoke_runjson_write(p, info, NULL, files, af.f);
	if (r < 0) {
		r = stoke_atomic_error(&af, r);
		stoke_atomic_abort(&af);
		return r;
	}
	return stoke_atomic_commit(&af);
}

/* Rename tmp to base, base_2, base_3, … whichever is free first. */
static int publish(int parent, const char *tmp, const char *base, char **ret_name)
{
	char name[PATH_MAX];

	for (unsigned i = 1; i < MAX_SUFFIX; i++) {
		if (i == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%s_%u", base, i);
		if (renameat2(parent, tmp, parent, name, RENAME_NOREPLACE) == 0) {
			if (ret_name)
				*ret_name = strdup(name);
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int stoke_rundir_write(const struct stoke_profile *p, const struct stoke_run_info *info,
		       const struct stoke_output_opts *opts, int parent_dirfd, const char *name,
		       char **ret_name)
{
	const struct stoke_pmeta *m;
	char base[256], tmp[PATH_MAX];
	unsigned written = 0, all = 0;
	struct stoke_output_opts with_res;
	struct stoke_run_info clipped_info;
	struct stoke_rseries clipped = { 0 };
	int dirfd, r;

	if (!p)
		return -EINVAL;
	if (ret_name)
		*ret_name = NULL;
	m = stoke_profile_cmeta(p);
	stoke_rundir_basename(m->start_ns ? m->start_ns : now_ns(), name, base, sizeof(base));
	sweep_abandoned(parent_dirfd);
	dirfd = make_tmpdir(parent_dirfd, base, tmp, sizeof(tmp));
	if (dirfd < 0)
		return dirfd;
	r = 0;
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++)
		all |= 1u << f;
	/* The HTML report shows the resource timeline too. */
	if (info && info->resources) {
		/* The part of the timeline this profile covers (after a
		 * rotation, the session's series is longer). */
		r = stoke_rseries_clip(info->resources, m->start_ns, m->end_ns, &clipped);
		clipped_info = *info;
		clipped_info.resources = &clipped;
		info = &clipped_info;
		if (opts)
			with_res = *opts;
		else
			stoke_output_opts_init(&with_res);
		with_res.resources = &clipped;
		opts = &with_res;
	}
	for (int f = 0; f < STOKE_FORMAT_COUNT && r >= 0; f++) {
		if (!stoke_format_rundir_name((enum stoke_format)f))
			continue;
		r = stoke_output_write(p, (enum stoke_format)f, opts, dirfd,
				       stoke_format_rundir_name((enum stoke_format)f));
		if (r >= 0)
			written |= 1u << f;
	}
	if (r >= 0)
		r = write_runjson(p, info, written, dirfd);
	if (r >= 0 && fsync(dirfd) < 0)
		r = -errno;
	if (r >= 0)
		r = publish(parent_dirfd, tmp, base, ret_name);
	if (r < 0)
		remove_tmpdir(parent_dirfd, tmp, dirfd, all);
	close(dirfd);
	stoke_rseries_free(&clipped);
	return r;
}
