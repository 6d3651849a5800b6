/*
 * The symbolizer (see symbolizer.h): records build per-process address
 * spaces (addrspace.c) over a shared module cache (elfcache.c); samples are
 * resolved frame by frame through a per-address result cache, so each unique
 * (module, address) pair reaches libdwfl once.
 *
 * Result cache. The key is (module, ELF virtual address looked up), with the
 * kernel as a pseudo-module keyed by its address; the entry holds the name
 * (and, later, the inline chain and source line), never per-process data,
 * so processes mapping the same file share entries. It is open addressing
 * with a hard size limit: beyond it, lookups still work but are not cached.
 *
 * Return addresses. A return address points after its call instruction,
 * which may be the first byte of the next function (a noreturn call ends a
 * function) or the next line. So every callchain entry but the first of its
 * context is looked up at addr - 1; the frame keeps the sampled addr.
 */
#include "symbolizer.h"

#include <errno.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>

#include "addrspace.h"
#include "elfcache.h"
#include "log.h"
#include "unwind.h"
#include "util.h"

#define KERNEL_MODULE "[kernel.kallsyms]"
/* Enough for ~10^6 unique addresses; an entry is 40 bytes. */
#define RESULT_CACHE_MAX_SLOTS (1u << 22)

/* One resolved address. Room is left for the inline chain and source line
 * (DWARF), which will hang off this entry so they are computed once too. */
struct result {
	const void *mod; /* key: struct stoke_module *, or &s->kernel_key */
	uint64_t addr;   /* key: the address looked up (after the -1 rule) */
	const char *function;
	const char *module; /* kernel only: "[kernel.kallsyms]" or "[mod]" */
	const char *file;
	uint32_t line;
	/* later: uint32_t n_inline; const struct inline_frame *inlines; */
};

struct stoke_symbolizer {
	bool no_kernel;
	char *kallsyms_path;
	struct stoke_strpool *pool;
	struct stoke_elfcache *elfs;
	struct stoke_proctable *procs;
	struct stoke_ksyms *ksyms;
	bool ksyms_tried;
	char kernel_key; /* its address is the kernel's module key */
	const char *kernel_module;
	const char *vdso_module;
	struct result *results; /* NULL mod: empty slot */
	size_t nresults, nslots;
	struct stoke_symbolizer_stats stats;
	struct stoke_unwinder *unwinder; /* DWARF mode; created on first use */
};

int stoke_symbolizer_new(const struct stoke_symbolizer_opts *opts,
			 struct stoke_symbolizer **ret)
{
	struct stoke_symbolizer *s = calloc(1, sizeof(*s));
	int r = -ENOMEM;

	if (!s)
		return -ENOMEM;
	if (opts)
		s->no_kernel = opts->no_kernel;
	s->kallsyms_path = strdup(opts && opts->kallsyms_path ? opts->kallsyms_path
							      : "/proc/kallsyms");
	if (!s->kallsyms_path)
		goto fail;
	r = stoke_strpool_new(&s->pool);
	if (r < 0)
		goto fail;
	r = stoke_elfcache_new(s->pool, &s->elfs);
	if (r < 0)
		goto fail;
	r = stoke_proctable_new(&s->procs);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	s->kernel_module = stoke_strpool_intern(s->pool, KERNEL_MODULE);
	s->vdso_module = stoke_strpool_intern(s->pool, "[vdso]");
	s->nslots = 1024;
	s->results = calloc(s->nslots, sizeof(*s->results));
	if (!s->kernel_module || !s->vdso_module || !s->results)
		goto fail;
	*ret = s;
	return 0;
fail:
	stoke_symbolizer_free(s);
	return r;
}

void stoke_symbolizer_free(struct stoke_symbolizer *s)
{
	if (!s)
		return;
	free(s->results);
	stoke_unwinder_free(s->unwinder);
	stoke_ksyms_free(s->ksyms);
	stoke_proctable_free(s->procs);
	stoke_elfcache_free(s->elfs);
	stoke_strpool_free(s->pool);
	free(s->kallsyms_path);
	free(s);
}

