#!/usr/bin/env python3
"""Python frames' cost (#14): the target's slowdown and stoke's CPU per sample.

    bench/python.py [--stoke PATH] [--runs N] [--seconds S] [--shapes flat,deep] [--json]

Two shapes of Python stack: flat (<module> → top → mid → leaf) and deep (the
same leaf under 60 more Python frames of recursion), so the frame-chain walk
at the sample, which grows with depth, is measured where it costs most.

1. Target slowdown at 999 Hz: bench/python.py's own workload (a fixed amount
   of pure-Python work under python3.11, reporting its CPU time) alone, under
   `stoke record --no-python`, under `stoke record` (Python frames at the
   sample: the BPF frame reader runs in the sample's interrupt, charged to
   the target) and under `perf record -F 999 -g`; interleaved, median of N.
2. stoke's CPU per sample, attached (-p) for S seconds to a spinning Python
   process, DWARF mode (the default) with Python frames against without:
   stoke's own rusage (wait4) over its sample count.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

PYTHON = "/usr/bin/python3.11"
WORK = r'''
import sys, time
def leaf(n):
    x = 0
    for i in range(n):
        x += i * i
    return x
def mid(n):
    return leaf(n) + leaf(n // 2)
def down(depth, n):
    if depth:
        return down(depth - 1, n)
    return mid(n)
DEPTH = 60 if sys.argv[2] == "deep" else 0
def top(rounds):
    for _ in range(rounds):
        down(DEPTH, 3000)
if sys.argv[1] == "spin":
    print("ready", flush=True)
    while True:
        top(100)
t = time.process_time()
top(int(sys.argv[1]))
print("%.6f" % (time.process_time() - t))
'''


def work_time(prefix, rounds, tmp, shape):
    r = subprocess.run(prefix + [PYTHON, "-c", WORK, str(rounds), shape], capture_output=True,
                       text=True, cwd=tmp)
    if r.returncode != 0:
        sys.exit("failed: %s: %s" % (" ".join(prefix), r.stderr[-500:]))
    return float(r.stdout.strip().splitlines()[-1])


def stoke_cpu(stoke, extra, seconds, tmp, shape):
    target = subprocess.Popen([PYTHON, "-c", WORK, "spin", shape], stdout=subprocess.PIPE,
                              text=True)
    target.stdout.readline()
    try:
        p = subprocess.Popen([stoke, "record", "-F", "999", "-p", str(target.pid), "-d",
                              str(seconds), "-o", os.path.join(tmp, "p.folded")] + extra,
                             stderr=subprocess.PIPE, text=True)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        m = re.search(r"stoke: (\d+) samples", err)
        n = int(m.group(1)) if m else 0
        return (ru.ru_utime + ru.ru_stime) / max(n, 1), n
    finally:
        target.kill()
        target.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stoke", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                    "tools", "stoke"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--shapes", default="flat,deep")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="stoke-pybench-")
    modes = {
        "baseline": [],
        "stoke --no-python": [a.stoke, "record", "-q", "-F", "999", "--no-python", "-o",
                              os.path.join(tmp, "a.folded"), "--"],
        "stoke (Python frames)": [a.stoke, "record", "-q", "-F", "999", "-o",
                                  os.path.join(tmp, "b.folded"), "--"],
        "perf record -g": ["perf", "record", "-q", "-F", "999", "-g", "-o",
                           os.path.join(tmp, "perf.data"), "--"],
    }
    names = list(modes)
    result = {"runs": a.runs, "load": open("/proc/loadavg").read().split()[:3], "shapes": []}
    for shape in a.shapes.split(","):
        times = {m: [] for m in modes}
        for r in range(a.runs):
            for m in names[r % len(names):] + names[:r % len(names)]:
                times[m].append(work_time(modes[m], a.rounds, tmp, shape))
        med = {m: statistics.median(times[m]) for m in names}
        on, n_on = stoke_cpu(a.stoke, [], a.seconds, tmp, shape)
        off, n_off = stoke_cpu(a.stoke, ["--no-python"], a.seconds, tmp, shape)
        result["shapes"].append({"shape": shape, "target_s": med,
                                 "per_sample_us": {"python": on * 1e6, "no_python": off * 1e6},
                                 "samples": {"python": n_on, "no_python": n_off},
                                 "ratio": on / off})
    if a.json:
        json.dump(result, sys.stdout)
        print()
        return
    print("load: %s" % result["load"])
    for sh in result["shapes"]:
        base = sh["target_s"]["baseline"]
        print("shape %s: target CPU time (median of %d), 999 Hz:" % (sh["shape"], a.runs))
        for m in names:
            t = sh["target_s"][m]
            print("  %-24s %.3f s  %+.1f%%" % (m, t, 100 * (t / base - 1)))
        print("  stoke CPU per sample, attached %g s, DWARF mode:" % a.seconds)
        print("    with Python frames     %.1f us (%d samples)"
              % (sh["per_sample_us"]["python"], sh["samples"]["python"]))
        print("    without (--no-python)  %.1f us (%d samples)"
              % (sh["per_sample_us"]["no_python"], sh["samples"]["no_python"]))
        print("    ratio                  %.2fx" % sh["ratio"])


if __name__ == "__main__":
    main()
