/*
 * DWARF unwinding of sampled user stacks with libunwind's remote API (see
 * unwind.h).
 *
 * Accessors. libunwind asks for registers, memory words and unwind info;
 * the argument threaded through every call is a struct walk describing the
 * one sample being unwound:
 *   - registers come from the sample (perf's x86-64 register order, one
 *     value per bit of the mask, mapped to libunwind's numbering);
 *   - memory comes from the stack copy when the address lies in it; a read
 *     above the copy (the stack goes on but the copy ended) is refused and
 *     remembered, so the walk is reported as truncated rather than failed;
 *     anything else is read from the bytes of the mapped file, and only
 *     from segments that are not writable: data the program may have
 *     changed is not in the file (one exception while an FDE is parsed:
 *     the indirect personality pointer, see image_read);
 *   - find_proc_info hands libunwind the module's .eh_frame_hdr search table
 *     as a "remote table" and lets dwarf_search_unwind_table search it and
 *     parse the FDE through access_mem.
 *   - before each step the walk notes the image of the frame's code, so
 *     .eh_frame stays readable when libunwind's per-IP cache skips
 *     find_proc_info (see walk_meet).
 *
 * Caching. libunwind keeps a register-state cache per address space keyed
 * by IP, so the CFI of an IP is parsed once. IPs only mean something within
 * one process, so each process gets its own address space (a bounded table,
 * recycled oldest first). Module tables are parsed once per module (the
 * elfcache shares modules between processes).
 *
 * No CFI. When a frame has no CFI, libunwind itself falls back to the
 * frame-pointer link ([rbp], [rbp+8]). That is only right when the code
 * kept frame pointers, so such a frame is accepted only when it looks
 * real: its return address lies in mapped code right after a call
 * instruction and the stack pointer moved up. Otherwise the walk ends and
 * the caller marks the stack [unwind-failed]: a garbage frame is worse than
 * a short stack.
 *
 * JIT code (V8 and the like) has no CFI and no file, but keeps frame
 * pointers: a frame-pointer link that returns into memory no file maps is
 * followed, and the frames it gives stay on probation until the chain
 * comes back into a module through a checked call site (see jit_code).
 *
 * .debug_frame. Debian's libunwind does not export dwarf_find_debug_frame,
 * so modules with only .debug_frame (rare: every Debian binary has
 * .eh_frame) get no CFI and go through the plausible-FP rule above.
 *
 * vDSO. It has no file, but it is the kernel's image, the same in every
 * 64-bit process: our own (getauxval(AT_SYSINFO_EHDR)) provides its bytes,
 * CFI and symbols, when the target's [vdso] mapping has the same size.
 */
#include "stack/unwind.h"

#include <errno.h>
#include <gelf.h>
#include <libunwind.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "common/hashmap.h"
#include "common/log.h"
#include "common/util.h"
#include "symbolizer/addrspace.h"
#include "symbolizer/elfcache.h"

/* Not declared by libunwind's public headers, but exported (perf uses it
 * the same way): searches a binary-search table and parses the FDE. */
#define dwarf_search_unwind_table UNW_OBJ(dwarf_search_unwind_table)
extern int dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t *di,
				     unw_proc_info_t *pi, int need_unwind_info, void *arg);

/* Processes with a live libunwind address space; beyond this the oldest
 * is dropped (its per-IP cache is rebuilt if it samples again). */
#define UNWIND_MAX_PROCS 64
/* libunwind's per-address-space register-state cache, in entries. */
#define UNWIND_RS_CACHE_SIZE 4096
/* Threads whose recent complete stacks are kept for stitching (direct-
 * mapped by thread id: a collision replaces the older thread's stacks). */
#define UNWIND_STITCH_SLOTS 256
/* Distinct complete stacks kept per thread, most recent first. One is not
 * enough: a thread deep in one subtree (its samples cut) that also returns
 * now and then to a shallow branch elsewhere (complete samples without the
 * frame at the cut) would lose the only stack it can be stitched onto. */
#define UNWIND_STITCH_HISTORY 8

/* DWARF pointer encodings used by .eh_frame_hdr. */
#define DW_EH_PE_omit 0xff
#define DW_EH_PE_FORMAT_MASK 0x0f
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_udata8 0x04
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_sdata8 0x0c
#define DW_EH_PE_datarel 0x30

struct seg {
	uint64_t offset, filesz, vaddr;
	bool writable;
};

/* The unwinding view of one ELF image (a module's file, or the vDSO). */
struct image {
	const void *key;     /* struct stoke_module *, or NULL for the vDSO */
	bool ok;             /* bytes and segments available */
	const uint8_t *raw;  /* the file's bytes */
	size_t size;
	struct seg *segs;
	size_t nsegs;
	bool has_table;      /* a usable .eh_frame_hdr search table */
	uint64_t hdr_vaddr, table_vaddr, fde_count;
};

struct vdso_sym {
	uint64_t start, size;
	const char *name; /* interned */
};

/* One frame of a thread's kept complete stack: the return address and the
 * stack pointer in that frame (the CFA of its callee). */
struct kept_frame {
	uint64_t ip, sp;
	bool exact, fp_link;
};

