/*
 * Atomic output files: no output is ever half-written.
 *
 * stoke_atomic_open creates a temporary file next to the destination
 * ("<dir>/.<name>.XXXXXX"), the caller writes through the FILE*, and
 * stoke_atomic_commit flushes, fsyncs and renames it over the destination.
 * stoke_atomic_abort removes the temporary. Exactly one of commit/abort must
 * be called. Writing to "-" means stdout, where commit only flushes.
 */
#pragma once

#include <errno.h>
#include <stdio.h>

struct stoke_atomic_file {
	FILE *f;
	int dirfd;
	char *tmp_path; /* NULL for stdout */
	char *path;     /* the file replaced (a symlink's target) */
	void *cookie;   /* the stream's fd and first write error */
};

/* The error for a destination that exists and is not a regular file (a
 * device, FIFO, socket, or a symlink to one or to nothing). */
#define STOKE_ENOTREG ENOTBLK

/* Returns 0 or -errno; on success af->f is open for writing. */
int stoke_atomic_open(const char *path, struct stoke_atomic_file *af);
/* The same, relative to the directory dirfd (AT_FDCWD for the cwd). The
 * daemon writes into a directory fd that the client passed, so the files
 * are created with the client's access rights to that directory. */
int stoke_atomic_openat(int dirfd, const char *path, struct stoke_atomic_file *af);
/*
 * Only regular files are replaced: an existing destination that is not one
 * is refused with -STOKE_ENOTREG (-EISDIR for a directory), so `-o /dev/null`
 * or a FIFO is never turned into a regular file. A symlink (dirfd AT_FDCWD
 * only) is followed to the regular file it names, which is replaced in its
 * own directory; the link stays.
 *
 * stoke_atomic_check is that test alone, for checking an output before the
 * work that produces it: 0 (*ret_target is the malloc'd real path when path
 * is a symlink, else NULL) or -errno.
 */
int stoke_atomic_check(int dirfd, const char *path, char **ret_target);
/* strerror, with a clear message for -STOKE_ENOTREG. */
const char *stoke_atomic_strerror(int r);
/* A writer saw ferror() and returned -EIO: the stream's real write errno
 * (ENOSPC, EDQUOT, EFBIG…) when it has one, else r. */
int stoke_atomic_error(const struct stoke_atomic_file *af, int r);
/* Returns 0 or -errno (a write error seen by the stream, fsync or rename).
 * The temporary is removed on failure. */
int stoke_atomic_commit(struct stoke_atomic_file *af);
void stoke_atomic_abort(struct stoke_atomic_file *af);
