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

#include <stdio.h>

struct stoke_atomic_file {
	FILE *f;
	int dirfd;
	char *tmp_path; /* NULL for stdout */
	char *path;
};

/* Returns 0 or -errno; on success af->f is open for writing. */
int stoke_atomic_open(const char *path, struct stoke_atomic_file *af);
/* The same, relative to the directory dirfd (AT_FDCWD for the cwd). The
 * daemon writes into a directory fd that the client passed, so the files
 * are created with the client's access rights to that directory. */
int stoke_atomic_openat(int dirfd, const char *path, struct stoke_atomic_file *af);
/* Returns 0 or -errno (a write error seen by the stream, fsync or rename).
 * The temporary is removed on failure. */
int stoke_atomic_commit(struct stoke_atomic_file *af);
void stoke_atomic_abort(struct stoke_atomic_file *af);
