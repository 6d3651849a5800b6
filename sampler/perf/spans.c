/*
 * Span probes through the uprobe PMU: see spans.h.
 *
 * The uprobe PMU (kernel/events/core.c, perf_uprobe_init): attr.type is
 * /sys/bus/event_source/devices/uprobe/type, config1 points at the file's
 * path, config2 is the probe's file offset, and the semaphore's file offset
 * goes into the config bits named by .../format/ref_ctr_offset.
 */
#include "sampler/perf/spans.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sampler/perf/record.h"
#include "sampler/perf/ring.h"
#include "sampler/usdt.h"

/* A private record type for span blobs: above every PERF_RECORD_*. */
#define SPAN_BLOB_TYPE 0x7f53
/* The stack copied at a hit: the payload buffer is in the frame of the
 * function the probe is in, at most STOKE_SPAN_MAX_PAYLOAD (384) bytes plus
 * spills above the stack pointer. */
#define SPAN_STACK_COPY 1024
/* 2 MB per CPU: about 1700 hits, drained every 100 ms by stoke record.
 * Halved while the mlock limit refuses it. */
#define SPAN_RING_PAGES 512
#define SPAN_RING_PAGES_MIN 8
#define SPAN_MAX_PAYLOAD 512

struct span_probe {
	uint64_t id; /* the event's PERF_EVENT_IOC_ID */
	bool begin;
	struct stoke_usdt_arg args[2];
};

/* A probe to put on every target thread: kept so that a target attached
 * later, or a thread found later, gets the probes already enabled. */
struct span_spec {
	char *path; /* as the kernel resolves it at each open */
	uint64_t pc_offset, sem_offset;
	struct span_probe p; /* without id */
};

struct span_ring {
	int cpu;
	int fd; /* owner of the mapping, -1 before the first event */
	void *base;
	size_t map_len;
	struct stoke_ring ring;
};

struct file_id {
	dev_t dev;
	ino_t ino;
};

struct stoke_perf_spans {
	int pmu_type;
	int ref_ctr_shift; /* -1: the kernel has no ref_ctr_offset */
	size_t page_size;
	struct span_ring *rings;
	size_t nrings;
	struct span_probe *probes; /* one per event fd, same index */
	int *fds;
	size_t nfds, fds_cap, probes_cap;
	struct file_id *files;
	size_t nfiles, files_cap;
	struct span_spec *specs;
	size_t nspecs, specs_cap;
	pid_t *roots; /* the attached and launched processes */
	size_t nroots, roots_cap;
	/* probes[] in ascending id order (the kernel numbers events in the
	 * order they are opened): a hit's probe is found by bisection. */
	bool unsorted;
	bool warned;
};

/* The blob: what a hit carries, neutral. */
struct span_blob {
	struct perf_event_header h;
	uint32_t pid, tid;
	uint64_t time;
	uint32_t begin;
	uint32_t name_len; /* without its NUL */
	uint32_t meta_len;
	/* name, NUL, meta bytes */
};

static long perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group,
			    unsigned long flags)
{
	return syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

static int read_int_file(const char *path, long *ret)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f)) {
		*ret = strtol(buf, NULL, 10);
		r = 0;
	}
	fclose(f);
	return r;
}

int stoke_perf_spans_new(const int *cpus, size_t ncpus, size_t page_size,
			 struct stoke_perf_spans **ret)
{
	struct stoke_perf_spans *sp = calloc(1, sizeof(*sp));
	char buf[64];
	FILE *f;

	if (!sp)
		return -ENOMEM;
	sp->pmu_type = -1;
	sp->ref_ctr_shift = -1;
	sp->page_size = page_size;
	sp->rings = calloc(ncpus, sizeof(*sp->rings));
	if (!sp->rings) {
		free(sp);
		return -ENOMEM;
	}
	sp->nrings = ncpus;
	for (size_t i = 0; i < ncpus; i++) {
		sp->rings[i].cpu = cpus[i];
		sp->rings[i].fd = -1;
	}
	{
		long t = -1;

		if (read_int_file("/sys/bus/event_source/devices/uprobe/type", &t) == 0 && t >= 0)
			sp->pmu_type = (int)t;
	}
	/* "config:32-63" */
	f = fopen("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset", "re");
	if (f) {
		int lo, hi;

		if (fgets(buf, sizeof(buf), f) && sscanf(buf, "config:%d-%d", &lo, &hi) == 2 &&
		    lo >= 0 && lo < 64)
			sp->ref_ctr_shift = lo;
		fclose(f);
	}
	*ret = sp;
	return 0;
}