/* ---- records ---- */

/* Anonymous memory ("", "//anon"), heap, stack and the like have no
 * module. */
static bool is_pseudo_path(const char *path)
{
	return !path || path[0] != '/' || path[1] == '/';
}

static int on_mmap(struct stoke_symbolizer *s, const struct stoke_mmap *m)
{
	struct stoke_mapping map = {
		.start = m->addr,
		/* clamp a length that would wrap the address space */
		.end = m->addr + m->len < m->addr ? UINT64_MAX : m->addr + m->len,
		.pgoff = m->pgoff,
	};
	struct stoke_addrspace *as;
	int r;

	/* Kernel text and module maps (pid -1) are named from kallsyms. */
	if (m->kernel || m->pid == (uint32_t)-1)
		return 0;
	if (m->filename && !is_pseudo_path(m->filename)) {
		r = stoke_elfcache_get(s->elfs, m, &map.mod);
		if (r < 0)
			return r;
		map.name = stoke_module_path(map.mod);
	} else if (m->filename && strcmp(m->filename, "[vdso]") == 0) {
		map.name = s->vdso_module;
	}
	r = stoke_proctable_get(s->procs, m->pid, &as);
	if (r < 0)
		return r;
	return stoke_addrspace_insert(as, &map);
}

static int on_fork(struct stoke_symbolizer *s, const struct stoke_task *t)
{
	struct stoke_addrspace *parent, *child;
	int r;

	/* pid == ppid: a new thread in the same address space. */
	if (t->pid == t->ppid)
		return 0;
	r = stoke_proctable_get(s->procs, t->pid, &child);
	if (r < 0)
		return r;
	/* The child may reuse the pid of a process we knew: start over. */
	parent = stoke_proctable_find(s->procs, t->ppid);
	if (!parent) {
		stoke_addrspace_clear(child);
		return 0;
	}
	return stoke_addrspace_copy(child, parent);
}

int stoke_symbolizer_record(struct stoke_symbolizer *s, const struct stoke_record *rec)
{
	struct stoke_addrspace *as;

	switch (rec->type) {
	case STOKE_REC_MMAP:
		return on_mmap(s, &rec->mmap);
	case STOKE_REC_COMM:
		/* exec replaces every mapping; the MMAPs that follow rebuild
		 * them. */
		if (rec->comm.exec) {
			as = stoke_proctable_find(s->procs, rec->comm.pid);
			if (as)
				stoke_addrspace_clear(as);
			/* libunwind's per-IP cache described the old image */
			if (s->unwinder)
				stoke_unwinder_forget(s->unwinder, rec->comm.pid);
		}
		return 0;
	case STOKE_REC_FORK:
		return on_fork(s, &rec->task);
	default:
		return 0;
	}
}

/* ---- result cache ---- */

static size_t result_slot(const struct stoke_symbolizer *s, const void *mod, uint64_t addr)
{
	size_t i = stoke_hash_u64(addr ^ stoke_hash_u64((uintptr_t)mod)) & (s->nslots - 1);

	while (s->results[i].mod && (s->results[i].mod != mod || s->results[i].addr != addr))
		i = (i + 1) & (s->nslots - 1);
	return i;
}

static const struct result *result_find(struct stoke_symbolizer *s, const void *mod, uint64_t addr)
{
	size_t i = result_slot(s, mod, addr);

	return s->results[i].mod ? &s->results[i] : NULL;
}

static void results_grow(struct stoke_symbolizer *s)
{
	struct stoke_symbolizer n = { .nslots = s->nslots * 2 };

	if (n.nslots > RESULT_CACHE_MAX_SLOTS)
		return;
	n.results = calloc(n.nslots, sizeof(*n.results));
	if (!n.results)
		return; /* keep the old table; it stays usable */
	for (size_t i = 0; i < s->nslots; i++)
		if (s->results[i].mod)
			n.results[result_slot(&n, s->results[i].mod, s->results[i].addr)] =
				s->results[i];
	free(s->results);
	s->results = n.results;
	s->nslots = n.nslots;
}

