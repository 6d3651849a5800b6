/*
 * A module's function symbols, sorted by address (see symtab.h).
 *
 * Building: every symbol libdwfl iterates (dwfl_module_getsym_info already
 * merges .dynsym with .gnu_debugdata's table and prefers a debug file's
 * .symtab) that is a function (FUNC, GNU_IFUNC, or NOTYPE in an executable
 * section), plus one synthetic symbol per PLT entry; then one sort by
 * (address, preference), so that the first symbol at an address is the
 * name kept and the rest are its aliases.
 *
 * PLT entries (x86-64 only) are named the way objdump does it, from the
 * code rather than from a layout guess: an entry that jumps through a GOT
 * slot (`jmp *slot(%rip)`: classic .plt, IBT .plt.sec, .plt.got) is named
 * after the relocation that fills that slot (JUMP_SLOT or GLOB_DAT); an IBT
 * .plt entry, which only pushes the relocation index for the lazy
 * resolver, is named after .rela.plt[index]. So every layout is covered
 * without knowing which one the linker chose.
 *
 * Cleanup style in this file: explicit frees on early return.
 */
#include "symbolizer/symtab.h"

#include <errno.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define NO_NAME UINT32_MAX
/* How many earlier entries a lookup checks for one that encloses the
 * address (a symbol that overlaps the next ones: rare, hand-written). */
#define MAX_ENCLOSING 8

struct sym_entry {
	uint64_t start, end;
	uint32_t name;        /* in pool */
	uint32_t alias_first; /* in aliases[] */
	uint32_t nalias;
	bool plt;
};

struct stoke_symtab {
	struct sym_entry *entries;
	size_t count;
	uint32_t *aliases; /* pool offsets */
	char *pool;
};

/* ---- building ---- */

/* A symbol as read, before aliases are folded. */
struct sym_raw {
	uint64_t start, size, limit; /* limit: end of its section */
	uint32_t name, len;
	uint8_t bind, type;
	bool plt;
};

struct build {
	struct sym_raw *raw;
	size_t nraw, raw_cap;
	char *pool;
	size_t pool_len, pool_cap;
	/* GOT slot → target name, sorted by slot; .rela.plt in order. The
	 * raw symbols are sorted (best first at each address) by then. */
	struct got_slot {
		uint64_t addr;
		uint32_t name;
	} *slots;
	size_t nslots, slots_cap;
	uint32_t *jmprel;
	size_t njmprel, jmprel_cap;
};

/* Append s[0..len) plus suffix to the pool; NO_NAME on ENOMEM or when the
 * pool would pass 4 GiB. s may point into the pool itself. */
static uint32_t pool_add(struct build *b, const char *s, size_t len, const char *suffix)
{
	size_t slen = strlen(suffix), at = b->pool_len;
	bool inside = b->pool && s >= b->pool && s < b->pool + b->pool_len;
	size_t s_off = inside ? (size_t)(s - b->pool) : 0;

	if (at + len + slen + 1 >= NO_NAME ||
	    STOKE_GROW(b->pool, b->pool_cap, at + len + slen + 1) < 0)
		return NO_NAME;
	if (inside)
		s = b->pool + s_off; /* the pool may have moved */
	memcpy(b->pool + at, s, len);
	memcpy(b->pool + at + len, suffix, slen + 1);
	b->pool_len += len + slen + 1;
	return (uint32_t)at;
}

static int add_raw(struct build *b, const struct sym_raw *r)
{
	if (STOKE_GROW(b->raw, b->raw_cap, b->nraw + 1) < 0)
		return -ENOMEM;
	b->raw[b->nraw++] = *r;
	return 0;
}

static bool section_is_code(Elf *elf, GElf_Word shndx, GElf_Shdr *ret)
{
	Elf_Scn *scn = elf ? elf_getscn(elf, shndx) : NULL;

	return scn && gelf_getshdr(scn, ret) && (ret->sh_flags & SHF_EXECINSTR);
}

