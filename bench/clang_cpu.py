#!/usr/bin/env python3
"""Benchmark (not a test): the profiler's own CPU time per sample while
recording a clang -O2 compile (libLLVM: a huge binary and symbol table, deep
C++ stacks), stoke against perf, side by side on the same compile.

    bench/clang_cpu.py --stoke build/tools/stoke [--runs 3] [--functions 450]

The compile is one process, `clang -cc1 -O2` of a generated C file (the
driver would fork cc1 after a profiler attached to it). Each profiler is
attached to it right after it starts and samples it at 999 Hz until it
exits, with stoke's default call graph (-g auto: DWARF) and perf's
`--call-graph dwarf`:
  - stoke: the rusage of `stoke record -p` alone (it unwinds and
    symbolizes while recording);
  - perf: the rusage of `perf record -p` plus that of `perf script
    --no-inline` over its perf.data (where perf unwinds and symbolizes).
    Without --no-inline, perf 6.1's script runs addr2line -i on libLLVM for
    the inline frames: minutes of CPU for a 3 s compile, so that is not
    the default here (--perf-inline measures it).
CPU per sample is that CPU time over the samples the profiler recorded
(lost samples are reported, not counted as samples). The contenders are
interleaved (stoke, perf, then perf, stoke...) and each figure is the median
of --runs. Prints one JSON object.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def generate(path, nfun):
    """A C file of nfun small functions with loops, branches and calls:
    work for every -O2 pass, about 2-3 s of clang on a 2 GHz core at 450."""
    with open(path, "w") as f:
        f.write("unsigned long strlen(const char *);\n")  # -cc1 has no system headers
        for i in range(nfun):
            f.write("static int g%d[64];\n"
                    "int f%d(int *a, int n, const char *s) {\n"
                    "  int t = %d;\n"
                    "  for (int i = 0; i < n; i++) {\n"
                    "    t += a[i] * %d ^ (t >> 3);\n"
                    "    if (s[i %% 7] == 'x') t -= g%d[i & 63];\n"
                    "    g%d[(t ^ i) & 63] += t;\n"
                    "  }\n"
                    "  switch (t & 7) { case 0: t += strlen(s); break;"
                    " case 1: t *= 3; break; case 5: t ^= n; break; default: t--; }\n"
                    "  return t + (n > 3 ? f%d(a, n - 1, s) : 0);\n"
                    "}\n" % (i, i, i, i + 1, i, i, max(i - 1, 0)))


def rusage_run(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (rc, stderr text, CPU seconds of cmd and the
    children it waited for)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=stdout, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), err.read().decode(errors="replace"),
                ru.ru_utime + ru.ru_stime)


def attached(cc1, profiler):
    """Starts the compile, attaches profiler + [pid]; returns what
    rusage_run returns for the profiler (the compile is not its child)."""
    target = subprocess.Popen(cc1)
    try:
        time.sleep(0.02)
        return rusage_run(profiler + [str(target.pid)])
    finally:
        target.wait()


def one_stoke(stoke, cc1, tmp):
    out = os.path.join(tmp, "clang.folded")
    rc, err, cpu = attached(cc1, [stoke, "record", "-F", "999", "-o", out, "-p"])
    m = re.search(r"stoke: (\d+) samples, (\d+) lost", err)
    if rc or not m:
        sys.exit("clang_cpu: stoke record -p failed (%d): %s" % (rc, err.strip()[-300:]))
    return {"cpu_s": cpu, "samples": int(m.group(1)), "lost": int(m.group(2))}


def one_perf(cc1, tmp, inline):
    data = os.path.join(tmp, "clang.data")
    rc, err, rec = attached(cc1, ["perf", "record", "-e", "cpu-clock", "-F", "999",
                                  "--call-graph", "dwarf", "-o", data, "-p"])
    m = re.search(r"\((\d+) samples\)", err)
    if rc or not m:
        sys.exit("clang_cpu: perf record -p failed (%d): %s" % (rc, err.strip()[-300:]))
    lost = sum(int(x) for x in re.findall(r"lost (\d+) chunks", err))
    rc, err, script = rusage_run(["perf", "script", "-i", data] +
                                 ([] if inline else ["--no-inline"]))
    if rc:
        sys.exit("clang_cpu: perf script failed (%d): %s" % (rc, err.strip()[-300:]))
    return {"record_cpu_s": rec, "script_cpu_s": script, "cpu_s": rec + script,
            "samples": int(m.group(1)), "lost_chunks": lost}


def summarize(runs):
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["cpu_ms_per_sample"] = statistics.median(
        1e3 * r["cpu_s"] / max(1, r["samples"]) for r in runs)
    out["runs"] = runs
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stoke", required=True, help="the stoke binary")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--functions", type=int, default=450)
    ap.add_argument("--perf-inline", action="store_true",
                    help="perf script with its inline frames (addr2line; very slow)")
    args = ap.parse_args()
    clang = shutil.which("clang")
    if not clang or not shutil.which("perf"):
        sys.exit("clang_cpu: needs clang and perf (tools/setup installs them)")
    tmp = tempfile.mkdtemp(prefix="stoke-clang-cpu-")
    try:
        src = os.path.join(tmp, "big.c")
        generate(src, args.functions)
        cc1 = [clang, "-cc1", "-triple", "x86_64-pc-linux-gnu", "-emit-obj", "-O2",
               "-o", os.path.join(tmp, "big.o"), src]
        t0 = time.monotonic()
        rc, err, alone = rusage_run(cc1)
        if rc:
            sys.exit("clang_cpu: clang -cc1 failed: %s" % err.strip()[-300:])
        wall_alone = time.monotonic() - t0
        s_runs, p_runs = [], []
        for i in range(args.runs):
            order = ("stoke", "perf") if i % 2 == 0 else ("perf", "stoke")
            for who in order:
                if who == "stoke":
                    s_runs.append(one_stoke(args.stoke, cc1, tmp))
                else:
                    p_runs.append(one_perf(cc1, tmp, args.perf_inline))
        s, p = summarize(s_runs), summarize(p_runs)
        print(json.dumps({
            "config": {"functions": args.functions, "runs": args.runs, "freq": 999,
                       "perf_script": "perf script" + ("" if args.perf_inline
                                                       else " --no-inline"),
                       "clang": clang, "compile_cpu_s": alone, "compile_wall_s": wall_alone,
                       "load": open("/proc/loadavg").read().split()[0]},
            "stoke": s, "perf": p,
            "ratio": s["cpu_ms_per_sample"] / p["cpu_ms_per_sample"],
        }, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
