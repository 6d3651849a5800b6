#!/usr/bin/env python3
"""Integration tests for stoked and the stoke client commands.

Each test starts its own stoked on a temporary socket (mode 0666 in a
world-traversable directory, so that uid 65534 can connect too) and drives
it with the real `stoke attach/list/...` binary or, for malformed input, a
raw socket. Profiles are checked against the split the fixture was told to
do, never against stored output.
"""
import array
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (STOKE, check, fixture, kill, leaf_count,  # noqa: E402
                       parse_folded, proc_state, run_tests, total)

STOKED = os.environ.get("STOKED", os.path.join(os.path.dirname(STOKE), "..", "daemon",
                                               "stoked"))
NOBODY = 65534
TOLERANCE = 7.0  # percentage points, for the shorter windows a daemon writes
RUN_FILES = ("run.json", "profile.folded", "profile.pb.gz")


class Daemon:
    def __init__(self, d, *extra):
        self.dir = d
        self.sock = os.path.join(d, "stoked.sock")
        self.log = os.path.join(d, "stoked.log")
        self.args = [STOKED, "--foreground", "--socket", self.sock, "--socket-mode", "0666"]
        self.args += list(extra)
        self.proc = None

    def start(self, env=None):
        # Under ASan, freed memory sits in a quarantine, which would read as
        # RSS growth; leaks still fail the exit status (LeakSanitizer).
        env = dict(env if env is not None else os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=self.logf, env=env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            check(self.proc.poll() is None,
                  "stoked exited %s at start: %s" % (self.proc.returncode, self.logtext()))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock)
                s.close()
                return self
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        check(False, "stoked did not start listening: " + self.logtext())

    def logtext(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()

    def stoke(self, args, user=None, timeout=60):
        cmd = [STOKE] + args + ["--socket", self.sock]
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def ok(self, args, **kw):
        p = self.stoke(args, **kw)
        check(p.returncode == 0, "stoke %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                           p.stderr.strip()))
        return p.stdout

    def json(self, args, **kw):
        return json.loads(self.ok(args + ["--json"], **kw))

    def raw(self):
        deadline = time.monotonic() + 10
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(self.sock)
                return s
            except BlockingIOError:
                # The listen backlog is full (a flood outpacing accept, e.g.
                # under ASan): a real client retries too.
                s.close()
                check(time.monotonic() < deadline, "stoked stopped accepting")
                time.sleep(0.01)

    def fds(self):
        """The daemon's open fds once it has caught up: a client that just
        hung up may not have been closed yet, so take the least of a few
        samples."""
        best = None
        for _ in range(10):
            fds = {}
            for fd in os.listdir("/proc/%d/fd" % self.proc.pid):
                try:
                    fds[fd] = os.readlink("/proc/%d/fd/%s" % (self.proc.pid, fd))
                except OSError:
                    pass
            if best is None or len(fds) < len(best):
                best = fds
            time.sleep(0.05)
        self.last_fds = best
        return len(best)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        check(chunk, "stoked closed the connection; got %r" % buf)
        buf += chunk
    lines = buf.split(b"\n")
    check(len(lines) == 2, "more than one reply line: %r" % buf)
    return json.loads(lines[0])


def request(s, line):
    s.sendall(line if isinstance(line, bytes) else line.encode())
    return read_line(s)


def session_info(daemon, sid):
    return daemon.json(["status", str(sid)])["session"]


def wait_ended(daemon, sid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = session_info(daemon, sid)
        if info["state"] == "ended":
            return info
        time.sleep(0.1)
    check(False, "session %s did not end within %d s" % (sid, timeout))


def run_dirs(out):
    return sorted(n for n in os.listdir(out) if not n.startswith("."))


def check_run_dir(path, pct_a=None, owner=None):
    """A complete run directory: run.json lists files that all exist, and the
    folded profile has samples (split as the fixture was told, if given)."""
    for f in RUN_FILES:
        check(os.path.exists(os.path.join(path, f)), "%s: no %s" % (path, f))
    with open(os.path.join(path, "run.json")) as f:
        run = json.load(f)
    for name in run.get("files", {}).values():
        check(os.path.exists(os.path.join(path, name)), "%s: run.json lists missing %s"
              % (path, name))
    stacks = parse_folded(os.path.join(path, "profile.folded"))
    if owner is not None:
        for f in os.listdir(path) + ["."]:
            st = os.stat(os.path.join(path, f))
            check(st.st_uid == owner, "%s/%s belongs to uid %d, not %d"
                  % (path, f, st.st_uid, owner))
    if pct_a is not None:
        n = total(stacks)
        check(n > 0, "%s: no samples" % path)
        share = 100.0 * leaf_count(stacks, "leaf_a") / n
        print("%s: %d samples, leaf_a %.1f%% (truth %d%%)" % (os.path.basename(path), n,
                                                              share, pct_a))
        check(abs(share - pct_a) <= TOLERANCE, "leaf_a share %.1f%% is not within %.0f of %d%%"
              % (share, TOLERANCE, pct_a))
    return stacks


def spawn_split(seconds, pct, user=None):
    cmd = [fixture("split"), str(seconds), str(pct)]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.2)  # past exec, so the target is the fixture itself
    return p


def open_to_nobody(d):
    """Let uid 65534 reach d (and the socket in it) and write into out/."""
    os.chmod(os.path.dirname(d), 0o755)
    os.chmod(d, 0o755)
    out = os.path.join(d, "out-nobody")
    os.mkdir(out)
    os.chown(out, NOBODY, NOBODY)
    return out


def test_continuous(d):
    daemon = Daemon(d).start()
    target = spawn_split(0, 70)
    out = os.path.join(d, "out")
    os.mkdir(out)
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out, "--continuous",
                             "--rotate", "1", "--keep", "3"]).strip())
        listed = daemon.json(["list"])["sessions"]
        check([s["pid"] for s in listed if s["id"] == sid] == [target.pid],
              "list does not show session %d on pid %d: %r" % (sid, target.pid, listed))
        table = daemon.ok(["list"])
        check(re.search(r"^%d\s+%d\s+0\s+split\s+continuous\s+running" % (sid, target.pid),
                        table, re.M), "human list lacks the session:\n" + table)
        time.sleep(1.5)
        snap = daemon.ok(["snapshot", str(sid)]).strip()
        check(snap and os.path.isdir(os.path.join(out, snap)), "snapshot made no %r" % snap)
        check_run_dir(os.path.join(out, snap), 70)
        time.sleep(5)
        dirs = run_dirs(out)
        print("after 5 s:", dirs)
        check(2 <= len(dirs) <= 3, "expected at most 3 (and some) run dirs, got %r" % dirs)
        for name in dirs:
            check_run_dir(os.path.join(out, name), 70)
        info = session_info(daemon, sid)
        check(info["runs_written"] >= 6, "only %d runs written in 6.5 s of rotate 1"
              % info["runs_written"])
        p = daemon.stoke(["detach", str(sid)])
        check(p.returncode == 0 and "detached" in p.stdout, "detach: %s %s" % (p.stdout,
                                                                             p.stderr))
        check(len(run_dirs(out)) <= 3, "more than 3 run dirs after detach: %r" % run_dirs(out))
        check(session_info(daemon, sid)["state"] == "ended", "session still running")
        p = daemon.stoke(["detach", str(sid)])
        check(p.returncode == 1 and "already ended" in p.stderr, "second detach: %r" % p.stderr)
        check(target.poll() is None, "the target died")
    finally:
        kill(target)
        daemon.stop()


