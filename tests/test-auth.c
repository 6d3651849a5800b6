/*
 * Unit tests for stoked's authorization (daemon/auth.h): the
 * /proc/PID/status parser on real and broken texts, every rule of the
 * decision, and, on real processes, the facts the readers gather: a child
 * that drops to another uid, one that makes itself non-dumpable, and the
 * peer credentials and CAP_SYS_PTRACE of a client on a UNIX socket.
 *
 * The real-process tests need root to switch uids; without root they check
 * what an unprivileged user can (its own process) instead.
 */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/auth.h"

#define NOBODY 65534

static const char status_text[] = "Name:\tcat\n"
				  "Umask:\t0022\n"
				  "State:\tR (running)\n"
				  "Tgid:\t4242\n"
				  "Uid:\t1000\t1001\t1002\t1003\n"
				  "Gid:\t100\t101\t102\t103\n"
				  "Groups:\t4 24 27\n"
				  "CapInh:\t0000000000000000\n"
				  "CapPrm:\t0000000000000000\n"
				  "CapEff:\t000001ffffffffff\n"
				  "CapBnd:\t000001ffffffffff\n";

START_TEST(test_parse_status)
{
	struct stoke_proc_status st;

	ck_assert_int_eq(stoke_auth_parse_status(status_text, sizeof(status_text) - 1, &st), 0);
	ck_assert_uint_eq(st.uid[0], 1000);
	ck_assert_uint_eq(st.uid[1], 1001);
	ck_assert_uint_eq(st.uid[2], 1002);
	ck_assert_uint_eq(st.uid[3], 1003);
	ck_assert_uint_eq(st.gid[0], 100);
	ck_assert_uint_eq(st.gid[3], 103);
	ck_assert(st.cap_eff == 0x1ffffffffffULL);
	/* No trailing newline, and a length that cuts before the end. */
	ck_assert_int_eq(stoke_auth_parse_status("Uid: 1 2 3 4\nGid: 5 6 7 8\nCapEff: 0", 35, &st),
			 0);
	ck_assert_uint_eq(st.uid[3], 4);
	ck_assert_int_eq(stoke_auth_parse_status("Uid: 1 2 3 4\nGid: 5 6 7 8\nCapEff: 0", 30, &st),
			 -EINVAL);
}
END_TEST

static void broken(const char *text)
{
	struct stoke_proc_status st;

	ck_assert_msg(stoke_auth_parse_status(text, strlen(text), &st) == -EINVAL, "accepted %s",
		      text);
}

START_TEST(test_parse_status_broken)
{
	broken("");
	broken("Name:\tx\n");
	broken("Uid:\t1\t2\t3\nGid:\t1\t2\t3\t4\nCapEff:\t0\n");       /* 3 uids */
	broken("Uid:\t1\t2\t3\t4\t5\nGid:\t1\t2\t3\t4\nCapEff:\t0\n"); /* 5 uids */
	broken("Uid:\t1\tx\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t0\n");
	broken("Uid:\t-1\t2\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t0\n");
	broken("Uid:\t99999999999\t2\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t0\n");
	broken("Uid:\t1\t2\t3\t4\nCapEff:\t0\n");	/* no Gid */
	broken("Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\n"); /* no CapEff */
	broken("Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t\n");
	broken("Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t00000000000000001\n"); /* 17 digits */
	broken("Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t12g4\n");
	/* "XUid:" is not "Uid:" */
	broken("XUid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\nCapEff:\t0\n");
}
END_TEST

static int check(uid_t req_uid, bool cap, uid_t r, uid_t e, uid_t s, bool dumpable, char *why,
		 size_t len)
{
	struct stoke_auth_requester req = {.pid = 1, .uid = req_uid, .admin = cap};
	struct stoke_auth_target t = {
		.pid = 4242, .ruid = r, .euid = e, .suid = s, .dumpable = dumpable};

	return stoke_auth_check(&req, &t, why, len);
}