/* Caching is best effort: when the table is full, the result is simply not
 * kept. */
static void result_add(struct stoke_symbolizer *s, const struct result *res)
{
	size_t i;

	if ((s->nresults + 1) * 2 > s->nslots)
		results_grow(s);
	if ((s->nresults + 1) * 4 > s->nslots * 3)
		return;
	i = result_slot(s, res->mod, res->addr);
	s->results[i] = *res;
	s->nresults++;
}

/* ---- lookups ---- */

static bool addr_is_kernel(uint64_t addr)
{
#if defined(__x86_64__)
	return addr >= 0xffff800000000000ULL;
#else
	return addr >> 63;
#endif
}

static void kernel_lookup(struct stoke_symbolizer *s, uint64_t addr, struct result *res)
{
	const char *mod = "", *name;
	int r;

	res->mod = &s->kernel_key;
	res->addr = addr;
	res->module = s->kernel_module;
	if (!s->ksyms_tried) {
		s->ksyms_tried = true;
		r = stoke_ksyms_load(s->kallsyms_path, &s->ksyms);
		if (r < 0)
			log_debug("symbolizer: no kernel symbols from %s: %s", s->kallsyms_path,
				  strerror(-r));
	}
	name = stoke_ksyms_lookup(s->ksyms, addr, NULL, &mod);
	if (!name)
		return;
	res->function = name; /* owned by s->ksyms, which lives as long as s */
	if (mod && *mod) {
		char buf[256];
		int len = snprintf(buf, sizeof(buf), "[%s]", mod);

		if (len > 0 && (size_t)len < sizeof(buf))
			res->module = stoke_strpool_intern(s->pool, buf);
		if (!res->module)
			res->module = s->kernel_module;
	}
}

static void resolve_kernel(struct stoke_symbolizer *s, uint64_t addr, uint64_t look,
			   struct stoke_symbol *ret)
{
	const struct result *hit;
	struct result res = { 0 };

	ret->kind = STOKE_FRAME_KERNEL;
	ret->module = s->kernel_module;
	ret->offset = addr;
	if (s->no_kernel)
		return;
	hit = result_find(s, &s->kernel_key, look);
	if (hit) {
		s->stats.cache_hits++;
	} else {
		kernel_lookup(s, look, &res);
		result_add(s, &res);
		hit = &res;
	}
	ret->function = hit->function;
	ret->module = hit->module;
}

static void resolve_user(struct stoke_symbolizer *s, pid_t pid, uint64_t addr, uint64_t look,
			 struct stoke_symbol *ret)
{
	struct stoke_addrspace *as = stoke_proctable_find(s->procs, (uint32_t)pid);
	const struct stoke_mapping *m = as ? stoke_addrspace_find(as, look) : NULL;
	const struct result *hit;
	struct result res = { 0 };
	uint64_t file_off, vaddr;

	ret->kind = STOKE_FRAME_USER;
	if (!m) {
		s->stats.no_mapping++;
		return;
	}
	ret->module = m->name;
	file_off = look - m->start + m->pgoff;
	ret->offset = file_off + (addr - look);
	if (!m->mod || stoke_module_vaddr(s->elfs, m->mod, file_off, &vaddr) < 0)
		return;
	/* offset is the ELF vaddr of the sampled address itself. */
	ret->offset = vaddr + (addr - look);
	hit = result_find(s, m->mod, vaddr);
	if (hit) {
		s->stats.cache_hits++;
	} else {
		res.mod = m->mod;
		res.addr = vaddr;
		if (stoke_module_symbol(s->elfs, m->mod, vaddr, &res.function) < 0)
			return; /* not cached: ENOMEM may pass */
		result_add(s, &res);
		hit = &res;
	}
	ret->function = hit->function;
	ret->file = hit->file;
	ret->line = hit->line;
}

