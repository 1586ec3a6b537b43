#!/usr/bin/env python3
"""Webhook delivery throughput (issue 23; target >= 1,000 events/s to a local receiver).

Against a running service started with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true (and, for the
burst to be produced quickly, internal API keys): starts a minimal local receiver that
answers 204 and counts, registers an endpoint for `credits.transaction`, produces N events
with POST /credits/add (one ledger row, so one event, each), then reports events/s from
the moment the receiver, which held its first requests while the events were produced,
lets them through, to the last delivery. Keep N small enough to be produced in under 9 s.
Not part of run.sh's full run.

    BASE=http://127.0.0.1:8080 ADMIN_TOKEN=... API_KEY=... USER_ID=1 N=3000 bench/webhooks.py
"""
import json, os, threading, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE, ADMIN, KEY = os.environ["BASE"], os.environ["ADMIN_TOKEN"], os.environ["API_KEY"]
USER_ID, N = int(os.environ.get("USER_ID", "1")), int(os.environ.get("N", "5000"))
seen, first, last, lock = set(), [None], [None], threading.Lock()
# Closed while the events are produced: the first deliveries wait (at most 9 s, under the
# service's 10 s send timeout) and the rest queue up in the database, so the rate measured
# from opening it is the delivery workers', not how fast this script produces events.
gate = threading.Event()


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        gate.wait(9)
        with lock:
            now = time.monotonic()
            first[0] = first[0] or now
            last[0] = now
            seen.add(self.headers.get("webhook-id"))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()


def call(path, body, headers):
    req = urllib.request.Request(BASE + path, json.dumps(body).encode(),
                                 {"content-type": "application/json", **headers})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


class Server(ThreadingHTTPServer):
    # The default listen backlog (5) refuses most of 64 connections opened at once: the
    # refused deliveries wait for their retry (5 s) and the receiver, not the service, is
    # what gets measured.
    request_queue_size = 1024
    daemon_threads = True


server = Server(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/hook"
endpoint = call("/admin/webhooks", {"url": url, "events": ["credits.transaction"]},
                {"authorization": f"Bearer {ADMIN}"})
start = time.monotonic()
with ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda i: call("/credits/add", {"amount": 0.01, "user_id": USER_ID},
                                 {"x-api-key": KEY}), range(N)))
produced = time.monotonic() - start
opened = time.monotonic()
gate.set()
while len(seen) < N and time.monotonic() - (last[0] or opened) < 30:
    time.sleep(0.05)
span = (last[0] or opened) - opened
print(f"produced {N} events in {produced:.2f}s ({N / produced:.0f}/s) while the receiver held "
      f"its first requests; from releasing it, delivered {len(seen)} in {span:.2f}s "
      f"({len(seen) / span if span else 0:.0f} events/s)")
