"""OIDC / JWT access tokens: verified with PyJWT (+ cryptography) against
the issuer's JWKS, from a URL or a mounted file.

Only RS256 and ES256 are accepted (`alg: none` and the HMAC family are
refused before any key is looked at: an HS256 token "signed" with a public
key is the classic confusion attack). iss, aud, exp and nbf are checked;
user, project and roles come from configurable claims (dotted paths for
nested ones, e.g. Keycloak's `realm_access.roles`).

Keys are cached. A token whose `kid` is not in the cache makes the
interceptor await one refresh (UnknownKey), at most one fetch per
`min_refresh` seconds however many such tokens arrive, so a flood of
made-up kids cannot turn the server into a JWKS fetcher. The set is also
refreshed in the background once it is `max_age` old.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import jwt

from nimbus import errors, log, policy
from nimbus.rpc import auth

_log = log.get("nimbus.rpc.tokens")
ALGORITHMS = ("RS256", "ES256")
# A JWKS larger than this is not a key set.
MAX_JWKS_BYTES = 1 << 20


class UnknownKey(errors.Unauthenticated):
    """The token names a key we do not hold (yet): refresh, then retry once."""

    def __init__(self, keys: "KeySet"):
        super().__init__("token signed with an unknown key id (kid)")
        self.keys = keys


class KeySet:
    def __init__(self, url: str = "", path: str = "", min_refresh: float = 30.0,
                 max_age: float = 3600.0, timeout: float = 5.0):
        if bool(url) == bool(path):
            raise ValueError("a key set comes from a URL or from a file")
        self.url, self.path = url, path
        self.min_refresh, self.max_age, self.timeout = min_refresh, max_age, timeout
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self.fetched_at = float("-inf")   # monotonic time of the last attempt
        self.loaded_at = float("-inf")    # ... of the last success
        self.fetches = 0
        self._lock = asyncio.Lock()
        self._background: asyncio.Task | None = None

    @property
    def source(self) -> str:
        return self.url or self.path

    def _read(self) -> bytes:
        if self.path:
            with open(self.path, "rb") as f:
                return f.read(MAX_JWKS_BYTES + 1)
        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
            return resp.read(MAX_JWKS_BYTES + 1)

    def load(self) -> None:
        """Fetch and replace the keys (blocking; run it in a thread when serving).
        A failed fetch keeps the keys we had."""
        self.fetched_at = time.monotonic()
        self.fetches += 1
        try:
            raw = self._read()
            if len(raw) > MAX_JWKS_BYTES:
                raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
            keys: dict[str | None, jwt.PyJWK] = {}
            for entry in json.loads(raw).get("keys", []):
                if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
                    continue
                try:
                    key = jwt.PyJWK(entry)
                except jwt.PyJWKError:
                    continue   # a key type we do not accept
                keys[entry.get("kid")] = key
        except (OSError, ValueError, AttributeError) as exc:
            _log.warning("cannot load the JWKS; keeping the keys held", source=self.source,
                         error=f"{type(exc).__name__}: {exc}"[:300], keys=len(self.keys))
            return
        self.keys = keys
        self.loaded_at = time.monotonic()
        _log.info("JWKS loaded", source=self.source, keys=len(keys))

    async def refresh(self) -> None:
        """Load again unless we did less than min_refresh seconds ago."""
        async with self._lock:
            if time.monotonic() - self.fetched_at < self.min_refresh:
                return
            await asyncio.to_thread(self.load)

    def get(self, kid: str | None) -> jwt.PyJWK | None:
        if time.monotonic() - self.loaded_at > self.max_age and (
                self._background is None or self._background.done()):
            try:
                self._background = asyncio.get_running_loop().create_task(self.refresh())
            except RuntimeError:
                pass   # no loop (a unit test): the next unknown kid refreshes
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)


def claim(claims: dict, path: str):
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class JwtVerifier:
    def __init__(self, keys: KeySet, issuer: str, audience: str, user_claim: str = "sub",
                 project_claim: str = "project_id", roles_claim: str = "roles",
                 leeway: float = 30.0):
        if not issuer or not audience:
            raise ValueError("JWT verification needs an issuer and an audience")
        self.keys = keys
        self.issuer, self.audience = issuer, audience
        self.user_claim, self.project_claim, self.roles_claim = user_claim, project_claim, roles_claim
        self.leeway = leeway

    @classmethod
    def from_config(cls, cfg) -> "JwtVerifier":
        keys = KeySet(url=cfg.jwks_url, path=cfg.jwks_file, min_refresh=cfg.jwks_min_refresh)
        keys.load()   # at start: a process that cannot get keys says so at once
        return cls(keys, cfg.jwt_issuer, cfg.jwt_audience, cfg.jwt_user_claim,
                   cfg.jwt_project_claim, cfg.jwt_roles_claim)

    def verify(self, token: str) -> auth.Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.Unauthenticated("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise errors.Unauthenticated(
                f"token algorithm {str(alg)[:20]!r} is not accepted (only {', '.join(ALGORITHMS)})")
        key = self.keys.get(header.get("kid"))
        if key is None:
            raise UnknownKey(self.keys)
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise errors.Unauthenticated("token has expired (exp)") from None
        except jwt.ImmatureSignatureError:
            raise errors.Unauthenticated("token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise errors.Unauthenticated(f"token audience is not {self.audience!r} (aud)") from None
        except jwt.InvalidIssuerError:
            raise errors.Unauthenticated(f"token issuer is not {self.issuer!r} (iss)") from None
        except jwt.InvalidSignatureError:
            raise errors.Unauthenticated("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise errors.Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise errors.Unauthenticated(f"invalid token ({type(exc).__name__})") from None
        return self._identity(claims)

    def _identity(self, claims: dict) -> auth.Identity:
        user, project = claim(claims, self.user_claim), claim(claims, self.project_claim)
        for name, value in ((self.user_claim, user), (self.project_claim, project)):
            if not isinstance(value, str) or not auth.USER_OR_PROJECT.fullmatch(value):
                raise errors.Unauthenticated(
                    f"token claim {name!r} must be an id (letters, digits, '.', '_', '@', '-')")
        roles = claim(claims, self.roles_claim) or []
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list):
            raise errors.Unauthenticated(f"token claim {self.roles_claim!r} must be a list of roles")
        # Only the user roles the policy knows; 'service'/'agent' are never a token's.
        granted = frozenset().union(*(policy.IMPLIED.get(r, ()) for r in roles if isinstance(r, str)))
        return auth.Identity(user, project, granted)
