"""A SentinelStream webhook receiver: checks Sentinel-Signature, rejects old timestamps (Python stdlib only).

Run:  SENTINEL_WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8080
Answer 2xx only once the event is safely handled; anything else makes SentinelStream retry it later.
Events can arrive more than once (at least once delivery): deduplicate on the event id.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["SENTINEL_WEBHOOK_SECRET"].encode()
TOLERANCE_S = 300  # reject requests signed longer ago than this (replays of captured requests)


def verify(header: str, body: bytes, now: float) -> bool:
    """True when one v1 signature of the header matches the body signed at its timestamp t."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    if abs(now - int(timestamps[0])) > TOLERANCE_S:
        return False
    expected = hmac.new(SECRET, timestamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verify(self.headers.get("Sentinel-Signature", ""), body, time.time()):
            self.send_response(400)  # not from SentinelStream, tampered with, or too old
            self.end_headers()
            return
        event = json.loads(body)
        print(event["id"], event["type"], event["data"]["account_id"], event["data"]["outcome"], flush=True)
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
