/*
 * Unit tests for the /proc/PID/maps parser (sampler/maps.c).
 *
 * Realistic lines are fed through fmemopen so the parser sees a FILE* exactly
 * as it would for /proc; the wrapper is checked against the test's own
 * /proc/self/maps, where it must find the mapping of this executable's code.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sampler/maps.h"

#define MAX_ENTRIES 16

/* Copies of what the callback saw (paths are only borrowed). */
struct seen {
	int n;
	int stop_at; /* stop (returning stop_value) at this entry, or -1 */
	int stop_value;
	struct stoke_maps_entry e[MAX_ENTRIES];
	char path[MAX_ENTRIES][9000];
};

static int collect(const struct stoke_maps_entry *e, void *userdata)
{
	struct seen *s = userdata;

	ck_assert_int_lt(s->n, MAX_ENTRIES);
	s->e[s->n] = *e;
	snprintf(s->path[s->n], sizeof(s->path[0]), "%s", e->path);
	s->e[s->n].path = s->path[s->n];
	if (s->n++ == s->stop_at)
		return s->stop_value;
	return 0;
}

static struct seen seen;

static void reset(void)
{
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = -1;
}

static int parse_string(const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int r;

	ck_assert_ptr_nonnull(f);
	reset();
	r = stoke_maps_parse(f, collect, &seen);
	fclose(f);
	return r;
}

static const char realistic[] =
	"55ea21498000-55ea2149a000 r--p 00000000 fe:00 247498                     /usr/bin/head\n"
	"55ea2149a000-55ea214a0000 r-xp 00002000 fe:00 247498                     /usr/bin/head\n"
	"56428f92b000-56428f94c000 rw-p 00000000 00:00 0                          [heap]\n"
	"7fcdc8a07000-7fcdc8acb000 rw-p 00000000 00:00 0 \n"
	"7f1c2e400000-7f1c2e428000 r-xs 00028000 103:02 1835023                   /home/u/My Files/lib thing.so\n"
	"7f1c2e600000-7f1c2e601000 rw-s 00000000 00:01 4096                       /memfd:jit (deleted)\n"
	"7ffc8a1f4000-7ffc8a1f8000 r--p 00000000 00:00 0                          [vvar]\n"
	"7ffc8a1f8000-7ffc8a1fa000 r-xp 00000000 00:00 0                          [vdso]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";

START_TEST(test_realistic)
{
	const struct stoke_maps_entry *e = seen.e;

	ck_assert_int_eq(parse_string(realistic), 0);
	ck_assert_int_eq(seen.n, 9);

	ck_assert_uint_eq(e[0].start, 0x55ea21498000);
	ck_assert_uint_eq(e[0].end, 0x55ea2149a000);
	ck_assert_uint_eq(e[0].prot, PROT_READ);
	ck_assert(!e[0].shared);
	ck_assert_uint_eq(e[0].maj, 0xfe);
	ck_assert_uint_eq(e[0].min, 0);
	ck_assert_uint_eq(e[0].ino, 247498);
	ck_assert_str_eq(e[0].path, "/usr/bin/head");

	ck_assert_uint_eq(e[1].pgoff, 0x2000);
	ck_assert_uint_eq(e[1].prot, PROT_READ | PROT_EXEC);

	ck_assert_str_eq(e[2].path, "[heap]");
	ck_assert_uint_eq(e[2].prot, PROT_READ | PROT_WRITE);

	/* Anonymous: nothing after the inode but a space. */
	ck_assert_str_eq(e[3].path, "");
	ck_assert_uint_eq(e[3].ino, 0);

	/* Spaces inside the path are kept, as is a shared mapping. */
	ck_assert_str_eq(e[4].path, "/home/u/My Files/lib thing.so");
	ck_assert(e[4].shared);
	ck_assert_uint_eq(e[4].maj, 0x103);
	ck_assert_uint_eq(e[4].min, 2);
	ck_assert_uint_eq(e[4].pgoff, 0x28000);
	ck_assert_uint_eq(e[4].ino, 1835023);

	ck_assert_str_eq(e[5].path, "/memfd:jit (deleted)");
	ck_assert_uint_eq(e[5].prot, PROT_READ | PROT_WRITE);

	ck_assert_str_eq(e[7].path, "[vdso]");
	ck_assert_uint_eq(e[7].prot, PROT_READ | PROT_EXEC);

	/* Last line without a newline; the top of the address space. */
	ck_assert_uint_eq(e[8].start, 0xffffffffff600000);
	ck_assert_uint_eq(e[8].prot, PROT_EXEC);
	ck_assert_str_eq(e[8].path, "[vsyscall]");
}
END_TEST