int stoke_symbolizer_addr(struct stoke_symbolizer *s, pid_t pid, uint64_t addr, bool kernel,
			  bool return_addr, struct stoke_symbol *ret)
{
	/* The call instruction ends at a return address: look inside it. */
	uint64_t look = return_addr && addr > 0 ? addr - 1 : addr;

	memset(ret, 0, sizeof(*ret));
	ret->addr = addr;
	ret->offset = addr;
	s->stats.lookups++;
	if (kernel)
		resolve_kernel(s, addr, look, ret);
	else
		resolve_user(s, pid, addr, look, ret);
	if (!ret->function)
		s->stats.unknown++;
	return 0;
}

enum context {
	CTX_GUESS,   /* no marker yet: decide by address */
	CTX_KERNEL,
	CTX_USER,
	CTX_FOREIGN, /* hypervisor or guest: not ours to name */
};

static enum context context_of(uint64_t marker)
{
	switch (marker) {
	case PERF_CONTEXT_KERNEL:
		return CTX_KERNEL;
	case PERF_CONTEXT_USER:
		return CTX_USER;
	default:
		return CTX_FOREIGN;
	}
}

static void foreign_frame(struct stoke_symbolizer *s, uint64_t addr, struct stoke_symbol *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->addr = addr;
	ret->offset = addr;
	ret->kind = addr_is_kernel(addr) ? STOKE_FRAME_KERNEL : STOKE_FRAME_USER;
	s->stats.lookups++;
	s->stats.unknown++;
}

/* ---- DWARF user stacks (unwind.c) ---- */

/* The root-side marker of a stack that did not reach its outermost frame. */
static void synthetic_frame(struct stoke_symbolizer *s, const char *name,
			    struct stoke_symbol *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->function = stoke_strpool_intern(s->pool, name);
	ret->kind = STOKE_FRAME_SYNTHETIC;
}

/* Name one unwound frame; vDSO frames, which no file describes, are named
 * from the unwinder's vDSO image. */
static void unwound_frame(struct stoke_symbolizer *s, pid_t pid,
			  const struct stoke_unwind_frame *f, struct stoke_symbol *ret)
{
	struct stoke_addrspace *as;
	const struct stoke_mapping *m;

	stoke_symbolizer_addr(s, pid, f->ip, false, !f->exact, ret);
	if (ret->function || ret->module != s->vdso_module)
		return;
	as = stoke_proctable_find(s->procs, (uint32_t)pid);
	m = as ? stoke_addrspace_find(as, f->exact ? f->ip : f->ip - 1) : NULL;
	if (!m)
		return;
	ret->function = stoke_unwind_vdso_symbol(s->unwinder, m->start,
						 f->exact ? f->ip : f->ip - 1);
	ret->offset = f->ip - m->start;
	if (ret->function)
		s->stats.unknown--;
}

static void count_unwind_end(struct stoke_symbolizer *s, enum stoke_unwind_end end)
{
	switch (end) {
	case STOKE_UNWIND_COMPLETE:
		s->stats.unwind_complete++;
		break;
	case STOKE_UNWIND_TRUNCATED:
		s->stats.unwind_truncated++;
		break;
	case STOKE_UNWIND_NO_INFO:
		s->stats.unwind_no_cfi++;
		break;
	case STOKE_UNWIND_BAD_FRAME:
		s->stats.unwind_bad_frame++;
		break;
	case STOKE_UNWIND_MAX_DEPTH:
		s->stats.unwind_max_depth++;
		break;
	case STOKE_UNWIND_NO_REGS:
	case STOKE_UNWIND_NR_ENDS:
		return;
	}
	s->stats.unwind_samples++;
}

/*
 * A DWARF-mode sample: kernel frames from the callchain (the kernel wrote no
 * user part: exclude_callchain_user), then the unwound user frames, then a
 * synthetic frame when the walk stopped early. max >= 1.
 */
