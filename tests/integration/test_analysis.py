#!/usr/bin/env python3
"""Integration tests for the offline analysis commands (top, diff, suite,
annotate) on profiles recorded from the split fixture, whose truth is the
work split given on its command line."""
import gzip
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import check, fixture, run_stoke, run_tests  # noqa: E402

TOLERANCE = 5.0


def record(d, name, pct, seconds="2"):
    out = os.path.join(d, name + ".pb.gz")
    p = run_stoke(["record", "-q", "-o", out, "--", fixture("split"), seconds, str(pct)])
    check(p.returncode == 0, "record failed (%d): %s" % (p.returncode, p.stderr))
    return out


def top_rows(text):
    """Parse `stoke top` rows: rank, self%, total%, samples, function."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\S+)", line)
        if m:
            rows.append((int(m.group(1)), float(m.group(2)), float(m.group(3)),
                         int(m.group(4)), m.group(5)))
    return rows


def diff_rows(text):
    rows = {}
    for line in text.splitlines():
        m = re.match(r"(\S+)\s+([\d.]+)%\s+([\d.]+)%\s+([-+][\d.]+)\s+([\d.]+)%\s+([\d.]+)%"
                     r"\s+([-+][\d.]+)", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows


def test_top(d):
    prof = record(d, "p", 75)
    p = run_stoke(["top", prof, "-n", "5"])
    check(p.returncode == 0, "top failed: %s" % p.stderr)
    rows = top_rows(p.stdout)
    check(rows, "no rows in %r" % p.stdout)
    rank, self_pct, _, _, name = rows[0]
    check(name == "leaf_a", "hottest function is %s, not leaf_a:\n%s" % (name, p.stdout))
    check(abs(self_pct - 75) <= TOLERANCE, "leaf_a self %.1f%%, truth 75%%" % self_pct)
    check(rows[1][4] == "leaf_b" and abs(rows[1][1] - 25) <= TOLERANCE,
          "second row: %r" % (rows[1],))
    check(re.search(r"^samples \d+ .*lost \d+.*unwind failures \d+", p.stdout, re.M),
          "no header line: %r" % p.stdout[:300])
    check(re.search(r"callers: work_round 100\.0%", p.stdout), "no callers: %r" % p.stdout)
    p = run_stoke(["top", prof, "--by", "total", "-n", "3"])
    rows = top_rows(p.stdout)
    check(rows and rows[0][2] > 95, "--by total: first row %r" % (rows[:1],))
    p = run_stoke(["top", os.path.join(d, "missing.pb.gz")])
    check(p.returncode == 1 and "cannot read" in p.stderr, "missing input: %r" % p.stderr)
    bad = os.path.join(d, "bad.pb.gz")
    with open(bad, "wb") as f:
        f.write(b"\x1f\x8b not really gzip")
    p = run_stoke(["top", bad])
    check(p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1,
          "corrupt input: %d %r" % (p.returncode, p.stderr))


def test_diff(d):
    base = record(d, "base", 75)
    new = record(d, "new", 25)
    p = run_stoke(["diff", base, new])
    check(p.returncode == 0, "diff failed: %s" % p.stderr)
    rows = diff_rows(p.stdout)
    check("leaf_a" in rows and "leaf_b" in rows, "rows: %r" % p.stdout)
    # The truth moves 50 points from leaf_a to leaf_b; each share is within
    # the tolerance, so the change is within twice it.
    check(abs(rows["leaf_a"][2] - (-50)) <= 2 * TOLERANCE, "leaf_a change %+.1f" % rows["leaf_a"][2])
    check(abs(rows["leaf_b"][2] - 50) <= 2 * TOLERANCE, "leaf_b change %+.1f" % rows["leaf_b"][2])
    first = [l for l in p.stdout.splitlines() if re.match(r"leaf_[ab] ", l)]
    check(first, "no leaf rows")
    # The gate fails the regressed pair and names the offender ...
    p = run_stoke(["diff", base, new, "--max-regression", "10"])
    check(p.returncode == 3, "gate on a regression exited %d" % p.returncode)
    check("leaf_b" in p.stderr and "leaf_a" not in p.stderr, "offenders: %r" % p.stderr)
    # ... and passes identical profiles and a rerun of the same work.
    p = run_stoke(["diff", base, base, "--max-regression", "0"])
    check(p.returncode == 0, "identical profiles failed the gate: %s" % p.stderr)
    again = record(d, "again", 75)
    p = run_stoke(["diff", base, again, "--max-regression", "10"])
    check(p.returncode == 0, "a rerun of the same work failed the gate: %s" % p.stderr)


def test_diff_svg(d):
    base = record(d, "base", 75)
    new = record(d, "new", 25)
    svg = os.path.join(d, "diff.svg")
    p = run_stoke(["diff", base, new, "-o", svg])
    check(p.returncode == 0, "diff -o failed: %s" % p.stderr)
    x = subprocess.run(["xmllint", "--noout", svg], capture_output=True, text=True)
    check(x.returncode == 0, "xmllint: %s" % x.stderr)
    text = open(svg, encoding="utf-8").read()

    def fill(name):
        m = re.search(r"<title>%s [^<]*</title>\s*<rect[^>]*fill=\"rgb\((\d+),(\d+),(\d+)\)\""
                      % re.escape(name), text)
        check(m, "no frame for %s in the diff SVG" % name)
        return tuple(int(v) for v in m.groups())

    r, g, b = fill("leaf_b")
    check(r > b, "leaf_b grew but is not red: rgb%r" % ((r, g, b),))
    r, g, b = fill("leaf_a")
    check(b > r, "leaf_a shrank but is not blue: rgb%r" % ((r, g, b),))


def test_annotate(d):
    prof = record(d, "p", 75)
    p = run_stoke(["annotate", prof, "leaf_a"])
    check(p.returncode == 0, "annotate failed: %s" % p.stderr)
    # The hot loop is the BURN_UNITS line inside leaf_a; find it in the source.
    with open(os.path.join(os.environ["STOKE_SOURCE_ROOT"], "tests", "fixtures", "split.c")) as f:
        lines = f.read().splitlines()
    start = next(i for i, l in enumerate(lines) if "void leaf_a(" in l)
    hot = next(i for i in range(start, len(lines)) if "BURN_UNITS" in lines[i]) + 1
    m = re.search(r"leaf_a: (\d+) samples self", p.stdout)
    check(m, "no header: %r" % p.stdout[:200])
    self_total = int(m.group(1))
    row = re.search(r"^\s*(\d+)\s+[\d.]+%\s+\d+\s+" + str(hot) + r"\s+.*BURN_UNITS", p.stdout,
                    re.M)
    check(row, "line %d (the hot loop) is not shown with its source:\n%s" % (hot, p.stdout))
    on_hot = int(row.group(1))
    check(on_hot >= 0.8 * self_total, "only %d of %d samples on the hot loop line %d"
          % (on_hot, self_total, hot))
    p = run_stoke(["annotate", prof, "no_such_function"])
    check(p.returncode == 1 and "no line information" in p.stderr, "unknown function: %r" % p.stderr)


def test_suite(d):
    out = os.path.join(d, "suite")
    p = run_stoke(["suite", "--repeat", "3", "--output-dir", out, "-F", "499", "--",
                   fixture("split"), "0.6", "75"], timeout=120)
    check(p.returncode == 0, "suite failed (%d): %s" % (p.returncode, p.stderr))
    sdir = os.path.join(out, "split")
    with open(os.path.join(sdir, "suite.json")) as f:
        js = json.load(f)
    reps = js["repetitions"]
    check(len(reps) == 3 and js["completed"] == 3, "repetitions: %r" % reps)
    for r in reps:
        check(r["status"] == "ok" and r["exit_code"] == 0, "repetition failed: %r" % r)
        check(os.path.isfile(os.path.join(r["path"], "run.json")) and
              os.path.isfile(os.path.join(r["path"], "profile.pb.gz")),
              "incomplete run directory %s" % r["path"])
        # The fixture runs for 0.6 s of wall time; it cannot finish sooner.
        check(0.6 <= r["wall_s"] < 30, "wall time %.3f s" % r["wall_s"])
        check(0 < r["cpu_s"] <= r["wall_s"] * 1.1, "cpu time %.3f s" % r["cpu_s"])
    for key in ("wall_s", "cpu_s", "samples"):
        st = js[key]
        vals = sorted(r[key] for r in reps)
        check(st["min"] == min(vals) or abs(st["min"] - vals[0]) < 1e-5, "%s min" % key)
        check(abs(st["median"] - vals[1]) < 1e-5, "%s median %r vs %r" % (key, st, vals))
        check(abs(st["mean"] - sum(vals) / 3) < 1e-5, "%s mean" % key)
        check(st["min"] <= st["median"] <= st["p95"] <= vals[2] + 1e-9, "%s order %r" % (key, st))
        check(st["stddev"] >= 0, "%s stddev" % key)
    # The merged profile holds every repetition's samples.
    merged = os.path.join(sdir, "merged.pb.gz")
    p = run_stoke(["top", merged, "-n", "2"])
    m = re.search(r"^samples (\d+)", p.stdout, re.M)
    check(m and int(m.group(1)) == sum(r["samples"] for r in reps),
          "merged samples %s, repetitions %d" % (m and m.group(1), sum(r["samples"] for r in reps)))
    rows = top_rows(p.stdout)
    # The split is of the work between the leaves: process start-up (a few
    # percent of a 0.6 s run, more for an ASan-built fixture) is not in it.
    leaves = {r[4]: r[1] for r in rows}
    check(rows[0][4] == "leaf_a" and "leaf_b" in leaves, "merged top: %r" % rows)
    share_a = 100.0 * leaves["leaf_a"] / (leaves["leaf_a"] + leaves["leaf_b"])
    check(abs(share_a - 75) <= TOLERANCE, "merged leaf_a %.1f%% of the leaves: %r" % (share_a, rows))


def test_suite_file(d):
    spec = os.path.join(d, "suite.json")
    out = os.path.join(d, "out")
    with open(spec, "w") as f:
        json.dump({"output_dir": out, "scenarios": [
            {"name": "mostly-a", "command": [fixture("split"), "0.3", "80"], "repeat": 2},
            {"name": "mostly-b", "command": [fixture("split"), "0.3", "20"], "repeat": 2,
             "record": ["-g", "fp"]}]}, f)
    p = run_stoke(["suite", spec], timeout=120)
    check(p.returncode == 0, "suite FILE failed: %s" % p.stderr)
    for name in ("mostly-a", "mostly-b"):
        with open(os.path.join(out, name, "suite.json")) as f:
            js = json.load(f)
        check(js["completed"] == 2 and all(r["status"] == "ok" for r in js["repetitions"]),
              "%s: %r" % (name, js))
    bad = os.path.join(d, "bad.json")
    for content in ("{not json", '{"scenarios": []}', '{"scenarios": [{"name": "x"}]}',
                    '{"scenarios": [{"name": "../x", "command": ["true"]}]}'):
        with open(bad, "w") as f:
            f.write(content)
        p = run_stoke(["suite", bad])
        check(p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1,
              "bad file %r: %d %r" % (content, p.returncode, p.stderr))


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(num, value):
    """A varint field for an int, a length-delimited one for bytes."""
    if isinstance(value, int):
        return pb_varint(num << 3) + pb_varint(value)
    return pb_varint(num << 3 | 2) + pb_varint(len(value)) + value


def go_cpu_profile(path):
    """A profile shaped as Go's runtime/pprof writes it: sample types
    samples/count and cpu/nanoseconds, period 10 ms of cpu, no stoke
    comments. main.hot 30 samples, main.cold 10, both under main.main."""
    strings = ["", "samples", "count", "cpu", "nanoseconds", "main.main", "main.hot",
               "main.cold", "/src/main.go"]
    sid = {s: i for i, s in enumerate(strings)}
    msg = b""
    for t, u in (("samples", "count"), ("cpu", "nanoseconds")):
        msg += pb_field(1, pb_field(1, sid[t]) + pb_field(2, sid[u]))
    for loc, n in ((2, 30), (3, 10)):
        msg += pb_field(2, pb_field(1, pb_varint(loc) + pb_varint(1)) +
                        pb_field(2, pb_varint(n) + pb_varint(n * 10000000)))
    for i, name in enumerate(("main.main", "main.hot", "main.cold"), 1):
        msg += pb_field(4, pb_field(1, i) + pb_field(3, 0x1000 + i) +
                        pb_field(4, pb_field(1, i) + pb_field(2, 10 * i)))
        msg += pb_field(5, pb_field(1, i) + pb_field(2, sid[name]) + pb_field(3, sid[name]) +
                        pb_field(4, sid["/src/main.go"]))
    for s_ in strings:
        msg += pb_field(6, s_.encode())
    msg += pb_field(9, 1700000000000000000) + pb_field(10, 400000000)
    msg += pb_field(11, pb_field(1, sid["cpu"]) + pb_field(2, sid["nanoseconds"]))
    msg += pb_field(12, 10000000)
    with gzip.open(path, "wb") as f:
        f.write(msg)


def test_top_header_and_columns(d):
    # The count column says what it counts, and a Go pprof shows its rate
    # and sample type rather than "0 Hz ?".
    prof = os.path.join(d, "go.pb.gz")
    go_cpu_profile(prof)
    p = run_stoke(["top", prof])
    check(p.returncode == 0, "top of a Go profile failed: %s" % p.stderr)
    check(not re.search(r"\b0 Hz", p.stdout) and "?" not in p.stdout.splitlines()[1],
          "header: %r" % p.stdout.splitlines()[1])
    check(re.search(r"duration 0\.40 s, 100 Hz cpu", p.stdout),
          "no duration/rate/type: %r" % p.stdout.splitlines()[1])
    rows = top_rows(p.stdout)
    check(rows and rows[0][4] == "main.hot" and rows[0][3] == 30, "rows: %r" % rows)
    check(re.search(r"^\s*rank\s.*\bself-n\b", p.stdout, re.M),
          "the count column does not say self: %r" % p.stdout)
    p = run_stoke(["top", prof, "--by", "total"])
    check(re.search(r"^\s*rank\s.*\btotal-n\b", p.stdout, re.M),
          "the count column does not say total: %r" % p.stdout)


TESTS = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    run_tests(TESTS)
