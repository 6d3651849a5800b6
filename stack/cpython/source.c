/*
 * CPython frame source (see source.h).
 *
 * Each process is opened on its first sample (stack/cpython/reader.c): a
 * launched command becomes CPython at its exec, a fork child is a process
 * of its own. A thread is mapped to its PyThreadState through the
 * interpreter's thread list (native_thread_id); the list is read again when
 * an unknown thread is sampled (at most every RESCAN_NS of sample time, so
 * a process's native threads do not rescan it at every sample) and when it
 * is older than STALE_NS (threads end and their states are freed).
 *
 * At the sample: a BPF program (pyframes.bpf.c) attached to the sampling
 * perf events reads the thread's frame chain (code objects and instruction
 * pointers) as the sample is taken, for the threads whose PyThreadState is
 * in its tstates map; its events are matched here to the samples by
 * thread, time and sampled IP (see event_of). Only the code
 * objects are read from user space, each once (code_get caches them,
 * checked against reuse).
 *
 * After the sample: without the program (no BPF here, or a sampler that
 * does not take it), or for a sample with no event (a thread not in the
 * map yet: it is added now), the frames are read from user space when the
 * sample is drained, and marked approximate.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/log.h"
#include "common/strpool.h"
#include "cpython.h"
#include "offsets.h"
#include "source.h"

#ifdef STOKE_PYFRAMES_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "pyframes.skel.h"
#pragma GCC diagnostic pop
#endif
#include "pyframes_types.h"

#define MAX_FRAMES  256
#define MAX_THREADS 1024
#define RESCAN_NS   10000000ULL	  /* an unknown thread: list read again */
#define STALE_NS    1000000000ULL /* a list this old is read again */
/* Not CPython: read its maps again after REOPEN_NS, twice as long each time
 * up to REOPEN_MAX_NS (a program may load libpython late); an exec starts
 * afresh (cpy_exec). */
#define REOPEN_NS     100000000ULL
#define REOPEN_MAX_NS 10000000000ULL

struct proc {
	uint32_t pid;
	struct stoke_py *py;
	int err; /* the last open's error (py NULL) */
	bool noted;
	uint64_t opened_ns, scanned_ns;
	uint64_t reopen_ns; /* wait before the next open */
	struct stoke_py_thread *threads;
	int nthreads;
};

/* A thread's events not matched to a sample yet, oldest first (a ring of
 * cap, a power of two). The perf rings are read in batches and time-ordered
 * across CPUs, so a thread's events run ahead of its samples by up to a
 * batch: TQ_MAX (4 s at 999 Hz) bounds what is held. */
#define TQ_MAX 4096
struct tq {
	uint32_t tid;
	uint32_t head, n, cap;
	struct pyframes_event **ev;
};

struct cpy {
#ifdef STOKE_PYFRAMES_BPF
	struct pyframes *skel;
	struct ring_buffer *rb;
#endif
	struct stoke_u64map tqs;	   /* tid -> struct tq * */
	struct pyframes_event *last_event; /* the one matched last */
	/* perf's clock to the program's: event time - sample time */
	enum { OFF_NONE, OFF_CANDIDATE, OFF_KNOWN } off_state;
	int64_t off;
	unsigned confirmed, misses;
	uint64_t events, matched;
	stoke_cpython_note_fn note;
	void *ctx;
	struct proc *procs;
	size_t nprocs, cap;
	struct proc *last;
	struct stoke_u64map proc_index; /* pid -> position in procs + 1 */
	struct stoke_strpool *strs;	/* names handed out live as long as c */
	struct stoke_py_frame buf[MAX_FRAMES];
};

static const char *intern(struct cpy *c, const char *s)
{
	return stoke_strpool_intern(c->strs, s);
}

/* The entry of pid, or NULL (a process sampled by -a is one of many). */
static struct proc *proc_find(struct cpy *c, uint32_t pid)
{
	uint64_t pos;

	if (c->last && c->last->pid == pid)
		return c->last;
	pos = stoke_u64map_get(&c->proc_index, pid);
	return pos ? &c->procs[pos - 1] : NULL;
}

static struct proc *proc_get(struct cpy *c, uint32_t pid, uint64_t now)
{
	struct proc *p = proc_find(c, pid);

