"""Formatting and loading shared by report.py, report_runs.py and compare.py."""

ORDER = ["login", "me", "balance", "use-hot", "use-spread", "webhook", "webhook-redelivery",
         "mix-login", "mix-read", "scaleout-read", "scaleout-use-hot"]
VARIANTS = ["", "direct", "nginx-1", "nginx-2"]
NAMES = {
    "login": "POST /auth/login",
    "me": "GET /auth/me",
    "balance": "GET /credits/balance",
    "use-hot": "POST /credits/use, one hot account",
    "use-spread": "POST /credits/use, spread",
    "webhook": "POST /webhooks/stripe, distinct events",
    "webhook-redelivery": "POST /webhooks/stripe, the same events again",
    "mix-login": "mix: POST /auth/login",
    "mix-read": "mix: reads during logins",
    "scaleout-read": "scale-out: GET /credits/balance",
    "scaleout-use-hot": "scale-out: POST /credits/use, hot",
}
TOPOLOGY = {
    "direct": "1 instance, direct",
    "nginx-1": "1 instance behind nginx",
    "nginx-2": "2 instances behind nginx",
}
SPENDING = ("use-hot", "use-spread", "scaleout-use-hot")


def name_of(r):
    """The scenario's name in tables, with the scale-out topology when there is one."""
    name = NAMES.get(r["scenario"], r["scenario"])
    variant = r.get("variant", "")
    return f"{name} ({TOPOLOGY.get(variant, variant)})" if variant else name


def run_key(r):
    """Sort and match key of a run: backend, scenario, variant, connections."""
    s, v = r["scenario"], r.get("variant", "")
    return (r["backend"] != "postgres", ORDER.index(s) if s in ORDER else 99,
            VARIANTS.index(v) if v in VARIANTS else 99, int(r["conc"]))


def num(v, default=0.0):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def load(run_dir):
    meta = {}
    for line in (run_dir / "meta.tsv").read_text().splitlines():
        key, _, value = line.partition("\t")
        meta[key] = value
    records = []
    raw = run_dir / "raw.txt"
    for line in raw.read_text().splitlines() if raw.exists() else []:
        kind, *fields = line.split()
        rec = {"kind": kind}
        for f in fields:
            k, _, v = f.partition("=")
            rec[k] = v
        records.append(rec)
    return meta, records


def rps_fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def ms_fmt(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def errors(r):
    return sum(int(num(r.get(k))) for k in
               ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def yes(ok):
    return "yes" if ok else "**NO**"
