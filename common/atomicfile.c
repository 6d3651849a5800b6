/*
 * Atomic output files. The temporary lives in the destination directory so
 * the final rename never crosses a filesystem.
 */
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void atomic_reset(struct stoke_atomic_file *af)
{
	free(af->tmp_path);
	free(af->path);
	af->tmp_path = NULL;
	af->path = NULL;
	af->f = NULL;
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
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
	const char *base = path + dirlen;
	int fd, r;

	memset(af, 0, sizeof(*af));
	af->dirfd = dirfd;
	if (strcmp(path, "-") == 0) {
		af->f = stdout;
		return 0;
	}
	if (!*base)
		return -EISDIR;
	af->path = strdup(path);
	af->tmp_path = malloc(dirlen + strlen(base) + 10);
	if (!af->path || !af->tmp_path) {
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
	af->f = fdopen(fd, "w");
	if (!af->f) {
		r = -errno;
		close(fd);
		unlinkat(dirfd, af->tmp_path, 0);
		atomic_reset(af);
		return r;
	}
	return 0;
}

int stoke_atomic_commit(struct stoke_atomic_file *af)
{
	int r = 0;

	if (!af->tmp_path) {
		if (af->f && (fflush(af->f) != 0 || ferror(af->f)))
			r = -EIO;
		af->f = NULL;
		return r;
	}
	if (fflush(af->f) != 0 || ferror(af->f))
		r = -errno ? -errno : -EIO;
	if (r == 0 && fsync(fileno(af->f)) < 0 && errno != EINVAL)
		r = -errno;
	if (fclose(af->f) != 0 && r == 0)
		r = -errno;
	af->f = NULL;
	if (r == 0 && renameat(af->dirfd, af->tmp_path, af->dirfd, af->path) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(af->dirfd, af->tmp_path, 0);
	atomic_reset(af);
	return r;
}

void stoke_atomic_abort(struct stoke_atomic_file *af)
{
	if (af->tmp_path) {
		if (af->f)
			fclose(af->f);
		unlinkat(af->dirfd, af->tmp_path, 0);
	}
	atomic_reset(af);
}
