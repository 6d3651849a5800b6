/*
 * Small helpers shared by every folder: cleanup attributes, ownership
 * transfer, array sizes and overflow-checked growth.
 *
 * Cleanup helpers follow systemd's pattern: a variable declared with
 * _cleanup_free_ is freed when it leaves scope; TAKE_PTR hands ownership on.
 */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define STOKE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define STOKE_MAX(a, b) ((a) > (b) ? (a) : (b))

#define STOKE_EXPORT __attribute__((visibility("default")))

static inline void stoke_freep(void *p)
{
	free(*(void **)p);
}

static inline void stoke_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void stoke_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(stoke_freep)
#define _cleanup_close_ _cleanup_(stoke_closep)
#define _cleanup_fclose_ _cleanup_(stoke_fclosep)

/* Return the pointer and leave NULL (or -1 for fds) behind. */
#define TAKE_PTR(p)                      \
	__extension__({                  \
		__typeof__(p) _p_ = (p); \
		(p) = NULL;              \
		_p_;                     \
	})
#define TAKE_FD(fd)                \
	__extension__({            \
		int _fd_ = (fd);   \
		(fd) = -1;         \
		_fd_;              \
	})

/*
 * Grow *array (of elements of size elem) so that it holds at least need
 * elements; *cap is the current capacity in elements. Capacity doubles, so
 * appends are amortised O(1). Returns 0 or -ENOMEM (on overflow too); on
 * failure *array and *cap are unchanged.
 */
int stoke_grow(void **array, size_t *cap, size_t need, size_t elem);

#define STOKE_GROW(arr, cap, need) \
	stoke_grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* FNV-1a over bytes, continuing from h (start with STOKE_HASH_INIT). */
#define STOKE_HASH_INIT 0xcbf29ce484222325ULL
static inline uint64_t stoke_hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* A strong 64-bit mix for integer keys (splitmix64 finaliser). */
static inline uint64_t stoke_hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Read a whole small file (for /proc) into a NUL-terminated buffer.
 * Returns the length or -errno. *ret is malloc'd. */
ssize_t stoke_read_file(const char *path, char **ret, size_t max);

/* Read all of in into a malloc'd buffer (not NUL-terminated). More than
 * max bytes is -EFBIG, a read error -EIO. Returns 0 or -errno. */
int stoke_read_stream(FILE *in, size_t max, void **ret, size_t *ret_len);

/* mkdir -p: create path and its missing parents (mode 0777 & ~umask).
 * Returns 0 (also when it exists) or -errno. */
int stoke_mkdir_p(const char *path);

/*
 * Open a regular file read-only without ever blocking: O_NONBLOCK for the
 * open itself (a FIFO put where a file was expected would otherwise hang
 * the caller, e.g. the daemon's loop), then fstat, refusing anything but a
 * regular file with -EINVAL. flags may add O_NOFOLLOW. Returns the fd
 * (O_CLOEXEC, blocking again) or -errno; *ret_st is filled when not NULL.
 */
int stoke_open_regular(const char *path, int flags, struct stat *ret_st);
