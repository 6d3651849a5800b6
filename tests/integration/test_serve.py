#!/usr/bin/env python3
"""Integration tests for `stoke serve`, the dashboard: a real server on
loopback over run directories recorded from the split fixture (whose truth is
the work split on its command line), driven by headless chromium
(tests/readers/serve_check.js) and by raw HTTP requests for what a browser
would not send (no token, a foreign Host header, a launch without the form
token).

  browser    the user's path: open the printed URL, click a run (its top
             function and share equal `stoke top`'s), the flame graph and
             speedscope timeline, the call graph, compare two runs and read
             the gate verdict at two thresholds, launch a record and see it
             appear, and a fresh browser without the token gets 403.
             Screenshots go to the build's tests/integration/output/serve/.
  refusals   403 without the token, with a wrong Host (DNS rebinding), a
             POST launch carrying only the cookie, a GET launch; paths out
             of the served directory (.., a symlink) are not served; the
             page escapes a hostile command line.
  suites     per-scenario statistics equal suite.json's; two suites compare
             (their merged profiles) with a gate verdict.
  run_page   the runs list and the run page show run.json's numbers, and
             the resource chart its series.
  launch_suite  a suite file launched by POST runs, its job page refreshes
             until it ends, and the suite and its runs appear.
  missing_tools  without graphviz the call graph page says so, clearly; so
             does the run page without speedscope's build.
  concurrent while call graphs' dots (a fake one, STOKE_DOT, that waits
             for the test's word) hold every heavy slot, the runs list and
             the jobs page answer, and a run page waits for a slot; then
             all of them end.
  jobs_end_on_exit  a launched record whose target ignores SIGTERM is
             ended, with its whole process group, when serve gets SIGTERM.
  launch_quoted  the launch form's command line is split with shell quoting
             (an argument with a space reaches the program whole), the
             record options (frequency, call graph, duration) reach
             run.json, and bad ones are refused with 400 before anything
             runs.
"""
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import STOKE, Fail, Skip, check, fixture, run_stoke, run_tests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
READERS = os.path.join(HERE, "..", "readers")
SPEEDSCOPE = os.path.join(READERS, "node_modules", "speedscope", "dist", "release")


def need_browser():
    if not shutil.which("node"):
        raise Skip("node is not installed (tools/setup installs nodejs)")
    if not os.path.isdir(os.path.join(READERS, "node_modules", "puppeteer-core")):
        raise Skip("tests/readers/node_modules is missing (tools/setup runs npm ci there)")
    if not os.path.exists(os.environ.get("STOKE_CHROMIUM", "/usr/bin/chromium")):
        raise Skip("chromium is not installed (tools/setup installs it)")
    if not os.path.isfile(os.path.join(SPEEDSCOPE, "index.html")):
        raise Skip("speedscope's static build is missing (npm ci in tests/readers)")
    if not shutil.which("dot"):
        raise Skip("graphviz's dot is not installed (tools/setup installs graphviz)")


def record(runs, pct, seconds="1"):
    cmd = [fixture("split"), seconds, str(pct)]
    p = run_stoke(["record", "-q", "--output-dir", runs, "--"] + cmd, timeout=120)
    check(p.returncode == 0, "record failed (%d): %s" % (p.returncode, p.stderr))
    return " ".join(cmd)


