/*
 * The string pool and the ELF module cache (see elfcache.h).
 *
 * Modules are opened when their MMAP record arrives, so a target that exits
 * before the end of the run still symbolizes, and parsed with libdwfl on the
 * first lookup: most mapped files are never sampled. Each module gets its own
 * offline Dwfl, reported at base 0, so module addresses are ELF virtual
 * addresses plus the bias libdwfl reports (0 for ET_EXEC and for ET_DYN whose
 * first PT_LOAD is at 0; -p_vaddr of that segment otherwise, e.g. prelinked
 * libraries) — we add the bias back rather than assume it is 0.
 *
 * Opening. A file is opened through the target's root first (containers),
 * then as we see the path, then through /proc/PID/map_files (deleted or
 * replaced files), and a candidate is only taken when it is the file that
 * was mapped: same build-id when the record has one, same inode when it has
 * one. A path the kernel marks " (deleted)" goes straight to map_files: the
 * name may now belong to another file.
 *
 * Names. Functions are named from DWARF when it covers the address (the
 * name addr2line prints; a static clone "f.constprop.0" is "f" there) with
 * its inlined frames and lines (srcline.c), else from the symbol table
 * (.symtab, .dynsym or .gnu_debugdata, plus name@plt for PLT stubs), which
 * is indexed once per module (symtab.c); both are demangled (demangle.c)
 * and interned. Where DWARF names the physical function by a symbol that
 * has a preferred alias at the same address (glibc's "__GI___libc_malloc"
 * for "malloc"), the alias perf would print is used instead.
 *
 * Cleanup style in this file: explicit frees on early return (no cleanup
 * attribute, no goto).
 */
#include "symbolizer/elfcache.h"

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "symbolizer/demangle.h"
#include "common/log.h"
#include "symbolizer/srcline.h"
#include "symbolizer/symtab.h"
#include "common/hashmap.h"
#include "common/util.h"
#include "common/u64set.h"

/* ---- modules ---- */

enum module_state {
	MODULE_NEW = 0, /* opened (or not), not parsed */
	MODULE_READY,
	MODULE_FAILED,
};

struct load_seg {
	uint64_t offset, filesz, vaddr;
};

struct stoke_module {
	uint64_t hash;
	/* identity */
	bool by_inode;
	uint32_t maj, min;
	uint64_t ino, ino_generation;
	uint8_t build_id_size;
	uint8_t build_id[20];
	const char *path; /* interned, as mapped */
	/* file */
	int fd;
	char *open_path; /* the path fd was opened from (debuginfo search) */
	enum module_state state;
	Dwfl *dwfl;
	Dwfl_Module *dwmod;
	Dwarf_Addr bias; /* module address = ELF vaddr + bias */
	struct load_seg *segs;
	size_t nsegs;
	struct stoke_srcline *srcline; /* built on the first line lookup */
	bool no_dwarf;                 /* no usable DWARF: symbols only */
	struct stoke_symtab *symtab;   /* built on the first symbol lookup */
	const char **sym_names;        /* interned name per symtab entry */
	/* The result-cache key: the first module with the same build-id (a
	 * library seen through two paths is symbolized once), else itself. */
	const struct stoke_module *key;
	struct stoke_module *next_id; /* build-id chain */
	uint8_t file_id_size;         /* the file's build-id (once loaded) */
	uint8_t file_id[20];
};

struct stoke_elfcache {
	struct stoke_strpool *pool;
	struct stoke_module **mods; /* in the order first met */
	size_t mods_cap;
	struct stoke_hashmap mod_index; /* identity -> position in mods + 1 */
	uint32_t count, failed;
	/* Offline callbacks: the main file comes from our fd; separate
	 * debuginfo is found by build-id (.build-id/xx/….debug under each
	 * absolute search root), .gnu_debuglink (next to the file, in its
	 * .debug/, under each root), .gnu_debugdata, and debuginfod when the
	 * environment sets DEBUGINFOD_URLS. Per cache, because the search
	 * path is an option; every Dwfl points here, so it lives as long as
	 * the cache. */
	Dwfl_Callbacks callbacks;
	char *debuginfo_path; /* NULL: libdwfl's default */
	/* Whose rights every file a target names is opened with (see
	 * stoke_elfcache_open). */
	struct stoke_file_creds creds;
	enum stoke_demangle_mode demangle;
	unsigned load_delay_us; /* stoke_elfcache_set_load_delay */
	struct stoke_module *ids; /* loaded modules with a build-id */
	/* Names and paths libdw hands out stay put while their Dwarf lives (as
	 * long as the cache), so the interned (demangled, joined) form is
	 * memoized by the pointers: per address, no demangling, joining or
	 * string hashing is left. */
	struct name_memo *memo;
	size_t memo_count, memo_cap;
	struct stoke_hashmap memo_index; /* (key, key2) -> memo position + 1 */
	struct stoke_u64set no_debuginfo; /* build-ids already reported */
	/* Limits on what modules may load (stoke_elfcache_set_limits): a
	 * target chooses how many and how big the files it maps are, and
	 * stoked loads them as root on the user's behalf. bytes is the
	 * running estimate of what loaded modules hold; max_bytes is atomic
	 * because stoked lowers it from its loop while a job symbolizes. */
	uint32_t max_modules; /* 0: no cap */
	_Atomic uint64_t max_bytes; /* 0: no cap */
	_Atomic uint64_t bytes;
	uint32_t loaded; /* modules parsed (READY) */
	uint32_t capped; /* modules refused by a limit */
	uint32_t dwarf_capped; /* modules left without DWARF by max_bytes */
};

