/*
 * A profiling session: sampler records flow through here into the
 * symbolizer (mappings, exec, forks) and, for samples, are turned into
 * frames and a stack in the profile model.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "symbolizer.h"
#include "util.h"

/* The kernel caps callchains at kernel.perf_event_max_stack (127 by
 * default); leave room for a raised sysctl. */
#define SESSION_MAX_FRAMES 1024

struct target {
	pid_t pid;
	bool alive;
};

struct stoke_session {
	struct stoke_session_opts opts;
	struct stoke_sampler *sampler;
	struct stoke_symbolizer *symbolizer;
	struct stoke_profile *profile;

	struct target *targets;
	size_t ntargets, targets_cap;

	struct stoke_symbol frames[SESSION_MAX_FRAMES];
	uint64_t samples;
	uint64_t unknown_frames;
	int error; /* first error seen inside the record callback */
	bool stopped;
	/* Kernel counters at the last rotation: each profile reports its own
	 * share of lost and throttled samples. */
	uint64_t lost_base, throttled_base;
	/* The first target's executable, for run.json. */
	char *exe;
	char *build_id;
};

void stoke_session_opts_init(struct stoke_session_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	stoke_sampler_opts_init(&opts->sampler);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint8_t pframe_kind(enum stoke_frame_kind k)
{
	switch (k) {
	case STOKE_FRAME_KERNEL:
		return STOKE_PFRAME_KERNEL;
	case STOKE_FRAME_JIT:
		return STOKE_PFRAME_JIT;
	case STOKE_FRAME_SYNTHETIC:
		return STOKE_PFRAME_SYNTHETIC;
	case STOKE_FRAME_USER:
		break;
	}
	return STOKE_PFRAME_USER;
}

/* Intern one symbolized frame, with its module offset (named ones too: the
 * pprof keeps real addresses, for -disasm; the per-function views drop it,
 * formats/merge.c). */
static int session_frame(struct stoke_session *s, const struct stoke_symbol *sym,
			 uint32_t *ret)
{
	struct stoke_pframe f = { 0 };
	int r;

	r = stoke_profile_intern(s->profile, sym->function, &f.name);
	if (r < 0)
		return r;
	r = stoke_profile_intern(s->profile, sym->file, &f.file);
	if (r < 0)
		return r;
	r = stoke_profile_intern(s->profile, sym->module, &f.module);
	if (r < 0)
		return r;
	f.line = sym->line;
	f.kind = pframe_kind(sym->kind);
	f.inlined = sym->inlined;
	f.offset = sym->module ? sym->offset : sym->addr;
	if (!sym->function)
		s->unknown_frames++;
	return stoke_profile_frame(s->profile, &f, ret);
}

static int session_sample(struct stoke_session *s, const struct stoke_sample *sample)
{
	uint32_t stack = 0;
	int n, r;

	if (s->opts.max_samples) {
		size_t held;

		stoke_profile_samples(s->profile, &held);
		if (held >= s->opts.max_samples)
			return -E2BIG;
	}
	n = stoke_symbolizer_sample(s->symbolizer, sample, s->frames, SESSION_MAX_FRAMES);
	/* Frames come leaf first; the prefix tree is built root first. */
	for (int i = n - 1; i >= 0; i--) {
		uint32_t frame;

		r = session_frame(s, &s->frames[i], &frame);
		if (r < 0)
			return r;
		r = stoke_profile_stack(s->profile, stack, frame, &stack);
		if (r < 0)
			return r;
	}
	r = stoke_profile_thread(s->profile, sample->pid, sample->tid, NULL);
	if (r < 0)
		return r;
	r = stoke_profile_add_sample(s->profile, sample->tid, sample->time, stack, 1);
	if (r < 0)
		return r;
	s->samples++;
	{
		struct stoke_pmeta *m = stoke_profile_meta(s->profile);

		if (!m->time_first || sample->time < m->time_first)
			m->time_first = sample->time;
		if (sample->time > m->time_last)
			m->time_last = sample->time;
	}
	return 0;
}

/* A new thread (FORK within a process) starts with its creator's name;
 * the kernel sends COMM only when the name changes. */
static int session_fork(struct stoke_session *s, const struct stoke_task *t)
{
	const struct stoke_pthread *parent = stoke_profile_find_thread(s->profile, t->ptid);
	const char *name = parent ? stoke_profile_string(s->profile, parent->name) : NULL;

	if (stoke_profile_find_thread(s->profile, t->tid))
		return 0;
	return stoke_profile_thread(s->profile, t->pid, t->tid, name);
}

static int session_record(const struct stoke_record *rec, void *userdata)
{
	struct stoke_session *s = userdata;
	int r = 0;

	switch (rec->type) {
	case STOKE_REC_SAMPLE:
		r = session_sample(s, &rec->sample);
		break;
	case STOKE_REC_COMM:
		r = stoke_symbolizer_record(s->symbolizer, rec);
		if (r == 0)
			r = stoke_profile_thread(s->profile, rec->comm.pid, rec->comm.tid,
						 rec->comm.comm);
		break;
	case STOKE_REC_FORK:
		r = stoke_symbolizer_record(s->symbolizer, rec);
		if (r == 0)
			r = session_fork(s, &rec->task);
		break;
	case STOKE_REC_MMAP:
	case STOKE_REC_EXIT:
		r = stoke_symbolizer_record(s->symbolizer, rec);
		break;
	default:
		break;
	}
	if (r < 0 && !s->error)
		s->error = r;
	return r;
}

int stoke_session_new(const struct stoke_session_opts *opts, struct stoke_session **ret)
{
	struct stoke_symbolizer_opts sopts = {
		.no_kernel = opts->no_kernel_symbols,
		.debuginfo_path = opts->debuginfo_path,
		.demangle = opts->demangle,
		.file_creds = opts->file_creds,
	};
	struct stoke_session *s;
	struct stoke_pmeta *m;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	r = stoke_profile_new(&s->profile);
	if (r == 0)
		r = stoke_symbolizer_new(&sopts, &s->symbolizer);
	if (r == 0)
		r = stoke_sampler_new(&opts->sampler, session_record, s, &s->sampler);
	if (r < 0) {
		stoke_session_free(s);
		return r;
	}
	m = stoke_profile_meta(s->profile);
	m->frequency = opts->sampler.freq;
	m->period_ns = 1000000000ULL / opts->sampler.freq;
	m->start_ns = wall_ns();
	r = stoke_profile_intern(s->profile,
				 opts->sampler.callgraph == STOKE_CALLGRAPH_DWARF ? "dwarf" : "fp",
				 &m->callgraph);
	if (r < 0) {
		stoke_session_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void stoke_session_free(struct stoke_session *s)
{
	if (!s)
		return;
	stoke_sampler_free(s->sampler);
	stoke_symbolizer_free(s->symbolizer);
	stoke_profile_free(s->profile);
	free(s->targets);
	free(s->exe);
	free(s->build_id);
	free(s);
}

/* Note the executable of the first target while it is alive: its path and
 * build-id identify what was profiled. */
static void note_exe(struct stoke_session *s, pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	if (s->exe)
		return;
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = '\0';
	s->exe = strdup(buf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (stoke_elf_build_id_hex(fd, &s->build_id) < 0)
			s->build_id = NULL;
		close(fd);
	}
}

void stoke_session_run_info(const struct stoke_session *s, struct stoke_run_info *ret)
{
	struct stoke_session_stats st;

	stoke_session_get_stats(s, &st);
	memset(ret, 0, sizeof(*ret));
	ret->exe = s->exe;
	ret->build_id = s->build_id;
	ret->unwind_failed = st.unwind_no_cfi + st.unwind_bad_frame;
	ret->truncated = st.unwind_truncated + st.unwind_max_depth;
}

static int add_target(struct stoke_session *s, pid_t pid)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);

	if (STOKE_GROW(s->targets, s->targets_cap, s->ntargets + 1) < 0)
		return -ENOMEM;
	s->targets[s->ntargets++] = (struct target){ pid, true };
	if (!m->pid)
		m->pid = (uint32_t)pid;
	note_exe(s, pid);
	return 0;
}

/* The command line of pid, with NULs turned into spaces. */
static void set_command_from_proc(struct stoke_session *s, pid_t pid)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);
	_cleanup_free_ char *buf = NULL;
	char path[64];
	ssize_t n;

	if (m->command)
		return;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	n = stoke_read_file(path, &buf, 64 * 1024);
	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	(void)stoke_profile_intern(s->profile, buf, &m->command);
}

