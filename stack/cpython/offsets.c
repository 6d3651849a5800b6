/*
 * The CPython layouts stoke knows (x86-64, default builds: not debug, not
 * free-threaded). The offsets are offsetof() of the public internal headers
 * of each version (Include/internal/pycore_*.h with Py_BUILD_CORE), checked
 * against live interpreters: Debian's /usr/bin/python3.11 (3.11.2) in the
 * tests, pyenv builds of 3.11.7, 3.12.1 and 3.13.0 by hand.
 * 3.13 also describes itself (_Py_DebugOffsets at the start of _PyRuntime):
 * when that description is there, it wins over the table.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "offsets.h"

static const struct stoke_py_offsets table[] = {
	{
		.major = 3,
		.minor = 11,
		.runtime_interpreters_head = 40,
		.interp_threads_head = 16,
		.tstate_next = 8,
		.tstate_thread_id = 152,
		.tstate_native_thread_id = 160,
		.tstate_cframe = 56,
		.tstate_current_frame = STOKE_PY_NO_FIELD,
		.cframe_current_frame = 8,
		.frame_code = 32,
		.frame_previous = 48,
		.frame_prev_instr = 56,
		.frame_is_entry = 68,
		.frame_owner = STOKE_PY_NO_FIELD, /* no C-stack-owned frames */
		.code_filename = 112,
		.code_qualname = 128,
		.code_firstlineno = 72,
		.code_linetable = 136,
		.code_adaptive = 184,
		.ob_type = 8,
		.unicode_length = 16,
		.unicode_state = 32,
		.unicode_ascii_data = 48,   /* sizeof(PyASCIIObject), with wstr */
		.unicode_compact_data = 72, /* sizeof(PyCompactUnicodeObject) */
		.bytes_size = 16,
		.bytes_data = 32,
	},
	{
		.major = 3,
		.minor = 12,
		.runtime_interpreters_head = 40,
		.interp_threads_head = 72,
		.tstate_next = 8,
		.tstate_thread_id = 136,
		.tstate_native_thread_id = 144,
		.tstate_cframe = 56,
		.tstate_current_frame = STOKE_PY_NO_FIELD,
		.cframe_current_frame = 0,
		.frame_code = 0,
		.frame_previous = 8,
		.frame_prev_instr = 56,
		.frame_is_entry = STOKE_PY_NO_FIELD,
		.frame_owner = 70,
		.code_filename = 112,
		.code_qualname = 128,
		.code_firstlineno = 68,
		.code_linetable = 136,
		.code_adaptive = 192,
		.ob_type = 8,
		.unicode_length = 16,
		.unicode_state = 32,
		.unicode_ascii_data = 40, /* no more wstr */
		.unicode_compact_data = 56,
		.bytes_size = 16,
		.bytes_data = 32,
	},
	{
		.major = 3,
		.minor = 13,
		.runtime_interpreters_head = 632,
		.interp_threads_head = 7344,
		.tstate_next = 8,
		.tstate_thread_id = 152,
		.tstate_native_thread_id = 160,
		.tstate_cframe = STOKE_PY_NO_FIELD,
		.tstate_current_frame = 72,
		.cframe_current_frame = STOKE_PY_NO_FIELD,
		.frame_code = 0, /* f_executable */
		.frame_previous = 8,
		.frame_prev_instr = 56, /* instr_ptr */
		.frame_is_entry = STOKE_PY_NO_FIELD,
		.frame_owner = 70,
		.code_filename = 112,
		.code_qualname = 128,
		.code_firstlineno = 68,
		.code_linetable = 136,
		.code_adaptive = 200,
		.ob_type = 8,
		.unicode_length = 16,
		.unicode_state = 32,
		.unicode_ascii_data = 40,
		.unicode_compact_data = 56,
		.bytes_size = 16,
		.bytes_data = 32,
	},
};

const struct stoke_py_offsets *stoke_py_offsets_find(unsigned major, unsigned minor)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].major == major && table[i].minor == minor)
			return &table[i];
	return NULL;
}

