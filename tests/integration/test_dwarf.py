#!/usr/bin/env python3
"""Integration tests for DWARF unwinding (`stoke record -g dwarf`) on fixtures
built with -fomit-frame-pointer.

The truth comes from the fixtures' arguments (work splits, recursion depth)
and, for the comparison test, from perf itself; never from a stored profile.
"""
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stoketest import (Skip, check, contains_in_order, fixture, leaf_count,  # noqa: E402
                       leaf_name, parse_folded, run_stoke, run_tests, total)

TOLERANCE = 5.0     # percentage points for leaf shares
REACH_FLOOR = 97.0  # % of samples that must unwind to main / the thread start
KERNEL = re.compile(r"_\[k\]$")


def user_frames(frames):
    """Root-first user frames: kernel frames (on top of the stack) dropped."""
    return [f for f in frames if not KERNEL.search(f)]


def record(d, args, name="out.folded"):
    out = os.path.join(d, name)
    p = run_stoke(["record", "-o", out] + args, timeout=120)
    check(p.returncode == 0, "stoke %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return parse_folded(out), p.stderr


def unwind_line(stderr):
    m = re.search(r"unwound (\d+) user stacks, (\d+) incomplete", stderr)
    check(m, "no unwind summary line: %r" % stderr)
    return int(m.group(1)), int(m.group(2))


def reach_share(stacks, roots):
    """% of samples whose stack holds one of roots (main or a thread start)."""
    n = total(stacks)
    ok = sum(c for fr, c in stacks if any(leaf_name(f) in roots for f in fr))
    return 100.0 * ok / n if n else 0.0


def assert_shares(stacks, truth):
    n = total(stacks)
    check(n > 0, "no samples")
    for leaf, pct in truth.items():
        share = 100.0 * leaf_count_user(stacks, leaf) / n
        print("  %s: %.1f%% (truth %d%%)" % (leaf, share, pct))
        check(abs(share - pct) <= TOLERANCE,
              "%s share %.1f%% not within %.0f points of %d%%" % (leaf, share, TOLERANCE, pct))


def leaf_count_user(stacks, name):
    """Samples whose innermost user frame is name (kernel frames above it,
    e.g. a timer interrupt, do not change whose time it was)."""
    return sum(c for fr, c in stacks if user_frames(fr) and user_frames(fr)[-1] == name)


def test_split_nofp(d):
    stacks, err = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("split-nofp"), "3", "75"])
    n = total(stacks)
    check(n > 750, "too few samples for 3 s at 999 Hz: %d" % n)
    reach = reach_share(stacks, {"main"})
    print("samples=%d reaching main: %.2f%%" % (n, reach))
    check(reach >= REACH_FLOOR, "only %.2f%% of samples unwind to main" % reach)
    assert_shares(stacks, {"leaf_a": 75, "leaf_b": 25})
    full = sum(c for fr, c in stacks
               if contains_in_order(user_frames(fr), ["main", "run", "work_round"]))
    check(full >= 0.95 * n, "only %d of %d samples show main→run→work_round" % (full, n))
    unwound, bad = unwind_line(err)
    check(unwound >= n * 0.95 and bad <= 0.03 * unwound, "summary: %d unwound, %d bad" % (unwound, bad))


def test_split_fp_mode_is_wrong(d):
    """The reason DWARF mode exists: FP stacks of the omit-FP fixture lose
    frames. If this passes under -g fp, the fixture is not omit-FP."""
    stacks, _ = record(d, ["-F", "999", "-g", "fp", "--", fixture("split-nofp"), "2", "75"])
    n = total(stacks)
    full = sum(c for fr, c in stacks
               if contains_in_order(user_frames(fr), ["main", "run", "work_round"]))
    print("fp mode: %d of %d samples with main→run→work_round" % (full, n))
    check(full < 0.5 * n, "FP stacks are complete: the fixture keeps frame pointers")


