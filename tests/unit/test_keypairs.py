"""OpenSSH public key checks and fingerprints, against real ssh-keygen output."""

import base64
import os
import shutil
import struct
import subprocess

import pytest

from nimbus import errors
from nimbus.services.compute import keypairs

# Skipped without ssh-keygen (openssh-client), except under CI.
needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None and os.environ.get("CI") != "true",
    reason="ssh-keygen (openssh-client) is not installed")


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _line(key_type: str, blob: bytes, comment: str = "") -> str:
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}".strip()


ED25519_BLOB = _string(b"ssh-ed25519") + _string(bytes(range(32)))


def _keygen(tmp_path, *args: str) -> str:
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", *args, "-N", "", "-C", "me@host", "-f", str(path)],
                   check=True)
    return str(path) + ".pub"


@needs_ssh_keygen
@pytest.mark.parametrize("args, key_type", [
    (("-t", "ed25519"), "ssh-ed25519"),
    (("-t", "rsa", "-b", "2048"), "ssh-rsa"),
    (("-t", "ecdsa", "-b", "256"), "ecdsa-sha2-nistp256"),
    (("-t", "ecdsa", "-b", "384"), "ecdsa-sha2-nistp384"),
    (("-t", "ecdsa", "-b", "521"), "ecdsa-sha2-nistp521"),
])
def test_real_keys_parse_and_fingerprints_match_ssh_keygen(tmp_path, args, key_type):
    pub = _keygen(tmp_path, *args)
    with open(pub) as f:
        line = f.read()
    parsed_type, blob, normalized = keypairs.parse_public_key(line)
    assert parsed_type == key_type
    assert normalized == line.strip() and normalized.endswith(" me@host")
    md5 = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", pub], check=True,
                         capture_output=True, text=True).stdout.split()[1]
    sha = subprocess.run(["ssh-keygen", "-l", "-f", pub], check=True,
                         capture_output=True, text=True).stdout.split()[1]
    assert md5 == "MD5:" + keypairs.fingerprint_md5(blob)
    assert sha == keypairs.fingerprint_sha256(blob)


def test_normalizes_whitespace_and_keeps_comment():
    line = "  " + _line("ssh-ed25519", ED25519_BLOB).replace(" ", "\t") + "   a comment  \n"
    _, _, normalized = keypairs.parse_public_key(line)
    assert normalized == _line("ssh-ed25519", ED25519_BLOB, "a comment")


@pytest.mark.parametrize("text, reason", [
    ("", "is required"),
    ("   ", "is required"),
    ("ssh-ed25519", "OpenSSH format"),
    ("ssh-dss AAAAB3NzaC1kc3M=", "key type"),
    ("ssh-ed25519 !!!!", "base64"),
    ("ssh-ed25519 QUJD", "truncated"),                                         # "ABC"
    (_line("ssh-rsa", ED25519_BLOB), "of type 'ssh-ed25519'"),                 # type mismatch
    (_line("ssh-ed25519", _string(b"ssh-ed25519") + _string(b"short")), "32 bytes"),
    (_line("ssh-ed25519", ED25519_BLOB + b"\0"), "trailing"),
    (_line("ssh-rsa", _string(b"ssh-rsa") + _string(b"\x01\x00\x01") + _string(b"\x7f" * 64)),
     "bits"),                                                                  # RSA-512
    (_line("ecdsa-sha2-nistp256", _string(b"ecdsa-sha2-nistp256") + _string(b"nistp384")
           + _string(b"\x04" + bytes(64))), "curve"),
    (_line("ecdsa-sha2-nistp256", _string(b"ecdsa-sha2-nistp256") + _string(b"nistp256")
           + _string(b"\x02" + bytes(32))), "uncompressed"),
    (_line("ssh-ed25519", ED25519_BLOB) + "\n" + _line("ssh-ed25519", ED25519_BLOB), "one line"),
    ("ssh-ed25519 " + "A" * 20000, "at most"),
])
def test_bad_public_keys_name_the_field(text, reason):
    with pytest.raises(errors.InvalidArgument) as err:
        keypairs.parse_public_key(text)
    assert err.value.field == "public_key"
    assert reason in err.value.description


@pytest.mark.parametrize("name, ok", [
    ("a", True), ("my key_1.pub@host-2", True), ("x" * 255, True),
    ("", False), ("   ", False), ("x" * 256, False), ("a/b", False), ("ä", False),
    ("tab\tkey", False), ("semi;colon", False),
])
def test_keypair_names(name, ok):
    if ok:
        assert keypairs.validate_keypair_name(name) == name
    else:
        with pytest.raises(errors.InvalidArgument) as err:
            keypairs.validate_keypair_name(name)
        assert err.value.field == "name"


@needs_ssh_keygen
async def test_generated_pairs_match(tmp_path):
    for algorithm, key_type in ((keypairs.K.KEY_ALGORITHM_UNSPECIFIED, "ssh-ed25519"),
                                (keypairs.K.KEY_ALGORITHM_RSA_2048, "ssh-rsa")):
        private, public = await keypairs.generate_keypair(algorithm)
        assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert keypairs.parse_public_key(public)[0] == key_type
        path = tmp_path / f"{key_type}.key"
        path.write_text(private)
        path.chmod(0o600)
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], check=True,
                                 capture_output=True, text=True).stdout.split()[:2]
        assert derived == public.split()[:2]
