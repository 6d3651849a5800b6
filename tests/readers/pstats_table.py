#!/usr/bin/env python3
"""Print what Python's pstats shows for a .pstats file, the way stoke's
text table must look: Stats(FILE).sort_stats('cumulative').print_stats()
without the first line (the file name and date).

Also checks the pstats invariants (FORMATS.md): the sum of tt equals the
total, tt <= ct and cc <= nc for every function and caller edge.

  pstats_table.py FILE [--check-invariants TOTAL_SECONDS]
"""
import io
import pstats
import sys


def table(path):
    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("cumulative").print_stats()
    return out.getvalue().split("\n", 1)[1]


def check(path, total):
    st = pstats.Stats(path).stats
    sum_tt = 0.0
    for key, (cc, nc, tt, ct, callers) in st.items():
        sum_tt += tt
        assert tt <= ct + 1e-9, (key, tt, ct)
        assert cc <= nc, (key, cc, nc)
        for ckey, val in callers.items():
            assert isinstance(val, tuple) and len(val) == 4, (key, ckey, val)
            enc, ecc, ett, ect = val
            assert ckey in st, ("unknown caller", ckey)
            assert ett <= ect + 1e-9 and ecc <= enc, (key, ckey, val)
    assert abs(sum_tt - total) < 1e-6 * max(1.0, total), (sum_tt, total)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--check-invariants":
        check(sys.argv[1], float(sys.argv[3]))
    sys.stdout.write(table(sys.argv[1]))
