/*
 * The one string interner: equal strings give the same pointer, which stays
 * valid until the pool is freed. Used by the symbolizer and the stack layer
 * for every name and path they keep.
 */
#pragma once

#include <stddef.h>

struct stoke_strpool;

int stoke_strpool_new(struct stoke_strpool **ret);
void stoke_strpool_free(struct stoke_strpool *p);
/* Intern s (len bytes, no NUL needed). Returns the pooled copy, or NULL on
 * ENOMEM. */
const char *stoke_strpool_intern_n(struct stoke_strpool *p, const char *s, size_t len);
const char *stoke_strpool_intern(struct stoke_strpool *p, const char *s);