struct name_memo {
	const void *key, *key2; /* libdw string, and the directory for paths */
	const char *interned;
};

/* libdwfl's default search path, which --debuginfo-path extends. */
#define DEFAULT_DEBUGINFO_PATH ":.debug:/usr/lib/debug"

/* ---- opening what a target names, with the requester's rights ----
 *
 * stoked runs as root for other users. A path a target names (its MMAP
 * records, the debuglink of a file it mapped, its JIT map) is chosen by that
 * user: a directory swapped for a symlink to a root-only directory would
 * make root read, and the profile show, what the user may not. So every
 * such open runs with the requester's filesystem ids: setfsuid/setfsgid and
 * supplementary groups reduced to the requester's gid, all per thread in
 * Linux (the raw setgroups syscall: glibc's wrapper changes every thread).
 * A non-root fsuid also drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so
 * the kernel checks each path component and the file as the requester. */

struct creds_save {
	bool switched;
	int ngroups;
	gid_t *groups; /* small, or malloc'd when there are more */
	gid_t small[32];
};

static void creds_leave(struct creds_save *save);

static int creds_enter(const struct stoke_file_creds *fc, struct creds_save *save)
{
	int n;

	save->switched = false;
	save->groups = save->small;
	if (!fc || !fc->set || fc->uid == 0 || geteuid() != 0)
		return 0;
	n = getgroups(0, NULL);
	if (n > (int)ARRAY_SIZE(save->small) && !(save->groups = calloc((size_t)n, sizeof(gid_t))))
		return -ENOMEM;
	save->ngroups = getgroups(STOKE_MAX(n, (int)ARRAY_SIZE(save->small)), save->groups);
	/* Fail closed: never open as root what must be opened as them. */
	if (save->ngroups < 0 || syscall(SYS_setgroups, (size_t)1, &fc->gid) < 0) {
		creds_leave(save);
		return -EPERM;
	}
	setfsgid(fc->gid);
	setfsuid(fc->uid);
	save->switched = true;
	/* setfsuid(-1) changes nothing and returns the current fsuid. */
	if ((uid_t)setfsuid((uid_t)-1) != fc->uid || (gid_t)setfsgid((gid_t)-1) != fc->gid) {
		log_error("cannot take the filesystem ids of uid %u", (unsigned)fc->uid);
		creds_leave(save);
		return -EPERM;
	}
	return 0;
}

/* Idempotent: every creds_enter is followed by one or more of these. */
static void creds_leave(struct creds_save *save)
{
	if (save->switched) {
		setfsuid(geteuid());
		setfsgid(getegid());
		if (syscall(SYS_setgroups, (size_t)save->ngroups, save->groups) < 0)
			log_error("cannot restore the supplementary groups: %s", strerror(errno));
		save->switched = false;
	}
	if (save->groups != save->small)
		free(save->groups);
	save->groups = save->small;
}

static int open_as(const struct stoke_file_creds *fc, const char *path, int flags,
		   struct stat *ret_st)
{
	struct creds_save save;
	struct stat st;
	char self[64];
	int pfd, fd, r;

	r = creds_enter(fc, &save);
	if (r < 0)
		return r;
	/* O_PATH first: nothing is opened for reading (no device's open runs,
	 * no FIFO wakes its writer) until fstat says it is a regular file.
	 * The reopen through /proc/self/fd is of that same inode, and the
	 * kernel checks the read permission there, as the requester. */
	pfd = open(path, O_PATH | O_CLOEXEC | flags);
	if (pfd < 0) {
		r = -errno;
	} else if (fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
	} else {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
		fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		r = fd < 0 ? -errno : fd;
		if (fd >= 0 && ret_st)
			*ret_st = st;
	}
	if (pfd >= 0)
		close(pfd);
	creds_leave(&save);
	return r;
}

void stoke_elfcache_set_creds(struct stoke_elfcache *c, const struct stoke_file_creds *fc)
{
	c->creds = *fc;
}

int stoke_elfcache_open(struct stoke_elfcache *c, const char *path, int flags,
			struct stat *ret_st)
{
	return open_as(&c->creds, path, flags, ret_st);
}

/* No separate debug info for a module with a build-id while debuginfod is
 * configured: say so once per build-id (libdwfl asks again for the symbol
 * table, and a library may be mapped under several names), not per frame.
 * libdwfl does not tell a timeout or an unreachable server from a server
 * without the file, so the line names the server to look at. */
static void report_no_debuginfo(struct stoke_elfcache *c, Dwfl_Module *dm, const char *modname)
{
	const char *urls = getenv("DEBUGINFOD_URLS");
	const unsigned char *bits;
	GElf_Addr vaddr;
	char hex[41];
	int n;

	if (!urls || !*urls)
		return;
	n = dwfl_module_build_id(dm, &bits, &vaddr);
	if (n <= 0)
		return;
	if (stoke_u64set_has(&c->no_debuginfo, stoke_hash_bytes(0xcbf29ce484222325ULL, bits,
								    (size_t)n) | 1))
		return;
	stoke_u64set_add(&c->no_debuginfo,
			 stoke_hash_bytes(0xcbf29ce484222325ULL, bits, (size_t)n) | 1);
	hex[0] = '\0';
	for (int i = 0; i < n && i < 20; i++)
		snprintf(hex + 2 * i, 3, "%02x", bits[i]);
	log_warn("symbolizer: %s: debug info for build-id %s unavailable (not found locally, "
		 "debuginfod %s did not provide it: timed out, unreachable or missing); "
		 "named from its symbols, without file:line",
		 modname, hex, urls);
}

