#!/usr/bin/env python3
"""stoke top -p PID, the live view (issue #18), driven in a real terminal
(tmux: send-keys, capture-pane) against the split fixture, whose two leaves
share its CPU time 70:30 by units of work (not by wall time), so the split
holds on a loaded machine too."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from stoketest import (STOKE, Fail, Skip, check, cpu_ticks, fixture, kill, proc_state,
                       run_stoke, run_tests)

PCT_A = 70
# A row of the view: %Own %Total OwnTime TotalTime Function (where)
ROW = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+[\d.]+s\s+[\d.]+s\s+(\S+)")
WINDOW = re.compile(r"^window (\d+)s: ([\d.]+) samples/s, (\d+) samples")
ELAPSED = re.compile(r"^stoke top: pid (\d+).*?\s([\d.]+) s\s")


class Tmux:
    """A private tmux server (its own socket) running one command in a
    200x50 pane; the pane stays after the command exits."""

    def __init__(self, d, cmd):
        if not shutil.which("tmux"):
            raise Skip("tmux is not installed (tools/setup installs it)")
        self.sock = os.path.join(d, "tmux.sock")
        self.exitfile = os.path.join(d, "exit")
        # The exit status goes to a file; the pane then waits (sleep) so
        # its last screen can still be captured. The shell survives Ctrl-C
        # (a trap, which the command does not inherit: SIGINT stays its
        # default there).
        script = "trap true INT; %s; echo $? > %s; sleep 600" % (cmd,
                                                                  shlex.quote(self.exitfile))
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50",
                  "sh", "-c", script)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock] + list(args), capture_output=True,
                              text=True, timeout=20, check=True).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p")

    def keys(self, *keys):
        self.tmux("send-keys", *keys)

    def exit_status(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(self.exitfile) as f:
                    s = f.read().strip()
                if s:
                    return int(s)
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        raise Fail("stoke top did not exit within %d s; screen:\n%s" % (timeout, self.screen()))

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=20)


def parse_view(text):
    """(window samples, elapsed s, {function: (own%, total%)}) of one screen
    or one plain table, or None when it has no header yet."""
    lines = text.splitlines()
    win = el = None
    rows = {}
    for line in lines:
        m = ELAPSED.match(line)
        if m:
            el = float(m.group(2))
        m = WINDOW.match(line)
        if m:
            win = int(m.group(3))
        m = ROW.match(line)
        if m:
            rows[m.group(3)] = (float(m.group(1)), float(m.group(2)))
    if win is None or el is None:
        return None
    return win, el, rows


def wait_for_view(tm, min_samples, min_elapsed, timeout=90):
    """Capture the pane until the window holds min_samples samples and the
    view has run min_elapsed seconds (several refreshes)."""
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        last = tm.screen()
        v = parse_view(last)
        if v and v[0] >= min_samples and v[1] >= min_elapsed and "leaf_a" in v[2]:
            return v, last
        time.sleep(0.5)
    raise Fail("the view never held %d samples after %.0f s; screen:\n%s" %
               (min_samples, min_elapsed, last))


def check_split(rows, screen):
    check("leaf_a" in rows and "leaf_b" in rows,
          "leaf_a and leaf_b are not both in the view:\n%s" % screen)
    a, b = rows["leaf_a"][0], rows["leaf_b"][0]
    check(a + b > 50, "the leaves hold only %.1f%% of the window:\n%s" % (a + b, screen))
    share = 100.0 * a / (a + b)
    check(abs(share - PCT_A) <= 5,
          "leaf_a has %.1f%% of the leaves' samples, want %d +- 5:\n%s" % (share, PCT_A, screen))
    # Own time is the leaf's; total includes it (and callers hold it all).
    check(rows["leaf_a"][1] >= a and rows["work_round"][1] >= a + b - 0.2,
          "total shares do not contain own shares:\n%s" % screen)
    return share


def start_split(seconds=0):
    p = subprocess.Popen([fixture("split"), str(seconds), str(PCT_A)],
                         stdout=subprocess.DEVNULL)
    time.sleep(0.2)
    check(p.poll() is None, "split fixture died at start")
    return p


def top_cmd(pid, *extra):
    return " ".join(shlex.quote(a) for a in [STOKE, "top", "-p", str(pid), "-w", "8"] +
                    list(extra))


def still_running(p):
    """The target keeps running after stoke top leaves: alive, not stopped,
    and burning CPU."""
    state, tracer = proc_state(p.pid)
    check(p.poll() is None and state is not None, "the target died with stoke top")
    check(state not in "tT" and tracer == 0, "the target is left stopped (%s)" % state)
    t0 = cpu_ticks(p.pid)
    time.sleep(1.0)
    check(cpu_ticks(p.pid) > t0, "the target does not run after stoke top quit")


def test_live_split_and_quit(d):
    """The leaves appear with their known split over the window, q quits
    with status 0, and the target keeps running."""
    p = start_split()
    tm = Tmux(d, top_cmd(p.pid))
    try:
        (win, el, rows), screen = wait_for_view(tm, 300, 3.5)
        share = check_split(rows, screen)
        tm.keys("q")
        code = tm.exit_status(20)
        check(code == 0, "q: stoke top exited %d:\n%s" % (code, tm.screen()))
        still_running(p)
        print("leaf_a %.1f%% of the leaves over %d samples after %.1f s" % (share, win, el))
    finally:
        tm.close()
        kill(p)


def test_live_output(d):
    """-o writes the whole profile so far on exit (here Ctrl-C's),
    atomically, in the format of its extension: a loadable profile with the
    same split."""
    out = os.path.join(d, "live.pb.gz")
    p = start_split()
    tm = Tmux(d, top_cmd(p.pid, "-o", out))
    try:
        wait_for_view(tm, 200, 2.5)
        check(not os.path.exists(out), "-o was written before the view ended")
        tm.keys("C-c")
        code = tm.exit_status(60)
        check(code == 0, "Ctrl-C with -o: stoke top exited %d:\n%s" % (code, tm.screen()))
        still_running(p)
    finally:
        tm.close()
        kill(p)
    r = run_stoke(["top", out, "-n", "30"])
    check(r.returncode == 0, "stoke top cannot read -o's profile: %s" % r.stderr)
    self_n = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*\d+\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\S+)", line)
        if m:
            self_n[m.group(4)] = int(m.group(3))
    a, b = self_n.get("leaf_a", 0), self_n.get("leaf_b", 0)
    check(a + b >= 100, "-o's profile has %d leaf samples:\n%s" % (a + b, r.stdout))
    share = 100.0 * a / (a + b)
    check(abs(share - PCT_A) <= 5, "-o's profile: leaf_a %.1f%%, want %d +- 5" % (share, PCT_A))
    # Its header counts the samples and the lost ones: stoke top said the same.
    check(re.search(r"^samples \d+ .* lost \d+", r.stdout, re.M),
          "no header in stoke top of -o's profile:\n%s" % r.stdout)
    left = [f for f in os.listdir(d) if f.startswith("live.pb.gz") and f != "live.pb.gz"]
    check(not left, "temporary files left beside -o: %s" % left)


def test_live_target_exits(d):
    """A target that exits mid-view ends the view with a clear message and
    status 0."""
    p = start_split(4)
    tm = Tmux(d, top_cmd(p.pid))
    try:
        wait_for_view(tm, 1, 1.5, timeout=30)
        code = tm.exit_status(60)
        screen = tm.screen()
        check(code == 0, "target exit: stoke top exited %d:\n%s" % (code, screen))
        check(re.search(r"stoke top: the target exited after [\d.]+ s \(\d+ samples, \d+ lost\)",
                        screen), "no exit message on the screen:\n%s" % screen)
        check("%Own" not in screen, "the view's screen was not left:\n%s" % screen)
    finally:
        tm.close()
        kill(p)


def test_live_plain_table(d):
    """Without a terminal, a plain table every second (for logs and tests),
    ending at -d."""
    p = start_split()
    try:
        r = run_stoke(["top", "-p", str(p.pid), "-w", "5", "-d", "4"], timeout=60)
        check(r.returncode == 0, "stoke top -d 4 exited %d: %s" % (r.returncode, r.stderr))
        check("\033" not in r.stdout, "escape sequences in the plain table")
        tables = [t for t in r.stdout.split("\n\n") if t.strip()]
        check(len(tables) >= 2, "%d tables in 4 s:\n%s" % (len(tables), r.stdout))
        v = parse_view(tables[-1])
        check(v is not None and v[0] > 0 and "leaf_a" in v[2] and "leaf_b" in v[2],
              "the last table has no leaves:\n%s" % tables[-1])
        still_running(p)
    finally:
        kill(p)


def test_live_command(d):
    """stoke top -- CMD runs the command under the view and exits with its
    status when it ends."""
    r = run_stoke(["top", "-w", "5", "--", fixture("split"), "3", str(PCT_A)], timeout=60)
    check(r.returncode == 0, "stoke top -- split exited %d: %s" % (r.returncode, r.stderr))
    check("the target exited" in r.stderr, "no exit message: %r" % r.stderr)
    tables = [t for t in r.stdout.split("\n\n") if t.strip()]
    v = parse_view(tables[-1]) if tables else None
    check(v is not None and "leaf_a" in v[2] and "leaf_b" in v[2],
          "no leaves in the last table:\n%s" % r.stdout)
    r = run_stoke(["top", "--", "sh", "-c", "exit 3"], timeout=60)
    check(r.returncode == 3, "stoke top -- sh -c 'exit 3' exited %d" % r.returncode)


def test_live_python(d):
    """Python frames reach the view through the same naming: a CPython
    process attached by PID shows the fixture's Python leaves (pyspin.py,
    70:30 by work) with their source file, by total share."""
    python = "/usr/bin/python3.11"
    if not os.path.exists(python):
        raise Skip("no %s (tools/setup installs python3.11)" % python)
    src = os.environ.get("STOKE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    p = subprocess.Popen([python, os.path.join(src, "tests", "fixtures", "python", "pyspin.py"),
                          "single"], stdout=subprocess.PIPE, text=True)
    try:
        check(p.stdout.readline().strip() == "ready", "pyspin.py did not start")
        r = run_stoke(["top", "-p", str(p.pid), "-w", "8", "-d", "5", "--by", "total",
                       "-n", "40"], timeout=60)
        check(r.returncode == 0, "stoke top -p python exited %d: %s" % (r.returncode, r.stderr))
        tables = [t for t in r.stdout.split("\n\n") if t.strip()]
        last = tables[-1] if tables else ""
        v = parse_view(last)
        check(v is not None and "leaf_a" in v[2] and "leaf_b" in v[2],
              "no Python leaves in the last table:\n%s" % last)
        check(re.search(r"leaf_a \(pyspin\.py:\d+\)", last), "no pyspin.py location:\n%s" % last)
        a, b = v[2]["leaf_a"][1], v[2]["leaf_b"][1]
        share = 100.0 * a / (a + b)
        check(abs(share - PCT_A) <= 5,
              "leaf_a has %.1f%% of the leaves' total, want %d +- 5:\n%s" % (share, PCT_A, last))
    finally:
        kill(p)


def test_live_slow_loads(d):
    """No sample is lost to the first naming: reading kallsyms and a
    module's DWARF are steps nothing can split, slowed here to 0.5 s each
    (STOKE_TEST_LOAD_DELAY_US, symbolizer.c); if the view took them at its
    first refresh, the DWARF ring (64 samples of the busy fixture) would
    overflow meanwhile. They are taken before the events are enabled."""
    LOST = re.compile(r"lost (\d+) \((\d+) in window\)")
    delay = 0.5
    p = start_split()
    try:
        # -d counts from the start, loads included: kallsyms and each
        # mapped file (more of them in a sanitizer build), then 6 s.
        with open("/proc/%d/maps" % p.pid) as f:
            files = {line.split(None, 5)[5].strip() for line in f
                     if len(line.split(None, 5)) == 6 and "x" in line.split()[1]
                     and line.split(None, 5)[5].startswith("/")}
        seconds = int((len(files) + 1) * delay + 6)
        env = dict(os.environ, STOKE_TEST_LOAD_DELAY_US=str(int(delay * 1e6)))
        r = run_stoke(["top", "-p", str(p.pid), "-F", "999", "-w", "10", "-d", str(seconds)],
                      timeout=120 + seconds, env=env)
        check(r.returncode == 0, "stoke top -d %d exited %d: %s"
              % (seconds, r.returncode, r.stderr))
        tables = [t for t in r.stdout.split("\n\n") if t.strip()]
        check(tables, "no table printed:\n%s" % r.stderr)
        last = tables[-1]
        v = parse_view(last)
        check(v is not None and "leaf_a" in v[2] and "leaf_b" in v[2],
              "the last table has no leaves:\n%s" % last)
        m = LOST.search(last)
        check(m, "no lost count in the last table:\n%s" % last)
        check(v[0] >= 100, "only %d samples in the window:\n%s" % (v[0], last))
        check(int(m.group(1)) == 0, "%s samples lost with slow loads:\n%s\n%s"
              % (m.group(1), last, r.stderr))
        print("%d samples, 0 lost, %d tables, %d mapped files, -d %d"
              % (v[0], len(tables), len(files), seconds))
    finally:
        kill(p)


def test_live_bad_usage(d):
    """Live options without a target, and -f without -o, are refused."""
    for args, what in ((["top", "-w", "5", "x.pb.gz"], "need -p PID"),
                       (["top", "-p", "1", "-f", "pprof"], "give -o FILE"),
                       (["top", "-p", "1", "-o", "-"], "give a file"),
                       (["top", "-p", "1", "-w", "0"], "invalid window")):
        r = run_stoke(args)
        check(r.returncode == 2 and what in r.stderr,
              "%s: exit %d, %r" % (" ".join(args), r.returncode, r.stderr))


if __name__ == "__main__":
    run_tests({
        "live_split_and_quit": test_live_split_and_quit,
        "live_output": test_live_output,
        "live_target_exits": test_live_target_exits,
        "live_plain_table": test_live_plain_table,
        "live_command": test_live_command,
        "live_python": test_live_python,
        "live_slow_loads": test_live_slow_loads,
        "live_bad_usage": test_live_bad_usage,
    })
