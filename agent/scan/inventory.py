"""The known-key inventory: public halves of crown-jewel keys, by fingerprint and name.

A finding whose fingerprint is in the inventory is critical and names the key.
Only public keys are ever accepted: a private key given to `keys add` is
refused without echoing any of it. The inventory is public data, kept as JSON
(`state_dir/keys.json` or `[scan] inventory_file`), written atomically.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from agent.errors import EgressGuardError
from agent.logs import get_logger
from agent.scan.keymath import fingerprint

log = get_logger("agent.scan.inventory")


_FORMAT_VERSION = 1
_MAX_KEY_FILE_BYTES = 1024 * 1024
_NAME_MAX = 128
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_RFC4716 = re.compile(
    rb"---- BEGIN SSH2 PUBLIC KEY ----(.*?)---- END SSH2 PUBLIC KEY ----", re.DOTALL
)
_SSH_TYPES = re.compile(
    rb"(?:^|\s)((?:ssh-rsa|ssh-dss|ssh-ed25519|ssh-ed448|ecdsa-sha2-nistp(?:256|384|521)"
    rb"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)) +([A-Za-z0-9+/=]+)"
)
_PRIVATE_MARKERS = (b"PRIVATE KEY", b"PuTTY-User-Key-File", b"openssh-key-v1\x00")
_JWK_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")
_JWK_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
}
_OKP: dict[str, Callable[[bytes], PublicKeyTypes]] = {
    "Ed25519": ed25519.Ed25519PublicKey.from_public_bytes,
    "Ed448": ed448.Ed448PublicKey.from_public_bytes,
    "X25519": x25519.X25519PublicKey.from_public_bytes,
    "X448": x448.X448PublicKey.from_public_bytes,
}
_PUBOUT_HINT = (
    "register only the public half: `openssl pkey -in KEY -pubout -out key.pub` "
    "(or `ssh-keygen -y -f KEY > key.pub` for an OpenSSH key)"
)


class InventoryError(EgressGuardError):
    """The inventory or a key given to it was refused; the message never holds key bytes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownKey:
    """A registered public key (never a private one)."""

    name: str
    fingerprint: str
    algorithm: str  # rsa | ec | ed25519 | ...
    bits: int | None = None
    curve: str | None = None
    rsa_n: int | None = None
    rsa_e: int | None = None
    ec_public_point: bytes | None = None  # X9.62 uncompressed point (EC) or raw public key (Ed/X)
    added_at: str = ""


@dataclass(frozen=True, slots=True)
class Inventory:
    """All registered keys."""

    keys: tuple[KnownKey, ...] = ()

    def by_fingerprint(self, fingerprint: str | None) -> KnownKey | None:
        """The registered key with this fingerprint, if any."""
        if fingerprint is None:
            return None
        for k in self.keys:
            if k.fingerprint == fingerprint:
                return k
        return None


def parse_public_key(data: bytes) -> KnownKey:
    """The facts of the one public key in `data` (name left empty); InventoryError otherwise.

    Accepts PEM/DER SubjectPublicKeyInfo, PEM PKCS#1 RSA public keys, X.509
    certificates (PEM or DER), OpenSSH and RFC 4716 public keys,
    `authorized_keys` lines and JWK public keys. Refuses any private key.
    """
    if _looks_private(data):
        raise InventoryError(
            "this file holds a private key; it was not registered", hint=_PUBOUT_HINT
        )
    key = _load_public(data)
    if key is None:
        raise InventoryError(
            "no public key found in a format egress-guard reads",
            hint="give a PEM or DER public key or certificate, an OpenSSH public key line, "
            "or a JWK public key",
        )
    return _describe(key)


