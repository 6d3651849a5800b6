/*
 * struct stoke_sampler: one backend (sampler/backend.h) chosen by the
 * options, and the choices made for every backend (options, event names,
 * call-graph modes, error texts). auto resolves at launch: perf_event where
 * perf_event_open is allowed, else the signal sampler.
 */
#include "sampler/sampler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sampler/backend.h"
#include "sampler/bpf/bpf_sampler.h"
#include "sampler/perf/perf.h"

#define STOKE_SAMPLER_DEFAULT_FREQ 999

struct stoke_sampler {
	struct stoke_sampler_opts opts;
	stoke_sampler_cb cb;
	void *userdata;
	/* The backend every operation goes to, and its state. */
	const struct stoke_backend_ops *ops;
	void *impl;
	/* perf's, kept while another backend runs: auto decides at launch
	 * (perf is set up first, as every backend but bpf and a custom one
	 * may turn out to be perf). */
	void *perf;
	/* What the signal sampler stands in for (it has no info op). */
	enum stoke_event event;
	bool fell_back;
};

void stoke_sampler_opts_init(struct stoke_sampler_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->event = STOKE_EVENT_CPU_CLOCK;
	opts->freq = STOKE_SAMPLER_DEFAULT_FREQ;
	opts->callgraph = STOKE_CALLGRAPH_FP;
	opts->stack_size = STOKE_DWARF_STACK_DEFAULT;
}

const char *stoke_event_name(enum stoke_event e)
{
	switch (e) {
	case STOKE_EVENT_CPU_CLOCK:
		return "cpu-clock";
	case STOKE_EVENT_TASK_CLOCK:
		return "task-clock";
	case STOKE_EVENT_CYCLES:
		return "cycles";
	case STOKE_EVENT_WALL:
		return "wall";
	}
	return "?";
}

int stoke_event_parse(const char *s, enum stoke_event *ret)
{
	if (!strcmp(s, "cpu-clock"))
		*ret = STOKE_EVENT_CPU_CLOCK;
	else if (!strcmp(s, "task-clock"))
		*ret = STOKE_EVENT_TASK_CLOCK;
	else if (!strcmp(s, "cycles") || !strcmp(s, "cpu-cycles"))
		*ret = STOKE_EVENT_CYCLES;
	else if (!strcmp(s, "wall"))
		*ret = STOKE_EVENT_WALL;
	else
		return -EINVAL;
	return 0;
}

int stoke_sampler_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb,
		      void *userdata, struct stoke_sampler **ret)
{
	const struct stoke_backend_ops *ops = opts->custom ? opts->custom : &stoke_perf_backend;
	struct stoke_sampler *s;
	int r;

	if (!cb || !opts->freq || opts->freq > 100000)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	s->cb = cb;
	s->userdata = userdata;
	s->event = opts->event;
	r = ops->new(opts, cb, userdata, &s->impl);
	if (r < 0) {
		free(s);
		return r;
	}
	s->ops = ops;
	if (ops == &stoke_perf_backend)
		s->perf = s->impl;
	if (!opts->custom && opts->backend == STOKE_BACKEND_BPF) {
		void *bpf;

		r = stoke_bpf_backend.new(opts, cb, userdata, &bpf);
		if (r < 0) {
			stoke_sampler_free(s);
			return r;
		}
		s->ops = &stoke_bpf_backend;
		s->impl = bpf;
	}
	*ret = s;
	return 0;
}

void stoke_sampler_free(struct stoke_sampler *s)
{
	if (!s)
		return;
	if (s->impl != s->perf)
		s->ops->free(s->impl);
	if (s->perf)
		stoke_perf_backend.free(s->perf);
	free(s);
}

int stoke_sampler_attach(struct stoke_sampler *s, pid_t pid)
{
	if (!s->ops->attach)
		return -EOPNOTSUPP;
	return s->ops->attach(s->impl, pid);
}

int stoke_sampler_attach_threads(struct stoke_sampler *s, pid_t pid, const pid_t *tids,
				 size_t n)
{
	if (!s->ops->attach_threads)
		return -EOPNOTSUPP;
	return s->ops->attach_threads(s->impl, pid, tids, n);
}

int stoke_sampler_perf_probe(void)
{
	return stoke_perf_probe();
}

/*
 * Whether this launch goes to the signal sampler: asked for, or auto where
 * perf_event_open is refused (or the event is wall-clock time, which only
 * the signal sampler has). Makes it the backend then. Returns 0 or -errno.
 */
static int launch_backend(struct stoke_sampler *s)
{
	struct stoke_sampler_opts o = s->opts;
	void *sig;
	int r;

	if (s->ops != &stoke_perf_backend || o.backend == STOKE_BACKEND_PERF)
		return 0;
	if (o.backend == STOKE_BACKEND_AUTO && o.event != STOKE_EVENT_WALL) {
		r = stoke_perf_probe();
		if (r == 0)
			return 0;
		log_warn("perf_event_open is not allowed here (%s): sampling with signals "
			 "instead (--sampler signal: user space only)",
			 strerror(-r));
	}
	/* The thread CPU-time timer stands in for cycles where there is no
	 * perf_event, as cpu-clock does where there is no PMU. */
	if (o.event == STOKE_EVENT_CYCLES) {
		o.event = STOKE_EVENT_CPU_CLOCK;
		s->event = STOKE_EVENT_CPU_CLOCK;
		s->fell_back = true;
	}
	r = stoke_signal_backend.new(&o, s->cb, s->userdata, &sig);
	if (r < 0)
		return r;
	s->ops = &stoke_signal_backend;
	s->impl = sig;
	return 0;
}

