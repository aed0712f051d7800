"""Validators: each parses the bytes at a YARA hit and proves (or refutes) a real private key.

A rule names its validator in metadata (`validator = "pem"`); the VALIDATORS
table maps that name to a function. A validator takes a `Hit` (a read-only
view of the scanned window and where the match is in it) and returns
`KeyFinding`s that describe the key without any of its bytes. It must be
cheap and bounded on hostile input: cap integer sizes, never call
cryptography's full RSA check (seconds on large keys), do the arithmetic in
`keymath` instead.

Adding a format: one module here, one line in VALIDATORS, one rule in rules/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agent.values import KeyFinding

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


Validator = Callable[[Hit], Sequence[KeyFinding]]


from agent.scan.validators import (  # noqa: E402 - the table needs Hit defined first
    b64pem,
    base64der,
    blobs,
    der,
    gnupg,
    hexder,
    jks,
    jwk,
    keytext,
    openssh,
    partial,
    pem,
    pkcs12,
    ppk,
    xmlkey,
)

# name in a rule's `validator` meta -> function. Keep one line per format.
VALIDATORS: Mapping[str, Validator] = {
    "pem": pem.validate,  # armour: PKCS#1/#8, SEC1, DSA, OpenSSH, PGP (-> pgp.py); CRLF, JSON, UTF-16
    "der": der.validate,  # raw DER: PKCS#1, PKCS#8, SEC1, EncryptedPrivateKeyInfo
    "base64_der": base64der.validate,  # base64 DER without armour
    "capi_blob": blobs.validate_capi,  # CryptoAPI PRIVATEKEYBLOB
    "cng_rsa": blobs.validate_cng_rsa,  # BCRYPT_RSAPRIVATE_BLOB / RSAFULLPRIVATE
    "cng_ecc": blobs.validate_cng_ecc,  # BCRYPT_ECCPRIVATE_BLOB
    "openssh_binary": openssh.validate_binary,  # openssh-key-v1 without armour
    "ppk": ppk.validate,  # PuTTY PPK v2/v3
    "jwk": jwk.validate,  # JWK and JWK sets with private members
    "pkcs12": pkcs12.validate,  # PKCS#12 / PFX
    "partial_der": partial.validate,  # DER whose header was overwritten (anchored in the body)
    "hex_der": hexder.validate,  # hex-spelled DER: bare, wrapped, \x escapes, byte arrays
    "xml_rsa": xmlkey.validate,  # .NET <RSAKeyValue> with the private members
    "openssl_text": keytext.validate,  # `openssl pkey|rsa|ec -text` printouts
    "jks": jks.validate,  # Java KeyStore / JCEKS private-key entries (encrypted)
    "base64_pem": b64pem.validate,  # whole PEM files base64-encoded (kubeconfig, k8s Secrets)
    "gnupg": gnupg.validate,  # GnuPG private-keys-v1.d S-expressions, text and canonical
}
