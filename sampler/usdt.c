/*
 * USDT notes and argument specs (see usdt.h). The ELF is read through
 * bounds-checked accessors only: every offset and size comes from the file
 * and may lie.
 */
#include "sampler/usdt.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* Probes one file may hold (a bound on what a hostile note costs). */
#define USDT_MAX_PROBES 65536

struct image {
	const uint8_t *p;
	size_t len;
};

static bool in_image(const struct image *im, uint64_t off, uint64_t size)
{
	return off <= im->len && size <= im->len - off;
}

static int get_shdr(const struct image *im, const Elf64_Ehdr *eh, unsigned i, Elf64_Shdr *ret)
{
	uint64_t off = eh->e_shoff + (uint64_t)i * eh->e_shentsize;

	if (!in_image(im, off, sizeof(*ret)))
		return -ENOEXEC;
	memcpy(ret, im->p + off, sizeof(*ret));
	return 0;
}

/* vaddr → file offset through the PT_LOAD segments; 0 when in none. */
static uint64_t vaddr_to_offset(const struct image *im, const Elf64_Ehdr *eh, uint64_t va)
{
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		uint64_t off = eh->e_phoff + (uint64_t)i * eh->e_phentsize;
		Elf64_Phdr ph;

		if (!in_image(im, off, sizeof(ph)))
			return 0;
		memcpy(&ph, im->p + off, sizeof(ph));
		if (ph.p_type != PT_LOAD || va < ph.p_vaddr || va - ph.p_vaddr >= ph.p_filesz)
			continue;
		/* A segment past the end of the file: no offset inside it. */
		if (!in_image(im, ph.p_offset, ph.p_filesz))
			return 0;
		return va - ph.p_vaddr + ph.p_offset;
	}
	return 0;
}

/* Copy a NUL-terminated string at *pos (within end) into out. */
static int take_string(const uint8_t *p, size_t *pos, size_t end, char *out, size_t size)
{
	const uint8_t *nul = memchr(p + *pos, '\0', end - *pos);
	size_t n;

	if (!nul)
		return -ENOEXEC;
	n = (size_t)(nul - (p + *pos));
	if (n >= size)
		n = size - 1;
	memcpy(out, p + *pos, n);
	out[n] = '\0';
	*pos = (size_t)(nul - p) + 1;
	return 0;
}

static int parse_note(const struct image *im, const Elf64_Ehdr *eh, const uint8_t *desc,
		      size_t dlen, bool have_base, uint64_t base_addr,
		      struct stoke_usdt_probe *pr)
{
	uint64_t pc, base, sem;
	size_t pos = 24;

	if (dlen < 24)
		return -ENOEXEC;
	memcpy(&pc, desc, 8);
	memcpy(&base, desc + 8, 8);
	memcpy(&sem, desc + 16, 8);
	memset(pr, 0, sizeof(*pr));
	if (take_string(desc, &pos, dlen, pr->provider, sizeof(pr->provider)) < 0 ||
	    take_string(desc, &pos, dlen, pr->name, sizeof(pr->name)) < 0 ||
	    take_string(desc, &pos, dlen, pr->args, sizeof(pr->args)) < 0)
		return -ENOEXEC;
	/* Prelink may have moved the file since the note was written: the
	 * note keeps the link-time address of .stapsdt.base. */
	if (have_base && base) {
		pc += base_addr - base;
		if (sem)
			sem += base_addr - base;
	}
	pr->pc_offset = vaddr_to_offset(im, eh, pc);
	pr->sem_offset = sem ? vaddr_to_offset(im, eh, sem) : 0;
	if (!pr->pc_offset || (sem && !pr->sem_offset))
		return 1; /* skipped */
	return 0;
}

