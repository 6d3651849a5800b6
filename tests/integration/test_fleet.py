#!/usr/bin/env python3
"""stoked as a pprof scrape target (issue #20), with real clients and servers
on loopback: `go tool pprof` fetching /debug/pprof/profile, promtool checking
/metrics, a network namespace as the non-loopback peer, and Debian's
debuginfod serving a stripped fixture's debug info.

Shares are checked against the split the fixture was told to do (split 0 75:
leaf_a 75%), never against stored output.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import STOKE, check, fixture, kill, run_tests  # noqa: E402
from test_daemon import NOBODY, Daemon, spawn_split  # noqa: E402

SHARE_TOLERANCE = 5.0  # percentage points (the bound)
# A rotation's window is the session's (3 s), sampled while other tests load
# the machine: the daemon tests' bound (test_daemon.TOLERANCE).
ROTATION_TOLERANCE = 7.0
TOKEN = "fleet-test-token-0123456789abcdef"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Http(Daemon):
    """A stoked with --http on a free loopback port (or addr)."""

    def __init__(self, d, *extra, addr="127.0.0.1"):
        self.port = free_port()
        super().__init__(d, "--http", "%s:%d" % (addr, self.port), *extra)
        self.base = "http://127.0.0.1:%d" % self.port

    def start(self, env=None):
        super().start(env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        check(False, "stoked --http is not listening: " + self.logtext())

    def get(self, path, token=None, timeout=60):
        """(status, body bytes)"""
        req = urllib.request.Request(self.base + path)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def pprof(args, tmp, timeout=120):
    env = dict(os.environ, PPROF_TMPDIR=tmp, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"))
    p = subprocess.run(["go", "tool", "pprof"] + args, capture_output=True, text=True,
                       timeout=timeout, env=env)
    check(p.returncode == 0, "go tool pprof %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                               p.stderr.strip()[-2000:]))
    return p.stdout


def flat_share(top, name):
    """flat% of name in `go tool pprof -top` output."""
    for line in top.splitlines():
        f = line.split()
        if len(f) >= 6 and f[-1] == name and f[1].endswith("%"):
            return float(f[1].rstrip("%"))
    return None


def check_share(top, name, want, tolerance=SHARE_TOLERANCE):
    got = flat_share(top, name)
    check(got is not None, "%s not in the pprof top:\n%s" % (name, top))
    check(abs(got - want) <= tolerance,
          "%s has %.1f%% flat, expected %.0f%% +- %.0f:\n%s" % (name, got, want,
                                                                tolerance, top))


def parse_tags(text):
    """`go tool pprof -tags` output as {key: {value: percent}}."""
    tags, key = {}, None
    for line in text.splitlines():
        m = re.match(r"^ (\S+): Total ", line)
        if m:
            key = m.group(1)
            tags[key] = {}
            continue
        m = re.match(r"^\s+\S+ \(\s*([\d.]+)%\): (.*)$", line)
        if m and key:
            tags[key][m.group(2)] = float(m.group(1))
    return tags


def check_everywhere(tags, key, val, what):
    check(tags.get(key, {}).get(str(val)) == 100.0,
          "%s: label %s=%s not on every sample: %r" % (what, key, val, tags.get(key)))


def write(path, data, mode=0o600):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    check(m, "no build-id in " + path)
    return m.group(1)


# ---- the scrape endpoint -------------------------------------------------


def test_go_pprof_top(d):
    """`go tool pprof -top http://…/debug/pprof/profile?seconds=2&pid=PID`
    shows the fixture's hot leaf at its share, with the labels as comments."""
    target = spawn_split(0, 75)
    daemon = Http(d, "--http-targets", "uid:0").start()
    try:
        url = "%s/debug/pprof/profile?seconds=2&pid=%d" % (daemon.base, target.pid)
        top = pprof(["-top", url], d)
        print(top[:1500])
        check_share(top, "leaf_a", 75)
        check_share(top, "leaf_b", 25)
        for want in ("host=%s" % socket.gethostname(), "pid=%d comm=split" % target.pid,
                     "session=scrape-1"):
            check(want in top, "no comment %r above the report:\n%s" % (want, top[:800]))
    finally:
        kill(target)
        daemon.stop()


