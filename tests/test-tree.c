/*
 * The terminal call tree (-f tree), the HTML report (-f html) and the
 * resource timeline's model: golden files from the synthetic profile
 * (tests/synth.h), the threshold and colour rules, and hostile names.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/calltree.h"
#include "formats/html.h"
#include "formats/resource.h"
#include "formats/rundir.h"
#include "synth.h"

static __attribute__((noinline)) char *render(const struct stoke_profile *p, enum stoke_format f,
		    const struct stoke_output_opts *o)
{
	return synth_render(p, f, o, NULL);
}

START_TEST(tree_golden)
{
	synth_check_golden(STOKE_FORMAT_TREE, "synth.tree");
}
END_TEST

START_TEST(tree_golden_all_and_color)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_output_opts o;
	size_t len;
	char *buf;

	stoke_output_opts_init(&o);
	o.min_percent = 0;
	buf = synth_render(p, STOKE_FORMAT_TREE, &o, &len);
	synth_golden("synth-all.tree", buf, len);
	free(buf);
	o.min_percent = 1;
	o.color = STOKE_COLOR_ALWAYS;
	buf = synth_render(p, STOKE_FORMAT_TREE, &o, &len);
	synth_golden("synth-color.tree", buf, len);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* The tree's numbers are the call tree's: every shown line's share is its
 * node's inclusive weight, and the threshold hides exactly the nodes under
 * it (into one "[N frames hidden]" line per parent). */