def _looks_private(data: bytes) -> bool:
    if any(marker in data for marker in _PRIVATE_MARKERS):
        return True
    stripped = data.strip()
    if stripped.startswith(b"{"):
        return _jwk_has_private(stripped)
    if stripped.startswith(b"0"):
        # DER is binary: its last byte may be one strip() removes (0x20, 0x0a, ...)
        der = data if data.startswith(b"0") else stripped
        try:
            serialization.load_der_private_key(
                der, password=None, unsafe_skip_rsa_key_validation=True
            )
        except TypeError:
            return True  # an encrypted private key: it asked for a password
        except (ValueError, UnsupportedAlgorithm):
            return False
        return True
    return False


def _jwk_has_private(text: bytes) -> bool:
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    jwks = doc.get("keys") if isinstance(doc, dict) else None
    items = jwks if isinstance(jwks, list) else [doc]
    return any(
        isinstance(j, dict) and (j.get("kty") == "oct" or any(m in j for m in _JWK_PRIVATE_MEMBERS))
        for j in items
    )


def _load_public(data: bytes) -> PublicKeyTypes | None:
    if _PEM_BLOCK.search(data):
        return _from_pem(data)
    stripped = data.strip()
    if stripped.startswith(b"{"):
        return _from_jwk(stripped)
    for loader in (_der_public, _der_certificate, _ssh_public):
        key = loader(data)
        if key is not None:
            return key
    return None


def _from_pem(data: bytes) -> PublicKeyTypes | None:
    # a certificate chain lists the leaf first: the first usable block is the key meant
    for block in _PEM_BLOCK.finditer(data):
        label, text = block.group(1), block.group(0)
        with contextlib.suppress(ValueError, UnsupportedAlgorithm):
            if label in (b"PUBLIC KEY", b"RSA PUBLIC KEY"):
                return serialization.load_pem_public_key(text)
            if label in (b"CERTIFICATE", b"X509 CERTIFICATE"):
                # imported here: cryptography.x509 costs 65 ms at every start otherwise
                from cryptography import x509  # noqa: PLC0415

                return x509.load_pem_x509_certificate(text).public_key()
    return None


def _der_public(data: bytes) -> PublicKeyTypes | None:
    try:
        return serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return None


def _der_certificate(data: bytes) -> PublicKeyTypes | None:
    from cryptography import x509  # noqa: PLC0415

    try:
        return x509.load_der_x509_certificate(data).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def _ssh_public(data: bytes) -> PublicKeyTypes | None:
    rfc = _RFC4716.search(data)
    if rfc is not None:
        body = b"".join(
            line.strip()
            for line in rfc.group(1).splitlines()
            if line.strip() and b":" not in line and not line.rstrip().endswith(b"\\")
        )
        try:
            blob = base64.b64decode(body, validate=True)
            kind = blob[4 : 4 + int.from_bytes(blob[:4], "big")]
            return serialization.load_ssh_public_key(kind + b" " + body)
        except (ValueError, binascii.Error, UnsupportedAlgorithm):
            return None
    lines = list(_SSH_TYPES.finditer(data))
    if len(lines) > 1:
        raise InventoryError(
            f"this file holds {len(lines)} OpenSSH public keys; register one key at a time",
            hint="copy the one line of the key to register into its own file",
        )
    if not lines:
        return None
    try:
        return serialization.load_ssh_public_key(lines[0].group(1) + b" " + lines[0].group(2))
    except (ValueError, UnsupportedAlgorithm):
        return None


def _b64url_int(value: object) -> int:
    if not isinstance(value, str):
        raise KeyError("not a string")  # treated like a missing member
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _from_jwk(text: bytes) -> PublicKeyTypes | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        if len(doc["keys"]) != 1:
            raise InventoryError(
                f"this JWK set holds {len(doc['keys'])} keys; register one key at a time",
                hint="put the one JWK to register in its own file",
            )
        doc = doc["keys"][0]
    if not isinstance(doc, dict):
        return None
    try:
        kty, crv = doc.get("kty"), doc.get("crv")
        if kty == "RSA":
            return rsa.RSAPublicNumbers(_b64url_int(doc["e"]), _b64url_int(doc["n"])).public_key()
        if kty == "EC" and isinstance(crv, str) and crv in _JWK_CURVES:
            x, y = _b64url_int(doc["x"]), _b64url_int(doc["y"])
            return ec.EllipticCurvePublicNumbers(x, y, _JWK_CURVES[crv]).public_key()
        if kty == "OKP" and isinstance(doc.get("x"), str):
            raw = base64.urlsafe_b64decode(doc["x"] + "=" * (-len(doc["x"]) % 4))
            okp = _OKP.get(str(crv))
            return okp(raw) if okp else None
    except (KeyError, ValueError, binascii.Error):
        return None
    return None


