#!/usr/bin/env python3
"""stoked under attack (issue #12): each test reproduces an attack by a
second uid (65534) against a root stoked and asserts that it now fails
safely. They run as root (CI) and drive the attacker's side with setpriv.

What each test reproduces, and what it asserts instead:
  fd_exhaustion       a user takes the daemon to its fd limit (sessions on
                      a many-threaded process, then clients): accept() used
                      to spin, the log grew MB/s and root got no reply. Now
                      the user is refused at its budget, root's status
                      answers within 200 ms, the log and CPU stay bounded.
  emfile_spare        at the process fd limit itself, a spare fd answers
                      (EMFILE to a user, service to root) instead of a spin.
  memory_budget       32 sessions x --max-samples pinned GBs: now the sum
                      over one uid's sessions is bounded (--max-user-memory).
  control_chars       "status\\u0000" was accepted as status.
  stale_tmpdirs       hidden temporary run directories stayed after kill -9.
  outdir_error_logged an output directory error was logged as "may not
                      profile pid".
  cap_not_trusted     CAP_SYS_PTRACE read from /proc after connect() was
                      credited to the connection; privilege now comes from
                      connect-time credentials (root, --admin-group).
  responsiveness      one uid does its worst (many clients, slow readers, a
                      big attach, big profiles written) while root's status
                      must answer in < 200 ms every time.
  symbolizer_budget   a user maps many copies of a big library and attaches
                      (continuous: its mapped code is preloaded): root's
                      stoked loaded every copy's symbols. Now what the
                      symbolizer loads counts in --max-user-memory: the
                      daemon's VmHWM stays near the budget, the session
                      still writes profiles saying modules_capped, and
                      root's concurrent session is fully named.
"""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import check, kill, run_tests  # noqa: E402
from test_daemon import (NOBODY, Daemon, check_run_dir, open_to_nobody,  # noqa: E402
                         proc_ticks, request, spawn_split, wait_ended)

AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
LATENCY_BOUND = 0.200  # seconds: root's status, whatever another uid does
LOAD_BEFORE = os.getloadavg()[0]  # others' load, read before any attack starts


def threads_target(n, user=NOBODY):
    """A process of user with n idle threads (each costs the daemon one fd
    per CPU when attached)."""
    code = ("import threading,time\n"
            "ev=threading.Event()\n"
            "ts=[threading.Thread(target=ev.wait,daemon=True) for _ in range(%d)]\n"
            "[t.start() for t in ts]\n"
            "print(flush=True)\n"
            "time.sleep(600)\n" % n)
    p = subprocess.Popen(AS_NOBODY + ["python3", "-c", code] if user == NOBODY
                         else ["python3", "-c", code], stdout=subprocess.PIPE)
    p.stdout.readline()
    return p


def root_status_latency(daemon, timeout=2.0):
    """Connect as root and ask for status; the seconds until the answer
    (timeout + 1 when there is none, or a refusal)."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(daemon.sock)
        s.sendall(b'{"op":"status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                return timeout + 1, "closed"
            buf += chunk
        reply = json.loads(buf)
        if not reply.get("ok"):
            return timeout + 1, reply
        return time.monotonic() - t0, reply
    except (OSError, ValueError) as e:
        return timeout + 1, str(e)
    finally:
        s.close()


def latency_bound():
    """The acceptance bound, 200 ms, for a release build on a machine with
    CPUs to spare. An ASan+UBSan stoked runs every instruction 2-3x slower,
    so its bound is 2.5x; a machine loaded past its CPUs by others (the load
    average before the attack) delays any reply by scheduling alone, and
    there the bound only tells a stall (the attacks: seconds, or never) from
    a busy machine. Each relaxation is printed."""
    bound, why = LATENCY_BOUND, "release build"
    try:
        libs = subprocess.run(["ldd", os.environ.get("STOKED", "stoked")],
                              capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        libs = ""
    if "libasan" in libs:
        bound, why = bound * 2.5, "ASan build"
    load = LOAD_BEFORE
    if load >= (os.cpu_count() or 1) * 2:
        bound, why = max(bound, 1.0), "%s, machine loaded (load average %.1f)" % (why, load)
    return bound, why


def check_latencies(lat, what):
    lat = sorted(lat)
    bound, why = latency_bound()
    print("root status over %d tries %s: median %.1f ms, max %.1f ms (bound %.0f ms: %s)"
          % (len(lat), what, 1000 * lat[len(lat) // 2], 1000 * lat[-1], 1000 * bound, why))
    check(lat[-1] < bound, "root's status took %.0f ms %s (bound %.0f ms: %s)"
          % (1000 * lat[-1], what, 1000 * bound, why))


NOBODY_CLIENT = r"""
import json, socket, sys, time
path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
held, refused = [], []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
    except OSError as e:
        refused.append(str(e))
        break
    if mode == "pipeline":
        # never read: the daemon must drop us, not spin or grow
        s.setblocking(False)
        try:
            for _ in range(20000):
                s.send(b'{"op":"status"}\n')
        except OSError:
            pass
    else:
        try:
            s.sendall(b'{"op":"status"}\n')
            line = s.makefile().readline()
        except OSError as e:
            refused.append(str(e))
            break
        if not line:
            refused.append("closed without a reply")
            break
        r = json.loads(line)
        if not r.get("ok"):
            refused.append(r["error"] + ": " + r["message"])
            break
    held.append(s)
