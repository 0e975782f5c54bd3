"""KeypairService: SSH key pairs, per user (keypairs/<user>/<name>).

Only the public half is ever stored. CreateKeypair without a public key runs
`ssh-keygen` (openssh-client) in a private temporary directory (tmpfs when
/dev/shm is there), reads both halves and removes the directory before it
answers; the private key travels only in that one response and is never
logged (`private_key` is one of log.SECRET_KEYS anyway).

Public keys are checked here, not by ssh-keygen: one line "<type> <base64>
[comment]", the type one of ssh-ed25519, ssh-rsa (1024 bits or more, as
OpenSSH's RequiredRSASize) or ecdsa-sha2-nistp256/384/521, the base64 body
must decode to an SSH wire blob whose own type is that type and whose key
fields have the right shape. Fingerprints: `fingerprint` is Nova's (MD5,
colon-separated hex), `fingerprint_sha256` is OpenSSH's ("SHA256:<b64>").

Other users' key pairs are NOT_FOUND, like another project's server. Admins
name another user with `user_id`.

Quota: a key pair counts in the `key_pairs` usage of the project it was
created from (recorded as Keypair.project_id; nimbus.quota counts per
project, where Nova counts per user). The usage changes in the transaction
that writes or deletes the record; over the limit is RESOURCE_EXHAUSTED with
a QuotaFailure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import struct
import tempfile

from nimbus import errors, log, pagination, quota
from nimbus.compute.v1 import keypairs_pb2 as K, keypairs_pb2_grpc
from nimbus.rpc import auth
from nimbus.store import keys
from nimbus.store.store import ExtraCompareFailed, Store, Versioned, now

_log = log.get("nimbus.compute.keypairs")

NAME = re.compile(r"[A-Za-z0-9 _.@-]{1,255}")
MAX_PUBLIC_KEY = 16384          # characters of the OpenSSH line (an RSA-16384 key fits)
MIN_RSA_BITS = 1024             # OpenSSH's RequiredRSASize default
MAX_RSA_BITS = 16384
ECDSA_CURVES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}   # uncompressed point sizes
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", *(f"ecdsa-sha2-{c}" for c in ECDSA_CURVES))
SSH_KEYGEN = "ssh-keygen"
GENERATE_ARGS = {
    K.KEY_ALGORITHM_UNSPECIFIED: ["-t", "ed25519"],
    K.KEY_ALGORITHM_ED25519: ["-t", "ed25519"],
    K.KEY_ALGORITHM_RSA_2048: ["-t", "rsa", "-b", "2048"],
}
COMMENT = "Generated-by-nimbus"


# ---- public keys ---------------------------------------------------------------

class _Blob:
    """Reads the SSH wire format (RFC 4251: uint32 length + bytes)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated key blob")
        (length,) = struct.unpack_from(">I", self.data, self.pos)
        start = self.pos + 4
        if start + length > len(self.data):
            raise ValueError("truncated key blob")
        self.pos = start + length
        return self.data[start:self.pos]

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise ValueError("negative integer in the key blob")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ValueError("trailing bytes after the key")


