/*
 * Implementation of the helpers in util.h that are not inline.
 */
#include "common/util.h"

#include <fcntl.h>
#include <sys/stat.h>

int stoke_grow(void **array, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (elem && ncap > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*array, ncap * elem);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = ncap;
	return 0;
}

ssize_t stoke_read_file(const char *path, char **ret, size_t max)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (STOKE_GROW(buf, cap, len + 4097) < 0)
			return -ENOMEM;
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return (ssize_t)len;
}

int stoke_mkdir_p(const char *path)
{
	_cleanup_free_ char *buf = strdup(path);

	if (!buf)
		return -ENOMEM;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0777) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int stoke_open_regular(const char *path, int flags, struct stat *ret_st)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | flags);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		close(fd);
		return -EINVAL;
	}
	if (ret_st)
		*ret_st = st;
	return fd;
}

int stoke_read_stream(FILE *in, size_t max, void **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	do {
		if (STOKE_GROW(buf, cap, len + 65536) < 0) {
			free(buf);
			return -ENOMEM;
		}
		n = fread(buf + len, 1, cap - len, in);
		len += n;
		if (len > max) {
			free(buf);
			return -EFBIG;
		}
	} while (n > 0);
	if (ferror(in)) {
		free(buf);
		return -EIO;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}