def test_labels(d):
    """Every sample carries host, pid, comm, exe, build_id and session."""
    target = spawn_split(0, 75)
    daemon = Http(d, "--http-targets", "uid:0").start()
    try:
        status, body = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % target.pid)
        check(status == 200, "status %d: %r" % (status, body[:200]))
        prof = write(os.path.join(d, "p.pb.gz"), body)
        tags = pprof(["-tags", prof], d)
        print(tags)
        exe = os.path.realpath(fixture("split"))
        tags = parse_tags(tags)
        for key, val in (("host", socket.gethostname()), ("pid", str(target.pid)),
                         ("comm", "split"), ("exe", exe), ("build_id", build_id(exe)),
                         ("session", "scrape-1")):
            check_everywhere(tags, key, val, "pid scrape")
        # stoke reads its own scraped profile back.
        p = subprocess.run([STOKE, "report", prof, "-f", "folded", "-o", "-"],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0 and "leaf_a" in p.stdout,
              "stoke report of a scraped profile: %d %s" % (p.returncode, p.stderr))
    finally:
        kill(target)
        daemon.stop()


def test_pid_not_allowed(d):
    """Only what root's --http-targets lists may be profiled: a root process
    is refused when only uid 65534 is listed, the same pid number answer as a
    pid that does not exist; comm= picks only listed processes."""
    mine = spawn_split(0, 75)
    # uid 65534's split under a name of its own: other tests on the machine
    # run split as uid 65534 too.
    comm = "fleet%d" % (os.getpid() % 100000)
    for path in (os.path.dirname(d), d):
        os.chmod(path, 0o755)
    shutil.copy(fixture("split"), os.path.join(d, comm))
    theirs = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                               "--clear-groups", os.path.join(d, comm), "0", "75"],
                              stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:  # past setpriv's exec
        with open("/proc/%d/comm" % theirs.pid) as f:
            if f.read().strip() == comm:
                break
        check(time.monotonic() < deadline, "%s did not start" % comm)
        time.sleep(0.02)
    daemon = Http(d, "--http-targets", "uid:%d" % NOBODY).start()
    try:
        status, body = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % mine.pid)
        check(status == 403, "root's process: status %d, expected 403: %r" % (status, body))
        status2, body2 = daemon.get("/debug/pprof/profile?seconds=1&pid=4000000")
        check(status2 == 403, "a missing pid: status %d, expected 403" % status2)
        check(body.replace(b"%d" % mine.pid, b"4000000") == body2,
              "a refused pid and a missing one answer differently: %r / %r" % (body, body2))
        status, body = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % daemon.proc.pid)
        check(status == 403, "stoked itself: status %d" % status)
        # A thread id is not a pid, even of a listed user's process.
        mt = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                               "--clear-groups", fixture("split-mt"), "2", "30"],
                              stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while len(os.listdir("/proc/%d/task" % mt.pid)) < 3:
                check(time.monotonic() < deadline, "split-mt started no threads")
                time.sleep(0.05)
            tid = max(int(t) for t in os.listdir("/proc/%d/task" % mt.pid))
            status, body = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % tid)
            check(status == 403, "thread %d of uid 65534's process: status %d" % (tid, status))
        finally:
            kill(mt)
        status, body = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % theirs.pid)
        check(status == 200, "a listed uid's process: status %d: %r" % (status, body[:200]))
        status, body = daemon.get("/debug/pprof/profile?seconds=1&comm=split")
        if status == 200:  # other tests' uid 65534 splits
            pids = parse_tags(pprof(["-tags", write(os.path.join(d, "r.pb.gz"), body)], d))
            check(str(mine.pid) not in pids.get("pid", {}), "comm=split profiled root's split")
        else:
            check(status == 403, "comm=split: status %d" % status)
        status, body = daemon.get("/debug/pprof/profile?seconds=1&comm=" + comm)
        check(status == 200, "comm=%s: status %d: %r" % (comm, status, body[:200]))
        tags = pprof(["-tags", write(os.path.join(d, "c.pb.gz"), body)], d)
        check_everywhere(parse_tags(tags), "pid", theirs.pid, "comm=%s" % comm)
        check("refused" in daemon.logtext(), "the refusal was not logged")
    finally:
        kill(mine)
        kill(theirs)
        daemon.stop()