int stoke_session_attach(struct stoke_session *s, pid_t pid)
{
	int r;

	set_command_from_proc(s, pid);
	r = stoke_sampler_attach(s->sampler, pid);
	if (r < 0)
		return r;
	if (s->error)
		return s->error;
	return add_target(s, pid);
}

int stoke_session_launch(struct stoke_session *s, char *const argv[], pid_t *ret_pid)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);
	size_t len = 0;
	char *cmd;
	int r;

	for (size_t i = 0; argv[i]; i++)
		len += strlen(argv[i]) + 1;
	cmd = malloc(len + 1);
	if (!cmd)
		return -ENOMEM;
	cmd[0] = '\0';
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			strcat(cmd, " ");
		strcat(cmd, argv[i]);
	}
	r = stoke_profile_intern(s->profile, cmd, &m->command);
	free(cmd);
	if (r < 0)
		return r;
	r = stoke_sampler_launch(s->sampler, argv, ret_pid);
	if (r < 0)
		return r;
	return add_target(s, *ret_pid);
}

int stoke_session_pollfds(const struct stoke_session *s, const int **ret)
{
	return stoke_sampler_pollfds(s->sampler, ret);
}

int stoke_session_process(struct stoke_session *s)
{
	int r = stoke_sampler_drain(s->sampler);

	if (s->error)
		return s->error;
	return r;
}

void stoke_session_target_exited(struct stoke_session *s, pid_t pid)
{
	for (size_t i = 0; i < s->ntargets; i++)
		if (s->targets[i].pid == pid)
			s->targets[i].alive = false;
}

