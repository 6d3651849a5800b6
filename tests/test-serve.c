/*
 * Unit tests for stoke serve's request checks (tools/serve/check.h): the
 * token, the Host header, paths below a served directory (lexical checks
 * and the check after opening, with real symlinks), URL encoding.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/serve/check.h"

START_TEST(test_token)
{
	char a[SERVE_TOKEN_LEN + 1], b[SERVE_TOKEN_LEN + 1], c[SERVE_TOKEN_LEN + 2];

	ck_assert_int_eq(serve_token_new(a), 0);
	ck_assert_int_eq(serve_token_new(b), 0);
	ck_assert_uint_eq(strlen(a), SERVE_TOKEN_LEN);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), SERVE_TOKEN_LEN);
	ck_assert_str_ne(a, b);
	ck_assert(serve_token_equal(a, a));
	strcpy(c, a);
	ck_assert(serve_token_equal(a, c));
	c[SERVE_TOKEN_LEN - 1] ^= 1; /* the last character differs */
	ck_assert(!serve_token_equal(a, c));
	strcpy(c, a);
	c[0] = c[0] == '0' ? '1' : '0'; /* the first */
	ck_assert(!serve_token_equal(a, c));
	strcpy(c, a);
	c[SERVE_TOKEN_LEN - 1] = '\0'; /* a prefix */
	ck_assert(!serve_token_equal(a, c));
	strcpy(c, a);
	strcat(c, "0"); /* longer */
	ck_assert(!serve_token_equal(a, c));
	ck_assert(!serve_token_equal(a, ""));
	ck_assert(!serve_token_equal(a, NULL));
}
END_TEST

