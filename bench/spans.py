#!/usr/bin/env python3
"""The untraced cost of spans (issue #19), measured: bench/spans_work.c
built with include/stoke/span.h and without it (-DNO_SPANS), run
interleaved, unprofiled; the figure is the ratio of the median loop CPU
times.

    bench/spans.py [--runs N] [--iters N] [--steps N] [--python]

--python also times contrib/python/stoke_span.py's untraced `with span()`
against an empty `with` of a no-op context manager (needs a build's
libstoke-span.so in $STOKE_SPAN_LIB or the default build-*/ dirs).
A benchmark, not a test: on a shared machine, read the spread it prints.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(tmp, cc, with_spans):
    out = os.path.join(tmp, "spans-work" if with_spans else "spans-work-none")
    cmd = [cc, "-O2", "-g", "-I", os.path.join(ROOT, "include"),
           os.path.join(ROOT, "bench", "spans_work.c"), "-o", out]
    if not with_spans:
        cmd.insert(1, "-DNO_SPANS")
    subprocess.run(cmd, check=True)
    return out


def run(exe, iters, steps):
    p = subprocess.run([exe, str(iters), str(steps)], capture_output=True, text=True, check=True)
    return int(p.stdout.split()[0])


def python_cost(n):
    lib = os.environ.get("STOKE_SPAN_LIB") or next(
        iter(sorted(glob.glob(os.path.join(ROOT, "build*", "contrib", "python",
                                           "libstoke-span.so")))), None)
    if not lib:
        print("python: no libstoke-span.so (build stoke, or set STOKE_SPAN_LIB)")
        return
    os.environ["STOKE_SPAN_LIB"] = lib
    sys.path.insert(0, os.path.join(ROOT, "contrib", "python"))
    import contextlib
    import stoke_span
    assert stoke_span.available() and not stoke_span.traced()
    null = contextlib.nullcontext()
    res = {"span": [], "nullcontext": []}
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            with stoke_span.span("x"):
                pass
        res["span"].append((time.perf_counter() - t0) / n * 1e9)
        t0 = time.perf_counter()
        for _ in range(n):
            with null:
                pass
        res["nullcontext"].append((time.perf_counter() - t0) / n * 1e9)
    s, z = statistics.median(res["span"]), statistics.median(res["nullcontext"])
    print("python %s: untraced `with stoke_span.span(\"x\")` %.0f ns, "
          "`with nullcontext()` %.0f ns (medians of 5 x %d)" % (sys.version.split()[0], s, z, n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--iters", type=int, default=2000000)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--python", action="store_true")
    a = ap.parse_args()
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        exes = {"spans": build(tmp, cc, True), "none": build(tmp, cc, False)}
        t = {"spans": [], "none": []}
        for i in range(a.runs):
            order = ["spans", "none"] if i % 2 == 0 else ["none", "spans"]
            for k in order:
                t[k].append(run(exes[k], a.iters, a.steps))
    ms = {k: statistics.median(v) for k, v in t.items()}
    per_pair = (ms["spans"] - ms["none"]) / a.iters
    print("load: %s" % open("/proc/loadavg").read().split()[:3])
    for k in ("none", "spans"):
        print("%-6s median %.3f s CPU  (min %.3f, max %.3f; %d runs)"
              % (k, ms[k] / 1e9, min(t[k]) / 1e9, max(t[k]) / 1e9, a.runs))
    print("untraced spans: %+.2f%% CPU time (%.2f ns per iteration of two nested spans, "
          "%.0f ns of work)" % (100.0 * (ms["spans"] - ms["none"]) / ms["none"], per_pair,
                                ms["none"] / a.iters))
    if a.python:
        python_cost(200000)


if __name__ == "__main__":
    main()
