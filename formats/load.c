/*
 * Loading stored profiles: a run directory means its profile.pb.gz; a file
 * (or "-", stdin) is told by its content: pprof (gzipped or not), folded
 * stacks or `perf script` output. perf.data itself is recognised only to say
 * how to convert it.
 */
#include "formats/load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/output.h"
#include "formats/pprof.h"
#include "formats/textprof.h"
#include "common/util.h"

#define LOAD_MAX_INPUT (256u << 20) /* bytes read, compressed or not */

static int slurp(FILE *in, char **ret, size_t *ret_len)
{
	return stoke_read_stream(in, LOAD_MAX_INPUT, (void **)ret, ret_len);
}

/* Text has no control bytes but tab, newline and carriage return; a
 * protobuf's field tags (0x08, 0x10, 0x12…) always are some. */
static bool looks_like_text(const char *buf, size_t len)
{
	size_t n = len < 65536 ? len : 65536;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return false;
	}
	return true;
}

static int load_buffer(const char *buf, size_t len, struct stoke_profile **ret,
		       const char **ret_err)
{
	const char *err = NULL;
	FILE *f;
	int r;

	if (len == 0) {
		*ret_err = "empty file";
		return -EINVAL;
	}
	if (len >= 8 && (!memcmp(buf, "PERFILE2", 8) || !memcmp(buf, "PERFFILE", 8))) {
		*ret_err = "this is perf's perf.data format: use perf script | stoke report -";
		return -EINVAL;
	}
	if (!(len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b) &&
	    looks_like_text(buf, len)) {
		r = stoke_textprof_read(buf, len, ret, &err);
		if (r < 0)
			*ret_err = err ? err : strerror(-r);
		return r;
	}
	f = fmemopen((void *)buf, len, "rb");
	if (!f)
		return -errno;
	r = stoke_pprof_read(f, ret, &err);
	fclose(f);
	if (r < 0)
		*ret_err = err ? err : strerror(-r);
	return r;
}

int stoke_profile_load(const char *path, struct stoke_profile **ret, const char **ret_err)
{
	_cleanup_free_ char *inside = NULL, *buf = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	const char *err = NULL;
	struct stat st;
	size_t len;
	int r;

	if (!ret_err)
		ret_err = &err;
	if (strcmp(path, "-") == 0) {
		r = slurp(stdin, &buf, &len);
		if (r < 0) {
			*ret_err = r == -EFBIG ? "the input is too large" : strerror(-r);
			return r;
		}
		return load_buffer(buf, len, ret, ret_err);
	}
	if (stat(path, &st) < 0) {
		r = -errno;
		*ret_err = strerror(-r);
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		const char *name = stoke_format_rundir_name(STOKE_FORMAT_PPROF);

		if (asprintf(&inside, "%s/%s", path, name) < 0)
			return -ENOMEM;
		path = inside;
	}
	f = fopen(path, "rbe");
	if (!f) {
		r = -errno;
		*ret_err = r == -ENOENT ? "not a run directory (no profile.pb.gz in it)"
					: strerror(-r);
		return r;
	}
	r = slurp(f, &buf, &len);
	if (r < 0) {
		*ret_err = r == -EFBIG ? "the file is too large" : strerror(-r);
		return r;
	}
	return load_buffer(buf, len, ret, ret_err);
}
