#!/usr/bin/env python3
"""Every output format, checked by its real reader (FORMATS.md "Checking
with the real readers"), on a profile of the split fixture whose work
split (leaf_a PERCENT of the work, leaf_b the rest) is the truth.

Readers: Python's pstats, `go tool pprof` (golang-go), speedscope's own
importer in headless chromium (npm speedscope + puppeteer-core, schema via
ajv), npm pprof-format, callgrind_annotate (valgrind), xmllint and the SVG's
search in chromium. tools/setup installs them all; a test whose reader is
genuinely missing exits 77 with the reason (STOKE_REQUIRE_PERF=1 turns that
into a failure, as for perf_event).
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys

from stoketest import (Fail, Skip, check, fixture, leaf_count, parse_folded, run_stoke,
                       run_tests, total)

HERE = os.path.dirname(os.path.abspath(__file__))
READERS = os.path.join(HERE, "..", "readers")
DATA = os.path.join(HERE, "..", "data")
PCT_A = 70
SECONDS = "2"
FREQ = "499"

FILES = {"folded": "profile.folded", "svg": "flamegraph.svg",
         "speedscope": "profile.speedscope.json", "pstats": "profile.pstats",
         "txt": "profile.txt", "pprof": "profile.pb.gz", "callgrind": "callgrind.out.stoke",
         "html": "report.html"}


# --- readers -----------------------------------------------------------------

def need(tool, what):
    if not shutil.which(tool):
        raise Skip("%s is not installed (%s; tools/setup installs it)" % (tool, what))


def need_node_readers():
    need("node", "nodejs")
    if not os.path.isdir(os.path.join(READERS, "node_modules", "puppeteer-core")):
        raise Skip("tests/readers/node_modules is missing (tools/setup runs npm ci there)")
    if not os.path.exists(os.environ.get("STOKE_CHROMIUM", "/usr/bin/chromium")):
        raise Skip("chromium is not installed (tools/setup installs it)")


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=180,
                       **kw)
    check(p.returncode == 0, "%s failed (%d): %s" % (" ".join(args[:3]), p.returncode,
                                                     (p.stderr or p.stdout).strip()[-2000:]))
    return p.stdout


def node(script, *args):
    return run(["node", os.path.join(READERS, script)] + list(args), cwd=READERS)


def go_pprof(tmp, *args):
    need("go", "golang-go")
    env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"), GOFLAGS="-mod=mod",
               GOTOOLCHAIN="local", PPROF_TMPDIR=tmp)
    return run(["go", "tool", "pprof", "-symbolize=none"] + list(args), env=env)


# --- a recorded run directory -------------------------------------------------

def record_rundir(tmp, *extra):
    p = run_stoke(["record", "-q", "-F", FREQ, "--output-dir", tmp, "--name", "split"] +
                  list(extra) + ["--", fixture("split"), SECONDS, str(PCT_A)], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr.strip())
    dirs = [d for d in os.listdir(tmp) if d.endswith("_split")]
    check(len(dirs) == 1, "expected one run directory, got %r" % os.listdir(tmp))
    return os.path.join(tmp, dirs[0])


def folded_truth(rundir):
    stacks = parse_folded(os.path.join(rundir, FILES["folded"]))
    n = total(stacks)
    a, b = leaf_count(stacks, "leaf_a"), leaf_count(stacks, "leaf_b")
    check(n > 200, "too few samples: %d" % n)
    # the fixture's argument is the truth: leaf_a's share of the two leaves
    check(abs(a / (a + b) - PCT_A / 100) < 0.07,
          "leaf_a share %.3f, fixture asked for %.2f" % (a / (a + b), PCT_A / 100))
    return stacks, n


def top_self_folded(stacks):
    counts = {}
    for frames, c in stacks:
        leaf = re.sub(r"_\[[kji]\]$", "", frames[-1])
        counts[leaf] = counts.get(leaf, 0) + c
    name = max(counts, key=counts.get)
    return name, counts[name]


# --- the tests ------------------------------------------------------------------

def test_rundir_and_report(tmp):
    """The run directory's layout and run.json; `stoke report` re-renders
    every format byte-identically, SVG options included."""
    rundir = record_rundir(tmp, "--title", "split <&> test", "--width", "900", "--inverted",
                           "--minwidth", "2")
    check(re.search(r"/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_split$", rundir), rundir)
    info = json.load(open(os.path.join(rundir, "run.json")))
    for key in ["schema_version", "tool", "target", "start", "end", "duration_s", "event",
                "frequency", "call_graph", "samples", "lost_samples", "throttled",
                "unwind_failures", "threads", "host", "files"]:
        check(key in info, "run.json lacks %s" % key)
    check(info["schema_version"] == "2", "schema_version %r" % info["schema_version"])
    check(info["files"] == FILES, "files %r" % info["files"])
    check(sorted(os.listdir(rundir)) == sorted(list(FILES.values()) + ["run.json"]),
          "run directory holds %r" % sorted(os.listdir(rundir)))
    stacks, n = folded_truth(rundir)
    check(info["samples"] == n, "run.json samples %d, folded %d" % (info["samples"], n))
    check(sum(t["samples"] for t in info["threads"]) == n, "thread samples do not add up")
    check(info["frequency"] == int(FREQ) and info["event"] == "cpu-clock", str(info))
    # The target's identity: its executable and the build-id readelf sees.
    exe = info["target"]["exe"]
    check(exe and os.path.samefile(exe, fixture("split")), "target exe %r" % exe)
    notes = subprocess.run(["readelf", "-n", fixture("split")], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", notes.stdout)
    check(m and info["target"]["build_id"] == m.group(1),
          "target build_id %r, readelf %r" % (info["target"]["build_id"], m and m.group(1)))
    for fmt, name in FILES.items():
        out = os.path.join(tmp, "report." + fmt)
        args = ["report", rundir, "-f", fmt, "-o", out]
        if fmt == "svg":
            args += ["--title", "split <&> test", "--width", "900", "--inverted",
                     "--minwidth", "2"]
        p = run_stoke(args)
        check(p.returncode == 0, "report -f %s failed: %s" % (fmt, p.stderr.strip()))
        with open(out, "rb") as f1, open(os.path.join(rundir, name), "rb") as f2:
            check(f1.read() == f2.read(), "report -f %s differs from record's %s" % (fmt, name))
    # the pprof file alone is enough, and the format follows -o's extension
    out = os.path.join(tmp, "again.pstats")
    p = run_stoke(["report", os.path.join(rundir, "profile.pb.gz"), "-o", out])
    check(p.returncode == 0, p.stderr)
    check(open(out, "rb").read() == open(os.path.join(rundir, "profile.pstats"), "rb").read(),
          "report -o x.pstats differs")
    # a second run directory with the same name in the same second gets _2
    # (or a new timestamp); never the same directory
    rundir2 = record_rundir_again(tmp)
    check(rundir2 != rundir, "the second run reused %s" % rundir)


def record_rundir_again(tmp):
    before = set(os.listdir(tmp))
    p = run_stoke(["record", "-q", "-F", FREQ, "--output-dir", tmp, "--name", "split", "--",
                   fixture("split"), "0.3", str(PCT_A)], timeout=60)
    check(p.returncode == 0, p.stderr)
    new = [d for d in set(os.listdir(tmp)) - before if "_split" in d]
    check(len(new) == 1, "expected one new run directory: %r" % new)
    return os.path.join(tmp, new[0])


def test_output_by_extension(tmp):
    """-o picks the format from the extension; -f overrides it."""
    cases = {"p.svg": b"<?xml", "p.speedscope.json": b"{\"$schema\"", "p.pb.gz": b"\x1f\x8b",
             "callgrind.out.1": b"# callgrind format", "p.callgrind": b"# callgrind format",
             "p.pstats": b"{", "p.prof": b"{", "p.txt": b"\n ", "p.folded": b"[" }
    for name, magic in cases.items():
        out = os.path.join(tmp, name)
        p = run_stoke(["record", "-q", "-F", FREQ, "-o", out, "--", fixture("split"), "0.3"])
        check(p.returncode == 0, "%s: %s" % (name, p.stderr))
        data = open(out, "rb").read()
        if name != "p.folded":
            check(data.startswith(magic), "%s starts with %r" % (name, data[:20]))
    out = os.path.join(tmp, "forced.txt")
    p = run_stoke(["record", "-q", "-F", FREQ, "-f", "svg", "-o", out, "--", fixture("split"),
                   "0.3"])
    check(p.returncode == 0 and open(out, "rb").read().startswith(b"<?xml"), "-f svg ignored")
    leftovers = [f for f in os.listdir(tmp) if f.startswith(".")]
    check(not leftovers, "temporary files left: %r" % leftovers)


def test_bad_input(tmp):
    """Bad options and unreadable profiles: one line, non-zero, no crash."""
    def fails(args, code, pattern):
        p = run_stoke(args)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == code, "%r exited %d (want %d): %s" % (args, p.returncode, code,
                                                                  p.stderr))
        check(len(lines) == 1 and re.search(pattern, lines[0]),
              "%r: stderr %r" % (args, p.stderr))

    fails(["record", "-o", os.path.join(tmp, "x.png"), "--", "true"], 2, "output format")
    fails(["record", "-f", "png", "--", "true"], 2, "unknown format 'png'")
    fails(["record", "--output-dir", tmp, "-o", "x.svg", "--", "true"], 2, "output-dir")
    fails(["record", "--width", "abc", "--", "true"], 2, "width")
    fails(["report", os.path.join(tmp, "missing.pb.gz")], 1, "No such file")
    fails(["report", tmp], 1, "not a run directory")
    junk = os.path.join(tmp, "junk.pb.gz")
    with open(junk, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00garbage" * 10)
    fails(["report", junk], 1, "gzip")
    text = os.path.join(tmp, "text.pb.gz")
    with open(text, "wb") as f:
        f.write(b"\x08\x96\x01\x12\xffnot a protobuf")
    fails(["report", text], 1, "cannot read")
    with open(text, "w") as f:
        f.write("main;run 12\nmain;run twelve\n")
    fails(["report", text], 1, "line 2")
    fails(["report", text, "-o", os.path.join(tmp, "x.unknown")], 2, "format")
    fails(["report"], 2, "INPUT")


def test_pstats_reader(tmp):
    """Python's pstats loads the file; its invariants hold; our text table
    is byte-identical to what pstats prints for our own .pstats file."""
    rundir = record_rundir(tmp)
    stacks, n = folded_truth(rundir)
    info = json.load(open(os.path.join(rundir, "run.json")))
    period = info["period_ns"] / 1e9
    table = run([sys.executable, os.path.join(READERS, "pstats_table.py"),
                 os.path.join(rundir, FILES["pstats"]), "--check-invariants", repr(n * period)])
    ours = open(os.path.join(rundir, FILES["txt"]), encoding="utf-8").read()
    # One line more than pstats prints: calls are sample counts (#17 item 5).
    note = '   (stoke: "function calls" and ncalls count samples, not calls)\n'
    check(note in ours, "the table does not say ncalls are samples:\n" + ours[:600])
    ours = ours.replace(note, "", 1)
    check(table == ours, "profile.txt differs from pstats' own table:\n%s\n---\n%s" %
          (table[:1500], ours[:1500]))


def test_pprof_reader(tmp):
    """go tool pprof -top reads the file; leaf_a's flat % matches the
    fixture's split and the folded counts; pprof-format decodes it and its
    references resolve."""
    rundir = record_rundir(tmp)
    stacks, n = folded_truth(rundir)
    out = go_pprof(tmp, "-top", "-nodecount=50", os.path.join(rundir, FILES["pprof"]))
    flat = {}
    for line in out.splitlines():
        m = re.match(r"\s*[\d.]+\w*\s+([\d.]+)%\s+[\d.]+%\s+[\d.]+\w*\s+[\d.]+%\s+(.+)$", line)
        if m:
            flat[m.group(2).strip()] = float(m.group(1))
    check("leaf_a" in flat and "leaf_b" in flat, "pprof -top lacks the leaves:\n" + out)
    a, b = flat["leaf_a"], flat["leaf_b"]
    check(abs(a / (a + b) - PCT_A / 100) < 0.07, "pprof leaf_a share %.3f" % (a / (a + b)))
    want = 100.0 * leaf_count(stacks, "leaf_a") / n
    check(abs(a - want) < 0.06, "pprof flat%% of leaf_a %.2f, folded says %.2f" % (a, want))
    # Real addresses: -disasm shows leaf_a's hot loop, instruction by
    # instruction, with its samples (#17 item 6).
    dis = go_pprof(tmp, "-disasm=leaf_a", os.path.join(rundir, FILES["pprof"]))
    hot = [l for l in dis.splitlines()
           if re.match(r"\s*[\d.]+\w*s\s+[\d.]+\w*s\s+[0-9a-f]+: \S", l)]
    check("ROUTINE" in dis and "leaf_a" in dis and hot,
          "-disasm=leaf_a shows no instruction with samples:\n" + dis[:2000])
    # No metadata lines above the report (#17 item 6).
    check("stoke." not in out, "stoke metadata shown above the report:\n" + out[:1500])
    traces = go_pprof(tmp, "-traces", os.path.join(rundir, FILES["pprof"]))
    check("thread_id:" in traces and "thread:" in traces, "no thread labels in -traces")
    check("stoke." not in traces, "stoke metadata shown above -traces")
    # Identical stacks of a thread are one trace, not one per sample (a
    # stack is of addresses: the same functions at two instructions of the
    # hot loop are two traces, as in Go's own profiles).
    threaded = run_stoke(["report", rundir, "-f", "folded", "--per-thread"])
    distinct = len(threaded.stdout.splitlines())
    ntraces = len(re.findall(r"^-+\+-+$", traces, re.M)) - 1
    check(distinct <= ntraces <= n // 4, "-traces lists %d traces for %d distinct function "
          "stacks and %d samples" % (ntraces, distinct, n))
    need_node_readers()
    dec = json.loads(node("pprof_check.js", os.path.join(rundir, FILES["pprof"])))
    check(dec["value0"] == n, "pprof-format total %d, folded %d" % (dec["value0"], n))
    check(dec["types"] == ["samples/count", "cpu/nanoseconds"], str(dec["types"]))


# The inline fixture's hot chain (test_symbols.py INLINE_CHAIN), leaf first:
# mix_inner and mix_outer inlined into run.
INLINE_LEAF_FIRST = ["mix_inner", "mix_outer", "run"]

PPROF_FORMAT_LOCATIONS = r"""
const fs = require('fs'), zlib = require('zlib');
const { Profile } = require('pprof-format');
let buf = fs.readFileSync(process.argv[1]);
if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
const p = Profile.decode(buf);
const s = p.stringTable.strings;
const fn = new Map(p.function.map((f) => [Number(f.id), s[Number(f.name)]]));
console.log(JSON.stringify(p.location.map((l) => l.line.map((x) => fn.get(Number(x.functionId))))));
"""


def test_pprof_inline(tmp):
    """Inlined frames of the inline fixture: pprof Locations group each
    inline chain under its physical function's address (go tool pprof -raw
    and npm pprof-format see one Location with lines innermost first, and
    -traces marks them "(inline)"), and `stoke report` still re-renders
    every format byte-identically."""
    p = run_stoke(["record", "-q", "-F", FREQ, "--output-dir", tmp, "--name", "inline", "--",
                   fixture("inline"), SECONDS], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr.strip())
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_inline")][0])
    stacks = parse_folded(os.path.join(rundir, FILES["folded"]))
    n = total(stacks)
    chain = ["%s_[i]" % f for f in INLINE_LEAF_FIRST[:-1]][::-1]
    in_chain = sum(c for fr, c in stacks
                   if [f for f in fr if not f.endswith("_[k]")][-3:] == ["run"] + chain)
    check(n > 200 and in_chain >= 0.9 * n,
          "folded: %d of %d samples end in run;%s" % (in_chain, n, ";".join(chain)))
    for fmt, name in FILES.items():
        out = os.path.join(tmp, "report." + fmt)
        p = run_stoke(["report", rundir, "-f", fmt, "-o", out])
        check(p.returncode == 0, "report -f %s failed: %s" % (fmt, p.stderr.strip()))
        with open(out, "rb") as f1, open(os.path.join(rundir, name), "rb") as f2:
            check(f1.read() == f2.read(), "report -f %s differs from record's %s" % (fmt, name))
    pb = os.path.join(rundir, FILES["pprof"])
    # -raw: "ID: ADDRESS M=.. FUNC FILE:LINE" then one indented line per
    # further line[] entry of the same Location
    raw = go_pprof(tmp, "-raw", pb)
    locs, cur = [], None
    for line in raw.split("\nLocations\n", 1)[-1].split("\nMappings\n", 1)[0].splitlines():
        m = re.match(r"\s*\d+: 0x[0-9a-f]+ (?:M=\d+ )?(\S+)", line)
        if m:
            cur = [m.group(1)]
            locs.append(cur)
        elif cur is not None and line.strip():
            cur.append(line.split()[0])
    check(INLINE_LEAF_FIRST in locs, "no Location holds %s:\n%s" % (INLINE_LEAF_FIRST, raw[:3000]))
    check(all(loc[-1] not in ("mix_inner", "mix_outer") for loc in locs if len(loc) > 1),
          "an inlined function is a Location's last line: %r" % locs)
    # -traces: each distinct stack (per thread), leaf first, with its time;
    # the chain reads "(inline)" twice
    traces = go_pprof(tmp, "-traces", pb)
    blocks = traces.split("-----------+")[1:]
    want = ["mix_inner (inline)", "mix_outer (inline)", "run"]
    unit = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0}
    hits = alltime = 0.0
    for b in blocks:
        # label lines are "KEY:  VALUE"; the first frame line has the value
        lines = [l for l in b.splitlines()[1:] if not re.match(r"\s*\w+:  ", l)]
        m = re.match(r"^\s*([\d.]+)(\S*s)\s", lines[0]) if lines else None
        if not m:
            continue
        t = float(m.group(1)) * unit.get(m.group(2), 0)
        frames = [re.sub(r"^\s*[\d.]+\S*s\s+", "", l).strip() for l in lines]
        alltime += t
        # kernel frames (interrupts) may sit on top of the chain
        if want[0] in frames and frames[frames.index(want[0]):][:3] == want:
            hits += t
    print("-traces: %.3f of %.3f s show the chain" % (hits, alltime))
    check(alltime > 0 and hits >= 0.9 * alltime,
          "-traces: %.3f of %.3f s show %s:\n%s" % (hits, alltime, want, traces[:3000]))
    need_node_readers()
    locs = json.loads(run(["node", "-e", PPROF_FORMAT_LOCATIONS, pb], cwd=READERS))
    check(INLINE_LEAF_FIRST in locs, "pprof-format: no Location holds %s: %r" %
          (INLINE_LEAF_FIRST, locs))


def test_speedscope_reader(tmp):
    """speedscope's schema (ajv) and its own importer in chromium load it."""
    need_node_readers()
    rundir = record_rundir(tmp)
    out = node("speedscope_check.js", os.path.join(rundir, FILES["speedscope"]))
    check(" - speedscope" in out, out)


