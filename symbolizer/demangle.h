/*
 * Private to symbolizer/: symbol-name demangling through libiberty's
 * cplus_demangle, which knows C++ (Itanium ABI) and Rust (legacy and v0).
 *
 * The default (STOKE_DEMANGLE_SHORT) drops parameter lists, so that
 * "ns::Vec<int>::push(int const&)" reads "ns::Vec<int>::push": profiles are
 * read by function, and overloads rarely matter there. Rust hashes
 * ("::h0123456789abcdef") are dropped in both modes.
 */
#pragma once

#include "symbolizer/symbolizer.h"

/*
 * The demangled form of name in mode, as a malloc'd string the caller frees,
 * or NULL when name is not a mangled name (or mode is STOKE_DEMANGLE_NONE, or
 * memory ran out): the caller then keeps name as it is.
 */
char *stoke_demangle(const char *name, enum stoke_demangle_mode mode);
