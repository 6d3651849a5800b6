/*
 * Text hygiene shared by the writers: UTF-8 validation and the escaping of
 * JSON strings and XML text. Profiles carry names straight from symbol
 * tables and /proc, so any byte can appear; every text format must still be
 * valid for its reader (speedscope's JSON.parse, xmllint, Python's marshal
 * "u" strings). Invalid UTF-8 bytes become U+FFFD, one per bad byte, the
 * way Python's "replace" error handler does it, so every writer shows the
 * same name for the same bytes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Decode the UTF-8 sequence at s (n bytes available, n >= 1). Returns its
 * length (1..4) and the code point, or 0 when the first byte does not start
 * a valid, shortest-form sequence of a Unicode scalar value.
 */
size_t stoke_utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp);

/* A copy of s with invalid bytes replaced by U+FFFD. NULL on ENOMEM. */
char *stoke_utf8_sanitize(const char *s);

/* Write s as a quoted JSON string: '"', '\\' and control characters are
 * escaped, invalid UTF-8 becomes U+FFFD. */
void stoke_json_string(FILE *out, const char *s);
/* The same escaping into any sink: write(ctx, bytes, n) is called for each
 * piece (the one JSON string escaper: stoke symbolize uses it on its own
 * buffer). */
void stoke_json_string_to(const char *s, void (*write)(void *ctx, const char *p, size_t n),
			  void *ctx);

/* Write s as XML character data or attribute text: & < > " ' escaped,
 * characters XML 1.0 forbids (most C0 controls) become U+FFFD, invalid
 * UTF-8 too. */
void stoke_xml_text(FILE *out, const char *s);
