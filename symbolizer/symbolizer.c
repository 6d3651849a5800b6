/*
 * The symbolizer (see symbolizer.h): records build per-process address
 * spaces (addrspace.c) over a shared module cache (elfcache.c); samples are
 * resolved frame by frame through a per-address result cache, so each unique
 * (module, address) pair reaches libdwfl once.
 *
 * Result cache. The key is (module, ELF virtual address looked up), with the
 * kernel as a pseudo-module keyed by its address; a module's key is shared
 * by every module with the same build-id (stoke_module_key), so the cache is
 * by (build-id, address). The entry holds the physical function with its
 * source line, and the chain of inlined frames above it (kept in an
 * append-only arena), never per-process data, so processes mapping the same
 * file share entries. It is open addressing with a hard size limit: beyond
 * it, lookups still work but are not cached.
 *
 * JIT code. An address in anonymous memory (or in no mapping at all: JITs
 * do not always mmap with PROT_EXEC) is looked up in the process's
 * /tmp/perf-PID.map, read through /proc/PID/root with PID as the target's
 * own namespace sees it. The map grows while the JIT runs, so a miss
 * re-reads it when it has grown, at most every JIT_RELOAD_NS. These results
 * are not cached: the JIT reuses addresses.
 *
 * Two steps. Locating (stoke_symbolizer_locate, _sample_locs) needs the
 * process's mappings as they are at sample time and runs while the rings
 * are drained; naming (stoke_symbolizer_loc_frames) needs only the
 * location and may run much later. Tests make naming slow on purpose with
 * STOKE_TEST_NAME_DELAY_US (microseconds slept per module lookup that
 * misses the cache), to check that nothing waits on it.
 *
 * Loading. The first lookup in the kernel reads /proc/kallsyms, the first
 * in a module finds and opens its DWARF: steps of a tenth of a second or
 * more that nothing can split, during which a caller naming between ring
 * drains (stoke top) drains nothing. stoke_symbolizer_preload_kernel and
 * _preload_mapping take them before the events are enabled. Tests make
 * them slow on purpose with STOKE_TEST_LOAD_DELAY_US (microseconds slept
 * before kallsyms is read and before each module's DWARF is searched for).
 *
 * Return addresses. A return address points after its call instruction,
 * which may be the first byte of the next function (a noreturn call ends a
 * function) or the next line. So every callchain entry but the first of its
 * context is looked up at addr - 1; the frame keeps the sampled addr.
 */
#include "symbolizer/symbolizer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "symbolizer/addrspace.h"
#include "symbolizer/elfcache.h"
#include "common/hashmap.h"
#include "common/log.h"
#include "symbolizer/perfmap.h"
#include "stack/stack.h"
#include "stack/unwind.h"
#include "common/util.h"

#define KERNEL_MODULE "[kernel.kallsyms]"
/* The most addresses the result cache keeps (then results are no longer
 * kept): what its former 2^22-slot table held at 3/4 full. */
#define RESULT_CACHE_MAX (3u << 20)

/* Frames kept per address: the inline chain plus the physical function. */
#define MAX_ADDR_FRAMES STOKE_MODULE_MAX_FRAMES
/* A JIT map is re-read on a miss at most this often (and only if it grew). */
#define JIT_RELOAD_NS 200000000ULL
#define JIT_MAX_PROCS 4096
/* A JIT map is the target user's file: a reload reads at most this much of
 * what was appended (the rest waits for the next miss), so one never stalls
 * the caller long, and every map of a symbolizer together at most
 * JIT_TOTAL_BYTES (each one at most STOKE_PERFMAP_MAX_BYTES). A map's
 * entries take up to about 4 bytes per byte read (24-byte entries for
 * 6-byte lines), twice that while a commit merges. */
#define JIT_READ_BUDGET (4u << 20)
#define JIT_TOTAL_BYTES (64ull << 20)
/* The most locations stoke_symbolizer_sample asks for: kernel callchain,
 * unwound frames and the synthetic root frame. */
