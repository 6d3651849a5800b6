#!/usr/bin/env python3
"""Benchmark: `stoke symbolize` against `addr2line -a -f -i`, per binary shape.

For each shape of bench/gen_inline_binary.py (SHAPES there: "inline", 20k
functions with inlined helpers in 50 CUs; "many-cus", the same in 800 CUs;
"mixed", 800 CUs of which a third have no debug info, plus assembly
functions, so many addresses lie outside any DWARF subprogram), builds (or
reuses) the -O2 binary, draws N random code addresses (uniform over the
bytes of its functions, seeded), symbolizes them with both tools, and
prints:
  - agreement: the share of addresses where both give the same frames —
    function names and basename:line at every inline level;
  - wall time and CPU time (user+sys, from wait4) of each, medians of --runs
    interleaved runs after one untimed warm-up run of each (the page cache
    then holds the binary for both), and the ratios addr2line / stoke;
  - the load average before and after: on a shared machine, other work
    steals wall time (and a second stoke thread only helps with a CPU to
    spare), so compare CPU time there and wall time on a quiet moment.

usage: symbolize.py [--stoke PATH] [--binary PATH | --shape NAME ... [--functions N]]
                    [--workdir DIR] [--addresses N] [--runs R] [--seed S]
                    [--jobs N] [--min-agreement PCT] [--min-ratio X]
                    [--show-diff K]
Without --binary or --shape, every shape is measured in turn. Exit status 1
when, for any shape, agreement or the wall-time ratio is below the given
minimum (none by default: timing depends on the machine, so only a
benchmark asserts it). Each shape ends with a machine-readable line:
"RESULT shape=… agreement=… ratio=… addr2line_s=… stoke_s=… cpu_ratio=… …".
"""
import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_inline_binary  # noqa: E402

ADDR_RE = re.compile(r"^0x[0-9a-f]{16}$")


