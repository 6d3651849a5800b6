#!/usr/bin/env python3
"""Integration tests for spans (include/stoke/span.h, issue #19).

The truth is the fixture's own clock: tests/fixtures/spans writes how many
spans it ran and how long each took (CLOCK_MONOTONIC around the macros), and
the compute span is CPU time in burn(); nothing is a stored profile.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (STOKE, Skip, check, fixture, kill, parse_folded,  # noqa: E402
                       run_stoke, run_tests, spawn)


def uprobe_pmu():
    if not os.path.exists("/sys/bus/event_source/devices/uprobe/type"):
        raise Skip("no uprobe PMU in this kernel")


def record_run(d, name, args, extra=()):
    """Record the spans fixture into a run directory; returns (run.json,
    the fixture's report, the run directory)."""
    report = os.path.join(d, name + ".report.json")
    p = run_stoke(["record", "-q", "--output-dir", d, "--name", name] + list(extra) +
                  ["--", fixture("spans")] + [str(a) for a in args] + [report])
    check(p.returncode == 0, "record exit %d: %s" % (p.returncode, p.stderr))
    runs = glob.glob(os.path.join(d, "*_" + name))
    check(len(runs) == 1, "run directory not found: %r" % os.listdir(d))
    with open(os.path.join(runs[0], "run.json")) as f:
        run = json.load(f)
    with open(report) as f:
        truth = json.load(f)
    return run, truth, runs[0], p


def by_name(run):
    check(run.get("spans") is not None, "run.json has no spans: %r" % run.get("spans"))
    return {s["name"]: s for s in run["spans"]}


def test_fixture(d):
    uprobe_pmu()
    reps = 6
    run, truth, rundir, _ = record_run(d, "spans", [reps, 60, 40])
    spans = by_name(run)
    check(set(spans) == {"request", "compute", "wait"}, "span names: %r" % sorted(spans))
    for name, (count, total_ns) in truth.items():
        s = spans[name]
        print("%-8s count %d (truth %d) total %.1f ms (truth %.1f ms)"
              % (name, s["count"], count, s["total_ns"] / 1e6, total_ns / 1e6))
        check(s["count"] == count == reps, "%s: count %d, the fixture ran %d"
              % (name, s["count"], count))
        check(abs(s["total_ns"] - total_ns) <= 0.05 * total_ns,
              "%s: total %d ns is not within 5%% of the fixture's %d ns"
              % (name, s["total_ns"], total_ns))
        check(s["p50_ns"] <= s["p95_ns"] <= s["max_ns"], "%s: percentiles out of order" % name)
        check(s["mean_ns"] * s["count"] <= s["total_ns"] < (s["mean_ns"] + 1) * s["count"],
              "%s: mean does not match total/count" % name)
    # Nesting: compute and wait run inside request, nothing is outside.
    check(spans["compute"]["parent"] == "request" and spans["wait"]["parent"] == "request"
          and spans["request"]["parent"] is None,
          "nesting: %r" % {n: s["parent"] for n, s in spans.items()})
    # Samples taken in burn() (the compute span's CPU time) are tagged with
    # compute, the innermost span, not with request.
    stacks = parse_folded(os.path.join(rundir, "profile.folded"))
    in_burn = sum(c for fr, c in stacks if "burn" in fr)
    print("samples in burn %d, tagged compute %d, request %d"
          % (in_burn, spans["compute"]["samples"], spans["request"]["samples"]))
    check(in_burn > 50, "too few samples in burn: %d" % in_burn)
    check(spans["compute"]["samples"] >= 0.95 * in_burn,
          "only %d of %d samples in burn are attributed to compute"
          % (spans["compute"]["samples"], in_burn))
    check(spans["compute"]["samples"] <= sum(c for _, c in stacks), "more tagged than taken")
    # speedscope: a profile of its own per span ("span: compute").
    ss = json.load(open(os.path.join(rundir, "profile.speedscope.json")))
    prof = {p["name"]: p for p in ss["profiles"]}
    check("span: compute" in prof, "no speedscope profile for compute: %r" % sorted(prof))
    n = sum(prof["span: compute"]["weights"]) / run["period_ns"]
    check(abs(n - spans["compute"]["samples"]) <= 1,
          "speedscope's compute profile holds %.1f samples, run.json %d"
          % (n, spans["compute"]["samples"]))
    txt = open(os.path.join(rundir, "profile.txt")).read()
    check("\nspans:\n" in txt and "compute" in txt.split("\nspans:\n")[1],
          "no spans table in the text output")


def test_no_probes(d):
    """A program without span probes records exactly as before: no spans,
    nothing said about them."""
    out = os.path.join(d, "run")
    p = run_stoke(["record", "--output-dir", out, "--name", "split", "--",
                   fixture("split"), "1", "50"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    check("span" not in p.stderr.lower(), "spans mentioned: %r" % p.stderr)
    run = json.load(open(glob.glob(os.path.join(out, "*_split", "run.json"))[0]))
    check(run["spans"] is None, "spans of a program without probes: %r" % run["spans"])


def test_no_spans_flag(d):
    uprobe_pmu()
    run, truth, _, _ = record_run(d, "nospans", [2, 20, 10], ["--no-spans"])
    check(run["spans"] is None, "--no-spans recorded spans: %r" % run["spans"])
    check(truth["compute"][0] == 2, "the fixture did not run: %r" % truth)


def test_diff_by_span(d):
    """The slower variant spends 4x the CPU time in compute and sleeps as
    long: compute is named, wait is not (bounds hold on a loaded machine,
    where wall time per CPU ms varies between runs)."""
    uprobe_pmu()
    _, _, base, _ = record_run(d, "base", [4, 30, 30])
    _, _, slow, _ = record_run(d, "slow", [4, 120, 30])
    p = run_stoke(["diff", "--by-span", base, slow])
    print(p.stdout)
    check(p.returncode == 0, "diff --by-span without a gate: exit %d: %s"
          % (p.returncode, p.stderr))
    rows = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.split()}
    check("compute" in rows and "wait" in rows, "spans missing: %r" % p.stdout)
    pct = float(rows["compute"].split()[-1].rstrip("%"))
    wait = float(rows["wait"].split()[-1].rstrip("%"))
    check(pct > 100, "compute changed %+.1f%%, expected about +300%%" % pct)
    check(abs(wait) < 90, "wait changed %+.1f%%, expected about 0" % wait)
    p = run_stoke(["diff", "--by-span", "--max-regression", "100", base, slow])
    check(p.returncode == 3, "a 4x slower span passed --max-regression 100 (exit %d)"
          % p.returncode)
    check("span compute regressed" in p.stderr, "the slower span is not named: %r" % p.stderr)
    check("span wait" not in p.stderr, "wait named as a regression: %r" % p.stderr)
    p = run_stoke(["diff", "--by-span", "--max-regression", "100000", base, slow])
    check(p.returncode == 0, "under the threshold, exit %d: %s" % (p.returncode, p.stderr))


def test_suite(d):
    """suite aggregates each span over its repetitions (suite.json)."""
    uprobe_pmu()
    reps, per = 3, 4
    p = run_stoke(["suite", "-q", "--repeat", str(reps), "--output-dir", d, "--name", "sp",
                   "--", fixture("spans"), str(per), "20", "10"])
    check(p.returncode == 0, "suite exit %d: %s" % (p.returncode, p.stderr))
    suite = json.load(open(os.path.join(d, "sp", "suite.json")))
    check(suite["spans"] is not None, "suite.json has no spans")
    spans = {s["name"]: s for s in suite["spans"]}
    check(set(spans) == {"request", "compute", "wait"}, "span names: %r" % sorted(spans))
    for name, s in spans.items():
        print(name, s["count"], s["mean_ns"])
        check(s["repetitions"] == reps and s["count"] == reps * per,
              "%s: %d repetitions, count %d (want %d, %d)"
              % (name, s["repetitions"], s["count"], reps, reps * per))
        m = s["mean_ns"]
        check(0 < m["min"] <= m["median"] <= m["p95"], "%s: mean_ns spread %r" % (name, m))
        check(abs(s["total_ns"]["mean"] - per * m["mean"]) <= 0.01 * s["total_ns"]["mean"],
              "%s: total and mean disagree" % name)


def test_attach(d):
    """stoke record -p (stoked's sessions attach the same way): the probes
    of a running program are found through its maps and enabled."""
    uprobe_pmu()
    proc = spawn([fixture("spans"), "1000", "20", "10"])
    try:
        time.sleep(0.3)  # let it exec; spans before the attach are not expected
        out = os.path.join(d, "att")
        p = run_stoke(["record", "-q", "-p", str(proc.pid), "-d", "2", "--output-dir", out,
                       "--name", "att"])
        check(p.returncode == 0, "record -p exit %d: %s" % (p.returncode, p.stderr))
        check(proc.poll() is None, "the target did not keep running")
    finally:
        kill(proc)
    run = json.load(open(glob.glob(os.path.join(out, "*_att", "run.json"))[0]))
    spans = by_name(run)
    print({n: (s["count"], s["samples"]) for n, s in spans.items()})
    # 2 s of ~30+ ms requests (more on a loaded machine): several of each.
    for name in ("request", "compute", "wait"):
        check(name in spans and spans[name]["count"] >= 3, "%s: %r" % (name, spans.get(name)))
    check(spans["compute"]["parent"] == "request", "nesting: %r" % spans["compute"])
    check(spans["compute"]["samples"] > 0.8 * run["samples"],
          "compute holds %d of %d samples" % (spans["compute"]["samples"], run["samples"]))


def semaphore_reader(pid, exe):
    """A function that reads process pid's stoke_span_begin_semaphore (the
    count of tracers the kernel keeps in it), found by nm in exe and placed
    at exe's load address from /proc/PID/maps."""
    p = subprocess.run(["nm", exe], capture_output=True, text=True)
    addr = [int(ln.split()[0], 16) for ln in p.stdout.splitlines()
            if ln.endswith(" stoke_span_begin_semaphore")]
    check(p.returncode == 0 and len(addr) == 1, "no semaphore symbol in %s: %s"
          % (exe, p.stderr))
    with open(exe, "rb") as f:
        pie = int.from_bytes(f.read(18)[16:18], "little") == 3  # ET_DYN
    real = os.path.realpath(exe)
    base = None
    with open("/proc/%d/maps" % pid) as f:
        for ln in f:
            parts = ln.split()
            if len(parts) >= 6 and parts[5] == real and int(parts[2], 16) == 0:
                base = int(parts[0].split("-")[0], 16)
                break
    check(base is not None, "pid %d does not map %s" % (pid, real))
    where = (base if pie else 0) + addr[0]

    def read():
        with open("/proc/%d/mem" % pid, "rb") as m:
            m.seek(where)
            return int.from_bytes(m.read(2), "little")
    return read


def wait_exec(pid, exe, alive, timeout=10):
    """Until process pid has exec'd exe (its maps name it)."""
    real, end = os.path.realpath(exe), time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if real in open("/proc/%d/maps" % pid).read():
                return
        except OSError:
            pass
        check(alive(), "pid %d exited before its exec" % pid)
        time.sleep(0.01)
    check(False, "pid %d did not exec %s in %d s" % (pid, exe, timeout))


def test_others_untouched(d):
    """The span probes are the targets' only (per-task uprobe events): a
    second process of the same fixture binary, not profiled, keeps its
    semaphore at 0 (its probes stay a nop) while the first is recorded,
    attached (-p) and launched; the recorded one's is up, which shows the
    reading works."""
    uprobe_pmu()
    exe = fixture("spans")
    other = spawn([exe, "100000", "5", "5"])
    procs = [other]
    try:
        wait_exec(other.pid, exe, lambda: other.poll() is None)
        sem_other = semaphore_reader(other.pid, exe)
        check(sem_other() == 0, "the semaphore is up before any recording")
        target = spawn([exe, "100000", "5", "5"])
        procs.append(target)
        wait_exec(target.pid, exe, lambda: target.poll() is None)
        out = os.path.join(d, "att")
        modes = {
            "attach": [STOKE, "record", "-q", "-p", str(target.pid), "-d", "3",
                       "--output-dir", out, "--name", "att"],
            "launch": [STOKE, "record", "-q", "--output-dir", out, "--name", "launch", "--",
                       exe, "60", "20", "10"],
        }
        for mode, cmd in modes.items():
            rec = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
            procs.append(rec)
            if mode == "attach":
                sem_target = semaphore_reader(target.pid, exe)
            else:
                # the launched command: stoke's child
                end = time.monotonic() + 10
                child = None
                while child is None and time.monotonic() < end and rec.poll() is None:
                    for t in os.listdir("/proc/%d/task" % rec.pid):
                        kids = open("/proc/%d/task/%s/children" % (rec.pid, t)).read().split()
                        child = int(kids[0]) if kids else child
                    time.sleep(0.01)
                check(child is not None, "no launched child of stoke")
                wait_exec(child, exe, lambda: rec.poll() is None)
                sem_target = semaphore_reader(child, exe)
            # Until the recording has enabled the probes (the target's
            # semaphore is up), then the other's is read while it stays up.
            end, up, reads = time.monotonic() + 15, 0, []
            while time.monotonic() < end and rec.poll() is None:
                try:
                    st = sem_target()
                except OSError:
                    break
                if st:
                    up += 1
                    reads.append(sem_other())
                    if up >= 20:
                        break
                time.sleep(0.02)
            print("%s: target's semaphore up in %d reads; the other's: max %d"
                  % (mode, up, max(reads or [0])))
            check(up > 0, "%s: the recorded process's semaphore was never up" % mode)
            check(max(reads) == 0, "%s: the unprofiled process's semaphore went up to %d "
                  "while another process was recorded" % (mode, max(reads)))
            _, err = rec.communicate(timeout=60)
            check(rec.returncode == 0, "%s: record exit %d: %s" % (mode, rec.returncode, err))
            check(sem_other() == 0, "%s: the other's semaphore is up after the recording"
                  % mode)
        check(target.poll() is None and other.poll() is None, "a fixture exited early")
        check(semaphore_reader(target.pid, exe)() == 0,
              "the attached process's semaphore is still up after the recording")
    finally:
        for p in procs:
            kill(p)
    for name, least in (("att", 3), ("launch", 60)):
        run = json.load(open(glob.glob(os.path.join(out, "*_" + name, "run.json"))[0]))
        spans = by_name(run)
        print(name, {n: (s["count"], s["samples"]) for n, s in spans.items()})
        for sname in ("request", "compute", "wait"):
            check(sname in spans and spans[sname]["count"] >= least,
                  "%s: %s: %r" % (name, sname, spans.get(sname)))
        if name == "launch":
            check(all(s["count"] == 60 for s in spans.values()), "launch counts: %r"
                  % {n: s["count"] for n, s in spans.items()})


def test_top_span(d):
    """stoke top --span NAME reads a stored profile's span labels and keeps
    only that span's samples; stoke report keeps the labels."""
    uprobe_pmu()
    _, _, rundir, _ = record_run(d, "top", [4, 50, 40])
    p = run_stoke(["top", "--span", "compute", rundir])
    check(p.returncode == 0, "top --span exit %d: %s" % (p.returncode, p.stderr))
    rows = [ln.split() for ln in p.stdout.splitlines() if ln.strip()[:1].isdigit()]
    print(p.stdout)
    check(rows and rows[0][4] == "burn" and float(rows[0][1].rstrip("%")) >= 80,
          "compute's top function is not burn: %r" % rows[:3])
    # (wait sleeps, but a sample may still land in its syscall: not used)
    p = run_stoke(["top", "--span", "nosuch", rundir])
    check(p.returncode == 1 and "no sample taken in span 'nosuch'" in p.stderr,
          "a span without samples: exit %d, %r" % (p.returncode, p.stderr))
    # The labels survive stoke report (pprof → model → pprof).
    out = os.path.join(d, "again.pb.gz")
    p = run_stoke(["report", os.path.join(rundir, "profile.pb.gz"), "-o", out])
    check(p.returncode == 0, "report: %s" % p.stderr)
    p = run_stoke(["top", "--span", "compute", out])
    check(p.returncode == 0 and "burn" in p.stdout, "labels lost by report: %s" % p.stderr)


def test_stoked(d):
    """A stoked session (the daemon's attach): its run directory has the
    spans of the target, which ran with them from before the attach."""
    uprobe_pmu()
    from test_daemon import Daemon, wait_ended  # noqa: E402 (the daemon's harness)
    daemon = Daemon(d).start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    proc = spawn([fixture("spans"), "40", "20", "10"])
    try:
        sid = int(daemon.ok(["attach", str(proc.pid), "-o", out]).strip())
        proc.wait(timeout=60)
        info = wait_ended(daemon, sid, timeout=60)
        check(info["last_run"], "no run directory written when the target exited")
    finally:
        kill(proc)
        daemon.stop()
    run = json.load(open(os.path.join(out, info["last_run"], "run.json")))
    spans = by_name(run)
    print({n: (s["count"], s["samples"]) for n, s in spans.items()})
    for name in ("request", "compute", "wait"):
        check(name in spans and 3 <= spans[name]["count"] <= 40,
              "%s: %r" % (name, spans.get(name)))
    check(spans["compute"]["parent"] == "request", "nesting: %r" % spans["compute"])
    check(spans["compute"]["samples"] > 0.8 * run["samples"],
          "compute holds %d of %d samples" % (spans["compute"]["samples"], run["samples"]))


def test_cxx(d):
    """The C++ fixture: scoped spans in a member function and a lambda,
    names built at run time (std::string), each counted exactly."""
    uprobe_pmu()
    out = os.path.join(d, "run")
    p = run_stoke(["record", "-q", "--output-dir", out, "--name", "cxx", "--",
                   fixture("spans-cxx"), "6"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    run = json.load(open(glob.glob(os.path.join(out, "*_cxx", "run.json"))[0]))
    spans = by_name(run)
    print({n: (s["count"], s["parent"]) for n, s in spans.items()})
    check(spans.get("cxx.spin", {}).get("count") == 6, "cxx.spin: %r" % spans.get("cxx.spin"))
    for r in ("cxx.round.0", "cxx.round.1"):
        check(spans.get(r, {}).get("count") == 3, "%s: %r" % (r, spans.get(r)))
    check(spans["cxx.spin"]["parent"] in ("cxx.round.0", "cxx.round.1"),
          "nesting: %r" % spans["cxx.spin"])


def test_pprof_label(d):
    """The pprof has a "span" label on each sample taken in a span, the
    innermost one (read by go tool pprof, as users would)."""
    uprobe_pmu()
    go = shutil.which("go")
    check(go is not None, "go (tools/setup installs it) not found: pprof labels unchecked")
    _, _, rundir, _ = record_run(d, "label", [4, 60, 20])
    stacks = parse_folded(os.path.join(rundir, "profile.folded"))
    in_burn = sum(c for fr, c in stacks if "burn" in fr)
    p = subprocess.run([go, "tool", "pprof", "-sample_index=0", "-tags",
                        os.path.join(rundir, "profile.pb.gz")],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "go tool pprof failed: %s" % p.stderr)
    print(p.stdout)
    section = p.stdout.split(" span:")[1].split("\n\n")[0] if " span:" in p.stdout else ""
    tagged = {}
    for ln in section.splitlines()[1:]:
        if "):" in ln:
            tagged[ln.split("):")[1].strip()] = float(ln.split()[0])
    check(tagged.get("compute", 0) >= 0.95 * in_burn,
          "span=compute labels %r, samples in burn %d" % (tagged, in_burn))
    check("request" not in tagged or tagged["request"] < 0.05 * in_burn,
          "samples labelled with the outer span: %r" % tagged)


PY_TARGET = r"""
import json, os, sys, time
sys.path.insert(0, os.path.join(os.environ["STOKE_SOURCE_ROOT"], "contrib", "python"))
import stoke_span

traced_wanted = sys.argv[1] == "traced"
# The library's probes are enabled once stoke has read its mapping: wait
# for the semaphore (the kernel raises it then), not for a fixed time.
deadline = time.monotonic() + 20
while traced_wanted and not stoke_span.traced() and time.monotonic() < deadline:
    time.sleep(0.01)
assert stoke_span.available(), "libstoke-span.so not found"
# traced() turns true with the begin probe's first event (one per CPU,
# opened in turn, microseconds apart): let the others be opened.
if traced_wanted:
    time.sleep(0.2)
assert stoke_span.traced() == traced_wanted, "traced() is %r" % stoke_span.traced()
clock = {"py_compute": [0, 0], "py_sleep": [0, 0]}

def burn(cpu_s):
    end = time.thread_time() + cpu_s
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i * i
    return x

@stoke_span.span("py_sleep", kind="decorated")
def nap():
    time.sleep(0.03)

for i in range(5):
    t0 = time.monotonic_ns()
    with stoke_span.span("py_compute", i=i, user="alice"):
        burn(0.04)
    clock["py_compute"][0] += 1
    clock["py_compute"][1] += time.monotonic_ns() - t0
    t0 = time.monotonic_ns()
    nap()
    clock["py_sleep"][0] += 1
    clock["py_sleep"][1] += time.monotonic_ns() - t0
# The untraced cost, for the README (not asserted): a span per iteration.
n = 200000 if not traced_wanted else 2000
t0 = time.perf_counter()
for i in range(n):
    with stoke_span.span("x"):
        pass
clock["untraced_ns_per_span"] = (time.perf_counter() - t0) / n * 1e9
json.dump(clock, open(sys.argv[2], "w"))
"""


def python311():
    for exe in ("python3.11", sys.executable):
        p = shutil.which(exe) or exe
        if os.path.exists(p) and subprocess.run(
                [p, "-c", "import sys; assert sys.version_info[:2] == (3, 11)"]).returncode == 0:
            return p
    raise Skip("no python3.11")


def py_target(d):
    script = os.path.join(d, "target.py")
    with open(script, "w") as f:
        f.write(PY_TARGET)
    check(os.path.exists(os.environ.get("STOKE_SPAN_LIB", "")),
          "STOKE_SPAN_LIB does not name the built libstoke-span.so")
    return script


def test_python(d):
    """contrib/python/stoke_span.py under real python3.11: a context manager
    and a decorator, counts exact and durations within 5% of its clock."""
    uprobe_pmu()
    script, report = py_target(d), os.path.join(d, "report.json")
    p = run_stoke(["record", "-q", "--no-python", "--output-dir", d, "--name", "py", "--",
                   python311(), script, "traced", report])
    check(p.returncode == 0, "record exit %d: %s" % (p.returncode, p.stderr))
    run = json.load(open(glob.glob(os.path.join(d, "*_py", "run.json"))[0]))
    truth = json.load(open(report))
    spans = by_name(run)
    for name in ("py_compute", "py_sleep"):
        count, total_ns = truth[name]
        s = spans.get(name)
        check(s is not None, "no %s span: %r" % (name, sorted(spans)))
        print("%-10s count %d (truth %d) total %.1f ms (truth %.1f ms)"
              % (name, s["count"], count, s["total_ns"] / 1e6, total_ns / 1e6))
        check(s["count"] == count == 5, "%s: count %d, the script ran %d"
              % (name, s["count"], count))
        check(abs(s["total_ns"] - total_ns) <= 0.05 * total_ns,
              "%s: total %d ns is not within 5%% of the script's %d ns"
              % (name, s["total_ns"], total_ns))
    print("untraced span: %.0f ns" % truth["untraced_ns_per_span"])


def test_python_untraced(d):
    """Without stoke, the helper is inert: traced() is false and the spans
    run the code they wrap."""
    script, report = py_target(d), os.path.join(d, "report.json")
    p = subprocess.run([python311(), script, "untraced", report], capture_output=True,
                       text=True, timeout=60)
    check(p.returncode == 0, "script failed: %s" % p.stderr)
    truth = json.load(open(report))
    check(truth["py_compute"][0] == 5 and truth["py_sleep"][0] == 5, "%r" % truth)
    print("untraced span: %.0f ns" % truth["untraced_ns_per_span"])


TESTS = {
    "pprof_label": test_pprof_label,
    "top_span": test_top_span,
    "attach": test_attach,
    "cxx": test_cxx,
    "stoked": test_stoked,
    "suite": test_suite,
    "python": test_python,
    "python_untraced": test_python_untraced,
    "fixture": test_fixture,
    "no_probes": test_no_probes,
    "no_spans_flag": test_no_spans_flag,
    "diff_by_span": test_diff_by_span,
    "others_untouched": test_others_untouched,
}

if __name__ == "__main__":
    run_tests(TESTS)