START_TEST(test_host)
{
	ck_assert(serve_host_ok("127.0.0.1:8470", "127.0.0.1", 8470));
	ck_assert(serve_host_ok("localhost:8470", "127.0.0.1", 8470));
	ck_assert(serve_host_ok("LocalHost:8470", "127.0.0.1", 8470));
	/* DNS rebinding: another name that resolves to us */
	ck_assert(!serve_host_ok("evil.example:8470", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("127.0.0.1.evil.example:8470", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("127.0.0.1:8470.evil.example", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("localhost.evil.example:8470", "127.0.0.1", 8470));
	/* another port, no port, trailing junk, nothing */
	ck_assert(!serve_host_ok("127.0.0.1:8471", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("127.0.0.1:84700", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("127.0.0.1", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("127.0.0.1:8470 ", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok("", "127.0.0.1", 8470));
	ck_assert(!serve_host_ok(NULL, "127.0.0.1", 8470));
	/* a non-loopback bind: its own address only */
	ck_assert(serve_host_ok("192.0.2.7:80", "192.0.2.7", 80));
	ck_assert(!serve_host_ok("localhost:80", "192.0.2.7", 80));
	ck_assert(!serve_host_ok("127.0.0.1:80", "192.0.2.7", 80));
	/* IPv6 literals in brackets */
	ck_assert(serve_host_ok("[::1]:8470", "::1", 8470));
	ck_assert(!serve_host_ok("::1:8470", "::1", 8470));
}
END_TEST

START_TEST(test_relpath)
{
	static const char *const good[] = {
		".",	       "a", "a/b", "2026-11-30T00-47-29_split", "suite/fast/fast-1",
		"a.b/..c/c..", NULL};
	static const char *const bad[] = {"",	  "/",	    "/etc/passwd", "..",    "../a",
					  "a/..", "a/../b", "./a",	   "a/.",   "a/./b",
					  "a//b", "a/",	    "a\nb",	   "a\x7f", NULL};

	for (size_t i = 0; good[i]; i++)
		ck_assert_msg(serve_relpath_ok(good[i]), "refused '%s'", good[i]);
	for (size_t i = 0; bad[i]; i++)
		ck_assert_msg(!serve_relpath_ok(bad[i]), "accepted '%s'", bad[i]);
	ck_assert(!serve_relpath_ok(NULL));
}
END_TEST

static char tmp[PATH_MAX];

/* A directory (dir true) or a one-byte file at tmp/name. */
static void mk(bool dir, const char *name)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	if (dir) {
		ck_assert_int_eq(mkdir(p, 0700), 0);
	} else {
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "x", 1), 1);
		close(fd);
	}
}

static void ln(const char *target, const char *name)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	ck_assert_int_eq(symlink(target, p), 0);
}

static int try_open(const char *root, const char *rel, int flags)
{
	int fd = serve_open_beneath(root, rel, flags);

	if (fd >= 0)
		close(fd);
	return fd >= 0 ? 0 : fd;
}

START_TEST(test_open_beneath)
{
	char t[] = "/tmp/stoke-serve-test-XXXXXX", root[PATH_MAX * 2], *real;

	ck_assert_ptr_nonnull(mkdtemp(t));
	real = realpath(t, NULL);
	ck_assert_ptr_nonnull(real);
	snprintf(tmp, sizeof(tmp), "%s", real);
	free(real);
	/* tmp/served is the root; tmp/served2 shares its name as a prefix */
	mk(true, "served");
	mk(true, "served/run");
	mk(false, "served/run/run.json");
	mk(true, "served2");
	mk(false, "served2/secret");
	mk(false, "outside");
	ln("run.json", "served/run/inside-link");
	ln("../outside", "served/out-file");
	ln("/", "served/root-dir");
	ln("../served2", "served/prefix-sibling");
	snprintf(root, sizeof(root), "%s/served", tmp);

	ck_assert_int_eq(try_open(root, "run/run.json", O_RDONLY), 0);
	ck_assert_int_eq(try_open(root, "run", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_eq(try_open(root, ".", O_RDONLY | O_DIRECTORY), 0);
	/* a symlink that stays inside is fine */
	ck_assert_int_eq(try_open(root, "run/inside-link", O_RDONLY), 0);
	/* escapes through symlinks are seen after opening */
	ck_assert_int_eq(try_open(root, "out-file", O_RDONLY), -EACCES);
	ck_assert_int_eq(try_open(root, "root-dir/etc/passwd", O_RDONLY), -EACCES);
	ck_assert_int_eq(try_open(root, "root-dir", O_RDONLY | O_DIRECTORY), -EACCES);
	/* "/x/served2" starts with "/x/served" but is not inside it */
	ck_assert_int_eq(try_open(root, "prefix-sibling/secret", O_RDONLY), -EACCES);
	/* lexical refusals, before any open */
	ck_assert_int_eq(try_open(root, "../outside", O_RDONLY), -EINVAL);
	ck_assert_int_eq(try_open(root, "/etc/passwd", O_RDONLY), -EINVAL);
	ck_assert_int_eq(try_open(root, "run/../../outside", O_RDONLY), -EINVAL);
	ck_assert_int_eq(try_open(root, "missing", O_RDONLY), -ENOENT);
	ck_assert_int_eq(try_open("relative/root", "run", O_RDONLY), -EINVAL);

	{
		char cmd[PATH_MAX * 2 + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

START_TEST(test_url_encode)
{
	char *s = serve_url_encode("0/a b&c=d?e#f/é<\"");

	ck_assert_str_eq(s, "0/a%20b%26c%3Dd%3Fe%23f/%C3%A9%3C%22");
	free(s);
	s = serve_url_encode("");
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

/* Split cmd and compare with the expected words (NULL-terminated). */
static void check_split(const char *cmd, const char *const *want)
{
	char **argv = NULL;
	size_t n = 0, k = 0;

	ck_assert_int_eq(serve_split_command(cmd, 16, &argv, &n), 0);
	for (; want[k]; k++) {
		ck_assert_uint_lt(k, n);
		ck_assert_str_eq(argv[k], want[k]);
	}
	ck_assert_uint_eq(n, k);
	ck_assert_ptr_null(argv[n]);
	free(argv);
}

START_TEST(test_split_command)
{
	char **argv = NULL;
	size_t n = 0;

	check_split("./app --arg x", (const char *const[]){"./app", "--arg", "x", NULL});
	check_split("  a\t\tb \n", (const char *const[]){"a", "b", NULL});
	check_split("", (const char *const[]){NULL});
	check_split("   ", (const char *const[]){NULL});
	check_split("prog 'two words' \"and three words\"",
		    (const char *const[]){"prog", "two words", "and three words", NULL});
	check_split("a\\ b c", (const char *const[]){"a b", "c", NULL});
	check_split("x'' '' \"\"", (const char *const[]){"x", "", "", NULL});
	check_split("it's\\' 'q\"' \"s\\\"q\" \"b\\\\s\" \"\\n\"",
		    (const char *const[]){"its\\", "q\"", "s\"q", "b\\s", "\\n", NULL});
	/* Nothing is expanded: no variables, commands, globs or ~. */
	check_split(
		"echo $HOME `id` $(id) * ~ ;|&>",
		(const char *const[]){"echo", "$HOME", "`id`", "$(id)", "*", "~", ";|&>", NULL});
	check_split("a'b'\"c\"d", (const char *const[]){"abcd", NULL});
	ck_assert_int_eq(serve_split_command("a 'b", 16, &argv, &n), -EINVAL);
	ck_assert_int_eq(serve_split_command("a \"b", 16, &argv, &n), -EINVAL);
	ck_assert_int_eq(serve_split_command("a b\\", 16, &argv, &n), -EINVAL);
	ck_assert_int_eq(serve_split_command("a b c", 2, &argv, &n), -E2BIG);
	ck_assert_int_eq(serve_split_command("a b", 2, &argv, &n), 0);
	ck_assert_uint_eq(n, 2);
	free(argv);
}
END_TEST

START_TEST(test_record_opts)
{
	ck_assert_ptr_null(serve_record_opts_check(NULL, NULL, NULL));
	ck_assert_ptr_null(serve_record_opts_check("", "", ""));
	ck_assert_ptr_null(serve_record_opts_check("99", "dwarf", "1.5"));
	ck_assert_ptr_null(serve_record_opts_check("100000", "fp", ".5"));
	ck_assert_ptr_null(serve_record_opts_check("1", "auto", "86400"));
	ck_assert_ptr_nonnull(serve_record_opts_check("0", NULL, NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check("100001", NULL, NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check("-5", NULL, NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check(" 5", NULL, NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check("5x", NULL, NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, "lbr", NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, "dwarf,8192 -o x", NULL));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, NULL, "0"));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, NULL, "nan"));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, NULL, "inf"));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, NULL, "-1"));
	ck_assert_ptr_nonnull(serve_record_opts_check(NULL, NULL, "1e9"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("serve");
	TCase *tc = tcase_create("checks");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_token);
	tcase_add_test(tc, test_host);
	tcase_add_test(tc, test_relpath);
	tcase_add_test(tc, test_open_beneath);
	tcase_add_test(tc, test_url_encode);
	tcase_add_test(tc, test_split_command);
	tcase_add_test(tc, test_record_opts);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