class Server:
    """stoke serve on a free loopback port; url is the printed one."""

    def __init__(self, dirs, env=None, speedscope=SPEEDSCOPE):
        self.p = subprocess.Popen([STOKE, "serve", "--port", "0", "--speedscope", speedscope]
                                  + dirs, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        ready, _, _ = select.select([self.p.stdout], [], [], 30)
        line = self.p.stdout.readline() if ready else ""
        m = re.match(r"stoke serve: (http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]+))$",
                     line.strip())
        if not m:
            self.stop()
            raise Fail("stoke serve printed %r; stderr: %s" % (line, self.p.stderr.read()))
        self.url, self.port, self.token = m.group(1), int(m.group(2)), m.group(3)

    def request(self, method, path, host=None, headers=None, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Host": host or "127.0.0.1:%d" % self.port}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, data, r

    def cookie(self):
        return {"Cookie": "stoke_token_%d=%s" % (self.port, self.token)}

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                raise Fail("stoke serve did not exit on SIGTERM")
        return self.p.returncode


def stoke_top(rundir):
    p = run_stoke(["top", "-n", "1", rundir])
    check(p.returncode == 0, "stoke top failed: %s" % p.stderr)
    for line in p.stdout.splitlines():
        m = re.match(r"\s*1\s+([\d.]+%)\s+[\d.]+%\s+\d+\s+(\S+)", line)
        if m:
            return m.group(2), m.group(1)
    raise Fail("no first row in stoke top:\n" + p.stdout)


def test_browser(d):
    need_browser()
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    base_cmd = record(runs, 80)
    base_dir = os.path.join(runs, os.listdir(runs)[0])
    new_cmd = record(runs, 20)
    top_fn, top_self = stoke_top(base_dir)
    check(top_fn == "leaf_a", "the base run's top function is %s, not leaf_a" % top_fn)
    # The build's tests/integration/output/serve (STOKE is build/tools/stoke),
    # kept after the test for a look at the pages.
    out = os.environ.get("STOKE_TEST_OUTPUT") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(STOKE))), "tests", "integration", "output")
    shots = os.path.join(out, "serve")
    shutil.rmtree(shots, ignore_errors=True)
    srv = Server([runs])
    try:
        cfg = {"url": srv.url, "shots": shots, "base_cmd": base_cmd, "new_cmd": new_cmd,
               "top_fn": top_fn, "top_self": top_self, "top_caller": "work_round",
               "leaf_grew": "leaf_b",
               # leaf_b grows by about 60 points (20% -> 80%)
               "fail_max": 5, "pass_max": 95,
               "launch_cmd": "%s 1 50" % fixture("split")}
        path = os.path.join(d, "serve-check.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run(["node", os.path.join(READERS, "serve_check.js"), path],
                           cwd=READERS, capture_output=True, text=True, timeout=400)
        print(p.stdout, end="")
        check(p.returncode == 0, "the browser check failed: %s\n%s" %
              (p.stderr.strip()[-3000:], p.stdout))
    finally:
        code = srv.stop()
    check(code == 0, "stoke serve exited %s on SIGTERM" % code)
    check(len(os.listdir(shots)) >= 8, "screenshots missing in " + shots)
    print("screenshots in " + shots)


