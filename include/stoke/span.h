/*
 * stoke spans: name the phases of a program for `stoke record`.
 *
 *     #include <stoke/span.h>
 *
 *     STOKE_SPAN_BEGIN("load");
 *     ...
 *     STOKE_SPAN_END("load");
 *
 *     void handle(const char *user)
 *     {
 *             STOKE_SPAN_SCOPE("request", "user=alice", "kind=get");
 *             ...                   // ends when the scope does
 *     }
 *
 * Header-only, C and C++ (GCC or Clang; the scoped form needs the cleanup
 * attribute). Each macro is a USDT probe (<sys/sdt.h>, Debian's
 * systemtap-sdt-dev) guarded by its semaphore: when nothing traces the
 * program, a begin or end is one load of a 16-bit counter and a branch not
 * taken, and the name is not even read. `stoke record` finds the probes in
 * the program's .note.stapsdt, enables them (the kernel raises the
 * semaphore), and only then does a begin copy its name and up to
 * STOKE_SPAN_MAX_META "key=value" strings into a small buffer on the stack,
 * where the probe's stack copy takes them. Names are copied at the probe, so
 * they may be built at run time and freed right after.
 *
 * Measured (bench/spans.py, README "Spans"): untraced, two nested spans
 * around ~0.5 us of work cost -0.00% CPU time against a build without this
 * header (+0.42%, 2.3 ns, on a heavily loaded machine); traced, about
 * 1.5 us per begin or end (a uprobe hit).
 *
 * Rules: a span ends on the thread that began it; spans nest (an END closes
 * the innermost open span of that name); a name longer than
 * STOKE_SPAN_MAX_NAME bytes, or metadata past STOKE_SPAN_MAX_PAYLOAD bytes in
 * all, is cut. Include this header before any other use of <sys/sdt.h> in
 * the same file: it turns on <sys/sdt.h>'s semaphores, so every other
 * STAP_PROBE of that file needs its own semaphore variable too.
 *
 * The probes: provider "stoke", names "span_begin" and "span_end", two
 * arguments: a pointer to the payload ("name\0key=value\0...") and its length
 * in bytes.
 */
#ifndef STOKE_SPAN_H
#define STOKE_SPAN_H
/* As when installed in /usr/include: <sys/sdt.h>'s probe macros expand to
 * GNU extensions that -Wpedantic (clang) would flag in the user's file. */
#pragma GCC system_header

#if defined(_SYS_SDT_H) && !defined(_SDT_HAS_SEMAPHORES)
#error "include <stoke/span.h> before <sys/sdt.h> (or define _SDT_HAS_SEMAPHORES)"
#endif
#ifndef _SDT_HAS_SEMAPHORES
#define _SDT_HAS_SEMAPHORES 1
#endif
#include <stdarg.h>
#include <stddef.h>
#include <sys/sdt.h>

#define STOKE_SPAN_MAX_NAME 127
#define STOKE_SPAN_MAX_META 4
#define STOKE_SPAN_MAX_PAYLOAD 384

#ifdef __cplusplus
extern "C" {
#endif

/* One semaphore per probe and per module (hidden: a shared library and the
 * program each have theirs, as each has its own notes); weak, so every file
 * that includes this header shares it. The kernel counts the tracers in it. */
__attribute__((weak, used, visibility("hidden"), section(".probes")))
volatile unsigned short stoke_span_begin_semaphore;
__attribute__((weak, used, visibility("hidden"), section(".probes")))
volatile unsigned short stoke_span_end_semaphore;

/* Append s (at most max bytes of it) and its NUL to buf at *len. */
static inline void stoke__span_put(char *buf, size_t *len, const char *s, size_t max)
{
	size_t n = 0;

	if (!s)
		s = "";
	while (s[n] && n < max && *len + n + 1 < STOKE_SPAN_MAX_PAYLOAD)
		n++;
	for (size_t i = 0; i < n; i++)
		buf[*len + i] = s[i];
	buf[*len + n] = '\0';
	*len += n + 1;
}

/* The traced path, out of line so that the untraced one stays a test and a
 * branch. meta is a NULL-terminated list of "key=value" strings. */
__attribute__((noinline, cold)) static void stoke__span_fire(int begin,
								     const char *name, ...)
{
	char buf[STOKE_SPAN_MAX_PAYLOAD];
	size_t len = 0;
	va_list ap;
	const char *m;

	stoke__span_put(buf, &len, name, STOKE_SPAN_MAX_NAME);
	if (begin) {
		va_start(ap, name);
		for (int i = 0; i < STOKE_SPAN_MAX_META && (m = va_arg(ap, const char *)) &&
				len + 1 < STOKE_SPAN_MAX_PAYLOAD;
		     i++)
			stoke__span_put(buf, &len, m, STOKE_SPAN_MAX_PAYLOAD);
		va_end(ap);
		STAP_PROBE2(stoke, span_begin, buf, len);
	} else {
		STAP_PROBE2(stoke, span_end, buf, len);
	}
	/* The buffer must be in memory when the probe fires. */
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}

/* STOKE_SPAN_BEGIN(name, "key=value"...): the arguments are the name and
 * up to STOKE_SPAN_MAX_META metadata strings (one parameter list, so that
 * a name alone is no empty variadic part for -Wpedantic). */
#define STOKE_SPAN_BEGIN(...)                                                   \
	do {                                                                    \
		if (__builtin_expect(stoke_span_begin_semaphore != 0, 0))       \
			stoke__span_fire(1, __VA_ARGS__, (const char *)0);      \
	} while (0)

#define STOKE_SPAN_END(name)                                                  \
	do {                                                                  \
		if (__builtin_expect(stoke_span_end_semaphore != 0, 0))       \
			stoke__span_fire(0, (name), (const char *)0);         \
	} while (0)

/* Whether a tracer listens (the begin probe is enabled). */
#define STOKE_SPAN_TRACED() (stoke_span_begin_semaphore != 0)

struct stoke__span_scope {
	const char *span_name;
};

static inline void stoke__span_scope_end(struct stoke__span_scope *s)
{
	STOKE_SPAN_END(s->span_name);
}

#define STOKE__FIRST(a, ...) a
#define STOKE__CAT2(a, b) a##b
#define STOKE__CAT(a, b) STOKE__CAT2(a, b)

/* STOKE_SPAN_SCOPE(name, "key=value"...): a span from here to the end of
 * the enclosing scope (the name must live as long). */
#define STOKE_SPAN_SCOPE(...)                                                              \
	struct stoke__span_scope STOKE__CAT(stoke__scope_, __LINE__)                       \
		__attribute__((cleanup(stoke__span_scope_end), unused)) =                  \
			{ STOKE__FIRST(__VA_ARGS__, 0) };                                  \
	STOKE_SPAN_BEGIN(__VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* STOKE_SPAN_H */
