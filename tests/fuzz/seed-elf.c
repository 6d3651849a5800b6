/*
 * Source of the "elf" fuzz target's seed files (tools/fuzz --seed compiles
 * it several ways: shared object and static executable, DWARF 4 and 5,
 * compressed debug sections, stripped). Small on purpose: a few functions,
 * one inlined into two callers, a static one, so the seeds carry symbol
 * tables, line tables and inlined-subroutine DIEs in a few kilobytes.
 */
static inline __attribute__((always_inline)) int mix(int x)
{
	return x * 31 + 7;
}

static __attribute__((noinline)) int helper(int x)
{
	return mix(x) ^ 0x5a;
}

__attribute__((noinline)) int leaf_a(int x)
{
	return mix(x) + helper(x);
}

__attribute__((noinline)) int leaf_b(int x)
{
	return helper(x) - 1;
}

int entry(int n)
{
	int acc = 0;

	for (int i = 0; i < n; i++)
		acc += i & 1 ? leaf_a(i) : leaf_b(i);
	return acc;
}

/* The static executable's entry point: no libc. */
void _start(void)
{
	for (;;)
		entry(3);
}
