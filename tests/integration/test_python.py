"""Python frames of a real CPython 3.11 (Debian's /usr/bin/python3.11), #14.

dump_*: `stoke dump PID` on the pyspin.py fixture: every frame's file:line
is checked against the fixture's source (the line is inside the named
function, and a caller's line calls its callee), no mock anywhere.
"""
import ast
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import Fail, Skip, check, run_stoke, run_tests  # noqa: E402

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


if __name__ == "__main__":
    run_tests({"dump_native_merged": dump_native_merged,
               "dump_native_c_extension": dump_native_c_extension,
               "dump_single": dump_single, "dump_threads": dump_threads,
               "dump_not_python": dump_not_python, "dump_bad_pid": dump_bad_pid})