struct kept_stack {
	struct kept_frame *f;
	size_t n, cap;
};

struct kept_thread {
	uint32_t pid, tid; /* pid 0: empty */
	struct kept_stack s[UNWIND_STITCH_HISTORY]; /* most recent first */
};

struct proc {
	uint32_t pid;
	unw_addr_space_t as; /* NULL: free slot */
	uint64_t born;       /* creation order, for recycling */
};

struct stoke_unwinder {
	struct stoke_elfcache *elfs;
	struct stoke_strpool *pool;
	struct stoke_u64map images; /* module pointer -> struct image * */
	struct proc procs[UNWIND_MAX_PROCS];
	uint64_t procs_born;
	/* vDSO */
	bool vdso_tried;
	struct image vdso;
	uint8_t *vdso_copy;
	size_t vdso_map_size; /* page-rounded: compared with the target's */
	struct vdso_sym *vsyms;
	size_t nvsyms;
	/* the stack pointer of each frame of the walk in progress */
	uint64_t *sps;
	size_t sps_cap;
	struct kept_thread kept[UNWIND_STITCH_SLOTS];
	struct stoke_unwind_stats stats;
};

/* Images met in this walk, with their load bias in this process. */
#define WALK_NEAR 8

/* One sample being unwound: the arg of every accessor. */
struct walk {
	struct stoke_unwinder *u;
	const struct stoke_addrspace *as;
	const uint64_t *regs;
	const uint8_t *stack;
	uint64_t stack_lo, stack_len; /* the copy covers [stack_lo, +stack_len) */
	bool beyond_copy; /* a read above the copy was refused */
	bool no_info;     /* find_proc_info found no CFI */
	/* Inside dwarf_search_unwind_table: the reads are of the search table,
	 * the FDE and its CIE, plus one of writable data (see image_read). */
	bool in_proc_info;
	/* Only executable mappings are known (perf sends MMAP records for those
	 * alone), but .eh_frame_hdr and .eh_frame usually sit in a read-only
	 * segment next to them: addresses outside every known mapping are
	 * looked up in the segments of the images this walk has met. */
	struct {
		const struct image *img;
		uint64_t bias;
	} near[WALK_NEAR];
	size_t nnear;
};

/* ---- images ---- */

static void image_clear(struct image *img)
{
	free(img->segs);
	img->segs = NULL;
	img->nsegs = 0;
}

static int image_segments(struct image *img, Elf *elf)
{
	size_t phnum, cap = 0;

	if (elf_getphdrnum(elf, &phnum) != 0)
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);

		if (!ph)
			return -ENOEXEC;
		if (ph->p_type == PT_GNU_EH_FRAME) {
			img->hdr_vaddr = ph->p_vaddr;
			img->has_table = true; /* checked in image_table */
		}
		/* A segment whose file range wraps is nonsense (a crafted file):
		 * leave it out rather than compute offsets from it. */
		if (ph->p_type != PT_LOAD || ph->p_filesz == 0 ||
		    ph->p_offset > UINT64_MAX - ph->p_filesz)
			continue;
		if (STOKE_GROW(img->segs, cap, img->nsegs + 1) < 0)
			return -ENOMEM;
		img->segs[img->nsegs++] = (struct seg){
			.offset = ph->p_offset,
			.filesz = ph->p_filesz,
			.vaddr = ph->p_vaddr,
			.writable = ph->p_flags & PF_W,
		};
	}
	return 0;
}

/* The file offset of an ELF virtual address, through its segment. */
static bool image_vaddr_to_off(const struct image *img, uint64_t vaddr, uint64_t *ret_off)
{
	for (size_t i = 0; i < img->nsegs; i++) {
		const struct seg *s = &img->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz) {
			*ret_off = vaddr - s->vaddr + s->offset;
			return true;
		}
	}
	return false;
}

static bool image_off_to_vaddr(const struct image *img, uint64_t off, uint64_t *ret_vaddr)
{
	for (size_t i = 0; i < img->nsegs; i++) {
		const struct seg *s = &img->segs[i];

		if (off >= s->offset && off - s->offset < s->filesz) {
			*ret_vaddr = off - s->offset + s->vaddr;
			return true;
		}
	}
	return false;
}

static bool read_encoded(const uint8_t *p, const uint8_t *end, uint8_t enc, size_t *ret_len,
			 uint64_t *ret_val)
{
	switch (enc & DW_EH_PE_FORMAT_MASK) {
	case DW_EH_PE_udata4:
	case DW_EH_PE_sdata4: {
		int32_t v;

		if (end - p < 4)
			return false;
		memcpy(&v, p, 4);
		*ret_val = (enc & DW_EH_PE_FORMAT_MASK) == DW_EH_PE_sdata4 ? (uint64_t)(int64_t)v
									  : (uint32_t)v;
		*ret_len = 4;
		return true;
	}
	case DW_EH_PE_udata8:
	case DW_EH_PE_sdata8:
		if (end - p < 8)
			return false;
		memcpy(ret_val, p, 8);
		*ret_len = 8;
		return true;
	default:
		return false;
	}
}

