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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (Fail, check, fixture, kill, parse_folded,  # noqa: E402
                       run_tests)
from test_daemon import (NOBODY, Daemon, open_to_nobody, run_dirs,  # noqa: E402
                         wait_ended)

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
                                   "5"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        reuser.stdin.write(" ".join(line[1:]) + "\n")
        reuser.stdin.close()
        check(reuser.stdout.readline().strip() == "ready", "the reuser did not start")
        sid = int(daemon.ok(["attach", str(attacker.pid), "-o", out, "-d", "2.5"],
                            user=NOBODY).strip())
        reused = reuser.stdout.readline().strip()
        reuser.wait(timeout=60)
        m = re.match(r"reused (\d+)", reused)
        check(m, "reuser: %r" % reused)
        info = wait_ended(daemon, sid, timeout=30)
        stacks = folded_of_run(out, info)
        return int(m.group(1)), stacks
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
        for attempt in range(3):
            reused, stacks = tid_reuse_once(d, daemon, out, 1000, 300)
            text = frames_text(stacks)
            for fr, n in stacks:
                print("  %5d %s" % (n, ";".join(fr[-3:])))
            print("attempt %d: %d TIDs reused by root, %d stacks" % (attempt, reused,
                                                                      len(stacks)))
            check("root_only_secret_key_schedule" not in text and "rootwork" not in text,
                  "nobody's profile holds a root process:\n%s"
                  % "\n".join(line for line in text.splitlines() if "root" in line)[:2000])
            check("attacker_spin" in text, "the attacker itself was not profiled")
            if reused:
                break
        check(reused > 0, "the attack never reused a TID: nothing was shown")
        check("threads left the process during the attach" in daemon.logtext(),
              "stoked did not notice the reused TIDs")
    finally:
        daemon.stop()


TESTS = {
    "tid_reuse": test_tid_reuse,
}

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: the security tests need root (they set up attacks by uid 65534 "
              "against a root stoked)")
        sys.exit(1 if os.environ.get("STOKE_REQUIRE_PERF") == "1" else 77)
    run_tests(TESTS)
