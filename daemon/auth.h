/*
 * Who may profile what: stoked runs as root, so an attach is allowed only
 * when the requester could ptrace-read the target itself (DESIGN.md):
 *
 *   - the requester is root, or a member of stoked's --admin-group, both
 *     as the kernel recorded them when it connected (SO_PEERCRED,
 *     SO_PEERGROUPS), or
 *   - its uid equals the target's real, effective and saved uids, and the
 *     target is dumpable (setuid programs and processes that called
 *     prctl(PR_SET_DUMPABLE, 0) are not).
 *
 * The decision (stoke_auth_check) and the /proc/PID/status parser are pure
 * functions so that the unit tests cover every rule; the readers around
 * them only gather the facts from the socket and /proc.
 *
 * Why CAP_SYS_PTRACE alone no longer counts (issue #12): a capability can
 * only be read from /proc/PID/status, at accept time or later, not as it
 * was at connect(). Between the two, the connected process may exec a
 * binary with file capabilities while another process that shares the
 * socket sends the requests: the daemon would credit the requests with a
 * privilege their sender never had. The uid, gid and groups the kernel
 * records at connect() cannot be changed afterwards, so privilege beyond
 * "one's own processes" comes from those: root, or the admin group.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The process on the other end of a client socket. */
struct stoke_auth_requester {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool admin; /* in the admin group at connect time: may profile anything */
};

/* What the check needs to know about a target process. */
struct stoke_auth_target {
	pid_t pid;
	uid_t ruid, euid, suid;
	bool dumpable;
};

/* The Uid:, Gid: and CapEff: lines of a /proc/PID/status text. */
struct stoke_proc_status {
	uid_t uid[4]; /* real, effective, saved, filesystem */
	gid_t gid[4];
	uint64_t cap_eff;
};

/* Parse /proc/PID/status text (len bytes, no NUL needed). Returns 0, or
 * -EINVAL when the Uid, Gid or CapEff line is missing or malformed. */
int stoke_auth_parse_status(const char *text, size_t len, struct stoke_proc_status *ret);

/*
 * The decision. Returns 0 when req may profile target, or -EPERM with a
 * one-line reason in why (always NUL-terminated when whylen > 0) that can be
 * shown to the requester: it names the rule that failed but nothing about
 * the target beyond what `ls -ln /proc/PID` shows anyway.
 */
int stoke_auth_check(const struct stoke_auth_requester *req, const struct stoke_auth_target *target,
		     char *why, size_t whylen);

/*
 * Read the peer credentials of a connected UNIX socket as they were at
 * connect() (SO_PEERCRED) and whether the peer's gid or one of its
 * supplementary groups then (SO_PEERGROUPS) was admin_gid ((gid_t)-1: no
 * admin group). Returns 0 or -errno.
 */
int stoke_auth_peer(int sockfd, gid_t admin_gid, struct stoke_auth_requester *ret);

/*
 * Gather the facts about pid from /proc: its uids from status, and whether
 * it is dumpable, which the kernel shows as the owner of /proc/PID (root
 * when not dumpable, the effective uid otherwise). Returns 0, -ESRCH, or
 * another -errno.
 */
int stoke_auth_read_target(pid_t pid, struct stoke_auth_target *ret);

/* stoke_auth_read_target + stoke_auth_check. -ESRCH when there is no such
 * process (why says so too). */
int stoke_auth_may_attach(const struct stoke_auth_requester *req, pid_t pid, char *why,
			  size_t whylen);
