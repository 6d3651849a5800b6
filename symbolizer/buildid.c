/*
 * The GNU build-id of an ELF file, as hex, for run.json's target
 * identity (libelf + libdw's dwelf helper).
 */
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <libelf.h>
#include <stdlib.h>

#include "symbolizer/symbolizer.h"

int stoke_elf_build_id_hex(int fd, char **ret)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *id;
	ssize_t n;
	Elf *elf;
	char *s;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -EINVAL;
	n = dwelf_elf_gnu_build_id(elf, (const void **)&id);
	if (n <= 0) {
		elf_end(elf);
		return -ENOENT;
	}
	s = malloc((size_t)n * 2 + 1);
	if (!s) {
		elf_end(elf);
		return -ENOMEM;
	}
	for (ssize_t i = 0; i < n; i++) {
		s[2 * i] = hex[id[i] >> 4];
		s[2 * i + 1] = hex[id[i] & 15];
	}
	s[2 * n] = '\0';
	elf_end(elf);
	*ret = s;
	return 0;
}
