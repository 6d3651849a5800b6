/*
 * stoke serve: a local web dashboard over run and suite directories
 * (tools/serve/server.c; the command line is tools/cmd-serve.c).
 */
#pragma once

#include <stddef.h>

struct serve_opts {
	const char *const *dirs; /* served directories (new runs go to dirs[0]) */
	size_t ndirs;
	const char *addr;	/* IPv4 address to bind, default 127.0.0.1 */
	unsigned port;		/* 0: any free port */
	const char *speedscope; /* speedscope's static build (index.html), or NULL */
};

/* Serve until SIGINT or SIGTERM, then end the jobs launched from the page
 * that still run. Prints the URL (with its token) on stdout once listening.
 * Returns 0, or 1 after an error it has logged. */
int serve_run(const struct serve_opts *o);
