#!/usr/bin/env python3
"""Attacks on a root stoked (and a root `stoke record`) by another uid, from
issue #12: each test sets the attack up as root, runs it as uid 65534 and
asserts that it now fails safely.

  tid_reuse     a thread of the target exits during the attach and a root
                process takes its TID: none of its samples may appear.
  symlink_swap  a mapped library's directory is swapped for a symlink to a
                root-only directory: its symbols must never appear.
  devnode_path  a mapping names a path that now leads to /dev/kmsg and a
                FIFO: stoked must never open either.
  big_perfmap   a 3 GB sparse /tmp/perf-PID.map: the daemon stays small and
                responsive, and a root session next to it loses nothing.
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (check, fixture, kill, parse_folded, run_tests)  # noqa: E402
from test_daemon import (NOBODY, Daemon, open_to_nobody, request,  # noqa: E402
                         spawn_split, wait_ended)

AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]


def folded_of_run(out, info):
    check(info["runs_written"] >= 1 and info["last_run"], "no run written: %r" % info)
    return parse_folded(os.path.join(out, info["last_run"], "profile.folded"))


def frames_text(stacks):
    return "\n".join(";".join(fr) for fr, _ in stacks)


def tid_reuse_once(d, daemon, out, nthreads, nexit):
    fifo = os.path.join(d, "go.fifo")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo, 0o666)
    os.chmod(fifo, 0o666)
    attacker = subprocess.Popen(AS_NOBODY + [fixture("tidrace"), "attacker", str(nthreads),
                                             str(nexit), fifo], stdout=subprocess.PIPE, text=True)
    reuser = None
    try:
        line = attacker.stdout.readline().split()
        check(line[:1] == ["ready"] and len(line) == nexit + 1, "the attacker did not start")
        reuser = subprocess.Popen([fixture("tidrace"), "reuser", str(daemon.proc.pid), fifo,
                                   "5", str(nthreads)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        reuser.stdin.write(" ".join(line[1:]) + "\n")
        reuser.stdin.close()
        check(reuser.stdout.readline().strip() == "ready", "the reuser did not start")
        sid = int(daemon.ok(["attach", str(attacker.pid), "-o", out, "-d", "2.5"],
                            user=NOBODY).strip())
        reused = reuser.stdout.readline().strip()
        reuser.wait(timeout=60)
        m = re.match(r"reused (\d+)( late)?$", reused)
        check(m, "reuser: %r" % reused)
        info = wait_ended(daemon, sid, timeout=30)
        stacks = folded_of_run(out, info)
        return int(m.group(1)), bool(m.group(2)), stacks
    finally:
        kill(attacker)
        if reuser:
            kill(reuser)


def test_tid_reuse(d):
    """Item 1: threads of nobody's process exit while stoked opens events on
    the TIDs it listed, and root processes are created with those TIDs
    (clone3 set_tid, the deterministic form of a root service forking
    workers). The session must hold samples of nobody's process only."""
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    try:
        for attempt in range(5):
            reused, late, stacks = tid_reuse_once(d, daemon, out, 1000, 300)
            text = frames_text(stacks)
            for fr, n in stacks:
                print("  %5d %s" % (n, ";".join(fr[-3:])))
            print("attempt %d: %d TIDs reused by root%s, %d stacks"
                  % (attempt, reused, " (stoked stopped too late)" if late else "",
                     len(stacks)))
            check("root_only_secret_key_schedule" not in text and "rootwork" not in text,
                  "nobody's profile holds a root process:\n%s"
                  % "\n".join(line for line in text.splitlines() if "root" in line)[:2000])
            check("attacker_spin" in text, "the attacker itself was not profiled")
            if reused and not late:
                break
        check(reused > 0 and not late, "the attack never reused a TID in time: nothing "
              "was shown")
        check("threads left the process during the attach" in daemon.logtext(),
              "stoked did not notice the reused TIDs")
    finally:
        daemon.stop()


class OpenWatch:
    """inotify IN_OPEN on some paths (O_PATH opens do not count)."""

    def __init__(self, paths):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        check(self.fd >= 0, "inotify_init1 failed")
        self.wd = {}
        for p in paths:
            wd = self.libc.inotify_add_watch(self.fd, p.encode(), 0x20)  # IN_OPEN
            check(wd >= 0, "inotify on %s failed (errno %d)" % (p, ctypes.get_errno()))
            self.wd[wd] = p

    def opened(self):
        seen = set()
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            off = 0
            while off < len(buf):
                wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, off)
                seen.add(self.wd.get(wd, "?"))
                off += 16 + n

    def close(self):
        os.close(self.fd)