def code_ranges(binary):
    """(start, size) of every function symbol with a size."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    ranges = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start, size = int(parts[0], 16), int(parts[1], 16)
            if size:
                ranges.append((start, size))
    return ranges


def random_addresses(binary, n, seed):
    rng = random.Random(seed)
    ranges = code_ranges(binary)
    if not ranges:
        raise SystemExit("symbolize.py: %s has no sized function symbols" % binary)
    starts, weights = zip(*ranges)
    picks = rng.choices(range(len(ranges)), weights=weights, k=n)
    return [starts[i] + rng.randrange(weights[i]) for i in picks]


def parse_blocks(text):
    """addr2line -a -f -i output → list of (address, [(function, loc), ...])."""
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if not ADDR_RE.match(line):
            raise ValueError("line %d: expected an address, got %r" % (i + 1, line))
        frames = []
        i += 1
        while i + 1 < len(lines) and lines[i] and not ADDR_RE.match(lines[i]):
            frames.append((lines[i], lines[i + 1]))
            i += 2
        blocks.append((int(line, 16), frames))
    return blocks


def norm_loc(loc):
    loc = re.sub(r" \(discriminator \d+\)$", "", loc)
    path, _, line = loc.rpartition(":")
    return "%s:%s" % (os.path.basename(path), line)


def norm(frames):
    return [(fn, norm_loc(loc)) for fn, loc in frames]


def timed(cmd, input_path, workdir):
    """Run cmd on input_path; (wall s, CPU s (user+sys), stdout). The output
    goes to a file, so reading a pipe costs the timed process nothing."""
    out_path = os.path.join(workdir, "out-%s.txt" % os.path.basename(cmd[0]))
    with open(input_path, "rb") as inp, open(out_path, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=inp, stdout=out, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (cmd[0], p.returncode,
                                                err.decode(errors="replace")[-500:]))
    with open(out_path, "rb") as f:
        return dt, ru.ru_utime + ru.ru_stime, f.read().decode(errors="replace")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def build_shape(workdir, name, functions=None):
    """The binary of shape name under workdir/name, built once per shape
    definition (a stamp file holds it). functions scales the shape down
    (or up): the CU count follows in proportion."""
    d = os.path.join(workdir, name)
    binary = os.path.join(d, "gen")
    stamp = os.path.join(d, "shape")
    nfunc, nfiles, nasm, nodebug, what = gen_inline_binary.SHAPES[name]
    if functions:
        nfiles = max(1, nfiles * functions // nfunc)
        nfunc = functions
    want = repr((nfunc, nfiles, nasm, nodebug))
    if os.path.exists(binary) and os.path.exists(stamp) and open(stamp).read() == want:
        return binary
    print("building shape %s (%s; %d functions in %d files) in %s ..."
          % (name, what, nfunc, nfiles, d), file=sys.stderr)
    srcs = gen_inline_binary.generate(d, nfunc, nfiles, 4, nasm)
    gen_inline_binary.build(d, srcs, os.environ.get("CC", "cc"), os.cpu_count() or 1, nodebug)
    with open(stamp, "w") as f:
        f.write(want)
    return binary


def bench_one(a, shape, binary):
    """Measure one binary; prints its block and RESULT line. Returns
    (agreement percent, wall-time ratio)."""
    addrs = random_addresses(binary, a.addresses, a.seed)
    addr_path = os.path.join(os.path.dirname(os.path.abspath(binary)), "addresses.txt")
    with open(addr_path, "w") as f:
        f.write("".join("0x%x\n" % x for x in addrs))

    cmds = {
        "addr2line": [a.addr2line, "-a", "-f", "-i", "-e", binary],
        "stoke": [a.stoke, "symbolize", "-e", binary] +
                 (["-j", str(a.jobs)] if a.jobs else []),
    }
    workdir = os.path.dirname(addr_path)
    load_before = loadavg()
    outs = {k: timed(cmd, addr_path, workdir)[2] for k, cmd in cmds.items()}
    times = {k: [] for k in cmds}
    cpus = {k: [] for k in cmds}
    for r in range(a.runs):
        # Interleaved, in alternating order: neither tool always runs
        # right after the other.
        for k in (list(cmds) if r % 2 == 0 else list(reversed(list(cmds)))):
            dt, cpu, _ = timed(cmds[k], addr_path, workdir)
            times[k].append(dt)
            cpus[k].append(cpu)
    load_after = loadavg()
    ref = parse_blocks(outs["addr2line"])
    got = parse_blocks(outs["stoke"])
    if len(ref) != len(addrs) or len(got) != len(addrs):
        raise SystemExit("expected %d answers, addr2line gave %d and stoke %d"
                         % (len(addrs), len(ref), len(got)))
    agree, shown, inl = 0, 0, 0
    for (ra, rf), (ga, gf) in zip(ref, got):
        if ra != ga:
            raise SystemExit("answers out of order at 0x%x / 0x%x" % (ra, ga))
        inl += len(rf) > 1
        if norm(rf) == norm(gf):
            agree += 1
        elif shown < a.show_diff:
            shown += 1
            print("%s: differs at 0x%x:\n  addr2line: %s\n  stoke:     %s"
                  % (shape, ra, norm(rf), norm(gf)), file=sys.stderr)
    pct = 100.0 * agree / len(addrs)
    t_ref, t_got = statistics.median(times["addr2line"]), statistics.median(times["stoke"])
    ratio = t_ref / t_got if t_got > 0 else float("inf")
    c_ref, c_got = statistics.median(cpus["addr2line"]), statistics.median(cpus["stoke"])
    cpu_ratio = c_ref / c_got if c_got > 0 else float("inf")
    print("binary:     %s (%d function symbols)" % (binary, len(code_ranges(binary))))
    print("addresses:  %d random code addresses (seed %d), %.1f%% inside inlined code"
          % (len(addrs), a.seed, 100.0 * inl / len(addrs)))
    print("agreement:  %d / %d = %.2f%% (function and basename:line at every level)"
          % (agree, len(addrs), pct))
    for k, name in (("addr2line", "addr2line"), ("stoke", "stoke")):
        print("%-11s wall %.3f s, CPU %.3f s (medians of %d; wall: %s; CPU: %s)"
              % (name + ":", statistics.median(times[k]), statistics.median(cpus[k]), a.runs,
                 " ".join("%.3f" % t for t in times[k]), " ".join("%.3f" % t for t in cpus[k])))
    print("ratio:      %.2fx faster than addr2line in wall time, %.2fx in CPU time"
          % (ratio, cpu_ratio))
    print("load:       %.2f before, %.2f after (1-minute load average; %d CPUs)"
          % (load_before, load_after, os.cpu_count() or 1))
    print("RESULT shape=%s agreement=%.2f ratio=%.2f addr2line_s=%.3f stoke_s=%.3f cpu_ratio=%.2f "
          "addr2line_cpu_s=%.3f stoke_cpu_s=%.3f load=%.2f"
          % (shape, pct, ratio, t_ref, t_got, cpu_ratio, c_ref, c_got,
             max(load_before, load_after)))
    return pct, ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stoke", default=os.environ.get("STOKE", "build/tools/stoke"))
    ap.add_argument("--binary", help="use this binary instead of generating one")
    ap.add_argument("--shape", action="append", choices=sorted(gen_inline_binary.SHAPES),
                    help="a generated shape (repeatable; default: all)")
    ap.add_argument("--workdir", default="/tmp/stoke-bench-symbolize")
    ap.add_argument("--functions", type=int,
                    help="scale every shape to N functions (tests: a quicker build)")
    ap.add_argument("--addresses", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, help="stoke symbolize -j N (default: its own)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--addr2line", default="addr2line")
    ap.add_argument("--min-agreement", type=float, default=0.0)
    ap.add_argument("--min-ratio", type=float, default=0.0)
    ap.add_argument("--show-diff", type=int, default=5)
    a = ap.parse_args()

    if a.binary:
        targets = [("custom", a.binary)]
    else:
        targets = [(name, build_shape(a.workdir, name, a.functions))
                   for name in (a.shape or list(gen_inline_binary.SHAPES))]
    ok = True
    for name, binary in targets:
        print("== shape %s: %s" % (name, gen_inline_binary.SHAPES[name][4]
                                   if name in gen_inline_binary.SHAPES else binary))
        pct, ratio = bench_one(a, name, binary)
        ok = ok and pct >= a.min_agreement and ratio >= a.min_ratio
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
