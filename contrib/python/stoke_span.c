/*
 * libstoke-span.so: stoke's span probes (include/stoke/span.h) for callers
 * that cannot include a C header, such as contrib/python/stoke_span.py
 * through ctypes. The probes live in this library, so `stoke record` finds
 * them when a target maps it (from its MMAP record on).
 */
#include <stoke/span.h>

#define STOKE_SPAN_EXPORT __attribute__((visibility("default")))

STOKE_SPAN_EXPORT void stoke_span_begin(const char *name, const char *m0, const char *m1,
					const char *m2, const char *m3);
STOKE_SPAN_EXPORT void stoke_span_end(const char *name);
STOKE_SPAN_EXPORT volatile unsigned short *stoke_span_begin_sem(void);
STOKE_SPAN_EXPORT volatile unsigned short *stoke_span_end_sem(void);

/* m0..m3: "key=value" strings, NULL after the last. */
void stoke_span_begin(const char *name, const char *m0, const char *m1, const char *m2,
		      const char *m3)
{
	STOKE_SPAN_BEGIN(name, m0, m1, m2, m3);
}

void stoke_span_end(const char *name)
{
	STOKE_SPAN_END(name);
}

/* Where the semaphores are: a caller reads them itself and does not even
 * call in while nothing traces. */
volatile unsigned short *stoke_span_begin_sem(void)
{
	return &stoke_span_begin_semaphore;
}

volatile unsigned short *stoke_span_end_sem(void)
{
	return &stoke_span_end_semaphore;
}
