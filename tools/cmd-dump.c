/*
 * `stoke dump PID`: every Python thread's current stack, once, like
 * `py-spy dump`: innermost first, a frame per line as
 * `qualname (file:line)`. The process is not stopped: its memory is read
 * with process_vm_readv while it runs (see stack/cpython/reader.c), so a
 * stack that changes under the read ends with [python-truncated].
 *
 * --native (like py-spy's) stops every thread for the time of the read
 * (PTRACE_SEIZE + PTRACE_INTERRUPT, so a crash of stoke detaches them), takes
 * each one's registers and a copy of its stack, unwinds it the way a DWARF
 * sample is (symbolizer/unwind.c), and merges: each
 * _PyEval_EvalFrameDefault frame is replaced by the Python frames it runs,
 * C extension frames stay under their Python caller (stack/cpython/merge.h).
 *
 * Exit status: 0 with the stacks; 1 when the process cannot be read or is
 * not a CPython we know (one line says why); 2 on a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>

#include "cli.h"
#include "stack/cpython/cpython.h"
#include "sampler/maps.h"
#include "stack/cpython/merge.h"
#include "sampler/sample.h"
#include "symbolizer/symbolizer.h"

#define MAX_PY_THREADS 1024
#define MAX_PY_FRAMES  256
#define MAX_NATIVE     512
/* The stack copied for unwinding, as a DWARF-mode sample's */
#define STACK_COPY (64u << 10)
#define MAX_TASKS  4096

static void usage(FILE *f)
{
	fprintf(f, "usage: stoke dump [--native] PID\n"
		   "Print every Python thread's current stack of a running CPython 3.11-3.13\n"
		   "process once, innermost frame first, as 'qualname (file:line)'.\n"
		   "  -n, --native  also native frames: stops the threads while it reads them,\n"
		   "                each _PyEval_EvalFrameDefault replaced by its Python frames\n");
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

/* The threads stopped for --native, to be let go whatever happens. */
struct stopped {
	pid_t tids[MAX_TASKS];
	int n;
};

static void resume_all(struct stopped *st)
{
	for (int i = 0; i < st->n; i++)
		ptrace(PTRACE_DETACH, st->tids[i], NULL, NULL);
	st->n = 0;
}

/* Stop every thread of pid. Threads that exit meanwhile are skipped.
 * Returns 0 or -errno of the first PTRACE_SEIZE (e.g. -EPERM). */
static int stop_all(pid_t pid, struct stopped *st)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && st->n < MAX_TASKS) {
		pid_t tid = (pid_t)atoi(de->d_name);
		int status;
		if (tid <= 0)
			continue;
		if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
			if (errno != ESRCH && !r)
				r = -errno;
			continue;
		}
		st->tids[st->n++] = tid;
		if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0 ||
		    waitpid(tid, &status, __WALL) < 0)
			continue; /* gone: its detach fails harmlessly */
	}
	closedir(d);
	return st->n ? 0 : (r ? r : -ESRCH);
}

static int feed_map(const struct stoke_maps_entry *e, void *data)
{
	struct stoke_symbolizer *s = ((void **)data)[0];
	pid_t pid = *(pid_t *)((void **)data)[1];
	struct stoke_record rec;

	stoke_maps_entry_to_record(e, (uint32_t)pid, &rec);
	stoke_symbolizer_record(s, &rec);
	return 0;
}

/* A stopped thread's native frames, innermost first, as a DWARF sample's:
 * located and unwound (step 1) while it is stopped, named after. */