int stoke_usdt_parse(const void *elf, size_t len, struct stoke_usdt_probe **ret, size_t *ret_n)
{
	struct image im = { elf, len };
	struct stoke_usdt_probe *probes = NULL;
	size_t n = 0, cap = 0;
	Elf64_Ehdr eh;
	Elf64_Shdr strtab, sh;
	bool have_base = false;
	uint64_t base_addr = 0;
	int r = 0;

	*ret = NULL;
	*ret_n = 0;
	if (len < sizeof(eh))
		return -ENOEXEC;
	memcpy(&eh, elf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_shentsize < sizeof(Elf64_Shdr) ||
	    (eh.e_phnum && eh.e_phentsize < sizeof(Elf64_Phdr)) || eh.e_shstrndx >= eh.e_shnum)
		return -ENOEXEC;
	if (get_shdr(&im, &eh, eh.e_shstrndx, &strtab) < 0 ||
	    !in_image(&im, strtab.sh_offset, strtab.sh_size))
		return -ENOEXEC;
	/* .stapsdt.base first: notes are adjusted by it. */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < eh.e_shnum; i++) {
			const char *name;
			uint64_t noff;

			if (get_shdr(&im, &eh, i, &sh) < 0)
				goto bad;
			noff = sh.sh_name;
			if (noff >= strtab.sh_size)
				continue;
			name = (const char *)im.p + strtab.sh_offset + noff;
			if (!memchr(name, '\0', strtab.sh_size - noff))
				continue;
			if (pass == 0) {
				if (!strcmp(name, ".stapsdt.base")) {
					have_base = true;
					base_addr = sh.sh_addr;
				}
				continue;
			}
			if (sh.sh_type != SHT_NOTE || strcmp(name, ".note.stapsdt"))
				continue;
			if (!in_image(&im, sh.sh_offset, sh.sh_size))
				goto bad;
			for (uint64_t pos = 0; pos + sizeof(Elf64_Nhdr) <= sh.sh_size;) {
				const uint8_t *p = im.p + sh.sh_offset + pos;
				Elf64_Nhdr nh;
				uint64_t nsz, dsz;

				memcpy(&nh, p, sizeof(nh));
				nsz = ((uint64_t)nh.n_namesz + 3) & ~3ULL;
				dsz = ((uint64_t)nh.n_descsz + 3) & ~3ULL;
				if (nsz + dsz > sh.sh_size - pos - sizeof(nh))
					goto bad;
				if (nh.n_type == 3 && nh.n_namesz == 8 &&
				    !memcmp(p + sizeof(nh), "stapsdt", 8)) {
					if (n == USDT_MAX_PROBES)
						goto bad;
					if (STOKE_GROW(probes, cap, n + 1) < 0) {
						r = -ENOMEM;
						goto out;
					}
					r = parse_note(&im, &eh, p + sizeof(nh) + nsz, nh.n_descsz,
						       have_base, base_addr, &probes[n]);
					if (r < 0)
						goto bad;
					if (r == 0)
						n++;
					r = 0;
				}
				pos += sizeof(nh) + nsz + dsz;
			}
		}
	}
	*ret = probes;
	*ret_n = n;
	return 0;
bad:
	r = -ENOEXEC;
out:
	free(probes);
	return r;
}

int stoke_usdt_read_file(const char *path, struct stoke_usdt_probe **ret, size_t *ret_n)
{
	struct stat st;
	void *map;
	int fd, r;

	*ret = NULL;
	*ret_n = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		close(fd);
		return -ENOEXEC;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	r = stoke_usdt_parse(map, (size_t)st.st_size, ret, ret_n);
	munmap(map, (size_t)st.st_size);
	return r;
}

/* ---- argument specs ---- */

static const struct {
	const char *name;
	uint8_t dwarf;
} regnames[] = {
	{ "rax", 0 },  { "eax", 0 },   { "rdx", 1 },   { "edx", 1 },   { "rcx", 2 },
	{ "ecx", 2 },  { "rbx", 3 },   { "ebx", 3 },   { "rsi", 4 },   { "esi", 4 },
	{ "rdi", 5 },  { "edi", 5 },   { "rbp", 6 },   { "ebp", 6 },   { "rsp", 7 },
	{ "esp", 7 },  { "r8", 8 },    { "r8d", 8 },   { "r9", 9 },    { "r9d", 9 },
	{ "r10", 10 }, { "r10d", 10 }, { "r11", 11 },  { "r11d", 11 }, { "r12", 12 },
	{ "r12d", 12 }, { "r13", 13 }, { "r13d", 13 }, { "r14", 14 },  { "r14d", 14 },
	{ "r15", 15 }, { "r15d", 15 }, { "rip", 16 },
};