static int sample_dwarf(struct stoke_symbolizer *s, const struct stoke_sample *sample,
			struct stoke_symbol *frames, size_t max)
{
	struct stoke_unwind_frame ips[STOKE_UNWIND_MAX_FRAMES];
	enum stoke_unwind_end end;
	bool kernel = false, first = true;
	size_t n = 0, nips;

	for (uint64_t i = 0; i < sample->nr && n < max; i++) {
		uint64_t v = sample->callchain[i];

		if (v >= PERF_CONTEXT_MAX) {
			kernel = v == PERF_CONTEXT_KERNEL;
			first = true;
			continue;
		}
		if (!kernel)
			continue; /* a stray user entry: the unwinder does better */
		stoke_symbolizer_addr(s, (pid_t)sample->pid, v, true, !first, &frames[n++]);
		first = false;
	}
	if (max - n < 2)
		return (int)n;
	if (!s->unwinder && stoke_unwinder_new(s->elfs, s->pool, &s->unwinder) < 0)
		return (int)n;
	/* One slot stays free for the synthetic root frame. */
	nips = stoke_unwind_sample(s->unwinder, stoke_proctable_find(s->procs, sample->pid),
				   sample, ips, STOKE_MIN(max - n - 1, ARRAY_SIZE(ips)), &end);
	count_unwind_end(s, end);
	/* Registers we cannot unwind from (another ABI): the sampled IP alone,
	 * as without a callchain. */
	if (!nips && !addr_is_kernel(sample->ip))
		stoke_symbolizer_addr(s, (pid_t)sample->pid, sample->ip, false, false,
				      &frames[n++]);
	for (size_t i = 0; i < nips; i++)
		unwound_frame(s, (pid_t)sample->pid, &ips[i], &frames[n++]);
	if (nips && n < max && end != STOKE_UNWIND_COMPLETE)
		synthetic_frame(s,
				end == STOKE_UNWIND_TRUNCATED || end == STOKE_UNWIND_MAX_DEPTH
					? "[truncated]"
					: "[unwind-failed]",
				&frames[n++]);
	return (int)n;
}

int stoke_symbolizer_sample(struct stoke_symbolizer *s, const struct stoke_sample *sample,
			    struct stoke_symbol *frames, size_t max)
{
	enum context ctx = CTX_GUESS;
	bool first = true;
	size_t n = 0;

	if (max > INT_MAX)
		max = INT_MAX;
	if (max == 0)
		return 0;
	/* A sample with a user register set was taken in DWARF mode. */
	if (sample->nr_regs && sample->regs)
		return sample_dwarf(s, sample, frames, max);
	if (sample->nr == 0 || !sample->callchain) {
		stoke_symbolizer_addr(s, (pid_t)sample->pid, sample->ip, addr_is_kernel(sample->ip),
				      false, &frames[0]);
		return 1;
	}
	for (uint64_t i = 0; i < sample->nr && n < max; i++) {
		uint64_t v = sample->callchain[i];

		if (v >= PERF_CONTEXT_MAX) {
			ctx = context_of(v);
			first = true; /* the next entry is an exact IP again */
			continue;
		}
		if (ctx == CTX_FOREIGN)
			foreign_frame(s, v, &frames[n]);
		else
			stoke_symbolizer_addr(s, (pid_t)sample->pid, v,
					      ctx == CTX_KERNEL ||
						      (ctx == CTX_GUESS && addr_is_kernel(v)),
					      !first, &frames[n]);
		n++;
		first = false;
	}
	return (int)n;
}

void stoke_symbolizer_get_stats(const struct stoke_symbolizer *s,
				struct stoke_symbolizer_stats *ret)
{
	*ret = s->stats;
	if (s->unwinder) {
		struct stoke_unwind_stats us;

		stoke_unwinder_get_stats(s->unwinder, &us);
		ret->unwind_fp_links = us.fp_links;
	}
	ret->modules = stoke_elfcache_modules(s->elfs);
	ret->modules_failed = stoke_elfcache_failed(s->elfs);
	ret->processes = (uint32_t)stoke_proctable_count(s->procs);
}
