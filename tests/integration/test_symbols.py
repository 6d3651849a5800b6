#!/usr/bin/env python3
"""Integration tests for the symbolizer: inlined frames with source lines,
C++ demangling, separate debug info (.gnu_debuglink and build-id
directories), JIT maps (node --perf-basic-prof), targets in a chroot,
deleted and replaced binaries, kernel modules, `stoke symbolize` against
addr2line, and its errors.

The truth comes from the fixtures' sources (marker comments name the lines
of the inlined loop and of each inlined call) and from addr2line, never from
a stored profile.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from stoketest import (Fail, check, fixture, kill, parse_folded, run_stoke,  # noqa: E402
                       run_tests, total)

FIXTURE_SRC = os.path.join(SOURCE_ROOT, "tests", "fixtures")


def marker_line(src, text):
    """The line number (1-based) of the only line of src with the comment
    /* text */."""
    with open(os.path.join(FIXTURE_SRC, src)) as f:
        hits = [n for n, line in enumerate(f, 1) if "/* %s */" % text in line]
    check(len(hits) == 1, "%s: marker %r found %d times" % (src, text, len(hits)))
    return hits[0]


def names(frame):
    return re.sub(r"_\[[kji]\]$", "", frame)


def chain_share(stacks, chain):
    """Share of samples whose user stack ends (leaf side, kernel frames
    dropped) with chain, given as folded frames root first."""
    n = total(stacks)
    hit = 0
    for frames, count in stacks:
        user = [f for f in frames if not f.endswith("_[k]")]
        if user[-len(chain):] == chain:
            hit += count
    return 100.0 * hit / n if n else 0.0


def record(d, args, name="out.folded", timeout=60, cwd=None):
    out = os.path.join(d, name)
    p = run_stoke(["record", "-q", "-o", out] + args, timeout=timeout, cwd=cwd)
    check(p.returncode == 0, "stoke record %s: exit %d: %s" % (args, p.returncode, p.stderr))
    stacks = parse_folded(out)
    check(total(stacks) > 50, "too few samples: %d" % total(stacks))
    return stacks


def symbolize(args, addrs=None, expect=0, stdin=None):
    p = subprocess.run([os.environ.get("STOKE", "stoke"), "symbolize"] + args +
                       ["0x%x" % a for a in (addrs or [])],
                       input=stdin, capture_output=True, text=True, timeout=120)
    check(p.returncode == expect, "stoke symbolize %s: exit %d (want %d): %s"
          % (args, p.returncode, expect, p.stderr.strip()))
    return p


def blocks(text):
    """addr2line -a -f -i shaped text → {address: [(function, file, line)]}."""
    out, cur = {}, None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if re.match(r"^0x[0-9a-f]{16}$", lines[i]):
            cur = out.setdefault(int(lines[i], 16), [])
            i += 1
            continue
        fn, loc = lines[i], lines[i + 1]
        path, _, line = loc.rpartition(":")
        cur.append((fn, os.path.basename(path), int(line) if line.isdigit() else 0))
        i += 2
    return out


def function_range(binary, name):
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[0], 16), int(parts[1], 16)
    raise Fail("%s: no symbol %s" % (binary, name))


def chain_addresses(binary, outer, args=()):
    """Symbolize every byte of outer; returns {addr: frames}."""
    start, size = function_range(binary, outer)
    p = symbolize(list(args) + ["-e", binary], stdin="".join(
        "0x%x\n" % a for a in range(start, start + size)))
    return blocks(p.stdout)


def check_inline_lines(frames_by_addr, src, inner, mid, outer, begin, end, call_inner,
                       call_mid, what):
    """Some address must resolve to inner (a line inside its loop) → mid (at
    the inner call's line) → outer (at the mid call's line)."""
    lo, hi = marker_line(src, begin), marker_line(src, end)
    want_inner_call = marker_line(src, call_inner)
    want_mid_call = marker_line(src, call_mid)
    good = 0
    for frames in frames_by_addr.values():
        if [f[0] for f in frames] != [inner, mid, outer]:
            continue
        (_, f0, l0), (_, f1, l1), (_, f2, l2) = frames
        if f0 == f1 == f2 == os.path.basename(src) and lo < l0 < hi and \
                l1 == want_inner_call and l2 == want_mid_call:
            good += 1
    print("%s: %d addresses resolve to %s:%d..%d → %s@%d → %s@%d"
          % (what, good, inner, lo, hi, mid, want_inner_call, outer, want_mid_call))
    check(good > 0, "%s: no address resolves to the full inline chain with the marked "
          "lines; got e.g. %s" % (what, list(frames_by_addr.values())[:3]))


INLINE_CHAIN = ["run", "mix_outer_[i]", "mix_inner_[i]"]


def test_inline_frames_fp(d):
    stacks = record(d, ["-g", "fp", "--", fixture("inline"), "2"])
    share = chain_share(stacks, INLINE_CHAIN)
    print("share with %s: %.1f%%" % (";".join(INLINE_CHAIN), share))
    check(share >= 90, "only %.1f%% of samples end in %s" % (share, ";".join(INLINE_CHAIN)))


def test_inline_frames_dwarf(d):
    stacks = record(d, ["-g", "dwarf", "--", fixture("inline"), "2"])
    share = chain_share(stacks, INLINE_CHAIN)
    print("share with %s: %.1f%%" % (";".join(INLINE_CHAIN), share))
    check(share >= 90, "only %.1f%% of samples end in %s" % (share, ";".join(INLINE_CHAIN)))


def test_inline_lines(d):
    check_inline_lines(chain_addresses(fixture("inline"), "run"), "inline.c", "mix_inner",
                       "mix_outer", "run", "BEGIN mix_inner", "END mix_inner",
                       "CALL mix_inner", "CALL mix_outer", "inline")


CXX_CHAIN = ["geo::run_accum<double>", "geo::Accum<double>::add_[i]",
             "geo::detail::mix<double>_[i]"]


def test_cxx_templates(d):
    stacks = record(d, ["--", fixture("cxx-inline"), "2"])
    share = chain_share(stacks, CXX_CHAIN)
    print("share with %s: %.1f%%" % (";".join(CXX_CHAIN), share))
    check(share >= 90, "only %.1f%% of samples end in %s; top: %s"
          % (share, ";".join(CXX_CHAIN), max(stacks, key=lambda s: s[1])))
    check_inline_lines(chain_addresses(fixture("cxx-inline"), "_ZN3geo9run_accumIdEET_d"),
                       "cxx-inline.cc", "geo::detail::mix<double>", "geo::Accum<double>::add",
                       "geo::run_accum<double>", "BEGIN mix", "END mix", "CALL mix",
                       "CALL add", "c++")


def test_demangle_modes(d):
    exe = fixture("cxx-inline")
    start, _ = function_range(exe, "_ZN3geo9run_accumIdEET_d")
    got = {}
    for mode in ("short", "full", "none"):
        p = symbolize(["--demangle=" + mode, "-e", exe], [start])
        got[mode] = p.stdout.splitlines()[1]
    print(got)
    check(got["short"] == "geo::run_accum<double>", "short: %r" % got["short"])
    check(got["full"] == "double geo::run_accum<double>(double)", "full: %r" % got["full"])
    check(got["none"] == "_ZN3geo9run_accumIdEET_d", "none: %r" % got["none"])
    p = run_stoke(["record", "--demangle=bogus", "--", "true"])
    check(p.returncode == 2 and "demangle" in p.stderr, "bad --demangle: %d %r"
          % (p.returncode, p.stderr))


def split_debug(d, with_debuglink):
    """A copy of the inline fixture stripped of DWARF; returns (binary,
    debug file)."""
    binary = os.path.join(d, "bin", "inline")
    os.makedirs(os.path.dirname(binary))
    shutil.copy(fixture("inline"), binary)
    debug = os.path.join(d, "inline.debug")
    subprocess.run(["objcopy", "--only-keep-debug", binary, debug], check=True)
    args = ["objcopy", "--strip-debug"]
    if with_debuglink:
        args.append("--add-gnu-debuglink=" + debug)
    subprocess.run(args + [binary], check=True)
    sections = subprocess.run(["readelf", "-S", "-W", binary], capture_output=True,
                              text=True, check=True).stdout
    check(".debug_info" not in sections, "strip left .debug_info in place")
    return binary, debug


def check_stripped(binary, extra_args, want_lines):
    frames = chain_addresses(binary, "run", extra_args)
    with_lines = sum(1 for fr in frames.values() if fr and fr[0][2] > 0)
    print("%s %s: %d of %d addresses with a line" % (binary, extra_args, with_lines,
                                                    len(frames)))
    if want_lines:
        check_inline_lines(frames, "inline.c", "mix_inner", "mix_outer", "run",
                           "BEGIN mix_inner", "END mix_inner", "CALL mix_inner",
                           "CALL mix_outer", "stripped")
    else:
        check(with_lines == 0, "lines without the debug file: the fixture is not stripped")


def test_minidebuginfo(d):
    """A binary stripped of .symtab that carries minidebuginfo
    (.gnu_debugdata: an xz-compressed ELF with the function symbols, as
    Fedora ships) is still named, through libdwfl."""
    binary = os.path.join(d, "split-mini")
    shutil.copy(fixture("split"), binary)
    sh = lambda *a: subprocess.run(list(a), check=True, capture_output=True, text=True).stdout
    dyn = set(l.split()[0] for l in sh("nm", "-D", "--format=posix", "--defined-only",
                                       binary).splitlines() if l.strip())
    funcs = [l.split()[0] for l in sh("nm", "--format=posix", "--defined-only",
                                      binary).splitlines()
             if len(l.split()) > 1 and l.split()[1] in ("T", "t")]
    addrs = {l.split()[0]: int(l.split()[2], 16) for l in sh(
        "nm", "--format=posix", "--defined-only", binary).splitlines()
        if len(l.split()) > 2 and l.split()[0] in ("leaf_a", "leaf_b", "work_round")}
    with open(os.path.join(d, "keep"), "w") as f:
        f.write("\n".join(sorted(set(funcs) - dyn)) + "\n")
    debug, mini = os.path.join(d, "debug"), os.path.join(d, "mini")
    sh("objcopy", "--only-keep-debug", binary, debug)
    sh("objcopy", "-S", "--remove-section", ".gdb_index", "--remove-section", ".comment",
       "--keep-symbols=" + os.path.join(d, "keep"), debug, mini)
    sh("strip", "--strip-all", "-R", ".comment", binary)
    sh("xz", "-f", mini)
    sh("objcopy", "--add-section", ".gnu_debugdata=" + mini + ".xz", binary)
    check("no symbols" in subprocess.run(["nm", binary], capture_output=True,
                                         text=True).stderr,
          "the binary still has a .symtab: the fixture proves nothing")
    p = symbolize(["-e", binary], list(addrs.values()))
    names = [l for l in p.stdout.splitlines() if not l.startswith("0x") and ":" not in l]
    check(names == list(addrs.keys()), "minidebuginfo names %r, want %r" % (names, list(addrs)))


def test_stripped_debuglink(d):
    binary, debug = split_debug(d, with_debuglink=True)
    check_stripped(binary, [], want_lines=False)  # the debug file is not found yet
    os.makedirs(os.path.join(d, "bin", ".debug"))
    os.rename(debug, os.path.join(d, "bin", ".debug", "inline.debug"))
    check_stripped(binary, [], want_lines=True)


def build_id(path):
    notes = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                           check=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", notes)
    check(m, "%s has no build-id" % path)
    return m.group(1)


def test_stripped_buildid_dir(d):
    binary, debug = split_debug(d, with_debuglink=False)
    bid = build_id(binary)
    root = os.path.join(d, "debugroot")
    os.makedirs(os.path.join(root, ".build-id", bid[:2]))
    os.rename(debug, os.path.join(root, ".build-id", bid[:2], bid[2:] + ".debug"))
    check_stripped(binary, [], want_lines=False)
    check_stripped(binary, ["--debuginfo-path", root], want_lines=True)
    # The same option reaches the recorder: inlined frames need DWARF.
    stacks = record(d, ["-g", "fp", "--debuginfo-path", root, "--", binary, "1.5"])
    share = chain_share(stacks, INLINE_CHAIN)
    check(share >= 90, "record --debuginfo-path: only %.1f%% end in %s"
          % (share, ";".join(INLINE_CHAIN)))
    stacks = record(d, ["-g", "fp", "--", binary, "1"], name="nodebug.folded")
    check(chain_share(stacks, INLINE_CHAIN) == 0,
          "inlined frames without the debug file: the test proves nothing")


def wait_running(proc, exe_name, timeout=10):
    """Wait until proc has exec'd exe_name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.path.basename(os.readlink("/proc/%d/exe" % proc.pid)).startswith(exe_name):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise Fail("the target did not start")