	if (!p) {
		if (c->nprocs == c->cap) {
			size_t n = c->cap ? c->cap * 2 : 8;
			struct proc *t = realloc(c->procs, n * sizeof(*t));

			if (!t)
				return NULL;
			c->procs = t;
			c->cap = n;
			c->last = NULL; /* it pointed into the old array */
		}
		if (stoke_u64map_add(&c->proc_index, pid, c->nprocs + 1) < 0)
			return NULL;
		p = &c->procs[c->nprocs++];
		memset(p, 0, sizeof(*p));
		p->pid = pid;
		p->err = -ENOENT;
	}
	c->last = p;
	/* not CPython: maybe not yet (a launched command before its exec, a
	 * shell that execs python); an unknown version stays so */
	if (!p->py && p->err != -ENOTSUP && (!p->opened_ns || now - p->opened_ns >= p->reopen_ns)) {
		char why[512];

		why[0] = 0;
		p->opened_ns = now ? now : 1;
		p->reopen_ns = p->reopen_ns ? p->reopen_ns * 2 : REOPEN_NS;
		if (p->reopen_ns > REOPEN_MAX_NS)
			p->reopen_ns = REOPEN_MAX_NS;
		p->err = stoke_py_open((pid_t)pid, &p->py, NULL, why, sizeof(why));
		if (p->err < 0 && p->err != -ESRCH && !p->noted && c->note) {
			c->note(c->ctx, p->err == -ENOENT ? 0 : 1, why);
			p->noted = true;
		}
	}
	return p->py ? p : NULL;
}

#ifdef STOKE_PYFRAMES_BPF
static void bpf_publish(struct cpy *c, struct proc *p);
#endif

static uint64_t tstate_of(struct cpy *c, struct proc *p, uint32_t tid, uint64_t now)
{
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0 && p->threads && now - p->scanned_ns < STALE_NS) {
			for (int i = 0; i < p->nthreads; i++)
				if ((uint32_t)p->threads[i].tid == tid)
					return p->threads[i].tstate;
			if (now - p->scanned_ns < RESCAN_NS)
				return 0;
		}
		if (pass == 1)
			break;
		if (!p->threads) {
			p->threads = calloc(MAX_THREADS, sizeof(*p->threads));
			if (!p->threads)
				return 0;
		}
		int n = stoke_py_threads(p->py, p->threads, MAX_THREADS);

		p->nthreads = n > 0 ? n : 0;
		p->scanned_ns = now ? now : 1;
#ifdef STOKE_PYFRAMES_BPF
		bpf_publish(c, p);
#endif
		for (int i = 0; i < p->nthreads; i++)
			if ((uint32_t)p->threads[i].tid == tid)
				return p->threads[i].tstate;
	}
	return 0;
}

/* ---- events from the BPF program ---- */

static struct tq *tq_get(struct cpy *c, uint32_t tid, bool add)
{
	struct tq *q = (struct tq *)(uintptr_t)stoke_u64map_get(&c->tqs, tid);

	if (q || !add)
		return q;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->tid = tid;
	if (stoke_u64map_add(&c->tqs, tid, (uintptr_t)q) < 0) {
		free(q);
		return NULL;
	}
	return q;
}

#ifdef STOKE_PYFRAMES_BPF
static int on_event(void *ctx, void *data, size_t len)
{
	struct cpy *c = ctx;
	const struct pyframes_event *e = data;
	struct tq *q;

	if (len < sizeof(*e))
		return 0;
	c->events++;
	q = tq_get(c, e->tid, true);
	if (!q)
		return 0;
	if (q->n == q->cap && q->cap < TQ_MAX) {
		uint32_t cap = q->cap ? q->cap * 2 : 64;
		struct pyframes_event **t = calloc(cap, sizeof(*t));

		if (!t)
			return 0;
		for (uint32_t k = 0; k < q->n; k++)
			t[k] = q->ev[(q->head + k) & (q->cap - 1)];
		free(q->ev);
		q->ev = t;
		q->head = 0;
		q->cap = cap;
	}
	if (q->n == q->cap) { /* the oldest never met its sample: lost */
		free(q->ev[q->head]);
		q->head = (q->head + 1) & (q->cap - 1);
		q->n--;
	}
	/* only the frames it holds */
	size_t keep = offsetof(struct pyframes_event, flag) + PYFRAMES_MAX;
	struct pyframes_event *copy = malloc(sizeof(*copy));

	if (!copy)
		return 0;
	memcpy(copy, e, keep < sizeof(*e) ? keep : sizeof(*e));
	q->ev[(q->head + q->n) & (q->cap - 1)] = copy;
	q->n++;
	return 0;
}