/*
 * Validate the .eh_frame_hdr: version 1 with a binary-search table of
 * (datarel sdata4 start, datarel sdata4 FDE) pairs, which is what
 * dwarf_search_unwind_table reads as UNW_INFO_FORMAT_REMOTE_TABLE.
 */
static void image_table(struct image *img)
{
	uint64_t off, eh_frame, count;
	const uint8_t *p, *end = img->raw + img->size;
	size_t len;

	img->has_table = false;
	/* off comes from the file's own (unvalidated) program headers: compare
	 * without an addition that could wrap. */
	if (!image_vaddr_to_off(img, img->hdr_vaddr, &off) || off > img->size ||
	    img->size - off < 4)
		return;
	p = img->raw + off;
	if (p[0] != 1 || p[1] == DW_EH_PE_omit || p[2] == DW_EH_PE_omit ||
	    p[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
		return;
	if (!read_encoded(p + 4, end, p[1], &len, &eh_frame))
		return;
	off = 4 + len;
	if (!read_encoded(p + off, end, p[2], &len, &count))
		return;
	off += len;
	if (count == 0 || count > (uint64_t)(end - p - off) / 8)
		return;
	img->table_vaddr = img->hdr_vaddr + off;
	img->fde_count = count;
	img->has_table = true;
}

static void image_load_module(struct stoke_unwinder *u, struct image *img,
			      struct stoke_module *mod)
{
	struct Elf *elf;
	size_t size;
	const char *raw;

	if (stoke_module_elf(u->elfs, mod, &elf) < 0)
		return;
	raw = elf_rawfile(elf, &size);
	if (!raw || image_segments(img, elf) < 0) {
		image_clear(img);
		return;
	}
	img->raw = (const uint8_t *)raw;
	img->size = size;
	img->ok = true;
	if (img->has_table)
		image_table(img);
	u->stats.tables += img->has_table;
	u->stats.tables_missing += !img->has_table;
	if (!img->has_table)
		log_debug("unwind: %s: no usable .eh_frame_hdr", stoke_module_path(mod));
}

/* The image of mod, parsed on first use; NULL only on ENOMEM. A module
 * that cannot be read gets an image with ok == false. */
static struct image *image_get(struct stoke_unwinder *u, struct stoke_module *mod)
{
	struct image *img = (struct image *)(uintptr_t)stoke_u64map_get(&u->images,
									 (uintptr_t)mod);

	if (img)
		return img;
	if (stoke_u64map_reserve(&u->images, 1) < 0)
		return NULL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return NULL;
	img->key = mod;
	image_load_module(u, img, mod);
	/* Cannot fail: the key is new and room was reserved. */
	stoke_u64map_add(&u->images, (uintptr_t)mod, (uintptr_t)img);
	return img;
}

/* ---- the vDSO ---- */

static int vsym_cmp(const void *a, const void *b)
{
	const struct vdso_sym *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static void vdso_symbols(struct stoke_unwinder *u, Elf *elf)
{
	Elf_Scn *scn = NULL;
	size_t cap = 0;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr shmem, *sh = gelf_getshdr(scn, &shmem);
		Elf_Data *data;

		if (!sh || sh->sh_type != SHT_DYNSYM || !sh->sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		for (size_t i = 0; data && i < sh->sh_size / sh->sh_entsize; i++) {
			GElf_Sym sym;
			const char *name;

			if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
			    sym.st_shndx == SHN_UNDEF)
				continue;
			name = elf_strptr(elf, sh->sh_link, sym.st_name);
			if (!name || !*name || STOKE_GROW(u->vsyms, cap, u->nvsyms + 1) < 0)
				continue;
			name = stoke_strpool_intern(u->pool, name);
			if (!name)
				continue;
			u->vsyms[u->nvsyms++] = (struct vdso_sym){ sym.st_value, sym.st_size, name };
		}
	}
	if (u->nvsyms)
		qsort(u->vsyms, u->nvsyms, sizeof(*u->vsyms), vsym_cmp);
}

/* Copy our own vDSO (the kernel maps the same image into every 64-bit
 * process) and parse it like a file. */
static void vdso_load(struct stoke_unwinder *u)
{
	const uint8_t *base = (const uint8_t *)getauxval(AT_SYSINFO_EHDR);
	const GElf_Ehdr *eh = (const GElf_Ehdr *)base;
	long page = sysconf(_SC_PAGESIZE);
	size_t size = 0;
	Elf *elf;

	u->vdso_tried = true;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return;
	if (!base || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
		return;
	/* The image's extent: its section headers come last. */
	size = eh->e_shoff + (size_t)eh->e_shnum * eh->e_shentsize;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD)
			size = STOKE_MAX(size, (size_t)(ph->p_offset + ph->p_filesz));
	}
	if (size == 0 || size > (1u << 20))
		return;
	u->vdso_copy = malloc(size);
	if (!u->vdso_copy)
		return;
	memcpy(u->vdso_copy, base, size);
	u->vdso_map_size = (size + (size_t)page - 1) & ~((size_t)page - 1);
	elf = elf_memory((char *)u->vdso_copy, size);
	if (!elf)
		return;
	if (image_segments(&u->vdso, elf) == 0) {
		u->vdso.raw = u->vdso_copy;
		u->vdso.size = size;
		u->vdso.ok = true;
		if (u->vdso.has_table)
			image_table(&u->vdso);
		vdso_symbols(u, elf);
	}
	elf_end(elf);
}

/* Our vDSO image if a target mapping of map_size bytes can be it. */
static const struct image *vdso_image(struct stoke_unwinder *u, uint64_t map_size)
{
	if (!u->vdso_tried)
		vdso_load(u);
	if (!u->vdso.ok || map_size != u->vdso_map_size)
		return NULL;
	return &u->vdso;
}

const char *stoke_unwind_vdso_symbol(struct stoke_unwinder *u, uint64_t vdso_start,
				     uint64_t addr)
{
	const struct image *img;
	uint64_t vaddr;
	size_t lo = 0, hi;

	if (!u->vdso_tried)
		vdso_load(u);
	img = vdso_image(u, u->vdso_map_size);
	if (!img || addr < vdso_start || !image_off_to_vaddr(img, addr - vdso_start, &vaddr))
		return NULL;
	/* The greatest start <= vaddr, if vaddr lies inside it. */
	hi = u->nvsyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u->vsyms[mid].start <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	if (vaddr - u->vsyms[lo - 1].start >= STOKE_MAX(u->vsyms[lo - 1].size, (uint64_t)1))
		return NULL;
	return u->vsyms[lo - 1].name;
}

/* ---- address → image ---- */

struct located {
	const struct stoke_mapping *map;
	const struct image *img;
	uint64_t off; /* file offset of the address */
};

static bool is_vdso(const struct stoke_mapping *m)
{
	return !m->mod && m->name && strcmp(m->name, "[vdso]") == 0;
}

static bool locate(struct walk *w, uint64_t addr, struct located *ret)
{
	const struct stoke_mapping *m = w->as ? stoke_addrspace_find(w->as, addr) : NULL;

	if (!m)
		return false;
	if (m->mod)
		ret->img = image_get(w->u, m->mod);
	else if (is_vdso(m))
		ret->img = vdso_image(w->u, m->end - m->start);
	else
		ret->img = NULL;
	if (!ret->img || !ret->img->ok)
		return false;
	ret->map = m;
	ret->off = addr - m->start + m->pgoff;
	return true;
}

/* Runtime address = ELF vaddr + bias, from the mapping found. */
static bool located_bias(const struct located *l, uint64_t *ret_bias)
{
	uint64_t vaddr;

	if (!image_off_to_vaddr(l->img, l->map->pgoff, &vaddr))
		return false;
	*ret_bias = l->map->start - vaddr;
	return true;
}

static void walk_remember(struct walk *w, const struct image *img, uint64_t bias)
{
	for (size_t i = 0; i < w->nnear; i++)
		if (w->near[i].img == img && w->near[i].bias == bias)
			return;
	/* the oldest goes when full: a walk rarely meets more than a few */
	if (w->nnear == WALK_NEAR)
		memmove(&w->near[0], &w->near[1], sizeof(w->near[0]) * --w->nnear);
	w->near[w->nnear].img = img;
	w->near[w->nnear++].bias = bias;
}

/*
 * Copy n bytes at file offset off of img, if a read-only segment has them,
 * or a writable one and writable is set.
 *
 * Writable data may differ from the file (relocations, stores), so it is
 * refused while stepping. The one read of it libunwind makes while parsing
 * an FDE is the personality routine of a CIE with a "P" augmentation
 * ("zPLR": glibc's stdio, any -fexceptions code with a cleanup, C++): GCC
 * encodes it indirect, through DW.ref.__gcc_personality_v0 or a GOT slot
 * in .data/.got, and libunwind reads that word or fails the whole FDE.
 * The routine is only called by an exception unwinder; stepping a frame
 * never uses it, so the file's (unrelocated) word is as good as any.
 */
static bool image_read(const struct image *img, uint64_t off, void *buf, size_t n,
		       bool writable)
{
	if (off > img->size || img->size - off < n)
		return false;
	for (size_t i = 0; i < img->nsegs; i++) {
		const struct seg *s = &img->segs[i];

		if (off >= s->offset && off - s->offset < s->filesz) {
			if (s->writable && !writable)
				return false;
			memcpy(buf, img->raw + off, n);
			return true;
		}
	}
	return false;
}

/* Read n bytes of file-backed, read-only memory at addr. */
static bool read_file_bytes(struct walk *w, uint64_t addr, void *buf, size_t n)
{
	struct located l;
	uint64_t bias, off;

	if (locate(w, addr, &l)) {
		if (located_bias(&l, &bias))
			walk_remember(w, l.img, bias);
		return image_read(l.img, l.off, buf, n, w->in_proc_info);
	}
	for (size_t i = w->nnear; i-- > 0;) {
		if (image_vaddr_to_off(w->near[i].img, addr - w->near[i].bias, &off))
			return image_read(w->near[i].img, off, buf, n, w->in_proc_info);
	}
	return false;
}

/*
 * Make the image holding the code at ip one this walk has met. libunwind's
 * per-IP cache saves find_proc_info on the second visit of an IP, but a
 * CFA or register rule that is a DWARF expression (DW_CFA_def_cfa_expression
 * in every .plt, DW_CFA_expression in signal trampolines) is kept as the
 * address of its bytes in .eh_frame and read again at each step: without
 * this, .eh_frame (in a segment with no MMAP record of its own) is out of
 * reach exactly when the cache hits.
 */
static void walk_meet(struct walk *w, uint64_t ip)
{
	struct located l;
	uint64_t bias;

	if (locate(w, ip, &l) && located_bias(&l, &bias))
		walk_remember(w, l.img, bias);
}

/* ---- accessors ---- */

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			      int need_unwind_info, void *arg)
{
	struct walk *w = arg;
	unw_dyn_info_t di;
	struct located l;
	uint64_t bias;
	int r;

	if (!locate(w, ip, &l) || !l.img->has_table || !located_bias(&l, &bias)) {
		w->no_info = true;
		return -UNW_ENOINFO;
	}
	/* the table and the FDEs are read through access_mem next */
	walk_remember(w, l.img, bias);
	memset(&di, 0, sizeof(di));
	di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	di.start_ip = l.map->start;
	di.end_ip = l.map->end;
	di.u.rti.segbase = l.img->hdr_vaddr + bias;
	di.u.rti.table_data = l.img->table_vaddr + bias;
	/* in words; one entry is two int32 */
	di.u.rti.table_len = l.img->fde_count * 8 / sizeof(unw_word_t);
	w->in_proc_info = true;
	r = dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
	w->in_proc_info = false;
	if (r == -UNW_ENOINFO)
		w->no_info = true;
	return r;
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	/* dwarf_search_unwind_table's info is freed by libunwind itself. */
}

