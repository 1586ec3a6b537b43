#!/usr/bin/env python3
"""Turns one bench run (bench/results/<run id>/{meta.tsv,raw.txt}) into the markdown
report that bench/run.sh prints and saves as bench/results/<run id>.md, ready to become
BENCHMARKS.md.

    python3 bench/lib/report.py bench/results/<run id>

raw.txt has one record per line: a kind (RUN, HASH, STARTUP, LEDGER, PEAK, SPLIT) followed
by key=value fields without spaces, written by run.sh. The sections of the webhook and
scale-out runs are in report_runs.py.
"""

import re
import statistics
import sys
from pathlib import Path

import report_runs
from report_fmt import NAMES, SPENDING, errors, load, ms_fmt, name_of, num, rps_fmt, run_key, table, yes

# DESIGN §8 (issue 14's targets).
READ_RPS, READ_P99_MS, READ_CONC = 10_000, 10.0, 64
LOGIN_SHARE = 0.90
MIX_P99_MS = 50.0
HOT_RPS, HOT_P99_MS, HOT_CONC = 5_000, 50.0, 64  # one hot account, group commit
WEBHOOK_RPS, WEBHOOK_CONC = 1_000, 64  # distinct signed events, each applied once
IDLE_RSS_MB = 30.0
READY_MS = 1_000.0
OTHER_CPU_WARN = 15.0  # % of one core used by processes other than ours, wrk, postgres