static int native_locs(struct stoke_symbolizer *s, pid_t pid, pid_t tid, uint8_t *stack,
		       struct stoke_frame_loc *locs, size_t max)
{
	struct user_regs_struct r;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &r) < 0)
		return -errno;
	struct iovec local = {.iov_base = stack, .iov_len = STACK_COPY};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)r.rsp, .iov_len = STACK_COPY};
	ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	/* The neutral sample (sampler/sample.h): DWARF-numbered registers and
	 * the stack copied from SP up. */
	struct stoke_sample smp = {
		.pid = (uint32_t)pid,
		.tid = (uint32_t)tid,
		.ip = r.rip,
		.regs_kind = STOKE_REGS_X86_64,
		.regs = {
			[STOKE_DWARF_RAX] = r.rax, [STOKE_DWARF_RDX] = r.rdx,
			[STOKE_DWARF_RCX] = r.rcx, [STOKE_DWARF_RBX] = r.rbx,
			[STOKE_DWARF_RSI] = r.rsi, [STOKE_DWARF_RDI] = r.rdi,
			[STOKE_DWARF_RBP] = r.rbp, [STOKE_DWARF_RSP] = r.rsp,
			[STOKE_DWARF_R8 + 0] = r.r8, [STOKE_DWARF_R8 + 1] = r.r9,
			[STOKE_DWARF_R8 + 2] = r.r10, [STOKE_DWARF_R8 + 3] = r.r11,
			[STOKE_DWARF_R8 + 4] = r.r12, [STOKE_DWARF_R8 + 5] = r.r13,
			[STOKE_DWARF_R8 + 6] = r.r14, [STOKE_DWARF_R8 + 7] = r.r15,
			[STOKE_DWARF_RIP] = r.rip,
		},
		.stack_addr = r.rsp,
		.stack_len = got > 0 ? (uint64_t)got : 0,
		.stack = stack,
	};
	return stoke_symbolizer_sample_locs(s, &smp, locs, max);
}

/* What is kept of a thread while the process is stopped. */
struct tdump {
	pid_t tid;
	char state;
	struct stoke_py_frame *py;
	int npy; /* -errno when unreadable */
	struct stoke_frame_loc *locs;
	int nlocs; /* -errno when unreadable; 0 without --native */
};

static void print_native(const struct stoke_symbol *f)
{
	const char *mod = f->module ? strrchr(f->module, '/') : NULL;

	mod = mod ? mod + 1 : f->module ? f->module : "?";
	if (f->function && f->file && f->line)
		printf("    %s (%s:%u)\n", f->function, f->file, f->line);
	else if (f->function)
		printf("    %s (%s)\n", f->function, mod);
	else
		printf("    0x%llx (%s+0x%llx)\n", (unsigned long long)f->addr, mod,
		       (unsigned long long)f->offset);
}