def _describe(key: PublicKeyTypes) -> KnownKey:
    fp = fingerprint(key)
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return KnownKey(
            name="", fingerprint=fp, algorithm="rsa", bits=key.key_size, rsa_n=nums.n, rsa_e=nums.e
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return KnownKey(
            name="",
            fingerprint=fp,
            algorithm="ec",
            bits=key.curve.key_size,
            curve=key.curve.name,
            ec_public_point=point,
        )
    if isinstance(key, dsa.DSAPublicKey):
        return KnownKey(name="", fingerprint=fp, algorithm="dsa", bits=key.key_size)
    for algo, cls in (
        ("ed25519", ed25519.Ed25519PublicKey),
        ("ed448", ed448.Ed448PublicKey),
        ("x25519", x25519.X25519PublicKey),
        ("x448", x448.X448PublicKey),
    ):
        if isinstance(key, cls):
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return KnownKey(name="", fingerprint=fp, algorithm=algo, ec_public_point=raw)
    raise InventoryError(
        f"unsupported public key type {type(key).__name__}",
        hint="register an RSA, EC, DSA, Ed25519/Ed448 or X25519/X448 public key",
    )


def _to_json(k: KnownKey) -> dict[str, Any]:
    return {
        "name": k.name,
        "fingerprint": k.fingerprint,
        "algorithm": k.algorithm,
        "bits": k.bits,
        "curve": k.curve,
        "rsa_n": format(k.rsa_n, "x") if k.rsa_n is not None else None,
        "rsa_e": k.rsa_e,
        "ec_public_point": k.ec_public_point.hex() if k.ec_public_point is not None else None,
        "added_at": k.added_at,
    }


def key_to_json(key: KnownKey) -> dict[str, Any]:
    """One inventory entry as stored (and as `keys list --format jsonl` prints it)."""
    return _to_json(key)


class _ShapeError(Exception):
    """An inventory entry that does not have the stored shape."""


def _from_json(raw: object, where: str) -> KnownKey:
    if not isinstance(raw, dict):
        raise _ShapeError(f"{where}: expected an object")

    def opt(field: str, kind: type) -> Any:
        value = raw.get(field)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise _ShapeError(f"{where}.{field}: expected {kind.__name__}")
        return value

    name, fp, algorithm = opt("name", str), opt("fingerprint", str), opt("algorithm", str)
    if not name or not algorithm or not fp or not _FINGERPRINT.fullmatch(fp):
        raise _ShapeError(f"{where}: needs a name, an algorithm and a sha256: fingerprint")
    n_hex, point_hex = opt("rsa_n", str), opt("ec_public_point", str)
    return KnownKey(
        name=name,
        fingerprint=fp,
        algorithm=algorithm,
        bits=opt("bits", int),
        curve=opt("curve", str),
        rsa_n=int(n_hex, 16) if n_hex is not None else None,
        rsa_e=opt("rsa_e", int),
        ec_public_point=bytes.fromhex(point_hex) if point_hex is not None else None,
        added_at=opt("added_at", str) or "",
    )


def load_inventory(path: Path) -> Inventory:
    """The inventory stored at `path`; a missing file is an empty inventory."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Inventory()
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(
            f"cannot read the key inventory {path}: {getattr(exc, 'strerror', None) or exc}",
            hint="check the file's permissions, or point [scan] inventory_file elsewhere",
        ) from None
    try:
        keys = _parse_document(text)
    except (ValueError, _ShapeError) as exc:
        raise InventoryError(
            f"the key inventory {path} is damaged: {str(exc)[:200]}",
            hint="restore it from a backup, or move it aside and register the keys again "
            "with `egress-guard keys add`",
        ) from None
    return Inventory(keys=keys)


def _parse_document(text: str) -> tuple[KnownKey, ...]:
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise _ShapeError('expected an object with a "keys" list')
    return tuple(_from_json(k, f"keys[{i}]") for i, k in enumerate(doc["keys"]))


def _check_name(name: str) -> None:
    if not name or len(name) > _NAME_MAX or not name.isprintable() or name != name.strip():
        raise InventoryError(
            f"invalid key name {name[:_NAME_MAX]!r}",
            hint=f"use 1 to {_NAME_MAX} printable characters, no leading or trailing space",
        )
    if name.lower().startswith("sha256:"):
        raise InventoryError(
            "a key name cannot start with `sha256:`", hint="fingerprints are reserved for `remove`"
        )


def add_key(path: Path, key_file: Path, name: str) -> KnownKey:
    """Register the public key in `key_file` under `name`; returns the stored entry."""
    _check_name(name)
    try:
        with key_file.open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise InventoryError(
            f"cannot read {key_file}: {exc.strerror}", hint="give the path of a public key file"
        ) from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise InventoryError(
            f"{key_file} is larger than 1 MiB: not a key file", hint="give a public key file"
        )
    parsed = parse_public_key(data)
    with _locked(path):
        current = load_inventory(path)
        for k in current.keys:
            if k.name == name:
                raise InventoryError(
                    f"a key named {name!r} is already registered ({k.fingerprint})",
                    hint="choose another name, or `egress-guard keys remove` the old one first",
                )
            if k.fingerprint == parsed.fingerprint:
                raise InventoryError(
                    f"this key is already registered as {k.name!r} ({k.fingerprint})",
                    hint="nothing to do; `egress-guard keys list` shows every key",
                )
        added_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        entry = replace(parsed, name=name, added_at=added_at)
        _write(path, (*current.keys, entry))
    log.info("inventory.key_added", name=name, fingerprint=entry.fingerprint, path=str(path))
    return entry


def remove_key(path: Path, name_or_fingerprint: str) -> KnownKey:
    """Unregister the key with this name or fingerprint; returns the removed entry."""
    wanted = name_or_fingerprint.strip()
    as_fp = wanted.lower() if wanted.lower().startswith("sha256:") else f"sha256:{wanted.lower()}"
    with _locked(path):
        current = load_inventory(path)
        for k in current.keys:
            if k.name == wanted or k.fingerprint == as_fp:
                _write(path, tuple(x for x in current.keys if x is not k))
                log.info("inventory.key_removed", name=k.name, fingerprint=k.fingerprint)
                return k
    raise InventoryError(
        f"no registered key is named {wanted[:_NAME_MAX]!r} or has that fingerprint",
        hint="`egress-guard keys list` shows the registered keys",
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise concurrent `keys add/remove` on one inventory (read-modify-write)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InventoryError(
            f"cannot write the key inventory in {path.parent}: {exc.strerror}",
            hint="run as a user who may write there, or pass --file / set [scan] inventory_file",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, keys: tuple[KnownKey, ...]) -> None:
    """Replace the inventory atomically: temp file, fsync, rename, fsync the folder."""
    doc = {"version": _FORMAT_VERSION, "keys": [_to_json(k) for k in keys]}
    payload = (json.dumps(doc, indent=2) + "\n").encode()
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)  # public keys only: readable by all on purpose
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = ""
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise InventoryError(
            f"cannot write the key inventory {path}: {exc.strerror}",
            hint="check free space and permissions of the folder",
        ) from None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