def test_resources_rotation(d):
    """A continuous session's resource timeline keeps its 100 ms cadence
    while rotations are named and written on the session's worker: every
    rotated profile's run.json has points about 100 ms apart (median gap
    <= 150 ms), no gap over 400 ms, also from one profile to the next, and
    the 200 MB the rss-step fixture touches halfway shows as its peak RSS
    (within 10%)."""
    mb = 200
    daemon = Daemon(d).start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    times = os.path.join(d, "times.txt")
    target = subprocess.Popen([fixture("rss-step"), "6", str(mb), times],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.2)  # past exec
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out, "--continuous",
                             "--rotate", "1"]).strip())
        check(target.wait(timeout=60) == 0, "rss-step failed: %r" % target.stderr.read())
        wait_ended(daemon, sid, timeout=60)
    finally:
        kill(target)
        daemon.stop()
    runs = []
    names = run_dirs(out)
    for name in names:
        with open(os.path.join(out, name, "run.json")) as f:
            res = json.load(f).get("resources")
        t = [res["clock_ns"] / 1e9 + x for x in res["series"]["t_s"]] if res else []
        # the last one may start as the target exits
        check(t or name == names[-1], "%s: no resource timeline" % name)
        if t:
            runs.append((t[0], name, t, res))
    runs.sort()
    check(len(runs) >= 4, "only %d run directories with a timeline: %r" % (len(runs), names))
    points = []
    for _, name, t, res in runs:
        gaps = [b - a for a, b in zip(t, t[1:])]
        print("%s: %d points over %.2f s, gaps %s" % (name, len(t), t[-1] - t[0],
                                                     " ".join("%.3f" % g for g in gaps)))
        # a full rotation (1 s): points every 100 ms
        if t[-1] - t[0] >= 0.5:
            check(sorted(gaps)[len(gaps) // 2] <= 0.15,
                  "%s: median gap %.3f s" % (name, sorted(gaps)[len(gaps) // 2]))
        points += t
    # A point at a rotation's instant may be in both profiles (1 ms slack).
    points = sorted(set(round(t, 3) for t in points))
    gaps = [b - a for a, b in zip(points, points[1:])]
    check(max(gaps) <= 0.4, "a gap of %.3f s in the timeline (across the runs: %s)"
          % (max(gaps), " ".join("%.2f" % g for g in gaps if g > 0.2)))
    peak = max(res["peak_rss_bytes"] for _, _, _, res in runs)
    check(abs(peak - mb * 2**20) <= 0.1 * mb * 2**20,
          "peak RSS %.1f MB, the fixture touched %d MB" % (peak / 2**20, mb))


def test_auth_refused_root_target(d):
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    target = spawn_split(0, 50)  # runs as root
    try:
        p = daemon.stoke(["attach", str(target.pid), "-o", out], user=NOBODY)
        print("refusal:", p.stderr.strip())
        check(p.returncode == 1, "nobody attached to a root process (exit %d)" % p.returncode)
        check("permission denied" in p.stderr and str(target.pid) in p.stderr,
              "unclear refusal: %r" % p.stderr)
        check(re.search(r"refused: uid %d .*pid %d" % (NOBODY, target.pid), daemon.logtext()),
              "refusal not logged:\n" + daemon.logtext())
        check(daemon.json(["list"])["sessions"] == [], "a session exists after a refusal")
        # A root session is invisible and untouchable for nobody.
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out]).strip())
        check(daemon.json(["list"], user=NOBODY)["sessions"] == [],
              "nobody sees root's session")
        # ... and indistinguishable from a session that does not exist, so
        # that nobody learns other users' session ids (issue #12).
        for op in ("detach", "snapshot", "status"):
            p = daemon.stoke([op, str(sid)], user=NOBODY)
            q = daemon.stoke([op, str(sid + 1000)], user=NOBODY)
            check(p.returncode == 1 and "no session %d" % sid in p.stderr,
                  "nobody could %s: %r" % (op, p.stderr))
            check(p.stderr.replace(str(sid), "N") == q.stderr.replace(str(sid + 1000), "N"),
                  "%s answers differently for another user's session (%r) and for none "
                  "(%r)" % (op, p.stderr, q.stderr))
        p = daemon.stoke(["shutdown"], user=NOBODY)
        check(p.returncode == 1 and "permission denied" in p.stderr,
              "nobody could shut down: %r" % p.stderr)
        check(session_info(daemon, sid)["state"] == "running", "root's session was touched")
        # A non-dumpable process of one's own is refused too.
        nd = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                               "--clear-groups", "python3", "-c",
                               "import ctypes,time; ctypes.CDLL(None).prctl(4,0,0,0,0); "
                               "print(flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE)
        nd.stdout.readline()
        p = daemon.stoke(["attach", str(nd.pid), "-o", out], user=NOBODY)
        kill(nd)
        check(p.returncode == 1 and "not dumpable" in p.stderr,
              "non-dumpable target: %r" % p.stderr)
    finally:
        kill(target)
        daemon.stop()


def test_auth_own_process(d):
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    target = spawn_split(0, 80, user=NOBODY)
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out, "-d", "2"],
                            user=NOBODY).strip())
        check(daemon.json(["list"], user=NOBODY)["sessions"][0]["uid"] == NOBODY,
              "the session is not nobody's")
        info = wait_ended(daemon, sid)
        check(info["runs_written"] == 1 and info["last_run"], "no run written: %r" % info)
        check_run_dir(os.path.join(out, info["last_run"]), 80, owner=NOBODY)
        # nobody cannot make the root daemon write where nobody cannot.
        rootonly = os.path.join(d, "rootonly")
        os.mkdir(rootonly, 0o755)
        p = daemon.stoke(["attach", str(target.pid), "-o", rootonly], user=NOBODY)
        check(p.returncode == 1 and "cannot write to the output directory" in p.stderr,
              "wrote into a root directory: %r" % p.stderr)
        check(os.listdir(rootonly) == [], "files appeared in a root-only directory")
    finally:
        kill(target)
        daemon.stop()