START_TEST(test_parse_line)
{
	char line[] = "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon";
	char trailing[] = "1000-2000 rw-p 00000000 00:00 0       /tmp/a b \n";
	struct stoke_maps_entry e;

	ck_assert_int_eq(stoke_maps_parse_line(line, &e), 0);
	ck_assert_uint_eq(e.start, 0x400000);
	ck_assert_uint_eq(e.end, 0x452000);
	ck_assert_uint_eq(e.maj, 8);
	ck_assert_uint_eq(e.min, 2);
	ck_assert_str_eq(e.path, "/usr/bin/dbus-daemon");
	ck_assert_ptr_eq(e.path, line + strlen(line) - strlen("/usr/bin/dbus-daemon"));

	/* Only the newline is removed: a trailing space is part of a name. */
	ck_assert_int_eq(stoke_maps_parse_line(trailing, &e), 0);
	ck_assert_str_eq(e.path, "/tmp/a b ");
}
END_TEST

static const char *const bad_lines[] = {
	"",
	"garbage",
	"1000-2000",
	"1000-2000 rwxq 00000000 00:00 0",   /* bad sharing flag */
	"1000-2000 rw 00000000 00:00 0",     /* short perms */
	"1000-2000 rwxpp 00000000 00:00 0",  /* long perms */
	"2000-1000 r--p 00000000 00:00 0",   /* end before start */
	"1000-2000 r--p 00000000 00:00",     /* no inode */
	"1000-2000 r--p 00000000 0000 0",    /* no colon */
	"1000-2000 r--p zz 00:00 0 /x",      /* offset not hex */
	"1000-2000 r--p 0 00:00 12ab /x",    /* inode not decimal */
	" 1000-2000 r--p 0 00:00 0 /x",      /* leading blank */
	"-1000-2000 r--p 0 00:00 0 /x",      /* sign */
	"1000-+2000 r--p 0 00:00 0 /x",
	"1000 2000 r--p 0 00:00 0 /x",
	"1000-2000 r--p 0 100000000:00 0 /x", /* maj does not fit */
	"10000000000000000-10000000000000001 r--p 0 00:00 0", /* > u64 */
};

START_TEST(test_parse_line_bad)
{
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		char line[128];
		struct stoke_maps_entry e = { .start = 77 };

		snprintf(line, sizeof(line), "%s", bad_lines[i]);
		ck_assert_msg(stoke_maps_parse_line(line, &e) == -EINVAL,
			      "accepted '%s'", bad_lines[i]);
		ck_assert_uint_eq(e.start, 77); /* untouched on failure */
	}
}
END_TEST

START_TEST(test_malformed_counted)
{
	const char text[] = "garbage line\n"
			    "1000-2000 r-xp 00000000 08:01 12 /bin/a\n"
			    "\n"
			    "1000-2000 r--p 00000000 00:00\n"
			    "3000-4000 r--p 00001000 08:01 12 /bin/a\n"
			    "zzzz\n";

	ck_assert_int_eq(parse_string(text), 4);
	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.e[0].path, "/bin/a");
	ck_assert_uint_eq(seen.e[1].start, 0x3000);
	ck_assert_uint_eq(seen.e[1].pgoff, 0x1000);

	ck_assert_int_eq(parse_string(""), 0);
	ck_assert_int_eq(seen.n, 0);
}
END_TEST

