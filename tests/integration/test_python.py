"""Python frames of a real CPython 3.11 (Debian's /usr/bin/python3.11), #14.

dump_*: `stoke dump PID` on the pyspin.py fixture: every frame's file:line
is checked against the fixture's source (the line is inside the named
function, and a caller's line calls its callee), no mock anywhere.

record_*: Python frames at sample time in `stoke record` (the BPF frame
reader on the sampling events): pyspin.py's 70/30 CPU split between leaf_a
and leaf_b shows in the leaves, every Python sample carries its chain to
<module>, file:line checked as above; json.dumps's C frames under their
Python caller; attach and detach; pstats keyed as cProfile keys.
"""
import ast
import json
import os
import pstats
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (Fail, Skip, check, contains_in_order, parse_folded,  # noqa: E402
                       run_stoke, run_tests)

PYTHON = "/usr/bin/python3.11"
SRC = os.path.abspath(os.path.join(os.environ.get("STOKE_SOURCE_ROOT", "."), "tests", "fixtures",
                   "python", "pyspin.py"))


def need_python():
    if not os.access(PYTHON, os.X_OK):
        raise Skip(PYTHON + " is not installed (tools/setup installs it)")


def start(mode, src=SRC):
    need_python()
    p = subprocess.Popen([PYTHON, src, mode], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise Fail("fixture did not start: %r %s" % (line, p.stderr.read()))
    time.sleep(0.3)
    return p


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait()


def functions():
    """qualname -> (first line, last line) of the fixture's functions."""
    tree = ast.parse(open(SRC).read())
    return {n.name: (n.lineno, n.end_lineno) for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef)}


def parse_dump(out):
    """{tid: [(qualname, file, line)] innermost first}"""
    threads, cur = {}, None
    for ln in out.splitlines():
        if ln.startswith("Thread "):
            cur = threads.setdefault(int(ln.split()[1]), [])
        elif ln.startswith("    ") and cur is not None:
            s = ln.strip()
            if s.endswith(")") and " (" in s:
                name, loc = s[:-1].rsplit(" (", 1)
                f, _, line = loc.rpartition(":")
                if f and line.isdigit():
                    cur.append((name, f, int(line)))
                else:  # a native frame's module
                    cur.append((name, loc, -1))
            else:
                cur.append((s, "", -1))
    return threads


def check_stack(stack, funcs, src_lines):
    """Every fixture frame's line is in its function; callers call callees;
    the chain ends at <module>. Returns a string describing a problem."""
    ours = [fr for fr in stack if fr[1] == SRC]
    if any(fr[0] == "[python-truncated]" for fr in stack):
        return "truncated"
    for k, (name, f, line) in enumerate(stack):
        if f != SRC:
            continue
        if name == "<module>":
            if any(a <= line <= b for a, b in funcs.values()):
                return "<module> at line %d, inside a function" % line
        elif name not in funcs:
            return "unknown function " + name
        elif not funcs[name][0] <= line <= funcs[name][1]:
            return "%s at line %d, outside its lines %s" % (name, line, funcs[name])
        if k > 0 and stack[k - 1][1] == SRC:
            callee = stack[k - 1][0].split(".")[-1]
            if callee + "(" not in src_lines[line - 1]:
                return "%s line %d does not call %s: %r" % (name, line, callee,
                                                            src_lines[line - 1])
    if not ours:
        return "no fixture frame"
    return None


def dump_stacks(pid):
    p = run_stoke(["dump", str(pid)])
    check(p.returncode == 0, "stoke dump failed (%d): %s" % (p.returncode, p.stderr))
    check("Python 3.11." in p.stdout, "no version line: " + p.stdout[:200])
    return parse_dump(p.stdout)


def dump_single(tmp):
    funcs, src = functions(), open(SRC).read().splitlines()
    p = start("single")
    try:
        bad = 0
        for _ in range(20):
            th = dump_stacks(p.pid)
            check(list(th) == [p.pid], "threads %s, expected only %d" % (list(th), p.pid))
            st = th[p.pid]
            why = check_stack(st, funcs, src)
            names = [fr[0] for fr in st]
            if why is None and (names[-3:] != ["loop", "main", "<module>"] or
                                not set(names[:2]) & {"leaf_a", "leaf_b"}):
                why = "unexpected chain " + repr(names)
            if why:
                bad += 1
                print("stack %s: %s" % (st, why))
        # the target runs while we read it: a rare torn read is allowed
        check(bad <= 1, "%d of 20 dumps had a wrong stack" % bad)
        check(p.poll() is None, "the target died")
    finally:
        stop(p)