def test_auth_revoked(d):
    """A target that stops being readable by the session's owner (here it
    makes itself non-dumpable, as a setuid exec would) ends the session
    within the re-check interval, and nothing is written."""
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    target = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                               "--clear-groups", "python3", "-c",
                               "import ctypes,sys,time\n"
                               "print(flush=True)\n"
                               "sys.stdin.readline()\n"
                               "ctypes.CDLL(None).prctl(4,0,0,0,0)\n"
                               "time.sleep(60)\n"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        target.stdout.readline()
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out], user=NOBODY).strip())
        time.sleep(1.5)
        check(session_info(daemon, sid)["state"] == "running", "ended before the change")
        target.stdin.write(b"go\n")
        target.stdin.flush()
        info = wait_ended(daemon, sid, timeout=10)
        print("ended:", info["last_error"])
        check("not dumpable" in (info["last_error"] or ""), "reason: %r" % info["last_error"])
        check(info["runs_written"] == 0 and os.listdir(out) == [],
              "a profile was written after the target became unreadable")
    finally:
        kill(target)
        daemon.stop()


def test_target_exits(d):
    daemon = Daemon(d).start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    target = spawn_split(2.5, 30)
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out]).strip())
        target.wait(timeout=30)
        info = wait_ended(daemon, sid)
        print("ended:", info)
        check(info["last_run"], "no profile written when the target exited")
        stacks = check_run_dir(os.path.join(out, info["last_run"]), 30)
        check(total(stacks) > 400, "too few samples for ~2 s at 999 Hz: %d" % total(stacks))
        check(daemon.json(["status"])["daemon"]["sessions"] == 0, "a session still runs")
    finally:
        kill(target)
        daemon.stop()


