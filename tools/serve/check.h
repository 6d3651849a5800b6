/*
 * stoke serve's request checks, kept free of the HTTP library so the unit
 * suite can test them: the token, the Host header (DNS rebinding), paths
 * inside a served directory, and URL query encoding.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define SERVE_TOKEN_LEN 48 /* hex characters: 192 random bits */

/* Fill buf (SERVE_TOKEN_LEN + 1 bytes) with a random hex token from
 * getrandom(2). Returns 0 or -errno. */
int serve_token_new(char *buf);

/* Whether given equals expected, in time independent of where they differ
 * (a timing oracle would let a web page guess the token byte by byte). NULL
 * or empty given never matches. */
bool serve_token_equal(const char *expected, const char *given);

/*
 * Whether a request's Host header names the address the server listens on:
 * exactly "ADDR:PORT" (ADDR as bound), or "localhost:PORT" when ADDR is a
 * loopback address. Anything else is refused, so a page whose own domain
 * was re-pointed at 127.0.0.1 (DNS rebinding) cannot read the dashboard.
 * A missing Host is refused too.
 */
bool serve_host_ok(const char *host, const char *addr, unsigned port);

/*
 * Whether rel is an acceptable path below a served directory: relative,
 * non-empty, no "." or ".." component, no empty component (so no "//" or
 * trailing "/"), no control characters. "." alone names the directory.
 */
bool serve_relpath_ok(const char *rel);

/*
 * Open rel (checked by serve_relpath_ok) below the directory root (an
 * absolute, canonical path) with flags (O_CLOEXEC added), and check after
 * opening, through /proc/self/fd, that the file reached is still inside
 * root: a symlink anywhere on the way that leads out is refused. Returns
 * the fd or -errno (-EACCES for an escape, -EINVAL for a bad rel).
 */
int serve_open_beneath(const char *root, const char *rel, int flags);

/* Percent-encode s for a URL query value into a malloc'd string (NULL on
 * ENOMEM): everything but A-Z a-z 0-9 - . _ ~ / is encoded. */
char *serve_url_encode(const char *s);

/*
 * Split a command line typed in the launch form into words, as a shell
 * would split it but without a shell: words are separated by blanks
 * (space, tab, newline); '...' keeps everything inside as is; "..." keeps
 * everything but a backslash before " \ $ ` or a newline; a backslash
 * outside quotes keeps the next character. Nothing is expanded ($VAR,
 * `cmd`, globs and ~ stay literal), so the form can run no more than the
 * one program it names. On success *ret is a NULL-terminated array in one
 * allocation (free() it) holding *ret_n words. Returns 0, -EINVAL for an
 * unterminated quote or a trailing backslash, -E2BIG for more than max
 * words, or -ENOMEM.
 */
int serve_split_command(const char *cmd, size_t max, char ***ret, size_t *ret_n);

/*
 * Check the launch form's record options (NULL or "" each: record's
 * default): frequency an integer from 1 to 100000 Hz, call graph "fp",
 * "dwarf" or "auto", duration seconds > 0 up to a day. Returns NULL, or
 * what is wrong as one line.
 */
const char *serve_record_opts_check(const char *freq, const char *call_graph, const char *duration);
