"""``sentinel token issue|keygen``: signing keys and bearer tokens for operators and local use.

``keygen`` makes a key pair (RS256 or ES256) under a new kid: the private key as a PEM file readable by
its owner only, the public key added to ``jwks.json`` in the same directory (created when missing,
replaced atomically so a server reading it never sees half a file). Rotation is keygen again: the JWKS then
holds both keys, servers pick the new one up on its first token (``auth_jwks_file``), and the old key is
removed from the file once its tokens have expired.

``issue`` prints one signed token to stdout and nothing else there, so it can be captured
(``TOKEN=$(sentinel token issue ...)``); the issuer and audience default to the settings'. With an
identity provider in place, tokens come from it instead: this is for operators, tests and local runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sentinel.config import ConfigError, Settings
from sentinel.server.commands import settings_from_args
from sentinel.server.signing_keys import MIN_SECRET_BYTES

JWKS_FILE = "jwks.json"
MAX_TTL_S = 366 * 86_400
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def parse_duration(text: str) -> int:
    """Seconds of ``30s``, ``15m``, ``12h`` or ``7d``; ValueError otherwise or beyond a year."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 12h or 7d")
    seconds = int(match[1]) * _UNIT_S[match[2]]
    if not 0 < seconds <= MAX_TTL_S:
        raise ValueError(f"{text!r}: a token lives more than 0 seconds and at most a year")
    return seconds


def issue_token(
    *,
    subject: str,
    roles: list[str],
    ttl_s: int,
    issuer: str,
    audience: str,
    key: Any,
    algorithm: str,
    kid: str | None,
    now: float | None = None,
) -> str:
    """A signed JWT with the claims the server requires (iss, aud, sub, exp) and ``roles``."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": roles,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def _signing_key(args: argparse.Namespace) -> tuple[Any, str]:
    """The private key (or HS256 secret) and its algorithm."""
    if args.secret_file:
        secret = Path(args.secret_file).read_bytes().rstrip(b"\r\n")
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"--secret-file: the secret must be at least {MIN_SECRET_BYTES} bytes")
        return secret, "HS256"
    key = serialization.load_pem_private_key(Path(args.key).read_bytes(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ConfigError("--key: an RSA or P-256 EC private key is needed (RS256 or ES256)")


def _issue(args: argparse.Namespace) -> int:
    settings: Settings = settings_from_args(args)
    issuer = args.issuer or settings.auth_issuer
    audience = args.audience or settings.auth_audience
    if not issuer or not audience:
        raise ConfigError("give --issuer and --audience, or set auth_issuer and auth_audience")
    unknown = sorted(set(args.role) - set(Settings.AUTH_ROLES))
    if unknown:
        raise ConfigError(f"--role: unknown {', '.join(unknown)} (roles: {', '.join(Settings.AUTH_ROLES)})")
    if bool(args.key) == bool(args.secret_file):
        raise ConfigError("give --key (with --kid) or --secret-file")
    if args.key and not args.kid:
        raise ConfigError("--key needs --kid: the server finds the key in its JWKS by kid")
    try:
        ttl_s = parse_duration(args.ttl)
    except ValueError as exc:
        raise ConfigError(f"--ttl: {exc}") from None
    key, algorithm = _signing_key(args)
    token = issue_token(
        subject=args.subject,
        roles=sorted(set(args.role)),
        ttl_s=ttl_s,
        issuer=issuer,
        audience=audience,
        key=key,
        algorithm=algorithm,
        kid=args.kid,
    )
    print(token)
    return 0


def public_jwk(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    """The public half of ``private_key`` as a JWK with its kid, algorithm and use."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        algorithm = "RS256"
    else:
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        algorithm = "ES256"
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def add_key(directory: Path, algorithm: str, kid: str) -> tuple[Path, Path]:
    """A new key pair under ``kid``: its private key file and the JWKS it was added to."""
    directory.mkdir(parents=True, exist_ok=True)
    jwks_path = directory / JWKS_FILE
    document: dict[str, Any] = json.loads(jwks_path.read_text()) if jwks_path.exists() else {"keys": []}
    if any(key.get("kid") == kid for key in document["keys"]):
        raise ConfigError(f"{jwks_path} already holds a key {kid!r}: choose another --kid")
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65_537, key_size=3072)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = directory / f"{kid}.private.pem"
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    document["keys"].append(public_jwk(private_key, kid))
    staged = jwks_path.with_name(f".{JWKS_FILE}.{os.getpid()}")
    staged.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(staged, jwks_path)
    return key_path, jwks_path


def _keygen(args: argparse.Namespace) -> int:
    kid = args.kid or f"{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", kid):
        raise ConfigError("--kid: 1 to 64 of A-Z a-z 0-9 . _ -")
    key_path, jwks_path = add_key(Path(args.out), args.algorithm, kid)
    print(f"kid {kid}: private key {key_path} (keep it secret), public key added to {jwks_path}")
    print(f"issue tokens with: sentinel token issue --key {key_path} --kid {kid} --role ROLE --subject NAME")
    return 0


def register(subparsers: Any) -> None:
    """Add ``sentinel token issue|keygen``."""
    parser = subparsers.add_parser("token", help="signing keys and bearer tokens (auth_mode = jwt)")
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)

    issue = actions.add_parser("issue", help="print a signed bearer token (stdout only)")
    issue.add_argument(
        "--role", action="append", required=True, help=f"a role to grant ({', '.join(Settings.AUTH_ROLES)})"
    )
    issue.add_argument("--subject", required=True, help="who the token identifies (its sub claim)")
    issue.add_argument("--ttl", default="15m", help="lifetime: 30s, 15m, 12h, 7d (default 15m)")
    issue.add_argument("--key", help="PEM private key to sign with (RS256 or ES256); needs --kid")
    issue.add_argument("--kid", help="the key's id in the server's JWKS")
    issue.add_argument("--secret-file", help="file with the shared HS256 secret instead of --key")
    issue.add_argument("--issuer", help="iss claim (default: the auth_issuer setting)")
    issue.add_argument("--audience", help="aud claim (default: the auth_audience setting)")
    issue.set_defaults(handler=_issue, host=None, port=None, workers=None)

    keygen = actions.add_parser("keygen", help="make a key pair and add its public key to DIR/jwks.json")
    keygen.add_argument("--out", required=True, help="directory of the keys and jwks.json")
    keygen.add_argument("--kid", help="the new key's id (default: today's date and a random suffix)")
    keygen.add_argument("--algorithm", choices=("RS256", "ES256"), default="RS256", help="default RS256")
    keygen.set_defaults(handler=_keygen)