def test_call_graph_modes(d):
    """The daemon unwinds with DWARF like `stoke record` (the default, auto),
    so a binary without frame pointers gets whole stacks; -g fp is honoured."""
    daemon = Daemon(d).start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    target = subprocess.Popen([fixture("split-nofp"), "2", "70"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.2)
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out]).strip())
        target.wait(timeout=30)
        info = wait_ended(daemon, sid)
        with open(os.path.join(out, info["last_run"], "run.json")) as f:
            check(json.load(f)["call_graph"] == "dwarf", "default call graph is not dwarf")
        stacks = parse_folded(os.path.join(out, info["last_run"], "profile.folded"))
        n = total(stacks)
        full = sum(c for fr, c in stacks if "main" in [f.split("_[")[0] for f in fr])
        print("dwarf via stoked: %d samples, %.1f%% reach main" % (n, 100.0 * full / max(n, 1)))
        check(n > 200 and full >= 0.95 * n, "only %d of %d samples reach main" % (full, n))
    finally:
        kill(target)
    p = daemon.stoke(["attach", "1", "-g", "dwarf,12", "-o", out])
    check(p.returncode == 2 and "call-graph" in p.stderr, "bad -g accepted: %r" % p.stderr)
    daemon.stop()


COUNTER = ("import sys, time\n"
           "i = 0\n"
           "while True:\n"
           "    print(i, flush=True)\n"
           "    i += 1\n"
           "    s = 0\n"
           "    for k in range(2000): s += k\n"
           "    time.sleep(0.002)\n")


