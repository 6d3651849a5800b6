/*
 * Loading a stored profile for the offline commands (report, top, diff,
 * annotate): a pprof file (profile.pb.gz, gzipped or not), a run directory
 * holding one, folded stacks or `perf script` output; "-" reads stdin.
 */
#pragma once

#include "formats/profile.h"

/*
 * Load path into a new model. Returns 0, or -errno with *ret_err (when
 * given) set to a one-line reason: -ENOENT when missing, -EINVAL for a file
 * that is not a profile ("empty file"; a perf.data gets a pointer to
 * `perf script | stoke report -`).
 */
int stoke_profile_load(const char *path, struct stoke_profile **ret, const char **ret_err);
