/*
 * CPython frames read from another process's memory.
 *
 * A handle is opened on a process: it finds the interpreter (the python
 * executable or libpython mapped in the process), its version (Py_Version)
 * and _PyRuntime (.dynsym, or .symtab when present), and picks the layout
 * of the interpreter's structures for that version from the offsets table
 * (offsets.c). Every read goes through process_vm_readv and every pointer
 * read from the target is validated before it is followed: the target runs
 * while we read it, so a frame chain may change under us; a chain that
 * does not validate ends with a "[python-truncated]" frame, never a crash.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stoke_py_offsets;

/* One Python frame, resolved from its code object. */
struct stoke_py_frame {
	char qualname[128];
	char filename[256];
	int firstlineno; /* co_firstlineno: where the function is defined */
	int lineno;	 /* the line of the instruction being run; -1: unknown */
	bool is_entry;	 /* 3.11: the first frame run by a _PyEval_EvalFrameDefault call */
};

struct stoke_py_thread {
	uint64_t tstate;     /* address of the PyThreadState */
	pid_t tid;	     /* native_thread_id */
	uint64_t pthread_id; /* thread_id (pthread_self) */
};

struct stoke_py;

/* Open pid's interpreter. Returns 0 and *ret, or -ENOENT (no CPython in
 * the process), -ENOTSUP (a CPython version we do not know; *version_hex
 * is set when known), -ESRCH, -EPERM, ... why_out (may be NULL) gets a
 * one-line reason on failure. */
int stoke_py_open(pid_t pid, struct stoke_py **ret, unsigned long *version_hex, char *why,
		  size_t whylen);
void stoke_py_close(struct stoke_py *py);

/* "3.11.2" and the path of the ELF file holding _PyRuntime. */
const char *stoke_py_version(const struct stoke_py *py);
const char *stoke_py_binary(const struct stoke_py *py);

/* Whether addr (in the process) is inside _PyEval_EvalFrameDefault, as its
 * .dynsym entry sizes it (a compiler-split ".cold" part is not). */
bool stoke_py_is_eval_addr(const struct stoke_py *py, uint64_t addr);

/* The interpreter's threads (main interpreter), at most max. Returns the
 * count, or -errno. */
int stoke_py_threads(struct stoke_py *py, struct stoke_py_thread *out, int max);

/* The Python stack of a thread state, innermost first, at most max frames.
 * Returns the count (the last frame is "[python-truncated]" when the chain
 * did not validate to its end), or -errno. */
int stoke_py_stack(struct stoke_py *py, uint64_t tstate, struct stoke_py_frame *out, int max);

/* One frame from what was read of it elsewhere (at the sample, by BPF):
 * its code object and instruction pointer. Returns 0, or -EFAULT with a
 * "[python-truncated]" frame when code is not a code object (any more). */
int stoke_py_frame_at(struct stoke_py *py, uint64_t code, uint64_t instr, bool is_entry,
		      struct stoke_py_frame *out);

/* The layout (offsets.h) used for this interpreter. */
const struct stoke_py_offsets *stoke_py_layout(const struct stoke_py *py);

/* The line of code unit index instr_idx, from a 3.11+ co_linetable
 * (PEP 626 location table), starting at firstlineno. -1 if the table has
 * no line for it. Exposed for unit tests. */
int stoke_py_linetable_line(const uint8_t *table, size_t len, int firstlineno, long instr_idx);