class Report:
    def __init__(self, meta, records):
        self.meta = meta
        self.cores = int(num(meta.get("cores"), 1))
        self.runs = sorted((r for r in records if r["kind"] == "RUN"), key=run_key)
        self.hashes = [r for r in records if r["kind"] == "HASH"]
        # The bound of the hash the logins verify (a record without `used`: before issue 14,
        # bcrypt only, one record per backend).
        self.hash = {r["backend"]: r for r in self.hashes if r.get("used", "1") == "1"}
        self.splits = [r for r in records if r["kind"] == "SPLIT"]
        self.startups = [r for r in records if r["kind"] == "STARTUP"]
        self.ledger = {r["backend"]: r for r in records if r["kind"] == "LEDGER"}
        self.peak = {r["backend"]: r for r in records if r["kind"] == "PEAK"}

    def bound(self, backend, conc):
        """Logins/s allowed by the hashers with `conc` logins in flight."""
        h = self.hash.get(backend)
        if not h:
            return None
        per_core = 1000.0 / num(h["verify_ms"])
        return per_core * min(conc, int(h["cores"])), per_core * int(h["cores"])

    def target(self, r):
        """(target text, met: True/False/None) for one run."""
        s, c, b = r["scenario"], int(r["conc"]), r["backend"]
        rps, p99, errs = num(r["rps"]), num(r["p99_ms"]), errors(r)
        if s in ("login", "mix-login"):
            bounds = self.bound(b, c)
            if not bounds:
                return "≥ 90% of hashing bound (not measured)", None
            at_c, full = bounds
            share = rps / at_c if at_c else 0
            if s == "mix-login":
                return f"info: {share:.0%} of bound {full:.2f}/s (hashers busy)", None
            label = f"bound {full:.2f}/s" if c >= self.cores else \
                f"{min(c, self.cores)}-core bound {at_c:.2f}/s"
            return f"≥ 90% of {label}: {share:.0%}", share >= LOGIN_SHARE and errs == 0
        if s in ("me", "balance"):
            if c == READ_CONC:
                return f"≥ {READ_RPS:,}/s, p99 < {READ_P99_MS:g} ms", \
                    rps >= READ_RPS and p99 < READ_P99_MS and errs == 0
            return "—", None
        if s == "mix-read":
            return f"p99 < {MIX_P99_MS:g} ms", p99 < MIX_P99_MS and errs == 0
        exact = r.get("check_ok") == "1"
        if s in SPENDING:
            if s == "use-hot" and c == HOT_CONC:
                return f"≥ {HOT_RPS:,}/s, p99 < {HOT_P99_MS:g} ms, ledger exact", \
                    rps >= HOT_RPS and p99 < HOT_P99_MS and exact and errs == 0
            return "ledger exact", exact and errs == 0
        if s == "webhook":
            whole = r.get("exhausted") != "1"
            if c == WEBHOOK_CONC:
                return f"≥ {WEBHOOK_RPS:,}/s, each applied once", \
                    rps >= WEBHOOK_RPS and whole and exact and errs == 0
            return "each applied once", exact and errs == 0
        if s == "webhook-redelivery":
            return "nothing changes (all duplicate)", exact and errs == 0
        if s == "scaleout-read":
            return "no errors", errs == 0
        return "—", None

    # ---- sections ------------------------------------------------------------------------
    def machine(self):
        m = self.meta
        rows = [("CPU", f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"),
                ("Memory", m.get("memory", "?")),
                ("OS / kernel", f"{m.get('os', '?')} / {m.get('kernel', '?')}"),
                ("PostgreSQL", m.get("postgresql", "not run")),
                ("Load generator", m.get("wrk", "wrk")),
                ("Rust", m.get("rustc", "?")),
                ("Commit", m.get("commit", "?")),
                ("Service binary", m.get("binary", "?") + (f" ({m['label']})" if m.get("label") else "")),
                ("Run", f"{m.get('run_id', '?')} ({m.get('date', '?')}), "
                        f"{m.get('total_run_s', '?')} s in all"),
                ("Load average", f"{m.get('loadavg_at_start', '?')} at start, "
                                 f"{m.get('loadavg_at_end', '?')} at end")]
        return "## Machine\n\n" + table(["", ""], rows)

    def method(self):
        m = self.meta
        kinds = {r["scenario"] for r in self.runs}
        text = f"""## Method

- `bench/run.sh` (see bench/README.md) builds the release binary and, for each backend
  ({m.get('backends', '?')}), starts it on a fresh database (PostgreSQL on the same machine,
  or a new SQLite file) with `LOG_LEVEL=warn` and both per-IP rate limits disabled
  (`RATE_LIMIT_AUTH_PER_MINUTE=0`, `RATE_LIMIT_DEFAULT_PER_MINUTE=0`); every other setting
  is the default (database pool, one password hasher per core); the service reaches
  PostgreSQL over its Unix socket (`BENCH_PG_URL_OPTIONS`). Password hash:
  {m.get('password_hash', 'not recorded')}.
- Seeding: one user is registered over HTTP; its password hash is copied with SQL to
  {m.get('accounts', '?')} verified accounts, each with 1,000,000.00 credits, and to one hot
  account with 1,000,000,000.00 credits (every balance has its opening ledger row).
- Load: wrk, closed loop, {m.get('duration_s', '?')} s per run with `-c` connections and
  min(connections, {m.get('wrk_threads', '?')}) threads, on the same machine as the service.
  Reads cycle over the tokens of {m.get('token_users', '?')} users; logins pick a seeded user
  at random; spending is done as an internal service (`X-API-Key`, body `user_id`), one cent
  per request, on the hot account or on a random one of the seeded accounts. Each group of
  runs is preceded by {m.get('warmup_s', '?')} s of unrecorded load (then, on PostgreSQL,
  `ANALYZE`: statistics autovacuum would give tables in use). Mix: {m.get('mix', '?')};
  the logins start 1 s before the reads and end 1 s after them.
- Latencies come from wrk's histogram (`p50`, `p99`); errors are connection, read, write and
  timeout errors plus responses with status ≥ 400. Service CPU % is its utime+stime over the
  run (100 % = one core, {self.cores} cores here; summed over the instances of a scale-out
  run); RSS is the highest VmRSS sampled every 0.25 s during the run.
- Hashing bound: `hash_cost` (bench/hash_cost.rs) times argon2id (m=19456 KiB, t=2, p=1) and
  bcrypt verifies on one core in the same run; the logins are judged against the bound of
  the hash they verify: cores ÷ one verify.
- Spending is reconciled after every run: balance change = sum of new ledger rows = rows ×
  1 cent; every ledger row's balance_after = previous row's ± amount; every account's ledger
  sums to its balance; rows applied − 200 answers ∈ [0, connections] (requests in flight when
  wrk stops may still be applied)."""
        if kinds & {"webhook", "webhook-redelivery"}:
            text += f"""
- Webhooks: a one-time plan (100.00 credits) is created with SQL; right before each run
  `bench/lib/stripe_events.py` writes distinct `checkout.session.completed` events (mode
  payment, paid; buyers cycle over the seeded accounts), signed as Stripe signs them, enough
  for the run at {m.get('webhook_max_rate', '5000')}/s. wrk sends each event once (`bench/lua/webhook.lua`: never a
  replay). Checked with SQL after the run: events stored = events applied = purchase ledger
  rows = payments; each applied event has exactly its own purchase row (same session, same
  user, the plan's credits) and no purchase lacks its event; no session granted twice;
  balances moved by exactly the credits granted; stored − answered `applied` ∈ [0,
  connections]; no `duplicate`, `ignored` or `unmatched` answer; the whole ledger chains and
  sums. Then every stored event is delivered again, re-signed, at the same concurrency: every
  answer must be `duplicate` and nothing in the database may change."""
        if kinds & {"scaleout-read", "scaleout-use-hot"}:
            text += f"""
- Scale-out: two instances (`REDIS_URL`, a key prefix of their own) on the one PostgreSQL
  database, behind nginx on the same machine ({m.get('scaleout', '?')}). GET /credits/balance
  and hot-account POST /credits/use are run against one instance directly, one instance
  behind nginx and two instances behind nginx; spending is reconciled as above; each
  instance's share is read from its own GET /metrics."""
        return text

    def summary(self):
        rows = []  # (target, backend, measured, met, applies to SQLite too)
        for b in ("postgres", "sqlite"):
            runs = [r for r in self.runs if r["backend"] == b]
            if not runs and not any(s["backend"] == b for s in self.startups):
                continue

            def at(scenario, conc=None, variant=""):
                return [r for r in runs if r["scenario"] == scenario and r.get("variant", "") == variant
                        and (conc is None or int(r["conc"]) == conc)]

            def speed(r):
                return f"{rps_fmt(num(r['rps']))}/s, p99 {ms_fmt(num(r['p99_ms']))} ms"

            for s in ("me", "balance"):
                for r in at(s, READ_CONC):
                    t, ok = self.target(r)
                    rows.append((f"{NAMES[s]} at {READ_CONC}: {t}", b, speed(r), yes(ok), False))
            logins = [r for r in at("login") if int(r["conc"]) >= self.cores]
            if logins:
                r = max(logins, key=lambda r: int(r["conc"]))
                t, ok = self.target(r)
                scheme = self.hash.get(b, {}).get("scheme") or \
                    (self.meta.get("password_hash") or "?").split(" ")[0]
                bounds = self.bound(b, 99)
                rows.append((f"logins ≥ 90% of the {scheme} hashing bound (c={r['conc']})", b,
                             f"{rps_fmt(num(r['rps']))}/s, {t.split(': ')[-1]} of {bounds[1]:.2f}/s"
                             if bounds else f"{rps_fmt(num(r['rps']))}/s (bound not measured)",
                             yes(ok) if ok is not None else "?", False))
            for r in at("mix-read"):
                t, ok = self.target(r)
                rows.append((f"reads' p99 < {MIX_P99_MS:g} ms while logins saturate the hashers", b,
                             f"p99 {ms_fmt(num(r['p99_ms']))} ms at {rps_fmt(num(r['rps']))}/s", yes(ok), False))
            for r in at("use-hot", HOT_CONC):
                t, ok = self.target(r)
                rows.append((f"one hot account at {HOT_CONC}: {t}", b,
                             f"{speed(r)}, ledger {'exact' if r.get('check_ok') == '1' else 'WRONG'}", yes(ok), False))
            for r in at("use-hot", 1):
                rows.append(("one hot account, 1 connection: latency (no regression; no target)", b,
                             f"p50 {ms_fmt(num(r['p50_ms']))} ms, p99 {ms_fmt(num(r['p99_ms']))} ms, "
                             f"{rps_fmt(num(r['rps']))}/s", "—", False))
            spend = [r for r in runs if r["scenario"] in SPENDING]
            if spend:
                exact = all(r.get("check_ok") == "1" for r in spend)
                led = self.ledger.get(b, {})
                whole = led.get("chain_breaks") == "0" and led.get("sum_mismatches") == "0"
                rows.append(("no lost or double spend (every spending run + whole ledger)", b,
                             f"{len(spend)} runs reconciled; `ledger verify`: {led.get('ledger_verify', '?')}",
                             yes(exact and whole and led.get("ledger_verify") in ("ok", "n/a")), True))
            for r in at("webhook", WEBHOOK_CONC):
                t, ok = self.target(r)
                note = " (events ran out: a lower bound)" if r.get("exhausted") == "1" else ""
                rows.append((f"webhooks at {WEBHOOK_CONC}: {t}", b, speed(r) + note, yes(ok), False))
            hooks = at("webhook") + at("webhook-redelivery")
            if hooks:
                exact = all(r.get("check_ok") == "1" and errors(r) == 0 for r in hooks)
                applied = sum(int(num(r.get("applied"))) for r in at("webhook"))
                again = sum(int(num(r.get("redelivered"))) for r in at("webhook-redelivery"))
                rows.append(("every distinct event applied exactly once; a redelivery changes nothing", b,
                             f"{applied:,} events applied in {len(at('webhook'))} runs, "
                             f"{again:,} redelivered", yes(exact), True))
            two = at("scaleout-read", variant="nginx-2") + at("scaleout-use-hot", variant="nginx-2")
            for r in two:
                split = self.split_of(r)
                rows.append((f"scale-out, 2 instances behind nginx: {NAMES[r['scenario']].split(': ')[1]} "
                             f"at {r['conc']} (no target)", b, f"{speed(r)}{'; ' + split if split else ''}",
                             "—", False))
            so_spend = [r for r in runs if r["scenario"] == "scaleout-use-hot"]
            if so_spend:
                rows.append(("scale-out: no lost or double spend across instances", b,
                             f"{len(so_spend)} runs reconciled",
                             yes(all(r.get("check_ok") == "1" and errors(r) == 0 for r in so_spend)), True))
            st = [s for s in self.startups if s["backend"] == b]
            if st:
                worst = max(num(s["idle_rss_kb"]) for s in st) / 1024
                rows.append((f"idle RSS < {IDLE_RSS_MB:g} MB", b, f"{worst:.1f} MB (highest of {len(st)} starts)",
                             yes(worst < IDLE_RSS_MB), True))
            if b == "sqlite" and st:
                ready = [num(s["ready_ms"]) for s in st]
                rows.append(("start to ready < 1 s (fresh SQLite, migrations included)", b,
                             f"median {statistics.median(ready):.0f} ms, max {max(ready):.0f} ms ({len(ready)} starts)",
                             yes(max(ready) < READY_MS), True))
        # DESIGN §8 sets the throughput and latency targets for PostgreSQL; SQLite's figures
        # are shown against them for reference, in parentheses.
        rows = [(t, b, m, f"({ok})" if b == "sqlite" and not both and ok != "—" else ok)
                for t, b, m, ok, both in rows]
        return ("## Targets\n\nThroughput and latency targets (DESIGN §8) are set for PostgreSQL on "
                "the same machine; SQLite is judged against them for reference only (in "
                "parentheses). Idle RSS, start-up and exactness (spending, webhooks) apply to both.\n\n" +
                table(["target", "backend", "measured", "met?"], rows))

    def split_of(self, r):
        """'A 50% / B 50%' of the requests each instance answered during a scale-out run."""
        for sp in self.splits:
            if all(sp.get(k, "") == r.get(k, "") for k in ("backend", "scenario", "variant", "conc")):
                parts = [p.split(":") for p in sp.get("instances", "").split(",") if ":" in p]
                total = sum(int(num(n)) for _, n in parts)
                if total:
                    return " / ".join(f"{name} {int(num(n)) / total:.0%}" for name, n in parts)
        return ""

    def results(self):
        rows = []
        for r in self.runs:
            t, ok = self.target(r)
            rows.append((name_of(r), r["backend"], r["conc"],
                         rps_fmt(num(r["rps"])), ms_fmt(num(r["p50_ms"])), ms_fmt(num(r["p99_ms"])),
                         errors(r), f"{num(r['svc_cpu_pct']):.0f}",
                         f"{num(r['rss_peak_kb']) / 1024:.1f}", t,
                         "—" if ok is None else yes(ok)))
        return "## Results\n\n" + table(
            ["scenario", "backend", "conc.", "req/s", "p50 ms", "p99 ms", "errors",
             "service CPU %", "RSS MB", "target", "met?"], rows)

    def details(self):
        rows, noisy = [], []
        for r in self.runs:
            svc, wrk, pg, lb, mach = (num(r.get(k)) for k in
                                      ("svc_cpu_pct", "wrk_cpu_pct", "pg_cpu_pct", "lb_cpu_pct",
                                       "machine_cpu_pct"))
            other = mach - svc - pg - lb - (wrk if r["scenario"] not in ("mix-login", "mix-read") else 0)
            if r["scenario"] not in ("mix-login", "mix-read") and other > OTHER_CPU_WARN:
                noisy.append(f"{r['backend']} {name_of(r)} c={r['conc']} ({other:.0f} %)")
            errs = "/".join(r.get(k, "0") for k in
                            ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
            statuses = r.get("statuses", "-").replace(",", " ")
            if r.get("outcomes"):
                statuses += "; " + r["outcomes"].replace(",", " ")
            rows.append((name_of(r), r["backend"], r["conc"],
                         r["requests"], ms_fmt(num(r["p90_ms"])), ms_fmt(num(r["max_ms"])),
                         errs, statuses, f"{wrk:.0f}", f"{pg:.0f}",
                         f"{lb:.0f}" if "lb_cpu_pct" in r else "—", f"{mach:.0f}",
                         f"{num(r['rss_end_kb']) / 1024:.1f}"))
        text = "## Details\n\nerrors = connect/read/write/status≥400/timeout; statuses (and webhook " \
               "outcomes) are counted only for spending and webhooks; CPU % are of one core (machine = " \
               f"all processes, up to {self.cores * 100} %).\n\n" + table(
                   ["scenario", "backend", "conc.", "requests", "p90 ms", "max ms", "errors",
                    "statuses", "wrk CPU %", "postgres CPU %", "nginx CPU %", "machine CPU %",
                    "RSS at end MB"], rows)
        if noisy:
            text += ("\n\n**Warning:** other processes used more than "
                     f"{OTHER_CPU_WARN:g} % of a core during: " + ", ".join(noisy) +
                     ". Those figures are disturbed; rerun on a quiet machine.")
        return text

    def spending(self):
        rows = []
        for r in self.runs:
            if r["scenario"] not in SPENDING:
                continue
            rows.append((name_of(r), r["backend"], r["conc"], r.get("applied", "?"),
                         r.get("answered_ok", "?"), r.get("in_flight", "?"),
                         r.get("spent_cents", "?"), r.get("chain_breaks", "?"),
                         r.get("sum_mismatches", "?"),
                         "yes" if r.get("check_ok") == "1" else f"**NO** {r.get('check_why', '')}"))
        if not rows:
            return ""
        text = "## Spending reconciliation\n\n" + table(
            ["scenario", "backend", "conc.", "ledger rows added", "200 answers",
             "in flight at stop", "cents spent", "chain breaks", "accounts ≠ ledger", "exact?"], rows)
        for b, led in self.ledger.items():
            text += (f"\n\n{b}: `auth-service ledger verify` → {led.get('ledger_verify')}; whole ledger: "
                     f"{led.get('chain_breaks')} chain breaks, {led.get('sum_mismatches')} accounts whose "
                     "ledger does not sum to the balance.")
        return text

    def startup(self):
        if not self.startups:
            return ""
        rows = [(s["backend"], "benchmark instance" if s["run"] == "bench" else f"fresh start {s['run']}",
                 s["ready_ms"], f"{num(s['idle_rss_kb']) / 1024:.1f}") for s in self.startups]
        text = ("## Start-up and memory\n\nStart to ready: from exec to the first 200 of GET /health "
                "on a new database (migrations included), polled every 5 ms with curl (about 10 ms "
                "resolution). Idle RSS: VmRSS 2 s after a register, a login, GET /auth/me and GET "
                f"/credits/balance. Targets: ready < {READY_MS / 1000:g} s on SQLite, idle RSS < "
                f"{IDLE_RSS_MB:g} MB.\n\n" + table(["backend", "start", "ready ms", "idle RSS MB"], rows))
        if self.peak:
            text += "\n\nPeak RSS over the whole benchmark (VmHWM): " + ", ".join(
                f"{b} {num(p['vmhwm_kb']) / 1024:.1f} MB" for b, p in self.peak.items()) + "."
        return text

    def hashing(self):
        if not self.hashes:
            return ""
        rows = []
        for h in self.hashes:
            scheme = h.get("scheme", "bcrypt")
            m = re.fullmatch(r"m(\d+),t(\d+),p(\d+)", h.get("params", ""))
            params = (f"m={m[1]} KiB, t={m[2]}, p={m[3]}" if m else h.get("params", "?")) \
                if scheme == "argon2id" else f"cost {h.get('cost', '?')}"
            rows.append((h["backend"], scheme, params, f"{num(h['verify_ms']):.1f}", h["n"], h["cores"],
                         f"{num(h['bound_per_s']):.2f}", f"{num(h['parallel_per_s']):.2f}",
                         "**yes**" if h.get("used", "1") == "1" else "no"))
        return ("## Hashing bound\n\nMeasured by `hash_cost` just before each backend's logins, "
                "with the service idle; the logins are judged against the bound of the hash the "
                f"service stored ({self.meta.get('password_hash', 'not recorded')}).\n\n" + table(
                    ["before backend", "hash", "parameters", "one verify ms", "verifies timed per thread",
                     "cores", "bound: cores ÷ verify (/s)", "all cores at once (/s)", "used by the logins"],
                    rows))

    def render(self):
        title = f"# auth-service benchmarks\n\nGenerated by `bench/run.sh` (run {self.meta.get('run_id')})."
        parts = [title, self.machine(), self.method(), self.summary(), self.results(),
                 self.spending(), report_runs.webhooks(self), report_runs.scaleout(self),
                 self.startup(), self.hashing(), self.details()]
        return "\n\n".join(p for p in parts if p) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    meta, records = load(Path(sys.argv[1]))
    sys.stdout.write(Report(meta, records).render())


if __name__ == "__main__":
    main()