def test_multithreaded(d):
    stacks, _ = record(d, ["-F", "999", "-g", "dwarf", "--",
                           fixture("split-mt-nofp"), "2", "3", "75"])
    n = total(stacks)
    check(n > 750, "too few samples: %d" % n)
    reach = reach_share(stacks, {"main", "thread_main"})
    print("samples=%d reaching thread_main/main: %.2f%%" % (n, reach))
    check(reach >= REACH_FLOOR, "only %.2f%% of samples unwind to their thread start" % reach)
    workers = sum(c for fr, c in stacks if "thread_main" in fr)
    check(workers >= 0.9 * n, "only %d of %d samples in worker threads" % (workers, n))
    assert_shares(stacks, {"leaf_a": 75, "leaf_b": 25})


def test_qsort(d):
    stacks, _ = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("qsort-cmp"), "3"])
    cmp = [(user_frames(fr), c) for fr, c in stacks
           if user_frames(fr) and user_frames(fr)[-1] == "cmp_slow"]
    n = sum(c for _, c in cmp)
    check(n >= 0.5 * total(stacks), "comparator has %d of %d samples" % (n, total(stacks)))
    ok = 0
    for fr, c in cmp:
        if "sort_round" not in fr or "main" not in fr:
            continue
        between = fr[fr.index("sort_round") + 1:-1]
        # caller → qsort's internal frames (libc's, at least one of them
        # named after qsort) → comparator, in that order, nothing of ours
        if between and any("qsort" in f or "msort" in f for f in between) and \
                not any(f in ("main", "sort_round", "cmp_slow") for f in between):
            ok += c
    print("cmp_slow samples=%d with main→sort_round→qsort…→cmp_slow: %d (%.1f%%)"
          % (n, ok, 100.0 * ok / n))
    example = max(cmp, key=lambda x: x[1])[0]
    print("  e.g. " + ";".join(example))
    check(ok >= 0.95 * n, "only %d of %d comparator samples show caller → qsort → cmp" % (ok, n))


def test_deep_recursion(d):
    depth = 80
    stacks, err = record(d, ["-F", "999", "-g", "dwarf,32768", "--",
                             fixture("recurse"), "3", str(depth)])
    leaf = [(user_frames(fr), c) for fr, c in stacks
            if user_frames(fr) and user_frames(fr)[-1] == "leaf_work"]
    n = sum(c for _, c in leaf)
    check(n > 0.5 * total(stacks), "leaf_work has %d of %d samples" % (n, total(stacks)))
    full = sum(c for fr, c in leaf if fr.count("descend") == depth and "main" in fr)
    print("leaf_work samples=%d with all %d descend frames and main: %d (%.1f%%)"
          % (n, depth, full, 100.0 * full / n))
    check(full >= REACH_FLOOR / 100 * n, "only %d of %d deep stacks complete" % (full, n))
    # The default copy holds ~12 KB of frames (depth 80): complete with
    # default settings, no stitching needed.
    stacks, err = record(d, ["-F", "999", "--", fixture("recurse"), "2", str(depth)],
                         name="default.folded")
    leaf = [(user_frames(fr), c) for fr, c in stacks
            if user_frames(fr) and user_frames(fr)[-1] == "leaf_work"]
    n = sum(c for _, c in leaf)
    full = sum(c for fr, c in leaf if fr.count("descend") == depth and "main" in fr)
    print("default settings: %d of %d leaf_work stacks complete" % (full, n))
    check(n > 0 and full >= REACH_FLOOR / 100 * n,
          "default settings: only %d of %d deep stacks complete" % (full, n))
    # A 4 KB copy cannot hold ~12 KB of frames, and no stack of this run is
    # ever complete (nothing to stitch onto): the stacks must say so
    # ([truncated]) and count it, not end silently.
    stacks, err = record(d, ["-F", "999", "-g", "dwarf,4096", "--",
                             fixture("recurse"), "2", str(depth)], name="small.folded")
    trunc = sum(c for fr, c in stacks if "[truncated]" in fr)
    print("4 KB copy: %d of %d samples end in [truncated]" % (trunc, total(stacks)))
    check(trunc >= 0.5 * total(stacks), "the 4 KB copy did not report truncation")
    check(all(fr[0] == "[truncated]" or "main" in fr or KERNEL.search(fr[0])
              for fr, _ in stacks if "leaf_work" in fr),
          "a stack that misses main does not start with [truncated]")
    check(re.search(r"[1-9]\d* truncated", err), "truncations not counted: %r" % err)