def test_attach_detach_cycles(d):
    daemon = Daemon(d).start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    log = open(os.path.join(d, "counter.out"), "w")
    target = subprocess.Popen(["python3", "-c", COUNTER], stdout=log)
    try:
        samples = 0
        for i in range(200):
            if i == 20:
                fds0, rss0 = daemon.fds(), daemon.rss_kb()
                fdmap0 = daemon.last_fds
            sid = int(daemon.ok(["attach", str(target.pid), "-o", out]).strip())
            detached = daemon.json(["detach", str(sid)])
            samples += detached["session"]["samples"]
            check(detached["run"], "cycle %d wrote no profile" % i)
        fds1, rss1 = daemon.fds(), daemon.rss_kb()
        print("daemon fds %d -> %d, RSS %d kB -> %d kB (cycles 20 -> 200), %d samples"
              % (fds0, fds1, rss0, rss1, samples))
        if fds1 != fds0:
            print("fds at cycle 20: %s\nfds at cycle 200: %s"
                  % (sorted(fdmap0.items(), key=lambda x: int(x[0])),
                     sorted(daemon.last_fds.items(), key=lambda x: int(x[0]))))
        check(fds1 == fds0, "fd count grew from %d to %d" % (fds0, fds1))
        check(rss1 - rss0 < 4096, "RSS grew by %d kB over 180 cycles" % (rss1 - rss0))
        check(samples > 0, "no samples in 200 sessions")
        check(target.poll() is None, "the target died")
        state, tracer = proc_state(target.pid)
        check(state in ("R", "S") and tracer == 0, "target state %s tracer %s" % (state, tracer))
        time.sleep(0.2)
    finally:
        kill(target)
        log.close()
        daemon.stop()
    check(daemon.proc.returncode == 0, "stoked exited %d (a leak under ASan?): %s"
          % (daemon.proc.returncode, daemon.logtext()[-2000:]))
    with open(os.path.join(d, "counter.out")) as f:
        lines = f.read().split("\n")
    check(lines[-1] == "" or lines[-1].isdigit(), "garbled last line %r" % lines[-1])
    nums = [int(x) for x in lines if x]
    check(nums == list(range(len(nums))), "the target's output is not 0..N in order")
    print("target printed %d lines, in order" % len(nums))


def test_sample_limit(d):
    """A session's profile is bounded (--max-samples): at the limit the
    session writes what it has and ends, saying why."""
    daemon = Daemon(d, "--max-samples", "300").start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    target = spawn_split(0, 50)
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out]).strip())
        info = wait_ended(daemon, sid)
        print("ended:", info)
        check(info["last_error"] and "max-samples" in info["last_error"],
              "no reason given: %r" % info)
        stacks = check_run_dir(os.path.join(out, info["last_run"]))
        check(total(stacks) == 300, "%d samples written, limit 300" % total(stacks))
        check(target.poll() is None, "the target was harmed")
    finally:
        kill(target)
        daemon.stop()


def proc_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_slow_readers(d):
    """Clients that pipeline requests and never read the replies, or
    half-close with replies pending, are dropped: the daemon does not spin
    on them, its memory stays bounded, and it keeps answering others."""
    daemon = Daemon(d).start()
    try:
        hogs = []
        for _ in range(3):
            s = daemon.raw()
            s.setblocking(False)
            try:
                for _ in range(20000):
                    s.send(b"{\"op\":\"status\"}\n")
            except BlockingIOError:
                pass
            hogs.append(s)
        half = daemon.raw()
        half.sendall(b"{\"op\":\"status\"}\n" * 2000)
        half.shutdown(socket.SHUT_WR)
        hogs.append(half)
        time.sleep(0.5)
        t0 = proc_ticks(daemon.proc.pid)
        time.sleep(2.0)
        used = proc_ticks(daemon.proc.pid) - t0
        hz = os.sysconf("SC_CLK_TCK")
        print("daemon CPU over 2 s with stuck clients: %.2f s" % (used / hz))
        check(used < 0.4 * hz, "the daemon spins on stuck clients: %.2f s of CPU in 2 s"
              % (used / hz))
        check(daemon.rss_kb() < 64 * 1024, "daemon RSS %d kB" % daemon.rss_kb())
        check(daemon.json(["status"])["daemon"] is not None, "no answer")
        for s in hogs:
            s.close()
    finally:
        daemon.stop()