void stoke_perf_spans_disable(struct stoke_perf_spans *sp)
{
	for (size_t i = 0; sp && i < sp->nfds; i++)
		ioctl(sp->fds[i], PERF_EVENT_IOC_DISABLE, 0);
}

void stoke_perf_spans_free(struct stoke_perf_spans *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < sp->nrings; i++) {
		if (sp->rings[i].base)
			munmap(sp->rings[i].base, sp->rings[i].map_len);
		stoke_ring_exit(&sp->rings[i].ring);
	}
	for (size_t i = 0; i < sp->nfds; i++)
		close(sp->fds[i]);
	for (size_t i = 0; i < sp->nspecs; i++)
		free(sp->specs[i].path);
	free(sp->specs);
	free(sp->roots);
	free(sp->fds);
	free(sp->probes);
	free(sp->files);
	free(sp->rings);
	free(sp);
}

static int ring_join(struct stoke_perf_spans *sp, struct span_ring *sr, int fd)
{
	size_t len;
	void *base;
	int r;

	if (sr->fd >= 0)
		return ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, sr->fd) < 0 ? -errno : 0;
	for (size_t pages = SPAN_RING_PAGES;; pages /= 2) {
		len = (pages + 1) * sp->page_size;
		base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (base != MAP_FAILED)
			break;
		if ((errno != EPERM && errno != ENOMEM) || pages <= SPAN_RING_PAGES_MIN)
			return -errno;
	}
	r = stoke_ring_init(&sr->ring, base, sp->page_size, len - sp->page_size);
	if (r < 0) {
		munmap(base, len);
		return r;
	}
	sr->base = base;
	sr->map_len = len;
	sr->fd = fd;
	return 0;
}

/* Probe spec i on thread tid, one event per CPU, inherited by the threads
 * and children tid creates from now on. The events go to fds[0..nrings)
 * (not yet in any ring). Returns 0, -ESRCH (the thread is gone), or -errno. */
static int open_spec(struct stoke_perf_spans *sp, const struct span_spec *spec, pid_t tid,
		     int *fds)
{
	struct perf_event_attr a;
	size_t n;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = (uint32_t)sp->pmu_type;
	a.config = spec->sem_offset ? spec->sem_offset << sp->ref_ctr_shift : 0;
	a.config1 = (uint64_t)(uintptr_t)spec->path; /* uprobe_path */
	a.config2 = spec->pc_offset;                 /* probe_offset */
	a.sample_period = 1;
	a.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
			PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
	a.sample_regs_user = STOKE_PERF_REGS_MASK;
	a.sample_stack_user = SPAN_STACK_COPY;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	a.inherit = 1;
	a.use_clockid = 1; /* the sampling events' clock (perf.c) */
	a.clockid = CLOCK_MONOTONIC;
	for (n = 0; n < sp->nrings; n++) {
		long fd = perf_event_open(&a, tid, sp->rings[n].cpu, -1, PERF_FLAG_FD_CLOEXEC);

		if (fd < 0) {
			int r = -errno;

			while (n > 0)
				close(fds[--n]);
			return r;
		}
		fds[n] = (int)fd;
	}
	return 0;
}

