/*
 * Per-version layout of the CPython structures stoke reads (offsets in
 * bytes, x86-64). Only the fields on the path _PyRuntime → interpreter →
 * thread states → frames → code objects → strings.
 */
#pragma once

#include <stdint.h>

#define STOKE_PY_NO_FIELD 0xffff
/* FRAME_OWNED_BY_CSTACK (3.12, 3.13) */
#define STOKE_PY_OWNED_BY_CSTACK 3

struct stoke_py_offsets {
	unsigned major, minor;
	/* _PyRuntimeState */
	uint16_t runtime_interpreters_head;
	/* PyInterpreterState */
	uint16_t interp_threads_head;
	/* PyThreadState */
	uint16_t tstate_next, tstate_thread_id, tstate_native_thread_id;
	/* 3.11, 3.12: tstate->cframe->current_frame; 3.13: tstate->current_frame
	 * (tstate_cframe is STOKE_PY_NO_FIELD) */
	uint16_t tstate_cframe, tstate_current_frame;
	/* _PyCFrame */
	uint16_t cframe_current_frame;
	/* _PyInterpreterFrame. 3.11 marks the entry frame with is_entry;
	 * 3.12+ push a shim frame owned by the C stack (owner
	 * FRAME_OWNED_BY_CSTACK) under it. prev_instr is instr_ptr in 3.13: both
	 * give the instruction index as (ptr - co_code_adaptive) / 2. */
	uint16_t frame_code, frame_previous, frame_prev_instr, frame_is_entry, frame_owner;
	/* PyCodeObject */
	uint16_t code_filename, code_qualname, code_firstlineno, code_linetable, code_adaptive;
	/* PyObject, PyASCIIObject / PyCompactUnicodeObject, PyBytesObject */
	uint16_t ob_type, unicode_length, unicode_state, unicode_ascii_data, unicode_compact_data;
	uint16_t bytes_size, bytes_data;
};

/* The layout for version major.minor, or NULL when we do not know it. */
const struct stoke_py_offsets *stoke_py_offsets_find(unsigned major, unsigned minor);

/* 3.13's _PyRuntime starts with _Py_DebugOffsets, the interpreter's own
 * description of its layout: raw is its first STOKE_PY_DEBUG_OFFSETS_WORDS
 * 64-bit words, read from the target. Fills *o from them (the rest from
 * the table). Returns 0, or -EINVAL when raw is not a 3.13 default-build
 * description (cookie, version, free-threading, values out of range). */
#define STOKE_PY_DEBUG_OFFSETS_WORDS 71
int stoke_py_offsets_from_debug(const uint64_t *raw, unsigned long hexversion,
				struct stoke_py_offsets *o);