/* Tell the program process p's layout and its threads' states. */
static void bpf_publish(struct cpy *c, struct proc *p)
{
	const struct stoke_py_offsets *o;
	struct pyframes_cfg cfg;

	if (!c->skel)
		return;
	o = stoke_py_layout(p->py);
	cfg = (struct pyframes_cfg){
		.tstate_cframe = o->tstate_cframe,
		.tstate_current_frame = o->tstate_current_frame,
		.cframe_current_frame = o->cframe_current_frame,
		.frame_code = o->frame_code,
		.frame_previous = o->frame_previous,
		.frame_prev_instr = o->frame_prev_instr,
		.frame_flag =
			o->frame_is_entry != STOKE_PY_NO_FIELD ? o->frame_is_entry : o->frame_owner,
	};
	bpf_map_update_elem(bpf_map__fd(c->skel->maps.cfgs), &p->pid, &cfg, BPF_ANY);
	for (int i = 0; i < p->nthreads; i++) {
		uint32_t tid = (uint32_t)p->threads[i].tid;

		bpf_map_update_elem(bpf_map__fd(c->skel->maps.tstates), &tid, &p->threads[i].tstate,
				    BPF_ANY);
	}
}
#endif

/*
 * The event of this sample, if the program sent one. The program runs in
 * the overflow handler, just before the sample is written, so the event is
 * the thread's one at the sample's time and IP. But the times are of two
 * clocks: the program's is CLOCK_MONOTONIC, a perf sample's is perf's clock
 * (sched_clock), a few milliseconds apart and drifting slowly. The offset
 * is learnt: a candidate from an event at the sample's IP within
 * CALIB_NS, taken once CALIB_CONFIRM consecutive samples match under it,
 * then followed (each match updates it), and learnt again after
 * RECALIB_MISSES samples in a row miss an event that is there.
 * Samples of a thread are a period (about 1 ms) apart: MATCH_NS cannot
 * take a neighbour's event. Events older than the sample belong to
 * samples that were lost or read after the fact.
 */
#define MATCH_NS       200000LL
#define CALIB_NS       50000000LL
#define CALIB_CONFIRM  3
#define RECALIB_MISSES 64

static struct pyframes_event *tq_at(struct tq *q, uint32_t k)
{
	return q->ev[(q->head + k) & (q->cap - 1)];
}

static void tq_drop(struct tq *q, uint32_t k)
{
	for (uint32_t j = 0; j < k; j++)
		free(tq_at(q, j));
	q->head = (q->head + k) & (q->cap - 1);
	q->n -= k;
}

/* The index in q of the event at time expect (± MATCH_NS) and ip, or -1;
 * *stale gets how many events are older than that window. */
static int tq_find(struct tq *q, int64_t expect, uint64_t ip, uint32_t pid, uint32_t *stale)
{
	*stale = 0;
	for (uint32_t k = 0; k < q->n; k++) {
		const struct pyframes_event *e = tq_at(q, k);
		int64_t d = (int64_t)e->time - expect;

		if (d < -MATCH_NS) {
			*stale = k + 1;
			continue;
		}
		if (d > MATCH_NS)
			break;
		if (e->ip == ip && e->pid == pid)
			return (int)k;
	}
	return -1;
}

