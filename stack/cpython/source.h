/*
 * CPython as an interpreter frame source (stack/interp.h): the Python
 * frames of a sampled thread, for every CPython 3.11-3.13 process a
 * session samples (opened on its first sample, children included).
 */
#pragma once

#include "stack/interp.h"

/* Why a process gets no Python frames (once per process): level is 0 for
 * "not CPython at all" (no news for a C program) and 1 for a CPython stoke
 * cannot read (an unknown version). */
typedef void (*stoke_cpython_note_fn)(void *ctx, int level, const char *why);

int stoke_cpython_source_new(stoke_cpython_note_fn note, void *ctx,
			     struct stoke_interp_source *ret);

/* The BPF program that reads the frame chain at the sample, for the
 * sampler to attach to its perf events (PERF_EVENT_IOC_SET_BPF), or -1
 * when there is none (frames are then read after the sample). Set
 * STOKE_PYTHON_NO_BPF in the environment to compare. */
int stoke_cpython_source_prog_fd(const struct stoke_interp_source *src);
