/*
 * The CPython layouts stoke knows. Only 3.11 is here: its offsets were
 * checked against Debian's /usr/bin/python3.11 (3.11.2) by reading a live
 * interpreter's own structures (tests/integration/test_python.py runs the
 * reader against it). 3.12 moved f_code and dropped is_entry (entry frames
 * became FRAME_OWNED_BY_CSTACK shims) and 3.13 describes itself through
 * _Py_DebugOffsets; neither can be tested on this machine, so neither is
 * claimed: such a process gets native frames and a line saying why.
 */
#include <stddef.h>

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
		.cframe_current_frame = 8,
		.frame_code = 32,
		.frame_previous = 48,
		.frame_prev_instr = 56,
		.frame_is_entry = 68,
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
};

const struct stoke_py_offsets *stoke_py_offsets_find(unsigned major, unsigned minor)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].major == major && table[i].minor == minor)
			return &table[i];
	return NULL;
}