static void print_py(const struct stoke_py_frame *f)
{
	if (!f->filename[0])
		printf("    %s\n", f->qualname);
	else if (f->lineno >= 0)
		printf("    %s (%s:%d)\n", f->qualname, f->filename, f->lineno);
	else
		printf("    %s (%s)\n", f->qualname, f->filename);
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'}, {"native", no_argument, NULL, 'n'}, {0}};
	bool native = false;
	int c;

	while ((c = getopt_long(argc, argv, "+hn", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == 'n') {
			native = true;
			continue;
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
	struct stopped *st = calloc(1, sizeof(*st));
	struct stoke_symbol *nf = calloc(MAX_NATIVE, sizeof(*nf));
	const char **names = calloc(MAX_NATIVE, sizeof(*names));
	struct stoke_py_merged *mg = calloc(MAX_NATIVE + MAX_PY_FRAMES, sizeof(*mg));
	uint8_t *stack = malloc(STACK_COPY);
	struct stoke_frame_loc *locs = calloc(MAX_NATIVE, sizeof(*locs));
	struct stoke_symbolizer *sym = NULL;
	struct tdump *td = NULL;
	struct tdump *prestate = NULL;
	int ret = 1, nth = 0, npre = 0;
	if (!th || !fr || !st || !nf || !names || !mg || !stack || !locs) {
		fprintf(stderr, "stoke: dump: out of memory\n");
		goto out;
	}
	if (native) {
		struct stoke_symbolizer_opts so = {.no_kernel = true};
		pid_t p = (pid_t)pid;
		void *feed[2] = {NULL, &p};
		r = stoke_symbolizer_new(&so, &sym);
		if (r < 0) {
			fprintf(stderr, "stoke: dump: %s\n", strerror(-r));
			goto out;
		}
		/* the threads' states as they were, before they are stopped */
		npre = stoke_py_threads(py, th, MAX_PY_THREADS);
		prestate = calloc(MAX_PY_THREADS, sizeof(*prestate));
		if (!prestate)
			goto out;
		for (int i = 0; i < npre; i++) {
			prestate[i].tid = th[i].tid;
			prestate[i].state = thread_state((pid_t)pid, th[i].tid);
		}
		r = stop_all((pid_t)pid, st);
		if (r < 0) {
			fprintf(stderr, "stoke: dump: cannot stop process %ld for --native: %s\n",
				pid, strerror(-r));
			goto out;
		}
		/* the mappings once everything is stopped: they cannot change */
		feed[0] = sym;
		stoke_maps_read_pid((pid_t)pid, feed_map, feed);
	}
	nth = stoke_py_threads(py, th, MAX_PY_THREADS);
	if (nth < 0) {
		fprintf(stderr, "stoke: dump: process %ld: cannot read its thread list: %s\n", pid,
			strerror(-nth));
		goto out;
	}
	/* with --native, the states before the threads were stopped */
	td = calloc((size_t)nth + 1, sizeof(*td));
	if (!td) {
		fprintf(stderr, "stoke: dump: out of memory\n");
		goto out;
	}
	for (int i = 0; i < nth; i++) {
		td[i].tid = th[i].tid;
		td[i].state = prestate ? '?' : thread_state((pid_t)pid, th[i].tid);
		for (int k = 0; k < npre; k++)
			if (prestate[k].tid == th[i].tid)
				td[i].state = prestate[k].state;
		int n = stoke_py_stack(py, th[i].tstate, fr, MAX_PY_FRAMES);
		td[i].npy = n;
		if (n > 0 && (td[i].py = malloc((size_t)n * sizeof(*fr))))
			memcpy(td[i].py, fr, (size_t)n * sizeof(*fr));
		else if (n > 0)
			td[i].npy = -ENOMEM;
		if (!native)
			continue;
		int nl = native_locs(sym, (pid_t)pid, th[i].tid, stack, locs, MAX_NATIVE);
		td[i].nlocs = nl;
		if (nl > 0 && (td[i].locs = malloc((size_t)nl * sizeof(*locs))))
			memcpy(td[i].locs, locs, (size_t)nl * sizeof(*locs));
		else if (nl > 0)
			td[i].nlocs = -ENOMEM;
	}
	/* everything is read: let the threads go before naming the frames */
	resume_all(st);

	print_cmdline((pid_t)pid);
	printf("Python %s (%s)\n", stoke_py_version(py), stoke_py_binary(py));
	for (int i = 0; i < nth; i++) {
		char name[64];
		char state = td[i].state;
		thread_name((pid_t)pid, td[i].tid, name, sizeof(name));
		printf("\nThread %d (%s) \"%s\"\n", (int)td[i].tid,
		       state == 'R'   ? "active"
		       : state == '?' ? "gone"
				      : "idle",
		       name);
		int n = td[i].npy;
		if (n < 0) {
			printf("    [python-truncated]\n");
			continue;
		}
		int nl = td[i].nlocs, nn = 0;
		if (nl < 0)
			printf("    [native frames unreadable: %s]\n", strerror(-nl));
		for (int k = 0; k < nl && nn < MAX_NATIVE; k++)
			nn += stoke_symbolizer_loc_frames(sym, &td[i].locs[k], nf + nn,
							  (size_t)(MAX_NATIVE - nn));
		if (nn <= 0) {
			for (int k = 0; k < n; k++)
				print_py(&td[i].py[k]);
			continue;
		}
		for (int k = 0; k < nn; k++)
			names[k] = nf[k].function;
		size_t m = stoke_py_merge(names, (size_t)nn, td[i].py, (size_t)n, mg,
					  MAX_NATIVE + MAX_PY_FRAMES);
		for (size_t k = 0; k < m; k++) {
			if (mg[k].py_idx >= 0)
				print_py(&td[i].py[mg[k].py_idx]);
			else
				print_native(&nf[mg[k].native_idx]);
		}
	}
	ret = 0;
out:
	if (st)
		resume_all(st);
	for (int i = 0; td && i < nth; i++) {
		free(td[i].py);
		free(td[i].locs);
	}
	free(td);
	free(locs);
	free(prestate);
	stoke_symbolizer_free(sym);
	free(st);
	free(nf);
	free(names);
	free(mg);
	free(stack);
	free(th);
	free(fr);
	stoke_py_close(py);
	return ret;
}
