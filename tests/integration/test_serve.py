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
import time

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


if __name__ == "__main__":
    run_tests({"browser": test_browser, "refusals": test_refusals, "suites": test_suites,
               "run_page": test_run_page, "launch_suite": test_launch_suite, "missing_tools": test_missing_tools})
