/*
 * Loading stored profiles: a run directory means its profile.pb.gz.
 */
#include "load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "output.h"
#include "pprof.h"
#include "util.h"

int stoke_profile_load(const char *path, struct stoke_profile **ret, const char **ret_err)
{
	_cleanup_free_ char *inside = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	const char *err = NULL;
	struct stat st;
	int r;

	if (stat(path, &st) < 0) {
		r = -errno;
		if (ret_err)
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
		if (ret_err)
			*ret_err = r == -ENOENT ? "not a run directory (no profile.pb.gz in it)"
						: strerror(-r);
		return r;
	}
	r = stoke_pprof_read(f, ret, &err);
	if (r < 0 && ret_err)
		*ret_err = err ? err : strerror(-r);
	return r;
}