def dump_threads(tmp):
    funcs, src = functions(), open(SRC).read().splitlines()
    p = start("threads")
    try:
        bad = 0
        for _ in range(10):
            th = dump_stacks(p.pid)
            check(len(th) == 3, "%d Python threads, expected 3: %s" % (len(th), th))
            check(set(th) == {int(t) for t in os.listdir("/proc/%d/task" % p.pid)},
                  "thread ids %s are not the process's" % sorted(th))
            main = [fr[0] for fr in th[p.pid]]
            check(main[-2:] == ["main", "<module>"] and "Thread.join" in main,
                  "main thread: " + repr(main))
            for tid, st in th.items():
                if tid == p.pid:
                    continue
                names = [fr[0] for fr in st]
                why = check_stack(st, funcs, src)
                if why is None and (names[-1] != "Thread._bootstrap" or "loop" not in names):
                    why = "unexpected chain " + repr(names)
                if why:
                    bad += 1
                    print("thread %d stack %s: %s" % (tid, st, why))
        check(bad <= 1, "%d of 20 thread stacks were wrong" % bad)
    finally:
        stop(p)


def dump_not_python(tmp):
    p = subprocess.Popen(["sleep", "30"])
    try:
        r = run_stoke(["dump", str(p.pid)])
        check(r.returncode == 1, "exit %d on a non-Python process" % r.returncode)
        lines = r.stderr.strip().splitlines()
        check(len(lines) == 1 and "not CPython" in lines[0], "stderr: %r" % r.stderr)
    finally:
        p.kill()
        p.wait()


def dump_bad_pid(tmp):
    r = run_stoke(["dump", "12x"])
    check(r.returncode == 2, "exit %d on a bad pid" % r.returncode)
    r = run_stoke(["dump", "999999999"])
    check(r.returncode in (1, 2) and r.stderr.count("\n") == 1, "stderr %r" % r.stderr)


def is_py(frame):
    return frame[1].endswith(".py")


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), fields[0]


def dump_native_merged(tmp):
    """--native: each _PyEval_EvalFrameDefault is replaced by its Python
    frames, in the same order as the Python-only stack, with native frames
    at the root; the target runs on afterwards, not stopped."""
    p = start("threads")
    try:
        for _ in range(5):
            r = run_stoke(["dump", "--native", str(p.pid)])
            check(r.returncode == 0, "dump --native failed (%d): %s" % (r.returncode, r.stderr))
            th = parse_dump(r.stdout)
            check(len(th) == 3, "%d threads: %s" % (len(th), r.stdout[:500]))
            for tid, st in th.items():
                names = [fr[0] for fr in st]
                check(not any(n.startswith("_PyEval_EvalFrameDefault") for n in names),
                      "thread %d keeps an evaluator frame: %s" % (tid, names))
                py = [fr[0] for fr in st if is_py(fr)]
                if tid == p.pid:
                    check(py[-2:] == ["main", "<module>"], "main thread: %s" % names)
                    check(names[-1] != "<module>" and "Py_RunMain" in names,
                          "no native root under <module>: %s" % names)
                else:
                    check(py[-1] == "Thread._bootstrap" and "loop" in py,
                          "thread %d: %s" % (tid, names))
                    check("start_thread" in names[names.index("Thread._bootstrap"):],
                          "thread %d: no native root: %s" % (tid, names))
        t0, _ = cpu_ticks(p.pid)
        time.sleep(0.5)
        t1, state = cpu_ticks(p.pid)
        check(state in "RS" and t1 > t0,
              "the target did not run on after dump --native: state %s, ticks %d -> %d"
              % (state, t0, t1))
    finally:
        stop(p)


