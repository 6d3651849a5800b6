/*
 * Atomic output files. The temporary lives in the destination directory so
 * the final rename never crosses a filesystem.
 */
#include "common/atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void atomic_reset(struct stoke_atomic_file *af)
{
	free(af->tmp_path);
	free(af->path);
	free(af->cookie);
	af->tmp_path = NULL;
	af->path = NULL;
	af->cookie = NULL;
	af->f = NULL;
}

/*
 * The stream writes through this cookie so that the first write error keeps
 * its errno: stdio only remembers "an error happened", and by the time a
 * writer notices ferror() errno may have been overwritten, which made a full
 * disk (ENOSPC) look like EIO.
 */
struct atomic_cookie {
	int fd;
	int err;        /* first write errno, 0 if none */
	bool keep_open; /* stdout */
};

static ssize_t cookie_write(void *c, const char *buf, size_t size)
{
	struct atomic_cookie *ck = c;
	size_t done = 0;

	while (done < size) {
		ssize_t n = write(ck->fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!ck->err)
				ck->err = n < 0 ? errno : ENOSPC;
			errno = ck->err;
			/* glibc treats a short count as an error too; report
			 * what did reach the file. */
			return done ? (ssize_t)done : -1;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int cookie_close(void *c)
{
	struct atomic_cookie *ck = c;

	return ck->keep_open ? 0 : close(ck->fd);
}

int stoke_atomic_error(const struct stoke_atomic_file *af, int r)
{
	const struct atomic_cookie *ck = af->cookie;

	if (r == -EIO && ck && ck->err)
		return -ck->err;
	return r;
}

int stoke_atomic_check(int dirfd, const char *path, char **ret_target)
{
	struct stat st;

	*ret_target = NULL;
	if (strcmp(path, "-") == 0)
		return 0;
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode))
		return 0;
	if (!S_ISLNK(st.st_mode) || dirfd != AT_FDCWD)
		return -STOKE_ENOTREG;
	/* A symlink is followed to the regular file it names: that file is
	 * replaced (in its own directory) and the link is kept, as a shell's
	 * '>' would. A dangling link or one to anything else is refused. */
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return -STOKE_ENOTREG;
	*ret_target = realpath(path, NULL);
	return *ret_target ? 0 : -errno;
}

const char *stoke_atomic_strerror(int r)
{
	if (r == -STOKE_ENOTREG)
		return "not a regular file (stoke only replaces regular files; -o - writes to "
		       "stdout)";
	return strerror(-r);
}

int stoke_atomic_open(const char *path, struct stoke_atomic_file *af)
{
	return stoke_atomic_openat(AT_FDCWD, path, af);
}

/* mkostemp has no *at variant: try random names with O_EXCL ourselves. */
static int tmp_openat(int dirfd, char *tmpl)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t len = strlen(tmpl);
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)tmpl;
	for (int attempt = 0; attempt < 100; attempt++) {
		int fd;

		for (size_t i = len - 6; i < len; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			tmpl[i] = chars[(x >> 33) % (sizeof(chars) - 1)];
		}
		fd = openat(dirfd, tmpl, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

int stoke_atomic_openat(int dirfd, const char *path, struct stoke_atomic_file *af)
{
	char *target = NULL;
	const char *slash, *base;
	struct atomic_cookie *ck;
	size_t dirlen;
	int fd, r;

	memset(af, 0, sizeof(*af));
	af->dirfd = dirfd;
	if (strcmp(path, "-") == 0) {
		/* stdout through a cookie of its own too, for the real errno
		 * of a failed write (`> /dev/full` is ENOSPC, not EIO). */
		fflush(stdout);
		af->cookie = ck = calloc(1, sizeof(*ck));
		if (!ck)
			return -ENOMEM;
		ck->fd = STDOUT_FILENO;
		ck->keep_open = true;
		af->f = fopencookie(ck, "w", (cookie_io_functions_t){ .write = cookie_write,
								     .close = cookie_close });
		if (!af->f) {
			atomic_reset(af);
			return -ENOMEM;
		}
		return 0;
	}
	r = stoke_atomic_check(dirfd, path, &target);
	if (r < 0)
		return r;
	if (target)
		path = target;
	slash = strrchr(path, '/');
	dirlen = slash ? (size_t)(slash - path + 1) : 0;
	base = path + dirlen;
	if (!*base) {
		free(target);
		return -EISDIR;
	}
	af->path = target ? target : strdup(path);
	af->tmp_path = malloc(dirlen + strlen(base) + 10);
	af->cookie = ck = calloc(1, sizeof(*ck));
	if (!af->path || !af->tmp_path || !ck) {
		atomic_reset(af);
		return -ENOMEM;
	}
	memcpy(af->tmp_path, path, dirlen);
	sprintf(af->tmp_path + dirlen, ".%s.XXXXXX", base);
	/* Created 0666 & ~umask, like any ordinary output file. */
	fd = tmp_openat(dirfd, af->tmp_path);
	if (fd < 0) {
		atomic_reset(af);
		return fd;
	}
	ck->fd = fd;
	af->f = fopencookie(ck, "w",
			    (cookie_io_functions_t){ .write = cookie_write, .close = cookie_close });
	if (!af->f) {
		r = -errno;
		close(fd);
		unlinkat(dirfd, af->tmp_path, 0);
		atomic_reset(af);
		return r;
	}
	return 0;
}

/*
 * Rename the temporary over the destination, which must still be absent or
 * a regular file: it may have changed since the open (a FIFO or a device
 * node put there meanwhile is never replaced).
 */
static int publish(struct stoke_atomic_file *af)
{
	struct stat st;

	if (fstatat(af->dirfd, af->path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (renameat2(af->dirfd, af->tmp_path, af->dirfd, af->path, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* A filesystem without RENAME_NOREPLACE: plain rename. */
	} else if (!S_ISREG(st.st_mode)) {
		return S_ISDIR(st.st_mode) ? -EISDIR : -STOKE_ENOTREG;
	}
	return renameat(af->dirfd, af->tmp_path, af->dirfd, af->path) < 0 ? -errno : 0;
}

int stoke_atomic_commit(struct stoke_atomic_file *af)
{
	int r = 0;

	if (!af->tmp_path) {
		if (af->f && (fflush(af->f) != 0 || ferror(af->f)))
			r = stoke_atomic_error(af, -EIO);
		if (af->f)
			fclose(af->f);
		atomic_reset(af);
		return r;
	}
	if (fflush(af->f) != 0 || ferror(af->f))
		r = stoke_atomic_error(af, -EIO);
	if (r == 0 && fsync(((struct atomic_cookie *)af->cookie)->fd) < 0 && errno != EINVAL)
		r = -errno;
	if (fclose(af->f) != 0 && r == 0)
		r = -errno;
	af->f = NULL;
	if (r == 0)
		r = publish(af);
	if (r < 0)
		unlinkat(af->dirfd, af->tmp_path, 0);
	atomic_reset(af);
	return r;
}

void stoke_atomic_abort(struct stoke_atomic_file *af)
{
	if (af->f)
		fclose(af->f);
	if (af->tmp_path)
		unlinkat(af->dirfd, af->tmp_path, 0);
	atomic_reset(af);
}