def test_refusals(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    # A hostile command line: an argument that is markup.
    evil = "<script>alert(1)</script>"
    p = run_stoke(["record", "-q", "--output-dir", runs, "--", fixture("split"), "0.3", "50",
                   evil], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr)
    run = os.listdir(runs)[0]
    with open(os.path.join(d, "secret"), "w") as f:
        f.write("not served\n")
    os.symlink(os.path.join(d, "secret"), os.path.join(runs, run, "link-out"))
    srv = Server([runs])
    try:
        st, body, _ = srv.request("GET", "/")
        check(st == 403, "no token: %d" % st)
        st, body, _ = srv.request("GET", "/?token=" + "0" * len(srv.token))
        check(st == 403, "a wrong token: %d" % st)
        st, body, _ = srv.request("GET", "/?token=" + srv.token, host="rebind.example:%d" % srv.port)
        check(st == 403, "a foreign Host with the token: %d" % st)
        st, body, _ = srv.request("GET", "/", host="rebind.example:%d" % srv.port,
                                  headers=srv.cookie())
        check(st == 403, "a foreign Host with the cookie: %d" % st)
        st, body, r = srv.request("GET", "/?token=" + srv.token)
        check(st == 303 and srv.token in (r.getheader("Set-Cookie") or ""),
              "the token did not become a cookie: %d %s" % (st, r.getheader("Set-Cookie")))
        check("no-referrer" in (r.getheader("Referrer-Policy") or ""), "no Referrer-Policy")
        st, body, _ = srv.request("GET", "/", headers=srv.cookie())
        check(st == 200 and "<table id=\"runs\">" in body, "with the cookie: %d" % st)
        # The hostile argument is text, never markup.
        check(evil not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body,
              "the command line is not escaped in the runs list")
        # Launching: POST with the token in the form only.
        form = "kind=record&command=%s+0.2+50" % fixture("split")
        hdr = dict(srv.cookie(), **{"Content-Type": "application/x-www-form-urlencoded"})
        st, body, _ = srv.request("POST", "/launch", headers=hdr, body=form)
        check(st == 403, "a launch with the cookie but no form token: %d" % st)
        st, body, _ = srv.request("GET", "/launch?kind=record&command=true&token=" + srv.token)
        check(st == 404, "a GET launch: %d" % st)
        st, body, _ = srv.request("POST", "/launch", headers={"Content-Type":
                                  "application/x-www-form-urlencoded"},
                                  body=form + "&token=0" + srv.token[1:])
        check(st == 403, "a launch with a wrong form token: %d" % st)
        st, body, _ = srv.request("GET", "/jobs", headers=srv.cookie())
        check(st == 200 and "No job launched yet" in body, "something was launched: " + body)
        # Paths stay inside the served directory.
        for q in ["/file?run=0/%s&name=link-out" % run, "/file?run=0/..&name=secret",
                  "/file?run=0/%s&name=../../secret" % run, "/run?run=0//etc",
                  "/file?run=1/x&name=run.json", "/speedscope/../../secret"]:
            st, body, _ = srv.request("GET", q, headers=srv.cookie())
            check(st in (403, 404) and "not served" not in body, "%s: %d %r" % (q, st, body[:200]))
        st, body, _ = srv.request("GET", "/file?run=0/%s&name=run.json" % run, headers=srv.cookie())
        check(st == 200 and '"samples"' in body, "run.json is not served: %d" % st)
        # A run directory's own SVG/HTML (scripts anyone could have put
        # there) gets an origin of its own.
        st, body, r = srv.request("GET", "/file?run=0/%s&name=flamegraph.svg" % run,
                                  headers=srv.cookie())
        check(st == 200 and "sandbox" in (r.getheader("Content-Security-Policy") or ""),
              "a run's SVG is served without a sandbox: %d %s" %
              (st, r.getheader("Content-Security-Policy")))
        st, body, _ = srv.request("GET", "/run?run=0/%s" % run, headers=srv.cookie())
        check(st == 200 and evil not in body and "leaf_a" in body,
              "the run page: %d, escaped: %s" % (st, evil not in body))
    finally:
        code = srv.stop()
    check(code == 0, "stoke serve exited %s on SIGTERM" % code)


def test_suites(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    for name, pct in (("hi", 80), ("lo", 20)):
        p = run_stoke(["suite", "--repeat", "2", "--output-dir", runs, "--name", name, "--",
                       fixture("split"), "0.5", str(pct)], timeout=180)
        check(p.returncode == 0, "suite failed (%d): %s" % (p.returncode, p.stderr))
    with open(os.path.join(runs, "hi", "suite.json")) as f:
        sj = json.load(f)
    srv = Server([runs])
    try:
        st, body, _ = srv.request("GET", "/", headers=srv.cookie())
        check(st == 200, "index: %d" % st)
        rows = re.findall(r'<tr class="suite"><td><a href="/suite\?run=([^"]+)">([^<]+)</a>', body)
        check(sorted(n for _, n in rows) == ["hi", "lo"], "suites listed: %r" % rows)
        # The repetitions are runs of their own, listed too.
        check(body.count('<tr class="run">') == 4, "the 4 repetitions are not all listed")
        st, body, _ = srv.request("GET", "/suite?run=0/hi", headers=srv.cookie())
        check(st == 200, "suite page: %d" % st)
        stats = re.search(r'<table id="suite-stats">(.*?)</table>', body, re.S)
        check(stats, "no statistics table")
        for key in ("wall_s", "cpu_s", "samples"):
            row = re.search(r"<tr><th>%s</th>(.*?)</tr>" % key, stats.group(1))
            check(row, "no %s row" % key)
            vals = [float(v) for v in re.findall(r'data-v="([^"]+)"', row.group(1))]
            want = [sj[key][c] for c in ("min", "median", "mean", "stddev", "p95")]
            check(len(vals) == 5 and all(abs(a - b) <= 1e-4 * max(1, abs(b))
                                         for a, b in zip(vals, want)),
                  "%s: page %r, suite.json %r" % (key, vals, want))
        check(body.count('href="/run?run=0/hi/') == 2, "the repetitions are not linked")
        check("leaf_a" in body, "the merged profile's top table is missing")
        st, body, _ = srv.request("GET", "/compare?a=0/hi&b=0/lo&max=5", headers=srv.cookie())
        m = re.search(r'<p id="verdict" class="(\w+)">([^<]*)', body)
        check(st == 200 and m and m.group(1) == "fail", "suites compare: %d %r" %
              (st, m and m.group(2)))
        check("leaf_b" in re.search(r'<ul id="regressions">(.*?)</ul>', body, re.S).group(1),
              "leaf_b is not named as grown")
        with open(os.path.join(runs, "lo", "suite.json")) as f:
            sj2 = json.load(f)
        side = re.search(r'<table id="suite-compare">(.*?)</table>', body, re.S)
        check(side, "no side-by-side statistics for two suites")
        row = re.search(r"<tr><th>wall_s</th>(.*?)</tr>", side.group(1))
        vals = [float(v) for v in re.findall(r'data-v="([^"]+)"', row.group(1))]
        check(len(vals) == 2 and abs(vals[0] - sj["wall_s"]["median"]) < 1e-4 and
              abs(vals[1] - sj2["wall_s"]["median"]) < 1e-4,
              "wall medians %r against %r, %r" % (vals, sj["wall_s"]["median"],
                                                  sj2["wall_s"]["median"]))
    finally:
        srv.stop()


def test_run_page(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    record(runs, 50, "0.6")
    run = os.listdir(runs)[0]
    with open(os.path.join(runs, run, "run.json")) as f:
        rj = json.load(f)
    srv = Server([runs])
    try:
        st, body, _ = srv.request("GET", "/", headers=srv.cookie())
        row = re.search(r'<tr class="run">(.*?)</tr>', body, re.S)
        check(st == 200 and row, "no run row")
        vals = [float(v) for v in re.findall(r'data-v="([^"]+)"', row.group(1))]
        check(vals == [rj["samples"], rj["duration_s"], rj["lost_samples"],
                       rj["unwind_failures"]],
              "runs list %r against run.json %r" % (vals, [rj["samples"], rj["duration_s"],
                                                           rj["lost_samples"],
                                                           rj["unwind_failures"]]))
        st, body, _ = srv.request("GET", "/run?run=0/%s" % run, headers=srv.cookie())
        check(st == 200, "run page: %d" % st)
        meta = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", body))
        for label, key in (("samples", "samples"), ("lost", "lost_samples"),
                           ("unwind failures", "unwind_failures"), ("event", "event")):
            check(meta.get(label) == str(rj[key]), "metadata %s: %r, run.json %r" %
                  (label, meta.get(label), rj[key]))
        check(meta.get("command") == rj["target"]["cmd"], "metadata command")
        res = rj.get("resources")
        if res is not None:
            m = re.search(r'<p id="resources">peak RSS ([\d.]+) MiB, mean RSS ([\d.]+) MiB, '
                          r'CPU ([\d.]+) cores', body)
            check(m, "no resource summary")
            check(abs(float(m.group(1)) - res["peak_rss_bytes"] / 1048576.0) < 0.06 and
                  abs(float(m.group(3)) - res["cpu_utilization"]) < 0.006,
                  "resources %r against run.json" % (m.groups(),))
            lines = re.findall(r'<polyline [^>]*points="([^"]*)"', body)
            npts = len(res["series"]["t_s"])
            check(len(lines) == 2 and all(len(ln.split()) == npts for ln in lines),
                  "the chart has %r points, run.json %d" % ([len(ln.split()) for ln in lines],
                                                             npts))
    finally:
        srv.stop()


def test_launch_suite(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    suite = os.path.join(d, "suite.json")
    with open(suite, "w") as f:
        json.dump({"scenarios": [{"name": "web-launched", "repeat": 2,
                                  "command": [fixture("split"), "0.3", "60"]}]}, f)
    srv = Server([runs])
    try:
        form = "kind=suite&file=%s&token=%s" % (suite, srv.token)
        st, body, r = srv.request("POST", "/launch", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        check(st == 303 and r.getheader("Location") == "/jobs", "launch: %d %s" % (st, body))
        deadline = time.monotonic() + 240
        while True:
            st, body, _ = srv.request("GET", "/jobs", headers=srv.cookie())
            check(st == 200, "jobs: %d" % st)
            if "class=\"pass done\"" in body or "class=\"fail done\"" in body:
                break
            check('http-equiv="refresh"' in body and "running" in body,
                  "a running job's page does not refresh itself")
            check(time.monotonic() < deadline, "the suite did not finish:\n" + body[-2000:])
            time.sleep(0.5)
        check("class=\"pass done\"" in body, "the suite failed:\n" + body[-3000:])
        check('href="/suite?run=0/web-launched"' in body,
              "the new suite is not linked from its job:\n" + body[-3000:])
        check(body.count('class="new-run" href="/run?run=0/web-launched/') == 2,
              "its 2 repetitions are not linked")
        check(os.path.isfile(os.path.join(runs, "web-launched", "suite.json")),
              "no suite.json in the first DIR")
        st, body, _ = srv.request("GET", "/suite?run=0/web-launched", headers=srv.cookie())
        check(st == 200 and "2 of 2 repetitions completed" in body, "suite page: %d" % st)
        # The command launched runs with a clean signal mask (serve blocks
        # SIGINT/SIGTERM for itself, and a mask survives exec; record
        # resets its target's too, so this holds the whole chain).
        form = "kind=record&command=/bin/grep+SigBlk+/proc/self/status&token=" + srv.token
        st, body, r = srv.request("POST", "/launch", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        check(st == 303, "launch: %d %s" % (st, body))
        deadline = time.monotonic() + 120
        while True:
            st, body, _ = srv.request("GET", "/jobs", headers=srv.cookie())
            job = body[body.find('id="job-2"'):]
            job = job[:job.find("</div>")]
            if "done" in job or "failed" in job:
                break
            check(time.monotonic() < deadline, "the record did not finish:\n" + job)
            time.sleep(0.5)
        m = re.search(r"SigBlk:\s*([0-9a-f]+)", job)
        check(m and int(m.group(1), 16) == 0, "a launched command's signal mask: %s" %
              (m.group(1) if m else job[-1500:]))
    finally:
        srv.stop()


def test_missing_tools(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    record(runs, 50, "0.3")
    run = os.listdir(runs)[0]
    env = dict(os.environ, STOKE_DOT=os.path.join(d, "no-such-dot"))
    srv = Server([runs], env=env, speedscope=os.path.join(d, "no-speedscope"))
    try:
        st, body, _ = srv.request("GET", "/run?run=0/%s" % run, headers=srv.cookie())
        check(st == 200 and 'id="no-speedscope"' in body and "no-speedscope" in body,
              "no message without speedscope: %d" % st)
        check("<iframe" not in body, "an iframe to a missing viewer")
        st, body, _ = srv.request("GET", "/callgraph?run=0/%s" % run, headers=srv.cookie())
        check(st == 200 and 'id="no-dot"' in body and "graphviz" in body,
              "no message without dot: %d %s" % (st, body[-500:]))
        st, body, _ = srv.request("GET", "/callgraph.svg?run=0/%s" % run, headers=srv.cookie())
        check(st == 503 and "graphviz" in body, "the image without dot: %d %s" % (st, body))
    finally:
        srv.stop()


def post_form(srv, fields):
    body = "&".join("%s=%s" % (k, urllib.parse.quote_plus(v)) for k, v in fields.items())
    return srv.request("POST", "/launch", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})


def wait_job(srv, n, timeout):
    """The jobs page's div of job n once it is done (or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        st, body, _ = srv.request("GET", "/jobs", headers=srv.cookie())
        check(st == 200, "jobs: %d" % st)
        job = body[body.find('id="job-%d"' % n):]
        job = job[:job.find("</div>")]
        if 'class="pass done"' in job or 'class="fail done"' in job:
            return job
        check(time.monotonic() < deadline, "job %d did not finish:\n%s" % (n, job[-2000:]))
        time.sleep(0.3)


HEAVY = 4  # tools/serve/server.c's MAX_HEAVY: profile loads and dot runs at once


def test_concurrent(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    record(runs, 50, "0.3")
    run = os.listdir(runs)[0]
    release = os.path.join(d, "dot-release")
    # A dot that holds its request until the test says so (at most 60 s):
    # slow call graphs made deterministic. Each says it started.
    dot = os.path.join(d, "slow-dot")
    with open(dot, "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\n: > '%s/dot-started.'$$\ni=0\n"
                "while [ ! -e '%s' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
                "echo '<svg xmlns=\"http://www.w3.org/2000/svg\"/>'\n" % (d, release))
    os.chmod(dot, 0o755)
    srv = Server([runs], env=dict(os.environ, STOKE_DOT=dot))
    results = []

    def timed(path):
        res = {"path": path}
        results.append(res)
        t = time.monotonic()
        try:
            res["status"], res["body"], _ = srv.request("GET", path, headers=srv.cookie())
        except Exception as e:  # noqa: BLE001 - reported by the checks
            res["error"] = repr(e)
        res["seconds"] = time.monotonic() - t

    def started():
        return len([n for n in os.listdir(d) if n.startswith("dot-started.")])

    threads = []
    try:
        # As many slow call graphs as there are heavy slots.
        for i in range(HEAVY):
            th = threading.Thread(target=timed,
                                  args=("/callgraph.svg?run=0/%s&node=%d" % (run, i),))
            th.start()
            threads.append(th)
        deadline = time.monotonic() + 60
        while started() < HEAVY:
            check(time.monotonic() < deadline, "only %d of %d fake dots started: %r" %
                  (started(), HEAVY, results))
            time.sleep(0.05)
        t = time.monotonic()
        st, body, _ = srv.request("GET", "/", headers=srv.cookie())
        st2, body2, _ = srv.request("GET", "/jobs", headers=srv.cookie())
        fast = time.monotonic() - t
        # Every dot still waits for the release file: these answered while
        # the slow requests were held, whatever the machine's speed.
        check(all(th.is_alive() for th in threads) and not os.path.exists(release),
              "the slow requests are not held any more: %r" % results)
        check(st == 200 and '<tr class="run">' in body, "the runs list: %d" % st)
        check(st2 == 200 and "No job launched yet" in body2, "the jobs page: %d" % st2)
        # One more heavy request waits for a slot (no dot of its own).
        extra = threading.Thread(target=timed, args=("/run?run=0/%s" % run,))
        extra.start()
        extra.join(1.5)
        check(extra.is_alive() and started() == HEAVY,
              "a heavy request beyond the %d slots did not wait: %r" % (HEAVY, results[-1]))
        with open(release, "w"):
            pass
        for th in threads + [extra]:
            th.join(120)
            check(not th.is_alive(), "a request never ended")
        for res in results:
            check(res.get("status") == 200, "%s: %r" % (res["path"], res))
        slow = min(r["seconds"] for r in results if "callgraph" in r["path"])
        check(all("<svg" in r["body"] for r in results if "callgraph" in r["path"]),
              "a call graph is not the fake dot's SVG")
        check("leaf_a" in results[-1]["body"], "the run page after the wait")
        check(fast < slow, "the lists took %.2f s, the held call graphs %.2f s" % (fast, slow))
        print("runs list and jobs page %.3f s while %d call graphs took %.3f s or more" %
              (fast, HEAVY, slow))
    finally:
        with open(release, "w"):
            pass
        for th in threads:
            th.join(120)
        code = srv.stop()
    check(code == 0, "stoke serve exited %s on SIGTERM" % code)


def procs_with(marker):
    """pids whose command line holds marker."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmd and state != "Z":
            found.append(int(pid))
    return found


def test_jobs_end_on_exit(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    marker = "stoke-serve-job-" + uuid.uuid4().hex
    srv = Server([runs])
    try:
        # A target that ignores SIGTERM (and so do the sleeps it starts):
        # only SIGKILL to its group ends it.
        cmd = "/bin/sh -c 'trap \"\" TERM; while :; do sleep 0.2; done' %s" % marker
        st, body, _ = post_form(srv, {"kind": "record", "command": cmd, "token": srv.token})
        check(st == 303, "launch: %d %s" % (st, body[-500:]))
        deadline = time.monotonic() + 60
        # The record and its target both carry the marker.
        while len(procs_with(marker)) < 2:
            check(time.monotonic() < deadline, "the launched record's target never ran")
            time.sleep(0.1)
        pids = procs_with(marker)
        st, body, _ = srv.request("GET", "/jobs", headers=srv.cookie())
        check('class="running"' in body, "the job is not running")
    finally:
        t = time.monotonic()
        code = srv.stop()
    took = time.monotonic() - t
    check(code == 0, "stoke serve exited %s on SIGTERM" % code)
    left = procs_with(marker)
    check(not left, "still running after serve exited: %s (were %s)" % (left, pids))
    print("serve and its job (pids %s) ended %.2f s after SIGTERM" % (pids, took))


def test_launch_quoted(d):
    runs = os.path.join(d, "runs")
    os.mkdir(runs)
    out = os.path.join(d, "argv.txt")
    srv = Server([runs])
    try:
        tok = srv.token
        for fields, what in (({"command": "/bin/true 'open"}, "an open quote"),
                             ({"command": "/bin/true", "frequency": "0"}, "frequency 0"),
                             ({"command": "/bin/true", "frequency": "9 -o /tmp/x"},
                              "a frequency with words"),
                             ({"command": "/bin/true", "call_graph": "lbr"}, "call graph lbr"),
                             ({"command": "/bin/true", "duration": "-1"}, "duration -1"),
                             ({"command": "  "}, "no command")):
            st, body, _ = post_form(srv, dict(fields, kind="record", token=tok))
            check(st == 400, "%s: %d %s" % (what, st, body[-300:]))
        st, body, _ = srv.request("GET", "/jobs", headers=srv.cookie())
        check("No job launched yet" in body, "a refused form launched something")
        # The target writes its arguments one per line, then runs the
        # split fixture (so the run has samples).
        cmd = ("/bin/sh -c 'printf \"%%s\\n\" \"$@\" > %s; exec %s 0.4 50' sh "
               "\"two words\" 'it'\\''s' plain\\ too '$HOME'" % (out, fixture("split")))
        st, body, _ = post_form(srv, {"kind": "record", "command": cmd, "frequency": "250",
                                      "call_graph": "fp", "token": tok})
        check(st == 303, "launch: %d %s" % (st, body[-500:]))
        job = wait_job(srv, 1, 120)
        check('class="pass done"' in job, "the record failed:\n" + job[-2000:])
        with open(out) as f:
            args = f.read().split("\n")[:-1]
        check(args == ["two words", "it's", "plain too", "$HOME"],
              "the target's arguments: %r" % args)
        new = re.findall(r'class="new-run" href="/run\?run=0/([^"]+)"', job)
        check(len(new) == 1, "the new run is not linked: %r" % new)
        with open(os.path.join(runs, new[0], "run.json")) as f:
            rj = json.load(f)
        check(rj["frequency"] == 250 and rj["call_graph"] == "fp",
              "run.json: frequency %r, call graph %r" % (rj["frequency"], rj["call_graph"]))
        # The duration option ends a record of a long command early.
        st, body, _ = post_form(srv, {"kind": "record", "command": "%s 60 50" % fixture("split"),
                                      "duration": "0.5", "token": tok})
        check(st == 303, "launch: %d %s" % (st, body[-500:]))
        job = wait_job(srv, 2, 50)
        new = [r for r in re.findall(r'class="new-run" href="/run\?run=0/([^"]+)"', job)]
        check(len(new) == 1, "the duration-bound run is not linked:\n" + job[-1500:])
        with open(os.path.join(runs, new[0], "run.json")) as f:
            rj = json.load(f)
        check(rj["duration_s"] < 20, "a 0.5 s record lasted %r s" % rj["duration_s"])
    finally:
        code = srv.stop()
    check(code == 0, "stoke serve exited %s on SIGTERM" % code)


if __name__ == "__main__":
    run_tests({"browser": test_browser, "refusals": test_refusals, "suites": test_suites,
               "run_page": test_run_page, "launch_suite": test_launch_suite, "missing_tools": test_missing_tools,
               "concurrent": test_concurrent, "jobs_end_on_exit": test_jobs_end_on_exit,
               "launch_quoted": test_launch_quoted})
