/*
 * Demangling (see demangle.h). A thin layer over libiberty: the one thing
 * decided here is which libiberty options each of our modes means.
 *
 * DMGL_AUTO makes cplus_demangle try Rust first (legacy Rust symbols are
 * valid Itanium names too, and only the Rust demangler drops their hash),
 * then the Itanium C++ ABI. Plain C names come back NULL. DMGL_PARAMS adds
 * the parameter lists and DMGL_ANSI the const/volatile qualifiers; without
 * DMGL_VERBOSE the Rust hash and v0 disambiguators are left out.
 */
#include "symbolizer/demangle.h"

#include <errno.h>
#include <libiberty/demangle.h>
#include <stddef.h>
#include <string.h>

char *stoke_demangle(const char *name, enum stoke_demangle_mode mode)
{
	int options = DMGL_AUTO;

	if (!name || mode == STOKE_DEMANGLE_NONE)
		return NULL;
	/* Every mangled form we know starts with '_': _Z (C++), _ZN…17h…E
	 * (Rust legacy), _R (Rust v0). Skip the call for the rest. */
	if (name[0] != '_')
		return NULL;
	if (mode == STOKE_DEMANGLE_FULL)
		options |= DMGL_PARAMS | DMGL_ANSI;
	return cplus_demangle(name, options);
}

int stoke_demangle_mode_parse(const char *s, enum stoke_demangle_mode *ret)
{
	if (!strcmp(s, "short"))
		*ret = STOKE_DEMANGLE_SHORT;
	else if (!strcmp(s, "full"))
		*ret = STOKE_DEMANGLE_FULL;
	else if (!strcmp(s, "none"))
		*ret = STOKE_DEMANGLE_NONE;
	else
		return -EINVAL;
	return 0;
}