/* Events of fds (one per ring, for spec) into their rings. */
static int commit_spec(struct stoke_perf_spans *sp, const struct span_spec *spec, int *fds)
{
	size_t i;
	int r = 0;

	for (i = 0; i < sp->nrings; i++) {
		struct span_probe p = spec->p;

		if (STOKE_GROW(sp->fds, sp->fds_cap, sp->nfds + 1) < 0 ||
		    STOKE_GROW(sp->probes, sp->probes_cap, sp->nfds + 1) < 0) {
			r = -ENOMEM;
			break;
		}
		if (ioctl(fds[i], PERF_EVENT_IOC_ID, &p.id) < 0) {
			r = -errno;
			break;
		}
		if (sp->nfds > 0 && p.id <= sp->probes[sp->nfds - 1].id)
			sp->unsorted = true;
		sp->fds[sp->nfds] = fds[i];
		sp->probes[sp->nfds] = p;
		sp->nfds++;
		fds[i] = -1;
		r = ring_join(sp, &sp->rings[i], sp->fds[sp->nfds - 1]);
		if (r < 0) {
			i++;
			break;
		}
	}
	for (; i < sp->nrings; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

/*
 * Specs [from, nspecs) on thread tid of the process at procfd. As in the
 * sampler's open_task, the TID is checked after the open (it may have been
 * freed and taken by another process's thread since the readdir): events
 * that turn out to be on another process are closed before they reach a
 * ring, and that process's semaphores are down again. Returns 0, -ESRCH, or
 * -errno.
 */
static int open_thread(struct stoke_perf_spans *sp, int procfd, pid_t tid, size_t from)
{
	_cleanup_free_ int *fds = NULL;
	size_t nspecs = sp->nspecs - from, k;
	char name[32];
	struct stat st;
	int r = 0;

	if (nspecs == 0)
		return 0;
	fds = malloc(nspecs * sp->nrings * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (k = 0; k < nspecs; k++) {
		r = open_spec(sp, &sp->specs[from + k], tid, fds + k * sp->nrings);
		if (r < 0)
			break;
	}
	snprintf(name, sizeof(name), "task/%d", tid);
	if (r == 0 && fstatat(procfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -ESRCH;
	if (r < 0) {
		for (size_t i = 0; i < k * sp->nrings; i++)
			close(fds[i]);
		return r;
	}
	for (k = 0; k < nspecs; k++) {
		int rc = commit_spec(sp, &sp->specs[from + k], fds + k * sp->nrings);

		if (rc < 0 && r == 0)
			r = rc;
		if (rc < 0) /* close what was not committed */
			for (size_t j = k + 1; j < nspecs; j++)
				for (size_t i = 0; i < sp->nrings; i++)
					close(fds[j * sp->nrings + i]);
		if (rc < 0)
			break;
	}
	return r;
}

static bool tids_have(const pid_t *tids, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (tids[i] == tid)
			return true;
	return false;
}

/* Specs [from, nspecs) on every thread of process pid: passes over its task
 * directory until one finds no thread not seen (a thread born during a pass
 * inherits the events from its creator, or is found by the next pass).
 * A process that is gone is no error. */
static int open_process(struct stoke_perf_spans *sp, pid_t pid, size_t from)
{
	_cleanup_free_ pid_t *seen = NULL;
	size_t nseen = 0, seen_cap = 0;
	char path[64];
	int procfd, r = 0, added, rounds = 0;

	if (from >= sp->nspecs)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return 0;
	do {
		struct dirent *de;
		DIR *d;
		int fd = openat(procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		added = 0;
		if (fd < 0)
			break;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			break;
		}
		while (r == 0 && (de = readdir(d))) {
			char *end;
			long tid = strtol(de->d_name, &end, 10);

			if (*end || tid <= 0 || tids_have(seen, nseen, (pid_t)tid))
				continue;
			if (STOKE_GROW(seen, seen_cap, nseen + 1) < 0) {
				r = -ENOMEM;
				break;
			}
			seen[nseen++] = (pid_t)tid;
			r = open_thread(sp, procfd, (pid_t)tid, from);
			if (r == -ESRCH)
				r = 0;
			added++;
		}
		closedir(d);
	} while (r == 0 && added > 0 && ++rounds < 100);
	close(procfd);
	return r;
}

static bool is_root(const struct stoke_perf_spans *sp, pid_t pid)
{
	return tids_have(sp->roots, sp->nroots, pid);
}

int stoke_perf_spans_add_target(struct stoke_perf_spans *sp, pid_t pid)
{
	int r;

	if (is_root(sp, pid))
		return 0;
	if (STOKE_GROW(sp->roots, sp->roots_cap, sp->nroots + 1) < 0)
		return -ENOMEM;
	sp->roots[sp->nroots++] = pid;
	r = open_process(sp, pid, 0);
	if (r < 0 && !sp->warned) {
		log_warn("pid %d: span probes not enabled (%s): its spans not recorded", pid,
			 strerror(-r));
		sp->warned = true;
	}
	return r;
}

/* The probe as a spec, or 0 when stoke cannot use it. */
static int add_spec(struct stoke_perf_spans *sp, const char *path,
		    const struct stoke_usdt_probe *pr, bool begin)
{
	struct span_spec spec = { .p.begin = begin };

	if (stoke_usdt_args_parse(pr->args, spec.p.args, 2) != 2) {
		log_warn("%s: span probe %s with arguments stoke cannot read (\"%s\"): skipped",
			 path, pr->name, pr->args);
		return 0;
	}
	if (pr->sem_offset && sp->ref_ctr_shift < 0) {
		log_warn("%s: this kernel cannot raise USDT semaphores (no uprobe "
			 "ref_ctr_offset): spans not recorded",
			 path);
		return 0;
	}
	if (STOKE_GROW(sp->specs, sp->specs_cap, sp->nspecs + 1) < 0)
		return -ENOMEM;
	spec.path = strdup(path);
	if (!spec.path)
		return -ENOMEM;
	spec.pc_offset = pr->pc_offset;
	spec.sem_offset = pr->sem_offset;
	sp->specs[sp->nspecs++] = spec;
	return 1;
}

int stoke_perf_spans_add_file(struct stoke_perf_spans *sp, const char *path, pid_t pid)
{
	_cleanup_free_ struct stoke_usdt_probe *probes = NULL;
	size_t n = 0, from = sp->nspecs;
	struct stat st;
	int r = 0, enabled = 0;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	for (size_t i = 0; i < sp->nfiles; i++)
		if (sp->files[i].dev == st.st_dev && sp->files[i].ino == st.st_ino)
			return 0;
	if (STOKE_GROW(sp->files, sp->files_cap, sp->nfiles + 1) < 0)
		return -ENOMEM;
	sp->files[sp->nfiles++] = (struct file_id){ st.st_dev, st.st_ino };
	if (stoke_usdt_read_file(path, &probes, &n) < 0)
		return 0; /* not an ELF we read: no probes */
	/* Ends first, then begins: the kernel raises a probe's semaphore with
	 * its first event, so a program that sees the begin semaphore up
	 * (stoke_span.traced()) finds every end probe enabled already. */
	for (size_t k = 0; k < 2 * n && r >= 0; k++) {
		size_t i = k % n;
		bool begin = k >= n;

		if (strcmp(probes[i].provider, "stoke") ||
		    strcmp(probes[i].name, begin ? "span_begin" : "span_end"))
			continue;
		if (sp->pmu_type < 0) {
			if (!sp->warned)
				log_warn("%s has span probes, but this kernel has no uprobe PMU: "
					 "spans not recorded",
					 path);
			sp->warned = true;
			break;
		}
		r = add_spec(sp, path, &probes[i], begin);
		if (r > 0)
			enabled += r;
	}
	/* On the targets' threads only: a per-CPU event of every process
	 * would raise the semaphore in every process that maps the file,
	 * other users' too. A process forked by a target before now (pid,
	 * when it is no target itself) has none of these events to inherit. */
	for (size_t i = 0; r >= 0 && i < sp->nroots; i++)
		r = open_process(sp, sp->roots[i], from);
	if (r >= 0 && pid > 0 && !is_root(sp, pid))
		r = open_process(sp, pid, from);
	if (r < 0) {
		if (!sp->warned)
			log_warn("%s: span probes not enabled (%s): spans not recorded", path,
				 strerror(-r));
		sp->warned = true;
		return r;
	}
	if (enabled)
		log_debug("%s: %d span probes enabled", path, enabled);
	return enabled;
}

/* ---- reading ---- */

struct cursor {
	const uint8_t *p, *end;
};

static int take(struct cursor *c, void *out, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return -EBADMSG;
	if (out)
		memcpy(out, c->p, n);
	c->p += n;
	return 0;
}

/* One event per probe, CPU and thread: thousands with many threads. */
static const struct span_probe *find_probe(const struct stoke_perf_spans *sp, uint64_t id)
{
	size_t lo = 0, hi = sp->nfds;

	while (!sp->unsorted && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->probes[mid].id == id)
			return &sp->probes[mid];
		if (sp->probes[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = 0; sp->unsorted && i < sp->nfds; i++)
		if (sp->probes[i].id == id)
			return &sp->probes[i];
	return NULL;
}

/* A hit → a blob in q. Returns 0 (done or counted as lost) or -ENOMEM. */
static int read_hit(struct stoke_perf_spans *sp, const struct perf_event_header *h,
		    struct stoke_reorder *q, struct stoke_sampler_stats *stats)
{
	struct cursor c = { (const uint8_t *)(h + 1), (const uint8_t *)h + h->size };
	uint64_t id, time, abi, regs_perf[24], size = 0, dyn = 0, ptr, len;
	uint32_t pid, tid;
	const uint8_t *stack = NULL;
	const struct span_probe *p;
	struct stoke_sample regs = { 0 };
	unsigned nregs = (unsigned)__builtin_popcountll(STOKE_PERF_REGS_MASK);
	uint8_t buf[sizeof(struct span_blob) + SPAN_MAX_PAYLOAD + 1];
	struct span_blob *b = (struct span_blob *)buf;
	const char *payload, *nul;

	if (take(&c, &id, 8) || take(&c, &pid, 4) || take(&c, &tid, 4) || take(&c, &time, 8) ||
	    take(&c, &abi, 8))
		goto lost;
	if (abi == PERF_SAMPLE_REGS_ABI_NONE || abi == PERF_SAMPLE_REGS_ABI_32 ||
	    nregs > ARRAY_SIZE(regs_perf) || take(&c, regs_perf, nregs * 8))
		goto lost;
	if (take(&c, &size, 8))
		goto lost;
	if (size) {
		stack = c.p;
		if (take(&c, NULL, size) || take(&c, &dyn, 8) || dyn > size)
			goto lost;
	}
	p = find_probe(sp, id);
	if (!p)
		goto lost;
	stoke_perf_regs_to_dwarf(regs_perf, &regs);
	if (stoke_usdt_arg_value(&p->args[0], regs.regs, stack, regs.stack_addr, dyn, &ptr) < 0 ||
	    stoke_usdt_arg_value(&p->args[1], regs.regs, stack, regs.stack_addr, dyn, &len) < 0)
		goto lost;
	/* The payload must lie in the stack copy, and start with a name. */
	if (len == 0 || len > SPAN_MAX_PAYLOAD || ptr < regs.stack_addr ||
	    ptr - regs.stack_addr > dyn || len > dyn - (ptr - regs.stack_addr))
		goto lost;
	payload = (const char *)stack + (ptr - regs.stack_addr);
	nul = memchr(payload, '\0', len);
	if (!nul)
		goto lost;
	memset(b, 0, sizeof(*b));
	b->h.type = SPAN_BLOB_TYPE;
	b->pid = pid;
	b->tid = tid;
	b->time = time;
	b->begin = p->begin;
	b->name_len = (uint32_t)(nul - payload);
	b->meta_len = p->begin ? (uint32_t)(len - b->name_len - 1) : 0;
	memcpy(buf + sizeof(*b), payload, b->name_len + 1 + b->meta_len);
	b->h.size = (uint16_t)(sizeof(*b) + b->name_len + 1 + b->meta_len);
	return stoke_reorder_push(q, time, b, b->h.size);
lost:
	stats->span_lost++;
	return 0;
}

int stoke_perf_spans_read(struct stoke_perf_spans *sp, struct stoke_reorder *q,
			  struct stoke_sampler_stats *stats)
{
	int r = 0;

	if (!sp)
		return 0;
	for (size_t i = 0; i < sp->nrings && r == 0; i++) {
		struct span_ring *sr = &sp->rings[i];
		const struct perf_event_header *h;

		if (!sr->base || stoke_ring_read_init(&sr->ring) < 0)
			continue;
		while (r == 0 && stoke_ring_read_event(&sr->ring, &h) == 0) {
			if (h->type == PERF_RECORD_SAMPLE) {
				r = read_hit(sp, h, q, stats);
			} else if (h->type == PERF_RECORD_LOST && h->size >= sizeof(*h) + 16) {
				uint64_t lost;

				memcpy(&lost, (const uint8_t *)(h + 1) + 8, 8);
				stats->span_lost += lost;
			}
			stoke_ring_consume(&sr->ring);
		}
		stoke_ring_read_done(&sr->ring);
	}
	return r;
}

bool stoke_perf_spans_blob(const void *data, size_t len, struct stoke_record *out)
{
	const struct span_blob *b = data;
	const char *name;

	if (len < sizeof(*b) || b->h.type != SPAN_BLOB_TYPE)
		return false;
	name = (const char *)data + sizeof(*b);
	memset(out, 0, sizeof(*out));
	out->type = STOKE_REC_SPAN;
	out->span.pid = b->pid;
	out->span.tid = b->tid;
	out->span.time = b->time;
	out->span.begin = b->begin;
	out->span.name = name;
	out->span.meta = name + b->name_len + 1;
	out->span.meta_len = b->meta_len;
	out->id.pid = b->pid;
	out->id.tid = b->tid;
	out->id.time = b->time;
	out->id.has_tid = out->id.has_time = true;
	return true;
}
