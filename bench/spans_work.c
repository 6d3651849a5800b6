/*
 * The spans benchmark's workload (bench/spans.py): ITERS iterations of a
 * fixed amount of work (WORK steps of an LCG, about a microsecond), each
 * inside a nested pair of spans with metadata, so a span's untraced cost
 * shows at the highest rate a real program would plausibly use them.
 * Built twice: with include/stoke/span.h, and with -DNO_SPANS (no header,
 * no probes). Prints the CPU time of the loop in ns.
 */
#ifndef NO_SPANS
#include <stoke/span.h>
#else
#define STOKE_SPAN_BEGIN(...) do { } while (0)
#define STOKE_SPAN_END(...) do { } while (0)
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

__attribute__((noinline)) static uint64_t work(uint64_t x, int steps)
{
	for (int i = 0; i < steps; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 2000000;
	int steps = argc > 2 ? atoi(argv[2]) : 500;
	uint64_t x = 1, t0 = cpu_ns();

	for (long i = 0; i < iters; i++) {
		STOKE_SPAN_BEGIN("outer", "kind=bench");
		STOKE_SPAN_BEGIN("inner");
		x = work(x, steps);
		STOKE_SPAN_END("inner");
		STOKE_SPAN_END("outer");
	}
	printf("%llu %llu\n", (unsigned long long)(cpu_ns() - t0), (unsigned long long)x);
	return 0;
}