def test_bounds(d):
    """seconds= is bounded, concurrent scrapes are bounded, bad requests get
    one clear line."""
    target = spawn_split(0, 75)
    daemon = Http(d, "--http-targets", "uid:0", "--http-max-seconds", "10",
                  "--http-max-scrapes", "1").start()
    try:
        for q, want in (("seconds=11&pid=%d", 400), ("seconds=-1&pid=%d", 400),
                        ("seconds=abc&pid=%d", 400), ("seconds=1", 400),
                        ("seconds=1&pid=%d&comm=split", 400)):
            q = q % target.pid if "%d" in q else q
            status, body = daemon.get("/debug/pprof/profile?" + q)
            check(status == want and body.count(b"\n") == 1,
                  "%s: status %d, expected %d: %r" % (q, status, want, body))
        status, _ = daemon.get("/nope")
        check(status == 404, "/nope: %d" % status)
        first = {}

        def slow():
            first["r"] = daemon.get("/debug/pprof/profile?seconds=4&pid=%d" % target.pid)

        t = threading.Thread(target=slow)
        t.start()
        # The first is running once the metrics say so.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if b"stoked_scrapes_in_flight 1" in daemon.get("/metrics")[1]:
                break
            time.sleep(0.05)
        status, body = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % target.pid)
        check(status == 429, "a second scrape beside the first: %d %r" % (status, body))
        # /metrics is served while the scrape runs (its own thread).
        t0 = time.monotonic()
        status, _ = daemon.get("/metrics")
        check(status == 200 and time.monotonic() - t0 < 2,
              "/metrics during a scrape: %d after %.1f s" % (status, time.monotonic() - t0))
        t.join()
        check(first["r"][0] == 200, "the first scrape: %d" % first["r"][0])
    finally:
        kill(target)
        daemon.stop()


def metrics_value(text, name, **labels):
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_metrics_promtool(d):
    """/metrics parses with promtool and counts the sessions, samples, lost
    samples, unwind failures and scrapes."""
    target = spawn_split(0, 75)
    daemon = Http(d, "--http-targets", "uid:0").start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out, "--continuous",
                             "--rotate", "2", "--keep", "2"]).strip())
        status, _ = daemon.get("/debug/pprof/profile?seconds=1&pid=%d" % target.pid)
        check(status == 200, "scrape: %d" % status)
        time.sleep(1.5)
        status, body = daemon.get("/metrics")
        check(status == 200, "/metrics: %d" % status)
        text = body.decode()
        print(text)
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        check(p.returncode == 0, "promtool check metrics: %s %s" % (p.stdout, p.stderr))
        check(metrics_value(text, "stoked_sessions", state="running") == 1,
              "stoked_sessions{state=running} is not 1")
        n = metrics_value(text, "stoked_session_samples", session=sid, pid=target.pid,
                          comm="split")
        check(n is not None and n > 0, "no samples for session %d: %r" % (sid, n))
        for name in ("stoked_session_lost_samples", "stoked_session_unwind_failures"):
            check(metrics_value(text, name, session=sid) is not None, "no " + name)
        check(metrics_value(text, "stoked_scrapes_total", result="ok") == 1, "scrapes ok != 1")
        check((metrics_value(text, "stoked_scrape_samples_total") or 0) > 0,
              "the scrape's samples are not counted")
    finally:
        kill(target)
        daemon.stop()


def test_session_rotation(d):
    """A continuous session's latest rotation at ?session=ID, labelled with
    the session; the index lists it; another user's session is not shown."""
    target = spawn_split(0, 75)
    other = spawn_split(0, 75, user=NOBODY)
    daemon = Http(d, "--http-targets", "uid:0").start()
    out = os.path.join(d, "out")
    os.mkdir(out)
    for path in (os.path.dirname(d), d):
        os.chmod(path, 0o755)
    oout = os.path.join(d, "oout")
    os.mkdir(oout)
    os.chown(oout, NOBODY, NOBODY)
    try:
        sid = int(daemon.ok(["attach", str(target.pid), "-o", out, "--continuous",
                             "--rotate", "3", "--keep", "2"]).strip())
        osid = int(daemon.ok(["attach", str(other.pid), "-o", oout, "--continuous",
                              "--rotate", "1", "--keep", "1"], user=NOBODY).strip())
        status, body = daemon.get("/debug/pprof/profile?session=%d" % sid)
        check(status == 404 and b"no rotation yet" in body, "before a rotation: %d %r"
              % (status, body))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, body = daemon.get("/debug/pprof/profile?session=%d" % sid)
            if status == 200:
                break
            time.sleep(0.2)
        check(status == 200, "no rotation served: %d %r" % (status, body))
        prof = write(os.path.join(d, "s.pb.gz"), body)
        top = pprof(["-top", prof], d)
        check_share(top, "leaf_a", 75, ROTATION_TOLERANCE)
        check("session=%d" % sid in top, "no session=%d comment:\n%s" % (sid, top[:600]))
        status, index = daemon.get("/debug/pprof/")
        check(status == 200 and re.search(rb"session %d pid %d comm split continuous"
                                          % (sid, target.pid), index),
              "the index lacks session %d: %r" % (sid, index))
        check(b"session %d " % osid not in index, "the index shows uid 65534's session")
        time.sleep(1.5)
        status, body = daemon.get("/debug/pprof/profile?session=%d" % osid)
        check(status == 404 and b"no session" in body,
              "uid 65534's session (not in --http-targets): %d %r" % (status, body))
    finally:
        kill(target)
        kill(other)
        daemon.stop()