static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	return -UNW_ENOINFO; /* no dynamically registered unwind info */
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write,
			  void *arg)
{
	struct walk *w = arg;

	if (write)
		return -UNW_EINVAL;
	if (addr >= w->stack_lo && addr - w->stack_lo < w->stack_len) {
		if (w->stack_len - (addr - w->stack_lo) < sizeof(*valp))
			goto beyond;
		memcpy(valp, w->stack + (addr - w->stack_lo), sizeof(*valp));
		return 0;
	}
	if (read_file_bytes(w, addr, valp, sizeof(*valp)))
		return 0;
	/* Not file-backed: above the stack pointer it is stack the copy did not
	 * reach (the copy starts at SP; callers' frames lie above it). */
	if (addr >= w->stack_lo)
		goto beyond;
	return -UNW_EINVAL;
beyond:
	w->beyond_copy = true;
	return -UNW_EINVAL;
}

/* libunwind numbers x86-64 registers as DWARF does, as the sample holds them. */
_Static_assert((int)UNW_X86_64_RAX == (int)STOKE_DWARF_RAX &&
		       (int)UNW_X86_64_RSP == (int)STOKE_DWARF_RSP &&
		       (int)UNW_X86_64_R8 == (int)STOKE_DWARF_R8 &&
		       (int)UNW_X86_64_RIP == (int)STOKE_DWARF_RIP,
	       "libunwind's register numbers are DWARF's");

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write,
			  void *arg)
{
	struct walk *w = arg;

	if (write || reg < 0 || reg >= STOKE_DWARF_NREGS)
		return -UNW_EBADREG;
	*valp = w->regs[reg];
	return 0;
}

