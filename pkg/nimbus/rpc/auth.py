"""Who is calling: identities from `authorization` metadata.

One Authenticator per server accepts, in this order:

- the service token: the shared secret of the nimbus processes (compared
  in constant time) -> role `service`;
- a host token `agent.<host>.<mac>`, mac = HMAC-SHA256(service token,
  "nimbus-agent:" + host): a compute agent, acting for that host only
  (nimbus.policy checks the host fields of its requests). A host is given
  only its own token (`python -m nimbus.rpc.auth agent-token HOST` mints
  one), never the service token, so a compromised host cannot act for
  another; servers verify it with the service token they already hold;
- on user-facing servers, either `noauth` (development only: the bearer
  token is `<user>:<project>[:<role>]`, believed as is; the user `admin`
  is an admin) or `jwt`: OIDC/JWT access tokens verified against the
  issuer's keys (nimbus.rpc.tokens).

What each role may call is nimbus.policy's table, enforced by the
interceptor; `is_admin` is derived from the roles.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import hmac
import ipaddress
import re
import sys

from nimbus import errors, policy

ADMIN = policy.ADMIN
SERVICE = policy.SERVICE
AGENT = policy.AGENT
# Ids become etcd key segments: no '/' (a user 'a/b' would list 'a's keys).
USER_OR_PROJECT = re.compile(r"[A-Za-z0-9._@-]{1,255}")
HOST = re.compile(r"[A-Za-z0-9._-]{1,255}")
AGENT_PREFIX = "agent."
NOAUTH_ROLES = {policy.READER: frozenset({policy.READER}),
                policy.MEMBER: frozenset({policy.MEMBER, policy.READER}),
                ADMIN: frozenset(policy.IMPLIED[ADMIN])}


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    project_id: str
    roles: frozenset[str]
    # Set for an agent: the one host it may act for.
    host: str = ""

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles or SERVICE in self.roles

    @property
    def is_service(self) -> bool:
        """A nimbus process: the services, or an agent (its host's scope is
        the policy's to check)."""
        return SERVICE in self.roles or AGENT in self.roles


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


def has_bearer(metadata) -> bool:
    return any(key == "authorization" for key, _ in metadata or ())


def from_certificate(auth_context: dict) -> Identity:
    """An agent by its client certificate (mTLS, verified by grpc against
    the CA): common name `agent.<host>`. Nothing else is an identity: the
    services keep their token."""
    for name in auth_context.get("x509_common_name", ()):
        name = name.decode(errors="replace")
        host = name[len(AGENT_PREFIX):] if name.startswith(AGENT_PREFIX) else ""
        if HOST.fullmatch(host):
            return Identity(f"agent:{host}", "", frozenset({AGENT}), host=host)
    raise errors.Unauthenticated(
        "missing authorization metadata ('Bearer <token>'), and the client certificate "
        "names no agent (common name 'agent.<host>')")


def agent_token(service_token: str, host: str) -> str:
    """The bearer token of one host's agent (see the module docstring)."""
    if not HOST.fullmatch(host):
        raise ValueError(f"not a host name: {host!r}")
    return f"{AGENT_PREFIX}{host}.{_host_mac(service_token.encode(), host)}"


def _host_mac(secret: bytes, host: str) -> str:
    return hmac.new(secret, b"nimbus-agent:" + host.encode(), hashlib.sha256).hexdigest()


class Authenticator:
    """Turns request metadata into an Identity or raises Unauthenticated."""

    def __init__(self, *, noauth: bool = False, service_token: str | None = None, jwt=None):
        if not noauth and not service_token and jwt is None:
            raise ValueError("an authenticator needs noauth, jwt or a service token")
        if noauth and jwt is not None:
            raise ValueError("noauth and jwt exclude each other")
        self.noauth = noauth
        self.jwt = jwt   # a tokens.JwtVerifier, or None
        self._service_token = service_token.encode() if service_token else None
        self._service = Identity(SERVICE, SERVICE, frozenset({SERVICE}))

    def authenticate(self, metadata) -> Identity:
        token = _bearer(metadata)
        if self._service_token is not None:
            if hmac.compare_digest(token.encode(), self._service_token):
                return self._service
            if token.startswith(AGENT_PREFIX):
                return self._agent(token)
        if self.noauth:
            return _noauth(token)
        if self.jwt is not None:
            return self.jwt.verify(token)
        raise errors.Unauthenticated("invalid token")

    def _agent(self, token: str) -> Identity:
        host, _, mac = token[len(AGENT_PREFIX):].rpartition(".")
        if not HOST.fullmatch(host) or not hmac.compare_digest(
                mac.encode(), _host_mac(self._service_token, host).encode()):
            raise errors.Unauthenticated("invalid host token")
        return Identity(f"agent:{host}", "", frozenset({AGENT}), host=host)


def _noauth(token: str) -> Identity:
    user, sep, rest = token.partition(":")
    project, _, role = rest.partition(":")
    if (not sep or not USER_OR_PROJECT.fullmatch(user) or not USER_OR_PROJECT.fullmatch(project)
            or (role and role not in NOAUTH_ROLES)):
        raise errors.Unauthenticated(
            "noauth tokens are '<user>:<project>[:reader|member|admin]' "
            "(letters, digits, '.', '_', '@', '-')")
    return Identity(user, project, NOAUTH_ROLES[role or (ADMIN if user == ADMIN else policy.MEMBER)])


def service_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def mode(cfg) -> str:
    """'noauth', 'jwt' or '' (internal servers: service and host tokens only)."""
    if cfg.auth not in ("", "noauth", "jwt"):
        raise ValueError(f"--auth is noauth or jwt, not {cfg.auth!r}")
    if cfg.auth == "jwt" and cfg.noauth:
        raise ValueError("--auth jwt and --noauth exclude each other")
    return cfg.auth or ("noauth" if cfg.noauth else "")


def for_users(cfg, factory=None) -> Authenticator:
    """The authenticator of a user-facing server (compute API, database);
    `factory` makes a subclass from the same keywords."""
    from nimbus.rpc import tokens   # local: internal servers need no JWT library
    which = mode(cfg)
    verifier = tokens.JwtVerifier.from_config(cfg) if which == "jwt" else None
    return (factory or Authenticator)(noauth=which == "noauth",
                                      service_token=cfg.service_token or None, jwt=verifier)


def for_services(cfg) -> Authenticator:
    """The authenticator of an internal server (conductor, scheduler)."""
    return Authenticator(service_token=cfg.service_token)


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # '', '0.0.0.0' is not an IP of loopback; a name may be anything


def exposure_problem(cfg, listen: str) -> str | None:
    """Why this process must not start with its auth settings, or None."""
    try:
        which = mode(cfg)
    except ValueError as exc:
        return str(exc)
    if which == "noauth" and listen and not is_loopback(listen) and not cfg.allow_noauth_anywhere:
        return (f"refusing noauth on {listen}: noauth believes any 'Bearer <user>:<project>' "
                "token, so anyone who can reach this address is any user, admin included. "
                "Listen on 127.0.0.1, use --auth jwt, or pass --allow-noauth-anywhere "
                "(NIMBUS_ALLOW_NOAUTH_ANYWHERE=true) to accept that")
    if which == "jwt" and not (cfg.jwks_url or cfg.jwks_file):
        return "--auth jwt needs --jwks-url or --jwks-file (the issuer's signing keys)"
    if which == "jwt" and not (cfg.jwt_issuer and cfg.jwt_audience):
        return "--auth jwt needs --jwt-issuer and --jwt-audience (tokens are checked against both)"
    return None


def main(argv: list[str] | None = None) -> None:
    """`python -m nimbus.rpc.auth agent-token HOST`: the host token, from
    NIMBUS_SERVICE_TOKEN (never on the command line)."""
    import os
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "agent-token":
        raise SystemExit("usage: python -m nimbus.rpc.auth agent-token HOST "
                         "(NIMBUS_SERVICE_TOKEN in the environment)")
    secret = os.environ.get("NIMBUS_SERVICE_TOKEN", "")
    if not secret:
        raise SystemExit("NIMBUS_SERVICE_TOKEN is not set")
    print(agent_token(secret, args[1]))


if __name__ == "__main__":
    main()
