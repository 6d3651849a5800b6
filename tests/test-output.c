/*
 * Output selection and run directories (formats/output.h, rundir.h):
 * format names and extensions, atomic writes relative to a directory fd,
 * the run directory's name, collision suffixes, contents and run.json.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/output.h"
#include "formats/rundir.h"
#include "synth.h"

START_TEST(format_from_path)
{
	static const struct {
		const char *path;
		int f;
	} cases[] = {
		{ "a.folded", STOKE_FORMAT_FOLDED },
		{ "x/a.collapsed", STOKE_FORMAT_FOLDED },
		{ "a.svg", STOKE_FORMAT_SVG },
		{ "a.speedscope.json", STOKE_FORMAT_SPEEDSCOPE },
		{ "a.pstats", STOKE_FORMAT_PSTATS },
		{ "a.prof", STOKE_FORMAT_PSTATS },
		{ "a.txt", STOKE_FORMAT_TEXT },
		{ "dir.d/profile.pb.gz", STOKE_FORMAT_PPROF },
		{ "a.callgrind", STOKE_FORMAT_CALLGRIND },
		{ "/tmp/callgrind.out.1234", STOKE_FORMAT_CALLGRIND },
		{ "callgrind.out.x.txt", STOKE_FORMAT_CALLGRIND },
		{ "a.json", STOKE_FORMAT_SPEEDSCOPE }, /* as py-spy */
		{ "a.gz", -1 },
		{ ".svg", -1 },
		{ "callgrind.out.", -1 },
		{ "x.svg/", -1 },
		{ "-", -1 },
	};
	enum stoke_format f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = stoke_format_from_path(cases[i].path, &f);

		if (cases[i].f < 0) {
			ck_assert_msg(r == -EINVAL, "%s should not match", cases[i].path);
		} else {
			ck_assert_msg(r == 0 && (int)f == cases[i].f, "%s", cases[i].path);
		}
	}
}
END_TEST

START_TEST(format_names)
{
	enum stoke_format f;

	ck_assert_int_eq(stoke_format_from_name("raw", &f), 0); /* py-spy's */
	ck_assert_int_eq((int)f, STOKE_FORMAT_FOLDED);
	ck_assert_int_eq(stoke_format_from_name("chrometrace", &f), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stoke_format_hint("chrometrace"), "speedscope"));
	ck_assert_ptr_null(stoke_format_hint("nonsense"));

	for (int i = 0; i < STOKE_FORMAT_COUNT; i++) {
		ck_assert_int_eq(stoke_format_from_name(stoke_format_name((enum stoke_format)i), &f), 0);
		ck_assert_int_eq((int)f, i);
		/* the terminal tree is the one format no run directory holds */
		if (i == STOKE_FORMAT_TREE) {
			ck_assert_ptr_null(stoke_format_rundir_name((enum stoke_format)i));
			continue;
		}
		ck_assert_ptr_nonnull(stoke_format_rundir_name((enum stoke_format)i));
		/* a run directory's file names select their own format */
		ck_assert_int_eq(stoke_format_from_path(stoke_format_rundir_name((enum stoke_format)i),
							&f), 0);
		ck_assert_int_eq((int)f, i);
	}
	ck_assert_int_eq(stoke_format_from_name("text", &f), 0);
	ck_assert_int_eq(f, STOKE_FORMAT_TEXT);
	ck_assert_int_eq(stoke_format_from_name("nope", &f), -EINVAL);
	ck_assert_int_eq(stoke_format_from_name(NULL, &f), -EINVAL);
}
END_TEST

static char *make_tmpdir(void)
{
	char *d = strdup("/tmp/stoke-test-output.XXXXXX");

	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static void rm_rf(const char *path)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	ck_assert_int_eq(system(cmd), 0);
}

static char *slurp_at(int dirfd, const char *path, size_t *ret_len)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	ck_assert_msg(fd >= 0, "cannot open %s", path);
	do {
		if (len + 4096 + 1 > cap) {
			cap = (len + 4096 + 1) * 2;
			buf = realloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		ck_assert_int_ge(n, 0);
		len += (size_t)n;
	} while (n > 0);
	close(fd);
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* Files only: no temporary left over. */
static size_t count_entries(int dirfd, bool *hidden)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	*hidden = false;
	rewinddir(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.')
			*hidden = true;
		n++;
	}
	closedir(d);
	return n;
}

/* One function over three lines in two files (an #included body, as
 * CPython's generated_cases.c.h in ceval.c), called from main. */
