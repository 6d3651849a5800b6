#!/usr/bin/env python3
"""Integration tests for the small fixes of issue #13 (one pipeline).

symbolize_json_utf8: `stoke symbolize --json` on a function whose symbol
name is not valid UTF-8 writes valid JSON (a strict UTF-8 decode and
json.loads succeed), with U+FFFD where the bad bytes were. The address
comes from nm, never from a stored expectation.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stoketest import check, fixture, run_tests, STOKE  # noqa: E402


def symbolize_json_utf8(tmp):
    exe = fixture("badutf8")
    nm = subprocess.run(["nm", exe], capture_output=True, timeout=30)
    check(nm.returncode == 0, "nm %s failed" % exe)
    addr = None
    for line in nm.stdout.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) == 3 and parts[2] == b"bad\xff\xfename":
            addr = parts[0].decode()
    check(addr is not None, "nm does not list the bad\\xff\\xfename symbol")
    out = subprocess.run([STOKE, "symbolize", "--json", "-e", exe, "0x" + addr],
                         capture_output=True, timeout=60)
    check(out.returncode == 0, "stoke symbolize failed: %r" % out.stderr)
    try:
        text = out.stdout.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        text = None
        check(False, "output is not valid UTF-8: %s: %r" % (e, out.stdout))
    lines = [ln for ln in text.split("\n") if ln]
    check(len(lines) == 1, "one JSON object expected, got %r" % text)
    obj = json.loads(lines[0])
    names = [f.get("function") for f in obj["frames"]]
    check("bad\ufffd\ufffdname" in names,
          "function should be bad<U+FFFD><U+FFFD>name, got %r" % names)


TESTS = {
    "symbolize_json_utf8": symbolize_json_utf8,
}

if __name__ == "__main__":
    run_tests(TESTS)