/*
 * Build-ids whose debug info was not found (locally nor from debuginfod),
 * for the whole process and NEG_TTL_S: libdwfl may ask again for each lookup
 * it makes of a module (its DWARF, its symbol table) and every session
 * has its own caches, so a server that times out would cost its timeout
 * on every stoked scrape (each is a session of its own). One lookup
 * against a server that never answers costs its timeout times its tries:
 * 11 s for a 1 s `stoke record` with DEBUGINFOD_TIMEOUT=3 and the default
 * DEBUGINFOD_RETRY_LIMIT (2), 5 s with 0. Direct-mapped: a collision only
 * forgets a failure. Only while debuginfod is configured (without it, a
 * local lookup is cheap). Ten minutes, as libdebuginfod remembers a file
 * the server does not have.
 */
#define NEG_SLOTS 256
#define NEG_TTL_S 600.0
static struct {
	uint64_t key;
	double at;
} neg_cache[NEG_SLOTS];
static pthread_mutex_t neg_lock = PTHREAD_MUTEX_INITIALIZER;

static double neg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The key of dm's build-id while debuginfod is configured, else 0. */
static uint64_t neg_key(Dwfl_Module *dm)
{
	const char *urls = getenv("DEBUGINFOD_URLS");
	const unsigned char *bits;
	GElf_Addr vaddr;
	int n;

	if (!urls || !*urls)
		return 0;
	n = dwfl_module_build_id(dm, &bits, &vaddr);
	return n > 0 ? stoke_hash_bytes(0xcbf29ce484222325ULL, bits, (size_t)n) | 1 : 0;
}

static bool neg_has(uint64_t key)
{
	bool r;

	pthread_mutex_lock(&neg_lock);
	r = neg_cache[key % NEG_SLOTS].key == key &&
	    neg_now() - neg_cache[key % NEG_SLOTS].at < NEG_TTL_S;
	pthread_mutex_unlock(&neg_lock);
	return r;
}

static void neg_add(uint64_t key)
{
	pthread_mutex_lock(&neg_lock);
	neg_cache[key % NEG_SLOTS].key = key;
	neg_cache[key % NEG_SLOTS].at = neg_now();
	pthread_mutex_unlock(&neg_lock);
}

/* libdwfl opens separate debuginfo by path (next to the main file, in its
 * .debug/, under the roots): as the requester too. The module's userdata is
 * the cache (module_load sets it). */
static int find_debuginfo_as_requester(Dwfl_Module *dm, void **userdata, const char *modname,
				       Dwarf_Addr base, const char *file_name,
				       const char *debuglink_file, GElf_Word debuglink_crc,
				       char **debuginfo_file_name)
{
	struct stoke_elfcache *c = *userdata;
	uint64_t key = neg_key(dm);
	struct creds_save save;
	int fd;

	if (key && neg_has(key)) {
		if (c)
			report_no_debuginfo(c, dm, modname);
		return -1;
	}
	if (c && creds_enter(&c->creds, &save) < 0)
		return -1;
	fd = dwfl_standard_find_debuginfo(dm, userdata, modname, base, file_name, debuglink_file,
					  debuglink_crc, debuginfo_file_name);
	if (c)
		creds_leave(&save);
	if (fd < 0 && key)
		neg_add(key);
	if (fd < 0 && c)
		report_no_debuginfo(c, dm, modname);
	return fd;
}

int stoke_elfcache_new(struct stoke_strpool *pool, struct stoke_elfcache **ret)
{
	struct stoke_elfcache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	/* file_matches() reads ELF notes with libelf before libdwfl runs. */
	elf_version(EV_CURRENT);
	c->pool = pool;
	c->callbacks = (Dwfl_Callbacks){
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = find_debuginfo_as_requester,
		.section_address = dwfl_offline_section_address,
		.debuginfo_path = &c->debuginfo_path,
	};
	*ret = c;
	return 0;
}

int stoke_elfcache_configure(struct stoke_elfcache *c, const char *debuginfo_dirs,
			     enum stoke_demangle_mode demangle)
{
	char *path = NULL;

	if (debuginfo_dirs && *debuginfo_dirs &&
	    asprintf(&path, "%s:%s", DEFAULT_DEBUGINFO_PATH, debuginfo_dirs) < 0)
		return -ENOMEM;
	free(c->debuginfo_path);
	c->debuginfo_path = path;
	c->demangle = demangle;
	return 0;
}

static void module_free(struct stoke_module *mod)
{
	stoke_srcline_free(mod->srcline);
	stoke_symtab_free(mod->symtab);
	free(mod->sym_names);
	if (mod->dwfl)
		dwfl_end(mod->dwfl); /* closes the fd we handed it */
	if (mod->fd >= 0)
		close(mod->fd);
	free(mod->open_path);
	free(mod->segs);
	free(mod);
}

void stoke_elfcache_free(struct stoke_elfcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->count; i++)
		module_free(c->mods[i]);
	free(c->mods);
	stoke_hashmap_free(&c->mod_index);
	free(c->debuginfo_path);
	free(c->memo);
	stoke_hashmap_free(&c->memo_index);
	stoke_u64set_clear(&c->no_debuginfo);
	free(c);
}

/* File identity: the inode when the record has one (MMAP2 without build-id),
 * else the path plus the build-id when there is one. */
