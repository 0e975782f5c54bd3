"""Password verifiers in each datastore's own format, made by the API from
the user's password so that neither etcd nor the guest stream ever holds
the password: PostgreSQL takes a SCRAM-SHA-256 secret in CREATE ROLE …
PASSWORD, MariaDB a mysql_native_password hash in IDENTIFIED BY PASSWORD."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string

SCRAM_ITERATIONS = 4096   # PostgreSQL's default (scram_iterations)


def scram_sha256(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda b: base64.b64encode(b).decode()   # noqa: E731
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def mysql_native(password: str) -> str:
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


VERIFIERS = {"postgresql": scram_sha256, "mariadb": mysql_native}


def verifier(manager: str, password: str) -> str:
    return VERIFIERS[manager](password)


def generate_password(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))
