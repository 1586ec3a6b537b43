#!/usr/bin/env python3
"""Load for the fault scripts: one thread per account spends credits with unique
reference_ids; a 5xx or a dropped request is retried with the SAME reference_id until it
is answered 200 (the client a careful integrator writes). Stops when the file STOP exists.

Writes a JSON report: the acknowledged references, every status seen, every 500, and the
time ranges without any 200 (the unavailability window).

usage: client.py BASE_URL ACCOUNTS_JSON STOP_FILE REPORT_JSON
ACCOUNTS_JSON: [{"id": 1, "access": "token"}, ...]
"""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

base, accounts_file, stop_file, report_file = sys.argv[1:5]
url = urllib.parse.urlparse(base)
accounts = json.load(open(accounts_file))
lock = threading.Lock()
acked = []          # [user_id, reference_id, t]
statuses = {}       # status -> count ("dropped" for no answer)
errors_500 = []
ok_times = []       # times of every 200


def record(status):
    with lock:
        statuses[str(status)] = statuses.get(str(status), 0) + 1


def spend(account):
    conn = None
    n = 0
    while not os.path.exists(stop_file):
        n += 1
        reference = f"fault-{account['id']}-{n}-{uuid.uuid4().hex[:8]}"
        body = json.dumps({"amount": 1, "reference_id": reference})
        while True:  # the same reference until it is answered 200
            if os.path.exists(stop_file) and n > 1:
                # Unacknowledged at the stop: not counted either way.
                return
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
                conn.request("POST", "/credits/use", body, {
                    "Authorization": f"Bearer {account['access']}",
                    "Content-Type": "application/json",
                })
                response = conn.getresponse()
                text = response.read()
                status = response.status
            except Exception:
                conn = None
                record("dropped")
                time.sleep(0.05)
                continue
            record(status)
            if status == 200:
                now = time.time()
                with lock:
                    acked.append([account["id"], reference, now])
                    ok_times.append(now)
                break
            if status >= 500:
                if status == 500:
                    with lock:
                        errors_500.append(text.decode(errors="replace")[:300])
                time.sleep(0.1)
                continue
            # 4xx: a broken test, not a fault; stop this account and report it.
            with lock:
                statuses.setdefault("unexpected", []).append(
                    [status, text.decode(errors="replace")[:300]])
            return


threads = [threading.Thread(target=spend, args=(a,)) for a in accounts]
for t in threads:
    t.start()
for t in threads:
    t.join()

ok_times.sort()
gaps = sorted(
    ([b - a, a, b] for a, b in zip(ok_times, ok_times[1:])), reverse=True)[:3]
json.dump({
    "acknowledged": acked,
    "statuses": statuses,
    "errors_500": errors_500,
    "longest_gaps": gaps,
}, open(report_file, "w"))
