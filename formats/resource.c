/*
 * The resource timeline's model and its JSON form (see resource.h).
 */
#include "formats/resource.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/util.h"

int stoke_rseries_add(struct stoke_rseries *s, const struct stoke_rpoint *pt)
{
	if (STOKE_GROW(s->points, s->cap, s->n + 1) < 0)
		return -ENOMEM;
	s->points[s->n++] = *pt;
	return 0;
}

int stoke_rseries_clip(const struct stoke_rseries *s, uint64_t wall_from, uint64_t wall_to,
		       struct stoke_rseries *ret)
{
	size_t skipped = 0;

	*ret = (struct stoke_rseries){ .interval_ns = s->interval_ns,
				       .mono_start_ns = s->mono_start_ns,
				       .wall_start_ns = s->wall_start_ns };
	for (size_t i = 0; i < s->n; i++) {
		uint64_t wall = s->wall_start_ns + (s->points[i].t_ns - s->mono_start_ns);

		if (wall + 1000000 < wall_from || (wall_to && wall > wall_to + 1000000)) {
			skipped++;
			continue;
		}
		if (stoke_rseries_add(ret, &s->points[i]) < 0) {
			stoke_rseries_free(ret);
			return -ENOMEM;
		}
		if (ret->n > 1)
			ret->cpu_ns += (uint64_t)(s->points[i].cpu *
						  (double)(s->points[i].t_ns - s->points[i - 1].t_ns));
	}
	/* Nothing left out: the sampler's own sum, not one rebuilt from the
	 * points. */
	if (!skipped)
		ret->cpu_ns = s->cpu_ns;
	return 0;
}

void stoke_rseries_free(struct stoke_rseries *s)
{
	free(s->points);
	s->points = NULL;
	s->n = s->cap = 0;
}

void stoke_rseries_summary(const struct stoke_rseries *s, struct stoke_rsummary *ret)
{
	double sum = 0;

	*ret = (struct stoke_rsummary){ .points = s->n };
	for (size_t i = 0; i < s->n; i++) {
		ret->peak_rss = STOKE_MAX(ret->peak_rss, s->points[i].rss);
		sum += (double)s->points[i].rss;
		if (i && s->points[i].cpu > ret->peak_cpu)
			ret->peak_cpu = s->points[i].cpu;
	}
	if (!s->n)
		return;
	ret->mean_rss = (uint64_t)(sum / (double)s->n);
	ret->duration_s = (double)(s->points[s->n - 1].t_ns - s->points[0].t_ns) / 1e9;
	if (ret->duration_s > 0)
		ret->mean_cpu = (double)s->cpu_ns / 1e9 / ret->duration_s;
}

void stoke_rseries_json(const struct stoke_rseries *s, uint64_t wall_origin_ns, FILE *out)
{
	struct stoke_rsummary sum;
	/* Whole milliseconds from the origin (the recording's start) to the
	 * first point; points are whole milliseconds after it (the sampler
	 * rounds them), so t_s and clock_ns give back each point's time. */
	int64_t shift_ms = 0;

	if (wall_origin_ns)
		shift_ms = ((int64_t)s->wall_start_ns - (int64_t)wall_origin_ns + 500000) / 1000000;
	stoke_rseries_summary(s, &sum);
	fprintf(out,
		"{\"interval_ms\": %" PRIu64 ", \"points\": %zu, \"peak_rss_bytes\": %" PRIu64
		", \"mean_rss_bytes\": %" PRIu64 ", \"cpu_utilization\": %.4f, "
		"\"peak_cpu_utilization\": %.4f, \"cpu_ns\": %" PRIu64 ", \"clock_ns\": %" PRId64
		",\n    \"series\": {\"t_s\": [",
		s->interval_ns / 1000000, sum.points, sum.peak_rss, sum.mean_rss, sum.mean_cpu,
		sum.peak_cpu, s->cpu_ns, (int64_t)s->mono_start_ns - shift_ms * 1000000);
	for (size_t i = 0; i < s->n; i++) {
		int64_t ms = shift_ms + (int64_t)((s->points[i].t_ns - s->mono_start_ns) / 1000000);

		fprintf(out, "%s%s%" PRId64 ".%03" PRId64, i ? ", " : "", ms < 0 ? "-" : "",
			(ms < 0 ? -ms : ms) / 1000, (ms < 0 ? -ms : ms) % 1000);
	}
	fputs("],\n      \"rss_bytes\": [", out);
	for (size_t i = 0; i < s->n; i++)
		fprintf(out, "%s%" PRIu64, i ? ", " : "", s->points[i].rss);
	fputs("],\n      \"cpu\": [", out);
	for (size_t i = 0; i < s->n; i++)
		fprintf(out, "%s%.4f", i ? ", " : "", s->points[i].cpu);
	fputs("]}}", out);
}