def test_bad_requests(d):
    daemon = Daemon(d, "--max-clients", "8").start()
    try:
        out = os.path.join(d, "out")
        os.mkdir(out)
        bad = [b"\n", b"{\n", b"garbage\n", b"[]\n", b"{}\n", b"{\"op\":\"fly\"}\n",
               b"{\"op\":\"attach\"}\n", b"{\"op\":\"attach\",\"pid\":\"1\"}\n",
               b"{\"op\":\"attach\",\"pid\":-1}\n", b"{\"op\":\"detach\",\"session\":1e99}\n",
               b"{\"op\":\"list\"}{\"op\":\"list\"}\n", b"\x00\x01\x02\xff\n",
               b"{\"op\":\"attach\",\"pid\":1,\"name\":\"../../etc\"}\n",
               b"{\"op\":\"status\",\"session\":424242}\n", b"{\"op\":\"detach\",\"session\":5}\n",
               b"{\"op\":\"attach\",\"pid\":1073741823}\n",
               b"{" + b"[" * 5000 + b"\n"]
        s = daemon.raw()
        for i in range(10):
            for line in bad:
                r = request(s, line)
                check(r.get("ok") is False and r.get("message"), "bad request %r got %r"
                      % (line[:40], r))
        # Oversized: one refusal, the rest of the line is dropped, the
        # connection keeps working.
        s.sendall(b"{\"op\":\"list\",\"x\":\"" + b"A" * 100000)
        r = read_line(s)
        check(r["ok"] is False and r["error"] == "E2BIG", "oversized: %r" % r)
        s.sendall(b"AAAA\"}\n")
        check(request(s, b"{\"op\":\"status\"}\n")["ok"], "no answer after an oversized line")
        # A directory fd that is not a directory.
        with open(os.path.join(d, "file"), "w") as f:
            target = spawn_split(0, 50)
            try:
                s.sendmsg([b"{\"op\":\"attach\",\"pid\":%d}\n" % target.pid],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                            array.array("i", [f.fileno()]).tobytes())])
                r = read_line(s)
                check(r["ok"] is False and r["error"] == "ENOTDIR", "file as output dir: %r" % r)
            finally:
                kill(target)
        s.close()
        # Too many clients: the extra ones get EBUSY; the daemon goes on.
        conns = [daemon.raw() for _ in range(8)]
        extra = daemon.raw()
        r = read_line(extra)
        check(r["error"] == "EBUSY", "client over the limit: %r" % r)
        extra.close()
        for c in conns:
            c.sendall(b"{\"op\":\"sta")  # half a request, then gone
            c.close()
        # Many short connections with garbage.
        refused = 0
        for i in range(200):
            c = daemon.raw()
            try:
                c.sendall(os.urandom(64) + b"\n")
            except (BrokenPipeError, ConnectionResetError):
                refused += 1  # over --max-clients while earlier ones close
            c.close()
        print("%d of 200 garbage connections were refused as over the limit" % refused)
        time.sleep(0.3)
        st = daemon.json(["status"])["daemon"]
        check(daemon.proc.poll() is None, "stoked died")
        print("after the flood: %r" % st)
        check(st["clients"] == 1, "clients left behind: %d" % st["clients"])
    finally:
        daemon.stop()
    check(daemon.proc.returncode == 0, "stoked exited %d" % daemon.proc.returncode)