print(json.dumps({"held": len(held), "refused": refused}), flush=True)
sys.stdin.read()  # hold the connections until told
"""


def nobody_clients(daemon, n, mode="hold"):
    """A process of uid 65534 that opens up to n clients (until one is
    refused) and holds them; returns (process, report)."""
    p = subprocess.Popen(AS_NOBODY + ["python3", "-c", NOBODY_CLIENT, daemon.sock, str(n), mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return p, json.loads(p.stdout.readline())


def nobody_attach(daemon, pid, out, *extra):
    return daemon.stoke(["attach", str(pid), "-o", out] + list(extra), user=NOBODY)


def test_fd_exhaustion(d):
    out = open_to_nobody(d)
    # A small fd limit, so that the attack fits in a test: the daemon
    # keeps it (it raises the soft limit to the hard one only). One
    # session of the 40-thread target fits nobody's fd budget, a second
    # does not.
    daemon = Daemon(d, "--max-user-fds", "120")
    daemon.args = ["prlimit", "--nofile=200:200", "--"] + daemon.args
    daemon.start()
    target = threads_target(40)
    clients = None
    try:
        # Sessions on a 40-thread process: 40 x CPUs fds each.
        results = [nobody_attach(daemon, target.pid, out) for _ in range(8)]
        ok = sum(p.returncode == 0 for p in results)
        why = [p.stderr.strip() for p in results if p.returncode != 0]
        print("nobody's attaches: %d accepted, refusals: %s" % (ok, why[:1]))
        # Then clients until refused.
        clients, rep = nobody_clients(daemon, 300)
        print("nobody's clients: %r" % rep)
        log0 = os.path.getsize(daemon.log)
        t0 = proc_ticks(daemon.proc.pid)
        lat = []
        for _ in range(20):
            dt, reply = root_status_latency(daemon)
            check(dt <= 2.0, "root's status got no answer: %r" % (reply,))
            lat.append(dt)
            time.sleep(0.1)
        used = (proc_ticks(daemon.proc.pid) - t0) / os.sysconf("SC_CLK_TCK")
        grown = os.path.getsize(daemon.log) - log0
        print("over %.1f s: daemon CPU %.2f s, log grew %d bytes" % (20 * 0.1, used, grown))
        check_latencies(lat, "with nobody at its limits")
        check(used < 0.5, "the daemon spins: %.2f s of CPU" % used)
        check(grown < 16 * 1024, "the log grew %d bytes in 2 s" % grown)
        check(why, "nobody was never refused: 8 sessions of a 40-thread process")
        check(ok >= 1, "nobody could not attach to its own process at all")
        check(all("max-user-fds" in w or "file descriptors" in w for w in why),
              "unclear refusal: %r" % why)
        check(rep["refused"], "nobody's clients were never refused")
        # More refused attempts only add a bounded number of log lines.
        log0 = os.path.getsize(daemon.log)
        for _ in range(3):
            p, _ = nobody_clients(daemon, 100)
            p.stdin.close()
            p.wait()
        for _ in range(30):
            nobody_attach(daemon, target.pid, out)
        grown = os.path.getsize(daemon.log) - log0
        print("30 refused attaches and 3 refused floods logged %d bytes" % grown)
        check(grown < 8 * 1024, "refusals are not rate-limited: %d bytes" % grown)
    finally:
        if clients:
            clients.stdin.close()
            clients.wait()
        kill(target)
        daemon.stop()


def test_emfile_spare(d):
    """At the process fd limit itself (reached here by root's own clients,
    which no per-user budget bounds), accept() fails with EMFILE: the loop
    used to spin on it and log without end. Now spare fds let it answer:
    another user gets one EMFILE line, root is served while spares last,
    and again as soon as fds are freed."""
    open_to_nobody(d)
    daemon = Daemon(d, "--max-clients", "1000")
    daemon.args = ["prlimit", "--nofile=64:64", "--"] + daemon.args
    daemon.start()
    held = []
    try:
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.sock)
            held.append(s)
        time.sleep(0.5)  # the daemon has accepted what it could
        print("daemon fds: %d of 64" % len(os.listdir("/proc/%d/fd" % daemon.proc.pid)))
        log0 = os.path.getsize(daemon.log)
        t0 = proc_ticks(daemon.proc.pid)
        # The refusal may come before the request is sent (then the send
        # fails with EPIPE): read it either way.
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); s.settimeout(3)\n"
                "s.connect(sys.argv[1])\n"
                "try: s.sendall(b'{\"op\":\"status\"}\\n')\n"
                "except OSError: pass\n"
                "print(s.makefile().readline(),end='')\n")
        p = subprocess.run(AS_NOBODY + ["python3", "-c", code, daemon.sock],
                           capture_output=True, text=True, timeout=30)
        print("nobody at EMFILE:", p.stdout.strip() or p.stderr.strip()[-200:])
        check(p.returncode == 0 and '"EMFILE"' in p.stdout,
              "nobody got no EMFILE reply: %r %r" % (p.stdout, p.stderr[-300:]))
        time.sleep(2)
        used = (proc_ticks(daemon.proc.pid) - t0) / os.sysconf("SC_CLK_TCK")
        grown = os.path.getsize(daemon.log) - log0
        print("at the fd limit for 2 s: daemon CPU %.2f s, log grew %d bytes" % (used, grown))
        check(used < 0.5, "the daemon spins at EMFILE: %.2f s of CPU in 2 s" % used)
        check(grown < 8 * 1024, "the log grew %d bytes in 2 s at EMFILE" % grown)
        # The connections root holds were served while spares lasted (the
        # last one is kept for refusals), the rest got the EMFILE line.
        served = refused = 0
        for s in held:
            s.settimeout(2)
            try:
                s.sendall(b'{"op":"status"}\n')
            except OSError:
                pass
            try:
                line = s.makefile().readline()
            except OSError:
                line = ""
            served += '"ok":true' in line
            refused += '"EMFILE"' in line
        print("root's %d connections: %d served, %d told EMFILE" % (len(held), served,
                                                                   refused))
        check(served + refused == len(held), "some of root's connections got no answer")
        # Once fds are freed, root is served again, quickly.
        for s in held[:10]:
            s.close()
        del held[:10]
        time.sleep(0.3)
        dt, reply = root_status_latency(daemon)
        print("root after freeing fds: %.1f ms %r" % (1000 * dt, reply))
        check(dt < LATENCY_BOUND, "root's status after EMFILE: %r after %.0f ms"
              % (reply, 1000 * dt))
    finally:
        for s in held:
            s.close()
        daemon.stop()


def test_memory_budget(d):
    out = open_to_nobody(d)
    # A session costs 32 MiB at start (sessions.h): three fit, a fourth
    # does not, and the three outgrow the budget as they take samples.
    daemon = Daemon(d, "--max-user-memory", "97M").start()
    target = spawn_split(0, 50, user=NOBODY)
    try:
        sids = []
        refusal = None
        for _ in range(8):
            p = nobody_attach(daemon, target.pid, out, "-F", "4000")
            if p.returncode != 0:
                refusal = p.stderr.strip()
                break
            sids.append(int(p.stdout.strip()))
        print("nobody attached %d sessions; then: %s" % (len(sids), refusal))
        check(refusal and "max-user-memory" in refusal,
              "no memory budget refusal: %d sessions, %r" % (len(sids), refusal))
        check(len(sids) == 3, "%d sessions under a 97M budget" % len(sids))
        # Root is not limited by a user's budget.
        rsid = int(daemon.ok(["attach", str(target.pid), "-o", out]).strip())
        # The sessions grow: the largest ends, writing what it has, saying why.
        deadline = time.monotonic() + 40
        ended = None
        while time.monotonic() < deadline and not ended:
            for sid in sids:
                info = daemon.json(["status", str(sid)])["session"]
                if info["state"] == "ended":
                    ended = info
            time.sleep(0.2)
        print("ended:", ended)
        check(ended, "no session of nobody ended at the budget within 40 s")
        check(ended["last_error"] and "max-user-memory" in ended["last_error"],
              "no reason given: %r" % ended)
        check_run_dir(os.path.join(out, ended["last_run"]), owner=NOBODY)
        check(daemon.json(["status", str(rsid)])["session"]["state"] == "running",
              "root's session was ended by nobody's budget")
    finally:
        kill(target)
        daemon.stop()


def test_control_chars(d):
    open_to_nobody(d)
    daemon = Daemon(d).start()
    try:
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); s.connect(sys.argv[1])\n"
                "for line in sys.argv[2:]:\n"
                "    s.sendall(line.encode()+b'\\n'); print(s.makefile().readline(),end='')\n")
        lines = ['{"op":"status\\u0000"}', '{"op":"list\\u001b"}', '{"op\\u0000":"status"}',
                 '{"op":"status"}']
        p = subprocess.run(AS_NOBODY + ["python3", "-c", code, daemon.sock] + lines,
                           capture_output=True, text=True, timeout=30)
        replies = [json.loads(x) for x in p.stdout.splitlines()]
        print(replies)
        check(len(replies) == 4, "replies: %r %s" % (replies, p.stderr))
        for line, r in zip(lines[:3], replies[:3]):
            check(not r["ok"] and r["error"] == "EINVAL" and "control" in r["message"],
                  "%s was accepted: %r" % (line, r))
        check(replies[3]["ok"], "a clean status after them failed: %r" % replies[3])
    finally:
        daemon.stop()


def test_stale_tmpdirs(d):
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    target = spawn_split(0, 50, user=NOBODY)
    # What a writer killed with -9 leaves (its lock died with it) ...
    dead = os.path.join(out, ".2026-01-01T00-00-00_split.tmp-4000000-0")
    os.mkdir(dead)
    for f in ("profile.folded", ".profile.pb.gz.Ab12Cd"):
        with open(os.path.join(dead, f), "w") as fh:
            fh.write("partial\n")
    # ... and one a live writer still holds.
    live = os.path.join(out, ".2026-01-01T00-00-00_split.tmp-%d-0" % os.getpid())
    os.mkdir(live)
    for p in (out, dead, live):
        os.chown(p, NOBODY, NOBODY)
    lock = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        sid = int(nobody_attach(daemon, target.pid, out, "-d", "1").stdout.strip())
        info = wait_ended(daemon, sid)
        check(info["last_run"], "no run written: %r" % info)
        left = sorted(os.listdir(out))
        print("after the write:", left)
        check(not os.path.exists(dead), "the abandoned temporary directory is still there")
        check(os.path.isdir(live), "a live writer's temporary directory was removed")
        check([n for n in left if n.startswith(".")] == [os.path.basename(live)],
              "hidden entries left: %r" % left)
        # A real kill -9 in the middle of `stoke record`'s write.
        killed = False
        for _ in range(5):
            rec = subprocess.Popen(AS_NOBODY + [os.environ["STOKE"], "record", "--output-dir",
                                                out, "--", "sleep", "0.3"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and rec.poll() is None:
                if any(n.startswith(".") and ".tmp-%d-" % rec.pid in n for n in os.listdir(out)):
                    rec.send_signal(signal.SIGKILL)
                    break
            rec.wait()
            if rec.returncode == -signal.SIGKILL:
                killed = True
                break
        print("stoke record killed while writing: %s; left: %r" % (killed, os.listdir(out)))
        check(killed, "could not kill stoke record in the middle of its write")
        sid = int(nobody_attach(daemon, target.pid, out, "-d", "0.5").stdout.strip())
        wait_ended(daemon, sid)
        left = [n for n in os.listdir(out) if n.startswith(".")]
        check(left == [os.path.basename(live)], "hidden entries left after kill -9: %r" % left)
    finally:
        os.close(lock)
        kill(target)
        daemon.stop()


def test_outdir_error_logged(d):
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    target = spawn_split(0, 50, user=NOBODY)
    frozen = os.path.join(d, "frozen")
    os.mkdir(frozen)
    os.chown(frozen, NOBODY, NOBODY)
    # An immutable directory: writing into it is EPERM, even for its owner.
    r = subprocess.run(["chattr", "+i", frozen], capture_output=True, text=True)
    if r.returncode != 0:
        frozen = None
    try:
        for outdir in [x for x in (frozen, os.path.join(d)) if x]:
            p = nobody_attach(daemon, target.pid, outdir)
            print("refusal:", p.stderr.strip())
            check(p.returncode == 1 and "output directory" in p.stderr,
                  "unclear refusal for %s: %r" % (outdir, p.stderr))
        log = daemon.logtext()
        print(log)
        check("may not profile" not in log, "an output directory error was logged as an "
              "authorization refusal:\n" + log)
        check("output directory" in log, "the failure is not logged:\n" + log)
        # nobody's own process, into its own directory: fine.
        p = nobody_attach(daemon, target.pid, out, "-d", "0.3")
        check(p.returncode == 0, "nobody cannot profile its own process: %r" % p.stderr)
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", frozen])
        kill(target)
        daemon.stop()


def test_cap_not_trusted(d):
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    target = spawn_split(0, 50)  # root's
    try:
        caps = ["--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace"]
        cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + caps
        probe = subprocess.run(cmd + ["grep", "CapEff", "/proc/self/status"],
                               capture_output=True, text=True)
        print("nobody with ambient CAP_SYS_PTRACE:", probe.stdout.strip())
        check(probe.returncode == 0 and probe.stdout.split()[1] != "0" * 16,
              "cannot give nobody CAP_SYS_PTRACE: %r" % probe.stderr)
        p = subprocess.run(cmd + [os.environ["STOKE"], "attach", str(target.pid), "-o", out,
                                  "--socket", daemon.sock], capture_output=True, text=True)
        print("with CAP_SYS_PTRACE:", p.returncode, p.stderr.strip())
        check(p.returncode == 1 and "permission denied" in p.stderr,
              "a capability read after connect() was trusted: %r %r" % (p.stdout, p.stderr))
        # The admin group, as the kernel recorded it at connect().
        daemon.stop()
        daemon = Daemon(d, "--admin-group", "daemon").start()
        admin = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--groups=daemon"]
        p = subprocess.run(admin + [os.environ["STOKE"], "attach", str(target.pid), "-o", out,
                                    "-d", "0.5", "--socket", daemon.sock],
                           capture_output=True, text=True)
        check(p.returncode == 0, "a member of --admin-group was refused: %r" % p.stderr)
        info = wait_ended(daemon, int(p.stdout.strip()))
        check_run_dir(os.path.join(out, info["last_run"]), owner=NOBODY)
    finally:
        kill(target)
        daemon.stop()


def test_responsiveness(d):
    """While uid 65534 does its worst at once, root's status answers in
    < 200 ms every time."""
    out = open_to_nobody(d)
    daemon = Daemon(d).start()
    busy = spawn_split(0, 50, user=NOBODY)
    big = threads_target(1500)
    stop = threading.Event()
    errors = []
    holders = []
    big_attaches = []

    def attacker():
        try:
            # Big profiles: a high-frequency DWARF session, snapshotted
            # (each snapshot symbolizes and writes everything so far).
            p = nobody_attach(daemon, busy.pid, out, "-F", "20000", "--call-graph", "dwarf")
            check(p.returncode == 0, "attach: %r" % p.stderr)
            sid = p.stdout.strip()
            while not stop.is_set():
                # A big attach: 1500 threads, one event per thread and CPU.
                t0 = time.monotonic()
                a = nobody_attach(daemon, big.pid, out)
                if a.returncode == 0:
                    big_attaches.append(time.monotonic() - t0)
                    daemon.stoke(["detach", a.stdout.strip()], user=NOBODY)
                daemon.stoke(["snapshot", sid], user=NOBODY)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    try:
        # Many clients and slow readers: what nobody may hold, held.
        for mode in ("hold", "pipeline"):
            p, rep = nobody_clients(daemon, 12, mode)
            holders.append(p)
            print("nobody holds %d %s clients" % (rep["held"], mode))
        t = threading.Thread(target=attacker)
        t.start()
        lat = []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            dt, reply = root_status_latency(daemon)
            check(dt <= 2.0, "root's status got no answer: %r" % (reply,))
            lat.append(dt)
            time.sleep(0.05)
        stop.set()
        t.join(120)
        check(not errors, "the attacker failed: %r" % errors)
        runs = [n for n in os.listdir(out) if not n.startswith(".")]
        print("the attack wrote %d run directories meanwhile" % len(runs))
        check(len(runs) >= 2, "the attack did not get to write profiles")
        print("nobody attached to the 1500-thread process %d times (%s s each)"
              % (len(big_attaches), ", ".join("%.2f" % x for x in big_attaches[:5])))
        check(big_attaches, "no big attach got through: the attack was not made")
        check_latencies(lat, "while nobody attacks")
    finally:
        stop.set()
        for p in holders:
            p.stdin.close()
            p.wait()
        kill(big)
        kill(busy)
        daemon.stop()


BIG_LIB = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"  # clang-14 (tools/setup): ~4 MB of symbols
MAPPER = r"""
import mmap, os, sys, time
maps = []
for name in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], name), "rb") as f:
        maps.append(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC,
                              flags=mmap.MAP_PRIVATE))
