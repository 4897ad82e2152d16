"""Webhook secrets and the ``Sentinel-Signature`` header (Stripe-style, so receivers can reject replays).

``Sentinel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the timestamp is
signed with the body, so a receiver that checks the signature and rejects old timestamps rejects a
captured request replayed later. The HMAC key is the secret string as UTF-8 (``whsec_...`` included).
While a rotated secret is in its grace period the header carries a ``v1=`` for each secret, the
current one first: a receiver accepts the request when any of them matches the secret it knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Sentinel-Signature"
EVENT_ID_HEADER = "Sentinel-Event-Id"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes, base64url without padding."""
    return SECRET_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def signature_header(signing_secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value signing ``body`` at ``timestamp`` with each of ``signing_secrets``."""
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts.extend(
        "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in signing_secrets
    )
    return ",".join(parts)