def test_sigterm_flushes(d):
    daemon = Daemon(d).start()
    outs = [os.path.join(d, "out1"), os.path.join(d, "out2")]
    targets = [spawn_split(0, 75), spawn_split(0, 40)]
    try:
        for o in outs:
            os.mkdir(o)
        daemon.ok(["attach", str(targets[0].pid), "-o", outs[0]])
        daemon.ok(["attach", str(targets[1].pid), "-o", outs[1], "--continuous", "--rotate",
                   "600"])
        time.sleep(2)
        daemon.proc.send_signal(signal.SIGTERM)
        rc = daemon.proc.wait(timeout=30)
        check(rc == 0, "stoked exited %d on SIGTERM" % rc)
        for o, pct in zip(outs, (75, 40)):
            dirs = run_dirs(o)
            check(len(dirs) == 1, "%s: expected one run dir, got %r" % (o, dirs))
            check_run_dir(os.path.join(o, dirs[0]), pct)
        check(not os.path.exists(daemon.sock), "the socket was left behind")
        check(all(t.poll() is None for t in targets), "a target died")
    finally:
        for t in targets:
            kill(t)
        daemon.stop()


def test_sigkill_restart(d):
    daemon = Daemon(d).start()
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    check(os.path.exists(daemon.sock), "no stale socket to test with")
    second = Daemon(d).start()
    try:
        check(second.json(["status"])["daemon"]["pid"] == second.proc.pid,
              "the new daemon does not answer")
        # A third one must not steal a live daemon's socket.
        third = subprocess.run([STOKED, "--foreground", "--socket", second.sock],
                               capture_output=True, text=True, timeout=30)
        check(third.returncode == 1 and "already listening" in third.stderr,
              "a second daemon on a live socket: %d %r" % (third.returncode, third.stderr))
        check(second.json(["status"])["ok"], "the live daemon stopped answering")
    finally:
        second.stop()


def test_sighup_reopens_log(d):
    log = os.path.join(d, "file.log")
    daemon = Daemon(d, "--log", log).start()
    try:
        os.rename(log, log + ".1")
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not os.path.exists(log) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(os.path.exists(log), "SIGHUP did not reopen the log")
        daemon.ok(["status"])
        with open(log) as f:
            check("log reopened" in f.read(), "nothing written to the reopened log")
    finally:
        daemon.stop()


def test_sd_notify(d):
    path = os.path.join(d, "notify")
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.bind(path)
    n.settimeout(15)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    daemon = Daemon(d).start(env=env)
    try:
        msg = n.recv(4096).decode()
        check("READY=1" in msg, "no readiness: %r" % msg)
        daemon.proc.send_signal(signal.SIGTERM)
        check("STOPPING=1" in n.recv(4096).decode(), "no STOPPING=1")
    finally:
        daemon.stop()
        n.close()


def test_bad_options(d):
    """A bad option value gets one line naming the option, exit 2, whether
    the value is joined (--opt=V) or its own argument (--opt V)."""
    for args, opt in ((["--max-sessions", "x"], "--max-sessions"),
                      (["--socket-mode=999"], "--socket-mode"),
                      (["--max-user-memory", "lots"], "--max-user-memory"),
                      (["--max-user-fds", "3"], "--max-user-fds")):
        p = subprocess.run([STOKED, "--foreground", "--socket", os.path.join(d, "s.sock")]
                           + args, capture_output=True, text=True, timeout=30)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and ("for " + opt + " ") in lines[0],
              "%r: exit %d, %r" % (args, p.returncode, p.stderr))


TESTS = {
    "continuous": test_continuous,
    "resources_rotation": test_resources_rotation,
    "auth_refused_root_target": test_auth_refused_root_target,
    "auth_own_process": test_auth_own_process,
    "auth_revoked": test_auth_revoked,
    "target_exits": test_target_exits,
    "call_graph_modes": test_call_graph_modes,
    "attach_detach_cycles": test_attach_detach_cycles,
    "bad_requests": test_bad_requests,
    "slow_readers": test_slow_readers,
    "sample_limit": test_sample_limit,
    "sigterm_flushes": test_sigterm_flushes,
    "sigkill_restart": test_sigkill_restart,
    "sighup_reopens_log": test_sighup_reopens_log,
    "bad_options": test_bad_options,
    "sd_notify": test_sd_notify,
}


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: stoked's tests need root (they run the daemon as root and clients "
              "as uid 65534)")
        sys.exit(1 if os.environ.get("STOKE_REQUIRE_PERF") == "1" else 77)
    run_tests(TESTS)