START_TEST(test_rules)
{
	char why[256];

	/* root and the admin group: anything, even non-dumpable root processes */
	ck_assert_int_eq(check(0, false, 0, 0, 0, false, why, sizeof(why)), 0);
	ck_assert_str_eq(why, "");
	ck_assert_int_eq(check(1000, true, 0, 0, 0, false, why, sizeof(why)), 0);
	/* same uid everywhere and dumpable */
	ck_assert_int_eq(check(1000, false, 1000, 1000, 1000, true, why, sizeof(why)), 0);
	/* another user's process */
	ck_assert_int_eq(check(1000, false, 0, 0, 0, false, why, sizeof(why)), -EPERM);
	ck_assert_ptr_nonnull(strstr(why, "does not belong to uid 1000"));
	ck_assert_ptr_nonnull(strstr(why, "4242"));
	ck_assert_int_eq(check(1000, false, 1001, 1001, 1001, true, why, sizeof(why)), -EPERM);
	/* one differing id is enough: a setuid program run by 1000 (euid 0),
	 * or one that dropped to 1000 but kept a saved uid of 0 */
	ck_assert_int_eq(check(1000, false, 1000, 0, 0, false, why, sizeof(why)), -EPERM);
	ck_assert_int_eq(check(1000, false, 1000, 1000, 0, true, why, sizeof(why)), -EPERM);
	ck_assert_int_eq(check(1000, false, 0, 1000, 1000, true, why, sizeof(why)), -EPERM);
	ck_assert_ptr_nonnull(strstr(why, "real, effective and saved"));
	/* own process, but not dumpable */
	ck_assert_int_eq(check(1000, false, 1000, 1000, 1000, false, why, sizeof(why)), -EPERM);
	ck_assert_ptr_nonnull(strstr(why, "not dumpable"));
	/* no reason buffer */
	ck_assert_int_eq(check(1000, false, 0, 0, 0, false, NULL, 0), -EPERM);
}
END_TEST

/* A child that becomes uid (if we are root), optionally non-dumpable,
 * then waits on a pipe to be killed. Returns its pid once it is ready. */
