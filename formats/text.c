/*
 * The cProfile-style text table (see text.h): what
 *   pstats.Stats(F).sort_stats('cumulative').print_stats()
 * prints for our own .pstats file F, minus its first line (the file name).
 *
 * Byte identity with Python needs the same arithmetic, not just the same
 * format: the total time is a float sum in the file's dict order (the
 * order the pstats writer emits), the rows are a *stable* sort on
 * cumulative time descending (Python's sort keeps dict order for ties),
 * and every number goes through "%8.3f" as Python's f8 does.
 */
#include "formats/text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pstats.h"
#include "formats/spans.h"

struct row {
	size_t index; /* position in file order: the tie-breaker */
	double ct;
};

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->ct != y->ct)
		return x->ct > y->ct ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* pstats.func_std_string */
static void func_std_string(FILE *out, const struct stoke_pstats_func *f)
{
	size_t n = strlen(f->name);

	if (!strcmp(f->file, "~") && f->line == 0) {
		if (n >= 2 && f->name[0] == '<' && f->name[n - 1] == '>')
			fprintf(out, "{%.*s}", (int)(n - 2), f->name + 1);
		else
			fputs(f->name, out);
		return;
	}
	fprintf(out, "%s:%" PRIu32 "(%s)", f->file, f->line, f->name);
}

static void print_line(FILE *out, const struct stoke_pstats_func *f, double period)
{
	double tt = (double)f->tt * period, ct = (double)f->ct * period;
	char calls[48];

	if (f->nc != f->cc)
		snprintf(calls, sizeof(calls), "%" PRIu64 "/%" PRIu64, f->nc, f->cc);
	else
		snprintf(calls, sizeof(calls), "%" PRIu64, f->nc);
	fprintf(out, "%9s %8.3f ", calls, tt);
	if (f->nc == 0)
		fputs("         ", out);
	else
		fprintf(out, "%8.3f ", tt / (double)f->nc);
	fprintf(out, "%8.3f ", ct);
	if (f->cc == 0)
		fputs("         ", out);
	else
		fprintf(out, "%8.3f ", ct / (double)f->cc);
	func_std_string(out, f);
	putc('\n', out);
}

static int write_table(const struct stoke_profile *p, FILE *out)
{
	struct stoke_pstats st;
	uint64_t calls = 0, prim = 0;
	double total_tt = 0;
	struct row *rows;
	int r;

	r = stoke_pstats_compute(p, &st);
	if (r < 0)
		return r;
	rows = calloc(st.nfuncs + 1, sizeof(*rows));
	if (!rows) {
		stoke_pstats_done(&st);
		return -ENOMEM;
	}
	for (size_t i = 0; i < st.nfuncs; i++) {
		calls += st.funcs[i].nc;
		prim += st.funcs[i].cc;
		total_tt += (double)st.funcs[i].tt * st.period_s;
		rows[i] = (struct row){ i, (double)st.funcs[i].ct * st.period_s };
	}
	qsort(rows, st.nfuncs, sizeof(*rows), cmp_row);
	/* print_stats: the blank line after the file name, then the totals */
	fprintf(out, "\n         %" PRIu64 " function calls ", calls);
	if (calls != prim)
		fprintf(out, "(%" PRIu64 " primitive calls) ", prim);
	fprintf(out, "in %.3f seconds\n\n", total_tt);
	fputs("   Ordered by: cumulative time\n", out);
	/* The one line pstats would not print: a sampling profiler sees no
	 * calls, and a reader must not take ncalls for them. */
	fputs(TEXT_SAMPLES_NOTE "\n\n", out);
	fputs("   ncalls  tottime  percall  cumtime  percall filename:lineno(function)\n", out);
	for (size_t i = 0; i < st.nfuncs; i++)
		print_line(out, &st.funcs[rows[i].index], st.period_s);
	fputs("\n\n", out);
	free(rows);
	stoke_pstats_done(&st);
	return 0;
}

/* The samples of one kind, as a profile of their own. */
static int write_kind(const struct stoke_profile *p, uint8_t kind, FILE *out)
{
	struct stoke_copy_opts o = { .kind_plus1 = (uint8_t)(kind + 1) };
	struct stoke_profile *k;
	int r = stoke_profile_copy(p, &o, &k);

	if (r < 0)
		return r;
	r = write_table(k, out);
	stoke_profile_free(k);
	return r;
}

/* Per thread: CPU time, time blocked, and their sum, the wall-clock time
 * the profile accounts for (time runnable but waiting for a CPU is in
 * neither). */
static void write_wall(const struct stoke_profile *p, FILE *out)
{
	double period_s = (double)stoke_profile_cmeta(p)->period_ns / 1e9;
	const struct stoke_pthread *th;
	size_t n;

	fputs("   Wall-clock time per thread (on CPU + off CPU)\n\n", out);
	fputs("      pid      tid    on-cpu   off-cpu      wall  thread\n", out);
	th = stoke_profile_threads(p, &n);
	for (size_t i = 0; i < n; i++) {
		if (!th[i].samples)
			continue;
		fprintf(out, " %8" PRIu32 " %8" PRIu32 " %9.3f %9.3f %9.3f  %s\n", th[i].pid,
			th[i].tid, (double)(th[i].samples - th[i].off_cpu) * period_s,
			(double)th[i].off_cpu * period_s, (double)th[i].samples * period_s,
			stoke_profile_string(p, th[i].name));
	}
	fputs("\n\n", out);
}

int stoke_text_write(const struct stoke_profile *p, const struct stoke_output_opts *opts,
		     FILE *out)
{
	int r;

	/* With off-CPU samples (record --off-cpu): the on-CPU table as
	 * always, then the same table of the time spent blocked, then each
	 * thread's wall-clock total. */
	if (stoke_profile_total_kind(p, STOKE_SAMPLE_OFF_CPU)) {
		r = write_kind(p, STOKE_SAMPLE_ON_CPU, out);
		if (r == 0) {
			fputs("   Off-CPU time (--off-cpu): time blocked, by the stack it "
			      "blocked in\n",
			      out);
			r = write_kind(p, STOKE_SAMPLE_OFF_CPU, out);
		}
		if (r == 0)
			write_wall(p, out);
	} else {
		r = write_table(p, out);
	}
	if (r == 0)
		r = stoke_spans_text(p, out);
	if (r < 0)
		return r;
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}
