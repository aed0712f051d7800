"""Validators: each parses the bytes at a YARA hit and proves (or refutes) a real private key.

A rule names its validator in metadata (`validator = "pem"`); the VALIDATORS
table maps that name to a function. A validator takes a `Hit` (a read-only
view of the scanned window and where the match is in it) and returns
`KeyFinding`s that describe the key without any of its bytes. It must be
cheap and bounded on hostile input: cap integer sizes, never call
cryptography's full RSA check (seconds on large keys), do the arithmetic in
`keymath` instead.

Adding a format: one module here, one line in _WHERE, one rule in rules/.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.values import KeyFinding

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MetaValue = str | int | bool | float


@dataclass(frozen=True, slots=True)
class Hit:
    """Where a rule matched: `data` is the whole scanned window, `start`/`end` the match in it.

    `base_offset` is the offset of `data[0]` in the file or member being
    scanned, so `base_offset + start` is the finding's offset. Validators
    may look before `start` (anchors inside a body) and after `end`.
    """

    rule: str
    meta: Mapping[str, MetaValue]
    data: memoryview
    start: int
    end: int
    base_offset: int
    container: str | None = None

    @property
    def offset(self) -> int:
        """Absolute offset of the match."""
        return self.base_offset + self.start

    def finding(self, **fields: object) -> KeyFinding:
        """A KeyFinding carrying this hit's rule, offset and container plus the given fields."""
        base: dict[str, object] = {
            "rule": self.rule,
            "offset": self.offset,
            "container": self.container,
            "format": str(self.meta.get("format", self.rule)),
        }
        base.update(fields)
        return KeyFinding(**base)  # type: ignore[arg-type]

    def key_finding(self, key: PrivateKeyTypes, **fields: object) -> KeyFinding:
        """A validated finding for a proven private key: its algorithm, size and fingerprint."""
        from agent.scan import keymath  # noqa: PLC0415 - cryptography loads with the first validator

        algorithm, bits, curve, fp = keymath.describe_private_key(key)
        described: dict[str, object] = {
            "algorithm": algorithm,
            "bits": bits,
            "curve": curve,
            "fingerprint": fp,
            "validated": True,
        }
        return self.finding(**{**described, **fields})


Validator = Callable[[Hit], Sequence[KeyFinding]]


class _Validators(Mapping[str, Validator]):
    """Validators by name; each module is imported at its first hit.

    Most validators never run in a given process, and importing them all (with
    cryptography's x509 and pkcs12 modules) cost about 60 ms at every start.
    """

    def __init__(self, where: Mapping[str, tuple[str, str]]) -> None:
        self._where = where
        self._loaded: dict[str, Validator] = {}

    def __getitem__(self, name: str) -> Validator:
        found = self._loaded.get(name)
        if found is None:
            module, function = self._where[name]
            found = getattr(importlib.import_module(f"{__name__}.{module}"), function)
            self._loaded[name] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


# name in a rule's `validator` meta -> (module, function). Keep one line per format.
_WHERE: Mapping[str, tuple[str, str]] = {
    # armour: PKCS#1/#8, SEC1, DSA, OpenSSH, PGP (-> pgp.py); CRLF, JSON, UTF-16
    "pem": ("pem", "validate"),
    # raw DER: PKCS#1, PKCS#8, SEC1, EncryptedPrivateKeyInfo
    "der": ("der", "validate"),
    "base64_der": ("base64der", "validate"),  # base64 DER without armour
    "capi_blob": ("blobs", "validate_capi"),  # CryptoAPI PRIVATEKEYBLOB
    "pvk": ("blobs", "validate_pvk"),  # encrypted PVK files (a clear one is a PRIVATEKEYBLOB)
    "cng_rsa": ("blobs", "validate_cng_rsa"),  # BCRYPT_RSAPRIVATE_BLOB / RSAFULLPRIVATE
    "cng_ecc": ("blobs", "validate_cng_ecc"),  # BCRYPT_ECCPRIVATE_BLOB
    "openssh_binary": ("openssh", "validate_binary"),  # openssh-key-v1 without armour
    "ppk": ("ppk", "validate"),  # PuTTY PPK v2/v3
    "jwk": ("jwk", "validate"),  # JWK and JWK sets with private members
    "pkcs12": ("pkcs12", "validate"),  # PKCS#12 / PFX
    "base64_pkcs12": ("pkcs12", "validate_base64"),  # base64 PFX (Azure, Kubernetes, CI secrets)
    # DER whose header was overwritten (anchored in the body)
    "partial_der": ("partial", "validate"),
    # hex-spelled DER: bare, wrapped, \x escapes, byte arrays
    "hex_der": ("hexder", "validate"),
    "xml_rsa": ("xmlkey", "validate"),  # .NET <RSAKeyValue> with the private members
    "openssl_text": ("keytext", "validate"),  # `openssl pkey|rsa|ec -text` printouts
    "jks": ("jks", "validate"),  # Java KeyStore / JCEKS private-key entries (encrypted)
    # whole PEM files base64-encoded (kubeconfig, k8s Secrets)
    "base64_pem": ("b64pem", "validate"),
    # GnuPG private-keys-v1.d S-expressions, text and canonical
    "gnupg": ("gnupg", "validate"),
    # unarmoured OpenPGP secret keys at a stream's start (gpg --export-secret-keys)
    "pgp_binary": ("pgp", "validate_binary"),
    "sshcom": ("sshcom", "validate"),  # ssh.com / Tectia (puttygen -O private-sshcom)
    "age": ("age", "validate"),  # age identities (age-keygen, SOPS keys.txt)
    "minisign": ("minisign", "validate"),  # minisign and OpenBSD signify secret keys
    "wireguard": ("wireguard", "validate"),  # WireGuard configuration files
}

VALIDATORS: Mapping[str, Validator] = _Validators(_WHERE)
