/*
 * Per-version layout of the CPython structures stoke reads (offsets in
 * bytes, x86-64). Only the fields on the path _PyRuntime → interpreter →
 * thread states → frames → code objects → strings.
 */
#pragma once

#include <stdint.h>

struct stoke_py_offsets {
	unsigned major, minor;
	/* _PyRuntimeState */
	uint16_t runtime_interpreters_head;
	/* PyInterpreterState */
	uint16_t interp_threads_head;
	/* PyThreadState */
	uint16_t tstate_next, tstate_thread_id, tstate_native_thread_id, tstate_cframe;
	/* _PyCFrame */
	uint16_t cframe_current_frame;
	/* _PyInterpreterFrame */
	uint16_t frame_code, frame_previous, frame_prev_instr, frame_is_entry;
	/* PyCodeObject */
	uint16_t code_filename, code_qualname, code_firstlineno, code_linetable, code_adaptive;
	/* PyObject, PyASCIIObject / PyCompactUnicodeObject, PyBytesObject */
	uint16_t ob_type, unicode_length, unicode_state, unicode_ascii_data, unicode_compact_data;
	uint16_t bytes_size, bytes_data;
};

/* The layout for version major.minor, or NULL when we do not know it. */
const struct stoke_py_offsets *stoke_py_offsets_find(unsigned major, unsigned minor);
