"""Sections of the report for the webhook and scale-out runs (issue 14), used by report.py.

Each function takes the report.Report and returns a markdown section, or "" when the run
has no such scenario.
"""

from report_fmt import TOPOLOGY, errors, ms_fmt, num, rps_fmt, table


def _exact(r):
    return "yes" if r.get("check_ok") == "1" and errors(r) == 0 else f"**NO** {r.get('check_why', '')}"


def webhooks(rep):
    first = [r for r in rep.runs if r["scenario"] == "webhook"]
    again = [r for r in rep.runs if r["scenario"] == "webhook-redelivery"]
    if not first and not again:
        return ""
    rows = [(r["backend"], r["conc"], r.get("events_file", "?"), rps_fmt(num(r["rps"])),
             ms_fmt(num(r["p99_ms"])), r.get("answered_ok", "?"), r.get("applied", "?"),
             r.get("in_flight", "?"), r.get("duplicates", "?"), r.get("unpaired", "?"),
             r.get("double_grants", "?"), "**yes** (rate is a lower bound)" if r.get("exhausted") == "1" else "no",
             _exact(r)) for r in first]
    text = ("## Webhooks\n\nDistinct signed `checkout.session.completed` events, each sent once "
            "(see Method). `answered applied`: 200 answers with outcome `applied` counted by wrk; "
            "`stored applied`: rows of `billing_events` with outcome `applied` added by the run "
            "(the difference is events in flight when wrk stopped); `unpaired`: applied events "
            "without exactly one purchase ledger row of their own, plus purchase rows without "
            "their event.\n\n" + table(
                ["backend", "conc.", "events signed", "req/s", "p99 ms", "answered applied",
                 "stored applied", "in flight at stop", "duplicate answers", "unpaired",
                 "sessions granted twice", "events ran out", "exactly once?"], rows))
    if again:
        rows = [(r["backend"], r["conc"], r.get("redelivered", "?"), r.get("answered_duplicate", "?"),
                 r.get("outcomes", "-").replace(",", " "), f"{num(r['duration_s']):.1f}",
                 ms_fmt(num(r["p99_ms"])), _exact(r)) for r in again]
        text += ("\n\nRedelivery: every event the service stored, re-signed and sent again at the "
                 "same concurrency; each answer must be `duplicate` and the database must not "
                 "change (events, ledger, payments, balances). The run lasts until every event "
                 "is answered, so its rate is not a throughput figure.\n\n" + table(
                     ["backend", "conc.", "events redelivered", "answered duplicate", "outcomes",
                      "run s", "p99 ms", "nothing changed?"], rows))
    return text


def scaleout(rep):
    runs = [r for r in rep.runs if r["scenario"] in ("scaleout-read", "scaleout-use-hot")]
    if not runs:
        return ""
    by = {(r["backend"], r["scenario"], r.get("variant", "")): r for r in runs}
    rows, notes = [], []
    for backend in sorted({r["backend"] for r in runs}, key=lambda b: b != "postgres"):
        for variant in TOPOLOGY:
            read = by.get((backend, "scaleout-read", variant))
            use = by.get((backend, "scaleout-use-hot", variant))
            if not read and not use:
                continue

            def cells(r):
                if not r:
                    return ["—"] * 4
                return [rps_fmt(num(r["rps"])), ms_fmt(num(r["p99_ms"])), rep.split_of(r) or "—",
                        f"{num(r['svc_cpu_pct']):.0f} / {num(r.get('lb_cpu_pct')):.0f}"
                        if "lb_cpu_pct" in r else f"{num(r['svc_cpu_pct']):.0f} / —"]
            rows.append([backend, TOPOLOGY[variant]] + cells(read) + cells(use) +
                        [_exact(use) if use else "—"])
        for scenario, what in (("scaleout-read", "reads"), ("scaleout-use-hot", "hot-account uses")):
            direct, one, two = (by.get((backend, scenario, v)) for v in TOPOLOGY)
            parts = []
            if direct and one and num(direct["rps"]):
                parts.append(f"nginx in front of one instance changes {what} by "
                             f"{num(one['rps']) / num(direct['rps']) - 1:+.0%} (p99 "
                             f"{ms_fmt(num(direct['p99_ms']))} → {ms_fmt(num(one['p99_ms']))} ms)")
            if one and two and num(one["rps"]):
                parts.append(f"a second instance behind it changes them by "
                             f"{num(two['rps']) / num(one['rps']) - 1:+.0%}")
            if parts:
                notes.append(f"- {backend}, {what} at {(direct or one or two)['conc']} connections: "
                             + "; ".join(parts) + ".")
    header = ["backend", "topology", "reads/s", "reads p99 ms", "reads per instance",
              "reads CPU % service / nginx", "uses/s", "uses p99 ms", "uses per instance",
              "uses CPU % service / nginx", "ledger exact?"]
    return ("## Scale-out\n\nGET /credits/balance and hot-account POST /credits/use against one "
            "instance directly, one instance behind nginx, and two instances behind nginx (one "
            "PostgreSQL database, one Redis; everything on the same cores). Per instance: share "
            "of the requests each instance counted in its own `http_requests_total`. Service "
            "CPU is summed over the instances (100 % = one core).\n\n" + table(header, rows) +
            ("\n\n" + "\n".join(notes) if notes else ""))