def mapswap_attack(d, pairs, seconds=0.4):
    """Run the mapping-swap attack by nobody under a root stoked. pairs:
    (library file name, what its directory becomes: a path). Returns the
    session's stacks and the daemon."""
    out = open_to_nobody(d)
    home = os.path.join(d, "home")
    os.mkdir(home, 0o755)
    os.chown(home, NOBODY, NOBODY)
    args = []
    for i, (name, target) in enumerate(pairs):
        libdir = os.path.join(home, "lib%d" % i)
        os.mkdir(libdir, 0o755)
        lib = os.path.join(libdir, name)
        shutil.copy(fixture("libswap-decoy.so"), lib)
        os.chown(libdir, NOBODY, NOBODY)
        os.chown(lib, NOBODY, NOBODY)
        args += [lib, target]
    daemon = Daemon(d).start()
    attacker = subprocess.Popen(AS_NOBODY + [fixture("mapswap"), str(seconds)] + args,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        check(attacker.stdout.readline().strip() == "ready", "mapswap did not start")
        sid = int(daemon.ok(["attach", str(attacker.pid), "-o", out, "-d", "3", "-g", "fp"],
                            user=NOBODY).strip())
        # Stop stoked while the library is mapped, run, unmapped and its
        # directory swapped: it then reads the MMAP records, and opens their
        # paths, only once the paths lead elsewhere (the deterministic form
        # of a busy daemon draining late).
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        try:
            attacker.stdin.write("go\n")
            attacker.stdin.flush()
            check(attacker.stdout.readline().strip() == "swapped", "mapswap failed")
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        info = wait_ended(daemon, sid, timeout=30)
        return folded_of_run(out, info), daemon
    except BaseException:
        daemon.stop()
        raise
    finally:
        kill(attacker)


def test_symlink_swap(d):
    """Item 2: the directory of a library nobody mapped becomes a symlink to
    a root-only (0700) directory holding a library of the same name whose
    code is TOPSECRET_alpha_key_derivation: that name must never appear."""
    secret = os.path.join(d, "secret")
    os.mkdir(secret, 0o700)
    shutil.copy(fixture("libswap-secret.so"), os.path.join(secret, "libswap.so"))
    os.chmod(os.path.join(secret, "libswap.so"), 0o600)
    stacks, daemon = mapswap_attack(d, [("libswap.so", secret)])
    try:
        text = frames_text(stacks)
        for fr, n in stacks:
            print("  %5d %s" % (n, ";".join(fr[-3:])))
        check("TOPSECRET" not in text, "a root-only file's symbol reached nobody's profile:\n%s"
              % "\n".join(line for line in text.splitlines() if "TOPSECRET" in line)[:2000])
        check("mapswap_idle" in text or "main" in text, "the attacker was not profiled")
        # The switch is for other users only: the same daemon still reads
        # root-only files for root, so a root process running the secret
        # library is named in root's session.
        rootout = os.path.join(d, "out-root")
        os.mkdir(rootout)
        owner = subprocess.Popen([fixture("mapswap"), "run", os.path.join(secret, "libswap.so")],
                                 stdout=subprocess.PIPE, text=True)
        try:
            check(owner.stdout.readline().strip() == "ready", "mapswap run did not start")
            sid = int(daemon.ok(["attach", str(owner.pid), "-o", rootout, "-d", "1.5",
                                 "-g", "fp"]).strip())
            own = frames_text(folded_of_run(rootout, wait_ended(daemon, sid, timeout=30)))
            check("TOPSECRET_alpha_key_derivation" in own,
                  "root's own session no longer names a root-only library")
        finally:
            kill(owner)
    finally:
        daemon.stop()


def test_devnode_path(d):
    """Item 2: mapped paths that now lead to /dev/kmsg and to a FIFO: stoked
    must open neither (inotify IN_OPEN; an O_PATH look does not count)."""
    fifodir = os.path.join(d, "fifos")
    os.mkdir(fifodir, 0o755)
    fifo = os.path.join(fifodir, "pipe")
    os.mkfifo(fifo, 0o644)
    watch = OpenWatch(["/dev/kmsg", fifo])
    time.sleep(0.5)
    noise = watch.opened()  # someone else reading /dev/kmsg: not ours to judge
    try:
        stacks, daemon = mapswap_attack(d, [("kmsg", "/dev"), ("pipe", fifodir)])
        daemon.stop()
        opened = watch.opened()
        print("opened during the attack:", sorted(opened), "(before: %s)" % sorted(noise))
        check(fifo not in opened, "stoked opened a FIFO planted at a mapped path")
        if "/dev/kmsg" not in noise:
            check("/dev/kmsg" not in opened, "stoked opened /dev/kmsg through a mapped path")
    finally:
        watch.close()


def test_big_perfmap(d):
    """Item 4: nobody's process runs JIT code that its /tmp/perf-PID.map
    names in part (so the map is looked up again on every miss), the map
    truncated up to 3 GB (sparse) and appended to every 50 ms, while root
    profiles a process of its own in the same stoked. The daemon must stay
    small, answer status fast (both sessions run through the measurement),
    and root's session must lose nothing; the map's first line still names
    nobody's JIT code."""
    out = open_to_nobody(d)
    rootout = os.path.join(d, "out-root")
    os.mkdir(rootout)
    daemon = Daemon(d).start()
    jit = subprocess.Popen(AS_NOBODY + [fixture("jitspin"), str(3 << 30), "50"],
                           stdout=subprocess.PIPE, text=True)
    mapfile = "/tmp/perf-%d.map" % jit.pid
    root = spawn_split(0, 50)
    try:
        check(jit.stdout.readline().startswith("ready"), "jitspin did not start")
        rsid = int(daemon.ok(["attach", str(root.pid), "-o", rootout, "-d", "5", "-g", "fp"])
                   .strip())
        nsid = int(daemon.ok(["attach", str(jit.pid), "-o", out, "-d", "4.5", "-g", "fp"],
                             user=NOBODY).strip())
        worst, peak_kb = 0.0, 0
        s = daemon.raw()
        # From 0.5 s on: the first drains of two new sessions are the
        # daemon's own work (item 8), not the map's; the map is read on
        # nobody's first JIT sample and again after each append.
        time.sleep(0.5)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                reply = request(s, b'{"op":"status"}\n')
            except socket.timeout:
                check(False, "status got no answer within 10 s")
            if time.monotonic() - t0 > 0.1:
                print("status took %.0f ms at +%.2f s"
                      % ((time.monotonic() - t0) * 1000, t0 - (end - 3.5)))
            worst = max(worst, time.monotonic() - t0)
            check(reply.get("ok", True) is not False, "status failed: %r" % reply)
            peak_kb = max(peak_kb, daemon.rss_kb())
            time.sleep(0.05)
        s.close()
        ninfo = wait_ended(daemon, nsid, timeout=60)
        rinfo = wait_ended(daemon, rsid, timeout=60)
        with open("/proc/%d/status" % daemon.proc.pid) as f:
            hwm_kb = int(re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M).group(1))
        print("status worst %.0f ms; daemon RSS peak %d kB, high-water %d kB; root session: "
              "%d samples, %d lost; nobody's: %d samples"
              % (worst * 1000, peak_kb, hwm_kb, rinfo["samples"], rinfo["lost"],
                 ninfo["samples"]))
        check(hwm_kb < 256 * 1024, "daemon memory reached %d kB" % hwm_kb)
        # The acceptance bound is 200 ms; on a machine loaded past its
        # CPUs, scheduling alone delays a reply more than that, so the bound
        # there only tells a stall (the attack: > 10 s) from a busy machine.
        load = os.getloadavg()[0]
        limit = 0.2 if load < (os.cpu_count() or 1) else 2.0
        print("status bound %.0f ms (load average %.1f)" % (limit * 1000, load))
        check(worst < limit, "status took %.0f ms" % (worst * 1000))
        check(rinfo["lost"] == 0 and rinfo["samples"] > 0,
              "root's session lost %d samples (%d kept)" % (rinfo["lost"], rinfo["samples"]))
        text = frames_text(folded_of_run(out, ninfo))
        check("jit_spin_loop" in text, "the JIT map's first line was not used")
        check("bytes not read" in daemon.logtext(), "the refused bytes were not reported")
    finally:
        kill(jit)
        kill(root)
        daemon.stop()
        if os.path.exists(mapfile):
            os.unlink(mapfile)


TESTS = {
    "tid_reuse": test_tid_reuse,
    "symlink_swap": test_symlink_swap,
    "devnode_path": test_devnode_path,
    "big_perfmap": test_big_perfmap,
}

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: the security tests need root (they set up attacks by uid 65534 "
              "against a root stoked)")
        sys.exit(1 if os.environ.get("STOKE_REQUIRE_PERF") == "1" else 77)
    run_tests(TESTS)