# ---- authorization from another address ---------------------------------


class Netns:
    """A network namespace joined to this one by a veth pair: the peer
    10.231.N.2 reaches the host at 10.231.N.1."""

    def __init__(self):
        n = os.getpid() % 250 + 1
        self.name = "stokefleet%d" % os.getpid()
        self.host_if, self.ns_if = "sfh%d" % os.getpid(), "sfn%d" % os.getpid()
        self.host_ip, self.peer_ip = "10.231.%d.1" % n, "10.231.%d.2" % n

    def sh(self, *cmd):
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, "%s: %s" % (" ".join(cmd), p.stderr.strip()))

    def __enter__(self):
        self.sh("ip", "netns", "add", self.name)
        try:
            self.sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name",
                    self.ns_if)
            self.sh("ip", "link", "set", self.ns_if, "netns", self.name)
            self.sh("ip", "addr", "add", self.host_ip + "/30", "dev", self.host_if)
            self.sh("ip", "link", "set", self.host_if, "up")
            self.sh("ip", "-n", self.name, "addr", "add", self.peer_ip + "/30", "dev",
                    self.ns_if)
            self.sh("ip", "-n", self.name, "link", "set", self.ns_if, "up")
            self.sh("ip", "-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *a):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def get(self, url, token=None):
        """(status or 'closed', body) of a GET from inside the namespace."""
        code = ("import sys, urllib.request, urllib.error\n"
                "req = urllib.request.Request(sys.argv[1])\n"
                "if len(sys.argv) > 2: req.add_header('Authorization', 'Bearer ' + sys.argv[2])\n"
                "try:\n"
                "    r = urllib.request.urlopen(req, timeout=20); print(r.status); "
                "sys.stdout.write(r.read().decode(errors='replace'))\n"
                "except urllib.error.HTTPError as e:\n"
                "    print(e.code); sys.stdout.write(e.read().decode(errors='replace'))\n"
                "except Exception as e:\n"
                "    print('closed'); print(repr(e))\n")
        args = ["ip", "netns", "exec", self.name, sys.executable, "-c", code, url]
        if token:
            args.append(token)
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "ip netns exec: %s" % p.stderr)
        status, _, body = p.stdout.partition("\n")
        return status, body