static void module_key(const struct stoke_mmap *m, struct stoke_module *key)
{
	memset(key, 0, sizeof(*key));
	key->by_inode = m->is_mmap2 && !m->has_build_id && (m->maj || m->min || m->ino);
	if (key->by_inode) {
		key->maj = m->maj;
		key->min = m->min;
		key->ino = m->ino;
		key->ino_generation = m->ino_generation;
		key->hash = stoke_hash_u64(((uint64_t)m->maj << 32 | m->min) ^
					   stoke_hash_u64(m->ino ^ stoke_hash_u64(m->ino_generation)));
		return;
	}
	key->hash = stoke_hash_bytes(STOKE_HASH_INIT, m->filename, strlen(m->filename));
	if (m->is_mmap2 && m->has_build_id) {
		key->build_id_size = STOKE_MIN(m->build_id_size, (uint8_t)sizeof(key->build_id));
		memcpy(key->build_id, m->build_id, key->build_id_size);
		key->hash = stoke_hash_bytes(key->hash, key->build_id, key->build_id_size);
	}
}

static bool module_match(const struct stoke_module *mod, const struct stoke_module *key,
			 const char *path)
{
	if (mod->hash != key->hash || mod->by_inode != key->by_inode)
		return false;
	if (key->by_inode)
		return mod->maj == key->maj && mod->min == key->min && mod->ino == key->ino &&
		       mod->ino_generation == key->ino_generation;
	return strcmp(mod->path, path) == 0 && mod->build_id_size == key->build_id_size &&
	       memcmp(mod->build_id, key->build_id, key->build_id_size) == 0;
}

/* Whether fd holds the file m mapped. A build-id is proof either way; an
 * inode only tells a match (the same file may show another inode through
 * another mount), so a mismatch there is "unsure". Returns 1 (yes), 0
 * (unsure), -1 (no). */
static int file_matches(int fd, const struct stoke_mmap *m)
{
	if (m->is_mmap2 && m->has_build_id && m->build_id_size) {
		Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
		const void *id = NULL;
		ssize_t n = elf ? dwelf_elf_gnu_build_id(elf, &id) : -1;
		int r = n == (ssize_t)m->build_id_size && !memcmp(id, m->build_id, (size_t)n) ? 1
											       : -1;

		if (elf)
			elf_end(elf);
		return r;
	}
	if (m->is_mmap2 && m->ino) {
		struct stat st;

		return fstat(fd, &st) == 0 && st.st_ino == m->ino ? 1 : 0;
	}
	return 1;
}

/* Open path as a candidate for m. A verified file is taken at once
 * (returns 1); an unsure one is kept in *fallback_fd/fallback_path when
 * there is none yet (returns 0). */
