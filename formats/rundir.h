/*
 * Run directories and run.json (FORMATS.md "Run directory"); the directory
 * API itself is in output.h (stoke_rundir_write).
 */
#pragma once

#include <stdio.h>

#include "formats/output.h"
#include "formats/profile.h"

struct stoke_host {
	char hostname[256];
	char kernel[256];  /* uname -r */
	long cpus;         /* online CPUs */
};

/* Fill h for this machine. Never fails; unknown fields are "" or 0. */
void stoke_host_get(struct stoke_host *h);

/*
 * Write run.json (schema_version "2") for p. host may be NULL (this
 * machine); files lists the formats in the directory (mask of 1 << format).
 */
int stoke_runjson_write(const struct stoke_profile *p, const struct stoke_run_info *info,
			const struct stoke_host *host, unsigned files, FILE *out);

/* "YYYY-MM-DDTHH-MM-SS_name" for ns since the epoch (UTC), with name
 * sanitised to [A-Za-z0-9._-] ("stoke" when empty). */
void stoke_rundir_basename(uint64_t start_ns, const char *name, char *buf, size_t size);