def test_shared_library(d):
    stacks, _ = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("shlib-call"), "3", "60"])
    n = total(stacks)
    check(n > 750, "too few samples: %d" % n)
    assert_shares(stacks, {"lib_leaf": 60, "app_leaf": 40})
    for leaf in ("lib_leaf", "app_leaf"):
        chain = ["main", "run", "lib_work", leaf]
        got = sum(c for fr, c in stacks if user_frames(fr) and user_frames(fr)[-1] == leaf)
        full = sum(c for fr, c in stacks
                   if user_frames(fr) and user_frames(fr)[-1] == leaf and
                   user_frames(fr)[-4:] == chain)
        print("  %s: %d of %d with %s" % (leaf, full, got, "→".join(chain)))
        check(full >= 0.95 * got, "%s: only %d of %d full chains" % (leaf, full, got))


def user_reach(stacks, pred, roots=("main",)):
    """(samples whose user frames satisfy pred, how many of them reach one
    of roots)."""
    sel = [(user_frames(fr), c) for fr, c in stacks if pred(user_frames(fr))]
    n = sum(c for _, c in sel)
    ok = sum(c for fr, c in sel if any(r in fr for r in roots))
    return n, ok


def test_personality_cleanup(d):
    """-fexceptions with cleanups: every hot frame's CIE is "zPLR", with the
    personality routine behind an indirect pointer in writable data."""
    stacks, err = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("cleanup-nofp"), "2"])
    n = total(stacks)
    check(n > 300, "too few samples: %d" % n)
    chain = ["main", "outer", "middle", "leaf_work"]
    got, _ = user_reach(stacks, lambda fr: fr and fr[-1] == "leaf_work")
    full = sum(c for fr, c in stacks if user_frames(fr)[-4:] == chain)
    print("samples=%d, leaf_work=%d, with %s: %d" % (n, got, "→".join(chain), full))
    check(got >= 0.5 * n, "leaf_work has only %d of %d samples" % (got, n))
    check(full >= REACH_FLOOR / 100 * got, "only %d of %d leaf_work stacks complete" % (full, got))
    reach = reach_share(stacks, {"main"})
    check(reach >= REACH_FLOOR, "only %.2f%% of samples unwind to main" % reach)
    _, bad = unwind_line(err)
    check(bad <= 0.03 * n, "%d incomplete stacks" % bad)


def test_glibc_stdio(d):
    """A loop of fwrite: glibc's stdio frames have personality CIEs too."""
    stacks, err = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("stdio-loop"), "2"])
    n = total(stacks)
    check(n > 300, "too few samples: %d" % n)
    got, ok = user_reach(stacks, lambda fr: any("fwrite" in f for f in fr),
                         roots=("write_records",))
    print("samples=%d, under fwrite: %d, of which reach write_records: %d" % (n, got, ok))
    check(got >= 0.5 * n, "fwrite has only %d of %d samples" % (got, n))
    check(ok >= REACH_FLOOR / 100 * got, "only %d of %d fwrite stacks reach their caller"
          % (ok, got))
    reach = reach_share(stacks, {"main"})
    check(reach >= REACH_FLOOR, "only %.2f%% of samples unwind to main" % reach)


