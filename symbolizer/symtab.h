/*
 * Private to symbolizer/: a module's function symbols, sorted by address.
 *
 * dwfl_module_addrinfo walks the whole symbol table for every lookup; on a
 * binary with a large table (libLLVM, libxul) that cost more than anything
 * else the symbolizer does. This index is built once per module: every
 * function symbol libdwfl sees (.symtab, else .dynsym plus .gnu_debugdata;
 * a separate debug file's .symtab when the file has none), plus a synthetic
 * "target@plt" for every PLT entry. Names live in one string pool, the
 * entries in one array sorted by address; a lookup is a binary search.
 *
 * Aliases (several symbols at one address with one size) keep one name,
 * picked as perf picks it (tools/perf/util/symbol.c, choose_best_symbol): a
 * sized symbol over a sizeless one, a typed one over NOTYPE, non-weak over
 * weak, global over local, fewer leading underscores, then the longer name.
 * So libc's malloc reads "malloc", not "__GI___libc_malloc", and top-N
 * lists compare with perf's. The other names are kept, so a DWARF name can
 * be recognized as one of them.
 */
#pragma once

#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stoke_symtab;

/*
 * Index the function symbols and PLT entries of mod. A module without any
 * symbol gets an empty index. Returns 0 or -ENOMEM.
 */
int stoke_symtab_new(Dwfl_Module *mod, struct stoke_symtab **ret);
void stoke_symtab_free(struct stoke_symtab *st);

/* Number of entries (aliases count once). */
size_t stoke_symtab_count(const struct stoke_symtab *st);

/*
 * The entry containing addr (a Dwfl module address: ELF vaddr + bias):
 * [start, start + size), or up to the next symbol for a sizeless one.
 * Returns its index, or -ENOENT.
 */
long stoke_symtab_find(const struct stoke_symtab *st, uint64_t addr);

/* Entry idx's name, without symbol version ("dlsym", not
 * "dlsym@@GLIBC_2.34"); a PLT entry's ends in "@plt". Not demangled. */
const char *stoke_symtab_name(const struct stoke_symtab *st, size_t idx);
/* Whether entry idx is a PLT stub. */
bool stoke_symtab_is_plt(const struct stoke_symtab *st, size_t idx);
/* Entry idx's start address (Dwfl module address). */
uint64_t stoke_symtab_start(const struct stoke_symtab *st, size_t idx);

/* Whether name is the name of entry idx or of one of its aliases. */
bool stoke_symtab_has_name(const struct stoke_symtab *st, size_t idx, const char *name);
