#!/usr/bin/env python3
"""The untraced cost of spans (issue #19), measured: bench/spans_work.c
built with include/stoke/span.h and without it (-DNO_SPANS), run
interleaved, unprofiled; the figure is the ratio of the median loop CPU
times, for each shape (how much work each pair of nested spans wraps).

    bench/spans.py [--runs N] [--shapes US,US] [--seconds S] [--python] [--json]

--shapes: microseconds of work inside each iteration of two nested spans
(default 0.5,50: a span per half microsecond, a far higher rate than a
program would plausibly use, and one per 50 µs); the work is calibrated
here from the build without spans. --seconds: CPU time of one run.
--python also times contrib/python/stoke_span.py's untraced `with span()`
against an empty `with` of a no-op context manager (needs a build's
libstoke-span.so in $STOKE_SPAN_LIB or the default build-*/ dirs).
--json prints one JSON object (what tools/bench reads) instead of text.
A benchmark, not a test: on a shared machine, read the spread it prints.
"""
import argparse
import glob
import json
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


def python_cost(n, runs):
    """Returns {"span": ns, "nullcontext": ns, "version": str} or a str
    saying why it cannot be measured."""
    lib = os.environ.get("STOKE_SPAN_LIB") or next(
        iter(sorted(glob.glob(os.path.join(ROOT, "build*", "contrib", "python",
                                           "libstoke-span.so")))), None)
    if not lib:
        return "no libstoke-span.so (build stoke, or set STOKE_SPAN_LIB)"
    os.environ["STOKE_SPAN_LIB"] = lib
    sys.path.insert(0, os.path.join(ROOT, "contrib", "python"))
    import contextlib
    import stoke_span
    if not stoke_span.available() or stoke_span.traced():
        return "stoke_span is not available or is traced (%s)" % lib
    null = contextlib.nullcontext()
    res = {"span": [], "nullcontext": []}
    for _ in range(runs):
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
    return {"span": statistics.median(res["span"]),
            "nullcontext": statistics.median(res["nullcontext"]),
            "version": sys.version.split()[0], "n": n, "runs": runs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--shapes", default="0.5,50",
                    help="µs of work per iteration of two nested spans, comma-separated")
    ap.add_argument("--seconds", type=float, default=1.0, help="CPU time of one run")
    ap.add_argument("--python", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    cc = os.environ.get("CC", "cc")
    load0 = open("/proc/loadavg").read().split()[0]
    shapes = []
    with tempfile.TemporaryDirectory() as tmp:
        exes = {"spans": build(tmp, cc, True), "none": build(tmp, cc, False)}
        # ns per step of work, from the build without spans (best of 3:
        # the least disturbed).
        cal_iters, cal_steps = 20000, 1000
        ns_step = min(run(exes["none"], cal_iters, cal_steps) for _ in range(3)) / (
            cal_iters * cal_steps)
        for us in (float(x) for x in a.shapes.split(",")):
            steps = max(1, int(round(us * 1000 / ns_step)))
            iters = max(1000, int(a.seconds * 1e9 / (steps * ns_step)))
            t = {"spans": [], "none": []}
            for i in range(a.runs):
                for k in (["spans", "none"] if i % 2 == 0 else ["none", "spans"]):
                    t[k].append(run(exes[k], iters, steps))
            ms = {k: statistics.median(v) for k, v in t.items()}
            shapes.append({
                "work_us": us, "steps": steps, "iters": iters, "runs": a.runs,
                "spans_s": ms["spans"] / 1e9, "none_s": ms["none"] / 1e9,
                "spans_range_s": [min(t["spans"]) / 1e9, max(t["spans"]) / 1e9],
                "none_range_s": [min(t["none"]) / 1e9, max(t["none"]) / 1e9],
                "ratio": ms["spans"] / ms["none"],
                "ns_per_iteration": (ms["spans"] - ms["none"]) / iters,
                "work_ns": ms["none"] / iters,
            })
    res = {"load_before": load0, "shapes": shapes}
    if a.python:
        res["python"] = python_cost(200000, 5)
    res["load_after"] = open("/proc/loadavg").read().split()[0]
    if a.json:
        print(json.dumps(res))
        return
    print("load: %s before, %s after" % (res["load_before"], res["load_after"]))
    for s in shapes:
        print("%.3g µs of work (%d steps, %d iterations, %d runs):" % (
            s["work_us"], s["steps"], s["iters"], s["runs"]))
        for k in ("none", "spans"):
            print("  %-6s median %.3f s CPU  (min %.3f, max %.3f)"
                  % (k, s[k + "_s"], s[k + "_range_s"][0], s[k + "_range_s"][1]))
        print("  untraced spans: %+.2f%% CPU time (%.2f ns per iteration of two nested spans, "
              "%.0f ns of work)" % (100.0 * (s["ratio"] - 1), s["ns_per_iteration"],
                                    s["work_ns"]))
    if a.python:
        p = res["python"]
        if isinstance(p, str):
            print("python: " + p)
        else:
            print("python %s: untraced `with stoke_span.span(\"x\")` %.0f ns, "
                  "`with nullcontext()` %.0f ns (medians of %d x %d)"
                  % (p["version"], p["span"], p["nullcontext"], p["runs"], p["n"]))


if __name__ == "__main__":
    main()