static int read_symbols(struct build *b, Dwfl_Module *mod)
{
	int n = dwfl_module_getsymtab(mod);

	for (int i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		GElf_Shdr sh;
		Elf *elf = NULL;
		Dwarf_Addr bias;
		const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, &elf,
							   &bias);
		int type = GELF_ST_TYPE(sym.st_info);
		size_t len;

		if (!name || !*name || name[0] == '$')
			continue;
		if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
			continue;
		if (shndx == SHN_UNDEF || shndx == SHN_ABS || shndx == SHN_COMMON ||
		    !section_is_code(elf, shndx, &sh))
			continue;
		/* "dlsym@@GLIBC_2.34": the version is not part of the name. */
		len = (size_t)(strchrnul(name + 1, '@') - name);
		struct sym_raw r = {
			.start = addr,
			.size = sym.st_size,
			/* The section, moved by what libdwfl added to st_value. */
			.limit = sh.sh_addr + sh.sh_size + (addr - sym.st_value),
			.name = pool_add(b, name, len, ""),
			.len = (uint32_t)len,
			.bind = (uint8_t)GELF_ST_BIND(sym.st_info),
			.type = (uint8_t)type,
		};
		if (r.name == NO_NAME || add_raw(b, &r) < 0)
			return -ENOMEM;
	}
	return 0;
}

static const char *section_name(Elf *elf, size_t shstrndx, const GElf_Shdr *sh)
{
	const char *s = elf_strptr(elf, shstrndx, sh->sh_name);

	return s ? s : "";
}

static unsigned leading_underscores(const char *s)
{
	unsigned n = 0;

	while (s[n] == '_')
		n++;
	return n;
}

/*
 * The name an IFUNC resolved through a PLT entry goes by: of the symbols at
 * addr (b->raw sorted), an IFUNC-typed one visible to other modules, with
 * the fewest leading underscores ("strnlen", not the resolver's own
 * "__strnlen_ifunc" or the local "__GI_strnlen"); else the best name
 * there; NULL when no symbol starts at addr.
 */
static const char *symbol_at(const struct build *b, uint64_t addr)
{
	size_t lo = 0, hi = b->nraw, best;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->raw[mid].start < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= b->nraw || b->raw[lo].start != addr)
		return NULL;
	best = lo;
	for (size_t i = lo; i < b->nraw && b->raw[i].start == addr; i++) {
		const struct sym_raw *r = &b->raw[i], *o = &b->raw[best];
		bool r_pub = r->type == STT_GNU_IFUNC && r->bind != STB_LOCAL;
		bool o_pub = o->type == STT_GNU_IFUNC && o->bind != STB_LOCAL;

		if ((r_pub && !o_pub) ||
		    (r_pub == o_pub && leading_underscores(b->pool + r->name) <
					       leading_underscores(b->pool + o->name)))
			best = i;
	}
	return b->pool + b->raw[best].name;
}

/* The JUMP_SLOT, GLOB_DAT and IRELATIVE relocations of one SHT_RELA
 * section. Its symbol table (sh_link) is the dynamic one; a static
 * binary's .rela.plt has none worth reading (only IRELATIVE slots). */
static int read_relocs(struct build *b, Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh,
		       Dwarf_Addr bias, bool is_jmprel)
{
	Elf_Scn *symscn = sh->sh_link ? elf_getscn(elf, sh->sh_link) : NULL;
	GElf_Shdr symsh;
	Elf_Data *rel = elf_getdata(scn, NULL), *syms = NULL;
	size_t n;

	if (!rel || !sh->sh_entsize)
		return 0;
	if (symscn && gelf_getshdr(symscn, &symsh) && symsh.sh_type == SHT_DYNSYM)
		syms = elf_getdata(symscn, NULL);
	n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 0; i < n; i++) {
		GElf_Rela r;
		GElf_Sym sym;
		uint32_t name = NO_NAME;
		const char *s = NULL;
		unsigned type;

		if (!gelf_getrela(rel, (int)i, &r))
			break;
		type = (unsigned)GELF_R_TYPE(r.r_info);
		if ((type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT) && syms &&
		    GELF_R_SYM(r.r_info) != 0 &&
		    gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &sym))
			s = elf_strptr(elf, symsh.sh_link, sym.st_name);
		else if (type == R_X86_64_IRELATIVE)
			/* A call to an IFUNC of this module (libc's strlen,
			 * any static binary's): the addend is the resolver,
			 * whose symbols name the function (perf names these
			 * stubs from the symbol there too). */
			s = symbol_at(b, (uint64_t)r.r_addend + bias);
		if (s && *s) {
			name = pool_add(b, s, strcspn(s, "@"), "@plt");
			if (name == NO_NAME)
				return -ENOMEM;
			if (STOKE_GROW(b->slots, b->slots_cap, b->nslots + 1) < 0)
				return -ENOMEM;
			b->slots[b->nslots++] = (struct got_slot){ r.r_offset, name };
		}
		if (is_jmprel) {
			if (STOKE_GROW(b->jmprel, b->jmprel_cap, b->njmprel + 1) < 0)
				return -ENOMEM;
			b->jmprel[b->njmprel++] = name;
		}
	}
	return 0;
}