def record_pid(d, pid, seconds="1.5"):
    return record(d, ["-g", "fp", "-p", str(pid), "-d", seconds])


def test_deleted_binary(d):
    binary = os.path.join(d, "inline-del")
    shutil.copy(fixture("inline"), binary)
    proc = subprocess.Popen([binary, "0"], stdout=subprocess.DEVNULL)
    try:
        wait_running(proc, "inline-del")
        os.unlink(binary)
        stacks = record_pid(d, proc.pid)
        share = chain_share(stacks, INLINE_CHAIN)
        print("deleted: %.1f%% of samples end in %s" % (share, ";".join(INLINE_CHAIN)))
        check(share >= 90, "deleted binary: only %.1f%% named" % share)
        # Replaced: another program now has the path; the target's own file
        # (checked against its inode) must still be the one read.
        shutil.copy(fixture("split"), binary)
        stacks = record_pid(d, proc.pid)
        share = chain_share(stacks, INLINE_CHAIN)
        print("replaced: %.1f%% of samples end in %s" % (share, ";".join(INLINE_CHAIN)))
        check(share >= 90, "replaced binary: only %.1f%% named" % share)
    finally:
        kill(proc)


def libs_of(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"(/\S+)", out)


def test_chroot(d):
    if os.geteuid() != 0:
        raise Fail("chroot needs root (tests run as root in CI)")
    root = os.path.join(d, "root")
    inside = "/stoke-chroot-only/inline"  # exists only in the chroot
    check(not os.path.exists(inside), "%s exists outside the chroot" % inside)
    os.makedirs(root + os.path.dirname(inside))
    shutil.copy(fixture("inline"), root + inside)
    for lib in libs_of(fixture("inline")):
        os.makedirs(os.path.dirname(root + lib), exist_ok=True)
        shutil.copy(lib, root + lib)
    proc = subprocess.Popen(["chroot", root, inside, "0"], stdout=subprocess.DEVNULL)
    try:
        wait_running(proc, "inline")
        stacks = record_pid(d, proc.pid)
        share = chain_share(stacks, INLINE_CHAIN)
        print("chroot: %.1f%% of samples end in %s" % (share, ";".join(INLINE_CHAIN)))
        check(share >= 90, "chroot: only %.1f%% named" % share)
    finally:
        kill(proc)