static pid_t spawn_as(uid_t uid, bool dumpable)
{
	int p[2];
	pid_t pid;
	char c;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (geteuid() == 0 && uid != 0 && setresuid(uid, uid, uid) < 0)
			_exit(1);
		/* Changing uids resets dumpable to fs.suid_dumpable (0), as
		 * for a daemon that drops privileges; set what is wanted. */
		prctl(PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0);
		(void)!write(p[1], "r", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

START_TEST(test_read_target)
{
	uid_t me = geteuid(), other = me == 0 ? NOBODY : me;
	struct stoke_auth_requester req = {.uid = other};
	struct stoke_auth_target t;
	char why[256];
	pid_t pid;

	pid = spawn_as(other, true);
	ck_assert_int_eq(stoke_auth_read_target(pid, &t), 0);
	ck_assert_int_eq(t.pid, pid);
	ck_assert_uint_eq(t.ruid, other);
	ck_assert_uint_eq(t.euid, other);
	ck_assert_uint_eq(t.suid, other);
	ck_assert(t.dumpable);
	ck_assert_int_eq(stoke_auth_may_attach(&req, pid, why, sizeof(why)), 0);
	reap(pid);

	pid = spawn_as(other, false);
	ck_assert_int_eq(stoke_auth_read_target(pid, &t), 0);
	ck_assert(!t.dumpable);
	ck_assert_int_eq(stoke_auth_may_attach(&req, pid, why, sizeof(why)), -EPERM);
	ck_assert_ptr_nonnull(strstr(why, "not dumpable"));
	reap(pid);

	if (me == 0) {
		/* nobody may not profile a root process (the test itself) */
		ck_assert_int_eq(stoke_auth_may_attach(&req, getpid(), why, sizeof(why)), -EPERM);
		ck_assert_ptr_nonnull(strstr(why, "does not belong"));
	}
}
END_TEST

START_TEST(test_no_such_process)
{
	struct stoke_auth_requester req = {.uid = 0};
	struct stoke_auth_target t;
	char why[128];
	pid_t pid = spawn_as(geteuid(), true);

	reap(pid); /* a pid that existed and is gone */
	ck_assert_int_eq(stoke_auth_read_target(pid, &t), -ESRCH);
	ck_assert_int_eq(stoke_auth_may_attach(&req, pid, why, sizeof(why)), -ESRCH);
	ck_assert_ptr_nonnull(strstr(why, "no such process"));
}
END_TEST

/* Connect to path as uid, with CAP_SYS_PTRACE kept or not, in the
 * supplementary group group (or none: (gid_t)-1); the child waits until the
 * parent has looked at the connection. */
static pid_t connect_as(const char *path, uid_t uid, bool keep_ptrace, gid_t group)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd;
		char c;

		if (keep_ptrace && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			_exit(2);
		if (setgroups(group == (gid_t)-1 ? 0 : 1, &group) < 0)
			_exit(6);
		if (setresuid(uid, uid, uid) < 0)
			_exit(3);
		if (keep_ptrace) {
			struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
			struct __user_cap_data_struct d[2] = {{0}};

			d[0].effective = d[0].permitted = 1u << CAP_SYS_PTRACE;
			if (syscall(SYS_capset, &h, d) < 0)
				_exit(4);
		}
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(5);
		(void)!read(fd, &c, 1);
		_exit(0);
	}
	return pid;
}

static void peer_case(int lfd, const char *path, uid_t uid, bool keep, gid_t group,
		      gid_t admin_gid, bool expect_admin)
{
	struct stoke_auth_requester req;
	pid_t pid = connect_as(path, uid, keep, group);
	int status, fd = accept(lfd, NULL, NULL);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(stoke_auth_peer(fd, admin_gid, &req), 0);
	ck_assert_int_eq(req.pid, pid);
	ck_assert_uint_eq(req.uid, uid);
	ck_assert_msg(req.admin == expect_admin, "uid %u keep %d group %d: admin %d", uid, keep,
		      (int)group, req.admin);
	close(fd);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: %d", status);
}

START_TEST(test_peer)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stoke_auth_requester req;
	char dir[] = "/tmp/stoke-auth-XXXXXX";
	int sv[2], lfd;

	/* socketpair: the credentials are our own */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(stoke_auth_peer(sv[0], (gid_t)-1, &req), 0);
	ck_assert_int_eq(req.pid, getpid());
	ck_assert_uint_eq(req.uid, geteuid());
	ck_assert_uint_eq(req.gid, getegid());
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(stoke_auth_peer(-1, (gid_t)-1, &req), -EBADF);

	if (geteuid() != 0)
		return; /* switching uids needs root; the rest is covered above */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(chmod(sa.sun_path, 0666), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	peer_case(lfd, sa.sun_path, NOBODY, false, (gid_t)-1, (gid_t)-1, false);
	/* CAP_SYS_PTRACE does not count: it can only be read after connect()
	 * (from /proc), when the peer may have gained it by an exec that the
	 * sender of the requests never made (auth.h). */
	peer_case(lfd, sa.sun_path, NOBODY, true, (gid_t)-1, 4321, false);
	/* The admin group, as the kernel recorded the groups at connect(). */
	peer_case(lfd, sa.sun_path, NOBODY, false, 4321, 4321, true);
	peer_case(lfd, sa.sun_path, NOBODY, false, 4322, 4321, false);
	peer_case(lfd, sa.sun_path, NOBODY, false, 4321, (gid_t)-1, false);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_status);
	tcase_add_test(tc, test_parse_status_broken);
	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_read_target);
	tcase_add_test(tc, test_no_such_process);
	tcase_add_test(tc, test_peer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
