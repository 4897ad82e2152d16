"""X.509 for the gRPC port: checking the PEM files it serves, and a private CA for local use.

The server reads its certificate, key and client CA from files (settings ``tls_*``) at start-up and
again whenever they change; ``check_key_pair`` and ``check_ca_bundle`` turn a wrong file into a sentence
naming what is wrong, before gRPC would fail a handshake with nothing but a closed connection.

``ensure_dev_pki`` makes what ``sentinel dev serve --tls`` and the tests serve with: a CA that exists
only in that directory, a server certificate for localhost / 127.0.0.1 / ::1 and a client certificate,
all with ECDSA P-256 keys (fast to make, accepted by gRPC's BoringSSL and Node's OpenSSL alike). The
CA's own key is never written: when a certificate is missing or about to expire the whole set is made
again, so no key that could issue more certificates lies on the disk.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEV_CA_NAME = "SentinelStream development CA"
DEV_SERVER_NAME = "localhost"
DEV_CLIENT_NAME = "sentinel-dev-client"
DEV_VALIDITY = datetime.timedelta(days=365)
DEV_RENEW_BEFORE = datetime.timedelta(days=7)  # a set expiring sooner is made again


class CertificateError(ValueError):
    """A PEM file that cannot serve: unreadable, no certificate, or a key that does not match."""


@dataclass(frozen=True, slots=True)
class DevPki:
    """The files of a development PKI (PEM); a client needs ``ca_cert``, under mTLS also the client pair."""

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def check_key_pair(chain_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The leaf certificate of ``chain_pem``, checked to belong to the private key ``key_pem``."""
    certificates = _certificates(chain_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise CertificateError(f"not an unencrypted PEM private key ({exc})") from None
    if certificates[0].public_key() != key.public_key():
        raise CertificateError("the private key does not belong to the (first) certificate")
    return certificates[0]


def check_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    """The CA certificates of a PEM bundle (CertificateError when there is none)."""
    return _certificates(pem)


def _certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateError(f"no PEM certificate ({exc})") from None
    return certificates


def ensure_dev_pki(directory: Path) -> DevPki:
    """The development PKI in ``directory``: the existing one while it is complete and valid for more
    than ``DEV_RENEW_BEFORE``, else a new one (new CA included)."""
    pki = DevPki(
        directory=directory,
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    if not _usable(pki):
        _make(pki)
    return pki


def _usable(pki: DevPki) -> bool:
    files = (pki.ca_cert, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key)
    if not all(path.is_file() for path in files):
        return False
    renew_at = datetime.datetime.now(datetime.UTC) + DEV_RENEW_BEFORE
    try:
        return all(
            certificate.not_valid_after_utc > renew_at
            for path in (pki.ca_cert, pki.server_cert, pki.client_cert)
            for certificate in _certificates(path.read_bytes())
        )
    except CertificateError:
        return False


def _make(pki: DevPki) -> None:
    pki.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.directory, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEV_CA_NAME)])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificate_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key, server_cert = _leaf(
        ca_key,
        ca_cert,
        DEV_SERVER_NAME,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName(DEV_SERVER_NAME),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ],
        now,
    )
    client_key, client_cert = _leaf(
        ca_key,
        ca_cert,
        DEV_CLIENT_NAME,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [x509.DNSName(DEV_CLIENT_NAME)],
        now,
    )
    # Keys first, CA last: a reader that finds the CA of this set finds the rest of it too.
    _write(pki.server_key, _key_pem(server_key), private=True)
    _write(pki.client_key, _key_pem(client_key), private=True)
    _write(pki.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    _write(pki.client_cert, client_cert.public_bytes(serialization.Encoding.PEM))
    _write(pki.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        _builder(subject, ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(certificate_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate a little clock skew
        .not_valid_after(now + DEV_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, certificate_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not certificate_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_sign,
        crl_sign=certificate_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write whole or not at all (a temporary file renamed over the old one), keys readable by us only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)