#define SAMPLE_MAX_LOCS 4096

/* One resolved address: the physical function (function/file/line) and the
 * ninl inlined frames above it, innermost first. */
struct result {
	const void *mod; /* key: stoke_module_key(), or &s->kernel_key */
	uint64_t addr;   /* key: the address looked up (after the -1 rule) */
	const char *function;
	const char *module; /* kernel only: "[kernel.kallsyms]" or "[mod]" */
	const char *file;
	uint32_t line;
	const char *decl_file;
	uint32_t decl_line;
	uint32_t ninl;
	const struct stoke_module_frame *inl;
};

/* Append-only storage for the cached inline chains. */
struct inl_chunk {
	struct inl_chunk *next;
	size_t used, cap;
	struct stoke_module_frame f[];
};

/* A process's JIT map. */
struct jitmap {
	uint32_t pid;
	struct stoke_perfmap *map; /* NULL: none read yet */
	uint64_t checked_ns;       /* last time the file was looked at */
	off_t size;                /* bytes of it read so far */
	dev_t dev;                 /* the file read (a new one starts over) */
	ino_t ino;
	off_t refused;             /* bytes past the caps, counted so far */
	bool warned;
};

struct stoke_symbolizer {
	bool no_kernel;
	bool no_result_cache;
	char *kallsyms_path;
	struct stoke_strpool *pool;
	struct stoke_elfcache *elfs;
	struct stoke_proctable *procs;
	struct stoke_ksyms *ksyms;
	bool ksyms_tried;
	char kernel_key; /* its address is the kernel's module key */
	const char *kernel_module;
	const char *vdso_module;
	struct result *results; /* the result cache, in the order added */
	size_t nresults, results_cap;
	struct stoke_hashmap result_index; /* (mod, addr) -> position + 1 */
	struct stoke_symbolizer_stats stats;
	struct stoke_unwinder *unwinder; /* DWARF mode; created on first use */
	struct stoke_module *last_elf; /* stoke_symbolizer_elf_frames' last file */
	struct inl_chunk *inl_chunks;
	struct jitmap *jits;
	size_t njits;
	uint64_t jit_bytes; /* read from every JIT map, against JIT_TOTAL_BYTES */
	struct stoke_module_frame scratch[MAX_ADDR_FRAMES];
	struct stoke_frame_loc *locs; /* stoke_symbolizer_sample's scratch */
	size_t locs_cap;
	struct stoke_stack_frame *walk; /* stoke_symbolizer_sample_locs's scratch */
	size_t walk_cap;
	unsigned test_delay_us; /* STOKE_TEST_NAME_DELAY_US */
	unsigned test_load_delay_us; /* STOKE_TEST_LOAD_DELAY_US */
};

int stoke_symbolizer_new(const struct stoke_symbolizer_opts *opts,
			 struct stoke_symbolizer **ret)
{
	struct stoke_symbolizer *s = calloc(1, sizeof(*s));
	int r = -ENOMEM;

