"""Webhook delivery: one signed HTTPS POST per event, and what a failure was caused by.

A 2xx answer is a delivery; anything else (another status, a timeout, a refused or broken connection)
is a failure with a cause for the metrics and the retry. Redirects are not followed: a receiver that
moved must be subscribed again, rather than the signed events following a Location anywhere. The
timeout covers the whole request, connection to last byte, so a receiver that hangs costs at most
``events_webhook_timeout_s``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from sentinel.events.model import OutboundEvent
from sentinel.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header

USER_AGENT = "SentinelStream-Webhooks/1"


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """Why one delivery failed: ``cause`` is a metric label, ``detail`` for the log and the outbox row."""

    cause: str  # timeout | connect | http_5xx | http_4xx | http_other | broker | invalid_url | missing_entry
    detail: str


class WebhookSender:
    """Posts events with one shared aiohttp session (connection reuse across deliveries)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": USER_AGENT}, raise_for_status=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, signing_secrets: Sequence[str], event: OutboundEvent
    ) -> DeliveryFailure | None:
        """Deliver ``event`` to ``url``; None when the receiver answered 2xx."""
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            SIGNATURE_HEADER: signature_header(signing_secrets, int(time.time()), event.body),
        }
        try:
            async with self._client().post(
                url, data=event.body, headers=headers, allow_redirects=False
            ) as reply:
                await reply.read()  # the whole answer within the timeout, then the connection is reusable
                status = reply.status
        except TimeoutError:
            return DeliveryFailure("timeout", "no answer within events_webhook_timeout_s")
        except aiohttp.ClientConnectorError as exc:
            return DeliveryFailure("connect", str(exc))
        except (aiohttp.ClientError, OSError) as exc:  # reset, disconnected mid-answer, bad answer
            return DeliveryFailure("connect", f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return None
        if status >= 500:
            return DeliveryFailure("http_5xx", f"HTTP {status}")
        if status >= 400:
            return DeliveryFailure("http_4xx", f"HTTP {status}")
        return DeliveryFailure("http_other", f"HTTP {status}")
