"""A webhook receiver for the tests: every request is verified with the official
Standard Webhooks library against each secret listed (one per line) in SECRETS_FILE, and
recorded as a JSON line in LOG_FILE: {"id", "type", "verified_with": [secret indexes],
"tampered_verifies": bool, "attempt"}. BEHAVIOUR: "ok", "fail:N" (500 for the first N
attempts of each webhook-id), "hang" (never answers), "redirect" (302 to /elsewhere).
Prints the port it listens on, then serves until killed."""
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRETS_FILE, LOG_FILE, BEHAVIOUR = sys.argv[1], sys.argv[2], sys.argv[3]
lock = threading.Lock()
attempts = {}


def verify(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with open(SECRETS_FILE) as f:
            secrets = [s.strip() for s in f if s.strip()]
        verified = [i for i, s in enumerate(secrets) if verify(s, body, headers)]
        tampered = any(verify(s, body.replace("}", " }", 1), headers) for s in secrets)
        wid = headers.get("webhook-id", "")
        with lock:
            attempts[wid] = attempts.get(wid, 0) + 1
            n = attempts[wid]
            try:
                kind = json.loads(body).get("type")
            except Exception:
                kind = None
            with open(LOG_FILE, "a") as log:
                log.write(json.dumps({"id": wid, "type": kind, "verified_with": verified,
                                      "tampered_verifies": tampered, "attempt": n,
                                      "signatures": len(headers.get("webhook-signature", "").split(" ")),
                                      "body": body, "path": self.path}) + "\n")
        if BEHAVIOUR == "hang":
            time.sleep(3600)
            return
        if BEHAVIOUR == "redirect" and self.path != "/elsewhere":
            self.send_response(302)
            self.send_header("location", "/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if BEHAVIOUR.startswith("fail:") and n <= int(BEHAVIOUR[5:]):
            self.send_response(500)
        else:
            self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
