/*
 * The benchmark workload: a fixed amount of CPU work that reports how long
 * it took, so a profiler's cost shows up as the target's own slowdown.
 *
 *   workload UNITS [DEPTH [THREADS]]
 *
 * Does UNITS units of integer work (about 10 µs each, see tests/fixtures/
 * burn.h) at the bottom of a DEPTH-deep call chain (default 24: enough frames
 * that frame-pointer walks and DWARF unwinding both do real work), split
 * between two leaves so that symbolization sees more than one function. Each
 * level keeps a small array live on the stack, as real code does, so a DWARF
 * stack copy carries realistic frames. Prints one line to stdout:
 *
 *   work_seconds WALL CPU
 *
 * the wall-clock and CPU time of the work alone (process start and exit
 * excluded). CPU time includes what the kernel spends in the target on the
 * profiler's behalf (sample interrupts, callchain walks, stack copies) but
 * not time lost waiting for a core, so it is the steadier figure on a busy
 * machine; wall time is what a user feels.
 * With THREADS (default 1), that many threads each do UNITS units at once
 * (the signal sampler's rows: per-thread timers).
 * Built by tools/bench with frame pointers, so `-g fp` walks complete stacks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../tests/fixtures/burn.h"

NOINLINE void leaf_hot(long units)
{
	BURN_UNITS(units);
}

NOINLINE void leaf_cold(long units)
{
	BURN_UNITS(units);
}

NOINLINE long descend(int depth, long units)
{
	volatile long frame[8];

	for (int i = 0; i < 8; i++)
		frame[i] = depth + i;
	if (depth > 0)
		return descend(depth - 1, units) + frame[depth % 8];
	leaf_hot(units - units / 4);
	leaf_cold(units / 4);
	return frame[0];
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long units = 10000;
static int depth = 24;

static void *work(void *arg)
{
	(void)arg;
	/* Many short descents rather than one long one, so every sample
	 * sees the full chain. */
	for (long done = 0; done < units; done += 10)
		descend(depth, units - done < 10 ? units - done : 10);
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 3 ? atoi(argv[3]) : 1;
	pthread_t t[64];
	double start, end, cpu0, cpu1;

	units = argc > 1 ? atol(argv[1]) : 10000;
	depth = argc > 2 ? atoi(argv[2]) : 24;
	if (units <= 0 || depth < 0 || depth > 1000 || threads < 1 || threads > 64) {
		fprintf(stderr, "workload: UNITS must be > 0, DEPTH 0..1000, THREADS 1..64\n");
		return 2;
	}
	cpu0 = cpu_now();
	start = fixture_now();
	for (int i = 1; i < threads; i++)
		if (pthread_create(&t[i], NULL, work, NULL) != 0)
			return 1;
	work(NULL);
	for (int i = 1; i < threads; i++)
		pthread_join(t[i], NULL);
	end = fixture_now();
	cpu1 = cpu_now();
	printf("work_seconds %.6f %.6f\n", end - start, cpu1 - cpu0);
	return 0;
}