def test_callgrind_reader(tmp):
    """callgrind_annotate reads the file; totals and leaf_a's share agree."""
    need("callgrind_annotate", "valgrind")
    rundir = record_rundir(tmp)
    stacks, n = folded_truth(rundir)
    out = run(["callgrind_annotate", os.path.join(rundir, FILES["callgrind"])])
    m = re.search(r"^([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", out, re.M)
    check(m and int(m.group(1).replace(",", "")) == n, "PROGRAM TOTALS:\n" + out[:2000])
    m = re.search(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*:leaf_a \[", out, re.M)
    check(m, "no leaf_a row:\n" + out[:3000])
    check(int(m.group(1).replace(",", "")) == leaf_count(stacks, "leaf_a"),
          "callgrind leaf_a %s, folded %d" % (m.group(1), leaf_count(stacks, "leaf_a")))
    # Frames without a symbol have no source file ("???"): naming their ELF
    # binary as one made callgrind_annotate read it as source and warn.
    elf = shutil.which("true")
    script = PERF_SCRIPT.replace("/usr/lib/libz.so", elf)
    cg = os.path.join(tmp, "unknown.callgrind")
    p = subprocess.run([os.environ.get("STOKE", "stoke"), "report", "-", "-o", cg],
                       input=script, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "report: %s" % p.stderr)
    with open(cg) as f:
        text = f.read()
    check(not re.search(r"^(fl|fi|fe|cfi|cfl)=(\(\d+\) )?" + re.escape(elf) + "$", text, re.M),
          "an ELF file is named as a source file:\n" + text)
    p = subprocess.run(["callgrind_annotate", "--auto=yes", cg], capture_output=True,
                       text=True, errors="replace", timeout=60)
    check(p.returncode == 0 and not p.stderr.strip(),
          "callgrind_annotate complained: %r" % p.stderr[-1000:])


def test_svg_reader(tmp):
    """xmllint accepts the SVG; in chromium, searching the hot function
    shows "Matched: X%" with its share; zoom and Reset Zoom work."""
    need("xmllint", "libxml2-utils")
    rundir = record_rundir(tmp)
    stacks, n = folded_truth(rundir)
    svg = os.path.join(rundir, FILES["svg"])
    run(["xmllint", "--noout", svg])
    need_node_readers()
    res = json.loads(node("svg_check.js", svg, "^leaf_a$"))
    # a box's width is its total: kernel frames (interrupts) can sit on top
    # of leaf_a, so compare with every stack that holds it
    want = 100.0 * sum(c for fr, c in stacks if "leaf_a" in fr) / n
    for key in ("matched", "prompt_matched"):
        m = re.match(r"Matched: ([\d.]+)%$", res[key])
        check(m and abs(float(m.group(1)) - want) < 0.06,
              "%s: %r, folded says %.1f%%" % (key, res[key], want))
    check(res["search_url"] == "^leaf_a$", "search not kept in the URL: %r" % res)
    check(res.get("zoomed") and res.get("reset"), "zoom/reset failed: %r" % res)
    check("x=" in res["zoom_url"], "zoom not kept in the URL: %r" % res)


def test_cross_format(tmp):
    """The same profile gives the same total and the same top self
    function and share in every format."""
    need("callgrind_annotate", "valgrind")
    rundir = record_rundir(tmp)
    stacks, n = folded_truth(rundir)
    top, top_n = top_self_folded(stacks)
    info = json.load(open(os.path.join(rundir, "run.json")))
    period = info["period_ns"] / 1e9
    share = top_n / n
    results = {"folded": (n, top, share)}
    # pstats, via Python
    import pstats
    st = pstats.Stats(os.path.join(rundir, FILES["pstats"])).stats
    tt = {k[2]: v[2] for k, v in st.items()}
    ptop = max(tt, key=tt.get)
    results["pstats"] = (round(sum(tt.values()) / period), ptop, tt[ptop] / sum(tt.values()))
    # the text table: rows "ncalls tottime percall cumtime percall name"
    rows = re.findall(r"^\s+[\d/]+\s+([\d.]+)\s+\S+\s+[\d.]+\s+\S*\s*\S+:\d+\((.*)\)$",
                      open(os.path.join(rundir, FILES["txt"])).read(), re.M)
    ttop = max(rows, key=lambda r: float(r[0]))
    hdr = re.search(r"in ([\d.]+) seconds", open(os.path.join(rundir, FILES["txt"])).read())
    results["txt"] = (round(float(hdr.group(1)) / period), ttop[1],
                      float(ttop[0]) / float(hdr.group(1)))
    # speedscope: weights by leaf frame
    ss = json.load(open(os.path.join(rundir, FILES["speedscope"])))
    names = [f["name"] for f in ss["shared"]["frames"]]
    leaf = {}
    for prof in ss["profiles"]:
        for s, w in zip(prof["samples"], prof["weights"]):
            if s:
                leaf[names[s[-1]]] = leaf.get(names[s[-1]], 0) + w
    sw = sum(w for prof in ss["profiles"] for w in prof["weights"])
    stop = max(leaf, key=leaf.get)
    results["speedscope"] = (round(sw / info["period_ns"]), stop, leaf[stop] / sw)
    # callgrind_annotate
    out = run(["callgrind_annotate", os.path.join(rundir, FILES["callgrind"])])
    ctot = int(re.search(r"^([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", out, re.M)
               .group(1).replace(",", ""))
    m = re.search(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*:(\S+) \[", out, re.M)
    results["callgrind"] = (ctot, m.group(2), int(m.group(1).replace(",", "")) / ctot)
    # pprof, via go tool pprof -top (sorted by flat)
    gout = go_pprof(tmp, "-top", os.path.join(rundir, FILES["pprof"]))
    m = re.search(r"^\s*[\d.]+\w*\s+([\d.]+)%\s+[\d.]+%\s+[\d.]+\w*\s+[\d.]+%\s+(\S+)\s*$",
                  gout, re.M)
    tot_ms = re.search(r"Total samples = ([\d.]+)(ms|s)", gout)
    tot = float(tot_ms.group(1)) * (1 if tot_ms.group(2) == "ms" else 1000) / (period * 1000)
    results["pprof"] = (round(tot), m.group(2), float(m.group(1)) / 100)
    # svg: the root's title
    svg = open(os.path.join(rundir, FILES["svg"]), encoding="utf-8").read()
    m = re.search(r"<title>all \((\d+) samples, 100\.00%\)</title>", svg)
    # boxes are totals: the top function's boxes less their children
    # (interrupt frames) equal its self count; compare totals instead
    leafs = re.findall(r"<title>%s \((\d+) samples" % re.escape(top), svg)
    top_total = sum(c for fr, c in stacks if top in fr)
    check(sum(map(int, leafs)) == top_total,
          "svg boxes of %s hold %d samples, folded %d" % (top, sum(map(int, leafs)), top_total))
    results["svg"] = (int(m.group(1)), top, share)
    for fmt, (t, name, sh) in results.items():
        check(abs(t - n) <= 0 if fmt != "txt" else abs(t - n) <= 1,
              "%s total %s, folded %d (%r)" % (fmt, t, n, results))
        check(name == top, "%s top self function %s, folded %s (%r)" % (fmt, name, top, results))
        check(abs(sh - share) < 0.002 + (0.001 if fmt in ("txt", "pprof") else 0),
              "%s top share %.4f, folded %.4f (%r)" % (fmt, sh, share, results))


def test_golden_files_real_readers(tmp):
    """The golden files of the synthetic profile (hostile names: ';', spaces,
    <>&\", trailing digits, invalid UTF-8, a very long C++ name) load in
    every real reader."""
    import gzip
    import pstats
    pstats.Stats(os.path.join(DATA, "synth.pstats"))
    table = run([sys.executable, os.path.join(READERS, "pstats_table.py"),
                 os.path.join(DATA, "synth.pstats"), "--check-invariants", "0.020"])
    check(table == open(os.path.join(DATA, "synth.txt"), encoding="utf-8").read(),
          "synth.txt is not what pstats prints")
    need("xmllint", "libxml2-utils")
    for svg in ("synth.svg", "synth-options.svg", "empty.svg"):
        run(["xmllint", "--noout", os.path.join(DATA, svg)])
    need("callgrind_annotate", "valgrind")
    out = run(["callgrind_annotate", os.path.join(DATA, "synth.callgrind")])
    check(re.search(r"^20 \(100\.0%\)\s+PROGRAM TOTALS", out, re.M), out[:1000])
    gz = os.path.join(tmp, "synth.pb.gz")
    with open(os.path.join(DATA, "synth.pb"), "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read())
    out = go_pprof(tmp, "-top", gz)
    check(re.search(r"12ms 60\.00%.*hot_leaf", out), out)
    need_node_readers()
    node("speedscope_check.js", os.path.join(DATA, "synth.speedscope.json"),
         os.path.join(DATA, "empty.speedscope.json"))
    res = json.loads(node("svg_check.js", os.path.join(DATA, "synth.svg"), "hot_leaf"))
    check(res["matched"] == "Matched: 60.0%", str(res))
    dec = json.loads(node("pprof_check.js", gz))
    check(dec["value0"] == 20, str(dec))


PERF_SCRIPT = """\
app 100/101 [000]  12.000001:    1000000 cpu-clock: 
\t    ffffffff81000e06 asm_sysvec_apic_timer_interrupt+0x16 ([kernel.kallsyms])
\t            1274 leaf_a+0x34 (/usr/bin/app)
\t            134c run+0x3c (/usr/bin/app)
\t            10c5 main+0x45 (/usr/bin/app)

app 100/101 [000]  12.001001:    1000000 cpu-clock: 
\t            1274 leaf_a+0x34 (/usr/bin/app)
\t            134c run+0x3c (/usr/bin/app)
\t            10c5 main+0x45 (/usr/bin/app)

my worker 100/102 [001]  12.001002:    1000000 cpu-clock: 
\t            5555 [unknown] (/usr/lib/libz.so)
\t            134c operator()(int, char) const+0x3c (/usr/bin/app)
\t            10c5 main+0x45 (/usr/bin/app)
"""


def test_report_text_inputs(tmp):
    """stoke report reads folded stacks and perf script output (a file or
    stdin) and writes any format; an empty file and a perf.data get one
    clear line."""
    stoke = os.environ.get("STOKE", "stoke")
    def report(args, data):
        return subprocess.run([stoke, "report"] + args, input=data, capture_output=True,
                              timeout=60)

    p = report(["-", "-f", "folded"], b"main;run;leaf_a 3\nmain;run;leaf_b 1\nmain;x_[k] 2\n")
    check(p.returncode == 0, "folded on stdin: %r" % p.stderr)
    check(p.stdout == b"main;run;leaf_a 3\nmain;run;leaf_b 1\nmain;x_[k] 2\n",
          "folded round trip: %r" % p.stdout)
    p = report(["-", "-f", "folded"], PERF_SCRIPT.encode())
    check(p.returncode == 0, "perf script on stdin: %r" % p.stderr)
    lines = sorted(p.stdout.decode().splitlines())
    check(lines == ["main;operator()(int, char) const;[libz.so] 1",
                    "main;run;leaf_a 1",
                    "main;run;leaf_a;asm_sysvec_apic_timer_interrupt_[k] 1"],
          "perf script folded: %r" % lines)
    p = report(["-", "-f", "folded", "--per-thread"], PERF_SCRIPT.encode())
    check(b"my worker-100/102;" in p.stdout, "perf script threads: %r" % p.stdout)
    for fmt in ("svg", "speedscope", "pstats", "txt", "pprof", "callgrind"):
        out = os.path.join(tmp, "x." + fmt)
        p = report(["-", "-f", fmt, "-o", out], PERF_SCRIPT.encode())
        check(p.returncode == 0 and os.path.getsize(out) > 0, "-f %s: %r" % (fmt, p.stderr))
    empty = os.path.join(tmp, "empty")
    open(empty, "w").close()
    p = run_stoke(["report", empty])
    check(p.returncode == 1 and p.stderr.strip().endswith("empty file"),
          "empty file: %r" % p.stderr)
    pdata = os.path.join(tmp, "perf.data")
    with open(pdata, "wb") as f:
        f.write(b"PERFILE2" + bytes(200))
    p = run_stoke(["report", pdata])
    check(p.returncode == 1 and "perf script | stoke report -" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1, "perf.data: %r" % p.stderr)
    # A real perf, when there is one: stoke reads every sample of its
    # script output, and the same ones hold leaf_a as the text says.
    perf = shutil.which("perf")
    if not perf:
        print("no perf here: the real perf script part is not run")
        return
    data = os.path.join(tmp, "real.data")
    r = subprocess.run([perf, "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-o", data,
                        "--", fixture("split"), "1.5", "75"], capture_output=True, timeout=60)
    if r.returncode != 0:
        print("perf record failed here: %r" % r.stderr[-200:])
        return
    script = subprocess.run([perf, "script", "-i", data], capture_output=True, timeout=60)
    p = report(["-", "-f", "folded"], script.stdout)
    check(p.returncode == 0, "real perf script: %r" % p.stderr)
    stacks = [(l.rpartition(" ")[0].split(";"), int(l.rpartition(" ")[2]))
              for l in p.stdout.decode().splitlines()]
    n = sum(c for _, c in stacks)
    a = sum(c for fr, c in stacks if "leaf_a" in fr)
    blocks = [b for b in script.stdout.decode(errors="replace").split("\n\n") if b.strip()]
    want_a = sum(1 for b in blocks if re.search(r"\sleaf_a\+0x", b))
    check(n > 100 and n == len(blocks), "%d samples read, perf script has %d" % (n, len(blocks)))
    check(a == want_a, "leaf_a in %d samples, perf script has %d" % (a, want_a))


def test_docs_match(tmp):
    """The README documents every option of stoke record, stoke report and
    stoked (--max-samples was missing), no document points at a file the
    project does not have (docs/protocol.md named FORMATS.md), and run.json
    ends with a newline."""
    root = os.environ.get("STOKE_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    stoke = os.environ.get("STOKE", "stoke")
    stoked = os.environ.get("STOKED") or os.path.join(
        os.path.dirname(os.path.dirname(stoke)), "daemon", "stoked")
    for cmd in ([stoke, "record", "--help"], [stoke, "report", "--help"]):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        opts = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]+)", p.stdout, re.M))
        check(opts, "no options in %s --help" % " ".join(cmd[:2]))
        missing = sorted(o for o in opts if o not in ("--help",) and o not in readme)
        check(not missing, "README lacks %s of stoke %s" % (missing, cmd[1]))
    p = subprocess.run([stoked, "--help"], capture_output=True, text=True, timeout=30)
    check("--max-samples" in p.stdout and "--max-samples" in readme,
          "README lacks stoked's --max-samples")
    for dirpath, _, files in os.walk(root):
        if "/build" in dirpath or "/.git" in dirpath or "node_modules" in dirpath:
            continue
        for name in files:
            if name.endswith(".md"):
                text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                check("FORMATS.md" not in text, "%s names FORMATS.md, which is not in the "
                      "project" % os.path.join(dirpath, name))
                for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
                    check(os.path.exists(os.path.join(dirpath, link)),
                          "%s links to %s, which does not exist" % (name, link))
    rundir = record_rundir(tmp)
    with open(os.path.join(rundir, "run.json"), "rb") as f:
        check(f.read().endswith(b"}\n"), "run.json does not end with a newline")


def svg_self(svg_text):
    """Self samples per function name from the SVG's boxes (fg:x, fg:w,
    fg:d): a box's width less its children's."""
    boxes = [(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
             for m in re.finditer(r'<title>(.*?) \(\d+ samples?, [\d.]+%\)</title><rect [^>]*'
                                  r'fg:x="(\d+)" fg:w="(\d+)" fg:d="(\d+)"', svg_text)]
    by_depth = {}
    for b in boxes:
        by_depth.setdefault(b[3], []).append(b)
    self_ = {}
    for name, x, w, d in boxes:
        if d == 0:
            continue  # "all"
        kids = sum(cw for _, cx, cw, _ in by_depth.get(d + 1, []) if x <= cx < x + w)
        name = html.unescape(name)
        self_[name] = self_.get(name, 0) + w - kids
    return self_


def test_cross_format_top5(tmp):
    """Every reader ranks functions the same way: on a fixture whose hot
    function spans a dozen lines and calls through a PLT, speedscope's
    importer (chromium, Sandwich view), Python's pstats, go tool pprof -top,
    callgrind_annotate and the SVG give the same top-5 self functions with
    the same shares, within 0.5 points, as the folded stacks."""
    need("callgrind_annotate", "valgrind")
    need_node_readers()
    p = run_stoke(["record", "-q", "-F", FREQ, "--output-dir", tmp, "--name", "spread", "--",
                   fixture("spread"), SECONDS], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr.strip())
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_spread")][0])
    stacks = parse_folded(os.path.join(rundir, FILES["folded"]))
    n = total(stacks)
    check(n > 200, "too few samples: %d" % n)
    truth = {}
    for frames, c in stacks:
        leaf = re.sub(r"_\[[kji]\]$", "", frames[-1])
        truth[leaf] = truth.get(leaf, 0) + c
    truth = {k: 100.0 * v / n for k, v in truth.items()}
    top5 = sorted(truth, key=truth.get, reverse=True)[:5]
    check("spread_work" in top5 and "plt_add" in top5, "fixture top 5: %r" % top5)
    readers = {}
    # speedscope's importer in chromium
    rows = json.loads(node("speedscope_sandwich.js", os.path.join(rundir, FILES["speedscope"])))
    ss = json.load(open(os.path.join(rundir, FILES["speedscope"])))
    ss_total = sum(ss["profiles"][0]["weights"])
    dups = {}
    sw = {}
    for name, self_ns, _ in rows:
        dups.setdefault("speedscope", []).append(name)
        sw[name] = sw.get(name, 0) + 100.0 * self_ns / ss_total
    readers["speedscope"] = sw
    # pstats
    import pstats
    st = pstats.Stats(os.path.join(rundir, FILES["pstats"])).stats
    tt_total = sum(v[2] for v in st.values())
    pw = {}
    for key, v in st.items():
        dups.setdefault("pstats", []).append(key[2])
        pw[key[2]] = pw.get(key[2], 0) + 100.0 * v[2] / tt_total
    readers["pstats"] = pw
    # go tool pprof -top
    gout = go_pprof(tmp, "-top", "-nodecount=30", os.path.join(rundir, FILES["pprof"]))
    gw = {}
    for m in re.finditer(r"^\s*[\d.]+\w*\s+([\d.]+)%\s+[\d.]+%\s+[\d.]+\w*\s+[\d.]+%\s+(\S.*?)\s*$",
                         gout, re.M):
        dups.setdefault("pprof", []).append(m.group(2))
        gw[m.group(2)] = gw.get(m.group(2), 0) + float(m.group(1))
    readers["pprof"] = gw
    # callgrind_annotate
    cout = run(["callgrind_annotate", "--threshold=100", os.path.join(rundir, FILES["callgrind"])])
    ctot = int(re.search(r"^([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", cout, re.M)
               .group(1).replace(",", ""))
    cw = {}
    for m in re.finditer(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*?:(\S+) \[", cout, re.M):
        dups.setdefault("callgrind", []).append(m.group(2))
        cw[m.group(2)] = cw.get(m.group(2), 0) + 100.0 * int(m.group(1).replace(",", "")) / ctot
    readers["callgrind"] = cw
    # the SVG
    svg = svg_self(open(os.path.join(rundir, FILES["svg"]), encoding="utf-8").read())
    readers["svg"] = {k: 100.0 * v / n for k, v in svg.items()}
    for name, shares in readers.items():
        own = sorted(shares, key=shares.get, reverse=True)[:5]
        print("%-10s %s" % (name, ", ".join("%s %.2f%%" % (f, shares[f]) for f in own)))
        for f in top5:
            # one entry per function: not one per source line or file
            check(dups.get(name, []).count(f) <= 1, "%s lists %s %d times" %
                  (name, f, dups.get(name, []).count(f)))
            check(abs(shares.get(f, 0.0) - truth[f]) <= 0.5,
                  "%s gives %s %.2f%%, the folded stacks %.2f%%" %
                  (name, f, shares.get(f, 0.0), truth[f]))
        # the same five, unless the fifth and sixth are within the tolerance
        differ = set(own) ^ set(top5)
        check(all(abs(truth.get(f, 0.0) - truth[top5[-1]]) <= 0.5 for f in differ),
              "%s top 5 %r, the folded stacks' %r" % (name, own, top5))


def test_pprof_timeline(tmp):
    """--timeline writes one pprof sample per sample with a wall-clock
    "time" label (ns since the epoch, within the run's start and end), and
    stoke reads it back into the same model."""
    rundir = record_rundir(tmp)
    n = total(parse_folded(os.path.join(rundir, FILES["folded"])))
    info = json.load(open(os.path.join(rundir, "run.json")))
    tl = os.path.join(tmp, "timeline.pb.gz")
    p = run_stoke(["report", rundir, "--timeline", "-o", tl])
    check(p.returncode == 0, "report --timeline: %s" % p.stderr)
    traces = go_pprof(tmp, "-traces", tl)
    ntraces = len(re.findall(r"^-+\+-+$", traces, re.M)) - 1
    check(ntraces == n, "--timeline: %d traces for %d samples" % (ntraces, n))
    # the label values: ns since the epoch, within the run (run.json's
    # start and end are whole seconds)
    raw = go_pprof(tmp, "-raw", tl)
    times = [int(x) for x in re.findall(r"time:\[(\d+) nanoseconds\]", raw)]
    check(len(times) == n, "%d time labels for %d samples" % (len(times), n))
    import datetime

    def epoch_ns(iso):
        return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e9
    start, end = epoch_ns(info["start"]), epoch_ns(info["end"])
    check(all(start - 2e9 <= t <= end + 2e9 for t in times),
          "time labels %r are not within the run (%d, %d)" % (times[:3], start, end))
    check(times == sorted(times), "time labels out of order")
    stoke = os.environ.get("STOKE", "stoke")
    for fmt in ("folded", "speedscope", "pstats"):
        a = subprocess.run([stoke, "report", tl, "-f", fmt], capture_output=True).stdout
        b = subprocess.run([stoke, "report", rundir, "-f", fmt], capture_output=True).stdout
        check(a == b, "-f %s from the timeline pprof differs from the run's" % fmt)


def callgrind_function_files(path):
    """{function name: the fl= file of its fn= block} of a callgrind file."""
    names, fns, files, fl = {}, {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"(fl|fi|fe|cfi|cfl|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        kind, ident, name = m.groups()
        table = fns if kind in ("fn", "cfn") else names
        if name is not None:
            table[ident] = name
        if kind == "fl":
            fl = names.get(ident)
        elif kind == "fn":
            files.setdefault(fns.get(ident), set()).add(fl)
    return files


def test_function_definition_keys(tmp):
    """A function is keyed by its definition, as cProfile keys it: pstats'
    key is (the file of its definition, its first line (DWARF decl_line),
    name), the text table prints file:line(function) with it, callgrind's
    fn= is in that file, and pprof's Function.start_line is that line; for a
    physical function and one inlined into it, both sampled only on lines far
    below their first (the fixture's markers are the truth). A stored pprof
    gives the same keys back."""
    src = os.path.join(os.environ.get("STOKE_SOURCE_ROOT", os.path.join(HERE, "..", "..")),
                       "tests", "fixtures", "declline.c")
    real_src = os.path.realpath(src)
    defs = {}
    for i, line in enumerate(open(src), 1):
        m = re.search(r"/\* DEF (\w+) \*/", line)
        if m:
            defs[m.group(1)] = i
    check(set(defs) == {"far_hot", "far_inl"}, "fixture markers: %r" % defs)
    p = run_stoke(["record", "-q", "-F", FREQ, "--output-dir", tmp, "--name", "declline",
                   "--", fixture("declline"), SECONDS], timeout=120)
    check(p.returncode == 0, "record failed: %s" % p.stderr.strip())
    rundir = os.path.join(tmp, [d for d in os.listdir(tmp) if d.endswith("_declline")][0])

    # pprof: every sampled line of each function is far below its first, and
    # start_line (-raw prints it as s=) is the first.
    raw = go_pprof(tmp, "-raw", os.path.join(rundir, FILES["pprof"]))
    seen = {name: [] for name in defs}
    for m in re.finditer(r"\b(far_hot|far_inl) (\S+):(\d+) s=(\d+)", raw):
        seen[m.group(1)].append((m.group(2), int(m.group(3)), int(m.group(4))))
    for name, line in defs.items():
        check(seen[name], "pprof -raw shows no line of %s:\n%s" % (name, raw[:3000]))
        for path, sampled, start in seen[name]:
            check(os.path.realpath(path) == real_src, "%s in %s" % (name, path))
            check(sampled >= line + 20, "%s sampled at line %d, near its first line %d: the "
                  "fixture does not test anything" % (name, sampled, line))
            check(start == line, "pprof start_line of %s is %d, not %d" % (name, start, line))

    import pstats
    for label, path in (("recorded", os.path.join(rundir, FILES["pstats"])),
                        ("from the stored pprof", None)):
        if path is None:
            path = os.path.join(tmp, "again.pstats")
            r = run_stoke(["report", os.path.join(rundir, FILES["pprof"]), "-o", path])
            check(r.returncode == 0, "report failed: %s" % r.stderr.strip())
        st = pstats.Stats(path).stats
        for name, line in defs.items():
            keys = [k for k in st if k[2] == name]
            check(len(keys) == 1, "%s: pstats keys of %s: %r" % (label, name, keys))
            f, ln, _ = keys[0]
            check(os.path.realpath(f) == real_src and ln == line,
                  "%s: pstats key of %s is %r, not (%s, %d, %r)" % (label, name, keys[0],
                                                                   src, line, name))
            check(st[keys[0]][2] > 0, "%s: %s has no self time" % (label, name))

    txt = open(os.path.join(rundir, FILES["txt"])).read()
    for name, line in defs.items():
        m = re.search(r" (\S+):(\d+)\(%s\)$" % name, txt, re.M)
        check(m and os.path.realpath(m.group(1)) == real_src and int(m.group(2)) == line,
              "text table row of %s: %r" % (name, m and m.group(0)))

    files = callgrind_function_files(os.path.join(rundir, FILES["callgrind"]))
    for name in defs:
        got = files.get(name, set())
        check(len(got) == 1 and os.path.realpath(next(iter(got))) == real_src,
              "callgrind fl= of %s: %r" % (name, got))


TESTS = {
    "rundir_and_report": test_rundir_and_report,
    "output_by_extension": test_output_by_extension,
    "bad_input": test_bad_input,
    "pstats_reader": test_pstats_reader,
    "pprof_reader": test_pprof_reader,
    "pprof_inline": test_pprof_inline,
    "speedscope_reader": test_speedscope_reader,
    "callgrind_reader": test_callgrind_reader,
    "svg_reader": test_svg_reader,
    "cross_format": test_cross_format,
    "golden_files_real_readers": test_golden_files_real_readers,
    "report_text_inputs": test_report_text_inputs,
    "docs_match": test_docs_match,
    "cross_format_top5": test_cross_format_top5,
    "pprof_timeline": test_pprof_timeline,
    "function_definition_keys": test_function_definition_keys,
}

if __name__ == "__main__":
    run_tests(TESTS)