def _check_blob(key_type: str, blob: bytes) -> None:
    r = _Blob(blob)
    inner = r.string()
    if inner != key_type.encode():
        raise ValueError(f"the key data is of type {inner.decode(errors='replace')!r}, "
                         f"not {key_type!r}")
    if key_type == "ssh-ed25519":
        if len(r.string()) != 32:
            raise ValueError("an ed25519 key is 32 bytes")
    elif key_type == "ssh-rsa":
        e, n = r.mpint(), r.mpint()
        if e < 3 or e % 2 == 0:
            raise ValueError("invalid RSA public exponent")
        if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
            raise ValueError(f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits")
    else:
        curve = key_type.removeprefix("ecdsa-sha2-")
        if r.string() != curve.encode():
            raise ValueError("the ECDSA curve does not match the key type")
        point = r.string()
        if len(point) != ECDSA_CURVES[curve] or point[0] != 4:
            raise ValueError(f"not an uncompressed {curve} point")
    r.end()


def parse_public_key(text: str, field: str = "public_key") -> tuple[str, bytes, str]:
    """An OpenSSH public key line -> (key type, blob, normalized line).
    Raises InvalidArgument(field) for anything else."""
    line = text.strip()
    if not line:
        raise errors.InvalidArgument(field, "is required")
    if len(line) > MAX_PUBLIC_KEY:
        raise errors.InvalidArgument(field, f"must be at most {MAX_PUBLIC_KEY} characters")
    if any(ord(ch) < 32 and ch != "\t" for ch in line) or "\x7f" in line:
        raise errors.InvalidArgument(field, "must be one line without control characters")
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise errors.InvalidArgument(field, "is '<type> <base64 key> [comment]' (OpenSSH format)")
    key_type, body = parts[0], parts[1]
    if key_type not in KEY_TYPES:
        raise errors.InvalidArgument(field, f"key type {key_type[:40]!r} is not one of "
                                            f"{', '.join(KEY_TYPES)}")
    try:
        blob = base64.b64decode(body, validate=True)
    except ValueError:
        raise errors.InvalidArgument(field, "the key is not valid base64") from None
    try:
        _check_blob(key_type, blob)
    except ValueError as exc:
        raise errors.InvalidArgument(field, str(exc)) from None
    comment = parts[2].strip() if len(parts) > 2 else ""
    normalized = f"{key_type} {base64.b64encode(blob).decode()}" + (f" {comment}" if comment else "")
    return key_type, blob, normalized


def fingerprint_md5(blob: bytes) -> str:
    return ":".join(f"{b:02x}" for b in hashlib.md5(blob, usedforsecurity=False).digest())


def fingerprint_sha256(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def make_keypair(name: str, user_id: str, public_key: str, project_id: str = "") -> K.Keypair:
    key_type, blob, normalized = parse_public_key(public_key)
    return K.Keypair(name=name, user_id=user_id, public_key=normalized,
                     fingerprint=fingerprint_md5(blob), fingerprint_sha256=fingerprint_sha256(blob),
                     key_type=key_type, created_at=now(), project_id=project_id)


def validate_keypair_name(name: str, field: str = "name") -> str:
    if not name:
        raise errors.InvalidArgument(field, "is required")
    if not NAME.fullmatch(name) or not name.strip():
        raise errors.InvalidArgument(
            field, "1 to 255 characters: letters, digits, spaces, '_', '.', '@' and '-'")
    return name


# ---- generation ----------------------------------------------------------------

def ssh_keygen_available() -> bool:
    return shutil.which(SSH_KEYGEN) is not None


def _secret_tmpdir() -> str | None:
    """tmpfs when there is one: the private key never touches a disk."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


async def generate_keypair(algorithm: int) -> tuple[str, str]:
    """A new key pair from ssh-keygen: (private key in OpenSSH format, public line)."""
    if algorithm not in GENERATE_ARGS:
        raise errors.InvalidArgument("algorithm", "must be ed25519 or rsa-2048")
    if not ssh_keygen_available():
        raise errors.FailedPrecondition(
            "this API host cannot generate key pairs (ssh-keygen, from openssh-client, is not "
            "installed); import a public key instead")
    with tempfile.TemporaryDirectory(prefix="nimbus-keypair-", dir=_secret_tmpdir()) as tmp:
        path = os.path.join(tmp, "key")   # TemporaryDirectory is mode 0700
        proc = await asyncio.create_subprocess_exec(
            SSH_KEYGEN, "-q", *GENERATE_ARGS[algorithm], "-N", "", "-C", COMMENT, "-f", path,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            # Not the caller's fault: report it as an internal error (logged).
            raise RuntimeError(f"ssh-keygen failed ({proc.returncode}): "
                               f"{err.decode(errors='replace').strip()[:300]}")
        with open(path) as f:
            private_key = f.read()
        with open(path + ".pub") as f:
            public_key = f.read().strip()
    return private_key, public_key


# ---- the service -----------------------------------------------------------------

def _owner(user_id: str) -> str:
    """The user whose key pairs a call acts on: the caller, or (admins) user_id."""
    who = auth.identity()
    if not user_id or user_id == who.user_id:
        return who.user_id
    if not who.is_admin:
        raise errors.PermissionDenied("user_id (another user's key pairs) is restricted to admins")
    if "/" in user_id:
        raise errors.InvalidArgument("user_id", "must not contain '/'")
    return user_id


async def get_keypair(store: Store, user_id: str, name: str) -> Versioned:
    """The user's key pair, or NOT_FOUND (for CreateServer's key_name too)."""
    found = None
    if NAME.fullmatch(name or ""):
        found = await store.get(keys.keypair(user_id, name), K.Keypair)
    if found is None or found.msg.user_id != user_id:
        raise errors.NotFound("keypair", name)
    return found


class KeypairServicer(keypairs_pb2_grpc.KeypairServiceServicer):
    def __init__(self, store: Store):
        self.store = store
        if not ssh_keygen_available():
            _log.warning("ssh-keygen not found: CreateKeypair can only import public keys "
                         "(install openssh-client)")

    async def _store_new(self, keypair: K.Keypair) -> None:
        """Write a new key pair and count it in its project's quota, in one txn."""
        key = keys.keypair(keypair.user_id, keypair.name)
        try:
            await quota.apply(self.store, keypair.project_id, {"key_pairs": 1},
                              compares=[self.store.mod_is(key, 0)],
                              ops=[self.store.put(key, keypair)])
        except ExtraCompareFailed:
            raise errors.AlreadyExists(f"key pair {keypair.name!r} already exists") from None

    async def _exists(self, user_id: str, name: str) -> None:
        if await self.store.get_raw(keys.keypair(user_id, name)) is not None:
            raise errors.AlreadyExists(f"key pair {name!r} already exists")

    async def CreateKeypair(self, request, context):
        owner = _owner(request.user_id)
        name = validate_keypair_name(request.name)
        project = auth.identity().project_id
        if request.public_key:
            keypair = make_keypair(name, owner, request.public_key, project)
            await self._store_new(keypair)
            _log.info("key pair imported", name=name, fingerprint=keypair.fingerprint)
            return K.CreateKeypairResponse(keypair=keypair)
        if request.algorithm not in GENERATE_ARGS:
            raise errors.InvalidArgument("algorithm", "must be ed25519 or rsa-2048")
        # Do not generate a key for nothing (both are checked again on write).
        await self._exists(owner, name)
        await quota.plan(self.store, project, {"key_pairs": 1})
        private_key, public_key = await generate_keypair(request.algorithm)
        keypair = make_keypair(name, owner, public_key, project)
        await self._store_new(keypair)
        _log.info("key pair generated", name=name, fingerprint=keypair.fingerprint)
        return K.CreateKeypairResponse(keypair=keypair, private_key=private_key)

    async def ImportKeypair(self, request, context):
        owner = _owner(request.user_id)
        name = validate_keypair_name(request.name)
        keypair = make_keypair(name, owner, request.public_key, auth.identity().project_id)
        await self._store_new(keypair)
        _log.info("key pair imported", name=name, fingerprint=keypair.fingerprint)
        return K.ImportKeypairResponse(keypair=keypair)

    async def GetKeypair(self, request, context):
        owner = _owner(request.user_id)
        if not request.name:
            raise errors.InvalidArgument("name", "is required")
        return K.GetKeypairResponse(keypair=(await get_keypair(self.store, owner, request.name)).msg)

    async def ListKeypairs(self, request, context):
        owner = _owner(request.user_id)
        items, _ = await self.store.list(f"{keys.KEYPAIRS}{owner}/", K.Keypair)
        # The record's user_id, not only the key prefix, decides ownership.
        found = [v.msg for _, v in items if v.msg.user_id == owner]
        page, token = pagination.page_of(request, found, lambda k: [k.name], owner)
        return K.ListKeypairsResponse(keypairs=page, next_page_token=token)

    async def DeleteKeypair(self, request, context):
        owner = _owner(request.user_id)
        if not request.name:
            raise errors.InvalidArgument("name", "is required")
        key = keys.keypair(owner, request.name)
        for _ in range(quota.ATTEMPTS):
            found = await get_keypair(self.store, owner, request.name)
            try:
                # The record goes and its quota is released in one txn, exactly once.
                compares = [self.store.mod_is(key, found.mod_revision)]
                if found.msg.project_id:
                    await quota.apply(self.store, found.msg.project_id, {"key_pairs": -1},
                                      compares=compares, ops=[self.store.delete(key)])
                elif not (await self.store.txn(compares, [self.store.delete(key)])).succeeded:
                    raise ExtraCompareFailed()
                break
            except ExtraCompareFailed:
                continue   # deleted or replaced meanwhile: read again
        else:
            raise errors.Unavailable("too many concurrent changes to this key pair; retry")
        _log.info("key pair deleted", name=request.name)
        return K.DeleteKeypairResponse()