	if (!s)
		return -ENOMEM;
	stoke_unwind_init_once();
	if (opts) {
		s->no_kernel = opts->no_kernel;
		s->no_result_cache = opts->no_result_cache;
	}
	{
		const char *delay = secure_getenv("STOKE_TEST_NAME_DELAY_US");

		if (delay)
			s->test_delay_us = (unsigned)strtoul(delay, NULL, 10);
		delay = secure_getenv("STOKE_TEST_LOAD_DELAY_US");
		if (delay)
			s->test_load_delay_us = (unsigned)strtoul(delay, NULL, 10);
	}
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
	r = stoke_elfcache_configure(s->elfs, opts ? opts->debuginfo_path : NULL,
				     opts ? opts->demangle : STOKE_DEMANGLE_SHORT);
	if (r < 0)
		goto fail;
	if (opts) {
		stoke_elfcache_set_creds(s->elfs, &opts->file_creds);
		stoke_elfcache_set_limits(s->elfs, opts->max_modules, opts->max_module_bytes);
	}
	stoke_elfcache_set_load_delay(s->elfs, s->test_load_delay_us);
	r = stoke_proctable_new(&s->procs);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	s->kernel_module = stoke_strpool_intern(s->pool, KERNEL_MODULE);
	s->vdso_module = stoke_strpool_intern(s->pool, "[vdso]");
	if (!s->kernel_module || !s->vdso_module)
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
	stoke_hashmap_free(&s->result_index);
	free(s->locs);
	free(s->walk);
	while (s->inl_chunks) {
		struct inl_chunk *next = s->inl_chunks->next;

		free(s->inl_chunks);
		s->inl_chunks = next;
	}
	for (size_t i = 0; i < s->njits; i++)
		stoke_perfmap_free(s->jits[i].map);
	free(s->jits);
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

static uint64_t result_hash(const void *mod, uint64_t addr)
{
	return stoke_hash_u64(addr ^ stoke_hash_u64((uintptr_t)mod));
}

static const struct result *result_find(struct stoke_symbolizer *s, const void *mod, uint64_t addr)
{
	struct stoke_hashmap_iter it;

	if (s->no_result_cache)
		return NULL;
	for (uint32_t id = stoke_hashmap_first(&s->result_index, result_hash(mod, addr), &it); id;
	     id = stoke_hashmap_next(&s->result_index, &it))
		if (s->results[id - 1].mod == mod && s->results[id - 1].addr == addr)
			return &s->results[id - 1];
	return NULL;
}

/* A copy of an inline chain in the arena, or NULL on ENOMEM. */
static const struct stoke_module_frame *inl_store(struct stoke_symbolizer *s,
						  const struct stoke_module_frame *f, size_t n)
{
	struct inl_chunk *c = s->inl_chunks;

	if (!c || c->cap - c->used < n) {
		size_t cap = STOKE_MAX((size_t)4096, n);

		c = malloc(sizeof(*c) + cap * sizeof(c->f[0]));
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = s->inl_chunks;
		s->inl_chunks = c;
	}
	memcpy(c->f + c->used, f, n * sizeof(*f));
	c->used += n;
	return c->f + c->used - n;
}

/* Caching is best effort: when the table is full, the result is simply not
 * kept. An inline chain pointing at scratch memory is copied to the arena. */
static void result_add(struct stoke_symbolizer *s, const struct result *res)
{
	struct result copy = *res;

	if (s->no_result_cache || s->nresults >= RESULT_CACHE_MAX ||
	    stoke_hashmap_reserve(&s->result_index, 1) < 0 ||
	    STOKE_GROW(s->results, s->results_cap, s->nresults + 1) < 0)
		return;
	if (copy.ninl) {
		copy.inl = inl_store(s, copy.inl, copy.ninl);
		if (!copy.inl)
			return;
	}
	s->results[s->nresults++] = copy;
	stoke_hashmap_put(&s->result_index, result_hash(copy.mod, copy.addr),
			  (uint32_t)s->nresults);
}

/* ---- lookups ---- */

/* Read kallsyms once (a failure too: the kernel is then named by address). */
static void ksyms_ensure(struct stoke_symbolizer *s)
{
	int r;

	if (s->ksyms_tried)
		return;
	s->ksyms_tried = true;
	if (s->test_load_delay_us)
		usleep(s->test_load_delay_us);
	r = stoke_ksyms_load(s->kallsyms_path, &s->ksyms);
	if (r < 0)
		log_debug("symbolizer: no kernel symbols from %s: %s", s->kallsyms_path,
			  strerror(-r));
}

static void kernel_lookup(struct stoke_symbolizer *s, uint64_t addr, struct result *res)
{
	const char *mod = "", *name;

	res->mod = &s->kernel_key;
	res->addr = addr;
	res->module = s->kernel_module;
	ksyms_ensure(s);
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

/* Expand a result into frames (inlined ones first) that share base's
 * address, module and kind. Inner frames go first when max is short. */
static size_t emit_result(const struct result *res, const struct stoke_symbol *base,
			  struct stoke_symbol *frames, size_t max)
{
	size_t skip = res->ninl + 1 > max ? res->ninl + 1 - max : 0, n = 0;

	for (size_t i = skip; i < res->ninl; i++) {
		frames[n] = *base;
		frames[n].function = res->inl[i].function;
		frames[n].file = res->inl[i].file;
		frames[n].line = res->inl[i].line;
		frames[n].decl_file = res->inl[i].decl_file;
		frames[n].decl_line = res->inl[i].decl_line;
		frames[n].inlined = true;
		n++;
	}
	frames[n] = *base;
	frames[n].function = res->function;
	frames[n].file = res->file;
	frames[n].line = res->line;
	frames[n].decl_file = res->decl_file;
	frames[n].decl_line = res->decl_line;
	if (res->module)
		frames[n].module = res->module;
	return n + 1;
}

static size_t resolve_kernel(struct stoke_symbolizer *s, uint64_t look,
			     const struct stoke_symbol *base, struct stoke_symbol *frames,
			     size_t max)
{
	const struct result *hit;
	struct result res = { 0 };

	hit = result_find(s, &s->kernel_key, look);
	if (hit) {
		s->stats.cache_hits++;
	} else {
		kernel_lookup(s, look, &res);
		result_add(s, &res);
		hit = &res;
	}
	return emit_result(hit, base, frames, max);
}

/* vaddr of mod, through the result cache. */
static size_t resolve_module(struct stoke_symbolizer *s, struct stoke_module *mod,
			     uint64_t vaddr, const struct stoke_symbol *base,
			     struct stoke_symbol *frames, size_t max)
{
	const void *key = stoke_module_key(mod);
	const struct result *hit = result_find(s, key, vaddr);
	struct result res = { .mod = key, .addr = vaddr };
	int n;

	if (hit) {
		s->stats.cache_hits++;
		return emit_result(hit, base, frames, max);
	}
	if (s->test_delay_us)
		usleep(s->test_delay_us);
	n = stoke_module_frames(s->elfs, mod, vaddr, s->scratch, MAX_ADDR_FRAMES);
	if (n <= 0) {
		frames[0] = *base; /* not cached: ENOMEM may pass */
		return 1;
	}
	res.function = s->scratch[n - 1].function;
	res.file = s->scratch[n - 1].file;
	res.line = s->scratch[n - 1].line;
	res.decl_file = s->scratch[n - 1].decl_file;
	res.decl_line = s->scratch[n - 1].decl_line;
	res.ninl = (uint32_t)(n - 1);
	res.inl = s->scratch;
	result_add(s, &res);
	return emit_result(&res, base, frames, max);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The pid the target sees itself as (the last NSpid field), which names its
 * map file; pid itself when that cannot be read. */
static uint32_t ns_pid(uint32_t pid)
{
	char path[64], line[256];
	uint32_t ret = pid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/status", pid);
	f = fopen(path, "re");
	if (!f)
		return pid;
	while (fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		for (p = line + 6;; p = end) {
			unsigned long v = strtoul(p, &end, 10);

			if (end == p)
				break;
			ret = (uint32_t)v;
		}
		break;
	}
	fclose(f);
	return ret;
}

/* A JIT map is trusted when root or the target's own user wrote it (the
 * owner of /proc/PID is the process's effective uid). */
static bool jit_owner_ok(uint32_t pid, const struct stat *map)
{
	char path[64];
	struct stat proc;

	if (map->st_uid == 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%" PRIu32, pid);
	return stat(path, &proc) == 0 && proc.st_uid == map->st_uid;
}

/* Count the bytes of j's file that will never be read (past the caps) and
 * say so once per map. */
static void jit_refuse(struct stoke_symbolizer *s, struct jitmap *j, const char *path,
		       off_t size, off_t readable)
{
	if (size - readable <= j->refused)
		return;
	s->stats.jit_bytes_refused += (uint64_t)(size - readable - j->refused);
	j->refused = size - readable;
	if (!j->warned)
		log_warn("%s: %lld bytes not read (a JIT map is read up to %u MiB, all of "
			 "a session's up to %llu MiB)",
			 path, (long long)j->refused, STOKE_PERFMAP_MAX_BYTES >> 20,
			 JIT_TOTAL_BYTES >> 20);
	j->warned = true;
}

/* Read what was appended to pid's JIT map since the last read, within the
 * caps. A file that was replaced or shrank is read again from the start. */
static void jit_reload(struct stoke_symbolizer *s, struct jitmap *j)
{
	char path[128], buf[65536];
	struct stat st;
	off_t readable, end;
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/root/tmp/perf-%" PRIu32 ".map", j->pid,
		 ns_pid(j->pid));
	/* /tmp is writable by everybody: only a regular file (never a FIFO
	 * that would block us), not a symlink, owned by root or by the target's
	 * user, as perf requires, and opened with the requester's rights. */
	fd = stoke_elfcache_open(s->elfs, path, O_NOFOLLOW, &st);
	if (fd < 0) {
		/* The target has exited (its root is gone), or shares our
		 * namespace anyway. */
		snprintf(path, sizeof(path), "/tmp/perf-%" PRIu32 ".map", j->pid);
		fd = stoke_elfcache_open(s->elfs, path, O_NOFOLLOW, &st);
	}
	if (fd < 0)
		return;
	if (!jit_owner_ok(j->pid, &st)) {
		close(fd);
		return;
	}
	if (j->map && (st.st_dev != j->dev || st.st_ino != j->ino || st.st_size < j->size)) {
		s->jit_bytes -= (uint64_t)j->size;
		stoke_perfmap_free(j->map);
		j->map = NULL;
		j->size = j->refused = 0;
	}
	readable = STOKE_MIN(st.st_size, (off_t)STOKE_PERFMAP_MAX_BYTES);
	readable = STOKE_MIN(readable, j->size + (off_t)(JIT_TOTAL_BYTES - s->jit_bytes));
	jit_refuse(s, j, path, st.st_size, readable);
	end = STOKE_MIN(readable, j->size + (off_t)JIT_READ_BUDGET);
	if (end <= j->size || (!j->map && stoke_perfmap_new(&j->map) < 0)) {
		close(fd);
		return;
	}
	j->dev = st.st_dev;
	j->ino = st.st_ino;
	while (j->size < end) {
		ssize_t n = pread(fd, buf, (size_t)STOKE_MIN((off_t)sizeof(buf), end - j->size),
				  j->size);

		if (n <= 0)
			break; /* shrank under us, or an error: what was read stays */
		r = stoke_perfmap_feed(j->map, buf, (size_t)n);
		if (r < 0)
			break;
		j->size += n;
		s->jit_bytes += (uint64_t)n;
	}
	close(fd);
	if (r == 0)
		r = stoke_perfmap_commit(j->map);
	if (r < 0)
		log_debug("symbolizer: %s: %s", path, strerror(-r));
	s->stats.jit_maps_read++;
}

static struct jitmap *jit_get(struct stoke_symbolizer *s, uint32_t pid)
{
	size_t cap = s->njits;

	for (size_t i = 0; i < s->njits; i++)
		if (s->jits[i].pid == pid)
			return &s->jits[i];
	if (s->njits >= JIT_MAX_PROCS || STOKE_GROW(s->jits, cap, s->njits + 1) < 0)
		return NULL;
	s->jits[s->njits] = (struct jitmap){ .pid = pid };
	return &s->jits[s->njits++];
}

/* The JIT-map name of look in pid, or NULL. */
static const char *jit_lookup(struct stoke_symbolizer *s, uint32_t pid, uint64_t look)
{
	struct jitmap *j = jit_get(s, pid);
	const char *name;
	uint64_t now;

	if (!j)
		return NULL;
	name = j->map ? stoke_perfmap_lookup(j->map, look, NULL) : NULL;
	if (name)
		return name;
	now = now_ns();
	if (j->checked_ns && now - j->checked_ns < JIT_RELOAD_NS)
		return NULL;
	j->checked_ns = now;
	jit_reload(s, j);
	return j->map ? stoke_perfmap_lookup(j->map, look, NULL) : NULL;
}

/* JIT code is named when located: the JIT reuses its addresses, so only
 * the map as it is now describes this sample. */
static bool locate_jit(struct stoke_symbolizer *s, uint32_t pid, uint64_t look,
		       struct stoke_frame_loc *loc)
{
	const char *name = jit_lookup(s, pid, look);
	char mod[64];

	if (!name)
		return false;
	snprintf(mod, sizeof(mod), "/tmp/perf-%" PRIu32 ".map", pid);
	loc->function = stoke_strpool_intern(s->pool, name);
	loc->module = stoke_strpool_intern(s->pool, mod);
	if (!loc->function) {
		loc->module = NULL;
		return false;
	}
	loc->kind = STOKE_FRAME_JIT;
	return true;
}

static void locate_user(struct stoke_symbolizer *s, pid_t pid, uint64_t addr, uint64_t look,
			struct stoke_frame_loc *loc)
{
	struct stoke_addrspace *as = stoke_proctable_find(s->procs, (uint32_t)pid);
	const struct stoke_mapping *m = as ? stoke_addrspace_find(as, look) : NULL;
	uint64_t file_off, vaddr;

	loc->kind = STOKE_FRAME_USER;
	if ((!m || (!m->mod && m->name != s->vdso_module)) &&
	    locate_jit(s, (uint32_t)pid, look, loc))
		return;
	if (!m) {
		s->stats.no_mapping++;
		return;
	}
	loc->module = m->name;
	file_off = look - m->start + m->pgoff;
	loc->offset = file_off + (addr - look);
	if (!m->mod || stoke_module_vaddr(s->elfs, m->mod, file_off, &vaddr) < 0)
		return;
	/* offset is the ELF vaddr of the sampled address itself. */
	loc->offset = vaddr + (addr - look);
	loc->mod = m->mod;
	loc->look = vaddr;
	loc->lookup = STOKE_LOC_MODULE;
}

static void count_unknown(struct stoke_symbolizer *s, const struct stoke_symbol *frames,
			  size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!frames[i].function)
			s->stats.unknown++;
}

int stoke_symbolizer_locate(struct stoke_symbolizer *s, pid_t pid, uint64_t addr, bool kernel,
			    bool return_addr, struct stoke_frame_loc *ret)
{
	/* The call instruction ends at a return address: look inside it. */
	uint64_t look = return_addr && addr > 0 ? addr - 1 : addr;

	memset(ret, 0, sizeof(*ret));
	ret->addr = addr;
	ret->offset = addr;
	s->stats.lookups++;
	if (!kernel) {
		locate_user(s, pid, addr, look, ret);
		return 0;
	}
	ret->kind = STOKE_FRAME_KERNEL;
	ret->module = s->kernel_module;
	if (!s->no_kernel) {
		ret->lookup = STOKE_LOC_KERNEL;
		ret->look = look;
	}
	return 0;
}

int stoke_symbolizer_loc_frames(struct stoke_symbolizer *s, const struct stoke_frame_loc *loc,
				struct stoke_symbol *frames, size_t max)
{
	struct stoke_symbol base = {
		.function = loc->function,
		.module = loc->module,
		.addr = loc->addr,
		.offset = loc->offset,
		.kind = (enum stoke_frame_kind)loc->kind,
	};
	size_t n = 1;

	if (max == 0)
		return 0;
	switch (loc->lookup) {
	case STOKE_LOC_KERNEL:
		n = resolve_kernel(s, loc->look, &base, frames, max);
		break;
	case STOKE_LOC_MODULE:
		n = resolve_module(s, loc->mod, loc->look, &base, frames, max);
		break;
	default:
		frames[0] = base;
		break;
	}
	count_unknown(s, frames, n);
	return (int)n;
}

void stoke_symbolizer_preload_kernel(struct stoke_symbolizer *s)
{
	if (!s->no_kernel)
		ksyms_ensure(s);
}

int stoke_symbolizer_preload_mapping(struct stoke_symbolizer *s, const struct stoke_mmap *m)
{
	struct stoke_module *mod;
	int r;

	/* What on_mmap would make a module of, code only. */
	if (m->kernel || m->pid == (uint32_t)-1 || !(m->prot & PROT_EXEC) ||
	    is_pseudo_path(m->filename))
		return 0;
	r = stoke_elfcache_get(s->elfs, m, &mod);
	if (r < 0)
		return r;
	r = stoke_module_preload(s->elfs, mod);
	return r == -ENOMEM ? r : 0;
}

int stoke_symbolizer_addr_frames(struct stoke_symbolizer *s, pid_t pid, uint64_t addr,
				 bool kernel, bool return_addr, struct stoke_symbol *frames,
				 size_t max)
{
	struct stoke_frame_loc loc;

	if (max == 0)
		return 0;
	stoke_symbolizer_locate(s, pid, addr, kernel, return_addr, &loc);
	return stoke_symbolizer_loc_frames(s, &loc, frames, max);
}

int stoke_symbolizer_addr(struct stoke_symbolizer *s, pid_t pid, uint64_t addr, bool kernel,
			  bool return_addr, struct stoke_symbol *ret)
{
	/* Only the physical function: a one-frame array keeps the last. */
	stoke_symbolizer_addr_frames(s, pid, addr, kernel, return_addr, ret, 1);
	return 0;
}

int stoke_symbolizer_elf_frames(struct stoke_symbolizer *s, const char *path, uint64_t vaddr,
				struct stoke_symbol *frames, size_t max)
{
	struct stoke_mmap m = { .filename = path };
	struct stoke_symbol base = { .addr = vaddr, .offset = vaddr, .kind = STOKE_FRAME_USER };
	struct stoke_module *mod;
	size_t n;
	int r;

	if (max == 0)
		return 0;
	/* Bulk callers ask about one file again and again: skip hashing its
	 * path. Modules live as long as the cache, and a path-keyed module
	 * is found by its path alone. */
	if (s->last_elf && strcmp(stoke_module_path(s->last_elf), path) == 0) {
		mod = s->last_elf;
	} else {
		r = stoke_elfcache_get(s->elfs, &m, &mod);
		if (r < 0)
			return r;
		s->last_elf = mod;
	}
	r = stoke_module_parse(s->elfs, mod);
	if (r < 0)
		return r;
	base.module = stoke_module_path(mod);
	s->stats.lookups++;
	n = resolve_module(s, mod, vaddr, &base, frames, max);
	count_unknown(s, frames, n);
	return (int)n;
}

/* ---- DWARF user stacks (unwind.c) ---- */

/* The root-side marker of a stack that did not reach its outermost frame. */
static void synthetic_loc(struct stoke_symbolizer *s, const char *name,
			  struct stoke_frame_loc *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->function = stoke_strpool_intern(s->pool, name);
	ret->kind = STOKE_FRAME_SYNTHETIC;
}

/* Locate one unwound frame; vDSO frames, which no file describes, are named
 * from the unwinder's vDSO image. */
static void unwound_loc(struct stoke_symbolizer *s, pid_t pid,
			const struct stoke_unwind_frame *f, struct stoke_frame_loc *ret)
{
	uint64_t look = f->exact ? f->ip : f->ip - 1;
	struct stoke_addrspace *as;
	const struct stoke_mapping *m;

	stoke_symbolizer_locate(s, pid, f->ip, false, !f->exact, ret);
	if (ret->lookup != STOKE_LOC_NAMED || ret->function || ret->module != s->vdso_module)
		return;
	as = stoke_proctable_find(s->procs, (uint32_t)pid);
	m = as ? stoke_addrspace_find(as, look) : NULL;
	if (!m)
		return;
	ret->function = stoke_unwind_vdso_symbol(s->unwinder, m->start, look);
	ret->offset = f->ip - m->start;
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

int stoke_symbolizer_sample_locs(struct stoke_symbolizer *s, const struct stoke_sample *sample,
				 struct stoke_frame_loc *locs, size_t max)
{
	const struct stoke_addrspace *as = NULL;
	enum stoke_unwind_end end = STOKE_UNWIND_COMPLETE;
	bool unwound = false;
	size_t n;

	if (max > INT_MAX)
		max = INT_MAX;
	if (max == 0)
		return 0;
	if (STOKE_GROW(s->walk, s->walk_cap, max) < 0)
		return 0;
	/* The stack layer gives the addresses (unwinding a sample taken with
	 * registers); this only locates them. */
	if (sample->regs_kind != STOKE_REGS_NONE) {
		if (!s->unwinder && stoke_unwinder_new(s->elfs, s->pool, &s->unwinder) < 0)
			s->unwinder = NULL;
		as = stoke_proctable_find(s->procs, sample->pid);
	}
	n = stoke_stack_walk(s->unwinder, as, sample, s->walk, max, &unwound, &end);
	if (unwound)
		count_unwind_end(s, end);
	for (size_t i = 0; i < n; i++) {
		const struct stoke_stack_frame *f = &s->walk[i];

		switch (f->kind) {
		case STOKE_STACK_KERNEL:
		case STOKE_STACK_USER:
			stoke_symbolizer_locate(s, (pid_t)sample->pid, f->ip,
						f->kind == STOKE_STACK_KERNEL, !f->exact, &locs[i]);
			break;
		case STOKE_STACK_UNWOUND: {
			struct stoke_unwind_frame uf = { .ip = f->ip, .exact = f->exact };

			unwound_loc(s, (pid_t)sample->pid, &uf, &locs[i]);
			break;
		}
		default:
			synthetic_loc(s, f->name, &locs[i]);
			break;
		}
	}
	return (int)n;
}

int stoke_symbolizer_sample(struct stoke_symbolizer *s, const struct stoke_sample *sample,
			    struct stoke_symbol *frames, size_t max)
{
	size_t nlocs, n = 0;
	int r;

	if (max > INT_MAX)
		max = INT_MAX;
	if (max == 0)
		return 0;
	/* Never more locations than frames: each names at least one. */
	if (STOKE_GROW(s->locs, s->locs_cap, STOKE_MIN(max, (size_t)SAMPLE_MAX_LOCS)) < 0)
		return 0;
	r = stoke_symbolizer_sample_locs(s, sample, s->locs,
					 STOKE_MIN(max, (size_t)SAMPLE_MAX_LOCS));
	nlocs = r > 0 ? (size_t)r : 0;
	/* Inlined frames expand in place, leaf first; a synthetic root frame
	 * keeps its slot however many frames the inlining adds. */
	for (size_t i = 0; i < nlocs && n < max; i++) {
		size_t room = max - n;

		if (i + 1 < nlocs && s->locs[nlocs - 1].kind == STOKE_FRAME_SYNTHETIC) {
			if (room < 2)
				break;
			room--;
		}
		n += (size_t)stoke_symbolizer_loc_frames(s, &s->locs[i], frames + n, room);
		if (i + 1 < nlocs && s->locs[nlocs - 1].kind == STOKE_FRAME_SYNTHETIC &&
		    n == max - 1) {
			n += (size_t)stoke_symbolizer_loc_frames(s, &s->locs[nlocs - 1],
								 frames + n, 1);
			break;
		}
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
		ret->unwind_stitched = us.stitched;
	}
	ret->modules = stoke_elfcache_modules(s->elfs);
	ret->modules_failed = stoke_elfcache_failed(s->elfs);
	ret->modules_capped = stoke_elfcache_capped(s->elfs);
	ret->module_bytes = stoke_elfcache_bytes(s->elfs);
	ret->processes = (uint32_t)stoke_proctable_count(s->procs);
}

void stoke_symbolizer_set_max_module_bytes(struct stoke_symbolizer *s, uint64_t max)
{
	stoke_elfcache_set_max_bytes(s->elfs, max);
}