def test_plt_stub(d):
    """Samples in a PLT stub (CFA by DW_CFA_def_cfa_expression) unwind to
    main, on every visit and not just the first (libunwind caches the rule
    as the address of the expression, which is read again each time)."""
    stacks, err = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("plt-loop"), "2"])
    n = total(stacks)
    check(n > 300, "too few samples: %d" % n)
    # The stub is whatever leaf lies between spin and the library function,
    # whatever the symbolizer names it (plt_add@plt, [plt-loop], …).
    stub = [(fr, c) for fr, c in stacks if user_frames(fr) and
            user_frames(fr)[-1] not in ("spin", "plt_add", "main") and
            "fixture_now" not in fr and "[unwind-failed]" not in fr]
    stub_n = sum(c for _, c in stub)
    failed = sum(c for fr, c in stacks if "[unwind-failed]" in fr)
    spin = sum(c for fr, c in stub if user_frames(fr)[-3:-1] == ["main", "spin"])
    print("samples=%d, in the stub: %d (%d under main→spin), unwind-failed: %d"
          % (n, stub_n, spin, failed))
    check(failed <= 0.03 * n, "%d of %d samples [unwind-failed]" % (failed, n))
    check(stub_n >= 0.05 * n, "only %d of %d samples in the PLT stub: fixture too fast?"
          % (stub_n, n))
    check(spin >= REACH_FLOOR / 100 * stub_n, "only %d of %d stub samples under main→spin"
          % (spin, stub_n))


def test_signal_frame(d):
    """A sample in a signal handler unwinds through the sigreturn
    trampoline to the interrupted code and main."""
    stacks, err = record(d, ["-F", "999", "-g", "dwarf", "--", fixture("sig-handler"), "2"])
    n = total(stacks)
    check(n > 300, "too few samples: %d" % n)
    got, ok = user_reach(stacks, lambda fr: fr and fr[-1] == "handler_work")
    through = sum(c for fr, c in stacks if user_frames(fr) and
                  user_frames(fr)[-1] == "handler_work" and
                  contains_in_order(user_frames(fr), ["main", "busy_loop", "handler_work"]))
    print("samples=%d, in the handler: %d, reaching main: %d, main→busy_loop→…→handler: %d"
          % (n, got, ok, through))
    check(got >= 0.2 * n, "only %d of %d samples in the handler" % (got, n))
    check(through >= REACH_FLOOR / 100 * got, "only %d of %d handler samples unwind to the "
          "interrupted code and main" % (through, got))


def test_stitch(d):
    """A stack deeper than the copy is completed from the same thread's
    previous complete stack when the frame at the cut matches it (same
    return address and stack pointer): recurse-alt alternates between 80
    descend frames (complete in a 16 KB copy) and 150 (cut inside the 80).
    Every stitch is counted in the summary line and in run.json."""
    out = os.path.join(d, "runs")
    p = run_stoke(["record", "-F", "999", "-g", "dwarf,16384", "--output-dir", out, "--",
                   fixture("recurse-alt"), "2", "80", "150"], timeout=120)
    check(p.returncode == 0, "stoke: exit %d: %s" % (p.returncode, p.stderr))
    runs = glob.glob(os.path.join(out, "*", "run.json"))
    check(len(runs) == 1, "no run directory: %r" % runs)
    stacks = parse_folded(os.path.join(os.path.dirname(runs[0]), "profile.folded"))
    with open(runs[0]) as f:
        info = json.load(f)
    m = re.search(r"(\d+) stitched", p.stderr)
    check(m, "no stitch count in the summary: %r" % p.stderr)
    stitched = int(m.group(1))
    deep = sum(c for fr, c in stacks if fr.count("descend") == 150 and "main" in fr)
    cut = sum(c for fr, c in stacks if "[truncated]" in fr)
    odd = sum(c for fr, c in stacks if "main" in fr and "leaf_work" in fr and
              fr.count("descend") not in (80, 150))
    print("samples=%d, deep and complete: %d, still truncated: %d, wrong depth: %d, "
          "stitched: %d (run.json: %s)" % (total(stacks), deep, cut, odd, stitched,
                                          info.get("stitched_stacks")))
    check(deep >= 0.2 * total(stacks), "only %d of %d samples are deep and complete"
          % (deep, total(stacks)))
    check(deep >= 0.9 * (deep + cut), "%d deep stacks still truncated, %d complete" % (cut, deep))
    check(odd <= 0.01 * total(stacks), "%d stacks with a wrong number of frames" % odd)
    check(stitched >= deep * 0.9, "%d deep complete stacks but %d stitches counted"
          % (deep, stitched))
    check(info.get("stitched_stacks") == stitched,
          "run.json stitched_stacks %r != summary %d" % (info.get("stitched_stacks"), stitched))


