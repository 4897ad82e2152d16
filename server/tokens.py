"""Bearer JWT validation (PyJWT): who a token says the caller is, and whether to believe it.

A token is accepted when:

- its ``alg`` header is in ``auth_algorithms`` (never ``none``; the header never widens the list) and,
  with a JWKS, is the algorithm of the key its ``kid`` names (PyJWT binds a JWK to its algorithm too);
- its signature verifies with that key;
- it has ``exp``, ``sub``, ``iss`` and ``aud``; ``iss`` is ``auth_issuer``, ``aud`` names
  ``auth_audience``; ``exp`` and ``nbf`` (when present) hold with ``auth_leeway_s`` of clock skew;
- its ``roles`` claim, when present, is a list of strings (the caller's roles; absent: no role).

A refusal carries a short fixed reason ("token expired", "audience not accepted", ...): never PyJWT's own
message, never any part of the token or of a key.

Checked tokens are remembered (token -> caller, until the token expires, least recently used dropped
past ``auth_token_cache_size``), so a client that sends the same token with every call pays for one
signature check, not one per call. The cache is emptied whenever the signing keys change, so a key
removed from the JWKS stops vouching for its tokens at the next refresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import jwt

from sentinel.config import Settings
from sentinel.server.identity import Caller
from sentinel.server.signing_keys import SigningKeys, UnknownSigningKey

ROLES_CLAIM = "roles"
REQUIRED_CLAIMS = ["exp", "sub", "iss", "aud"]


class TokenRefused(Exception):
    """The token is not accepted; ``str()`` is the reason, safe to send to the caller and to log."""


# PyJWT's exceptions -> the reason given; subclasses before their bases (InvalidSignatureError is a
# DecodeError, all are InvalidTokenError).
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "audience not accepted"),
    (jwt.InvalidIssuerError, "issuer not accepted"),
    (jwt.InvalidIssuedAtError, "token issued in the future"),
    (jwt.exceptions.InvalidSubjectError, "the sub claim must be a string"),
    (jwt.InvalidAlgorithmError, "signing algorithm not accepted"),
    (jwt.InvalidSignatureError, "signature does not verify"),
    (jwt.InvalidKeyError, "signing key cannot verify this token"),
    (jwt.DecodeError, "malformed token"),
)


class _Checked(NamedTuple):
    caller: Caller
    expires_at: float  # exp + leeway, seconds since the epoch


class TokenValidator:
    """Checks bearer tokens against the settings' issuer, audience, algorithms and keys."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        leeway_s: float,
        cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._leeway_s = leeway_s
        self._cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, _Checked] = OrderedDict()
        self._generation = keys.generation  # of the keys that checked the cached tokens

    @classmethod
    def from_settings(cls, settings: Settings, keys: SigningKeys) -> TokenValidator:
        assert settings.auth_issuer and settings.auth_audience  # required with auth_mode = jwt
        return cls(
            keys,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            algorithms=settings.auth_algorithms,
            leeway_s=settings.auth_leeway_s,
            cache_size=settings.auth_token_cache_size,
        )

    async def caller(self, token: str) -> Caller:
        """The caller the token identifies; TokenRefused (with the reason) when it is not accepted."""
        generation = self._keys.generation
        if generation != self._generation:
            self._cache.clear()
            self._generation = generation
        checked = self._cache.get(token)
        if checked is not None:
            if self._clock() < checked.expires_at:
                self._cache.move_to_end(token)
                return checked.caller
            del self._cache[token]
        checked = await self._check(token)
        if self._cache_size and self._keys.generation == generation:  # not if the keys changed meanwhile
            if len(self._cache) >= self._cache_size:
                self._cache.popitem(last=False)
            self._cache[token] = checked
        return checked.caller

    async def _check(self, token: str) -> _Checked:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenRefused("signing algorithm not accepted")
        kid = header.get("kid")
        try:
            key = await self._keys.key_for(kid if isinstance(kid, str) else None)
        except UnknownSigningKey as exc:
            raise TokenRefused(str(exc)) from None
        if isinstance(key, jwt.PyJWK) and key.algorithm_name != algorithm:
            raise TokenRefused("signing algorithm not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"token has no {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(_reason(exc)) from None
        return _Checked(_caller(claims), float(claims["exp"]) + self._leeway_s)


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "token not accepted"


def _caller(claims: dict[str, object]) -> Caller:
    subject, roles = claims["sub"], claims.get(ROLES_CLAIM, [])
    if not isinstance(subject, str) or not subject:
        raise TokenRefused("token has no sub claim")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise TokenRefused(f"the {ROLES_CLAIM} claim must be a list of strings")
    return Caller(subject=subject, roles=frozenset(roles), source="jwt")