static int try_open(struct stoke_elfcache *c, const char *path, int flags,
		    const struct stoke_mmap *m, struct stoke_module *mod, int *fallback_fd,
		    char **fallback_path)
{
	/* The path comes from the target (its MMAP records): it may have put a
	 * FIFO, a device or a symlink there. Only a regular file is opened,
	 * never blocking, so a target cannot stall the caller (stoked's loop),
	 * and only with the requester's rights (see open_as). */
	int fd = open_as(&c->creds, path, flags, NULL);
	int match;

	if (fd < 0)
		return fd;
	if (fcntl(fd, F_SETFL, 0) < 0) {
		close(fd);
		return -errno;
	}
	match = file_matches(fd, m);
	if (match < 0 || (match == 0 && *fallback_fd >= 0)) {
		close(fd);
		return -ESTALE;
	}
	if (match == 0) {
		*fallback_path = strdup(path);
		if (!*fallback_path) {
			close(fd);
			return -ENOMEM;
		}
		*fallback_fd = fd;
		return 0;
	}
	mod->open_path = strdup(path);
	if (!mod->open_path) {
		close(fd);
		return -ENOMEM;
	}
	mod->fd = fd;
	return 1;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

/* /proc/PID/root first (the target may live in another mount namespace),
 * then the path as seen by us, then /proc/PID/map_files for deleted or
 * replaced files, each opened with the requester's rights: the unsure
 * fallback below can only ever be a file the requester may read. Failure
 * leaves fd at -1; the module is marked failed on first use. */
static void module_open(struct stoke_elfcache *c, struct stoke_module *mod,
			const struct stoke_mmap *m)
{
	bool has_pid = m->pid && m->pid != (uint32_t)-1;
	bool deleted = ends_with(m->filename, " (deleted)");
	char buf[4096 + 64], *fallback_path = NULL;
	int fallback_fd = -1, r = -ENOENT;

	if (has_pid && !deleted &&
	    (size_t)snprintf(buf, sizeof(buf), "/proc/%" PRIu32 "/root%s", m->pid, m->filename) <
		    sizeof(buf))
		r = try_open(c, buf, O_NOFOLLOW, m, mod, &fallback_fd, &fallback_path);
	if (r <= 0 && r != -ENOMEM && !deleted)
		r = try_open(c, m->filename, O_NOFOLLOW, m, mod, &fallback_fd, &fallback_path);
	if (r <= 0 && r != -ENOMEM && has_pid) {
		snprintf(buf, sizeof(buf), "/proc/%" PRIu32 "/map_files/%" PRIx64 "-%" PRIx64,
			 m->pid, m->addr, m->addr + m->len);
		/* map_files entries are magic links to the mapped file itself. */
		r = try_open(c, buf, 0, m, mod, &fallback_fd, &fallback_path);
	}
	if (r <= 0 && fallback_fd >= 0) {
		/* Nothing verified: the unsure candidate is better than none. */
		mod->fd = fallback_fd;
		mod->open_path = fallback_path;
		return;
	}
	if (fallback_fd >= 0)
		close(fallback_fd);
	free(fallback_path);
	if (r <= 0)
		log_debug("symbolizer: cannot open %s: %s", m->filename,
			  r < 0 ? strerror(-r) : "no candidate matches");
}

int stoke_elfcache_get(struct stoke_elfcache *c, const struct stoke_mmap *m,
		       struct stoke_module **ret)
{
	struct stoke_module key, *mod;
	struct stoke_hashmap_iter it;

	module_key(m, &key);
	for (uint32_t id = stoke_hashmap_first(&c->mod_index, key.hash, &it); id;
	     id = stoke_hashmap_next(&c->mod_index, &it)) {
		if (module_match(c->mods[id - 1], &key, m->filename)) {
			*ret = c->mods[id - 1];
			return 0;
		}
	}
	if (c->count >= UINT32_MAX || stoke_hashmap_reserve(&c->mod_index, 1) < 0 ||
	    STOKE_GROW(c->mods, c->mods_cap, c->count + 1) < 0)
		return -ENOMEM;
	mod = malloc(sizeof(*mod));
	if (!mod)
		return -ENOMEM;
	*mod = key;
	mod->fd = -1;
	mod->path = stoke_strpool_intern(c->pool, m->filename);
	if (!mod->path) {
		free(mod);
		return -ENOMEM;
	}
	/* Each module keeps its file open (so an exited target still
	 * symbolizes): bound that, or a target mapping many files could use up
	 * the fds stoked needs for everything else. Past the bound, modules
	 * keep their name and offsets but get no symbols. */
	if (c->count < STOKE_ELFCACHE_MAX_OPEN)
		module_open(c, mod, m);
	else
		log_debug("symbolizer: %s: not opened (%d modules open)", mod->path,
			  STOKE_ELFCACHE_MAX_OPEN);
	c->mods[c->count++] = mod;
	stoke_hashmap_put(&c->mod_index, mod->hash, (uint32_t)c->count);
	*ret = mod;
	return 0;
}

const char *stoke_module_path(const struct stoke_module *mod)
{
	return mod->path;
}

static int module_load_segments(struct stoke_module *mod, Elf *elf)
{
	size_t phnum;

	if (elf_getphdrnum(elf, &phnum) != 0)
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);
		size_t cap = mod->nsegs;

		if (!ph)
			return -ENOEXEC;
		if (ph->p_type != PT_LOAD || ph->p_filesz == 0)
			continue;
		if (STOKE_GROW(mod->segs, cap, mod->nsegs + 1) < 0)
			return -ENOMEM;
		mod->segs[mod->nsegs++] = (struct load_seg){
			.offset = ph->p_offset,
			.filesz = ph->p_filesz,
			.vaddr = ph->p_vaddr,
		};
	}
	return 0;
}