NODE_SCRIPT = r"""
function stokeHotLoop(n) {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003;
  return x;
}
const end = Date.now() + DURATION_MS;
let s = 0;
while (Date.now() < end) s += stokeHotLoop(200000);
console.log(s);
"""


def test_node_jit(d):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise Fail("node not found (tools/setup installs nodejs)")
    script = os.path.join(d, "hot.js")
    with open(script, "w") as f:
        f.write(NODE_SCRIPT.replace("DURATION_MS", "3000"))
    try:
        # In d: node may leave V8 logs in its working directory.
        stacks = record(d, ["-g", "fp", "--", node, "--perf-basic-prof", script], timeout=120,
                        cwd=d)
    finally:
        # node leaves its map behind: remove the ones naming our script.
        for name in os.listdir("/tmp"):
            path = os.path.join("/tmp", name)
            # Only regular files: anything else (a FIFO) could block us.
            if re.match(r"perf-\d+\.map$", name) and os.path.isfile(path) \
                    and not os.path.islink(path):
                with open(path, errors="replace") as f:
                    if script in f.read():
                        os.unlink(path)
    hot = sum(c for fr, c in stacks if any("stokeHotLoop" in names(f) for f in fr))
    jit = sum(c for fr, c in stacks if fr[-1].endswith("_[j]"))
    print("samples=%d with stokeHotLoop=%d JIT leaves=%d" % (total(stacks), hot, jit))
    check(hot >= 0.5 * total(stacks), "stokeHotLoop in only %d of %d samples"
          % (hot, total(stacks)))


