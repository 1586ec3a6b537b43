#!/usr/bin/env python3
"""Signed Stripe events for the webhook benchmark (bench/run.sh, scenario `webhook`).

    stripe_events.py generate OUT COUNT TAG USER_IDS_FILE PLAN_ID   (secret: $WEBHOOK_SECRET)
    stripe_events.py resign IN OUT EVENT_IDS_FILE                   (secret: $WEBHOOK_SECRET)

generate: COUNT distinct `checkout.session.completed` events (mode payment, paid) of a
one-time plan, as Stripe sends them after a Checkout the service created: event ids
evt_<TAG>_<n>, sessions cs_<TAG>_<n>, payment intents pi_<TAG>_<n>; the buyers cycle over
the user ids of the file (client_reference_id and metadata.user_id, as the service writes
them into the session; customer cus_bench_<user id>, one per user as Stripe keeps it).

resign: the lines of IN whose event id is in EVENT_IDS_FILE (one per line), the same bodies
signed again with the current time: a redelivery, as Stripe makes it.

Each output line is `<Stripe-Signature header>\\t<raw JSON body>`, signed like Stripe:
t=<unix now>,v1=hex(HMAC-SHA256(secret, "<t>.<body>")). The service accepts a signature for
300 s, so the file is written right before its run. TAG must be made of [a-z0-9] so the ids
are easy to select with SQL.
"""

import hashlib
import hmac
import json
import os
import re
import sys
import time

API_VERSION = "2024-06-20"  # the service's pinned STRIPE_API_VERSION


def secret():
    value = os.environ.get("WEBHOOK_SECRET", "")
    if not value:
        sys.exit("WEBHOOK_SECRET is not set")
    return value.encode()


def sign(key, t, body):
    mac = hmac.new(key, f"{t}.".encode() + body.encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(tag, n, user_id, plan_id, created):
    session = {
        "id": f"cs_{tag}_{n:07d}", "object": "checkout.session", "mode": "payment",
        "payment_status": "paid", "status": "complete", "customer": f"cus_bench_{user_id}",
        "client_reference_id": str(user_id), "payment_intent": f"pi_{tag}_{n:07d}",
        "amount_total": 1000, "currency": "usd",
        "metadata": {"user_id": str(user_id), "plan_id": plan_id},
    }
    return {
        "id": f"evt_{tag}_{n:07d}", "object": "event", "api_version": API_VERSION,
        "created": created, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed", "data": {"object": session},
    }


def generate(out, count, tag, ids_file, plan_id):
    if not re.fullmatch(r"[a-z0-9]+", tag):
        sys.exit(f"TAG must be [a-z0-9]+, got {tag!r}")
    with open(ids_file) as f:
        users = [line.strip() for line in f if line.strip()]
    if not users or not all(u.isdigit() for u in users):
        sys.exit(f"{ids_file}: expected one numeric user id per line")
    key, now = secret(), int(time.time())
    with open(out, "w") as f:
        for n in range(1, count + 1):
            body = json.dumps(event(tag, n, int(users[(n - 1) % len(users)]), plan_id, now),
                              separators=(",", ":"))
            f.write(f"{sign(key, now, body)}\t{body}\n")


def resign(src, out, ids_file):
    with open(ids_file) as f:
        wanted = {line.strip() for line in f if line.strip()}
    key, now, kept = secret(), int(time.time()), 0
    with open(src) as lines, open(out, "w") as f:
        for line in lines:
            _, _, body = line.rstrip("\n").partition("\t")
            if json.loads(body)["id"] in wanted:
                f.write(f"{sign(key, now, body)}\t{body}\n")
                kept += 1
    print(kept)


def main():
    args = sys.argv[1:]
    if len(args) == 6 and args[0] == "generate":
        generate(args[1], int(args[2]), args[3], args[4], args[5])
    elif len(args) == 4 and args[0] == "resign":
        resign(args[1], args[2], args[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
