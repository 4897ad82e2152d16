"""The webhook receiver ``sentinel bench events`` subscribes to every decision: a fast aiohttp server.

It does what a real receiver must (checks ``Sentinel-Signature`` over timestamp and body with the secret,
rejects stale timestamps) and nothing more, so the benchmark measures the dispatcher rather than the
receiver. The signature is recomputed with events/signing.py, the code that signs it. Each accepted
event's id goes to stdout, one line each, flushed, like docs/examples/webhook_receiver.py prints it: the
benchmark counts the distinct ids to check that every decision's event arrived.

Run: ``SENTINEL_WEBHOOK_SECRET=whsec_... python -m sentinel.bench.webhook_receiver PORT``
"""

from __future__ import annotations

import hmac
import os
import sys
import time

from aiohttp import web

from sentinel.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header

TOLERANCE_S = 300  # the example receiver's replay window


def verified(header: str, body: bytes, secret: str, now: float) -> bool:
    """True when one ``v1=`` of the header is the body's signature at the header's (recent) timestamp."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or abs(now - int(timestamps[0])) > TOLERANCE_S:
        return False
    expected = signature_header([secret], int(timestamps[0]), body).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")


def application(secret: str) -> web.Application:
    """POST any path: 204 for a correctly signed event (its id printed), 400 otherwise."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verified(request.headers.get(SIGNATURE_HEADER, ""), body, secret, time.time()):
            return web.Response(status=400)
        print(request.headers.get(EVENT_ID_HEADER, "-"), flush=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    web.run_app(
        application(os.environ["SENTINEL_WEBHOOK_SECRET"]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