unsigned stoke_session_targets_alive(const struct stoke_session *s)
{
	unsigned n = 0;

	for (size_t i = 0; i < s->ntargets; i++)
		n += s->targets[i].alive;
	return n;
}

/* After reading records (r: how that went), bring the profile's metadata
 * up to date: the end time and this profile's share of the kernel's lost
 * and throttled counts when counters is set, and the event's name. */
static int fill_meta(struct stoke_session *s, int r, bool counters)
{
	struct stoke_pmeta *m = stoke_profile_meta(s->profile);

	if (counters) {
		struct stoke_sampler_stats st;

		if (s->error)
			r = s->error;
		stoke_sampler_get_stats(s->sampler, &st);
		m->end_ns = wall_ns();
		m->lost = st.lost - s->lost_base;
		m->throttled = st.throttled - s->throttled_base;
	}
	if (stoke_profile_intern(s->profile, stoke_event_name(stoke_sampler_event(s->sampler)),
				 &m->event) < 0 && r >= 0)
		r = -ENOMEM;
	return r < 0 ? r : 0;
}

int stoke_session_stop(struct stoke_session *s)
{
	if (s->stopped)
		return 0;
	s->stopped = true;
	stoke_sampler_disable(s->sampler);
	return fill_meta(s, stoke_sampler_flush(s->sampler), true);
}

int stoke_session_sync(struct stoke_session *s)
{
	if (s->stopped)
		return fill_meta(s, 0, false);
	return fill_meta(s, stoke_sampler_drain(s->sampler), true);
}

/* Copy what describes the recording, not its samples, into a fresh profile.
 * String ids are per profile, so strings are interned again. */
static int carry_over(const struct stoke_profile *from, struct stoke_profile *to)
{
	const struct stoke_pmeta *a = stoke_profile_cmeta(from);
	struct stoke_pmeta *b = stoke_profile_meta(to);
	const struct stoke_pthread *th;
	size_t n = 0;
	int r;

	b->frequency = a->frequency;
	b->period_ns = a->period_ns;
	b->pid = a->pid;
	b->start_ns = a->end_ns;
	r = stoke_profile_intern(to, stoke_profile_string(from, a->callgraph), &b->callgraph);
	if (r == 0)
		r = stoke_profile_intern(to, stoke_profile_string(from, a->command), &b->command);
	if (r == 0)
		r = stoke_profile_intern(to, stoke_profile_string(from, a->event), &b->event);
	th = stoke_profile_threads(from, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = stoke_profile_thread(to, th[i].pid, th[i].tid,
					 stoke_profile_string(from, th[i].name));
	return r;
}

int stoke_session_rotate(struct stoke_session *s, struct stoke_profile **ret)
{
	struct stoke_sampler_stats st;
	struct stoke_profile *fresh;
	int r;

	r = stoke_session_sync(s);
	if (r < 0)
		return r;
	r = stoke_profile_new(&fresh);
	if (r < 0)
		return r;
	r = carry_over(s->profile, fresh);
	if (r < 0) {
		stoke_profile_free(fresh);
		return r;
	}
	stoke_sampler_get_stats(s->sampler, &st);
	s->lost_base = st.lost;
	s->throttled_base = st.throttled;
	*ret = s->profile;
	s->profile = fresh;
	return 0;
}

const struct stoke_profile *stoke_session_profile(const struct stoke_session *s)
{
	return s->profile;
}

void stoke_session_get_stats(const struct stoke_session *s, struct stoke_session_stats *ret)
{
	struct stoke_sampler_stats st;
	size_t nthreads = 0;

	stoke_sampler_get_stats(s->sampler, &st);
	stoke_profile_threads(s->profile, &nthreads);
	memset(ret, 0, sizeof(*ret));
	ret->samples = s->samples;
	ret->lost = st.lost;
	ret->throttled = st.throttled;
	ret->malformed = st.malformed;
	ret->unknown_frames = s->unknown_frames;
	{
		struct stoke_symbolizer_stats ss;

		stoke_symbolizer_get_stats(s->symbolizer, &ss);
		ret->unwind_samples = ss.unwind_samples;
		ret->unwind_truncated = ss.unwind_truncated;
		ret->unwind_no_cfi = ss.unwind_no_cfi;
		ret->unwind_bad_frame = ss.unwind_bad_frame;
		ret->unwind_max_depth = ss.unwind_max_depth;
		ret->unwind_fp_links = ss.unwind_fp_links;
	}
	ret->threads = (uint32_t)nthreads;
	ret->targets_alive = stoke_session_targets_alive(s);
}

const char *stoke_session_event_name(const struct stoke_session *s)
{
	return stoke_event_name(stoke_sampler_event(s->sampler));
}

bool stoke_session_event_fell_back(const struct stoke_session *s)
{
	return stoke_sampler_fell_back(s->sampler);
}

bool stoke_session_kernel_dropped(const struct stoke_session *s)
{
	return stoke_sampler_kernel_dropped(s->sampler);
}