static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			    void *arg)
{
	return -UNW_EBADREG; /* not sampled; DWARF CFI on x86-64 never needs them */
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	return -UNW_EINVAL;
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
			     unw_word_t *offp, void *arg)
{
	return -UNW_ENOINFO; /* the symbolizer names frames */
}

static unw_accessors_t accessors = {
	.find_proc_info = acc_find_proc_info,
	.put_unwind_info = acc_put_unwind_info,
	.get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
	.access_mem = acc_access_mem,
	.access_reg = acc_access_reg,
	.access_fpreg = acc_access_fpreg,
	.resume = acc_resume,
	.get_proc_name = acc_get_proc_name,
};

/* ---- unwinder ---- */

/* libunwind initializes its globals lazily, on the first cursor
 * (unw_init_remote; creating an address space does not), behind a flag it
 * reads without a lock: two stoked sessions unwinding at once on their own
 * threads race on it (TSan saw it), and the pipe it keeps for validating
 * addresses opened at whichever session first unwound. One cursor over a
 * dummy address space, once, before any unwinder exists, does that work
 * while a single thread runs it. */
static pthread_once_t libunwind_once = PTHREAD_ONCE_INIT;

static int init_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			       int need_unwind_info, void *arg)
{
	return -UNW_ENOINFO;
}

static void init_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
}

static int init_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	return -UNW_ENOINFO;
}

static int init_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write,
			   void *arg)
{
	return -UNW_EINVAL;
}

static int init_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write,
			   void *arg)
{
	if (write)
		return -UNW_EBADREG;
	*valp = 0;
	return 0;
}

static void libunwind_init(void)
{
	static unw_accessors_t init_accessors = {
		.find_proc_info = init_find_proc_info,
		.put_unwind_info = init_put_unwind_info,
		.get_dyn_info_list_addr = init_get_dyn_info_list_addr,
		.access_mem = init_access_mem,
		.access_reg = init_access_reg,
		.access_fpreg = acc_access_fpreg,
		.resume = acc_resume,
		.get_proc_name = acc_get_proc_name,
	};
	unw_addr_space_t as = unw_create_addr_space(&init_accessors, 0);
	unw_cursor_t cur;

	if (!as)
		return;
	(void)unw_init_remote(&cur, as, NULL);
	unw_destroy_addr_space(as);
}