def test_deep_default(d):
    """Default settings hold a ~43 KB stack whole: recurse-alt with 300
    descend frames (about 144 bytes each, never ASan-instrumented) on both
    sides, so no stack of the run is shallow enough to stitch onto. (The
    32 KB copy cut these, as it cut clang's and gcc's deepest stacks.)"""
    depth = 300
    stacks, err = record(d, ["-F", "999", "--", fixture("recurse-alt"), "2", str(depth),
                             str(depth)])
    leaf = [(user_frames(fr), c) for fr, c in stacks
            if user_frames(fr) and user_frames(fr)[-1] == "leaf_work"]
    n = sum(c for _, c in leaf)
    full = sum(c for fr, c in leaf if fr.count("descend") == depth and "main" in fr)
    print("default settings, %d descend frames: %d of %d leaf_work stacks complete; %s"
          % (depth, full, n, re.search(r"unwound .*", err).group(0)))
    check(n > 0.5 * total(stacks), "leaf_work has %d of %d samples" % (n, total(stacks)))
    check(full >= REACH_FLOOR / 100 * n, "only %d of %d deep stacks complete" % (full, n))


def test_stitch_history(d):
    """Stitching searches the thread's recent complete stacks, not only the
    last one: recurse-alt's mix mode follows each 80-deep descent with
    1 ms bursts of the 150-deep one alternating with top_work (a complete
    stack with no descend frame), so the last complete stack before a deep
    sample rarely has the frame at the cut. The deep samples must still
    come out complete (150 descend frames), none with a wrong depth."""
    p = run_stoke(["record", "-F", "999", "-g", "dwarf,16384", "-o",
                   os.path.join(d, "out.folded"), "--",
                   fixture("recurse-alt"), "2", "80", "150", "mix"], timeout=120)
    check(p.returncode == 0, "stoke: exit %d: %s" % (p.returncode, p.stderr))
    stacks = parse_folded(os.path.join(d, "out.folded"))
    m = re.search(r"(\d+) stitched", p.stderr)
    check(m, "no stitch count in the summary: %r" % p.stderr)
    stitched = int(m.group(1))
    deep = sum(c for fr, c in stacks if fr.count("descend") == 150 and "main" in fr)
    cut = sum(c for fr, c in stacks if "[truncated]" in fr)
    top = sum(c for fr, c in stacks if "top_work" in fr and "main" in fr)
    odd = sum(c for fr, c in stacks if "main" in fr and "leaf_work" in fr and
              fr.count("descend") not in (80, 150))
    print("samples=%d, deep and complete: %d, still truncated: %d, top_work: %d, "
          "wrong depth: %d, stitched: %d" % (total(stacks), deep, cut, top, odd, stitched))
    check(top >= 0.15 * total(stacks), "only %d of %d samples in top_work: the fixture no "
          "longer interleaves another complete stack" % (top, total(stacks)))
    check(deep >= 0.15 * total(stacks), "only %d of %d samples are deep and complete"
          % (deep, total(stacks)))
    check(deep >= 0.95 * (deep + cut), "%d deep stacks still truncated, %d complete"
          % (cut, deep))
    check(odd <= 0.01 * total(stacks), "%d stacks with a wrong number of frames" % odd)
    check(stitched >= deep * 0.9, "%d deep complete stacks but %d stitches counted"
          % (deep, stitched))