static int slot_cmp(const void *a, const void *b)
{
	const struct got_slot *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static uint32_t slot_name(const struct build *b, uint64_t addr)
{
	size_t lo = 0, hi = b->nslots;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->slots[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->nslots && b->slots[lo].addr == addr ? b->slots[lo].name : NO_NAME;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The target name of the PLT entry p[0..size) at vaddr, or NO_NAME. */
static uint32_t plt_entry_name(const struct build *b, const unsigned char *p, size_t size,
			       uint64_t vaddr)
{
	static const unsigned char endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };
	size_t k = 0;

	if (size >= sizeof(endbr64) && !memcmp(p, endbr64, sizeof(endbr64)))
		k = sizeof(endbr64);
	/* push $index (IBT .plt: the lazy-binding half of the entry) */
	if (k + 5 <= size && p[k] == 0x68) {
		uint32_t idx = le32(p + k + 1);

		return idx < b->njmprel ? b->jmprel[idx] : NO_NAME;
	}
	if (k < size && p[k] == 0xf2) /* bnd */
		k++;
	/* jmp *disp32(%rip) */
	if (k + 6 <= size && p[k] == 0xff && p[k + 1] == 0x25)
		return slot_name(b, vaddr + k + 6 + (uint64_t)(int64_t)(int32_t)le32(p + k + 2));
	return NO_NAME;
}

static int read_plt_section(struct build *b, Elf_Scn *scn, const GElf_Shdr *sh, Dwarf_Addr bias)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	const unsigned char *p0 = d ? d->d_buf : NULL;
	size_t step = sh->sh_entsize;

	if (!p0)
		return 0;
	/* A static binary's .plt has no entry size: 8-byte entries there
	 * (jmp *slot(%rip); xchg %ax,%ax) follow each other directly. */
	if (step != 8 && step != 16) {
		bool jmp8 = d->d_size >= 10 && p0[0] == 0xff && p0[1] == 0x25 &&
			    p0[8] == 0xff && p0[9] == 0x25;

		step = jmp8 ? 8 : 16;
	}
	if (d->d_size < step)
		return 0;
	for (size_t off = 0; off + step <= d->d_size; off += step) {
		uint64_t vaddr = sh->sh_addr + off;
		const unsigned char *p = p0 + off;
		uint32_t name = plt_entry_name(b, p, step, vaddr);
		struct sym_raw r = {
			.start = vaddr + bias,
			.size = step,
			.limit = sh->sh_addr + sh->sh_size + bias,
			.name = name,
			.bind = STB_GLOBAL,
			.type = STT_FUNC,
			.plt = true,
		};

		if (name == NO_NAME)
			continue;
		r.len = (uint32_t)strlen(b->pool + name);
		if (add_raw(b, &r) < 0)
			return -ENOMEM;
	}
	return 0;
}

static bool is_plt_section(const char *name)
{
	return !strcmp(name, ".plt") || !strcmp(name, ".plt.sec") || !strcmp(name, ".plt.got");
}

/* Synthetic name@plt symbols from the main file (a debug file has no PLT
 * contents). */
static int read_plt(struct build *b, Dwfl_Module *mod)
{
	Dwarf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	GElf_Ehdr eh;
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	int r;

	if (!elf || !gelf_getehdr(elf, &eh) || eh.e_machine != EM_X86_64 ||
	    elf_getshdrstrndx(elf, &shstrndx) != 0)
		return 0;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA)
			continue;
		r = read_relocs(b, elf, scn, &sh, bias,
				!strcmp(section_name(elf, shstrndx, &sh), ".rela.plt"));
		if (r < 0)
			return r;
	}
	if (!b->nslots && !b->njmprel)
		return 0;
	if (b->nslots) /* qsort of a NULL, empty table is undefined */
		qsort(b->slots, b->nslots, sizeof(*b->slots), slot_cmp);
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_EXECINSTR) ||
		    !is_plt_section(section_name(elf, shstrndx, &sh)))
			continue;
		r = read_plt_section(b, scn, &sh, bias);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * By address, then best name first (perf's choose_best_symbol order: sized,
 * typed, non-weak, global, fewer leading underscores, longer), then by name
 * so the order does not depend on the table's.
 */