/* "%name" at *s (up to a delimiter) → DWARF number. */
static int parse_reg(const char **s, uint8_t *ret)
{
	const char *p = *s;
	size_t n = 0;

	if (*p != '%')
		return -EINVAL;
	p++;
	while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9'))
		n++;
	for (size_t i = 0; i < ARRAY_SIZE(regnames); i++)
		if (strlen(regnames[i].name) == n && !memcmp(regnames[i].name, p, n)) {
			*ret = regnames[i].dwarf;
			*s = p + n;
			return 0;
		}
	return -EINVAL;
}

static int parse_int(const char **s, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(*s, &end, 0);
	if (end == *s || errno)
		return -EINVAL;
	*s = end;
	*ret = v;
	return 0;
}

int stoke_usdt_args_parse(const char *s, struct stoke_usdt_arg *out, int max)
{
	int n = 0;

	for (;;) {
		struct stoke_usdt_arg a = { 0 };
		int64_t size;

		while (*s == ' ')
			s++;
		if (!*s)
			return n;
		if (n == max)
			return -EINVAL;
		if (parse_int(&s, &size) < 0 || *s != '@' ||
		    (size != 1 && size != 2 && size != 4 && size != 8 && size != -1 &&
		     size != -2 && size != -4 && size != -8))
			return -EINVAL;
		s++;
		a.size = (int)size;
		if (*s == '$') {
			s++;
			a.kind = STOKE_USDT_ARG_IMM;
			if (parse_int(&s, &a.value) < 0)
				return -EINVAL;
		} else if (*s == '%') {
			a.kind = STOKE_USDT_ARG_REG;
			if (parse_reg(&s, &a.reg) < 0)
				return -EINVAL;
		} else {
			a.kind = STOKE_USDT_ARG_MEM;
			if (*s != '(' && parse_int(&s, &a.value) < 0)
				return -EINVAL;
			if (*s++ != '(' || parse_reg(&s, &a.reg) < 0 || *s++ != ')')
				return -EINVAL;
		}
		if (*s && *s != ' ')
			return -EINVAL;
		out[n++] = a;
	}
}

int stoke_usdt_arg_value(const struct stoke_usdt_arg *a, const uint64_t *regs,
			 const uint8_t *stack, uint64_t stack_addr, uint64_t stack_len,
			 uint64_t *ret)
{
	int size = a->size < 0 ? -a->size : a->size;
	uint64_t v = 0, addr;

	switch (a->kind) {
	case STOKE_USDT_ARG_IMM:
		v = (uint64_t)a->value;
		break;
	case STOKE_USDT_ARG_REG:
		if (a->reg >= STOKE_DWARF_NREGS)
			return -EFAULT;
		v = regs[a->reg];
		break;
	case STOKE_USDT_ARG_MEM:
		if (a->reg >= STOKE_DWARF_NREGS || !stack)
			return -EFAULT;
		addr = regs[a->reg] + (uint64_t)a->value;
		if (addr < stack_addr || addr - stack_addr > stack_len ||
		    (uint64_t)size > stack_len - (addr - stack_addr))
			return -EFAULT;
		memcpy(&v, stack + (addr - stack_addr), (size_t)size);
		break;
	default:
		return -EFAULT;
	}
	if (size < 8) {
		v &= (1ULL << (size * 8)) - 1;
		if (a->size < 0 && (v >> (size * 8 - 1) & 1))
			v |= ~0ULL << (size * 8);
	}
	*ret = v;
	return 0;
}