enum stoke_sampler_backend stoke_sampler_backend(const struct stoke_sampler *s)
{
	return s->ops->kind;
}

int stoke_sampler_launch(struct stoke_sampler *s, char *const argv[], pid_t *ret_pid)
{
	int r;

	if (!argv || !argv[0])
		return -EINVAL;
	r = launch_backend(s);
	if (r < 0)
		return r;
	if (!s->ops->launch)
		return -EOPNOTSUPP;
	return s->ops->launch(s->impl, argv, ret_pid);
}

int stoke_sampler_drain(struct stoke_sampler *s)
{
	return s->ops->drain(s->impl, false);
}

int stoke_sampler_flush(struct stoke_sampler *s)
{
	return s->ops->drain(s->impl, true);
}

int stoke_sampler_pollfds(const struct stoke_sampler *s, const int **ret)
{
	return s->ops->pollfds(s->impl, ret);
}

void stoke_sampler_disable(struct stoke_sampler *s)
{
	s->ops->disable(s->impl);
}

static void sampler_info(const struct stoke_sampler *s, struct stoke_backend_info *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->event = s->event;
	ret->fell_back = s->fell_back;
	if (s->ops->info)
		s->ops->info(s->impl, ret);
}

enum stoke_event stoke_sampler_event(const struct stoke_sampler *s)
{
	struct stoke_backend_info info;

	sampler_info(s, &info);
	return info.event;
}

bool stoke_sampler_fell_back(const struct stoke_sampler *s)
{
	struct stoke_backend_info info;

	sampler_info(s, &info);
	return info.fell_back;
}

bool stoke_sampler_kernel_dropped(const struct stoke_sampler *s)
{
	struct stoke_backend_info info;

	sampler_info(s, &info);
	return info.kernel_dropped;
}

void stoke_sampler_get_stats(const struct stoke_sampler *s, struct stoke_sampler_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	s->ops->get_stats(s->impl, ret);
}

const char *stoke_sampler_strerror(int err)
{
	const char *bpf_msg = stoke_bpf_strerror(err);

	if (bpf_msg)
		return bpf_msg;
	switch (err) {
	case -ESRCH:
		return "no such process";
	case -EACCES:
	case -EPERM: {
		static char buf[512];
		_cleanup_free_ char *p = NULL, *status = NULL;
		const char *seccomp;
		int level = 2;

		/* Not every refusal is perf_event_paranoid's: root is above
		 * it, and a seccomp filter (a container's default profile)
		 * or a security module refuses perf_event_open to anyone. */
		if (stoke_read_file("/proc/self/status", &status, 1 << 16) > 0 &&
		    (seccomp = strstr(status, "\nSeccomp:")) && atoi(seccomp + 9) == 2) {
			snprintf(buf, sizeof(buf),
				 "perf_event_open is denied: stoke runs under a seccomp filter "
				 "(a container or sandbox). A command stoke launches can be "
				 "profiled with --sampler signal; attaching to a running process "
				 "needs perf_event (or BPF)");
			return buf;
		}
		if (geteuid() == 0) {
			snprintf(buf, sizeof(buf),
				 "perf_event_open is denied even to root (a security module: "
				 "SELinux, AppArmor, lockdown). A command stoke launches can be "
				 "profiled with --sampler signal; attaching to a running process "
				 "needs perf_event (or BPF)");
			return buf;
		}
		if (stoke_read_file("/proc/sys/kernel/perf_event_paranoid", &p, 64) > 0)
			level = atoi(p);
		snprintf(buf, sizeof(buf),
			 "permission denied (kernel.perf_event_paranoid=%d): run as root or "
			 "with CAP_PERFMON, or lower the setting with "
			 "'sysctl kernel.perf_event_paranoid=1'; another user's process "
			 "also needs CAP_SYS_PTRACE; a command stoke launches can be "
			 "profiled with --sampler signal",
			 level);
		return buf;
	}
	case -EMFILE:
	case -ENFILE:
		return "too many open files: raise the limit with 'ulimit -n'";
	case -ENOENT:
	case -EOPNOTSUPP:
		return "the event is not supported on this machine";
	case -E2BIG:
		return "too many CPUs";
	default:
		return strerror(-err);
	}
}

int stoke_callgraph_parse(const char *s, enum stoke_callgraph *ret_mode, uint32_t *ret_stack_size)
{
	char *end;
	unsigned long v;

	if (strcmp(s, "fp") == 0) {
		*ret_mode = STOKE_CALLGRAPH_FP;
		*ret_stack_size = STOKE_DWARF_STACK_DEFAULT;
		return 0;
	}
	if (strcmp(s, "auto") == 0 || strcmp(s, "dwarf") == 0) {
		*ret_mode = STOKE_CALLGRAPH_DWARF;
		*ret_stack_size = STOKE_DWARF_STACK_DEFAULT;
		return 0;
	}
	if (strncmp(s, "dwarf,", 6) != 0 || s[6] < '0' || s[6] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s + 6, &end, 10);
	if (errno || *end || v == 0 || v > 65528 || v % 8)
		return -EINVAL;
	*ret_mode = STOKE_CALLGRAPH_DWARF;
	*ret_stack_size = (uint32_t)v;
	return 0;
}

const char *stoke_callgraph_format(enum stoke_callgraph mode, uint32_t stack_size, char *buf,
				   size_t size)
{
	if (mode == STOKE_CALLGRAPH_FP)
		snprintf(buf, size, "fp");
	else if (stack_size == STOKE_DWARF_STACK_DEFAULT)
		snprintf(buf, size, "dwarf");
	else
		snprintf(buf, size, "dwarf,%u", stack_size);
	return buf;
}
