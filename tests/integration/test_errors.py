#!/usr/bin/env python3
"""Bad input gets a clear one-line error and a non-zero exit, never a crash,
and never a half-written output file."""
import os
import resource
import stat
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import Skip, check, fixture, run_stoke, run_tests, spawn, kill  # noqa: E402


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
            # the output is checked first: it must be writable by 65534
            os.chmod(os.path.dirname(d), 0o711)
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


def as_nobody(args, **kw):
    """Run stoke as uid/gid 65534 (set up as root); Skip when not root."""
    if os.geteuid() != 0:
        raise Skip("needs root to switch to uid 65534")
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           os.environ["STOKE"]] + args,
                          capture_output=True, text=True, timeout=60, **kw)


def test_output_checked_before_sampling(d):
    # A bad output fails before the command runs (the marker proves it never
    # started), with one line and no profile claimed anywhere.
    os.chmod(os.path.dirname(d), 0o711)
    os.chmod(d, 0o777)
    marker = os.path.join(d, "started")
    cmd = ["--", "sh", "-c", "touch " + marker]
    os.mkdir(os.path.join(d, "adir"))
    cases = [
        ["record", "-o", "/nonexistent-dir/x.folded"],
        ["record", "-f", "folded", "-o", os.path.join(d, "adir")],
        ["record", "--output-dir", "/proc/nope"],
        ["record", "--output-dir", "/proc/self"],
    ]
    for args in cases:
        p = run_stoke(args + cmd)
        one_line_error(p, 1, "cannot write")
        check(not os.path.exists(marker), "%r sampled before failing" % args)
        check(" -> " not in p.stderr, "a summary claims an output: %r" % p.stderr)
    # An unprivileged user and a directory only root may write.
    ro = os.path.join(d, "rootonly")
    os.mkdir(ro, 0o755)
    for args in (["record", "-o", os.path.join(ro, "x.folded")],
                 ["record", "--output-dir", ro]):
        p = as_nobody(args + cmd)
        one_line_error(p, 1, "permission denied")
        check(not os.path.exists(marker), "%r (uid 65534) sampled before failing" % args)
    check(not os.listdir(ro), "files left in %s: %r" % (ro, os.listdir(ro)))
    # report checks -o before reading its input.
    p = run_stoke(["report", "/nonexistent.pb.gz", "-o", "/nonexistent-dir/x.folded"])
    one_line_error(p, 1, "cannot write")


def test_output_not_regular(d):
    # -o never replaces a device, a FIFO or a dangling symlink with a regular
    # file (as root, /dev/null itself used to be replaced); a symlink to a
    # regular file is followed: its target is written, the link stays.
    os.chmod(os.path.dirname(d), 0o711)
    os.chmod(d, 0o777)
    marker = os.path.join(d, "started")
    cmd = ["--", "sh", "-c", "touch " + marker]
    fifo = os.path.join(d, "p.folded")
    os.mkfifo(fifo)
    dangling = os.path.join(d, "dangling.folded")
    os.symlink(os.path.join(d, "nothing"), dangling)
    # A null device of our own: were the check broken, the machine's
    # /dev/null would not be the one destroyed.
    devnull = os.path.join(d, "null")
    os.mknod(devnull, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    synth = os.path.join(os.environ.get("STOKE_SOURCE_ROOT", "."), "tests/data/synth.pb")
    for target in (devnull, fifo, dangling):
        for args in (["record", "-f", "folded", "-o", target] + cmd,
                     ["report", synth, "-f", "folded", "-o", target]):
            p = run_stoke(args)
            one_line_error(p, 1, "not a regular file")
            check(not os.path.exists(marker), "%r sampled before failing" % args)
    st = os.lstat(devnull)
    check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3),
          "the null device was replaced")
    check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")
    check(os.path.islink(dangling) and not os.path.exists(dangling),
          "the dangling symlink was replaced or followed")
    # Followed symlink, as root and as uid 65534 (its own file).
    real = os.path.join(d, "real.folded")
    link = os.path.join(d, "link.folded")
    for runner in (run_stoke, as_nobody):
        for f in (real, link):
            if os.path.lexists(f):
                os.unlink(f)
        with open(real, "w") as f:
            f.write("old 1\n")
        os.chmod(real, 0o666)
        os.symlink(real, link)
        p = runner(["report", synth, "-f", "folded", "-o", link])
        check(p.returncode == 0, "report -o symlink: %r" % p.stderr)
        check(os.path.islink(link), "the symlink was replaced by a file")
        with open(real, "rb") as f:
            got = f.read()
        check(b"old 1" not in got and got.count(b"\n") > 3,
              "the symlink's target was not written: %r" % got[:80])
    no_temp_files(d)


def test_write_error_errno(d):
    # A full disk is reported as such, not as an I/O error: stdout on
    # /dev/full, and a file on a 16 KiB tmpfs.
    synth = os.path.join(os.environ.get("STOKE_SOURCE_ROOT", "."), "tests/data/synth.pb")
    with open("/dev/full", "w") as full:
        p = subprocess.run([os.environ["STOKE"], "report", synth, "-f", "svg", "-o", "-"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    one_line_error(p, 1, "no space left on device")
    if os.geteuid() != 0:
        return
    mnt = os.path.join(d, "tiny")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip("cannot mount a tmpfs: " + r.stderr.strip())
    try:
        with open(os.path.join(mnt, "fill"), "wb") as f:
            try:
                f.write(b"x" * 65536)
            except OSError:
                pass
        p = run_stoke(["report", synth, "-f", "svg", "-o", os.path.join(mnt, "x.svg")])
        one_line_error(p, 1, "no space left on device")
        no_temp_files(mnt)
    finally:
        subprocess.run(["umount", mnt])


def test_gzip_bomb(d):
    # 4 GiB of zeros gzipped to ~4 MB: refused early, streaming, with a
    # bounded cost in time and memory (measured on the child alone).
    # After a full flush deflate starts afresh, so every further MiB of
    # zeros compresses to the same bytes: repeat them (the trailer's CRC is
    # never reached).
    bomb = os.path.join(d, "bomb.pb.gz")
    zeros = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    chunk = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    with open(bomb, "wb") as f:
        f.write(head + chunk * 4095 + c.flush())
    check(os.path.getsize(bomb) > 4000000, "the bomb is %d bytes" % os.path.getsize(bomb))
    t0 = time.monotonic()
    p = run_stoke(["report", bomb, "-o", os.path.join(d, "x.folded")])
    elapsed = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    one_line_error(p, 1, "bomb")
    check(elapsed < 2.0, "refusing the bomb took %.1f s" % elapsed)
    check(ru.ru_maxrss < 400 * 1024, "refusing the bomb peaked at %d MB RSS" %
          (ru.ru_maxrss // 1024))
    no_temp_files(d)


TESTS = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    run_tests(TESTS)
