/*
 * Atomic output files. The temporary lives in the destination directory so
 * the final rename never crosses a filesystem.
 */
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
	const char *base = path + dirlen;
	int fd, r;

	memset(af, 0, sizeof(*af));
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
	fd = mkostemp(af->tmp_path, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		atomic_reset(af);
		return r;
	}
	/* mkostemp makes 0600; outputs are ordinary files, subject to umask. */
	{
		mode_t um = umask(0);

		umask(um);
		(void)fchmod(fd, 0666 & ~um);
	}
	af->f = fdopen(fd, "w");
	if (!af->f) {
		r = -errno;
		close(fd);
		unlink(af->tmp_path);
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
	if (r == 0 && rename(af->tmp_path, af->path) < 0)
		r = -errno;
	if (r < 0)
		unlink(af->tmp_path);
	atomic_reset(af);
	return r;
}

void stoke_atomic_abort(struct stoke_atomic_file *af)
{
	if (af->tmp_path) {
		if (af->f)
			fclose(af->f);
		unlink(af->tmp_path);
	}
	atomic_reset(af);
}
