"""TLS for every nimbus listener and internal client.

Servers serve the certificate and key in --tls-cert/--tls-key through
grpc's dynamic server credentials: on each new handshake grpc asks
`_Files.fetch`, which stats the files and reads them again only when one
changed, so a rotated certificate (cert-manager rewrites the Secret's
files) is served without a restart; connections already open keep theirs.
With --tls-client-auth a server requires a client certificate signed by
--tls-ca (mTLS for internal links).

Clients verify the server against --tls-ca (no CA: plaintext, as in
development) and present --tls-cert/--tls-key when both are set (their
identity for mTLS). A client's credentials are read when its channel is
made.
"""

from __future__ import annotations

import dataclasses
import os
import threading

import grpc

from nimbus import log

_log = log.get("nimbus.rpc.tls")


@dataclasses.dataclass(frozen=True)
class ServerTLS:
    cert: str
    key: str
    ca: str = ""
    client_auth: bool = False


@dataclasses.dataclass(frozen=True)
class ClientTLS:
    ca: str
    cert: str = ""
    key: str = ""


def server(cfg) -> ServerTLS | None:
    """The server side of cfg, or None for plaintext."""
    if not (cfg.tls_cert or cfg.tls_key):
        if cfg.tls_client_auth:
            raise ValueError("--tls-client-auth needs --tls-cert and --tls-key")
        return None
    if not (cfg.tls_cert and cfg.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if cfg.tls_client_auth and not cfg.tls_ca:
        raise ValueError("--tls-client-auth needs --tls-ca (to verify client certificates)")
    return ServerTLS(cfg.tls_cert, cfg.tls_key, cfg.tls_ca, cfg.tls_client_auth)


def client(cfg) -> ClientTLS | None:
    """The client side of cfg, or None for plaintext."""
    if not cfg.tls_ca:
        return None
    both = cfg.tls_cert and cfg.tls_key
    return ClientTLS(cfg.tls_ca, cfg.tls_cert if both else "", cfg.tls_key if both else "")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _check_pair(key_pem: bytes, cert_pem: bytes) -> None:
    """ValueError unless the key is the certificate's (a rotation caught
    between writing the two files must not be served)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, raw)
            != key.public_key().public_bytes(serialization.Encoding.DER, raw)):
        raise ValueError("the TLS key does not belong to the certificate")


class _Files:
    """The server's certificate files and when they last changed."""

    def __init__(self, tls: ServerTLS):
        self.tls = tls
        self.paths = [p for p in (tls.cert, tls.key, tls.ca) if p]
        self._lock = threading.Lock()   # grpc calls fetch from its own threads
        self._stamp = None
        self.loads = 0

    def _stat(self):
        return tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size, os.stat(p).st_ino)
                     for p in self.paths)

    def load(self) -> grpc.ServerCertificateConfiguration:
        stamp = self._stat()
        key, cert = _read(self.tls.key), _read(self.tls.cert)
        _check_pair(key, cert)
        config = grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=_read(self.tls.ca) if self.tls.ca else None)
        self._stamp = stamp
        self.loads += 1
        return config

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None: keep serving what we have (grpc's contract)."""
        with self._lock:
            try:
                if self._stat() == self._stamp:
                    return None
                config = self.load()
            except (OSError, ValueError) as exc:
                # Mid-rotation (one file written, the other not yet), or gone:
                # keep the old certificate and try on the next handshake.
                _log.warning("cannot reload the TLS certificate; serving the old one",
                             error=f"{type(exc).__name__}: {exc}"[:300])
                return None
            _log.info("TLS certificate reloaded", cert=self.tls.cert)
            return config


def server_credentials(tls: ServerTLS) -> tuple[grpc.ServerCredentials, _Files]:
    files = _Files(tls)
    creds = grpc.dynamic_ssl_server_credentials(
        files.load(), files.fetch, require_client_authentication=tls.client_auth)
    return creds, files


def channel_credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca),
        private_key=_read(tls.key) if tls.key else None,
        certificate_chain=_read(tls.cert) if tls.cert else None)