/* Word indexes in 3.13's _Py_DebugOffsets (Include/internal/pycore_runtime.h):
 * the cookie, then version, free_threaded, then one group per structure,
 * each starting with its size. */
enum {
	DO_VERSION = 1,
	DO_FREE_THREADED = 2,
	DO_RUNTIME_INTERPRETERS_HEAD = 5,
	DO_INTERP_THREADS_HEAD = 9,
	DO_TSTATE_NEXT = 21,
	DO_TSTATE_CURRENT_FRAME = 23,
	DO_TSTATE_THREAD_ID = 24,
	DO_TSTATE_NATIVE_THREAD_ID = 25,
	DO_FRAME_PREVIOUS = 29,
	DO_FRAME_EXECUTABLE = 30,
	DO_FRAME_INSTR_PTR = 31,
	DO_FRAME_OWNER = 33,
	DO_CODE_FILENAME = 35,
	DO_CODE_QUALNAME = 37,
	DO_CODE_LINETABLE = 38,
	DO_CODE_FIRSTLINENO = 39,
	DO_CODE_ADAPTIVE = 43,
	DO_OB_TYPE = 45,
	DO_BYTES_SIZE = 65,
	DO_BYTES_SVAL = 66,
	DO_UNICODE_STATE = 68,
	DO_UNICODE_LENGTH = 69,
	DO_UNICODE_ASCII_SIZE = 70,
};

int stoke_py_offsets_from_debug(const uint64_t *raw, unsigned long hexversion,
				struct stoke_py_offsets *o)
{
	static const struct {
		int word;
		size_t field;
	} map[] = {
#define M(w, f) {w, offsetof(struct stoke_py_offsets, f)}
		M(DO_RUNTIME_INTERPRETERS_HEAD, runtime_interpreters_head),
		M(DO_INTERP_THREADS_HEAD, interp_threads_head),
		M(DO_TSTATE_NEXT, tstate_next),
		M(DO_TSTATE_CURRENT_FRAME, tstate_current_frame),
		M(DO_TSTATE_THREAD_ID, tstate_thread_id),
		M(DO_TSTATE_NATIVE_THREAD_ID, tstate_native_thread_id),
		M(DO_FRAME_PREVIOUS, frame_previous),
		M(DO_FRAME_EXECUTABLE, frame_code),
		M(DO_FRAME_INSTR_PTR, frame_prev_instr),
		M(DO_FRAME_OWNER, frame_owner),
		M(DO_CODE_FILENAME, code_filename),
		M(DO_CODE_QUALNAME, code_qualname),
		M(DO_CODE_LINETABLE, code_linetable),
		M(DO_CODE_FIRSTLINENO, code_firstlineno),
		M(DO_CODE_ADAPTIVE, code_adaptive),
		M(DO_OB_TYPE, ob_type),
		M(DO_BYTES_SIZE, bytes_size),
		M(DO_BYTES_SVAL, bytes_data),
		M(DO_UNICODE_STATE, unicode_state),
		M(DO_UNICODE_LENGTH, unicode_length),
		M(DO_UNICODE_ASCII_SIZE, unicode_ascii_data),
#undef M
	};
	const struct stoke_py_offsets *base = stoke_py_offsets_find(3, 13);

	/* the description's own layout is 3.13's: later versions add fields */
	if (memcmp(raw, "xdebugpy", 8) || (raw[DO_VERSION] >> 16) != (hexversion >> 16) ||
	    ((hexversion >> 16) & 0xffff) != 0x030d || raw[DO_FREE_THREADED] || !base)
		return -EINVAL;
	*o = *base;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		/* the frame fields are read in one go of at most 128 bytes */
		if (raw[map[i].word] >= STOKE_PY_NO_FIELD)
			return -EINVAL;
		uint16_t v = (uint16_t)raw[map[i].word];
		memcpy((char *)o + map[i].field, &v, sizeof(v));
	}
	/* PyCompactUnicodeObject: PyASCIIObject, utf8_length, utf8 */
	o->unicode_compact_data = (uint16_t)(o->unicode_ascii_data + 16);
	return 0;
}