START_TEST(tree_threshold)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_output_opts o;
	char *buf;

	stoke_output_opts_init(&o);
	/* Total 20: hot_leaf under b is 9 of them (45%); main is 19 (95%). */
	o.min_percent = 10;
	buf = render(p, STOKE_FORMAT_TREE, &o);
	ck_assert_ptr_nonnull(strstr(buf, "0.019s  95.0%  main\n"));
	ck_assert_ptr_nonnull(strstr(buf, "├─ 0.015s  75.0%  run\n"));
	ck_assert_ptr_nonnull(strstr(buf, "│  ├─ 0.012s  60.0%  a\n"));
	ck_assert_ptr_nonnull(strstr(buf, "│  │     ├─ 0.009s  45.0%  hot_leaf\n"));
	ck_assert_ptr_nonnull(strstr(buf, "worker 123")); /* 10%: kept */
	/* The 5% nodes are hidden: one under run, two under main. */
	ck_assert_ptr_null(strstr(buf, "LazyCompile"));
	ck_assert_ptr_null(strstr(buf, "libfoo"));
	ck_assert_ptr_nonnull(strstr(buf, "│  └─ [1 frame hidden, 5.0%]\n"));
	ck_assert_ptr_nonnull(strstr(buf, "└─ [2 frames hidden, 10.0%]\n"));
	ck_assert_ptr_nonnull(strstr(buf, "frames under 10% hidden"));
	free(buf);
	/* At 50% only the top of the tree remains. */
	o.min_percent = 50;
	buf = render(p, STOKE_FORMAT_TREE, &o);
	ck_assert_ptr_null(strstr(buf, "hot_leaf"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* A name is printed to a terminal: no control byte of it gets there. */
START_TEST(tree_hostile_names)
{
	struct stoke_profile *p = NULL;
	struct stoke_output_opts o;
	uint32_t f, s;
	char *buf;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	f = synth_frame(p, "evil\033]0;pwned\007\033[2J\r\nx\x7f", NULL, 0, NULL, 0,
			STOKE_PFRAME_USER, false);
	s = SYNTH_STACK(p, f);
	ck_assert_int_eq(stoke_profile_add_sample(p, 1, 1, s, 1), 0);
	stoke_output_opts_init(&o);
	buf = render(p, STOKE_FORMAT_TREE, &o);
	ck_assert_ptr_null(strchr(buf, '\033'));
	ck_assert_ptr_null(strchr(buf, '\007'));
	ck_assert_ptr_null(strchr(buf, '\r'));
	ck_assert_ptr_null(strchr(buf, '\x7f'));
	ck_assert_ptr_nonnull(strstr(buf, "evil?]0;pwned??[2J??x?\n"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* Colour on a terminal only, and never with NO_COLOR set. */
static bool tree_on_pty(void)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_output_opts o;
	char got[65536];
	ssize_t n, total = 0;
	int master, slave;
	FILE *f;

	master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(slave, 0);
	f = fdopen(slave, "w");
	ck_assert_ptr_nonnull(f);
	stoke_output_opts_init(&o);
	ck_assert_int_eq(stoke_output_write_file(p, STOKE_FORMAT_TREE, &o, f), 0);
	fclose(f);
	fcntl(master, F_SETFL, O_NONBLOCK);
	while ((n = read(master, got + total, sizeof(got) - 1 - (size_t)total)) > 0)
		total += n;
	got[total] = '\0';
	close(master);
	stoke_profile_free(p);
	ck_assert_ptr_nonnull(strstr(got, "hot_leaf"));
	return strchr(got, '\033') != NULL;
}

START_TEST(tree_color_tty)
{
	unsetenv("NO_COLOR");
	ck_assert(tree_on_pty());
	setenv("NO_COLOR", "1", 1);
	ck_assert(!tree_on_pty());
	/* Empty NO_COLOR does not count (no-color.org). */
	setenv("NO_COLOR", "", 1);
	ck_assert(tree_on_pty());
	unsetenv("NO_COLOR");
}
END_TEST

START_TEST(calltree_weights)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_ctree *t = NULL;
	uint64_t self = 0;

	ck_assert_int_eq(stoke_ctree_build(p, &t), 0);
	ck_assert_uint_eq(t->total, 20);
	ck_assert_uint_eq(t->nodes[0].value, 20);
	ck_assert_uint_eq(t->nodes[0].self, 1); /* the empty stack */
	for (size_t i = 0; i < t->nnodes; i++) {
		uint64_t kids = 0;

		self += t->nodes[i].self;
		for (uint32_t k = 0; k < t->nodes[i].nkids; k++) {
			uint32_t kid = t->kids[t->nodes[i].first_kid + k];

			kids += t->nodes[kid].value;
			ck_assert_uint_eq(t->nodes[kid].parent, i);
			if (k)
				ck_assert_uint_le(
					t->nodes[kid].value,
					t->nodes[t->kids[t->nodes[i].first_kid + k - 1]].value);
		}
		ck_assert_uint_eq(t->nodes[i].value, t->nodes[i].self + kids);
	}
	ck_assert_uint_eq(self, 20);
	stoke_ctree_free(t);
	stoke_profile_free(p);
}
END_TEST

/* Everything from the profile is escaped: no name can end the data
 * element or add markup, and nothing is fetched from anywhere. */
START_TEST(html_escaped)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_output_opts o;
	uint32_t f, s;
	char *buf, *data, *end;

	f = synth_frame(p, "</script><img src=x onerror=alert(1)><!--", NULL, 0, NULL, 0,
			STOKE_PFRAME_USER, false);
	s = SYNTH_STACK(p, f);
	ck_assert_int_eq(stoke_profile_add_sample(p, 100, 1000000, s, 1), 0);
	ck_assert_int_eq(stoke_profile_intern(p, "</title><script>x()</script>",
					      &stoke_profile_meta(p)->command),
			 0);
	stoke_output_opts_init(&o);
	buf = render(p, STOKE_FORMAT_HTML, &o);
	ck_assert_ptr_null(strstr(buf, "<img"));
	ck_assert_ptr_null(strstr(buf, "x()</script>"));
	ck_assert_ptr_nonnull(strstr(buf, "<title>stoke: &lt;/title&gt;&lt;script&gt;"));
	data = strstr(buf, "id=\"stoke-data\">");
	ck_assert_ptr_nonnull(data);
	data += strlen("id=\"stoke-data\">");
	end = strstr(data, "</script>");
	ck_assert_ptr_nonnull(end);
	for (char *c = data; c < end; c++)
		ck_assert_msg(*c != '<' && *c != '>' && *c != '&', "raw %c in the data", *c);
	ck_assert_ptr_nonnull(strstr(data, "\\u003c/script\\u003e\\u003cimg"));
	/* two script elements only: the data and ours */
	ck_assert_ptr_null(strstr(strstr(strstr(buf, "<script") + 1, "<script") + 1, "<script"));
	ck_assert_ptr_null(strstr(buf, "http://"));
	ck_assert_ptr_null(strstr(buf, "https://"));
	ck_assert_ptr_nonnull(strstr(buf, "Content-Security-Policy\" content=\"default-src 'none'"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

START_TEST(html_resources)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_rseries rs = { .interval_ns = 100000000, .mono_start_ns = 500000 };
	struct stoke_output_opts o;
	struct stoke_rsummary sum;
	char *buf;

	/* 3 points 0.1 s apart: 10, 30, 20 MB; 0.05 s then 0.1 s of CPU. */
	for (int i = 0; i < 3; i++) {
		struct stoke_rpoint pt = { .t_ns = 500000 + (uint64_t)i * 100000000,
					   .rss = (uint64_t)(i == 1 ? 30 : i ? 20 : 10) << 20,
					   .cpu = i == 1 ? 0.5 : i ? 1.0 : 0,
					   .procs = 1 };

		ck_assert_int_eq(stoke_rseries_add(&rs, &pt), 0);
	}
	rs.cpu_ns = 150000000;
	stoke_rseries_summary(&rs, &sum);
	ck_assert_uint_eq(sum.peak_rss, 30u << 20);
	ck_assert_uint_eq(sum.mean_rss, 20u << 20);
	ck_assert_double_eq_tol(sum.mean_cpu, 0.75, 1e-9);
	ck_assert_double_eq_tol(sum.peak_cpu, 1.0, 1e-9);
	stoke_output_opts_init(&o);
	o.resources = &rs;
	buf = render(p, STOKE_FORMAT_HTML, &o);
	ck_assert_ptr_nonnull(strstr(buf, "\"resources\": {\"peak_rss\": 31457280"));
	ck_assert_ptr_nonnull(strstr(buf, "\"t\": [0.0000,0.1000,0.2000]"));
	free(buf);
	stoke_rseries_free(&rs);
	stoke_profile_free(p);
}
END_TEST

START_TEST(runjson_resources)
{
	struct stoke_profile *p = synth_profile();
	struct stoke_rseries rs = { .interval_ns = 100000000, .mono_start_ns = 7000,
				    .wall_start_ns = 1700000000223000000ULL };
	struct stoke_run_info info = { .resources = &rs };
	struct stoke_rpoint pt = { .t_ns = 7000, .rss = 4096 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	ck_assert_int_eq(stoke_rseries_add(&rs, &pt), 0);
	pt.t_ns += 100000000;
	pt.rss = 8192;
	ck_assert_int_eq(stoke_rseries_add(&rs, &pt), 0);
	ck_assert_int_eq(stoke_runjson_write(p, &info, NULL, 0, out), 0);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(buf, "\"schema_version\": \"2\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"peak_rss_bytes\": 8192"));
	ck_assert_ptr_nonnull(strstr(buf, "\"mean_rss_bytes\": 6144"));
	/* t_s counts from the recording's start (0.1 s before the first point) */
	ck_assert_ptr_nonnull(strstr(buf, "\"t_s\": [0.100, 0.200]"));
	free(buf);
	stoke_rseries_free(&rs);
	stoke_profile_free(p);
}
END_TEST

/* A profile with many threads keeps the timelines of the heaviest only. */
START_TEST(html_thread_cap)
{
	struct stoke_profile *p = NULL;
	struct stoke_output_opts o;
	uint32_t f, st;
	size_t count = 0;
	char *buf, *at;

	ck_assert_int_eq(stoke_profile_new(&p), 0);
	f = synth_frame(p, "work", NULL, 0, NULL, 0, STOKE_PFRAME_USER, false);
	st = SYNTH_STACK(p, f);
	for (uint32_t i = 0; i < STOKE_HTML_THREADS + 44; i++) {
		ck_assert_int_eq(stoke_profile_thread(p, 1, 1000 + i, "t"), 0);
		ck_assert_int_eq(stoke_profile_add_sample(p, 1000 + i, 1000 + i, st, 1 + i), 0);
	}
	stoke_output_opts_init(&o);
	buf = render(p, STOKE_FORMAT_HTML, &o);
	ck_assert_ptr_nonnull(strstr(buf, "\"nthreads\": 300,"));
	for (at = buf; (at = strstr(at, "{\"pid\": 1, \"tid\": ")); at++)
		count++;
	ck_assert_uint_eq(count, STOKE_HTML_THREADS);
	/* the 44 lightest are left out, the heaviest kept */
	ck_assert_ptr_null(strstr(buf, "\"tid\": 1043,"));
	ck_assert_ptr_nonnull(strstr(buf, "\"tid\": 1044,"));
	ck_assert_ptr_nonnull(strstr(buf, "\"tid\": 1299,"));
	free(buf);
	stoke_profile_free(p);
}
END_TEST

/* A rotated profile gets its own part of the session's timeline. */
START_TEST(resources_clip)
{
	struct stoke_rseries rs = { .interval_ns = 100000000, .mono_start_ns = 1000000000,
				    .wall_start_ns = 1700000000000000000ULL, .cpu_ns = 123 };
	struct stoke_rseries c;

	for (int i = 0; i < 5; i++) {
		struct stoke_rpoint pt = { .t_ns = 1000000000 + (uint64_t)i * 100000000,
					   .rss = (uint64_t)i << 20, .cpu = i * 0.25 };

		ck_assert_int_eq(stoke_rseries_add(&rs, &pt), 0);
	}
	ck_assert_int_eq(stoke_rseries_clip(&rs, rs.wall_start_ns + 150000000,
					    rs.wall_start_ns + 350000000, &c), 0);
	ck_assert_uint_eq(c.n, 2);
	ck_assert_uint_eq(c.points[0].rss, 2u << 20);
	ck_assert_uint_eq(c.points[1].rss, 3u << 20);
	ck_assert_uint_eq(c.cpu_ns, 75000000); /* 0.75 of a core for 0.1 s */
	stoke_rseries_free(&c);
	/* the whole window: everything, and the sampler's own CPU sum */
	ck_assert_int_eq(stoke_rseries_clip(&rs, rs.wall_start_ns, rs.wall_start_ns + 400000000, &c),
			 0);
	ck_assert_uint_eq(c.n, 5);
	ck_assert_uint_eq(c.cpu_ns, 123);
	stoke_rseries_free(&c);
	stoke_rseries_free(&rs);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("tree");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, tree_golden);
	tcase_add_test(tc, tree_golden_all_and_color);
	tcase_add_test(tc, tree_threshold);
	tcase_add_test(tc, tree_hostile_names);
	tcase_add_test(tc, tree_color_tty);
	tcase_add_test(tc, calltree_weights);
	tcase_add_test(tc, html_escaped);
	tcase_add_test(tc, html_resources);
	tcase_add_test(tc, runjson_resources);
	tcase_add_test(tc, resources_clip);
	tcase_add_test(tc, html_thread_cap);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
