#!/usr/bin/env python3
"""A Stripe for the OpenAPI check: localstripe behind a small proxy that also answers the two
endpoints localstripe lacks (Checkout Sessions and billing portal sessions), the way the
billing tests' stand-in does (tests/api/billing/support.rs).

Usage: stripe_standin.py PORT UPSTREAM_URL     (prints nothing; serves until killed)
Standard library only.
"""

import http.server
import itertools
import json
import sys
import urllib.error
import urllib.request

COUNTER = itertools.count()
FORWARDED_HEADERS = ("authorization", "content-type", "idempotency-key", "stripe-version")


class StandIn(http.server.BaseHTTPRequestHandler):
    upstream = ""

    def log_message(self, *args):  # quiet: the check prints what matters
        pass

    def answer(self, status, body):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.body()
        path = self.path.split("?", 1)[0]
        if self.command == "POST" and path == "/v1/checkout/sessions":
            n = next(COUNTER)
            return self.answer(200, {"id": f"cs_test_{n}", "object": "checkout.session",
                                     "url": f"https://checkout.stripe.test/c/pay/cs_test_{n}"})
        if self.command == "POST" and path == "/v1/billing_portal/sessions":
            n = next(COUNTER)
            return self.answer(200, {"id": f"bps_{n}", "object": "billing_portal.session",
                                     "url": f"https://billing.stripe.test/p/session/bps_{n}"})
        request = urllib.request.Request(self.upstream + self.path, data=body or None,
                                         method=self.command)
        for name in FORWARDED_HEADERS:
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return self.answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            return self.answer(error.code, error.read())

    do_GET = do_POST = do_DELETE = handle_any


def main():
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    StandIn.upstream = upstream
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), StandIn)
    server.serve_forever()


if __name__ == "__main__":
    main()