JIT_JS = """
function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
const end = Date.now() + 1000 * Number(process.argv[2]);
let acc = 0;
while (Date.now() < end) acc += fib(20);
console.log(acc > 0 ? "ok" : "?");
"""


def test_jit_node(d):
    """JIT frames: V8 keeps frame pointers in its code, which lies in no
    mapped file (no CFI, no MMAP record): the walk follows the [rbp] chain
    through the JS frames back into node and on to the thread's start."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise Skip("node is not installed (Debian: nodejs)")
    js = os.path.join(d, "fib.js")
    with open(js, "w") as f:
        f.write(JIT_JS)
    try:
        stacks, err = record(d, ["-F", "999", "-g", "dwarf", "--", node, "--perf-basic-prof",
                                 js, "2"])
    finally:
        # node leaves its /tmp/perf-PID.map behind
        for mp in glob.glob("/tmp/perf-*.map"):
            try:
                with open(mp, errors="replace") as f:
                    if js in f.read():
                        os.unlink(mp)
            except OSError:
                pass
    n = total(stacks)
    check(n > 300, "too few samples: %d" % n)
    # V8 names JIT frames from its perf map: "JS:*fib …" (optimized) or
    # "JS:~fib …" (interpreted); a name is not needed to count them.
    fib = [(user_frames(fr), c) for fr, c in stacks if any("fib" in f for f in fr)]
    got = sum(c for _, c in fib)
    ok = sum(c for fr, c in fib if "_start" in fr or "node::Start" in fr)
    deep = sum(c for fr, c in fib if sum("fib" in f for f in fr) >= 2 and "_start" in fr)
    m = re.search(r"(\d+) fp-links", err)
    print("samples=%d, in fib: %d, reaching _start: %d, with >= 2 fib frames: %d, %s"
          % (n, got, ok, deep, m.group(0) if m else "no fp-links count"))
    check(got >= 0.5 * n, "only %d of %d samples in the JS function" % (got, n))
    check(ok >= 0.9 * got, "only %d of %d JS samples unwind to _start" % (ok, got))
    check(deep >= 0.5 * got, "only %d of %d JS samples show JS calling JS" % (deep, got))
    check(m and int(m.group(1)) > 0, "frame-pointer links not counted: %r" % err)


def test_auto_default(d):
    """Without -g, stacks of an omit-FP program are complete (auto)."""
    stacks, _ = record(d, ["-F", "999", "--", fixture("split-nofp"), "2", "75"])
    reach = reach_share(stacks, {"main"})
    print("default mode: %.2f%% reach main" % reach)
    check(reach >= REACH_FLOOR, "default mode: only %.2f%% reach main" % reach)
    stacks, _ = record(d, ["-F", "999", "-g", "auto", "--", fixture("split"), "2", "75"],
                       name="fp-binary.folded")
    reach = reach_share(stacks, {"main"})
    check(reach >= REACH_FLOOR, "-g auto on an FP binary: only %.2f%% reach main" % reach)


def test_bad_modes(d):
    for mode in ("dwarf,12", "dwarf,0", "dwarf,65536", "dwarf,x", "dwarf,", "lbr", "dwarf,-8"):
        p = run_stoke(["record", "-g", mode, "-o", os.path.join(d, "x.folded"), "--", "true"])
        check(p.returncode == 2, "-g %s: exit %d, expected 2" % (mode, p.returncode))
        lines = p.stderr.strip().splitlines()
        check(lines and "call-graph" in lines[0], "-g %s: unclear error %r" % (mode, p.stderr))
    p = run_stoke(["record", "-q", "-g", "dwarf,65528", "-o", os.path.join(d, "y.folded"), "--", "true"])
    check(p.returncode == 0, "-g dwarf,65528 refused: %s" % p.stderr)


# ---- comparison with perf ----

PERF_FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")


def perf_stacks(script):
    """perf script output → list of root-first user function sequences."""
    out, cur = [], None
    for line in script.splitlines():
        if not line.strip():
            if cur is not None:
                out.append(list(reversed(cur)))
            cur = None
            continue
        m = PERF_FRAME.match(line)
        if m:
            if cur is None:
                cur = []
            sym, dso = m.group(1), m.group(2)
            if "kernel" in dso:
                continue
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            cur.append(sym)
        else:
            cur = []  # a sample header line
    if cur:
        out.append(list(reversed(cur)))
    return out


def from_main(seq):
    """The part of a stack from main down (libc start code names differ
    between symbol tables and are not what is being compared)."""
    return tuple(seq[seq.index("main"):]) if "main" in seq else tuple(seq)


def test_perf_compare(d):
    perf = shutil.which("perf")
    if not perf:
        raise Skip("perf is not installed (Debian: linux-perf)")
    data = os.path.join(d, "perf.data")
    fx = [fixture("shlib-call"), "3", "60"]
    p = subprocess.run([perf, "record", "-q", "-F", "999", "-e", "cpu-clock",
                        "--call-graph", "dwarf", "-o", data, "--"] + fx,
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["?"])[-1]
        if re.search(r"permission|not supported|No such", msg, re.I):
            raise Skip("perf record cannot run here: " + msg)
        check(False, "perf record failed: %s" % p.stderr)
    p = subprocess.run([perf, "script", "-i", data, "-F", "ip,sym,dso", "--no-inline"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "perf script failed: %s" % p.stderr[-500:])
    theirs = perf_stacks(p.stdout)
    check(len(theirs) > 500, "perf gave only %d samples" % len(theirs))
    common = {}
    by_leaf = collections.defaultdict(collections.Counter)
    for seq in theirs:
        if seq:
            by_leaf[seq[-1]][from_main(seq)] += 1
    for leaf, cnt in by_leaf.items():
        common[leaf] = cnt.most_common(1)[0][0]

    ours, _ = record(d, ["-F", "999", "-g", "dwarf", "--no-kernel", "--"] + fx)
    n = same = 0
    for fr, c in ours:
        seq = user_frames(fr)
        if not seq or seq[-1] not in common:
            continue  # a leaf perf never sampled: no reference
        n += c
        if from_main(seq) == common[seq[-1]]:
            same += c
    print("perf: %d samples; ours comparable: %d, equal to perf's most common sequence: "
          "%d (%.1f%%)" % (len(theirs), n, same, 100.0 * same / max(n, 1)))
    for leaf in ("lib_leaf", "app_leaf"):
        if leaf in common:
            print("  perf %s: %s" % (leaf, "→".join(common[leaf])))
    check(n >= 0.9 * total(ours), "only %d of %d samples have a perf reference" % (n, total(ours)))
    check(same >= 0.95 * n, "only %d of %d samples match perf" % (same, n))


TESTS = {
    "split_nofp": test_split_nofp,
    "split_fp_mode_is_wrong": test_split_fp_mode_is_wrong,
    "multithreaded": test_multithreaded,
    "qsort": test_qsort,
    "deep_recursion": test_deep_recursion,
    "shared_library": test_shared_library,
    "auto_default": test_auto_default,
    "bad_modes": test_bad_modes,
    "perf_compare": test_perf_compare,
    "personality_cleanup": test_personality_cleanup,
    "glibc_stdio": test_glibc_stdio,
    "plt_stub": test_plt_stub,
    "signal_frame": test_signal_frame,
    "jit_node": test_jit_node,
    "stitch": test_stitch,
    "stitch_history": test_stitch_history,
    "deep_default": test_deep_default,
}

if __name__ == "__main__":
    run_tests(TESTS)