static const struct pyframes_event *event_of(struct cpy *c, const struct stoke_sample *sample)
{
	int64_t t = (int64_t)sample->time;
	uint32_t stale;
	struct tq *q;
	int k;

#ifdef STOKE_PYFRAMES_BPF
	if (c->rb)
		ring_buffer__consume(c->rb);
#endif
	q = tq_get(c, sample->tid, false);
	if (!q || !q->n)
		return NULL;
	if (c->off_state == OFF_KNOWN) {
		k = tq_find(q, t + c->off, sample->ip, sample->pid, &stale);
		if (k < 0) {
			tq_drop(q, stale);
			if (q->n && ++c->misses >= RECALIB_MISSES)
				c->off_state = OFF_NONE;
			return NULL;
		}
		c->misses = 0;
	} else {
		k = -1;
		if (c->off_state == OFF_CANDIDATE)
			k = tq_find(q, t + c->off, sample->ip, sample->pid, &stale);
		if (k >= 0) {
			if (++c->confirmed >= CALIB_CONFIRM) {
				c->off_state = OFF_KNOWN;
				c->misses = 0;
			}
		} else {
			/* a new candidate: the nearest event at this IP */
			int64_t best = CALIB_NS + 1;

			for (uint32_t j = 0; j < q->n; j++) {
				const struct pyframes_event *e = tq_at(q, j);
				int64_t d = (int64_t)e->time - t;

				if (e->ip == sample->ip && e->pid == sample->pid &&
				    (d < 0 ? -d : d) < (best < 0 ? -best : best))
					best = d;
			}
			if (best <= CALIB_NS && best >= -CALIB_NS) {
				c->off = best;
				c->off_state = OFF_CANDIDATE;
				c->confirmed = 1;
			} else {
				c->off_state = OFF_NONE;
			}
		}
		/* not trusted yet: the sample is read after the fact */
		if (c->off_state != OFF_KNOWN || k < 0)
			return NULL;
	}
	struct pyframes_event *e = tq_at(q, (uint32_t)k);

	c->off = (int64_t)e->time - t; /* follow the drift */
	q->ev[(q->head + (uint32_t)k) & (q->cap - 1)] = NULL;
	tq_drop(q, (uint32_t)k + 1);
	free(c->last_event);
	c->last_event = e;
	return e;
}

/* Frames from an event: the code objects named here. */
static int event_frames(struct cpy *c, struct proc *p, const struct pyframes_event *e)
{
	const struct stoke_py_offsets *o = stoke_py_layout(p->py);
	uint32_t nf = e->nframes < PYFRAMES_MAX ? e->nframes : PYFRAMES_MAX;
	int n = 0;

	for (uint32_t i = 0; i < nf && n < MAX_FRAMES - 1; i++) {
		if (o->frame_owner != STOKE_PY_NO_FIELD && e->flag[i] == STOKE_PY_OWNED_BY_CSTACK) {
			/* 3.12+: the shim under an evaluator call's first frame */
			if (n > 0)
				c->buf[n - 1].is_entry = true;
			continue;
		}
		bool entry = o->frame_is_entry != STOKE_PY_NO_FIELD && e->flag[i];
		if (stoke_py_frame_at(p->py, e->code[i], e->instr[i], entry, &c->buf[n++]) < 0)
			return n; /* ends with [python-truncated] */
	}
	if (e->truncated) {
		memset(&c->buf[n], 0, sizeof(c->buf[n]));
		snprintf(c->buf[n].qualname, sizeof(c->buf[n].qualname), "[python-truncated]");
		c->buf[n++].lineno = -1;
	}
	return n;
}

static int cpy_frames(void *impl, const struct stoke_sample *sample, struct stoke_interp_frame *out,
		      size_t max, bool *approximate)
{
	struct cpy *c = impl;
	struct proc *p = proc_get(c, sample->pid, sample->time);
	uint64_t tstate;
	int n;

	const struct pyframes_event *e;
	bool approx = false;

	*approximate = false;
	if (!p)
		return 0;
	e = event_of(c, sample);
	if (e) {
		c->matched++;
		n = event_frames(c, p, e);
	} else {
		/* no event: a thread the program does not know yet (learnt
		 * here), or no program; read now, after the sample */
		tstate = tstate_of(c, p, sample->tid, sample->time);
		if (!tstate)
			return 0;
		n = stoke_py_stack(p->py, tstate, c->buf, max < MAX_FRAMES ? (int)max : MAX_FRAMES);
		approx = true;
	}
	if (n <= 0)
		return n;
	if ((size_t)n > max)
		n = (int)max;
	for (int i = 0; i < n; i++) {
		const struct stoke_py_frame *f = &c->buf[i];

		out[i] = (struct stoke_interp_frame){
			.function = intern(c, f->qualname),
			.file = intern(c, f->filename),
			.line = f->lineno,
			.first_line = f->firstlineno,
			.is_entry = f->is_entry,
		};
		if (!out[i].function || !out[i].file)
			return -ENOMEM;
	}
	*approximate = approx;
	return n;
}