START_TEST(test_stop)
{
	FILE *f = fmemopen((void *)realistic, strlen(realistic), "r");

	reset();
	seen.stop_at = 1;
	seen.stop_value = 42;
	ck_assert_int_eq(stoke_maps_parse(f, collect, &seen), 42);
	ck_assert_int_eq(seen.n, 2);
	fclose(f);

	/* Negative stop values are passed through too. */
	f = fmemopen((void *)realistic, strlen(realistic), "r");
	reset();
	seen.stop_at = 4;
	seen.stop_value = -ECANCELED;
	ck_assert_int_eq(stoke_maps_parse(f, collect, &seen), -ECANCELED);
	ck_assert_int_eq(seen.n, 5);
	fclose(f);
}
END_TEST

/* A path near PATH_MAX, longer than any fixed line buffer would be. */
START_TEST(test_long_line)
{
	size_t plen = 8000;
	char *text = malloc(plen + 128);
	char *path;
	int n;

	ck_assert_ptr_nonnull(text);
	n = sprintf(text, "1000-2000 r--p 00000000 08:01 99 ");
	path = text + n;
	path[0] = '/';
	memset(path + 1, 'a', plen - 1);
	strcpy(path + plen, "\n");
	ck_assert_int_eq(parse_string(text), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_uint_eq(strlen(seen.e[0].path), plen);
	ck_assert_int_eq(strncmp(seen.e[0].path, path, plen), 0);
	free(text);
}
END_TEST

START_TEST(test_read_error)
{
	/* Reading a directory fails with EISDIR. */
	FILE *f = fopen("/", "re");

	ck_assert_ptr_nonnull(f);
	reset();
	ck_assert_int_lt(stoke_maps_parse(f, collect, &seen), 0);
	fclose(f);
	ck_assert_int_eq(stoke_maps_parse(NULL, collect, &seen), -EINVAL);
}
END_TEST

/* What the wrapper test looks for: our own code. */
struct self_find {
	uintptr_t addr;
	char exe[PATH_MAX];
	bool found;
	int entries;
};

static int find_self(const struct stoke_maps_entry *e, void *userdata)
{
	struct self_find *s = userdata;

	s->entries++;
	if (s->addr < e->start || s->addr >= e->end)
		return 0;
	ck_assert(e->prot & PROT_EXEC);
	ck_assert_str_eq(e->path, s->exe);
	ck_assert_uint_ne(e->ino, 0);
	s->found = true;
	return 1; /* stop: found */
}

START_TEST(test_proc_self)
{
	struct self_find s = { .addr = (uintptr_t)&find_self };
	ssize_t n = readlink("/proc/self/exe", s.exe, sizeof(s.exe) - 1);

	ck_assert_int_gt(n, 0);
	s.exe[n] = '\0';
	ck_assert_int_eq(stoke_maps_read_pid(getpid(), find_self, &s), 1);
	ck_assert(s.found);
	ck_assert_int_gt(s.entries, 1);
}
END_TEST

START_TEST(test_proc_errors)
{
	reset();
	/* Above any pid_max the kernel allows (2^22). */
	ck_assert_int_eq(stoke_maps_read_pid(0x7ffffff0, collect, &seen), -ESRCH);
	ck_assert_int_eq(stoke_maps_read_pid(0, collect, &seen), -EINVAL);
	ck_assert_int_eq(stoke_maps_read_pid(-1, collect, &seen), -EINVAL);
	ck_assert_int_eq(seen.n, 0);
}
END_TEST

static Suite *maps_suite(void)
{
	Suite *s = suite_create("maps");
	TCase *tc = tcase_create("parse");
	TCase *proc = tcase_create("proc");

	tcase_add_test(tc, test_realistic);
	tcase_add_test(tc, test_parse_line);
	tcase_add_test(tc, test_parse_line_bad);
	tcase_add_test(tc, test_malformed_counted);
	tcase_add_test(tc, test_stop);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_read_error);
	suite_add_tcase(s, tc);

	tcase_add_test(proc, test_proc_self);
	tcase_add_test(proc, test_proc_errors);
	suite_add_tcase(s, proc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(maps_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
