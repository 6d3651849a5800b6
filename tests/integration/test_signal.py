#!/usr/bin/env python3
"""Integration tests for the signal sampler (`stoke record --sampler signal`,
and `--sampler auto` where perf_event_open is denied).

perf_event is denied for real: tests/fixtures/noperf runs stoke under a
seccomp filter that makes perf_event_open fail with EPERM, as Docker's
default profile does. The truths come from the fixtures' arguments (split's
75/25, sleepwork's half asleep) and from unprofiled runs of the same
programs, never from a stored profile. These tests need no perf_event, so
they never skip.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (STOKE, Fail, check, fixture, has_chain, leaf_count,  # noqa: E402
                       parse_folded, run_stoke, total)

NOBODY = 65534
SPLIT_TOLERANCE = 5.0  # percentage points
WALL_TOLERANCE = 7.0


def noperf(cmd):
    return [fixture("noperf")] + cmd


def as_nobody(cmd):
    return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + cmd


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def share(stacks, pred):
    n = total(stacks)
    return 100.0 * sum(c for fr, c in stacks if pred(fr)) / n if n else 0.0


def assert_split(stacks, pct_a=75):
    n = total(stacks)
    check(n > 200, "too few samples: %d" % n)
    a = 100.0 * leaf_count(stacks, "leaf_a") / n
    b = 100.0 * leaf_count(stacks, "leaf_b") / n
    print("samples=%d leaf_a=%.1f%% leaf_b=%.1f%% (truth %d/%d)" % (n, a, b, pct_a, 100 - pct_a))
    check(abs(a - pct_a) <= SPLIT_TOLERANCE, "leaf_a %.1f%% is not %d%% ± %.0f" %
          (a, pct_a, SPLIT_TOLERANCE))
    check(abs(b - (100 - pct_a)) <= SPLIT_TOLERANCE, "leaf_b %.1f%% is not %d%% ± %.0f" %
          (b, 100 - pct_a, SPLIT_TOLERANCE))
    for leaf in ("leaf_a", "leaf_b"):
        got = leaf_count(stacks, leaf)
        full = sum(c for fr, c in stacks
                   if has_chain(fr, ["main", "run", "work_round", leaf]))
        check(full >= 0.95 * got, "%s: only %d of %d samples have main→run→work_round→%s"
              % (leaf, full, got, leaf))


def record(d, args, cmd, wrap=lambda c: c, name="out.folded", ok=True, timeout=120):
    out = os.path.join(d, name)
    p = run(wrap([STOKE, "record", "-o", out] + args + ["--"] + cmd), timeout=timeout)
    if ok:
        check(p.returncode == 0, "stoke exited %d: %s" % (p.returncode, p.stderr))
    return p, out


# ---- perf_event denied ----

def test_seccomp_auto(d):
    """Under a seccomp filter denying perf_event_open, the default (auto)
    samples with signals, says so in one line, and gets split's 75/25 with
    full stacks."""
    p, out = record(d, ["-F", "999"], [fixture("split"), "3", "75"], wrap=noperf)
    lines = [ln for ln in p.stderr.splitlines() if "sampling with signals" in ln]
    check(len(lines) == 1, "auto did not say once that it samples with signals: %r" % p.stderr)
    assert_split(parse_folded(out))


def test_seccomp_perf_refused(d):
    """--sampler perf and attach under the filter fail with a message that
    names the filter, not perf_event_paranoid (issue #15's wrong message)."""
    p, _ = record(d, ["--sampler", "perf"], [fixture("split"), "0.2"], wrap=noperf, ok=False)
    check(p.returncode != 0, "--sampler perf worked under a filter denying perf_event_open")
    check("seccomp" in p.stderr and "paranoid" not in p.stderr,
          "misleading message: %r" % p.stderr)
    target = subprocess.Popen([fixture("split"), "5"], stdout=subprocess.DEVNULL)
    try:
        p = run(noperf([STOKE, "record", "-d", "0.5", "-o", os.path.join(d, "a.folded"),
                        "-p", str(target.pid)]))
    finally:
        target.kill()
        target.wait()
    check(p.returncode != 0, "attach worked under a filter denying perf_event_open")
    check("seccomp" in p.stderr and "needs perf_event" in p.stderr and
          "paranoid" not in p.stderr, "attach message: %r" % p.stderr)
    p = run([STOKE, "record", "--sampler", "signal", "-p", str(os.getpid())])
    check(p.returncode == 2 and "needs perf_event" in p.stderr,
          "--sampler signal -p: %d %r" % (p.returncode, p.stderr))


def test_nobody(d):
    """The same as an unprivileged user (nobody), with perf_event denied."""
    os.chmod(d, 0o777)
    p, out = record(d, ["-F", "999"], [fixture("split"), "3", "75"],
                    wrap=lambda c: as_nobody(noperf(c)))
    check("sampling with signals" in p.stderr, "auto did not pick signals: %r" % p.stderr)
    assert_split(parse_folded(out))
    # and asked for explicitly, whatever perf_event_paranoid allows nobody
    p, out = record(d, ["--sampler", "signal"], [fixture("split"), "2", "75"],
                    wrap=as_nobody, name="explicit.folded")
    assert_split(parse_folded(out))


# ---- what is sampled ----

def test_wall(d):
    """-e wall samples sleeping threads: sleepwork sleeps half the time, and
    about half the samples are in sleep_part (±7 points); the CPU profile of
    the same program has almost none there."""
    in_sleep = lambda fr: "sleep_part" in fr  # noqa: E731
    p, out = record(d, ["-e", "wall", "--sampler", "signal"], [fixture("sleepwork"), "3"])
    m = re.search(r"compute_s ([\d.]+) sleep_s ([\d.]+)", p.stdout)
    check(m, "sleepwork printed no times: %r" % p.stdout)
    truth = 100.0 * float(m.group(2)) / (float(m.group(1)) + float(m.group(2)))
    stacks = parse_folded(out)
    s = share(stacks, in_sleep)
    print("wall: %d samples, %.1f%% in sleep_part (it slept %.1f%% of the time)"
          % (total(stacks), s, truth))
    check(total(stacks) > 1000, "too few wall samples: %d" % total(stacks))
    check(abs(truth - 50) <= 15, "the machine is too loaded: sleepwork slept %.1f%%" % truth)
    check(abs(s - truth) <= WALL_TOLERANCE, "sleep_part has %.1f%% of wall samples, not %.1f ± %.0f"
          % (s, truth, WALL_TOLERANCE))
    full = sum(c for fr, c in stacks if in_sleep(fr) and
               has_chain(fr[:fr.index("sleep_part") + 1], ["main", "run", "sleep_part"]))
    check(full >= 0.95 * sum(c for fr, c in stacks if in_sleep(fr)),
          "sleep stacks are not main→run→sleep_part")
    _, out = record(d, ["--sampler", "signal"], [fixture("sleepwork"), "2"], name="cpu.folded")
    s = share(parse_folded(out), in_sleep)
    print("cpu: %.1f%% in sleep_part" % s)
    check(s < 10, "the CPU profile has %.1f%% in sleep_part" % s)


def test_late_thread_and_fork(d):
    """A thread born after the start and a forked child are sampled, the
    child under its own pid, all with full stacks."""
    _, out = record(d, ["--sampler", "signal", "--per-thread"], [fixture("forkwork"), "1.5"])
    stacks = parse_folded(out)
    pids = {}
    for fn, chain in (("parent_work", ["main", "parent_work", "burn_for"]),
                      ("late_thread_work", ["thread_main", "late_thread_work", "burn_for"]),
                      ("child_work", ["main", "child_work", "burn_for"])):
        got = [(fr, c) for fr, c in stacks if fn in fr]
        n = sum(c for _, c in got)
        print("%s: %d samples" % (fn, n))
        check(n >= 50, "%s has %d samples" % (fn, n))
        check(sum(c for fr, c in got if has_chain(fr, chain)) >= 0.95 * n,
              "%s: stacks are not %s" % (fn, "→".join(chain)))
        m = re.match(r"forkwork-(\d+)/(\d+)$", got[0][0][0])
        check(m, "no comm-PID/TID prefix: %r" % got[0][0][0])
        pids[fn] = (int(m.group(1)), int(m.group(2)))
    check(pids["late_thread_work"][0] == pids["parent_work"][0] and
          pids["late_thread_work"][1] != pids["parent_work"][1],
          "the late thread is not a thread of the parent: %r" % pids)
    check(pids["child_work"][0] != pids["parent_work"][0],
          "the child is not a process of its own: %r" % pids)


def test_exec(d):
    """A command that forks and execs (sh) is followed into the new image."""
    cmd = ["sh", "-c", "%s 1 75; exec %s 1.5 75" % (fixture("split"), fixture("split"))]
    _, out = record(d, ["--sampler", "signal"], cmd)
    assert_split(parse_folded(out))


def test_target_signal(d):
    """A target that takes the agent's own signal number for itself gets it:
    it reads the default disposition first, its handler receives the signal
    it raises, and it is still sampled afterwards (the agent moved to
    another number)."""
    prog = r"""
import os, signal, sys, time
n = int(sys.argv[1])
assert signal.getsignal(n) == signal.SIG_DFL, signal.getsignal(n)
got = []
signal.signal(n, lambda s, f: got.append(s))
os.kill(os.getpid(), n)
end = time.monotonic() + 1.5
def spin_after_takeover():
    x = 0
    while time.monotonic() < end:
        x += 1
spin_after_takeover()
print("handled", got)
"""
    signo = signal.SIGRTMIN + 6
    p, out = record(d, ["--sampler", "signal", "--signal-number", str(signo)],
                    [sys.executable, "-c", prog, str(signo)])
    check(p.returncode == 0, "target failed: %s" % p.stderr)
    # its handler saw its own signal once, and none of the agent's timers
    check(p.stdout.strip() == "handled [%d]" % signo, "the target's handler saw %r" % p.stdout)
    stacks = parse_folded(out)
    print("%d samples" % total(stacks))
    check(total(stacks) > 300, "sampling stopped when the target took the signal: %d samples"
          % total(stacks))


def test_setuid(d):
    """A setuid program run by an unprivileged user loses LD_PRELOAD (the
    loader's secure mode) and simply runs unprofiled, unchanged."""
    exe = os.path.join(d, "split-suid")
    shutil.copy(fixture("split"), exe)
    os.chown(exe, 0, 0)
    os.chmod(exe, 0o4755)
    os.chmod(d, 0o777)
    p, out = record(d, ["--sampler", "signal"], [exe, "0.5"], wrap=as_nobody)
    check(p.returncode == 0, "exit %d" % p.returncode)


def summary_counts(stderr):
    m = re.search(r"(\d+) samples, (\d+) lost", stderr)
    check(m, "no summary line: %r" % stderr)
    return int(m.group(1)), int(m.group(2))


def test_lost_counted(d):
    """A ring too small for what the threads write (-m 2: two cells) loses
    samples, and every one is counted: samples plus lost come near what a
    roomy ring keeps of the same work."""
    cmd = [fixture("split-mt"), "4", "2", "75"]
    p, _ = record(d, ["--sampler", "signal", "-m", "2"], cmd)
    small, lost = summary_counts(p.stderr)
    p, _ = record(d, ["--sampler", "signal"], cmd, name="roomy.folded")
    roomy, roomy_lost = summary_counts(p.stderr)
    print("-m 2: %d samples + %d lost; default ring: %d samples, %d lost"
          % (small, lost, roomy, roomy_lost))
    check(lost > 0, "a two-cell ring lost nothing (%d samples)" % small)
    check(0.6 * roomy <= small + lost <= 1.6 * roomy,
          "samples + lost (%d) is far from the roomy ring's %d" % (small + lost, roomy))


def test_hostile_target(d):
    """The target controls its rings and messages: a regular file, an
    unsealed memfd, a ring of the wrong size, and a right-sized sealed ring
    full of random cells (types, sizes, map lines, stack lengths) must
    neither crash stoke nor reach the profile as anything but malformed
    records; stoke still writes the profile and exits with the target's
    status."""
    prog = r"""
import fcntl, os, random, socket, struct, sys
fd = int(os.environ["STOKE_AGENT_FD"].split(":")[0])
freq, clock, stack, slots, signo = map(int, os.environ["STOKE_AGENT_CONF"].split(","))
slot = (16 + 192 + stack + 63) & ~63
size = 4096 + slots * slot
sock = socket.socket(fileno=os.dup(fd))
def hello(f, kind=1, version=1):
    msg = struct.pack("IIII16s", kind, version, os.getppid(), 0, b"hostile")
    sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", f))])
def memfd(n, seal=True):
    f = os.memfd_create("x", os.MFD_ALLOW_SEALING)
    os.ftruncate(f, n)
    if seal:
        fcntl.fcntl(f, 1033, 1 | 2 | 4)  # F_ADD_SEALS: SEAL, SHRINK, GROW
    return f
rnd = random.Random(int(sys.argv[1]))
plain = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(plain, size)
hello(plain)
hello(memfd(size, seal=False))
hello(memfd(size - 4096))
hello(memfd(size), kind=7)
sock.send(b"garbage that is no message")
f = memfd(size)
with open("/proc/self/fd/%d" % f, "r+b") as m:
    m.write(struct.pack("QIIIIQQQ", 0x53544f4b45524e47, 1, slots, slot, 0, slots, 0, 2**63))
    for i in range(slots):
        m.seek(4096 + i * slot)
        kind = rnd.choice([1, 2, 3, 0, 9, 2**32 - 1])
        n = rnd.choice([0, 1, 8, 24, 200, slot - 16, slot, 2**32 - 1])
        body = bytes(rnd.getrandbits(8) for _ in range(min(n, 400)))
        if kind == 2 and rnd.random() < 0.5:
            line = b"00400000-00401000 r-xp 00000000 08:01 12 /no/such/file"
            body = struct.pack("II", os.getpid(), len(line)) + line + b"\0"
            n = len(body)
        m.write(struct.pack("QII", i + 1, kind, n) + body)
hello(f)
print("done")
"""
    for seed in range(3):
        p, out = record(d, ["--sampler", "signal"],
                        [sys.executable, "-c", prog, str(seed), os.path.join(d, "plain")],
                        name="h%d.folded" % seed)
        check(p.stdout.strip() == "done", "the target did not finish: %r %r" % (p.stdout,
                                                                             p.stderr))
        parse_folded(out) if os.path.getsize(out) else None


# ---- the agent must not change the target ----

def test_fd_reuse(d):
    """A target that closes the agent's socket and puts a connection of its
    own at that fd number, then forks and execs, reads from the other end
    only what it sent: the agent checks the socket's identity before every
    write (a hello from the child or the exec'd image would land there)."""
    prog = r"""
import os, socket, time
fd = int(os.environ["STOKE_AGENT_FD"].split(":")[0])
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
os.dup2(a.fileno(), fd)
a.close()
os.write(fd, b"mine")
for i in range(3):
    pid = os.fork()
    if pid == 0:
        os.execv("/bin/true", ["true"])
    os.waitpid(pid, 0)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
end = time.monotonic() + 0.5
while time.monotonic() < end:
    pass
os.write(fd, b"end")
os.close(fd)
got = b""
while True:
    chunk = b.recv(4096)
    if not chunk:
        break
    got += chunk
print(repr(got))
"""
    p, _ = record(d, ["--sampler", "signal"], [sys.executable, "-c", prog])
    check(p.stdout.strip() == repr(b"mineend"), "the target's connection got %s" % p.stdout)


def stress_cmd(seconds):
    return [fixture("sigstress"), str(seconds), fixture("libfixture.so")]


def stress(d, seconds, runs, extra=()):
    plain = run(stress_cmd(seconds))
    check(plain.returncode == 0, "unprofiled sigstress failed: %s" % plain.stderr)
    for i in range(runs):
        out = os.path.join(d, "s%d.folded" % i)
        p = run([STOKE, "record", "-q", "-F", "999", "--sampler", "signal", "-o", out] + list(extra) + ["--"] +
                stress_cmd(seconds), timeout=max(60, seconds * 10))
        check(p.returncode == 0, "run %d: stoke exited %d (stderr %r)" % (i, p.returncode,
                                                                           p.stderr))
        check(p.stdout == plain.stdout, "run %d: output differs:\n%s\nvs\n%s"
              % (i, p.stdout, plain.stdout))
        n = total(parse_folded(out))
        check(n > 100 * seconds, "run %d: only %d samples" % (i, n))
    print("%d runs of %.1f s: output identical, exit 0" % (runs, seconds))


def test_stress_repeat(d):
    """sigstress (8 threads in malloc and longjmp, dlopen, fork+exec,
    posix_spawn) at 999 Hz, 20 times 1.5 s: same output, exit 0."""
    stress(d, 1.5, 20)


def test_stress_long(d):
    """The same for 10 s, once."""
    stress(d, 10, 1)


def test_stress_wall(d):
    """And with wall-clock timers, which also interrupt sleeping calls."""
    stress(d, 1.5, 5, ["-e", "wall"])


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    names = sys.argv[1:] or list(TESTS)
    tmp = tempfile.mkdtemp(prefix="stoke-signal-")
    os.chmod(tmp, 0o755)
    try:
        for name in names:
            dd = os.path.join(tmp, name)
            os.mkdir(dd)
            t0 = time.monotonic()
            TESTS[name](dd)
            print("ok %s (%.1fs)" % (name, time.monotonic() - t0))
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
