#!/usr/bin/env python3
"""Bad input gets a clear one-line error and a non-zero exit, never a crash,
and never a half-written output file."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import check, fixture, run_stoke, run_tests, spawn, kill  # noqa: E402


def one_line_error(p, code, pattern):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    check(p.returncode == code, "exit %d, expected %d: %r" % (p.returncode, code, p.stderr))
    check(len(lines) == 1, "expected one error line, got %r" % p.stderr)
    check(pattern.lower() in lines[0].lower(), "error %r lacks %r" % (lines[0], pattern))
    check(p.returncode < 128, "crashed: %r" % p.returncode)


def no_temp_files(d):
    left = [f for f in os.listdir(d) if f.startswith(".")]
    check(not left, "temporary files left behind: %r" % left)


def test_no_such_pid(d):
    out = os.path.join(d, "x.folded")
    pid = 4194000  # above the default pid_max, so never a live process
    p = run_stoke(["record", "-p", str(pid), "-d", "1", "-o", out])
    one_line_error(p, 1, "no such process")
    check(not os.path.exists(out), "output written for a bad PID")
    no_temp_files(d)


def test_bad_pid_syntax(d):
    for bad in ("abc", "-5", "0", "12,", ""):
        p = run_stoke(["record", "-p", bad, "-o", os.path.join(d, "x.folded")])
        one_line_error(p, 2, "invalid PID")


def test_command_not_found(d):
    out = os.path.join(d, "x.folded")
    p = run_stoke(["record", "-o", out, "--", "/nonexistent/stoke-no-such-cmd"])
    one_line_error(p, 127, "cannot execute")
    p = run_stoke(["record", "-o", out, "--", "stoke-no-such-command-xyz"])
    one_line_error(p, 127, "No such file")
    no_temp_files(d)


def test_bad_options(d):
    out = os.path.join(d, "x.folded")
    cases = [
        (["record", "--bogus", "--", "true"], "unknown option"),
        (["record", "-F", "0", "--", "true"], "invalid frequency"),
        (["record", "-F", "abc", "--", "true"], "invalid frequency"),
        (["record", "-e", "nope", "--", "true"], "unknown event"),
        (["record", "-d", "-1", "--", "true"], "invalid duration"),
        (["record", "-g", "lbr", "--", "true"], "call-graph"),
        (["record", "-o", out], "nothing to profile"),
        (["record", "-p", "1", "-o", out, "--", "true"], "either"),
        (["record", "-o", os.path.join(d, "x.weird"), "--", "true"], "output format"),
        (["record", "-F"], "needs an argument"),
        (["nosuchcommand"], "unknown command"),
    ]
    for args, pattern in cases:
        p = run_stoke(args)
        one_line_error(p, 2, pattern)


def test_permission_denied(d):
    # An unprivileged user may not profile another user's process.
    out = os.path.join(d, "x.folded")
    if os.geteuid() != 0:
        target = os.getppid()
        p = run_stoke(["record", "-p", "1", "-d", "0.5", "-o", out])
    else:
        target = spawn([fixture("split"), "0"])
        try:
            os.chmod(d, 0o777)
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                os.environ["STOKE"], "record", "-p", str(target.pid),
                                "-d", "0.5", "-o", out],
                               capture_output=True, text=True, timeout=30)
        finally:
            kill(target)
    one_line_error(p, 1, "permission denied")
    check("perf_event_paranoid" in p.stderr and "CAP_PERFMON" in p.stderr,
          "no hint about perf_event_paranoid / CAP_PERFMON: %r" % p.stderr)
    check(not os.path.exists(out), "output written despite the error")


def test_unwritable_output(d):
    out = "/nonexistent-dir/x.folded"
    p = run_stoke(["record", "-o", out, "--", fixture("split"), "0.2"])
    check(p.returncode == 1, "exit %d: %r" % (p.returncode, p.stderr))
    check("cannot write" in p.stderr, "no clear error: %r" % p.stderr)


TESTS = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    run_tests(TESTS)
