#!/usr/bin/env python3
"""Integration tests for `stoke record` on the fixture programs.

The truth each test checks against comes from the fixture's arguments (the
split between leaf_a and leaf_b), never from a stored profile.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (STOKE, check, contains_in_order, cpu_ticks, fixture, has_chain,  # noqa: E402
                       kill, leaf_count, parse_folded, proc_state, run_stoke,
                       run_tests, spawn, tids, total)

TOLERANCE = 5.0  # percentage points


def assert_split(stacks, pct_a, chain_prefix):
    n = total(stacks)
    check(n > 0, "no samples")
    a = leaf_count(stacks, "leaf_a")
    b = leaf_count(stacks, "leaf_b")
    share_a = 100.0 * a / n
    share_b = 100.0 * b / n
    print("samples=%d leaf_a=%.1f%% (truth %d%%) leaf_b=%.1f%% (truth %d%%)"
          % (n, share_a, pct_a, share_b, 100 - pct_a))
    check(abs(share_a - pct_a) <= TOLERANCE,
          "leaf_a share %.1f%% is not within %.0f points of %d%%" % (share_a, TOLERANCE, pct_a))
    check(abs(share_b - (100 - pct_a)) <= TOLERANCE,
          "leaf_b share %.1f%% is not within %.0f points of %d%%"
          % (share_b, TOLERANCE, 100 - pct_a))
    # Full stacks: every leaf sample must show the whole chain ending at it.
    for leaf in ("leaf_a", "leaf_b"):
        leaf_stacks = [(fr, c) for fr, c in stacks if fr[-1] == leaf]
        full = sum(c for fr, c in leaf_stacks if has_chain(fr, chain_prefix + [leaf]))
        got = sum(c for _, c in leaf_stacks)
        check(got == 0 or full >= 0.95 * got,
              "%s: only %d of %d samples have the full chain %s"
              % (leaf, full, got, "→".join(chain_prefix + [leaf])))


def test_launch_split(d):
    out = os.path.join(d, "out.folded")
    p = run_stoke(["record", "-F", "999", "-o", out, "--", fixture("split"), "3", "75"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    check("samples" in p.stderr and out in p.stderr, "no summary line: %r" % p.stderr)
    stacks = parse_folded(out)
    # The machine is shared: assert a floor far below the nominal 3000, not a rate
    # (an ASan build at load 27 got 619).
    check(total(stacks) > 300, "too few samples for 3 s at 999 Hz: %d" % total(stacks))
    assert_split(stacks, 75, ["main", "run", "work_round"])


def test_launch_other_ratio(d):
    out = os.path.join(d, "out.folded")
    p = run_stoke(["record", "-F", "499", "-o", out, "--", fixture("split"), "2", "30"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    assert_split(parse_folded(out), 30, ["main", "run", "work_round"])


def test_exit_status(d):
    out = os.path.join(d, "out.folded")
    p = run_stoke(["record", "-q", "-o", out, "--", "sh", "-c", "exit 7"])
    check(p.returncode == 7, "stoke exited %d, the command 7" % p.returncode)
    check(os.path.exists(out), "no output written")
    p = run_stoke(["record", "-q", "-o", out, "--", "sh", "-c", "kill -TERM $$"])
    check(p.returncode == 128 + signal.SIGTERM, "killed command: stoke exited %d" % p.returncode)


def test_multithreaded(d):
    out = os.path.join(d, "out.folded")
    p = run_stoke(["record", "--per-thread", "-o", out, "--",
                   fixture("split-mt"), "2", "3", "75"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    stacks = parse_folded(out)
    # Per-thread roots are comm-PID/TID; drop them for the shares.
    by_thread = {}
    for fr, c in stacks:
        by_thread[fr[0]] = by_thread.get(fr[0], 0) + c
    workers = {t: c for t, c in by_thread.items() if c > 100}
    check(len(workers) >= 2, "expected 2 busy threads, got %r" % by_thread)
    stripped = [(fr[1:], c) for fr, c in stacks]
    check(all(fr[0].startswith("split-mt-") for fr, _ in stacks),
          "per-thread root is not comm-PID/TID: %r" % stacks[0][0][0])
    assert_split(stripped, 75, ["thread_main", "work_round"])


def test_attach_pid(d):
    out = os.path.join(d, "out.folded")
    target = spawn([fixture("split"), "0", "60"])
    try:
        time.sleep(0.3)
        p = run_stoke(["record", "-p", str(target.pid), "-d", "2", "-o", out])
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
        stacks = parse_folded(out)
        check(total(stacks) > 500, "too few samples for 2 s: %d" % total(stacks))
        assert_split(stacks, 60, ["main", "run", "work_round"])
        # After detach the target runs on, unchanged: not stopped, not
        # traced, and still consuming CPU.
        check(target.poll() is None, "target died after detach")
        state, tracer = proc_state(target.pid)
        check(state in ("R", "S"), "target state after detach: %s" % state)
        check(tracer == 0, "target is still traced by %d" % tracer)
        t0 = cpu_ticks(target.pid)
        time.sleep(0.5)
        check(cpu_ticks(target.pid) > t0, "target stopped making progress after detach")
    finally:
        kill(target)


def test_threads_born_later(d):
    out = os.path.join(d, "out.folded")
    target = spawn([fixture("spawner"), "0"])
    try:
        time.sleep(0.3)
        before = tids(target.pid)
        p = run_stoke(["record", "-p", str(target.pid), "-d", "2", "--per-thread", "-o", out])
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
        stacks = parse_folded(out)
        born = set()
        for fr, c in stacks:
            if any(f == "born_worker" for f in fr):
                born.add(int(fr[0].rsplit("/", 1)[1]))
        check(all(fr[0].startswith("spawner-%d/" % target.pid) for fr, _ in stacks),
              "thread roots are not named from /proc comm: %r" % stacks[0][0][0])
        new = born - before
        print("threads at attach: %d; sampled in born_worker: %d, of them new: %d"
              % (len(before), len(born), len(new)))
        # One thread every 25 ms for 2 s: dozens are born after the attach.
        check(len(new) >= 10, "only %d threads born after attach were sampled" % len(new))
    finally:
        kill(target)


def test_target_exit_ends_recording(d):
    out = os.path.join(d, "out.folded")
    target = spawn([fixture("split"), "1.5"])
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        p = run_stoke(["record", "-p", str(target.pid), "-d", "60", "-o", out], timeout=30)
        elapsed = time.monotonic() - t0
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
        check(elapsed < 10, "recording went on %.1f s after the target exited" % elapsed)
        check(total(parse_folded(out)) > 100, "no samples written after the target exited")
    finally:
        kill(target)


def test_sigint_writes_output(d):
    out = os.path.join(d, "out.folded")
    p = subprocess.Popen([os.environ["STOKE"], "record", "-o", out, "--",
                          fixture("split"), "60"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    # The command got the SIGINT too, and stoke exits with its status.
    check(p.returncode == 128 + signal.SIGINT, "exit %d: %s" % (p.returncode, err))
    stacks = parse_folded(out)
    check(total(stacks) > 200, "only %d samples written on SIGINT" % total(stacks))


def test_sigterm_attach_writes_output(d):
    out = os.path.join(d, "out.folded")
    target = spawn([fixture("split"), "0"])
    try:
        time.sleep(0.2)
        p = subprocess.Popen([os.environ["STOKE"], "record", "-p", str(target.pid), "-o", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=15)
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, err))
        check(total(parse_folded(out)) > 200, "no samples written on SIGTERM")
        check(target.poll() is None, "SIGTERM to stoke killed the attached target")
    finally:
        kill(target)


def test_cycles_fallback(d):
    out = os.path.join(d, "out.folded")
    p = run_stoke(["record", "-e", "cycles", "-o", out, "--", fixture("split"), "0.5"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    if "cpu-clock" in p.stderr:
        warn = [l for l in p.stderr.splitlines() if "cpu-clock" in l]
        check(len(warn) == 1, "expected one fallback line: %r" % p.stderr)
    check(total(parse_folded(out)) > 0, "no samples with -e cycles")


def test_lost_samples_reported(d):
    # A one-page ring and a reader that is stopped: the kernel must drop
    # samples, and stoke must count them and say so.
    out = os.path.join(d, "out.folded")
    target = spawn([fixture("split-mt"), "2", "0"])
    try:
        time.sleep(0.2)
        p = subprocess.Popen([os.environ["STOKE"], "record", "-p", str(target.pid), "-m", "1",
                              "-F", "4999", "-d", "3", "-o", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        p.send_signal(signal.SIGSTOP)
        time.sleep(1.0)
        p.send_signal(signal.SIGCONT)
        _, err = p.communicate(timeout=30)
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, err))
        m = re.search(r"(\d+) samples, (\d+) lost", err)
        check(m, "no summary: %r" % err)
        lost = int(m.group(2))
        print("samples %s, lost %d" % (m.group(1), lost))
        check(lost > 100, "a stopped reader on a 1-page ring lost only %d samples" % lost)
        check(re.search(r"warning: \d+ samples lost", err), "no lost-samples warning: %r" % err)
        check(total(parse_folded(out)) > 0, "no samples written")
    finally:
        kill(target)


def test_tty_status_line(d):
    # On a terminal, a live status line shows elapsed time, samples, lost
    # samples and threads.
    import pty
    out = os.path.join(d, "out.folded")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(os.environ["STOKE"], [os.environ["STOKE"], "record", "-o", out, "--",
                                        fixture("split-mt"), "2", "1.2"])
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    text = data.decode("utf-8", "replace")
    check(os.WEXITSTATUS(status) == 0, "exit status %d: %r" % (status, text))
    lines = re.findall(r"\[stoke\] [\d.]+s +(\d+) samples +(\d+) lost +(\d+) threads", text)
    check(len(lines) >= 2, "no live status line on a TTY: %r" % text[:500])
    check(int(lines[-1][0]) > 0 and int(lines[-1][2]) >= 2, "status line never counted: %r" % lines)
    check("samples, 0 lost" in text or re.search(r"\d+ samples, \d+ lost", text), "no summary")


def per_thread_roots(stacks):
    roots = {}
    for fr, c in stacks:
        roots[fr[0]] = roots.get(fr[0], 0) + c
    return roots


def test_pid_list_dedup(d):
    # -p P,P,P samples P once: as many samples as -p P over the same time
    # (each duplicate attach used to count every sample again).
    target = spawn([fixture("split"), "0", "60"])
    counts = {}
    try:
        time.sleep(0.3)
        for name, pids in (("once", str(target.pid)),
                           ("thrice", "%d,%d,%d" % ((target.pid,) * 3))):
            out = os.path.join(d, name + ".folded")
            p = run_stoke(["record", "-F", "200", "-p", pids, "-d", "1", "-o", out])
            check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
            counts[name] = total(parse_folded(out))
    finally:
        kill(target)
    check(0 < counts["thrice"] < 1.6 * counts["once"],
          "-p P,P,P took %(thrice)d samples, -p P %(once)d" % counts)


def perf_event_fds(pid):
    """How many perf_event fds process pid holds now."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[perf_event]":
                n += 1
        except OSError:
            pass
    return n