void stoke_unwind_init_once(void)
{
	pthread_once(&libunwind_once, libunwind_init);
}

int stoke_unwinder_new(struct stoke_elfcache *elfs, struct stoke_strpool *pool,
		       struct stoke_unwinder **ret)
{
	struct stoke_unwinder *u;

	stoke_unwind_init_once();
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->elfs = elfs;
	u->pool = pool;
	*ret = u;
	return 0;
}

void stoke_unwinder_free(struct stoke_unwinder *u)
{
	uint64_t v;

	if (!u)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(u->procs); i++)
		if (u->procs[i].as)
			unw_destroy_addr_space(u->procs[i].as);
	for (size_t pos = 0; stoke_u64map_next(&u->images, &pos, NULL, &v);) {
		image_clear((struct image *)(uintptr_t)v);
		free((struct image *)(uintptr_t)v);
	}
	stoke_u64map_free(&u->images);
	image_clear(&u->vdso);
	free(u->vdso_copy);
	free(u->vsyms);
	free(u->sps);
	for (size_t i = 0; i < ARRAY_SIZE(u->kept); i++)
		for (size_t h = 0; h < UNWIND_STITCH_HISTORY; h++)
			free(u->kept[i].s[h].f);
	free(u);
}

/* The address space of pid, created (or recycled from the oldest process)
 * on first use; NULL when libunwind cannot allocate one. */
static unw_addr_space_t proc_as(struct stoke_unwinder *u, uint32_t pid)
{
	struct proc *p = NULL, *oldest = &u->procs[0];

	for (size_t i = 0; i < ARRAY_SIZE(u->procs); i++) {
		struct proc *q = &u->procs[i];

		if (q->as && q->pid == pid)
			return q->as;
		if (!q->as && !p)
			p = q;
		if (q->born < oldest->born)
			oldest = q;
	}
	if (!p) {
		p = oldest;
		unw_destroy_addr_space(p->as);
		p->as = NULL;
	}
	p->as = unw_create_addr_space(&accessors, 0);
	if (!p->as)
		return NULL;
	/* Global caching keys register states by IP within this address space:
	 * the CFI of each IP is interpreted once. */
	unw_set_caching_policy(p->as, UNW_CACHE_GLOBAL);
	unw_set_cache_size(p->as, UNWIND_RS_CACHE_SIZE, 0);
	p->pid = pid;
	p->born = ++u->procs_born;
	u->stats.addr_spaces++;
	return p->as;
}

void stoke_unwinder_forget(struct stoke_unwinder *u, uint32_t pid)
{
	for (size_t i = 0; i < ARRAY_SIZE(u->procs); i++)
		if (u->procs[i].as && u->procs[i].pid == pid)
			unw_flush_cache(u->procs[i].as, 0, 0);
}

/* A return address is plausible when it lies in mapped code right after a
 * call instruction: e8 rel32, or ff /2 with a register or memory operand. */
static bool call_preceded(struct walk *w, uint64_t ret_addr)
{
	uint8_t b[7];

	if (ret_addr < sizeof(b) || !read_file_bytes(w, ret_addr - sizeof(b), b, sizeof(b)))
		return false;
	if (b[2] == 0xe8)                                 /* call rel32 */
		return true;
	if (b[5] == 0xff && (b[6] & 0xf8) == 0xd0)       /* call *%reg */
		return true;
	if (b[4] == 0xff && (b[5] & 0x38) == 0x10)       /* call *disp8(%reg) or (%reg,…) */
		return true;
	if (b[1] == 0xff && (b[2] & 0x38) == 0x10)       /* call *disp32(…) / *rip+disp */
		return true;
	if (b[0] == 0xff && (b[1] & 0x38) == 0x10)       /* call *disp32(,SIB) */
		return true;
	if (b[3] == 0xff && (b[4] & 0x38) == 0x10)       /* call *disp8(,SIB) */
		return true;
	return b[4] == 0x41 && b[5] == 0xff && (b[6] & 0xf8) == 0xd0; /* call *%r8-15 */
}

/*
 * JIT code: executable memory that no file describes. V8 (and most JITs)
 * allocate it without PROT_EXEC and mprotect it later, so the kernel sends
 * no MMAP record for it and it lies in no known mapping; an anonymous
 * executable mapping ("//anon") is JIT code as well.
 */
static bool jit_code(struct walk *w, uint64_t addr)
{
	const struct stoke_mapping *m = w->as ? stoke_addrspace_find(w->as, addr) : NULL;

	return !m || (!m->mod && !is_vdso(m));
}

static bool sample_regs_ok(const struct stoke_sample *s)
{
	return s->regs_kind == STOKE_REGS_X86_64;
}