static int module_load(struct stoke_elfcache *c, struct stoke_module *mod)
{
	Elf *elf;
	int fd, r;

	if (mod->fd < 0)
		return -EBADF;
	mod->dwfl = dwfl_begin(&c->callbacks);
	if (!mod->dwfl)
		return -ENOMEM;
	/* dwfl owns the fd we give it once the report succeeds (and we close
	 * ours then); on failure it is still ours to close. */
	fd = fcntl(mod->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	dwfl_report_begin(mod->dwfl);
	mod->dwmod = dwfl_report_elf(mod->dwfl, mod->path, mod->open_path, fd, 0, false);
	if (!mod->dwmod) {
		close(fd);
		log_debug("symbolizer: %s: %s", mod->path, dwfl_errmsg(-1));
		return -ENOEXEC;
	}
	{
		void **userdata;

		/* For find_debuginfo_as_requester. */
		dwfl_module_info(mod->dwmod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
		*userdata = c;
	}
	if (dwfl_report_end(mod->dwfl, NULL, NULL) != 0) {
		log_debug("symbolizer: %s: %s", mod->path, dwfl_errmsg(-1));
		return -ENOEXEC;
	}
	elf = dwfl_module_getelf(mod->dwmod, &mod->bias);
	if (!elf) {
		log_debug("symbolizer: %s: %s", mod->path, dwfl_errmsg(-1));
		return -ENOEXEC;
	}
	r = module_load_segments(mod, elf);
	if (r < 0) {
		log_debug("symbolizer: %s: bad program headers: %s", mod->path, elf_errmsg(-1));
		return r;
	}
	return 0;
}

/* What parsing elf costs us, roughly, from section headers only (known
 * before anything is loaded): libdw's Dwarf and our line index grow with
 * the .debug_* sections (counted twice: the mapping plus the structures);
 * the symbol index, its demangled and interned names and the mapped pages
 * with the symbol and string tables (five times: measured, stoked's VmHWM
 * grew ~22 MiB per copy of libLLVM-14.so.1, 4.2 MiB of .dynsym+.dynstr,
 * preloaded); a compressed .gnu_debugdata unpacks to several times its
 * size and is then indexed. */
static uint64_t elf_estimate(Elf *elf)
{
	size_t shstrndx;
	uint64_t sum = 4096;
	Elf_Scn *scn = NULL;

	if (!elf || elf_getshdrstrndx(elf, &shstrndx) != 0)
		return sum;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr mem, *sh = gelf_getshdr(scn, &mem);
		const char *name = sh ? elf_strptr(elf, shstrndx, sh->sh_name) : NULL;

		if (!sh || !name || sh->sh_type == SHT_NOBITS)
			continue;
		if (sh->sh_type == SHT_SYMTAB || sh->sh_type == SHT_DYNSYM ||
		    !strcmp(name, ".strtab") || !strcmp(name, ".dynstr"))
			sum += 5 * sh->sh_size;
		else if (!strncmp(name, ".debug_", 7) || !strncmp(name, ".zdebug_", 8))
			sum += 2 * sh->sh_size;
		else if (!strcmp(name, ".gnu_debugdata"))
			sum += 20 * sh->sh_size;
	}
	return sum;
}

/* Whether adding bytes keeps the cache within max_bytes. */
static bool bytes_fit(struct stoke_elfcache *c, uint64_t bytes)
{
	uint64_t max = c->max_bytes;

	return !max || c->bytes + bytes <= max;
}

/* Before mod is parsed: whether the limits let it load, charging its
 * estimate when they do. A refused module is named module+0xoff. */
static bool module_admit(struct stoke_elfcache *c, struct stoke_module *mod)
{
	uint64_t est;
	Elf *elf;

	if (c->max_modules && c->loaded >= c->max_modules) {
		if (!c->capped++)
			log_warn("symbolizer: %s: not loaded: %u modules loaded, the session's cap",
				 mod->path, c->max_modules);
		return false;
	}
	elf = elf_begin(mod->fd, ELF_C_READ_MMAP, NULL);
	est = elf_estimate(elf);
	if (elf)
		elf_end(elf);
	if (!bytes_fit(c, est)) {
		if (!c->capped++)
			log_warn("symbolizer: %s: not loaded: its symbols would take ~%llu KiB, "
				 "over the session's symbolizer memory budget (~%llu of %llu KiB used)",
				 mod->path, (unsigned long long)(est >> 10),
				 (unsigned long long)(c->bytes >> 10),
				 (unsigned long long)(c->max_bytes >> 10));
		return false;
	}
	c->bytes += est;
	c->loaded++;
	return true;
}

/* Modules with the same build-id share one result-cache key. */
static void module_set_key(struct stoke_elfcache *c, struct stoke_module *mod)
{
	const unsigned char *id;
	GElf_Addr vaddr;
	int n = dwfl_module_build_id(mod->dwmod, &id, &vaddr);

	mod->key = mod;
	if (n <= 0 || n > (int)sizeof(mod->file_id))
		return;
	mod->file_id_size = (uint8_t)n;
	memcpy(mod->file_id, id, (size_t)n);
	for (struct stoke_module *o = c->ids; o; o = o->next_id) {
		if (o->file_id_size == n && !memcmp(o->file_id, id, (size_t)n)) {
			mod->key = o->key;
			return;
		}
	}
	mod->next_id = c->ids;
	c->ids = mod;
}

/* Parse once; a failure is sticky and counted once. The fd is closed on
 * failure: nothing will read it again. */
static int module_ready(struct stoke_elfcache *c, struct stoke_module *mod)
{
	int r;

	if (mod->state == MODULE_READY)
		return 0;
	if (mod->state == MODULE_FAILED)
		return -ENOEXEC;
	if (mod->fd >= 0 && !module_admit(c, mod)) {
		mod->state = MODULE_FAILED;
		close(mod->fd);
		mod->fd = -1;
		return -ENOEXEC;
	}
	r = module_load(c, mod);
	if (r < 0) {
		mod->state = MODULE_FAILED;
		c->failed++;
		if (mod->dwfl) {
			dwfl_end(mod->dwfl);
			mod->dwfl = NULL;
			mod->dwmod = NULL;
		}
		if (mod->fd >= 0) {
			close(mod->fd);
			mod->fd = -1;
		}
		free(mod->segs);
		mod->segs = NULL;
		mod->nsegs = 0;
		return r == -ENOMEM ? r : -ENOEXEC;
	}
	/* libdwfl holds its own descriptor now: one fd per module is enough. */
	close(mod->fd);
	mod->fd = -1;
	mod->state = MODULE_READY;
	module_set_key(c, mod);
	return 0;
}

int stoke_module_vaddr(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t file_off,
		       uint64_t *ret_vaddr)
{
	int r = module_ready(c, mod);

	if (r < 0)
		return r;
	for (size_t i = 0; i < mod->nsegs; i++) {
		const struct load_seg *s = &mod->segs[i];

		if (file_off >= s->offset && file_off - s->offset < s->filesz) {
			*ret_vaddr = file_off - s->offset + s->vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

/* Intern name[0..len), demangled as configured, with suffix appended
 * (after demangling: "_ZN1a1fEv@plt" reads "a::f@plt"). */
static const char *intern_symbol(struct stoke_elfcache *c, const char *name, size_t len,
				 const char *suffix)
{
	char *plain, *demangled, *joined = NULL;
	const char *base, *ret = NULL;

	if ((c->demangle == STOKE_DEMANGLE_NONE || name[0] != '_') && !*suffix)
		return stoke_strpool_intern_n(c->pool, name, len);
	plain = strndup(name, len);
	if (!plain)
		return NULL;
	demangled = name[0] == '_' ? stoke_demangle(plain, c->demangle) : NULL;
	base = demangled ? demangled : plain;
	if (!*suffix)
		ret = stoke_strpool_intern(c->pool, base);
	else if (asprintf(&joined, "%s%s", base, suffix) >= 0)
		ret = stoke_strpool_intern(c->pool, joined);
	else
		joined = NULL; /* asprintf leaves it undefined */
	free(joined);
	free(demangled);
	free(plain);
	return ret;
}

/* Intern a DWARF function name, demangled as configured. A versioned
 * name ("dlsym@@GLIBC_2.34") loses its version. */
static const char *intern_function(struct stoke_elfcache *c, const char *name)
{
	return intern_symbol(c, name, (size_t)(strchrnul(name + 1, '@') - name), "");
}

/* The symbol index, built on first use; NULL when memory ran out (then
 * the next lookup tries again). */
static struct stoke_symtab *module_symtab(struct stoke_module *mod)
{
	if (mod->symtab)
		return mod->symtab;
	if (stoke_symtab_new(mod->dwmod, &mod->symtab) < 0)
		return NULL;
	/* Interned names per entry: many addresses share a symbol, and
	 * demangling is the costly part of naming. Optional. */
	mod->sym_names = calloc(STOKE_MAX(stoke_symtab_count(mod->symtab), (size_t)1),
				sizeof(*mod->sym_names));
	return mod->symtab;
}

/* Entry idx's name, interned and demangled once. */
static const char *symtab_entry_name(struct stoke_elfcache *c, struct stoke_module *mod,
				     size_t idx)
{
	const char *raw = stoke_symtab_name(mod->symtab, idx), *name;
	size_t len = strlen(raw);

	if (mod->sym_names && mod->sym_names[idx])
		return mod->sym_names[idx];
	if (stoke_symtab_is_plt(mod->symtab, idx))
		name = intern_symbol(c, raw, len - strlen("@plt"), "@plt");
	else
		name = intern_symbol(c, raw, len, "");
	if (name && mod->sym_names)
		mod->sym_names[idx] = name;
	return name;
}

static int symtab_name(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t vaddr,
		       const char **ret_name)
{
	struct stoke_symtab *st = module_symtab(mod);
	long idx;

	if (!st)
		return -ENOMEM;
	idx = stoke_symtab_find(st, vaddr + mod->bias);
	if (idx < 0) {
		*ret_name = NULL;
		return 0;
	}
	*ret_name = symtab_entry_name(c, mod, (size_t)idx);
	return *ret_name ? 0 : -ENOMEM;
}

/* The preferred alias when dwarf_name (the physical function DWARF names
 * at vaddr) is another name of the symbol there; else NULL. */
static const char *preferred_alias(struct stoke_elfcache *c, struct stoke_module *mod,
				   uint64_t vaddr, const char *dwarf_name)
{
	struct stoke_symtab *st = module_symtab(mod);
	long idx = st ? stoke_symtab_find(st, vaddr + mod->bias) : -ENOENT;

	if (idx < 0 || !strcmp(stoke_symtab_name(st, (size_t)idx), dwarf_name) ||
	    !stoke_symtab_has_name(st, (size_t)idx, dwarf_name))
		return NULL;
	return symtab_entry_name(c, mod, (size_t)idx);
}

int stoke_module_symbol(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t vaddr,
			const char **ret_name)
{
	int r = module_ready(c, mod);

	if (r < 0)
		return r;
	return symtab_name(c, mod, vaddr, ret_name);
}

/* The line index, created on first use; NULL when the module has no
 * DWARF (then it is not asked again). */
static struct stoke_srcline *module_srcline(struct stoke_elfcache *c, struct stoke_module *mod)
{
	Dwarf_Addr bias, mbias;
	Dwarf *dw;
	Elf *delf;

	if (mod->srcline || mod->no_dwarf)
		return mod->srcline;
	/* This is where separate debuginfo is searched for. */
	if (c->load_delay_us)
		usleep(c->load_delay_us);
	dw = dwfl_module_getdwarf(mod->dwmod, &bias);
	if (!dw) {
		log_debug("symbolizer: %s: no DWARF: %s", mod->path, dwfl_errmsg(-1));
		mod->no_dwarf = true;
		return NULL;
	}
	/* Separate debuginfo was not in the module's estimate: charge it now,
	 * and past the budget name the module from its symbols only. */
	delf = dwarf_getelf(dw);
	if (delf && delf != dwfl_module_getelf(mod->dwmod, &mbias)) {
		uint64_t est = elf_estimate(delf);

		if (!bytes_fit(c, est)) {
			if (!c->dwarf_capped++)
				log_warn("symbolizer: %s: debug info not used: over the session's "
					 "symbolizer memory budget",
					 mod->path);
			mod->no_dwarf = true;
			return NULL;
		}
		c->bytes += est;
	}
	if (stoke_srcline_new(mod->dwmod, &mod->srcline) < 0)
		return NULL; /* ENOMEM: try again next time */
	return mod->srcline;
}

/* dir/file, as addr2line prints it (not normalized), interned. */
static const char *intern_path(struct stoke_elfcache *c, const char *dir, const char *file)
{
	char buf[4096];
	int len;

	if (!dir)
		return stoke_strpool_intern(c->pool, file);
	len = snprintf(buf, sizeof(buf), "%s/%s", dir, file);
	if (len < 0 || (size_t)len >= sizeof(buf))
		return stoke_strpool_intern(c->pool, file);
	return stoke_strpool_intern_n(c->pool, buf, (size_t)len);
}

static uint64_t memo_hash(const void *key, const void *key2)
{
	return stoke_hash_u64((uintptr_t)key ^ stoke_hash_u64((uintptr_t)key2));
}

/* A libdw function name (key2 NULL) or file (key2 its directory, or a
 * marker for none), interned, memoized. */
static const char *memo_intern(struct stoke_elfcache *c, const char *s, const char *dir,
			       bool is_path)
{
	static const char no_dir;
	const void *key2 = is_path ? (dir ? (const void *)dir : &no_dir) : NULL;
	uint64_t h = memo_hash(s, key2);
	struct stoke_hashmap_iter it;
	const char *v;

	for (uint32_t id = stoke_hashmap_first(&c->memo_index, h, &it); id;
	     id = stoke_hashmap_next(&c->memo_index, &it))
		if (c->memo[id - 1].key == s && c->memo[id - 1].key2 == key2)
			return c->memo[id - 1].interned;
	v = is_path ? intern_path(c, dir, s) : intern_function(c, s);
	/* Memoizing is an optimization: without memory, v is just not kept. */
	if (v && c->memo_count < UINT32_MAX && stoke_hashmap_reserve(&c->memo_index, 1) >= 0 &&
	    STOKE_GROW(c->memo, c->memo_cap, c->memo_count + 1) >= 0) {
		c->memo[c->memo_count++] = (struct name_memo){ .key = s, .key2 = key2, .interned = v };
		stoke_hashmap_put(&c->memo_index, h, (uint32_t)c->memo_count);
	}
	return v;
}

int stoke_module_frames(struct stoke_elfcache *c, struct stoke_module *mod, uint64_t vaddr,
			struct stoke_module_frame *frames, size_t max)
{
	struct stoke_srcframe src[STOKE_MODULE_MAX_FRAMES];
	struct stoke_srcline *sl;
	int r = module_ready(c, mod), n = 0;

	if (r < 0)
		return r;
	if (max == 0)
		return 0;
	sl = module_srcline(c, mod);
	if (sl) {
		n = stoke_srcline_lookup(sl, vaddr + mod->bias, src,
					 STOKE_MIN(max, (size_t)STOKE_MODULE_MAX_FRAMES));
		if (n < 0)
			return n;
	}
	for (int i = 0; i < n; i++) {
		frames[i] = (struct stoke_module_frame){ .line = src[i].line,
							 .decl_line = src[i].decl_line };
		if (i == n - 1 && src[i].function)
			frames[i].function = preferred_alias(c, mod, vaddr, src[i].function);
		if (src[i].function && !frames[i].function) {
			frames[i].function = memo_intern(c, src[i].function, NULL, false);
			if (!frames[i].function)
				return -ENOMEM;
		}
		if (src[i].file) {
			frames[i].file = memo_intern(c, src[i].file, src[i].dir, true);
			if (!frames[i].file)
				return -ENOMEM;
		}
		if (src[i].decl_file) {
			frames[i].decl_file =
				memo_intern(c, src[i].decl_file, src[i].decl_dir, true);
			if (!frames[i].decl_file)
				return -ENOMEM;
		}
	}
	if (n == 0)
		frames[n++] = (struct stoke_module_frame){ 0 };
	/* No DWARF function (no debug info, assembly): the symbol table
	 * names the physical frame. */
	if (!frames[n - 1].function) {
		r = symtab_name(c, mod, vaddr, &frames[n - 1].function);
		if (r < 0)
			return r;
	}
	return n;
}

int stoke_module_parse(struct stoke_elfcache *c, struct stoke_module *mod)
{
	return module_ready(c, mod);
}

int stoke_module_preload(struct stoke_elfcache *c, struct stoke_module *mod)
{
	int r = module_ready(c, mod);

	if (r < 0)
		return r;
	/* Each part is optional for naming (a module without DWARF is named
	 * from its symbol table): what failed here is tried again on use. */
	(void)module_srcline(c, mod);
	(void)module_symtab(mod);
	return 0;
}

void stoke_elfcache_set_load_delay(struct stoke_elfcache *c, unsigned us)
{
	c->load_delay_us = us;
}

const void *stoke_module_key(const struct stoke_module *mod)
{
	return mod->key ? mod->key : mod;
}

uint32_t stoke_elfcache_modules(const struct stoke_elfcache *c)
{
	return c->count;
}

uint32_t stoke_elfcache_failed(const struct stoke_elfcache *c)
{
	return c->failed;
}

void stoke_elfcache_set_limits(struct stoke_elfcache *c, uint32_t max_modules,
			       uint64_t max_bytes)
{
	c->max_modules = max_modules;
	c->max_bytes = max_bytes;
}

void stoke_elfcache_set_max_bytes(struct stoke_elfcache *c, uint64_t max_bytes)
{
	c->max_bytes = max_bytes;
}

uint64_t stoke_elfcache_bytes(const struct stoke_elfcache *c)
{
	return c->bytes;
}

uint32_t stoke_elfcache_capped(const struct stoke_elfcache *c)
{
	return c->capped + c->dwarf_capped;
}

/* ---- accessors for the unwinder (unwind.c) ---- */

int stoke_module_elf(struct stoke_elfcache *c, struct stoke_module *mod, struct Elf **ret_elf)
{
	Dwarf_Addr bias;
	Elf *elf;
	int r = module_ready(c, mod);

	if (r < 0)
		return r;
	/* The main file as reported, not separate debuginfo: its bytes are
	 * the ones mapped into the process. */
	elf = dwfl_module_getelf(mod->dwmod, &bias);
	if (!elf)
		return -ENOEXEC;
	*ret_elf = elf;
	return 0;
}
