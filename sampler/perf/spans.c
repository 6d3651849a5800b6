/*
 * Span probes through the uprobe PMU: see spans.h.
 *
 * The uprobe PMU (kernel/events/core.c, perf_uprobe_init): attr.type is
 * /sys/bus/event_source/devices/uprobe/type, config1 points at the file's
 * path, config2 is the probe's file offset, and the semaphore's file offset
 * goes into the config bits named by .../format/ref_ctr_offset.
 */
#include "sampler/perf/spans.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* One probe on every CPU. */
static int enable_probe(struct stoke_perf_spans *sp, const char *path,
			const struct stoke_usdt_probe *pr, bool begin)
{
	struct perf_event_attr a;
	struct span_probe p = { .begin = begin };

	if (stoke_usdt_args_parse(pr->args, p.args, 2) != 2) {
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
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = (uint32_t)sp->pmu_type;
	a.config = pr->sem_offset ? pr->sem_offset << sp->ref_ctr_shift : 0;
	a.config1 = (uint64_t)(uintptr_t)path; /* uprobe_path */
	a.config2 = pr->pc_offset;             /* probe_offset */
	a.sample_period = 1;
	a.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
			PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
	a.sample_regs_user = STOKE_PERF_REGS_MASK;
	a.sample_stack_user = SPAN_STACK_COPY;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	for (size_t i = 0; i < sp->nrings; i++) {
		long fd = perf_event_open(&a, -1, sp->rings[i].cpu, -1, PERF_FLAG_FD_CLOEXEC);
		int r;

		if (fd < 0)
			return -errno;
		if (STOKE_GROW(sp->fds, sp->fds_cap, sp->nfds + 1) < 0 ||
		    STOKE_GROW(sp->probes, sp->probes_cap, sp->nfds + 1) < 0) {
			close((int)fd);
			return -ENOMEM;
		}
		if (ioctl((int)fd, PERF_EVENT_IOC_ID, &p.id) < 0) {
			r = -errno;
			close((int)fd);
			return r;
		}
		sp->fds[sp->nfds] = (int)fd;
		sp->probes[sp->nfds] = p;
		sp->nfds++;
		r = ring_join(sp, &sp->rings[i], (int)fd);
		if (r < 0)
			return r;
	}
	return 1;
}

int stoke_perf_spans_add_file(struct stoke_perf_spans *sp, const char *path)
{
	_cleanup_free_ struct stoke_usdt_probe *probes = NULL;
	size_t n = 0;
	struct stat st;
	int r, enabled = 0;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	for (size_t i = 0; i < sp->nfiles; i++)
		if (sp->files[i].dev == st.st_dev && sp->files[i].ino == st.st_ino)
			return 0;
	if (STOKE_GROW(sp->files, sp->files_cap, sp->nfiles + 1) < 0)
		return -ENOMEM;
	sp->files[sp->nfiles++] = (struct file_id){ st.st_dev, st.st_ino };
	r = stoke_usdt_read_file(path, &probes, &n);
	if (r < 0)
		return 0; /* not an ELF we read: no probes */
	/* Ends first, then begins: the kernel raises a probe's semaphore with
	 * its first event, so a program that sees the begin semaphore up
	 * (stoke_span.traced()) finds every end probe enabled already. */
	for (size_t k = 0; k < 2 * n; k++) {
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
			return 0;
		}
		r = enable_probe(sp, path, &probes[i], begin);
		if (r < 0) {
			if (!sp->warned)
				log_warn("%s: span probes not enabled (%s): spans not recorded",
					 path, strerror(-r));
			sp->warned = true;
			return r;
		}
		enabled += r;
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

static const struct span_probe *find_probe(const struct stoke_perf_spans *sp, uint64_t id)
{
	for (size_t i = 0; i < sp->nfds; i++)
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