static struct stoke_profile *multiline_profile(void)
{
	struct stoke_profile *p = NULL;
	uint32_t main_, l1, l2, l3;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	main_ = synth_frame(p, "main", "/src/m.c", 3, "/bin/m", 0, STOKE_PFRAME_USER, false);
	l1 = synth_frame(p, "eval", "/src/ceval.c", 120, "/bin/m", 0, STOKE_PFRAME_USER, false);
	l2 = synth_frame(p, "eval", "/src/ceval.c", 100, "/bin/m", 0, STOKE_PFRAME_USER, false);
	l3 = synth_frame(p, "eval", "/src/gen.c.h", 7, "/bin/m", 0, STOKE_PFRAME_USER, false);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 1, SYNTH_STACK(p, main_, l1), 3), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 2, SYNTH_STACK(p, main_, l2), 2), 0);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 3, SYNTH_STACK(p, main_, l3), 5), 0);
	return p;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *s = hay; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

/* Frames are functions by default in every format (#17 item 4); --lines
 * opts into one frame per line. */
START_TEST(frames_are_functions)
{
	struct stoke_profile *p = multiline_profile();
	struct stoke_output_opts opts;
	char *buf;

	stoke_output_opts_init(&opts);
	buf = synth_render(p, STOKE_FORMAT_SPEEDSCOPE, &opts, NULL);
	ck_assert_int_eq(count_of(buf, "\"name\":\"eval\""), 1);
	/* the function's file is its first frame's, its line the lowest there */
	ck_assert_ptr_nonnull(strstr(buf, "\"name\":\"eval\",\"file\":\"/src/ceval.c\","
					  "\"line\":100}"));
	free(buf);
	buf = synth_render(p, STOKE_FORMAT_CALLGRIND, &opts, NULL);
	ck_assert_int_eq(count_of(buf, "eval\n"), 1);
	ck_assert_ptr_null(strstr(buf, "gen.c.h"));
	free(buf);
	buf = synth_render(p, STOKE_FORMAT_TEXT, &opts, NULL);
	ck_assert_int_eq(count_of(buf, "(eval)"), 1);
	free(buf);
	opts.lines = true;
	buf = synth_render(p, STOKE_FORMAT_SPEEDSCOPE, &opts, NULL);
	ck_assert_int_eq(count_of(buf, "\"name\":\"eval\""), 3);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

START_TEST(write_atomic_relative)
{
	struct stoke_profile *p = synth_profile();
	char *dir = make_tmpdir(), *got, *want;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t glen, wlen;
	bool hidden;

	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(stoke_output_write(p, STOKE_FORMAT_FOLDED, NULL, dirfd, "x.folded"), 0);
	got = slurp_at(dirfd, "x.folded", &glen);
	want = synth_render(p, STOKE_FORMAT_FOLDED, NULL, &wlen);
	ck_assert_uint_eq(glen, wlen);
	ck_assert_int_eq(memcmp(got, want, glen), 0);
	ck_assert_uint_eq(count_entries(dirfd, &hidden), 1);
	ck_assert(!hidden);
	/* an unwritable destination is an error, and leaves nothing */
	ck_assert_int_eq(stoke_output_write(p, STOKE_FORMAT_FOLDED, NULL, dirfd, "no/such/x.folded"),
			 -ENOENT);
	ck_assert_int_eq(stoke_output_write(p, STOKE_FORMAT_COUNT, NULL, dirfd, "y"), -EINVAL);
	ck_assert_uint_eq(count_entries(dirfd, &hidden), 1);
	free(got);
	free(want);
	close(dirfd);
	rm_rf(dir);
	free(dir);
	stoke_profile_free(p);
}
END_TEST

START_TEST(rundir_basename)
{
	char buf[256];

	/* 1700000000 = 2023-11-14T22:13:20Z */
	stoke_rundir_basename(1700000000123000000ULL, "app", buf, sizeof(buf));
	ck_assert_str_eq(buf, "2023-11-14T22-13-20_app");
	stoke_rundir_basename(1700000000000000000ULL, "../x y/z", buf, sizeof(buf));
	ck_assert_str_eq(buf, "2023-11-14T22-13-20_.._x_y_z");
	stoke_rundir_basename(1700000000000000000ULL, NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2023-11-14T22-13-20_stoke");
	stoke_rundir_basename(1700000000000000000ULL, "..", buf, sizeof(buf));
	ck_assert_str_eq(buf, "2023-11-14T22-13-20_._");
}
END_TEST

START_TEST(rundir_contents_and_collisions)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_run_info info = { .exe = "/usr/bin/app", .unwind_failed = 7, .truncated = 2 };
	char *dir = make_tmpdir(), *name1 = NULL, *name2 = NULL, *name3 = NULL;
	int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), run;
	char *json;
	bool hidden;

	ck_assert_int_ge(parent, 0);
	ck_assert_int_eq(stoke_rundir_write(p, &info, NULL, parent, "app", &name1), 0);
	ck_assert_int_eq(stoke_rundir_write(p, &info, NULL, parent, "app", &name2), 0);
	ck_assert_int_eq(stoke_rundir_write(p, &info, NULL, parent, "app", &name3), 0);
	ck_assert_str_eq(name1, "2023-11-14T22-13-20_app");
	ck_assert_str_eq(name2, "2023-11-14T22-13-20_app_2");
	ck_assert_str_eq(name3, "2023-11-14T22-13-20_app_3");
	/* no temporary directory left behind */
	ck_assert_uint_eq(count_entries(parent, &hidden), 3);
	ck_assert(!hidden);
	run = openat(parent, name2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(run, 0);
	/* every format a writer exists for, and run.json */
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++) {
		char *want = NULL, *got;
		size_t wlen = 0, glen;
		FILE *out = open_memstream(&want, &wlen);
		int r = stoke_output_write_file(p, (enum stoke_format)f, NULL, out);

		fclose(out);
		if (r == -EOPNOTSUPP || !stoke_format_rundir_name((enum stoke_format)f)) {
			free(want);
			continue;
		}
		ck_assert_int_eq(r, 0);
		got = slurp_at(run, stoke_format_rundir_name((enum stoke_format)f), &glen);
		ck_assert_uint_eq(glen, wlen);
		ck_assert_int_eq(memcmp(got, want, glen), 0);
		free(got);
		free(want);
	}
	json = slurp_at(run, "run.json", NULL);
	ck_assert_ptr_nonnull(strstr(json, "\"schema_version\": \"2\""));
	ck_assert_ptr_nonnull(strstr(json, "\"resources\": null,"));
	ck_assert_ptr_nonnull(strstr(json, "\"html\": \"report.html\""));
	ck_assert_ptr_nonnull(strstr(json, "\"lost_samples\": 3,"));
	ck_assert_ptr_nonnull(strstr(json, "\"unwind_failures\": 7,"));
	ck_assert_ptr_nonnull(strstr(json, "\"truncated_stacks\": 2,"));
	ck_assert_ptr_nonnull(strstr(json, "\"samples\": 20,"));
	ck_assert_ptr_nonnull(strstr(json, "\"start\": \"2023-11-14T22:13:20.123Z\""));
	ck_assert_ptr_nonnull(strstr(json, "\"duration_s\": 2.500,"));
	ck_assert_ptr_nonnull(strstr(json, "\"cmd\": \"./app --flag \\\"x\\\"\""));
	ck_assert_ptr_nonnull(strstr(json, "\"name\": \"wrk <\\\"&\\\">;x 7\""));
	ck_assert_ptr_nonnull(strstr(json, "\"pprof\": \"profile.pb.gz\""));
	ck_assert_ptr_nonnull(strstr(json, "\"folded\": \"profile.folded\""));
	free(json);
	close(run);
	close(parent);
	free(name1);
	free(name2);
	free(name3);
	rm_rf(dir);
	free(dir);
	stoke_profile_free(p);
}
END_TEST

START_TEST(rundir_unwritable_parent)
{
	struct stoke_profile *p = synth_profile();
	char *dir = make_tmpdir(), *name = (char *)"sentinel";
	int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_eq(chmod(dir, 0500), 0);
	if (geteuid() != 0) {
		ck_assert_int_eq(stoke_rundir_write(p, NULL, NULL, parent, "app", &name), -EACCES);
		ck_assert_ptr_null(name);
	}
	ck_assert_int_eq(stoke_rundir_write(p, NULL, NULL, -1, "app", &name), -EBADF);
	chmod(dir, 0700);
	close(parent);
	rm_rf(dir);
	free(dir);
	stoke_profile_free(p);
}
END_TEST

static Suite *output_suite(void)
{
	Suite *s = suite_create("output");
	TCase *tc = tcase_create("output");

	tcase_add_test(tc, format_from_path);
	tcase_add_test(tc, format_names);
	tcase_add_test(tc, write_atomic_relative);
	tcase_add_test(tc, frames_are_functions);
	tcase_add_test(tc, rundir_basename);
	tcase_add_test(tc, rundir_contents_and_collisions);
	tcase_add_test(tc, rundir_unwritable_parent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(output_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
