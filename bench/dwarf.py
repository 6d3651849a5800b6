#!/usr/bin/env python3
"""Benchmark (not a test): DWARF unwinding online in stoke against perf's
record-then-script, on the same workload at the same rate.

    bench/dwarf.py [--build build] [--threads 4] [--seconds 10] [--freq 999]
                   [--fixture split-mt-nofp] [--stack 8192]

Runs the multi-threaded omit-FP fixture, attaches to it, and reports:
  - stoke: samples, lost, stoke's own CPU time (it unwinds and symbolizes
    while recording), samples unwound+symbolized per CPU second, bytes
    written per sample (the folded output), unwind failures;
  - perf: samples and lost in `perf record --call-graph dwarf`, perf.data
    bytes per sample, and `perf script`'s time and samples per second.
Prints one JSON object. Reusable by tools/bench: import run_stoke /
run_perf, or run it and parse the JSON.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def cpu_of(proc):
    """Wait for proc; return (returncode, user+sys CPU seconds of it alone)."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru.ru_utime + ru.ru_stime


def start_target(build, fixture, threads, seconds):
    exe = os.path.join(build, "tests", "fixtures", fixture)
    # a little longer than the recording, so it is busy throughout
    p = subprocess.Popen([exe, str(threads), str(seconds + 2), "75"],
                         stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    return p


def run_stoke(build, args, tmp):
    out = os.path.join(tmp, "stoke.folded")
    target = start_target(build, args.fixture, args.threads, args.seconds)
    try:
        p = subprocess.Popen([os.path.join(build, "tools", "stoke"), "record", "-p",
                              str(target.pid), "-d", str(args.seconds), "-F", str(args.freq),
                              "-g", "dwarf,%d" % args.stack, "-o", out],
                             stderr=subprocess.PIPE, text=True)
        err = p.stderr.read()
        rc, cpu = cpu_of(p)
    finally:
        target.kill()
        target.wait()
    if rc != 0:
        sys.exit("stoke failed: " + err)
    m = re.search(r"(\d+) samples, (\d+) lost", err)
    u = re.search(r"unwound (\d+) user stacks, (\d+) incomplete", err)
    samples = int(m.group(1))
    return {
        "samples": samples,
        "lost": int(m.group(2)),
        "cpu_s": round(cpu, 3),
        "samples_per_cpu_s": round(samples / cpu, 1) if cpu else None,
        "output_bytes": os.path.getsize(out),
        "bytes_per_sample": round(os.path.getsize(out) / max(samples, 1), 2),
        "unwound": int(u.group(1)) if u else 0,
        "incomplete": int(u.group(2)) if u else 0,
        "summary": err.strip().splitlines(),
    }


def run_perf(build, args, tmp):
    perf = shutil.which("perf")
    if not perf:
        return {"skipped": "perf not installed"}
    data = os.path.join(tmp, "perf.data")
    target = start_target(build, args.fixture, args.threads, args.seconds)
    try:
        p = subprocess.run([perf, "record", "-F", str(args.freq), "-e", "cpu-clock",
                            "--call-graph", "dwarf,%d" % args.stack, "-p", str(target.pid),
                            "-o", data, "--", "sleep", str(args.seconds)],
                           capture_output=True, text=True)
    finally:
        target.kill()
        target.wait()
    if p.returncode != 0:
        return {"skipped": "perf record failed: " + p.stderr.strip()[-200:]}
    t0 = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = subprocess.run([perf, "script", "-i", data, "-F", "ip,sym", "--no-inline"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    samples = sum(1 for block in s.stdout.split("\n\n") if block.strip())
    rep = subprocess.run([perf, "report", "-i", data, "--stats"], capture_output=True, text=True)
    lm = re.search(r"LOST events:\s+(\d+)", rep.stdout)
    size = os.path.getsize(data)
    return {
        "samples": samples,
        "lost_records": int(lm.group(1)) if lm else None,
        "perf_data_bytes": size,
        "bytes_per_sample": round(size / max(samples, 1), 1),
        "script_wall_s": round(wall, 3),
        "script_cpu_s": round(cpu, 3),
        "script_samples_per_cpu_s": round(samples / cpu, 1) if cpu else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--fixture", default="split-mt-nofp")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--freq", type=int, default=999)
    ap.add_argument("--stack", type=int, default=8192)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="stoke-bench-")
    try:
        res = {"config": vars(args), "stoke": run_stoke(args.build, args, tmp),
               "perf": run_perf(args.build, args, tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(res, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
