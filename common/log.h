/*
 * Logging for stoke.
 *
 * Library folders (sampler, symbolizer, formats) log at debug level only and
 * never per sample; they count instead. The daemon and the CLI report errors
 * to the user at warning or error level. Messages go to stderr (or to the file
 * set with stoke_log_set_file) prefixed with the program name.
 */
#pragma once

#include <stdarg.h>
#include <stdio.h>

enum stoke_log_level {
	STOKE_LOG_ERROR = 0,
	STOKE_LOG_WARN = 1,
	STOKE_LOG_INFO = 2,
	STOKE_LOG_DEBUG = 3,
};

/* Set the program name printed before every message ("stoke", "stoked"). */
void stoke_log_set_prog(const char *prog);
/* Messages above this level are dropped. Default: STOKE_LOG_INFO, or DEBUG when
 * STOKE_DEBUG is set in the environment at the first call. */
void stoke_log_set_level(enum stoke_log_level level);
enum stoke_log_level stoke_log_get_level(void);
/* Send messages to f instead of stderr; NULL restores stderr. Not owned. */
void stoke_log_set_file(FILE *f);

void stoke_log(enum stoke_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void stoke_logv(enum stoke_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_error(...) stoke_log(STOKE_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) stoke_log(STOKE_LOG_WARN, __VA_ARGS__)
#define log_info(...) stoke_log(STOKE_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                         \
	do {                                                   \
		if (stoke_log_get_level() >= STOKE_LOG_DEBUG) \
			stoke_log(STOKE_LOG_DEBUG, __VA_ARGS__); \
	} while (0)
