/*
 * Authorization for stoked: the "could the requester ptrace-read it?" rule
 * (auth.h), the /proc/PID/status parser it rests on, and the readers that
 * gather the facts from the client socket and /proc.
 *
 * The facts are read from /proc, so they can go stale between the check and
 * the attach (the target may exit and its pid be reused, or exec a setuid
 * program). The daemon therefore holds a pidfd on the target across the
 * check and the attach, and checks again afterwards and periodically; this
 * file only answers "may, right now".
 */
#include "daemon/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

/* Find "Key:" at the start of a line; returns the text after it. */
static const char *find_line(const char *text, size_t len, const char *key, size_t *ret_len)
{
	size_t klen = strlen(key);
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		if ((size_t)(eol - p) > klen && !memcmp(p, key, klen)) {
			*ret_len = (size_t)(eol - p) - klen;
			return p + klen;
		}
		p = eol + 1;
	}
	return NULL;
}

/* Four decimal ids separated by tabs/spaces, nothing else. */
static int parse_ids(const char *s, size_t len, uint32_t out[4])
{
	char buf[128];
	char *p, *end;

	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	p = buf;
	for (int i = 0; i < 4; i++) {
		unsigned long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v > UINT32_MAX)
			return -EINVAL;
		out[i] = (uint32_t)v;
		p = end;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	return *p ? -EINVAL : 0;
}

static int parse_hex64(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0, digits = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	for (; i < len; i++, digits++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		if (digits == 16)
			return -EINVAL;
		v = v << 4 | d;
	}
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (!digits || i != len)
		return -EINVAL;
	*ret = v;
	return 0;
}

int stoke_auth_parse_status(const char *text, size_t len, struct stoke_proc_status *ret)
{
	struct stoke_proc_status st;
	uint32_t ids[4];
	const char *v;
	size_t vlen;

	v = find_line(text, len, "Uid:", &vlen);
	if (!v || parse_ids(v, vlen, ids) < 0)
		return -EINVAL;
	for (int i = 0; i < 4; i++)
		st.uid[i] = (uid_t)ids[i];
	v = find_line(text, len, "Gid:", &vlen);
	if (!v || parse_ids(v, vlen, ids) < 0)
		return -EINVAL;
	for (int i = 0; i < 4; i++)
		st.gid[i] = (gid_t)ids[i];
	v = find_line(text, len, "CapEff:", &vlen);
	if (!v || parse_hex64(v, vlen, &st.cap_eff) < 0)
		return -EINVAL;
	*ret = st;
	return 0;
}

__attribute__((format(printf, 3, 4))) static int deny(char *why, size_t whylen, const char *fmt,
						      ...)
{
	va_list ap;

	if (whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EPERM;
}

int stoke_auth_check(const struct stoke_auth_requester *req, const struct stoke_auth_target *t,
		     char *why, size_t whylen)
{
	if (whylen)
		why[0] = '\0';
	if (req->uid == 0 || req->admin)
		return 0;
	if (t->ruid != req->uid || t->euid != req->uid || t->suid != req->uid)
		return deny(why, whylen,
			    "permission denied: process %d does not belong to uid %u (its real, "
			    "effective and saved uids must all be yours; or ask root)",
			    t->pid, (unsigned)req->uid);
	if (!t->dumpable)
		return deny(why, whylen,
			    "permission denied: process %d is not dumpable (setuid, or it "
			    "called prctl(PR_SET_DUMPABLE, 0)); only root may profile it",
			    t->pid);
	return 0;
}

/* Whether gid is among the supplementary groups the peer had at
 * connect(). */
static bool peer_in_group(int sockfd, gid_t gid)
{
	gid_t small[64];
	_cleanup_free_ gid_t *big = NULL;
	gid_t *groups = small;
	socklen_t len = sizeof(small);

	if (getsockopt(sockfd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		if (errno != ERANGE || len == 0 || len > 65536 * sizeof(gid_t))
			return false;
		big = malloc(len);
		if (!big)
			return false;
		groups = big;
		if (getsockopt(sockfd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			return false;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int stoke_auth_peer(int sockfd, gid_t admin_gid, struct stoke_auth_requester *ret)
{
	struct stoke_auth_requester req = {0};
	struct ucred uc;
	socklen_t len = sizeof(uc);

	/* The kernel recorded these at connect(); nothing the peer does
	 * afterwards (setgroups, exec of a privileged binary) changes them. */
	if (getsockopt(sockfd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	req.pid = uc.pid;
	req.uid = uc.uid;
	req.gid = uc.gid;
	if (admin_gid != (gid_t)-1 && uc.uid != 0)
		req.admin = uc.gid == admin_gid || peer_in_group(sockfd, admin_gid);
	*ret = req;
	return 0;
}

int stoke_auth_read_target(pid_t pid, struct stoke_auth_target *ret)
{
	struct stoke_proc_status st;
	_cleanup_close_ int fd = -1;
	struct stat fst;
	char path[64], buf[8192];
	size_t len = 0;
	int r;

	/* The facts and the owner come from one open file, so they describe
	 * the same process. */
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (fstat(fd, &fst) < 0)
		return -errno;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == ESRCH ? -ESRCH : -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = stoke_auth_parse_status(buf, len, &st);
	if (r < 0)
		return r;
	*ret = (struct stoke_auth_target){
		.pid = pid,
		.ruid = st.uid[0],
		.euid = st.uid[1],
		.suid = st.uid[2],
		/* task_dump_owner(): the files under /proc/PID belong to the
		 * effective uid of a dumpable task and to root otherwise (the
		 * /proc/PID directory itself does not follow this). A
		 * root-owned target is never let through by the uid rule
		 * anyway, as the requester is then root. */
		.dumpable = fst.st_uid == st.uid[1] && st.uid[1] != 0,
	};
	return 0;
}

int stoke_auth_may_attach(const struct stoke_auth_requester *req, pid_t pid, char *why,
			  size_t whylen)
{
	struct stoke_auth_target t;
	int r = stoke_auth_read_target(pid, &t);

	if (r < 0) {
		if (whylen)
			snprintf(why, whylen, "%s: process %d",
				 r == -ESRCH ? "no such process" : strerror(-r), pid);
		return r;
	}
	return stoke_auth_check(req, &t, why, whylen);
}