static bool cpy_is_eval(void *impl, uint32_t pid, uint64_t addr)
{
	struct proc *p = proc_find(impl, pid);

	return p && p->py && stoke_py_is_eval_addr(p->py, addr);
}

static void cpy_exec(void *impl, uint32_t pid)
{
	struct cpy *c = impl;
	struct proc *p = proc_find(c, pid);

	if (p) {
#ifdef STOKE_PYFRAMES_BPF
		if (c->skel) {
			bpf_map_delete_elem(bpf_map__fd(c->skel->maps.cfgs), &pid);
			for (int k = 0; k < p->nthreads; k++) {
				uint32_t tid = (uint32_t)p->threads[k].tid;

				bpf_map_delete_elem(bpf_map__fd(c->skel->maps.tstates), &tid);
			}
		}
#endif
		stoke_py_close(p->py);
		free(p->threads);
		memset(p, 0, sizeof(*p));
		p->pid = pid;
		p->err = -ENOENT;
	}
}

static void cpy_free(void *impl)
{
	struct cpy *c = impl;
	uint64_t v;

	if (!c)
		return;
	for (size_t i = 0; i < c->nprocs; i++) {
		stoke_py_close(c->procs[i].py);
		free(c->procs[i].threads);
	}
	free(c->procs);
	stoke_strpool_free(c->strs);
	stoke_u64map_free(&c->proc_index);
	for (size_t pos = 0; stoke_u64map_next(&c->tqs, &pos, NULL, &v);) {
		struct tq *q = (struct tq *)(uintptr_t)v;

		for (uint32_t k = 0; k < q->n; k++)
			free(q->ev[(q->head + k) & (q->cap - 1)]);
		free(q->ev);
		free(q);
	}
	free(c->last_event);
	stoke_u64map_free(&c->tqs);
#ifdef STOKE_PYFRAMES_BPF
	if (c->events || c->skel)
		log_debug("python: %llu BPF events, %llu matched to samples",
			  (unsigned long long)c->events, (unsigned long long)c->matched);
	ring_buffer__free(c->rb);
	pyframes__destroy(c->skel);
#endif
	free(c);
}

static const struct stoke_interp_ops cpython_ops = {
	.name = "cpython",
	.frames = cpy_frames,
	.is_eval = cpy_is_eval,
	.exec = cpy_exec,
	.free = cpy_free,
};

#ifdef STOKE_PYFRAMES_BPF
static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's messages (an unprivileged user's refused load) are for
	 * debugging: without the program, frames are read after the sample */
	if (stoke_log_get_level() >= STOKE_LOG_DEBUG)
		return vfprintf(stderr, fmt, ap);
	return 0;
}
#endif

int stoke_cpython_source_new(stoke_cpython_note_fn note, void *ctx, struct stoke_interp_source *ret)
{
	struct cpy *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (stoke_strpool_new(&c->strs) < 0) {
		free(c);
		return -ENOMEM;
	}
	c->note = note;
	c->ctx = ctx;
#ifdef STOKE_PYFRAMES_BPF
	if (!getenv("STOKE_PYTHON_NO_BPF")) {
		libbpf_set_print(libbpf_quiet);
		c->skel = pyframes__open_and_load();
		if (c->skel)
			c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.events), on_event, c,
						 NULL);
		if (!c->rb) {
			log_debug("python: no BPF frame reader (%s): frames read after the sample",
				  strerror(errno));
			pyframes__destroy(c->skel);
			c->skel = NULL;
		}
	}
#endif
	ret->ops = &cpython_ops;
	ret->impl = c;
	return 0;
}

int stoke_cpython_source_prog_fd(const struct stoke_interp_source *src)
{
#ifdef STOKE_PYFRAMES_BPF
	const struct cpy *c = src->impl;

	if (src->ops == &cpython_ops && c->skel)
		return bpf_program__fd(c->skel->progs.on_sample);
#endif
	return -1;
}
