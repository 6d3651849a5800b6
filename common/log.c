/*
 * Logging: one line per message, prefixed with the program name and, below
 * error level, the level. Thread-safe as far as stdio is.
 *
 * Messages carry names a target or a requester chose (mapped paths, comms,
 * build-ids): a control byte in one could forge or hide lines of a root
 * daemon's log, so every byte below 0x20, and DEL, is written as \xNN.
 */
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>

static const char *log_prog = "stoke";
static FILE *log_file;
static int log_level = -1;

void stoke_log_set_prog(const char *prog)
{
	log_prog = prog;
}

void stoke_log_set_level(enum stoke_log_level level)
{
	log_level = (int)level;
}

enum stoke_log_level stoke_log_get_level(void)
{
	if (log_level < 0) {
		const char *e = getenv("STOKE_DEBUG");
		log_level = (e && *e && *e != '0') ? STOKE_LOG_DEBUG : STOKE_LOG_INFO;
	}
	return (enum stoke_log_level)log_level;
}

void stoke_logv(enum stoke_log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	FILE *f = log_file ? log_file : stderr;
	char buf[4096];
	int n;

	if (level > stoke_log_get_level())
		return;
	if (level == STOKE_LOG_INFO)
		fprintf(f, "%s: ", log_prog);
	else
		fprintf(f, "%s: %s: ", log_prog, names[level]);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		n = 0;
	for (const unsigned char *p = (const unsigned char *)buf; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	if ((size_t)n >= sizeof(buf))
		fputs("...", f);
	fputc('\n', f);
	fflush(f);
}

void stoke_log(enum stoke_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stoke_logv(level, fmt, ap);
	va_end(ap);
}

void stoke_log_set_file(FILE *f)
{
	log_file = f;
}
