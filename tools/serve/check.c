/*
 * stoke serve's request checks (see check.h). Nothing here knows HTTP: the
 * server calls these before it reads or runs anything for a request.
 */
#include "tools/serve/check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

int serve_token_new(char *buf)
{
	unsigned char raw[SERVE_TOKEN_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

bool serve_token_equal(const char *expected, const char *given)
{
	size_t n = strlen(expected);
	unsigned char diff = 0;

	if (!given || !*given || strlen(given) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)expected[i] ^ (unsigned char)given[i];
	return diff == 0;
}

static bool is_loopback(const char *addr)
{
	return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1");
}

/* Whether host is exactly name ":" port (name compared without case, as
 * host names are). */
static bool host_is(const char *host, const char *name, unsigned port)
{
	size_t n = strlen(name);
	char want[16];

	if (strncasecmp(host, name, n))
		return false;
	snprintf(want, sizeof(want), ":%u", port);
	return !strcmp(host + n, want);
}

bool serve_host_ok(const char *host, const char *addr, unsigned port)
{
	char bracketed[64];

	if (!host || !*host)
		return false;
	if (strchr(addr, ':')) {
		/* An IPv6 literal appears in brackets in a Host header. */
		snprintf(bracketed, sizeof(bracketed), "[%s]", addr);
		if (host_is(host, bracketed, port))
			return true;
	} else if (host_is(host, addr, port)) {
		return true;
	}
	return is_loopback(addr) && host_is(host, "localhost", port);
}

bool serve_relpath_ok(const char *rel)
{
	const char *p = rel;

	if (!rel || !*rel)
		return false;
	if (!strcmp(rel, "."))
		return true;
	if (*rel == '/')
		return false;
	for (const char *c = rel; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/') {
			p++;
			if (!*p)
				return false; /* trailing slash */
		}
	}
	return true;
}

int serve_open_beneath(const char *root, const char *rel, int flags)
{
	char link[64], real[PATH_MAX];
	size_t rootlen = strlen(root);
	ssize_t n;
	int dfd, fd;

	if (!serve_relpath_ok(rel) || root[0] != '/')
		return -EINVAL;
	dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, rel, flags | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;

		close(dfd);
		return e;
	}
	close(dfd);
	/* The check is on what was opened, not on the name: a symlink (or a
	 * directory renamed meanwhile) may have led anywhere. */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, real, sizeof(real) - 1);
	if (n < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	real[n] = '\0';
	if (rootlen == 1 && root[0] == '/')
		return fd;
	if (strncmp(real, root, rootlen) || (real[rootlen] != '\0' && real[rootlen] != '/')) {
		close(fd);
		return -EACCES;
	}
	return fd;
}

char *serve_url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || strchr("-._~/", *c)) {
			*o++ = (char)*c;
		} else {
			*o++ = '%';
			*o++ = hex[*c >> 4];
			*o++ = hex[*c & 15];
		}
	}
	*o = '\0';
	return out;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int serve_split_command(const char *cmd, size_t max, char ***ret, size_t *ret_n)
{
	size_t len = strlen(cmd), n = 0;
	/* The words take at most the line's bytes plus one NUL each word
	 * beyond what the separators and quotes they replace gave back. */
	char **argv = malloc((max + 1) * sizeof(*argv) + len + 1);
	char *out, *w = NULL;
	enum { BARE, SINGLE, DOUBLE } st = BARE;

	if (!argv)
		return -ENOMEM;
	out = (char *)(argv + max + 1);
	for (const char *p = cmd;; p++) {
		char c = *p;

		if (c == '\0' && st != BARE) {
			free(argv);
			return -EINVAL;
		}
		if (st == BARE && (c == '\0' || is_blank(c))) {
			if (w) {
				*out++ = '\0';
				argv[n++] = w;
				w = NULL;
			}
			if (c == '\0')
				break;
			continue;
		}
		if (!w) {
			if (n == max) {
				free(argv);
				return -E2BIG;
			}
			w = out;
		}
		if (st == SINGLE) {
			if (c == '\'')
				st = BARE;
			else
				*out++ = c;
		} else if (st == DOUBLE) {
			if (c == '"') {
				st = BARE;
			} else if (c == '\\' && p[1] && strchr("\"\\$`\n", p[1])) {
				if (*++p != '\n')
					*out++ = *p;
			} else {
				*out++ = c;
			}
		} else if (c == '\'') {
			st = SINGLE;
		} else if (c == '"') {
			st = DOUBLE;
		} else if (c == '\\') {
			if (!p[1]) {
				free(argv);
				return -EINVAL;
			}
			if (*++p != '\n')
				*out++ = *p;
		} else {
			*out++ = c;
		}
	}
	argv[n] = NULL;
	*ret = argv;
	*ret_n = n;
	return 0;
}

const char *serve_record_opts_check(const char *freq, const char *call_graph, const char *duration)
{
	char *end;

	if (freq && *freq) {
		long v;

		errno = 0;
		v = strtol(freq, &end, 10);
		if (errno || *end || v < 1 || v > 100000 || !(*freq >= '0' && *freq <= '9'))
			return "the frequency is a whole number of Hz from 1 to 100000";
	}
	if (call_graph && *call_graph && strcmp(call_graph, "fp") && strcmp(call_graph, "dwarf") &&
	    strcmp(call_graph, "auto"))
		return "the call graph mode is fp, dwarf or auto";
	if (duration && *duration) {
		double v;

		errno = 0;
		v = strtod(duration, &end);
		if (errno || *end || !(v > 0) || v > 86400 ||
		    !((*duration >= '0' && *duration <= '9') || *duration == '.'))
			return "the duration is a number of seconds above 0, up to 86400";
	}
	return NULL;
}