def test_kernel_modules(d):
    mod_line = None
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4 and parts[1] in "tT" and parts[3].startswith("[") and \
                    int(parts[0], 16):
                mod_line = parts
                break
    p = symbolize(["--json", "-p", str(os.getpid())],
                  [int(mod_line[0], 16)] if mod_line else [])
    if not mod_line:
        print("no module symbols in /proc/kallsyms here: checked the core kernel only")
    else:
        fr = json.loads(p.stdout)["frames"][0]
        print("%s → %s" % (mod_line, fr))
        check(fr["function"] == mod_line[2] and fr["module"] == mod_line[3],
              "module symbol: got %s" % fr)
    with open("/proc/kallsyms") as f:
        core = next(l.split() for l in f if l.split()[1] in "tT" and len(l.split()) == 3
                    and int(l.split()[0], 16))
    fr = json.loads(symbolize(["--json", "-p", str(os.getpid())],
                              [int(core[0], 16)]).stdout)["frames"][0]
    check(fr["function"] == core[2] and fr["kind"] == "kernel", "core kernel: %s" % fr)


def test_agreement_addr2line(d):
    """Agreement with addr2line -a -f -i on each generated binary shape of
    the benchmark (inlined helpers; many CUs; CUs without debug info and
    assembly functions, outside any DWARF subprogram), smaller ones built
    here: every shape must agree on 99%."""
    p = subprocess.run([sys.executable, os.path.join(SOURCE_ROOT, "bench", "symbolize.py"),
                        "--stoke", os.environ.get("STOKE", "stoke"), "--workdir", d,
                        "--functions", "1200", "--addresses", "20000", "--runs", "1",
                        "--min-agreement", "99"], capture_output=True, text=True,
                       timeout=600)
    print(p.stdout + p.stderr)
    check(p.returncode == 0, "agreement with addr2line below 99%")
    m = re.search(r"([\d.]+)% inside inlined code", p.stdout)
    check(m and float(m.group(1)) > 30, "the generated binary has too little inlined code")


