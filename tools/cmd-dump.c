/*
 * `stoke dump PID`: every Python thread's current stack, once, like
 * `py-spy dump`: innermost first, a frame per line as
 * `qualname (file:line)`. The process is not stopped: its memory is read
 * with process_vm_readv while it runs (see stack/cpython/reader.c), so a
 * stack that changes under the read ends with [python-truncated].
 * Native frames are not shown yet (#14).
 *
 * Exit status: 0 with the stacks; 1 when the process cannot be read or is
 * not a CPython we know (one line says why); 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cpython.h"

#define MAX_PY_THREADS 1024
#define MAX_PY_FRAMES  256

static void usage(FILE *f)
{
	fprintf(f, "usage: stoke dump PID\n"
		   "Print every Python thread's current stack of a running CPython 3.11-3.13\n"
		   "process once, innermost frame first, as 'qualname (file:line)'.\n");
}

/* The thread's state letter (R, S, D, ...) from /proc/PID/task/TID/stat. */
static char thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

static void thread_name(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static void print_cmdline(pid_t pid)
{
	char path[64], buf[1024];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	for (size_t i = 0; i + 1 < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
	printf("Process %d: %s\n", (int)pid, buf);
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		return cli_usage_error("dump", "unknown option");
	}
	if (optind + 1 != argc)
		return cli_usage_error("dump", "expected one PID");
	char *end;
	errno = 0;
	long pid = strtol(argv[optind], &end, 10);
	if (errno || *end || end == argv[optind] || pid <= 0 || pid > 0x3fffffff)
		return cli_usage_error("dump", "'%s' is not a process id", argv[optind]);

	struct stoke_py *py;
	char why[512];
	int r = stoke_py_open((pid_t)pid, &py, NULL, why, sizeof(why));
	if (r < 0) {
		if (r == -ESRCH || r == -ENOENT || r == -ENOTSUP || r == -EACCES || r == -EPERM)
			fprintf(stderr, "stoke: dump: %s\n", why);
		else
			fprintf(stderr, "stoke: dump: process %ld: %s\n", pid, strerror(-r));
		return 1;
	}
	struct stoke_py_thread *th = calloc(MAX_PY_THREADS, sizeof(*th));
	struct stoke_py_frame *fr = calloc(MAX_PY_FRAMES, sizeof(*fr));
	int ret = 1;
	if (!th || !fr) {
		fprintf(stderr, "stoke: dump: out of memory\n");
		goto out;
	}
	int nth = stoke_py_threads(py, th, MAX_PY_THREADS);
	if (nth < 0) {
		fprintf(stderr, "stoke: dump: process %ld: cannot read its thread list: %s\n", pid,
			strerror(-nth));
		goto out;
	}
	print_cmdline((pid_t)pid);
	printf("Python %s (%s)\n", stoke_py_version(py), stoke_py_binary(py));
	for (int i = 0; i < nth; i++) {
		char name[64];
		char st = thread_state((pid_t)pid, th[i].tid);
		thread_name((pid_t)pid, th[i].tid, name, sizeof(name));
		printf("\nThread %d (%s) \"%s\"\n", (int)th[i].tid,
		       st == 'R'   ? "active"
		       : st == '?' ? "gone"
				   : "idle",
		       name);
		int n = stoke_py_stack(py, th[i].tstate, fr, MAX_PY_FRAMES);
		if (n < 0) {
			printf("    [python-truncated]\n");
			continue;
		}
		for (int k = 0; k < n; k++) {
			if (!fr[k].filename[0])
				printf("    %s\n", fr[k].qualname);
			else if (fr[k].lineno >= 0)
				printf("    %s (%s:%d)\n", fr[k].qualname, fr[k].filename,
				       fr[k].lineno);
			else
				printf("    %s (%s)\n", fr[k].qualname, fr[k].filename);
		}
	}
	ret = 0;
out:
	free(th);
	free(fr);
	stoke_py_close(py);
	return ret;
}