def online_cpus():
    n = 0
    with open("/sys/devices/system/cpu/online") as f:
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
    return n


def test_tid_means_its_process(d):
    # -p TID samples the thread's process (as perf does, with a warning) and
    # its stacks unwind.
    target = spawn([fixture("split-mt"), "2", "30", "75"])
    try:
        time.sleep(0.5)
        workers = sorted(tids(target.pid) - {target.pid})
        check(len(workers) == 2, "fixture threads: %r" % workers)
        out = os.path.join(d, "p.folded")
        p = run_stoke(["record", "--per-thread", "-p", str(workers[0]), "-d", "1",
                       "-o", out])
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
        check("thread of process %d" % target.pid in p.stderr, "no warning: %r" % p.stderr)
        stacks = parse_folded(out)
        n = total(stacks)
        bad = sum(c for fr, c in stacks if "[unwind-failed]" in fr)
        check(n > 0 and bad <= 0.1 * n, "%d of %d stacks did not unwind" % (bad, n))
        roots = per_thread_roots(stacks)
        busy = [r for r, c in roots.items() if c > 0.2 * n]
        check(len(busy) == 2, "-p TID did not sample the whole process: %r" % roots)
    finally:
        kill(target)


def test_tid_samples_only_its_threads(d):
    # -t TID opens events on that thread alone (perf's per-thread events, no
    # inherit): the samples are its own, and stoke holds one event per CPU
    # for it, not one per CPU for each of the process's 5 threads (sampling
    # the process and filtering the samples would hold 5 times as many).
    target = spawn([fixture("split-mt"), "4", "30", "75"])
    try:
        time.sleep(0.5)
        workers = sorted(tids(target.pid) - {target.pid})
        check(len(workers) == 4, "fixture threads: %r" % workers)
        for listed in ([workers[1]], [workers[0], workers[2]]):
            out = os.path.join(d, "t.folded")
            rec = subprocess.Popen(
                [STOKE, "record", "--sampler", "perf", "--per-thread", "-t",
                 ",".join(map(str, listed)), "-d", "2", "-o", out],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            most = 0
            deadline = time.time() + 1.5
            while time.time() < deadline and rec.poll() is None:
                try:
                    most = max(most, perf_event_fds(rec.pid))
                except OSError:
                    pass
                time.sleep(0.1)
            _, err = rec.communicate(timeout=60)
            check(rec.returncode == 0, "exit %d: %s" % (rec.returncode, err))
            want = len(listed) * online_cpus()
            print("-t %s: %d perf_event fds (one per listed thread and CPU: %d)"
                  % (listed, most, want))
            check(most == want, "-t %s held %d perf_event fds, not %d"
                  % (listed, most, want))
            roots = per_thread_roots(parse_folded(out))
            check(roots and all(int(r.rsplit("/", 1)[1]) in listed for r in roots),
                  "-t %s sampled other threads: %r" % (listed, roots))
            check(len(roots) == len(listed), "-t %s: threads sampled %r" % (listed, roots))
        # A TID that is not a thread (of any process) is an error, not a
        # silent empty profile.
        p = run_stoke(["record", "-t", "%d" % (2**22 + 12345), "-d", "0.2",
                       "-o", os.path.join(d, "x.folded")])
        check(p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1,
              "-t of no thread: %d %r" % (p.returncode, p.stderr))
    finally:
        kill(target)


def test_call_graph_flag_alone(d):
    # -g alone means the default call graph (perf's habit); -g MODE still works.
    for args in (["-g"], ["-g", "fp"], ["--call-graph"], ["--call-graph=fp"]):
        out = os.path.join(d, "out.folded")
        p = run_stoke(["record"] + args + ["-o", out, "--", fixture("split"), "0.3", "50"])
        check(p.returncode == 0, "%r: exit %d: %s" % (args, p.returncode, p.stderr))
        check(total(parse_folded(out)) > 0, "%r: no samples" % args)


def test_empty_profile_warns(d):
    out = os.path.join(d, "out.folded")
    p = run_stoke(["record", "-F", "1", "-e", "task-clock", "-o", out, "--", "sleep", "0.3"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    check(re.search(r"warning: .*empty", p.stderr), "no warning for 0 samples: %r" % p.stderr)


def test_output_names(d):
    # py-spy's habits: -o x.json is speedscope, -f raw is folded, and
    # chrometrace gets a one-line pointer; `stoke help record` is its help.
    out = os.path.join(d, "x.json")
    p = run_stoke(["record", "-q", "-o", out, "--", fixture("split"), "0.2", "50"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    with open(out) as f:
        check("speedscope" in json.load(f).get("$schema", ""), "x.json is not speedscope")
    out = os.path.join(d, "x.txt")
    p = run_stoke(["record", "-q", "-f", "raw", "-o", out, "--", fixture("split"), "0.2", "50"])
    check(p.returncode == 0 and total(parse_folded(out)) > 0, "-f raw: %r" % p.stderr)
    p = run_stoke(["record", "-f", "chrometrace", "--", "true"])
    check(p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and
          "speedscope" in p.stderr, "chrometrace: %d %r" % (p.returncode, p.stderr))
    p = run_stoke(["help", "record"])
    check(p.returncode == 0 and p.stdout.startswith("usage: stoke record"),
          "stoke help record: %d %r" % (p.returncode, p.stdout[:80]))


def test_svg_title_is_command(d):
    out = os.path.join(d, "x.svg")
    p = run_stoke(["record", "-q", "-o", out, "--", fixture("split"), "0.2", "50"])
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    with open(out) as f:
        m = re.search(r'<text id="title"[^>]*>([^<]*)</text>', f.read())
    check(m and "split 0.2 50" in m.group(1), "SVG title: %r" % (m and m.group(1)))


TESTS = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    run_tests(TESTS)
