#!/usr/bin/env python3
"""A real HTTP server for the webhook tests (Python's http.server), on loopback.

    webhook_server.py RECORD_FILE [--fail-first N] [--delay SECONDS]

Prints its port on the first line of stdout. Every POST is appended to RECORD_FILE as a
JSON line {"attempt", "idempotency_key", "content_type", "body"}; the first N POSTs get
503, the rest 200. --delay sleeps before answering (for timeout tests).
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("record")
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    lock = threading.Lock()
    count = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                count["n"] += 1
                attempt = count["n"]
                with open(args.record, "a") as f:
                    f.write(json.dumps({
                        "attempt": attempt,
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(body),
                    }) + "\n")
            if args.delay:
                time.sleep(args.delay)
            status = 503 if attempt <= args.fail_first else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
