"""Spans for Python programs profiled by `stoke record` (issue #19).

    import stoke_span

    with stoke_span.span("load", file="a.csv"):
        ...

    @stoke_span.span("handle")
    def handle(request):
        ...

The spans are the USDT probes of include/stoke/span.h, fired through
libstoke-span.so (built with stoke) by ctypes. While nothing traces the
program a span reads one 16-bit semaphore per begin and end and calls nothing
(see README "Spans" for the measured cost); without the library it does
nothing at all. The library is looked for at $STOKE_SPAN_LIB, next to this
file, then on the library path.

Metadata: up to 4 key=value pairs per span (more are dropped), each cut to
the payload's 384 bytes with the name. A span ends on the thread that began
it; spans nest.
"""
import ctypes
import ctypes.util
import functools
import os

__all__ = ["span", "traced", "available"]

_lib = None
_begin_sem = _end_sem = None


def _load():
    global _lib, _begin_sem, _end_sem
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.environ.get("STOKE_SPAN_LIB"), os.path.join(here, "libstoke-span.so"),
                 ctypes.util.find_library("stoke-span")):
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.stoke_span_begin.argtypes = [ctypes.c_char_p] * 5
        lib.stoke_span_begin.restype = None
        lib.stoke_span_end.argtypes = [ctypes.c_char_p]
        lib.stoke_span_end.restype = None
        for f in (lib.stoke_span_begin_sem, lib.stoke_span_end_sem):
            f.restype = ctypes.c_void_p
            f.argtypes = []
        _begin_sem = ctypes.c_ushort.from_address(lib.stoke_span_begin_sem())
        _end_sem = ctypes.c_ushort.from_address(lib.stoke_span_end_sem())
        _lib = lib
        return


_load()


def available():
    """Whether the probe library was found (spans can be recorded)."""
    return _lib is not None


def traced():
    """Whether a profiler listens to the spans right now."""
    return _begin_sem is not None and _begin_sem.value != 0


def _enc(s):
    return s if isinstance(s, bytes) else str(s).encode("utf-8", "replace")


class span:
    """A span: a context manager, or a decorator of a function (one span
    per call)."""

    __slots__ = ("name", "meta", "_bname")

    def __init__(self, name, **meta):
        self.name = name
        self.meta = meta
        self._bname = None

    def __enter__(self):
        if _begin_sem is not None and _begin_sem.value:
            if self._bname is None:
                self._bname = _enc(self.name)
            m = [_enc("%s=%s" % kv) for kv in list(self.meta.items())[:4]]
            m += [None] * (4 - len(m))
            _lib.stoke_span_begin(self._bname, *m)
        return self

    def __exit__(self, *exc):
        if _end_sem is not None and _end_sem.value:
            if self._bname is None:
                self._bname = _enc(self.name)
            _lib.stoke_span_end(self._bname)
        return False

    def __call__(self, fn):
        name, meta = self.name, self.meta

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with span(name, **meta):
                return fn(*args, **kwargs)
        return wrapper
