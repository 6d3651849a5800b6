/* `stoke diff --by-span` (tools/diff-spans.c). */
#pragma once

/* Print each span's mean duration in BASE and NEW (run directories or
 * run.json files) and the change; max_regression >= 0 gates each span
 * (a mean that grew by more than that many percent). Returns the exit code:
 * 0, 1 (an error, said) or 3 (a span regressed). */
int diff_by_span(const char *base_path, const char *new_path, double max_regression);
