"""Who is calling: identities from `authorization` metadata.

Two authenticators, chosen per server:

- `NoAuth` (development, what `make run` uses; it logs a warning): the
  bearer token is `<user>:<project>`; the user named `admin` holds the admin
  role. Nothing is verified, so never expose it beyond loopback.
- `ServiceToken`: internal calls (agents to the conductor, the conductor to
  the scheduler) carry a shared secret; it is compared in constant time.

A server can accept both (the API also serves hosts downloading images).
"""

from __future__ import annotations

import contextvars
import dataclasses
import hmac
import re

from nimbus import errors

ADMIN = "admin"
# Ids become etcd key segments: no '/' (a user 'a/b' would list 'a's keys).
USER_OR_PROJECT = re.compile(r"[A-Za-z0-9._@-]{1,255}")
SERVICE = "service"


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    project_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles or SERVICE in self.roles

    @property
    def is_service(self) -> bool:
        return SERVICE in self.roles


current: contextvars.ContextVar[Identity] = contextvars.ContextVar("nimbus_identity")


def identity() -> Identity:
    return current.get()


def require_admin() -> Identity:
    who = current.get()
    if not who.is_admin:
        raise errors.PermissionDenied("this operation is restricted to admins")
    return who


def require_service() -> Identity:
    who = current.get()
    if not who.is_service:
        raise errors.PermissionDenied("this operation is restricted to nimbus services")
    return who


def _bearer(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise errors.Unauthenticated("authorization must be 'Bearer <token>'")
            return token.strip()
    raise errors.Unauthenticated("missing authorization metadata ('Bearer <token>')")


class Authenticator:
    """Turns request metadata into an Identity or raises Unauthenticated."""

    def __init__(self, *, noauth: bool = False, service_token: str | None = None):
        if not noauth and not service_token:
            raise ValueError("an authenticator needs noauth or a service token")
        self.noauth = noauth
        self._service_token = service_token.encode() if service_token else None
        self._service = Identity(SERVICE, SERVICE, frozenset({SERVICE}))

    def authenticate(self, metadata) -> Identity:
        token = _bearer(metadata)
        if self._service_token is not None and hmac.compare_digest(token.encode(),
                                                                   self._service_token):
            return self._service
        if self.noauth:
            user, sep, project = token.partition(":")
            if not sep or not USER_OR_PROJECT.fullmatch(user) or not USER_OR_PROJECT.fullmatch(project):
                raise errors.Unauthenticated(
                    "noauth tokens are '<user>:<project>' (letters, digits, '.', '_', '@', '-')")
            roles = frozenset({ADMIN, "member"}) if user == ADMIN else frozenset({"member"})
            return Identity(user, project, roles)
        raise errors.Unauthenticated("invalid token")


def service_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
