"""Credentials made at test time: an OIDC-like token issuer whose JWKS is
served over HTTP on 127.0.0.1, and a CA with server/client certificates."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import threading
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ISSUER = "https://issuer.test/realms/nimbus"
AUDIENCE = "nimbus"


def _public_jwk(key, kid: str) -> dict:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) \
        else jwt.algorithms.ECAlgorithm
    jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
    return jwk | {"kid": kid, "use": "sig",
                  "alg": "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"}


class Issuer:
    """Signing keys (RS256 and ES256) and a JWKS endpoint that counts its fetches."""

    def __init__(self):
        self.keys = {"rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                     "ec-1": ec.generate_private_key(ec.SECP256R1())}
        self.published = set(self.keys)
        self.fetches = 0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def jwks(self) -> dict:
        return {"keys": [_public_jwk(self.keys[k], k) for k in sorted(self.published)]}

    def add_key(self, kid: str, publish: bool = True):
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.add(kid)

    def token(self, user: str = "alice", project: str = "demo", roles=("member",),
              kid: str = "rsa-1", key=None, alg: str | None = None, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "project_id": project,
                   "roles": None if roles is None else list(roles), "iat": now, "nbf": now, "exp": now + 300,
                   "jti": uuid.uuid4().hex} | claims
        payload = {k: v for k, v in payload.items() if v is not None}
        signing = key if key is not None else self.keys[kid]
        alg = alg or ("RS256" if isinstance(signing, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(payload, signing, algorithm=alg, headers={"kid": kid})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


# ---- certificates -----------------------------------------------------------

def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CA:
    def __init__(self, name: str = "nimbus test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def write(self, path: str) -> str:
        with open(path, "wb") as f:
            f.write(_pem(self.cert))
        return path

    def issue(self, directory: str, name: str, cn: str | None = None,
              sans=("localhost", "127.0.0.1")) -> tuple[str, str]:
        """(cert path, key path) for `name`, valid for server and client use.
        The files are replaced through a rename, as a Secret mount does."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        names = [x509.IPAddress(ipaddress.ip_address(s)) if s[0].isdigit() else x509.DNSName(s)
                 for s in sans]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = (os.path.join(directory, f"{name}.crt"),
                               os.path.join(directory, f"{name}.key"))
        for path, data in ((key_path, _key_pem(key)), (cert_path, _pem(cert))):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        return cert_path, key_path

    @staticmethod
    def serial(cert_path: str) -> int:
        with open(cert_path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read()).serial_number