def block_list(text):
    """addr2line -a -f -i shaped text → [(address, block text)] in order."""
    out = []
    for line in text.splitlines(keepends=True):
        if re.match(r"^0x[0-9a-f]{16}$", line.rstrip("\n")):
            out.append([int(line, 16), line])
        else:
            check(out, "output starts without an address line: %r" % line)
            out[-1][1] += line
    return [tuple(b) for b in out]


def test_symbolize_batches(d):
    """stdin is answered in batches (unique addresses resolved in address
    order, by several threads with -j): the answers still come in input
    order, once per input address (duplicates too), and each is the answer
    the address gets on its own."""
    import random
    binary = os.environ.get("STOKE", "stoke")  # a large ELF with many functions
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    ranges = [(int(p[0], 16), int(p[1], 16)) for p in (l.split() for l in out.splitlines())
              if len(p) == 4 and p[2] in "tTwW" and int(p[1], 16) > 0]
    rng = random.Random(4)
    uniq = sorted({start + rng.randrange(size) for start, size in
                   (rng.choice(ranges) for _ in range(7000))})
    check(len(uniq) > 5000, "%s: too few code addresses (%d) to need threads" % (binary,
                                                                                 len(uniq)))
    addrs = uniq + [rng.choice(uniq) for _ in range(2000)]
    rng.shuffle(addrs)
    # One to three addresses a line, mixed spellings.
    lines, i = [], 0
    while i < len(addrs):
        k = rng.randint(1, 3)
        lines.append(" ".join(("0x%x" if rng.random() < 0.5 else "%x") % a
                              for a in addrs[i:i + k]))
        i += k
    stdin = "\n".join(lines) + "\n"
    texts = {}
    for jobs in ("1", "2", "3"):
        texts[jobs] = symbolize(["-e", binary, "-j", jobs], stdin=stdin).stdout
    check(texts["1"] == texts["2"] == texts["3"], "-j1, -j2 and -j3 answer differently")
    blocks_ = block_list(texts["2"])
    check([a for a, _ in blocks_] == addrs, "answers are not in input order (%d answers for "
          "%d addresses)" % (len(blocks_), len(addrs)))
    seen = {}
    for a, text in blocks_:
        check(seen.setdefault(a, text) == text, "0x%x answered two ways" % a)
    # The batch's answers are the answers of addresses asked alone.
    sample = rng.sample(uniq, 12)
    for a in sample:
        alone = symbolize(["-e", binary], [a]).stdout
        check(alone == seen[a], "0x%x: %r alone, %r in a batch" % (a, alone, seen[a]))
    print("%d addresses (%d unique) in input order, -j1/-j2/-j3 identical"
          % (len(addrs), len(uniq)))


