#!/usr/bin/env python3
"""Naming never holds up sampling (issue #11): the rings are drained while
symbol lookups are slow, -d N ends the recording window at N s in launch and
attach mode, and no sample is lost.

The workload is generated here: a program with thousands of small functions,
called in turn, so that almost every sample lands on an address not seen
before (each needs its own symbol lookup). Lookups are made slow on purpose
with STOKE_TEST_NAME_DELAY_US (a sleep per module lookup that misses the
cache, see symbolizer.c): if naming ran while the rings are drained, the
rings would overflow and -d would be overrun by seconds.
"""
import glob
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from stoketest import (check, kill, leaf_name, parse_folded, run_stoke,  # noqa: E402
                       run_tests, total)

NFUNCS = 2500
FREQ = 999
# 3 ms per new address: naming runs at a third of the sampling rate, so
# naming on the drain path would lose most samples.
DELAY_ENV = {"STOKE_TEST_NAME_DELAY_US": "3000"}
# -d may end the window at most this late (issue #11).
DURATION_SLACK = 0.1


def build_workload(d):
    """A program that calls NFUNCS distinct functions in turn for argv[1]
    seconds of CPU time (or until killed): cpu-clock samples follow CPU
    time, so their count does not depend on the machine's load."""
    src = os.path.join(d, "many.c")
    exe = os.path.join(d, "many")
    lines = ["#include <stdlib.h>", "#include <time.h>",
             "typedef unsigned (*fn)(unsigned);"]
    for i in range(NFUNCS):
        lines.append(
            "__attribute__((noinline)) unsigned f%d(unsigned x)\n{\n"
            "\tfor (unsigned k = 0; k < %d; k++) {\n"
            "\t\tx = x * %du + %du;\n\t\tx ^= x >> %d;\n\t}\n\treturn x;\n}"
            % (i, 8 + i % 13, (i * 2654435761 + 1) % (1 << 31) | 1, i * 7 + 3, 1 + i % 29))
    lines.append("static const fn table[] = {%s};" %
                 ", ".join("f%d" % i for i in range(NFUNCS)))
    lines.append("""
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double end = now() + (argc > 1 ? atof(argv[1]) : 3600);
	volatile unsigned sink = 0;
	unsigned x = 1;

	while (now() < end)
		for (unsigned i = 0; i < sizeof(table) / sizeof(table[0]); i++)
			x = table[i](x);
	sink = x;
	return (int)(sink & 0);
}
""")
    with open(src, "w") as f:
        f.write("\n".join(lines))
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O1", "-g", "-o", exe, src], check=True)
    return exe


def run_dir(out):
    dirs = glob.glob(os.path.join(out, "*"))
    check(len(dirs) == 1, "expected one run directory in %s, found %r" % (out, dirs))
    with open(os.path.join(dirs[0], "run.json")) as f:
        meta = json.load(f)
    folded = glob.glob(os.path.join(dirs[0], "*.folded"))
    check(folded, "no folded profile in %s" % dirs[0])
    return meta, parse_folded(folded[0])


def check_many_addresses(stacks, minimum):
    leaves = {leaf_name(frames[-1]) for frames, _ in stacks}
    named = {x for x in leaves if re.fullmatch(r"f\d+", x)}
    print("distinct leaf functions: %d" % len(named))
    check(len(named) >= minimum,
          "only %d distinct workload functions sampled (want >= %d): the workload does "
          "not exercise many addresses" % (len(named), minimum))


def check_window(meta, seconds, t_stoke):
    dur = meta["duration_s"]
    n = meta["samples"]
    print("duration_s %.3f (asked %g), %d samples, %d lost, stoke ran %.2f s"
          % (dur, seconds, n, meta["lost_samples"], t_stoke))
    check(dur <= seconds + DURATION_SLACK,
          "-d %g: the recording window lasted %.3f s (more than %g s late)"
          % (seconds, dur, DURATION_SLACK))
    check(dur >= seconds - 0.01, "-d %g: the window ended early (%.3f s)" % (seconds, dur))
    # One busy thread: at most one sample per period inside the window.
    limit = (seconds + DURATION_SLACK) * FREQ * 1.01 + 5
    check(n <= limit, "%d samples in a %g s window at %d Hz: samples taken after the "
          "deadline were kept" % (n, seconds, FREQ))
    check(n >= 200, "only %d samples in %g s" % (n, seconds))
    check(meta["lost_samples"] == 0, "%d samples lost" % meta["lost_samples"])


def stoke_env():
    env = dict(os.environ)
    env.update(DELAY_ENV)
    return env


def test_duration_launch(d):
    exe = build_workload(d)
    out = os.path.join(d, "out")
    t0 = time.monotonic()
    p = run_stoke(["record", "-F", str(FREQ), "-d", "2", "--output-dir", out, "--", exe],
                  timeout=300, env=stoke_env())
    t = time.monotonic() - t0
    check(p.returncode in (0, 128 + 15, 143), "stoke record failed (%d): %s"
          % (p.returncode, p.stderr))
    meta, stacks = run_dir(out)
    check_window(meta, 2, t)
    check_many_addresses(stacks, 300)


def test_duration_attach(d):
    exe = build_workload(d)
    out = os.path.join(d, "out")
    target = subprocess.Popen([exe], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        p = run_stoke(["record", "-F", str(FREQ), "-d", "2", "--output-dir", out,
                       "-p", str(target.pid)], timeout=300, env=stoke_env())
        t = time.monotonic() - t0
        check(p.returncode == 0, "stoke record -p failed (%d): %s" % (p.returncode, p.stderr))
        check(target.poll() is None, "the target died under stoke")
    finally:
        kill(target)
    meta, stacks = run_dir(out)
    check_window(meta, 2, t)
    check_many_addresses(stacks, 300)


def test_no_lost_999hz(d):
    exe = build_workload(d)
    out = os.path.join(d, "out")
    p = run_stoke(["record", "-F", str(FREQ), "--output-dir", out, "--", exe, "2.5"],
                  timeout=300, env=stoke_env())
    check(p.returncode == 0, "stoke record failed (%d): %s" % (p.returncode, p.stderr))
    m = re.search(r"(\d+) samples, (\d+) lost", p.stderr)
    check(m, "no summary line: %r" % p.stderr)
    print(m.group(0))
    meta, stacks = run_dir(out)
    check(int(m.group(2)) == 0, "summary: %s lost" % m.group(2))
    check(meta["lost_samples"] == 0, "run.json: %d lost" % meta["lost_samples"])
    check(int(m.group(1)) == meta["samples"] == total(stacks),
          "sample counts disagree: summary %s, run.json %d, folded %d"
          % (m.group(1), meta["samples"], total(stacks)))
    check(meta["samples"] >= 1500, "only %d samples in 2.5 s of CPU time at %d Hz"
          % (meta["samples"], FREQ))
    check_many_addresses(stacks, 500)


TESTS = {
    "duration_launch": test_duration_launch,
    "duration_attach": test_duration_attach,
    "no_lost_999hz": test_no_lost_999hz,
}

if __name__ == "__main__":
    run_tests(TESTS)
