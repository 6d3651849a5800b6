#!/usr/bin/env python3
"""The views for people: -f tree on the terminal, the self-contained -f html
report in chromium, and the resource timeline (the target's RSS and CPU
over the recording) in run.json and the report.

Truths come from the fixtures themselves: split's leaf_a:leaf_b work split
(as `stoke top` reads it), and rss-step's own clock for when it touched its
memory and its own CPU time.
"""
import json
import os
import re
import shutil
import subprocess

from stoketest import Skip, check, fixture, require_perf, run_stoke, run_tests

HERE = os.path.dirname(os.path.abspath(__file__))
READERS = os.path.join(HERE, "..", "readers")
PCT_A = 70
MB = 200


def need_browser():
    if not shutil.which("node"):
        raise Skip("node is not installed (tools/setup installs it)")
    if not os.path.isdir(os.path.join(READERS, "node_modules", "puppeteer-core")):
        raise Skip("tests/readers/node_modules is missing (tools/setup runs npm ci there)")
    if not os.path.exists(os.environ.get("STOKE_CHROMIUM", "/usr/bin/chromium")):
        raise Skip("chromium is not installed (tools/setup installs it)")


def node(script, *args):
    p = subprocess.run(["node", os.path.join(READERS, script)] + list(args), cwd=READERS,
                       capture_output=True, text=True, timeout=180)
    check(p.returncode == 0, "%s failed: %s" % (script, (p.stderr or p.stdout)[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def record_split(tmp, seconds="2"):
    require_perf(tmp)
    p = run_stoke(["record", "-q", "-F", "499", "--output-dir", tmp, "--name", "split", "--",
                   fixture("split"), seconds, str(PCT_A)], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr.strip())
    dirs = [d for d in os.listdir(tmp) if d.endswith("_split")]
    check(len(dirs) == 1, "run directories: %r" % os.listdir(tmp))
    return os.path.join(tmp, dirs[0])


TREE_LINE = re.compile(r"^((?:│  |   )*)(?:├─ |└─ )?(\d+\.\d+)s +(\d+\.\d)%  (.*)$")


def parse_tree(text):
    """[(depth, seconds, percent, name)] of a -f tree output (no colour)."""
    rows = []
    for line in text.splitlines()[1:]:
        if "frames hidden" in line or "frame hidden" in line:
            continue
        m = TREE_LINE.match(line)
        check(m, "tree line does not parse: %r" % line)
        rows.append((len(m.group(1)) // 3 + (1 if line[len(m.group(1)):][:1] in "├└" else 0),
                     float(m.group(2)), float(m.group(3)), m.group(4)))
    return rows


def top_totals(rundir):
    p = run_stoke(["top", rundir, "--by", "total", "-n", "200"])
    check(p.returncode == 0, "top failed: %s" % p.stderr)
    totals = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^\s*\d+\s+(\d+\.\d)%\s+(\d+\.\d)%\s+\d+\s+(\S+)", line)
        if m:
            totals[m.group(3)] = float(m.group(2))
    check("leaf_a" in totals, "no leaf_a in top:\n%s" % p.stdout)
    return totals


def test_tree_matches_top(tmp):
    """-f tree's inclusive share of each function on the fixture's single
    call path equals `stoke top`'s total share; the threshold folds small
    frames away; the tree keeps the fixture's split; no colour off a TTY."""
    rundir = record_split(tmp)
    p = run_stoke(["report", rundir, "-f", "tree", "--threshold", "0"])
    check(p.returncode == 0, "report -f tree failed: %s" % p.stderr)
    check("\033" not in p.stdout, "colour on a pipe")
    rows = parse_tree(p.stdout)
    totals = top_totals(rundir)
    by_name = {}
    for depth, sec, pct, name in rows:
        by_name.setdefault(name, []).append(pct)
    for fn in ("main", "run", "work_round", "leaf_a", "leaf_b"):
        check(len(by_name.get(fn, [])) == 1, "%s is on %d tree nodes" % (fn, len(by_name.get(fn, []))))
        check(abs(by_name[fn][0] - totals[fn]) <= 0.1,
              "%s: tree %.1f%%, top total %.1f%%" % (fn, by_name[fn][0], totals[fn]))
    a, b = by_name["leaf_a"][0], by_name["leaf_b"][0]
    check(abs(a / (a + b) - PCT_A / 100) < 0.07, "leaf_a share %.3f, fixture %d%%" %
          (a / (a + b), PCT_A))
    # leaf_a is a child of work_round, one level deeper
    depth = {name: d for d, _, _, name in rows if name in ("work_round", "leaf_a")}
    check(depth["leaf_a"] == depth["work_round"] + 1, "depths %r" % depth)
    # A threshold hides the frames under it: fewer lines, a hidden line, and
    # nothing under it shown. The default (1%) is checked when this run has
    # a frame under 1% (start-up frames usually are; a CI run once had
    # none), and a threshold just above the smallest frame always.
    smallest = min(pct for _, _, pct, _ in rows)
    for args, limit in (([], 1.0), (["--threshold", "%.2f" % (smallest + 0.05)],
                                     smallest + 0.05)):
        if smallest >= limit:
            continue
        p = run_stoke(["report", rundir, "-f", "tree"] + args)
        check(p.returncode == 0, p.stderr)
        shown = parse_tree(p.stdout)
        check(len(shown) < len(rows), "threshold %s hid nothing (%d lines)" % (args, len(shown)))
        # shares are printed to 0.1 point
        check(all(pct >= limit - 0.05 for _, _, pct, _ in shown),
              "a frame under %.2f%% shown (%s)" % (limit, args))
        check("hidden" in p.stdout, "no hidden-frames line:\n%s" % p.stdout)
    p = run_stoke(["report", rundir, "-f", "tree", "--color", "always"])
    check("\033[" in p.stdout, "--color always gave no colour")
    p = run_stoke(["report", rundir, "-f", "tree", "--threshold", "101"])
    check(p.returncode == 2, "--threshold 101 accepted")
    # record -f tree prints the tree (stdout without -o)
    p = run_stoke(["record", "-q", "-f", "tree", "--threshold", "5", "--", fixture("split"),
                   "0.5", str(PCT_A)], cwd=tmp)
    check(p.returncode == 0, "record -f tree failed: %s" % p.stderr)
    names = [n for _, _, _, n in parse_tree(p.stdout)]
    check("leaf_a" in names and "work_round" in names, "record -f tree:\n" + p.stdout)
    check(not os.path.exists(os.path.join(tmp, "stoke.folded")), "record -f tree wrote a file")


def test_html_report(tmp):
    """The run directory's report.html in chromium: no request at all,
    search finds leaf_a with top's share, collapsing its parent hides it,
    the flamegraph zooms, the thread has a timeline, the resource chart is
    drawn; `stoke report -f html` of the run directory is the same file."""
    need_browser()
    rundir = record_split(tmp)
    html = os.path.join(rundir, "report.html")
    check(os.path.exists(html), "no report.html in the run directory")
    res = node("html_check.js", html, "leaf_a", os.path.join(tmp, "report.png"))
    check(res["requests"] == [], "requests made: %r" % res["requests"])
    check(res["errors"] == [], "page errors: %r" % res["errors"])
    check(res["hit"], "search did not show leaf_a: %r" % res)
    totals = top_totals(rundir)
    check(abs(float(res["hit"]["pct"].rstrip("%")) - totals["leaf_a"]) <= 0.1,
          "leaf_a %s in the report, top %.1f%%" % (res["hit"]["pct"], totals["leaf_a"]))
    check(re.match(r"1 match, ", res["search_count"]), "search count %r" % res["search_count"])
    check(res["hit"]["parent_name"] == "work_round", "leaf_a's parent %r" % res["hit"])
    check(res["visible_before"] and not res["visible_collapsed"] and
          res["parent_visible_collapsed"] and res["visible_expanded"],
          "collapse/expand: %r" % res)
    check(res["hit"]["flame_hits"] >= 1, "search did not mark the flamegraph")
    check(res["flame_boxes"] > 5 and res["zoom_info"].startswith("zoomed on ") and
          res["reset_info"] == "", "flamegraph: %r" % res)
    info = json.load(open(os.path.join(rundir, "run.json")))
    sampled = [t for t in info["threads"] if t["samples"]]
    check(res["timelines"] == min(64, len(sampled)) and res["timelines"] >= 1,
          "%r timelines, %d threads with samples" % (res["timelines"], len(sampled)))
    check(res["resource_chart"] == 1, "no resource chart")
    check(res["img"] == 0 and res["scripts"] == 2, "elements %r" % res)
    out = os.path.join(tmp, "again.html")
    p = run_stoke(["report", rundir, "-o", out])
    check(p.returncode == 0, p.stderr)
    check(open(out, "rb").read() == open(html, "rb").read(),
          "report -f html of the run directory differs from record's report.html")
    # record -o x.html: the same report, with its resource timeline
    out = os.path.join(tmp, "direct.html")
    p = run_stoke(["record", "-q", "-o", out, "--", fixture("split"), "0.5", str(PCT_A)])
    check(p.returncode == 0, p.stderr)
    data = json.loads(re.search(r'id="stoke-data">(.*?)</script>',
                                open(out, encoding="utf-8").read(), re.S).group(1))
    check(data["resources"] and data["resources"]["peak_rss"] > 0, "record -o x.html: %r" %
          data["resources"])


def test_html_hostile_names(tmp):
    """Function and command names are hostile input: a name that closes
    the script element or adds markup shows as text, runs nothing."""
    need_browser()
    evil = "</script><img src=x onerror=window.__pwned=true><!--"
    folded = os.path.join(tmp, "evil.folded")
    with open(folded, "w") as f:
        f.write("main:%s 30\nmain;leaf_a 70\n" % evil)
    out = os.path.join(tmp, "evil.html")
    p = run_stoke(["report", folded, "-o", out])
    check(p.returncode == 0, p.stderr)
    text = open(out, encoding="utf-8").read()
    check("<img" not in text, "raw markup in the report")
    res = node("html_check.js", out, "leaf_a", "", "main:" + evil)
    check(res["requests"] == [], "requests made: %r" % res["requests"])
    check(res["hostile_shown"], "the hostile name is not shown as text: %r" % res)
    check(res["img_after"] == 0 and not res["xss"] and res["scripts"] == 2, "markup ran: %r" % res)


def resources_of(rundir):
    info = json.load(open(os.path.join(rundir, "run.json")))
    check(info["schema_version"] == "2", "schema %r" % info["schema_version"])
    r = info["resources"]
    check(r, "no resources in run.json")
    s = r["series"]
    check(len(s["t_s"]) == len(s["rss_bytes"]) == len(s["cpu"]) == r["points"],
          "series lengths")
    return info, r


def test_resource_step(tmp):
    """rss-step touches 200 MB halfway: peak RSS is 200 MB within 10%, the
    step is where the fixture's own clock says (+-0.3 s), points come every
    100 ms, and the CPU time seen is the fixture's own (within what two
    readings can miss at the ends)."""
    require_perf(tmp)
    times = os.path.join(tmp, "times.txt")
    p = run_stoke(["record", "-q", "--output-dir", tmp, "--name", "rss", "--",
                   fixture("rss-step"), "3", str(MB), times], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr.strip())
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_rss")][0])
    info, r = resources_of(rundir)
    lines = open(times).read().split("\n")
    t0, t1 = map(float, lines[0].split())
    cpu = float(lines[1].split()[0])
    s = r["series"]
    peak = r["peak_rss_bytes"]
    check(abs(peak - MB * 2**20) <= 0.1 * MB * 2**20,
          "peak RSS %.1f MB, the fixture touched %d MB" % (peak / 2**20, MB))
    check(peak == max(s["rss_bytes"]), "peak is not the series' max")
    check(r["mean_rss_bytes"] < peak, "mean %d >= peak" % r["mean_rss_bytes"])
    base = s["rss_bytes"][0]
    half = base + (peak - base) / 2
    # Each point's time on the fixture's clock (CLOCK_MONOTONIC).
    mono = [r["clock_ns"] / 1e9 + t for t in s["t_s"]]
    first = next(i for i, v in enumerate(s["rss_bytes"]) if v >= half)
    check(first > 0, "RSS was high from the start")
    step = mono[first]
    check(t0 - 0.3 <= step <= t1 + 0.3,
          "step seen at %.3f s, the fixture touched its memory from %.3f to %.3f s" %
          (step, t0, t1))
    check(all(v < half for v in s["rss_bytes"][:first]), "RSS high before the step")
    gaps = [b - a for a, b in zip(s["t_s"], s["t_s"][1:])]
    # On cadence: a late reading (a busy machine) is followed by an early
    # one, so the median gap is the interval.
    check(gaps and min(gaps) > 0 and 0.08 <= sorted(gaps)[len(gaps) // 2] <= 0.15,
          "readings not every 100 ms: %r" % gaps)
    check(r["points"] >= 20, "only %d points in 3 s" % r["points"])
    seen = r["cpu_ns"] / 1e9
    check(cpu - 0.4 <= seen <= cpu + 0.05,
          "CPU %.3f s in run.json, the fixture used %.3f s" % (seen, cpu))
    dur = s["t_s"][-1] - s["t_s"][0]
    check(abs(r["cpu_utilization"] - seen / dur) < 0.01, "cpu_utilization %r" % r)
    # The HTML report shows the chart and the summary.
    rep = open(os.path.join(rundir, "report.html"), encoding="utf-8").read()
    data = json.loads(re.search(r'id="stoke-data">(.*?)</script>', rep, re.S).group(1))
    check(data["resources"] and data["resources"]["peak_rss"] == peak, "report resources")


def test_resource_target_exits(tmp):
    """A target that exits at once and an attached one that exits mid-way:
    the recording ends normally, nothing is counted lost, the series stops
    where the target did."""
    require_perf(tmp)
    p = run_stoke(["record", "-q", "--output-dir", tmp, "--name", "t", "--", "true"])
    check(p.returncode == 0, "record -- true: %s" % p.stderr)
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_t")][0])
    info = json.load(open(os.path.join(rundir, "run.json")))
    check(info["lost_samples"] == 0, "lost %r" % info["lost_samples"])
    check(info["resources"] is None or info["resources"]["points"] <= 2, "resources %r" %
          info["resources"])
    child = subprocess.Popen([fixture("split"), "2.5", "50"])
    try:
        p = run_stoke(["record", "-q", "-p", str(child.pid), "--output-dir", tmp, "--name",
                       "att"], timeout=60)
    finally:
        child.wait(timeout=30)
    check(p.returncode == 0, "record -p failed: %s" % p.stderr)
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_att")][0])
    info, r = resources_of(rundir)
    check(info["lost_samples"] == 0, "lost %r" % info["lost_samples"])
    check(3 <= r["points"] <= 30, "%d points for a 2.5 s target" % r["points"])
    check(all(v > 0 for v in r["series"]["rss_bytes"]), "a point without the target")


def test_resource_summaries(tmp):
    """stoke top on a run directory and stoke suite show the timeline's
    summary: peak and mean RSS, CPU use, as run.json has them."""
    require_perf(tmp)
    out = os.path.join(tmp, "suite")
    p = run_stoke(["suite", "--repeat", "2", "--output-dir", out, "--", fixture("rss-step"),
                   "1", "50", os.path.join(tmp, "t.txt")], timeout=120)
    check(p.returncode == 0, "suite failed: %s" % p.stderr)
    check(re.search(r"rss MB med +cpu% med", p.stdout), "no resource columns:\n" + p.stdout)
    js = json.load(open(os.path.join(out, "rss-step", "suite.json")))
    for r in js["repetitions"]:
        check(abs(r["peak_rss_bytes"] - 50 * 2**20) <= 5 * 2**20, "peak %r" % r)
        check(0 < r["mean_rss_bytes"] < r["peak_rss_bytes"] and r["cpu_utilization"] > 0,
              "repetition %r" % r)
    vals = sorted(r["peak_rss_bytes"] for r in js["repetitions"])
    check(abs(js["peak_rss_bytes"]["median"] - sum(vals) / 2) < 1, "median %r" % js)
    m = re.search(r"^rss-step +2 .* (\d+\.\d) +(\d+)%$", p.stdout, re.M)
    check(m and abs(float(m.group(1)) - sum(vals) / 2 / 2**20) < 0.06, "row: %r" % p.stdout)
    rundir = js["repetitions"][0]["path"]
    info, r = resources_of(rundir)
    p = run_stoke(["top", rundir, "-n", "1"])
    m = re.search(r"^resources: peak RSS (\d+\.\d) MB, mean RSS (\d+\.\d) MB, CPU (\d+)% of a "
                  r"core \(peak (\d+)%\)$", p.stdout, re.M)
    check(m, "no resources line in top:\n" + p.stdout)
    check(abs(float(m.group(1)) - r["peak_rss_bytes"] / 2**20) < 0.06 and
          abs(float(m.group(2)) - r["mean_rss_bytes"] / 2**20) < 0.06 and
          abs(int(m.group(3)) - 100 * r["cpu_utilization"]) <= 0.51, "top %r, run.json %r" %
          (m.groups(), {k: v for k, v in r.items() if k != "series"}))
    p = run_stoke(["top", os.path.join(rundir, "profile.pb.gz"), "-n", "1"])
    check(p.returncode == 0 and "resources:" not in p.stdout, "a pprof file has no timeline")


def test_resource_children(tmp):
    """The processes a target forks are followed too: two rss-step children
    of a shell touching 40 MB each make a peak of at least 80 MB."""
    require_perf(tmp)
    step = fixture("rss-step")
    script = "%s 3 40 %s/a & %s 3 40 %s/b; wait" % (step, tmp, step, tmp)
    p = run_stoke(["record", "-q", "--output-dir", tmp, "--name", "kids", "--", "sh", "-c",
                   script], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr)
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_kids")][0])
    _, r = resources_of(rundir)
    check(r["peak_rss_bytes"] >= 0.95 * 80 * 2**20,
          "peak %.1f MB for two children of 40 MB" % (r["peak_rss_bytes"] / 2**20))
    check(r["peak_rss_bytes"] <= 1.1 * 80 * 2**20 + 10 * 2**20, "peak %.1f MB" %
          (r["peak_rss_bytes"] / 2**20))


TESTS = {
    "tree_matches_top": test_tree_matches_top,
    "html_report": test_html_report,
    "html_hostile_names": test_html_hostile_names,
    "resource_step": test_resource_step,
    "resource_target_exits": test_resource_target_exits,
    "resource_summaries": test_resource_summaries,
    "resource_children": test_resource_children,
}

if __name__ == "__main__":
    run_tests(TESTS)
