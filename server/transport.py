"""Transport security of the gRPC port: TLS from files re-read when they change, client certificates
(mTLS), and the start-up rule that ``sentinel serve`` does not run in the clear by accident.

Certificates are rotated by replacing the files (cert-manager, certbot, an operator's ``mv``): no restart,
no signal. gRPC asks ``ReloadingCertificates.fetch`` before every TLS handshake; it compares the files'
inode, size and modification time with the last ones it read and re-reads them only when one changed.
A changed set that does not make a valid pair (read between the writes of a certificate and its key,
a key of another certificate) is refused with one log line and the current certificate stays until the
files change again, so a half-done rotation never breaks new connections. Connections already open keep
the certificate of their handshake.

grpcio can either require a verified client certificate or not ask for one at all (it has no "request
but do not require"), so a client CA is only accepted together with ``require_client_cert`` (config.py).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from sentinel.certificates import CertificateError, check_ca_bundle, check_key_pair
from sentinel.config import ConfigError, Settings

log = structlog.get_logger("sentinel.transport")

FileSignature = tuple[int, int, int] | None  # (inode, size, mtime in ns); None: the file is missing


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The contents of the TLS files, checked to make a serving set."""

    key: bytes
    chain: bytes
    client_ca: bytes | None
    expires: datetime.datetime  # of the leaf certificate

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """What gRPC serves with: the key and chain, and the CA client certificates are checked against."""
        return grpc.ssl_server_certificate_configuration([(self.key, self.chain)], self.client_ca)


def read_tls_files(settings: Settings) -> TlsFiles:
    """The TLS files named by ``settings`` (tls_cert_file set), read and checked.

    CertificateError names the setting and the file that is wrong."""
    assert settings.tls_cert_file is not None and settings.tls_key_file is not None  # both or neither
    chain = _read("tls_cert_file", settings.tls_cert_file)
    key = _read("tls_key_file", settings.tls_key_file)
    try:
        leaf = check_key_pair(chain, key)
    except CertificateError as exc:
        raise CertificateError(
            f"tls_cert_file {settings.tls_cert_file} / tls_key_file {settings.tls_key_file}: {exc}"
        ) from None
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = _read("tls_client_ca_file", settings.tls_client_ca_file)
        try:
            check_ca_bundle(client_ca)
        except CertificateError as exc:
            raise CertificateError(f"tls_client_ca_file {settings.tls_client_ca_file}: {exc}") from None
    return TlsFiles(key=key, chain=chain, client_ca=client_ca, expires=leaf.not_valid_after_utc)


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"{setting} {path}: cannot read it ({exc.strerror})") from None


class ReloadingCertificates:
    """The certificate-configuration fetcher of ``grpc.dynamic_ssl_server_credentials`` (see the module)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        paths = (settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
        self._paths = [path for path in paths if path is not None]
        self._lock = threading.Lock()  # gRPC calls fetch from its own threads, possibly at once
        self._seen = self._signature()
        self.current = read_tls_files(settings)

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that start with the current files and follow their changes."""
        return grpc.dynamic_ssl_server_credentials(
            self.current.configuration(),
            self.fetch,
            require_client_authentication=self._settings.require_client_cert,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed and make a valid set; None: keep the current."""
        with self._lock:
            signature = self._signature()
            if signature == self._seen:
                return None
            self._seen = signature  # a refused set is not read again until the files change again
            try:
                files = read_tls_files(self._settings)
            except CertificateError as exc:
                log.warning(
                    "tls_reload_refused", reason=str(exc), serving_expires=self.current.expires.isoformat()
                )
                return None
            self.current = files
        log.info(
            "tls_reloaded", certificate=str(self._settings.tls_cert_file), expires=files.expires.isoformat()
        )
        return files.configuration()

    def _signature(self) -> list[FileSignature]:
        signature: list[FileSignature] = []
        for path in self._paths:
            try:
                status = os.stat(path)
            except OSError:
                signature.append(None)
            else:
                signature.append((status.st_ino, status.st_size, status.st_mtime_ns))
        return signature


def add_port(server: grpc.aio.Server, settings: Settings, port: int) -> int:
    """Open the gRPC port on ``server``: TLS (mTLS with require_client_cert) when tls_cert_file is set,
    else plaintext. Returns the bound port, 0 when it could not be bound."""
    address = f"{settings.host}:{port}"
    if settings.tls_cert_file is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, ReloadingCertificates(settings).credentials()))


def authentication_configured(settings: Settings) -> bool:
    """Whether callers must prove who they are: bearer JWTs (auth_mode = jwt) or, at the connection, a
    client certificate issued by the configured CA (require_client_cert)."""
    return settings.authentication_enabled or settings.require_client_cert


def announce(settings: Settings, **details: str) -> None:
    """Check the TLS files (ConfigError, exit status 2, before any worker starts) and write the server's
    first log line: how it is reached, a warning when without TLS or authentication. ``details``: more
    fields for the line (the development CA's files)."""
    fields: dict[str, str] = dict(details)
    if settings.tls_cert_file is None:
        transport = "plaintext (no TLS)"
    else:
        try:
            files = read_tls_files(settings)
        except CertificateError as exc:
            raise ConfigError(str(exc)) from None
        transport = "TLS, client certificate required" if settings.require_client_cert else "TLS"
        fields["certificate_expires"] = files.expires.isoformat()
    if settings.auth_mode != "none":
        authentication = f"bearer tokens required (auth_mode {settings.auth_mode})"
    elif settings.require_client_cert:
        authentication = "no tokens (auth_mode none)"
    else:
        authentication = "no authentication"
    secure = settings.tls_cert_file is not None and authentication_configured(settings)
    (log.info if secure else log.warning)(
        "transport_security", transport=f"{transport}, {authentication}", **fields
    )


def require_secure_transport(settings: Settings) -> None:
    """ConfigError unless ``settings`` have TLS and authentication, or ``insecure`` says to run without."""
    missing = []
    if settings.tls_cert_file is None:
        missing.append("TLS (tls_cert_file, tls_key_file)")
    if not authentication_configured(settings):
        missing.append("authentication (auth_mode = jwt, or require_client_cert)")
    if missing and not settings.insecure:
        raise ConfigError(
            f"refusing to serve without {' and without '.join(missing)}: configure them, or pass --insecure "
            "(setting `insecure`) to serve anyway on a network you trust"
        )


def require_loopback(host: str) -> None:
    """ConfigError unless ``host`` is a loopback address: the development server is for this machine."""
    name = host.strip("[]")
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"sentinel dev serve listens on loopback only, not on {host} (setting `host`, flag --host): use "
            "127.0.0.1, ::1 or localhost, or `sentinel serve` with TLS and authentication for other machines"
        )