/* Why a step failed, from what the accessors saw. */
static enum stoke_unwind_end failure_reason(const struct walk *w)
{
	if (w->no_info)
		return STOKE_UNWIND_NO_INFO;
	if (w->beyond_copy)
		return STOKE_UNWIND_TRUNCATED;
	return STOKE_UNWIND_BAD_FRAME;
}

/*
 * Stitching. A stack deeper than the copy ends truncated at some frame F
 * (a return address and the stack pointer in its frame). If the same thread
 * has had a complete stack since with a frame at the same return address
 * and the same stack pointer, F is taken to be that same activation, still
 * live, and that stack's callers of F complete this one. It is a guess (a
 * function called again from elsewhere at the very same depth and return
 * address would fool it), so every stitch is counted (stats.stitched) and
 * reported next to the other unwinding figures. The thread's last
 * UNWIND_STITCH_HISTORY distinct complete stacks are searched, most recent
 * first, so the newest activation that fits wins. Stitched stacks are kept
 * too: a thread that stays deep stitches onto its previous stitch.
 */
static struct kept_thread *kept_slot(struct stoke_unwinder *u, uint32_t tid)
{
	return &u->kept[stoke_hash_u64(tid) & (ARRAY_SIZE(u->kept) - 1)];
}

/* Two stacks that differ in the leaf alone are the same for stitching,
 * which never matches the leaf (a truncated walk's cut is a caller): one
 * hot call path must not fill the history with copies of itself. */
static bool kept_same(const struct kept_stack *k, const struct stoke_unwind_frame *frames,
		      const uint64_t *sps, size_t n)
{
	if (k->n != n)
		return false;
	for (size_t i = n; i-- > 1;) /* callers first: they differ less often */
		if (k->f[i].ip != frames[i].ip || k->f[i].sp != sps[i])
			return false;
	return true;
}