def test_netns_token(d):
    """From a non-loopback address (a network namespace): refused without
    --http-allow; with it, refused without the bearer token or with a wrong
    one, served with it."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        check(False, "needs root and ip(8) for a network namespace")
    token = write(os.path.join(d, "token"), (TOKEN + "\n").encode())
    target = spawn_split(0, 75)
    with Netns() as ns:
        closed = Http(os.path.join(d, "a"), "--http-targets", "uid:0", addr="0.0.0.0")
        os.mkdir(closed.dir)
        closed.start()
        try:
            url = "http://%s:%d/metrics" % (ns.host_ip, closed.port)
            status, body = ns.get(url)
            check(status == "closed", "no --http-allow, from %s: %s %r" % (ns.peer_ip, status,
                                                                           body))
            status, body = ns.get(url, TOKEN)
            check(status == "closed", "no --http-allow, with a token: %s %r" % (status, body))
            check(closed.get("/metrics")[0] == 200, "loopback refused without --http-allow")
        finally:
            closed.stop()
        # A token must come with --http-allow.
        p = subprocess.run(Http(d, "--http-allow", ns.peer_ip + "/32").args + ["--log", "/dev/null"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode != 0, "--http-allow without --http-token-file was accepted")
        daemon = Http(os.path.join(d, "b"), "--http-targets", "uid:0", "--http-allow",
                      ns.peer_ip + "/32", "--http-token-file", token, addr="0.0.0.0")
        os.mkdir(daemon.dir)
        daemon.start()
        try:
            base = "http://%s:%d" % (ns.host_ip, daemon.port)
            prof = "%s/debug/pprof/profile?seconds=1&pid=%d" % (base, target.pid)
            for tok in (None, "wrong-token-0123456789abcdefghij", TOKEN[:-1]):
                status, body = ns.get(prof, tok)
                check(status == "401", "token %r from %s: %s %r" % (tok, ns.peer_ip, status,
                                                                    body))
            status, body = ns.get(base + "/metrics", TOKEN)
            check(status == "200" and "stoked_sessions" in body, "with the token: %s %r"
                  % (status, body[:200]))
            status, body = ns.get(prof, TOKEN)
            check(status == "200", "a scrape with the token: %s" % status)
            # Once a token is configured, loopback must send it too.
            check(daemon.get("/metrics")[0] == 401, "loopback without the token")
            check(daemon.get("/metrics", TOKEN)[0] == 200, "loopback with the token")
            check("no or a wrong bearer token" in daemon.logtext(), "refusal not logged")
        finally:
            daemon.stop()
            kill(target)


# ---- debuginfod ----------------------------------------------------------


class Debuginfod:
    def __init__(self, d, srcdir):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(d, "debuginfod.log"), "w")
        self.proc = subprocess.Popen(["debuginfod", "-F", srcdir, "-p", str(self.port), "-d",
                                      os.path.join(d, "debuginfod.sqlite")],
                                     stdout=self.log, stderr=self.log)

    def wait_for(self, bid):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, "debuginfod exited %s" % self.proc.returncode)
            try:
                with urllib.request.urlopen("%s/buildid/%s/debuginfo" % (self.url, bid),
                                            timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        check(False, "debuginfod never served build-id %s" % bid)

    def stop(self):
        kill(self.proc)
        self.log.close()


def test_debuginfod(d):
    """A stripped fixture's debug info comes from Debian's debuginfod (file:line
    names appear); with the server stopped the profile still completes and
    says once that the module's debug info was unavailable."""
    srv = os.path.join(d, "srv")
    os.mkdir(srv)
    exe = os.path.join(d, "split")
    shutil.copy(fixture("split"), exe + ".full")
    subprocess.run(["objcopy", "--only-keep-debug", exe + ".full", os.path.join(srv,
                                                                               "split.debug")],
                   check=True)
    subprocess.run(["objcopy", "--strip-debug", exe + ".full", exe], check=True)
    os.unlink(exe + ".full")
    bid = build_id(exe)
    server = Debuginfod(d, srv)
    target = subprocess.Popen([exe, "0", "75"], stdout=subprocess.DEVNULL)
    try:
        server.wait_for(bid)
        # stoked --debuginfod, over the scrape endpoint.
        daemon = Http(os.path.join(d, "a"), "--http-targets", "uid:0", "--debuginfod",
                      server.url)
        os.mkdir(daemon.dir)
        daemon.start(env=dict(os.environ, DEBUGINFOD_CACHE_PATH=os.path.join(d, "cache1")))
        try:
            status, body = daemon.get("/debug/pprof/profile?seconds=2&pid=%d" % target.pid)
            check(status == 200, "scrape: %d %r" % (status, body[:200]))
            top = pprof(["-top", "-lines", write(os.path.join(d, "a.pb.gz"), body)], d)
            check(re.search(r"leaf_a \S*split\.c:\d+", top),
                  "no file:line for leaf_a with debuginfod:\n" + top)
            check("unavailable" not in daemon.logtext(), "reported unavailable with a server")
        finally:
            daemon.stop()
        server.stop()
        # The server is gone and the cache is new: the profile completes,
        # by symbols, and the log says so once for the fixture.
        daemon = Http(os.path.join(d, "b"), "--http-targets", "uid:0", "--debuginfod",
                      server.url)
        os.mkdir(daemon.dir)
        daemon.start(env=dict(os.environ, DEBUGINFOD_CACHE_PATH=os.path.join(d, "cache2")))
        try:
            status, body = daemon.get("/debug/pprof/profile?seconds=2&pid=%d" % target.pid)
            check(status == 200, "scrape without the server: %d %r" % (status, body[:200]))
            top = pprof(["-top", "-lines", write(os.path.join(d, "b.pb.gz"), body)], d)
            check("leaf_a" in top and not re.search(r"split\.c:\d+", top),
                  "without the server, expected leaf_a without file:line:\n" + top)
            lines = [ln for ln in daemon.logtext().splitlines()
                     if "build-id %s unavailable" % bid in ln]
            check(len(lines) == 1, "expected one unavailable line for the fixture, got %r"
                  % lines)
        finally:
            daemon.stop()
        # A server that accepts and never answers: the first scrape waits
        # for its timeout (DEBUGINFOD_TIMEOUT), says so once, and the next
        # scrape does not wait again (the build-id is left alone).
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        daemon = Http(os.path.join(d, "c"), "--http-targets", "uid:0", "--debuginfod",
                      "http://127.0.0.1:%d" % hole.getsockname()[1])
        os.mkdir(daemon.dir)
        daemon.start(env=dict(os.environ, DEBUGINFOD_CACHE_PATH=os.path.join(d, "cache4"),
                              DEBUGINFOD_TIMEOUT="8"))
        try:
            took = []
            for i in range(2):
                t0 = time.monotonic()
                status, body = daemon.get("/debug/pprof/profile?seconds=2&pid=%d" % target.pid)
                took.append(time.monotonic() - t0)
                check(status == 200, "scrape %d with a silent server: %d %r" % (i, status,
                                                                               body[:200]))
            print("scrapes with a silent debuginfod took %.1f s, %.1f s" % tuple(took))
            check(took[0] >= 2 + 8 - 0.5, "the first scrape did not wait for the server "
                  "(%.1f s): is the test right?" % took[0])
            check(took[1] < 2 + 8 - 0.5, "the second scrape waited for the server again "
                  "(%.1f s)" % took[1])
            lines = [ln for ln in daemon.logtext().splitlines()
                     if "build-id %s unavailable" % bid in ln]
            check(len(lines) == 2, "expected one unavailable line per scrape, got %r" % lines)
        finally:
            daemon.stop()
            hole.close()
        # The same with stoke record and STOKE_DEBUGINFOD_URLS.
        env = dict(os.environ, STOKE_DEBUGINFOD_URLS=server.url,
                   DEBUGINFOD_CACHE_PATH=os.path.join(d, "cache3"))
        out = os.path.join(d, "rec.folded")
        p = subprocess.run([STOKE, "record", "-p", str(target.pid), "-d", "1", "-o", out],
                           capture_output=True, text=True, timeout=60, env=env)
        check(p.returncode == 0, "stoke record: %s" % p.stderr)
        n = p.stderr.count("build-id %s unavailable" % bid)
        check(n == 1, "stoke record said %d times that debug info was unavailable:\n%s"
              % (n, p.stderr))
    finally:
        kill(target)
        if server.proc.poll() is None:
            server.stop()