def dump_native_c_extension(tmp):
    """json.dumps of a big object: the C encoder's frames sit below (inner
    to) the Python frame that called it, with encode_big further out."""
    src = os.path.join(os.path.dirname(SRC), "pyjson.py")
    p = start("", src)
    try:
        seen = 0
        for _ in range(10):
            r = run_stoke(["dump", "--native", str(p.pid)])
            check(r.returncode == 0, "dump --native failed (%d): %s" % (r.returncode, r.stderr))
            st = parse_dump(r.stdout)[p.pid]
            py = [i for i, fr in enumerate(st) if is_py(fr)]
            names = [fr[0] for fr in st]
            check(py and names[py[-1]] == "<module>", "no chain to <module>: %s" % names)
            if (names[py[0]] == "JSONEncoder.iterencode" and py[0] > 0 and
                    names[py[0]:py[-1] + 1].count("encode_big") == 1):
                seen += 1
        # most of its time is in the encoder; a dump may land elsewhere
        check(seen >= 5, "native frames under JSONEncoder.iterencode in %d of 10 dumps"
              % seen)
    finally:
        stop(p)


# ---- record: Python frames at sample time ----

PY_LINE = re.compile(r"stoke: python: (\d+) samples with Python frames, (\d+) of them read "
                     r"after the sample")


