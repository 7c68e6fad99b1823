#!/usr/bin/env python3
"""webhook_receiver.py — a real HTTP receiver of poll-fanout's webhooks, for the tests.

  webhook_receiver.py --port N --out FILE [--secret S] [--fail-first N] [--hang SECONDS]
                      [--hang-file PATH] [--tls-cert FILE --tls-key FILE]

Appends one JSON line per request to FILE (flushed before answering):
{"at": unix time, "path", "delivery", "webhook", "signature", "sig_ok", "body", "status"}.
sig_ok is this receiver's own check of Poll-Signature with Python's hmac (not the
daemon's code).  --fail-first N answers 500 to the first N arrivals of each
Poll-Delivery; --hang S sleeps S seconds before answering (only while PATH
exists, with --hang-file); otherwise 200.  With --tls-cert, https.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--secret", default="")
ap.add_argument("--fail-first", type=int, default=0)
ap.add_argument("--hang", type=float, default=0)
ap.add_argument("--hang-file", default="")
ap.add_argument("--tls-cert", default="")
ap.add_argument("--tls-key", default="")
args = ap.parse_args()

lock = threading.Lock()
seen = {}
count = [0]
out = open(args.out, "a", buffering=1)


def verify(secret, header, body):
    """The receiver's side of the SPEC: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300
    except (KeyError, ValueError):
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        delivery = self.headers.get("Poll-Delivery", "")
        with lock:
            count[0] += 1
            seen[delivery] = seen.get(delivery, 0) + 1
            arrival = seen[delivery]
        status = 500 if arrival <= args.fail_first else 200
        rec = {"at": time.time(), "path": self.path, "delivery": delivery,
               "webhook": self.headers.get("Poll-Webhook-Id", ""),
               "signature": self.headers.get("Poll-Signature", ""),
               "content_type": self.headers.get("Content-Type", ""),
               "sig_ok": verify(args.secret, self.headers.get("Poll-Signature", ""), body),
               "body": body.decode("utf-8", "replace"), "status": status}
        hang = args.hang if (not args.hang_file or os.path.exists(args.hang_file)) else 0
        rec["hang"] = hang
        with lock:
            out.write(json.dumps(rec) + "\n")
        if hang:
            time.sleep(hang)
        try:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
if args.tls_cert:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("listening", args.port, flush=True)
sys.stdout.flush()
server.serve_forever()