def doc_block(text, lang):
    m = re.search(r"^```%s\n(.*?)^```" % lang, text, re.M | re.S)
    check(m, "docs/fleet.md has no ```%s block" % lang)
    return m.group(1)


def load_yaml(text):
    """PyYAML, from this python or Debian's (python3-yaml)."""
    try:
        import yaml
        return yaml.safe_load(text)
    except ImportError:
        p = subprocess.run(["/usr/bin/python3", "-c", "import sys, json, yaml; "
                            "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                           input=text, capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, "no YAML parser (python3-yaml): " + p.stderr.strip())
        return json.loads(p.stdout)


def test_docs_snippets(d):
    """docs/fleet.md's snippets: the drop-in's ExecStart options start a
    stoked, and the requests its Parca and Alloy configurations describe
    get profiles from it."""
    import shlex
    with open(os.path.join(os.environ.get("STOKE_SOURCE_ROOT", "."), "docs", "fleet.md")) as f:
        doc = f.read()
    # The drop-in: its last ExecStart=, with this test's paths and port.
    unit = doc_block(doc, "ini")
    exec_start = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")][-1]
    argv = shlex.split(exec_start[len("ExecStart="):])
    check(os.path.basename(argv[0]) == "stoked", "ExecStart runs %r" % argv[0])
    token = write(os.path.join(d, "http.token"), (TOKEN + "\n").encode())
    port = free_port()
    opts, i = [], 1
    while i < len(argv):
        o = argv[i]
        v = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
        i += 2 if v is not None else 1
        if o in ("--socket", "--output-root", "--debuginfod", "--foreground"):
            continue  # this test's own; no network beyond loopback
        if o == "--http":
            v = "127.0.0.1:%d" % port
        elif o == "--http-token-file":
            v = token
        opts += [o] + ([v] if v is not None else [])
    for o in ("--http", "--http-allow", "--http-token-file", "--http-targets"):
        check(o in opts, "the drop-in's ExecStart lacks %s" % o)
    targets = opts[opts.index("--http-targets") + 1]
    check("comm:nginx" in targets.split(","), "the drop-in does not list comm:nginx")
    # A process named as the snippets' comm: the split fixture, renamed.
    nginx = os.path.join(d, "nginx")
    shutil.copy(fixture("split"), nginx)
    target = subprocess.Popen([nginx, "0", "75"], stdout=subprocess.DEVNULL)
    daemon = Daemon(d, *opts)
    daemon.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                check(time.monotonic() < deadline, "no --http: " + daemon.logtext())
                time.sleep(0.05)
        max_seconds = 60
        if "--http-max-seconds" in opts:
            max_seconds = int(opts[opts.index("--http-max-seconds") + 1])

        def scrape(path, params, token_file, seconds, who):
            check(seconds <= max_seconds, "%s asks seconds=%d, over the drop-in's %d"
                  % (who, seconds, max_seconds))
            with open(token_file if os.path.exists(token_file) else token) as f:
                tok = f.read().strip()
            q = "&".join("%s=%s" % (k, v) for k, vs in params.items() for v in vs)
            url = "http://127.0.0.1:%d%s?%s&seconds=2" % (port, path, q)
            req = urllib.request.Request(url, headers={"Authorization": "Bearer " + tok})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    body = r.read()
            except urllib.error.HTTPError as e:
                check(False, "%s's request %s: %d %r" % (who, url, e.code, e.read()))
            top = pprof(["-top", write(os.path.join(d, who + ".pb.gz"), body)], d)
            check_share(top, "leaf_a", 75)

        # Parca: the YAML is parsed, its job turned into the request.
        job = load_yaml(doc_block(doc, "yaml"))["scrape_configs"][0]
        cpu = job["profiling_config"]["pprof_config"]["process_cpu"]
        check(cpu["enabled"] and job["authorization"]["type"] == "Bearer", "Parca job: %r" % job)
        others = [k for k, v in job["profiling_config"]["pprof_config"].items()
                  if k != "process_cpu" and v.get("enabled", True)]
        check(not others, "Parca would also scrape %r, which stoked does not serve" % others)
        interval = int(job["scrape_interval"].rstrip("s"))
        # Parca's token file is this test's token (the path is the doc's).
        scrape(cpu["path"], job["params"], job["authorization"]["credentials_file"], interval,
               "parca")
        # Alloy: the attributes the request is made of.
        alloy = doc_block(doc, "alloy")
        path = re.search(r'profile\.process_cpu \{[^}]*path\s*=\s*"([^"]+)"', alloy).group(1)
        params = dict((k, re.findall(r'"([^"]+)"', vs)) for k, vs in
                      re.findall(r'"(\w+)"\s*=\s*\[([^\]]*)\]',
                                 re.search(r"params\s*=\s*\{([^}]*)\}", alloy).group(1)))
        tokf = re.search(r'bearer_token_file\s*=\s*"([^"]+)"', alloy).group(1)
        dur = int(re.search(r'delta_profiling_duration\s*=\s*"(\d+)s"', alloy).group(1))
        enabled = re.findall(r"profile\.(\w+) \{\s*enabled\s*=\s*true", alloy)
        check(enabled == ["process_cpu"], "Alloy enables %r" % enabled)
        scrape(path, params, tokf, dur, "alloy")
    finally:
        kill(target)
        daemon.stop()


TESTS = {
    "go_pprof_top": test_go_pprof_top,
    "labels": test_labels,
    "pid_not_allowed": test_pid_not_allowed,
    "bounds": test_bounds,
    "metrics_promtool": test_metrics_promtool,
    "session_rotation": test_session_rotation,
    "netns_token": test_netns_token,
    "debuginfod": test_debuginfod,
    "docs_snippets": test_docs_snippets,
}

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: the scrape endpoint's tests need root (stoked, a network namespace)")
        sys.exit(1 if os.environ.get("STOKE_REQUIRE_PERF") == "1" else 77)
    run_tests(TESTS)