def record(tmp, out, args, target=None):
    """stoke record ARGS -o OUT [-- python3.11 TARGET...]: the stderr, and
    (python samples, approximate ones) from its summary."""
    cmd = ["record", "-F", "999", "-o", out] + args
    if target:
        cmd += ["--", PYTHON] + target
    r = run_stoke(cmd, timeout=90)
    check(r.returncode == 0, "record failed (%d): %s" % (r.returncode, r.stderr))
    m = PY_LINE.search(r.stderr)
    return r.stderr, (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def speedscope_stacks(path):
    """[(tid-profile name, [(name, file, line)] innermost first, 1)]: each
    sample counts once (its weight is its period in ns)"""
    d = json.load(open(path))
    frames = d["shared"]["frames"]
    out = []
    for prof in d["profiles"]:
        for st in prof["samples"]:
            fr = [(frames[i]["name"], frames[i].get("file", ""), frames[i].get("line", -1))
                  for i in st]
            out.append((prof["name"], fr[::-1], 1))
    return out


def check_exact(py, approx):
    check(py > 0, "no sample has Python frames")
    # the first samples of a process (until its thread states are known to
    # the BPF reader) are read after the fact; nearly all others at the sample
    check(approx <= py * 0.5, "%d of %d Python samples read after the sample, not at it"
          % (approx, py))


def check_profile(stacks, outermost, funcs, src):
    """Leaf shares, full chains and file:line of a pyspin.py profile."""
    leaves = {"leaf_a": 0, "leaf_b": 0}
    pysamples = bad_chain = bad_line = 0
    for _, st, w in stacks:
        py = [fr for fr in st if is_py(fr) or fr[0] == "[python-truncated]"]
        if not py:
            continue
        pysamples += w
        names = [fr[0] for fr in py]
        if "[python-truncated]" in names or names[-1] not in outermost:
            bad_chain += w
            if bad_chain <= 5 * w:
                print("chain: %s" % names)
            continue
        ours = [fr for fr in py if fr[1] == SRC]
        inner = ours[0][0] if ours else None
        if inner in leaves:
            leaves[inner] += w
            if names.index("loop") < names.index(inner):
                bad_chain += w
        if ours and check_stack(py, funcs, src) is not None:
            bad_line += w
            if bad_line <= 5 * w:
                print("line: %s: %s" % (check_stack(py, funcs, src), py))
    n = leaves["leaf_a"] + leaves["leaf_b"]
    check(n >= 300, "only %d samples in leaf_a/leaf_b: %s" % (n, leaves))
    share = 100.0 * leaves["leaf_a"] / n
    # +-5 points, which is 3.3 standard deviations from 760 samples on; a
    # machine so loaded that the target got fewer gets the 3.3 sigma bound
    tol = max(5.0, 3.3 * 100 * (0.21 / n) ** 0.5)
    print("leaf_a %.1f%% of %d leaf samples; %d Python samples, %d bad chains, %d bad lines"
          % (share, n, pysamples, bad_chain, bad_line))
    check(abs(share - 70) <= tol, "leaf_a has %.1f%% of the leaf samples, expected 70 +- %.1f"
          % (share, tol))
    check(bad_chain <= pysamples * 0.01, "%d of %d Python samples lack the full chain"
          % (bad_chain, pysamples))
    check(bad_line <= pysamples * 0.01, "%d of %d Python samples have a wrong file:line"
          % (bad_line, pysamples))


def record_single(tmp):
    funcs, src = functions(), open(SRC).read().splitlines()
    out = os.path.join(tmp, "p.speedscope.json")
    _, (py, approx) = record(tmp, out, ["--lines"], [SRC, "single", "8"])
    check_exact(py, approx)
    stacks = speedscope_stacks(out)
    check_profile(stacks, {"<module>"}, funcs, src)
    # the evaluator's frames are replaced, the native root stays
    names = {fr[0] for _, st, _ in stacks for fr in st}
    check("_PyEval_EvalFrameDefault" not in names or
          sum(w for _, st, w in stacks if st and st[0][0].startswith("_PyEval")) <
          0.05 * sum(w for _, _, w in stacks), "evaluator frames left in the stacks")
    check("Py_RunMain" in names, "no native frames under <module>")


def record_threads(tmp):
    funcs, src = functions(), open(SRC).read().splitlines()
    out = os.path.join(tmp, "p.speedscope.json")
    _, (py, approx) = record(tmp, out, ["--lines"], [SRC, "threads", "6"])
    check_exact(py, approx)
    stacks = speedscope_stacks(out)
    # workers run loop under Thread._bootstrap; the main thread waits in join
    check_profile(stacks, {"Thread._bootstrap", "<module>"}, funcs, src)
    workers = {name for name, st, _ in stacks
               if any(fr[0] == "loop" for fr in st)}
    check(len(workers) >= 2, "loop seen in %d threads: %s" % (len(workers), workers))


def record_c_extension(tmp):
    """json.dumps of a big object: the C encoder's frames under (inner to)
    JSONEncoder.iterencode, under encode_big, under <module>."""
    src = os.path.join(os.path.dirname(SRC), "pyjson.py")
    p = start("", src)
    try:
        out = os.path.join(tmp, "p.speedscope.json")
        _, (py, approx) = record(tmp, out, ["-p", str(p.pid), "-d", "3", "--lines"])
        check_exact(py, approx)
        total = seen = 0
        for _, st, w in speedscope_stacks(out):
            pyi = [i for i, fr in enumerate(st) if is_py(fr)]
            if not pyi:
                continue
            total += w
            names = [fr[0] for fr in st]
            if (names[pyi[0]] == "JSONEncoder.iterencode" and pyi[0] > 0 and
                    "encode_big" in names[pyi[0]:] and names[pyi[-1]] == "<module>"):
                seen += w
        check(total > 0 and seen >= 0.5 * total,
              "native frames under JSONEncoder.iterencode in %d of %d samples" % (seen, total))
    finally:
        stop(p)


def record_attach_detach(tmp):
    """Attach by PID to a running Python loop, detach: the target runs on."""
    funcs, src = functions(), open(SRC).read().splitlines()
    p = start("single")
    try:
        out = os.path.join(tmp, "p.speedscope.json")
        _, (py, approx) = record(tmp, out, ["-p", str(p.pid), "-d", "8", "--lines"])
        check_exact(py, approx)
        check_profile(speedscope_stacks(out), {"<module>"}, funcs, src)
        t0, _ = cpu_ticks(p.pid)
        time.sleep(0.5)
        t1, state = cpu_ticks(p.pid)
        check(p.poll() is None and state in "RS" and t1 > t0,
              "the target did not run on after the detach: state %s, ticks %d -> %d"
              % (state, t0, t1))
    finally:
        stop(p)


def record_pstats(tmp):
    """pstats loads in pstats.Stats; its top 5 by tottime names leaf_a and
    leaf_b, keyed (file, first line, name) as cProfile keys them."""
    funcs = functions()
    out = os.path.join(tmp, "p.pstats")
    _, (py, approx) = record(tmp, out, [], [SRC, "single", "3"])
    check_exact(py, approx)
    st = pstats.Stats(out)
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:5]
    keys = [k for k, _ in top]
    for name in ("leaf_a", "leaf_b"):
        want = (SRC, funcs[name][0], name)
        check(want in keys, "%s not in the top 5 by tottime: %s" % (want, keys))


