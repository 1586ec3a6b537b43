#!/usr/bin/env python3
"""Before/after tables from two bench runs (bench/results/<run id> directories), in
markdown, for BENCHMARKS.md:

    python3 bench/lib/compare.py BEFORE_DIR AFTER_DIR [TITLE]

Runs are matched by backend, scenario, topology (scale-out) and connection count; a run
present on one side only shows "—" on the other. For each: requests/s and p99 before →
after with the change, and the DESIGN §8 target met or not on each side (judged as
report.py judges it, including each side's own hashing bound for logins).
"""

import sys
from pathlib import Path

from report import Report
from report_fmt import load, ms_fmt, name_of, num, rps_fmt, run_key, table


def change(before, after):
    if before is None or after is None or not before:
        return "—"
    return f"{after / before - 1:+.0%}"


def met(report, r):
    if r is None:
        return "—"
    _, ok = report.target(r)
    return "—" if ok is None else ("yes" if ok else "no")


def side(meta):
    return {
        "Label (BENCH_LABEL)": meta.get("label") or "—",
        "Run": f"{meta.get('run_id', '?')} ({meta.get('date', '?')})",
        "Commit": meta.get("commit", "?"),
        "Binary": meta.get("binary", "?"),
        "Password hash": meta.get("password_hash", "not recorded"),
        "Backends": meta.get("backends", "?"),
        "Seconds per run": meta.get("duration_s", "?"),
        "Load average at start": meta.get("loadavg_at_start", "?"),
    }


def key(r):
    return (r["backend"], r["scenario"], r.get("variant", ""), r["conc"])


def compare(before_dir, after_dir, title="Before / after"):
    reports = []
    for d in (before_dir, after_dir):
        meta, records = load(Path(d))
        reports.append(Report(meta, records))
    before, after = reports
    runs = [{key(r): r for r in rep.runs} for rep in reports]
    keys = sorted(set(runs[0]) | set(runs[1]),
                  key=lambda k: run_key((runs[0].get(k) or runs[1].get(k))))
    rows = []
    for k in keys:
        b, a = runs[0].get(k), runs[1].get(k)
        any_run = a or b
        # A redelivery lasts until its events are answered: its rate is no throughput.
        timed = any_run["scenario"] != "webhook-redelivery"
        rb, ra = (num(r["rps"]) if r and timed else None for r in (b, a))
        pb, pa = (num(r["p99_ms"]) if r else None for r in (b, a))
        rows.append((name_of(any_run), any_run["backend"], any_run["conc"],
                     f"{rps_fmt(rb) if rb is not None else '—'} → {rps_fmt(ra) if ra is not None else '—'}",
                     change(rb, ra),
                     f"{ms_fmt(pb) if b else '—'} → {ms_fmt(pa) if a else '—'}", change(pb, pa),
                     f"{met(before, b)} → {met(after, a)}"))
    sb, sa = side(before.meta), side(after.meta)
    head = table(["", "before", "after"], [(k, sb[k], sa[k]) for k in sb])
    return (f"## {title}\n\n{head}\n\n" + table(
        ["scenario", "backend", "conc.", "req/s before → after", "change",
         "p99 ms before → after", "change", "target met? before → after"], rows) + "\n")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sys.stdout.write(compare(*sys.argv[1:]))


if __name__ == "__main__":
    main()