print(len(maps), flush=True)
end = time.monotonic() + 600
while time.monotonic() < end:
    pass
"""


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def test_symbolizer_budget(d):
    if not os.path.exists(BIG_LIB):
        check(False, "no %s (libllvm14, from clang in tools/setup) to map copies of" % BIG_LIB)
    out = open_to_nobody(d)
    libs = os.path.join(d, "libs")
    os.mkdir(libs)
    ncopies = 6
    for i in range(ncopies):
        # Distinct files (not links: the daemon keys modules by inode).
        subprocess.run(["cp", BIG_LIB, os.path.join(libs, "libbig%d.so" % i)], check=True)
    subprocess.run(["chown", "-R", "%d:%d" % (NOBODY, NOBODY), libs], check=True)
    budget = 48 << 20  # one 32 MiB session base plus 16 MiB: one copy's symbols
    daemon = Daemon(d, "--max-user-memory", str(budget >> 20) + "M").start()
    mapper = subprocess.Popen(AS_NOBODY + ["python3", "-c", MAPPER, libs],
                              stdout=subprocess.PIPE, text=True)
    rtarget = spawn_split(0, 70)
    try:
        check(int(mapper.stdout.readline()) == ncopies, "the mapper did not map its copies")
        rout = os.path.join(d, "out-root")
        os.mkdir(rout)
        before = vm_hwm(daemon.proc.pid)
        rsid = int(daemon.ok(["attach", str(rtarget.pid), "-o", rout, "-d", "4"]).strip())
        sid = int(nobody_attach(daemon, mapper.pid, out, "--continuous", "--rotate", "1",
                                "-d", "3").stdout.strip())
        # It may also end earlier, at the budget (memory_budget): either
        # way with a profile.
        info = wait_ended(daemon, sid, 30)
        rinfo = wait_ended(daemon, rsid, 30)
        grown = vm_hwm(daemon.proc.pid) - before
        print("daemon VmHWM grew by %.1f MiB (budget %d MiB, %d copies of %s)"
              % (grown / 2**20, budget >> 20, ncopies, os.path.basename(BIG_LIB)))
        # Root's concurrent session costs up to its base (sessions.h) too;
        # without the bound this grew by ~170 MiB (~22 MiB per copy).
        check(grown <= budget + (48 << 20),
              "stoked's VmHWM grew by %d MiB: over nobody's %d MiB budget plus root's session"
              % (grown >> 20, budget >> 20))
        check(info["last_run"], "nobody's session wrote no profile: %r" % info)
        with open(os.path.join(out, info["last_run"], "run.json")) as f:
            run = json.load(f)
        print("modules_capped:", run.get("modules_capped"))
        check(run.get("modules_capped", 0) >= ncopies - 2,
              "the cap is not reported: run.json has modules_capped %r"
              % run.get("modules_capped"))
        check("modules not symbolized" in daemon.logtext(), "the cap is not logged")
        check(rinfo["last_run"], "root's session wrote no profile: %r" % rinfo)
        check_run_dir(os.path.join(rout, rinfo["last_run"]), 70)
        check(daemon.proc.poll() is None, "stoked died")
    finally:
        kill(mapper)
        kill(rtarget)
        daemon.stop()


TESTS = {
    "fd_exhaustion": test_fd_exhaustion,
    "emfile_spare": test_emfile_spare,
    "memory_budget": test_memory_budget,
    "control_chars": test_control_chars,
    "stale_tmpdirs": test_stale_tmpdirs,
    "outdir_error_logged": test_outdir_error_logged,
    "cap_not_trusted": test_cap_not_trusted,
    "responsiveness": test_responsiveness,
    "symbolizer_budget": test_symbolizer_budget,
}


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: the attack tests need root (they run stoked as root and the "
              "attacker as uid 65534)")
        sys.exit(1 if os.environ.get("STOKE_REQUIRE_PERF") == "1" else 77)
    run_tests(TESTS)
