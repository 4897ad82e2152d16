"""The keys that token signatures are checked with: a JWKS (file or URL) with rotation, or an HS256 secret.

A JWKS holds public keys, each under its ``kid``; a token names the key it was signed with in its header.
Keys rotate by publishing the new key beside the old one, issuing tokens with the new kid, and removing
the old key once its tokens have expired. So the set is read again:

- on a kid it does not hold: a file when it has changed since it was read (one ``stat``, so each new key is
  usable from its first token), a URL at most once per ``auth_jwks_min_refresh_s`` (a flood of tokens
  with made-up kids costs the JWKS server one request per interval, not one per call);
- every ``auth_jwks_refresh_s`` anyway, so that a removed key stops being accepted.

A set that cannot be read again (a file half written, the URL down) keeps the keys it had and logs
``jwks_refresh_failed``; at start-up it is a configuration error. ``generation`` counts the changes, so
the token cache can forget tokens checked with keys that may be gone.

HS256 (``auth_hs256_secret_file``) is for a single trusted issuer that shares a secret with the server;
the settings allow it only alone, so that no public key is ever used as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import jwt
import structlog

from sentinel.config import ConfigError, Settings

log = structlog.get_logger("sentinel.auth")

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
JWKS_FETCH_TIMEOUT_S = 5.0


class UnknownSigningKey(Exception):
    """No key for the token; ``str()`` is the refusal's reason (it never contains key material)."""


class SigningKeys(Protocol):
    """Finds the key a token's signature is checked with."""

    generation: int  # changes whenever the keys do

    async def key_for(self, kid: str | None) -> jwt.PyJWK | bytes:
        """The key named ``kid``; UnknownSigningKey when there is none."""
        ...


class SharedSecret:
    """The HS256 secret of ``auth_hs256_secret_file`` (trailing newline stripped)."""

    generation = 0

    def __init__(self, path: Path) -> None:
        try:
            secret = path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigError(f"auth_hs256_secret_file {str(path)!r}: {exc.strerror}") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"auth_hs256_secret_file {str(path)!r}: the secret must be at least {MIN_SECRET_BYTES} bytes"
            )
        self._secret = secret

    async def key_for(self, kid: str | None) -> jwt.PyJWK | bytes:
        return self._secret


def parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by kid (keys without a kid, or for encryption, are skipped);
    ValueError when it holds none."""
    if not isinstance(document, dict):
        raise ValueError("a JWKS is a JSON object with a keys list")
    keys: dict[str, jwt.PyJWK] = {}
    for key in jwt.PyJWKSet.from_dict(document).keys:
        if key.key_id and key.public_key_use in ("sig", None):
            keys[key.key_id] = key
    if not keys:
        raise ValueError("the JWKS holds no signing key with a kid")
    return keys


class JwksSource(Protocol):
    """Where a JWKS document comes from."""

    min_interval_s: float  # least time between two reads on unknown kids
    blocking: bool  # read() blocks (network): run it in a thread

    def describe(self) -> str:
        """The setting and its value, for messages."""
        ...

    def read(self) -> object | None:
        """The JWKS document (parsed JSON); None when it has not changed since the last read."""
        ...


class JwksFile:
    """A JWKS file, read again only when it has changed (its inode, size or mtime)."""

    min_interval_s = 0.0  # a stat per unknown kid costs nothing worth limiting
    blocking = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None

    def describe(self) -> str:
        return f"auth_jwks_file {str(self.path)!r}"

    def read(self) -> object | None:
        stat = self.path.stat()
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen == self._seen:
            return None
        document = json.loads(self.path.read_text())
        self._seen = seen
        return document


class JwksUrl:
    """A JWKS served over http(s)."""

    blocking = True

    def __init__(self, url: str, min_interval_s: float) -> None:
        self.url = url
        self.min_interval_s = min_interval_s
        # PyJWKClient only fetches here (http(s) only, no redirects, a timeout); caching and rotation are
        # JwksKeys' so that a file and a URL behave alike.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT_S)

    def describe(self) -> str:
        return f"auth_jwks_url {self.url!r}"

    def read(self) -> object | None:
        return self._client.fetch_data()


_READ_ERRORS = (OSError, ValueError, jwt.PyJWTError)  # ValueError includes JSONDecodeError


class JwksKeys:
    """The keys of a JWKS source by kid, read again on an unknown kid and every ``refresh_s``."""

    def __init__(
        self, source: JwksSource, *, refresh_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Reads the source once, blocking (at start-up: a missing or bad JWKS is a ConfigError)."""
        self._source = source
        self._refresh_s = refresh_s
        self._clock = clock
        try:
            self._document = source.read()
            self._keys = parse_jwks(self._document)
        except _READ_ERRORS as exc:
            raise ConfigError(f"{source.describe()}: cannot read the signing keys: {exc}") from None
        self._read_at = clock()
        self._lock = asyncio.Lock()
        self.generation = 0

    async def key_for(self, kid: str | None) -> jwt.PyJWK | bytes:
        if not kid:
            raise UnknownSigningKey("token names no signing key (kid)")
        now = self._clock()
        if now - self._read_at >= self._refresh_s:
            await self._read_again(now, every=self._refresh_s)
        key = self._keys.get(kid)
        if key is None:
            await self._read_again(now, every=self._source.min_interval_s)
            key = self._keys.get(kid)
        if key is None:
            raise UnknownSigningKey("unknown signing key")
        return key

    async def _read_again(self, now: float, every: float) -> None:
        """Read the source unless it was read less than ``every`` seconds before ``now`` (a concurrent
        call may just have)."""
        async with self._lock:
            if now - self._read_at < every:
                return
            self._read_at = self._clock()
            source = self._source
            try:
                document = await asyncio.to_thread(source.read) if source.blocking else source.read()
                if document is None or document == self._document:
                    return
                keys = parse_jwks(document)
            except _READ_ERRORS as exc:
                log.warning("jwks_refresh_failed", source=source.describe(), error=str(exc))
                return
            log.info("jwks_changed", source=source.describe(), kids=sorted(keys))
            self._document, self._keys = document, keys
            self.generation += 1


def signing_keys(settings: Settings) -> SigningKeys:
    """The key source the settings configure (they were validated: exactly one applies)."""
    if settings.auth_hs256_secret_file is not None:
        return SharedSecret(settings.auth_hs256_secret_file)
    source: JwksSource
    if settings.auth_jwks_file is not None:
        source = JwksFile(settings.auth_jwks_file)
    else:
        assert settings.auth_jwks_url is not None
        source = JwksUrl(settings.auth_jwks_url, settings.auth_jwks_min_refresh_s)
    return JwksKeys(source, refresh_s=settings.auth_jwks_refresh_s)
