"""Helpers for stoke's integration tests.

Each test is a function in a test module; run_tests() runs the ones named on
the command line. Meson runs one test per invocation, so a failure names
exactly one behaviour. Exit codes follow meson's convention: 0 pass, 1 fail,
77 skipped (perf_event refused by the kernel) -- unless STOKE_REQUIRE_PERF=1,
which turns that skip into a failure.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
STOKE = os.environ.get("STOKE", "stoke")
FIXTURES = os.environ.get("STOKE_FIXTURES", ".")


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def fixture(name):
    return os.path.join(FIXTURES, name)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run_stoke(args, timeout=60, **kw):
    """Run stoke with args; returns CompletedProcess (text mode)."""
    return subprocess.run([STOKE] + args, capture_output=True, text=True,
                          timeout=timeout, **kw)


def require_perf(tmp):
    """Skip (or fail under STOKE_REQUIRE_PERF=1) when perf_event is refused."""
    out = os.path.join(tmp, "probe.folded")
    p = run_stoke(["record", "-q", "-o", out, "--", "true"])
    if p.returncode == 0:
        return
    reason = (p.stderr.strip().splitlines() or ["no output"])[-1]
    if re.search(r"permission denied|not supported|no such file or directory.*perf",
                 reason, re.I):
        raise Skip("perf_event_open refused here: " + reason)
    raise Fail("stoke record -- true failed (%d): %s" % (p.returncode, reason))


def parse_folded(path):
    """Returns a list of (frames list root-first, count)."""
    stacks = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            check(line, "%s:%d: empty line" % (path, n))
            stack, _, count = line.rpartition(" ")
            check(stack and count.isdigit(), "%s:%d: malformed: %r" % (path, n, line))
            stacks.append((stack.split(";"), int(count)))
    return stacks


def leaf_name(frame):
    return re.sub(r"_\[[kji]\]$", "", frame)


def total(stacks):
    return sum(c for _, c in stacks)


def leaf_count(stacks, name):
    return sum(c for fr, c in stacks if leaf_name(fr[-1]) == name)


def has_chain(frames, chain):
    """True when chain (root-first names) appears in frames as a contiguous
    run that ends at the leaf."""
    names = [leaf_name(f) for f in frames]
    n = len(chain)
    return len(names) >= n and names[-n:] == chain


def contains_in_order(frames, chain):
    """True when chain appears in frames in order (not necessarily adjacent)."""
    names = [leaf_name(f) for f in frames]
    i = 0
    for name in names:
        if i < len(chain) and name == chain[i]:
            i += 1
    return i == len(chain)


def proc_state(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
    except FileNotFoundError:
        return None, None
    state = re.search(r"^State:\s+(\S)", status, re.M).group(1)
    tracer = int(re.search(r"^TracerPid:\s+(\d+)", status, re.M).group(1))
    return state, tracer


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def tids(pid):
    try:
        return {int(t) for t in os.listdir("/proc/%d/task" % pid)}
    except FileNotFoundError:
        return set()


def spawn(args):
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def run_tests(tests):
    names = sys.argv[1:] or list(tests)
    tmp = tempfile.mkdtemp(prefix="stoke-test-")
    try:
        require_perf(tmp)
        for name in names:
            d = os.path.join(tmp, name)
            os.mkdir(d)
            t0 = time.monotonic()
            tests[name](d)
            print("ok %s (%.1fs)" % (name, time.monotonic() - t0))
    except Skip as e:
        if os.environ.get("STOKE_REQUIRE_PERF") == "1":
            print("FAIL: STOKE_REQUIRE_PERF=1 but: %s" % e)
            sys.exit(1)
        print("SKIP: %s" % e)
        sys.exit(SKIP)
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
