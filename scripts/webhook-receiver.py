#!/usr/bin/env python3
"""A local webhook receiver for trying Rekey out: prints every notification it receives.

Usage: python3 scripts/webhook-receiver.py [PORT]   (default 9000, listens on 127.0.0.1)

Each POST is answered 204 and printed as one line: the Standard Webhooks `webhook-id` header
and the JSON body. Standard library only. Not for production: it checks no signature (a real
receiver verifies `webhook-signature` with the signing secret `rekey destinations set` prints).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        try:
            shown = json.dumps(json.loads(body), separators=(",", ":"))
        except ValueError:
            shown = body.decode("utf-8", "replace")
        print(f"webhook-id={self.headers.get('webhook-id')} {shown}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass  # one line per notification is printed above; no access log


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