static int raw_cmp(const void *a, const void *b, void *pool)
{
	const struct sym_raw *x = a, *y = b;
	const char *xn = (const char *)pool + x->name, *yn = (const char *)pool + y->name;
	unsigned ux, uy;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if ((x->size > 0) != (y->size > 0))
		return x->size > 0 ? -1 : 1;
	if ((x->type == STT_NOTYPE) != (y->type == STT_NOTYPE))
		return x->type == STT_NOTYPE ? 1 : -1;
	if ((x->bind == STB_WEAK) != (y->bind == STB_WEAK))
		return x->bind == STB_WEAK ? 1 : -1;
	if ((x->bind == STB_GLOBAL) != (y->bind == STB_GLOBAL))
		return x->bind == STB_GLOBAL ? -1 : 1;
	ux = leading_underscores(xn);
	uy = leading_underscores(yn);
	if (ux != uy)
		return ux < uy ? -1 : 1;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return strcmp(xn, yn);
}

/* Fold each address's symbols into one entry; sizeless ones reach to the
 * next address (within their section). */
static int fold(struct build *b, struct stoke_symtab *st)
{
	size_t nalias = 0, i = 0, j;

	st->entries = malloc(STOKE_MAX(b->nraw, (size_t)1) * sizeof(*st->entries));
	st->aliases = malloc(STOKE_MAX(b->nraw, (size_t)1) * sizeof(*st->aliases));
	if (!st->entries || !st->aliases)
		return -ENOMEM;
	while (i < b->nraw) {
		const struct sym_raw *best = &b->raw[i];
		struct sym_entry *e = &st->entries[st->count++];

		*e = (struct sym_entry){
			.start = best->start,
			.end = best->start + best->size,
			.name = best->name,
			.alias_first = (uint32_t)nalias,
			.plt = best->plt,
		};
		for (j = i + 1; j < b->nraw && b->raw[j].start == best->start; j++) {
			if (b->raw[j].name != best->name &&
			    strcmp(b->pool + b->raw[j].name, b->pool + best->name))
				st->aliases[nalias++] = b->raw[j].name;
		}
		e->nalias = (uint32_t)(nalias - e->alias_first);
		if (!best->size)
			e->end = j < b->nraw ? STOKE_MIN(b->raw[j].start, best->limit)
					     : best->limit;
		if (e->end <= e->start)
			e->end = e->start + 1;
		i = j;
	}
	return 0;
}

static void build_free(struct build *b)
{
	free(b->raw);
	free(b->pool);
	free(b->slots);
	free(b->jmprel);
}

int stoke_symtab_new(Dwfl_Module *mod, struct stoke_symtab **ret)
{
	struct build b = { 0 };
	struct stoke_symtab *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	r = read_symbols(&b, mod);
	if (r >= 0) {
		/* qsort_r with a NULL base is undefined even for 0 items */
		if (b.nraw)
			qsort_r(b.raw, b.nraw, sizeof(*b.raw), raw_cmp, b.pool);
		r = read_plt(&b, mod);
	}
	if (r >= 0) {
		/* The PLT entries were appended: sort them in (the pool may
		 * have moved, so the comparator gets it now). */
		if (b.nraw)
			qsort_r(b.raw, b.nraw, sizeof(*b.raw), raw_cmp, b.pool);
		r = fold(&b, st);
	}
	if (r < 0) {
		build_free(&b);
		stoke_symtab_free(st);
		return r;
	}
	st->pool = b.pool;
	b.pool = NULL;
	build_free(&b);
	*ret = st;
	return 0;
}

void stoke_symtab_free(struct stoke_symtab *st)
{
	if (!st)
		return;
	free(st->entries);
	free(st->aliases);
	free(st->pool);
	free(st);
}

/* ---- lookup ---- */

size_t stoke_symtab_count(const struct stoke_symtab *st)
{
	return st->count;
}

long stoke_symtab_find(const struct stoke_symtab *st, uint64_t addr)
{
	size_t lo = 0, hi = st->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->entries[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = 0; k < MAX_ENCLOSING && lo > k; k++) {
		const struct sym_entry *e = &st->entries[lo - 1 - k];

		if (addr < e->end)
			return (long)(lo - 1 - k);
	}
	return -ENOENT;
}

const char *stoke_symtab_name(const struct stoke_symtab *st, size_t idx)
{
	return st->pool + st->entries[idx].name;
}

bool stoke_symtab_is_plt(const struct stoke_symtab *st, size_t idx)
{
	return st->entries[idx].plt;
}

uint64_t stoke_symtab_start(const struct stoke_symtab *st, size_t idx)
{
	return st->entries[idx].start;
}

bool stoke_symtab_has_name(const struct stoke_symtab *st, size_t idx, const char *name)
{
	const struct sym_entry *e = &st->entries[idx];

	if (!strcmp(st->pool + e->name, name))
		return true;
	for (uint32_t i = 0; i < e->nalias; i++)
		if (!strcmp(st->pool + st->aliases[e->alias_first + i], name))
			return true;
	return false;
}