static void keep_stack(struct stoke_unwinder *u, const struct stoke_sample *sample,
		       const struct stoke_unwind_frame *frames, size_t n)
{
	struct kept_thread *t = kept_slot(u, sample->tid);
	struct kept_stack k;
	size_t h;

	if (t->pid != sample->pid || t->tid != sample->tid) {
		for (h = 0; h < UNWIND_STITCH_HISTORY; h++)
			t->s[h].n = 0;
		t->pid = sample->pid;
		t->tid = sample->tid;
	}
	/* A stack already kept moves to the front; a new one takes the place
	 * of the oldest. */
	for (h = 0; h < UNWIND_STITCH_HISTORY - 1; h++)
		if (kept_same(&t->s[h], frames, u->sps, n))
			break;
	k = t->s[h];
	memmove(&t->s[1], &t->s[0], h * sizeof(t->s[0]));
	t->s[0] = k;
	if (kept_same(&t->s[0], frames, u->sps, n))
		return;
	t->s[0].n = 0;
	if (STOKE_GROW(t->s[0].f, t->s[0].cap, n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		t->s[0].f[i] = (struct kept_frame){ .ip = frames[i].ip, .sp = u->sps[i],
						    .exact = frames[i].exact,
						    .fp_link = frames[i].fp_link };
	t->s[0].n = n;
}

/* Where frame (ip, sp) of a truncated walk is in kept stack k, with
 * callers above it: its index, or 0 when it is not there. */
static size_t kept_find(const struct kept_stack *k, uint64_t ip, uint64_t sp)
{
	for (size_t j = 1; j + 1 < k->n; j++)
		if (k->f[j].ip == ip && k->f[j].sp == sp && !k->f[j].exact)
			return j;
	return 0;
}

/* Complete a truncated walk of n frames from one of the thread's kept
 * stacks. Returns the new frame count, n when nothing matched. */
static size_t stitch(struct stoke_unwinder *u, const struct stoke_sample *sample,
		     struct stoke_unwind_frame *frames, size_t n, size_t max)
{
	const struct kept_thread *t = kept_slot(u, sample->tid);
	const struct kept_stack *k = NULL;
	const struct stoke_unwind_frame *last = &frames[n - 1];
	uint64_t last_sp = u->sps[n - 1];
	size_t j = 0, add;

	if (n < 2 || last->exact || t->pid != sample->pid || t->tid != sample->tid)
		return n;
	for (size_t h = 0; h < UNWIND_STITCH_HISTORY && !j; h++) {
		k = &t->s[h];
		j = kept_find(k, last->ip, last_sp);
	}
	if (!j || k->n - 1 - j > max - n)
		return n; /* no match, or no room */
	add = k->n - 1 - j;
	for (size_t i = 0; i < add; i++) {
		const struct kept_frame *f = &k->f[j + 1 + i];

		frames[n + i] = (struct stoke_unwind_frame){ .ip = f->ip, .exact = f->exact,
							     .fp_link = f->fp_link };
		u->sps[n + i] = f->sp;
	}
	u->stats.stitched++;
	u->stats.stitched_frames += add;
	return n + add;
}

size_t stoke_unwind_sample(struct stoke_unwinder *u, const struct stoke_addrspace *as,
			   const struct stoke_sample *sample, struct stoke_unwind_frame *frames,
			   size_t max, enum stoke_unwind_end *ret_end)
{
	struct walk w = { .u = u, .as = as };
	enum stoke_unwind_end end = STOKE_UNWIND_MAX_DEPTH;
	unw_addr_space_t uas;
	unw_cursor_t cur;
	unw_word_t ip, sp;
	bool exact = true;
	size_t n = 0, jit_from = 0;

	if (!sample_regs_ok(sample) || max == 0) {
		*ret_end = STOKE_UNWIND_NO_REGS;
		return 0;
	}
	if (max > u->sps_cap && STOKE_GROW(u->sps, u->sps_cap, max) < 0)
		max = u->sps_cap; /* shorter walks rather than none */
	if (max == 0) {
		*ret_end = STOKE_UNWIND_NO_REGS;
		return 0;
	}
	u->stats.samples++;
	w.regs = sample->regs;
	w.stack = sample->stack;
	w.stack_lo = sample->stack_addr;
	w.stack_len = sample->stack ? sample->stack_len : 0;
	/* The leaf is exact even if nothing else works. */
	u->sps[n] = sample->regs[STOKE_DWARF_RSP];
	frames[n++] = (struct stoke_unwind_frame){ .ip = sample->regs[STOKE_DWARF_RIP],
						   .exact = true };
	uas = proc_as(u, sample->pid);
	if (!uas || unw_init_remote(&cur, uas, &w) < 0) {
		end = STOKE_UNWIND_BAD_FRAME;
		goto out;
	}
	sp = w.stack_lo;
	ip = frames[0].ip;
	while (n < max) {
		bool signal;
		unw_word_t new_sp;
		bool fp_link;
		int r;

		/* a return address may be the first byte after its caller */
		walk_meet(&w, exact ? ip : ip - 1);
		signal = unw_is_signal_frame(&cur) > 0;
		w.no_info = w.beyond_copy = false;
		r = unw_step(&cur);
		if (r == 0) {
			end = STOKE_UNWIND_COMPLETE;
			break;
		}
		/* A step without CFI went through libunwind's frame-pointer
		 * fallback: it must prove itself below. */
		fp_link = r > 0 && w.no_info;
		if (r < 0 || unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 ||
		    unw_get_reg(&cur, UNW_REG_SP, &new_sp) < 0) {
			end = failure_reason(&w);
			break;
		}
		if (ip == 0) { /* the ABI's end of the chain */
			end = STOKE_UNWIND_COMPLETE;
			break;
		}
		/* Callers live above: a stack that does not grow towards them
		 * is corrupt (signal frames may switch stacks). */
		if ((!signal && new_sp <= sp) || !as) {
			end = fp_link ? STOKE_UNWIND_NO_INFO : STOKE_UNWIND_BAD_FRAME;
			break;
		}
		if (jit_code(&w, ip - 1)) {
			/* A return into JIT code, whose bytes we cannot check for
			 * a call: kept on probation until the chain returns into
			 * a module through a checked call (JIT code is always
			 * entered from one, V8's JSEntry for instance). A walk
			 * that ends first drops these frames. */
			if (!jit_from)
				jit_from = n;
		} else if (!stoke_addrspace_find(as, ip - 1) ||
			   (fp_link && !call_preceded(&w, ip))) {
			end = fp_link ? STOKE_UNWIND_NO_INFO : STOKE_UNWIND_BAD_FRAME;
			break;
		} else if (jit_from) {
			for (size_t i = jit_from; i < n; i++)
				u->stats.fp_links += frames[i].fp_link;
			jit_from = 0;
		}
		exact = signal; /* the frame a signal interrupted is exact */
		u->sps[n] = new_sp;
		frames[n++] = (struct stoke_unwind_frame){ .ip = ip, .exact = exact,
							   .fp_link = fp_link };
		if (!jit_from)
			u->stats.fp_links += fp_link;
		sp = new_sp;
	}
	if (jit_from) {
		/* never confirmed: a walk through JIT code that did not come
		 * back out, or that was garbage all along */
		n = jit_from;
		if (end == STOKE_UNWIND_COMPLETE || end == STOKE_UNWIND_MAX_DEPTH)
			end = STOKE_UNWIND_NO_INFO;
	}
	if (end == STOKE_UNWIND_TRUNCATED) {
		size_t m = stitch(u, sample, frames, n, max);

		if (m > n) {
			n = m;
			end = STOKE_UNWIND_COMPLETE;
		}
	}
	if (end == STOKE_UNWIND_COMPLETE)
		keep_stack(u, sample, frames, n);
out:
	u->stats.ends[end]++;
	*ret_end = end;
	return n;
}

void stoke_unwinder_get_stats(const struct stoke_unwinder *u, struct stoke_unwind_stats *ret)
{
	*ret = u->stats;
}

const char *stoke_unwind_end_name(enum stoke_unwind_end end)
{
	static const char *const names[] = {
		[STOKE_UNWIND_COMPLETE] = "complete",   [STOKE_UNWIND_TRUNCATED] = "truncated",
		[STOKE_UNWIND_NO_INFO] = "no-cfi",      [STOKE_UNWIND_BAD_FRAME] = "bad-frame",
		[STOKE_UNWIND_MAX_DEPTH] = "max-depth", [STOKE_UNWIND_NO_REGS] = "no-regs",
	};

	return (unsigned)end < ARRAY_SIZE(names) ? names[end] : "?";
}