def read_answer(proc, timeout):
    """Read one addr2line-shaped answer (address line, then at least one
    function/location pair) from proc's stdout, waiting at most timeout
    seconds; None if it does not come."""
    import select
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while buf.count(b"\n") < 3:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buf += chunk
    # The answer is written at once; give the rest of it a moment.
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode()


def test_symbolize_coprocess(d):
    """A coprocess (as perf runs addr2line) writes one address and waits for
    its answer before writing the next: each must be answered while stdin
    is still open."""
    exe = fixture("inline")
    addrs = [function_range(exe, "run")[0], function_range(exe, "main")[0],
             function_range(exe, "run")[0]]
    want = [symbolize(["-e", exe], [a]).stdout for a in addrs]
    p = subprocess.Popen([os.environ.get("STOKE", "stoke"), "symbolize", "-e", exe],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        for a, w in zip(addrs, want):
            p.stdin.write(b"0x%x\n" % a)
            p.stdin.flush()
            got = read_answer(p, 30)
            check(got is not None, "no answer to 0x%x while stdin stays open" % a)
            check(got == w, "0x%x: coprocess answer %r, want %r" % (a, got, w))
        p.stdin.close()
        rc = p.wait(timeout=30)
        check(rc == 0, "exit %d after EOF: %s" % (rc, p.stderr.read().decode()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print("%d addresses answered one at a time" % len(addrs))


def test_symbolize_errors(d):
    p = symbolize(["-e", os.path.join(d, "missing")], [0x10], expect=1)
    check("No such file" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr)
    notelf = os.path.join(d, "notelf")
    with open(notelf, "w") as f:
        f.write("hello\n")
    p = symbolize(["-e", notelf], [0x10], expect=1)
    check("not an ELF file" in p.stderr, p.stderr)
    symbolize(["-e", fixture("inline"), "zz"], expect=2)
    symbolize(["-e", fixture("inline"), "-p", "1"], expect=2)
    symbolize(["-e", fixture("inline"), "-j", "0", "0x10"], expect=2)
    symbolize(["-e", fixture("inline"), "--jobs", "9", "0x10"], expect=2)
    symbolize([], expect=2)
    p = symbolize(["-e", fixture("inline")], stdin="0x10\nnot-hex\n", expect=1)
    check("stdin:2" in p.stderr, p.stderr)
    p = symbolize(["-p", "999999999"], [0x10], expect=1)
    check("no such process" in p.stderr, p.stderr)
    # --json: one object per address, unknown frames as null.
    p = symbolize(["--json", "-e", fixture("inline")], [0x0, function_range(
        fixture("inline"), "run")[0]])
    objs = [json.loads(l) for l in p.stdout.splitlines()]
    check(len(objs) == 2 and objs[0]["frames"][0]["function"] is None and
          objs[1]["frames"][-1]["function"] == "run", "json: %s" % objs)


# ---- names as perf prints them (symtab) ----

def plt_copy(d, subdir, name):
    """plt-names and its library copied into d/subdir, the program under a
    new name (the rpath is $ORIGIN-relative, LD_LIBRARY_PATH covers the
    rest)."""
    where = os.path.join(d, subdir)
    os.makedirs(where)
    binary = os.path.join(where, name)
    shutil.copy(fixture("plt-names"), binary)
    shutil.copy(os.path.join(os.path.dirname(fixture("plt-names")), "libpltnames.so"), where)
    return binary


def plt_env(binary):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.dirname(binary)
    return env


def self_shares(prof):
    """{function: self %} from `stoke top` on a stored profile."""
    p = run_stoke(["top", prof, "-n", "50"])
    check(p.returncode == 0, "top %s: %s" % (prof, p.stderr))
    rows = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*\d+\s+([\d.]+)%\s+[\d.]+%\s+\d+\s+(\S+)", line)
        if m:
            rows[m.group(2)] = float(m.group(1))
    check(rows, "no rows from top: %r" % p.stdout[:500])
    return rows


def test_plt_stub_names(d):
    """Samples in PLT stubs read "pltnames_tiny@plt", as perf names them,
    never "plt-names+0x…"."""
    binary = plt_copy(d, "a", "plt-names")
    prof = os.path.join(d, "p.pb.gz")
    p = run_stoke(["record", "-q", "-o", prof, "--", binary, "2"], env=plt_env(binary))
    check(p.returncode == 0, "record: %s" % p.stderr)
    rows = self_shares(prof)
    print("self shares: %s" % sorted(rows.items(), key=lambda kv: -kv[1])[:8])
    stubs = {k: v for k, v in rows.items() if k.endswith("@plt")}
    check(stubs.get("pltnames_tiny@plt", 0) + stubs.get("pltnames_other@plt", 0) >= 3,
          "the hot PLT stubs are not named: %s" % rows)
    unnamed = {k: v for k, v in rows.items() if re.match(r"plt-names\+0x", k)}
    check(sum(unnamed.values()) < 1, "unnamed frames of the program: %s" % unnamed)


def test_renamed_binary_diff(d):
    """The same program under another name and directory is no regression:
    every frame of it is named (PLT stubs included), so `stoke diff` matches
    them all."""
    profs = []
    for sub, name in (("a", "plt-names"), ("b", "plt-renamed")):
        binary = plt_copy(d, sub, name)
        prof = os.path.join(d, sub + ".pb.gz")
        # 1000-3000 samples (fewer on a loaded machine): two runs' shares
        # differ by 1-2 points (one sigma), well inside the 10-point gate;
        # an unnamed stub of the renamed binary would be a new ~15 points.
        p = run_stoke(["record", "-q", "-F", "999", "-o", prof, "--", binary, "3"],
                      env=plt_env(binary))
        check(p.returncode == 0, "record %s: %s" % (name, p.stderr))
        profs.append(prof)
    p = run_stoke(["diff", profs[0], profs[1], "--max-regression", "10", "-n", "50"])
    print(p.stdout)
    check(p.returncode == 0, "stoke diff reports a regression for a renamed binary "
          "(exit %d): %s%s" % (p.returncode, p.stdout[-800:], p.stderr))
    check(not re.search(r"^plt-(names|renamed)\+0x", p.stdout, re.M),
          "unnamed program frames in the diff:\n%s" % p.stdout)


TESTS = {n[5:]: f for n, f in globals().items() if n.startswith("test_")}

if __name__ == "__main__":
    run_tests(TESTS)