def record_no_python(tmp):
    out = os.path.join(tmp, "p.folded")
    err, (py, _) = record(tmp, out, ["--no-python"], [SRC, "single", "2"])
    check(py == 0, "--no-python: %d samples with Python frames" % py)
    text = open(out).read()
    check("leaf_a" not in text and "_PyEval_EvalFrameDefault" in text,
          "--no-python: Python frames, or no evaluator frames: " + text[:300])


def record_daemon_attach(tmp):
    """stoked's attach gets Python frames too, with its authorization: a
    process of nobody's, attached by nobody."""
    if os.geteuid() != 0:
        raise Skip("stoked's tests need root")
    from test_daemon import NOBODY, Daemon, open_to_nobody, run_dirs, wait_ended
    need_python()
    out = open_to_nobody(tmp)
    daemon = Daemon(tmp).start()
    p = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                          "--clear-groups", PYTHON, SRC, "single"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        check(p.stdout.readline().strip() == "ready", "fixture did not start")
        sid = int(daemon.ok(["attach", str(p.pid), "-o", out, "-d", "3"], user=NOBODY).strip())
        wait_ended(daemon, sid)
        runs = run_dirs(out)
        check(len(runs) == 1, "run directories: %s" % runs)
        stacks = parse_folded(os.path.join(out, runs[0], "profile.folded"))
        n = sum(c for _, c in stacks)
        chain = ["<module>", "main", "loop"]
        full = {"leaf_a": 0, "leaf_b": 0}
        for frames, c in stacks:
            for leaf, path in (("leaf_a", "path_a"), ("leaf_b", "path_b")):
                if contains_in_order(frames, chain + [path, leaf]):
                    full[leaf] += c
        print("daemon: %d samples, %s" % (n, full))
        check(full["leaf_a"] + full["leaf_b"] >= 0.5 * n,
              "Python chains in %s of %d samples" % (full, n))
        check(full["leaf_a"] > full["leaf_b"], "leaf_a %(leaf_a)d <= leaf_b %(leaf_b)d" % full)
        check(p.poll() is None, "the target died")
    finally:
        stop(p)
        daemon.stop()


def record_children(tmp):
    """A multiprocessing child (fork) and a subprocess (exec of a new
    interpreter) get their Python frames, each in its own process."""
    need_python()
    src = os.path.join(os.path.dirname(SRC), "pychildren.py")
    out = os.path.join(tmp, "p.folded")
    _, (py, approx) = record(tmp, out, ["--per-thread"], [src, "2"])
    check_exact(py, approx)
    pids = {}
    for frames, c in parse_folded(out):
        pid = frames[0].rsplit("-", 1)[-1].split("/")[0]
        for fn, chain in (("burn_child", ["work", "burn_child"]),
                          ("sub_burn", ["<module>", "sub_burn"])):
            if contains_in_order(frames, chain):
                pids.setdefault(fn, {}).setdefault(pid, 0)
                pids[fn][pid] += c
    print("samples by process: %s" % pids)
    for fn in ("burn_child", "sub_burn"):
        check(fn in pids and max(pids[fn].values()) >= 100,
              "%s: too few samples with its Python chain: %s" % (fn, pids))
    check(set(pids["burn_child"]).isdisjoint(pids["sub_burn"]),
          "the fork child and the subprocess share a pid: %s" % pids)


if __name__ == "__main__":
    run_tests({"record_single": record_single, "record_threads": record_threads,
               "record_c_extension": record_c_extension,
               "record_attach_detach": record_attach_detach, "record_pstats": record_pstats,
               "record_no_python": record_no_python, "record_daemon_attach": record_daemon_attach,
               "record_children": record_children,
               "dump_native_merged": dump_native_merged,
               "dump_native_c_extension": dump_native_c_extension,
               "dump_single": dump_single, "dump_threads": dump_threads,
               "dump_not_python": dump_not_python, "dump_bad_pid": dump_bad_pid})
