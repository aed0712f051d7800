"""Self-test samples for the memory formats: DER bodies whose header a freed buffer lost."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.scan import keymath
from agent.scan.samples.base import Sample, SampleMaker

_NO_ENC = serialization.NoEncryption()


def _pointers(count: int) -> bytes:
    """What an allocator writes over the start of a freed chunk: heap pointers."""
    base = 0x5555_5555_0000 + int.from_bytes(os.urandom(2), "little") * 16
    return b"".join((base + 16 * i).to_bytes(8, "little") for i in range(count))


def _surround(body: bytes) -> bytes:
    return bytes(256) + body + bytes(256)


def _rsa(bits: int, lost: int) -> Sample:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, _NO_ENC
    )
    damaged = _pointers(lost // 8) + der[lost:]
    return Sample(_surround(damaged), keymath.fingerprint(key.public_key()))


def _sec1(curve: ec.EllipticCurve) -> Sample:
    key = ec.generate_private_key(curve)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, _NO_ENC
    )
    # the SEQUENCE header (2 or 3 bytes) is gone; the body from version 1 on survives
    body = der[der.index(b"\x02\x01\x01") :]
    return Sample(_surround(_pointers(2) + body), keymath.fingerprint(key.public_key()))


SAMPLES: Mapping[str, SampleMaker] = {
    # 16 bytes lost: the header and n's INTEGER header, n itself intact
    "der_partial_rsa_2048": lambda: _rsa(2048, 16),
    # 32 bytes lost: the top of n too; p and q rebuild it
    "der_partial_rsa_pointers": lambda: _rsa(2048, 32),
    "der_partial_sec1_p256": lambda: _sec1(ec.SECP256R1()),
    "der_partial_sec1_p384": lambda: _sec1(ec.SECP384R1()),
}
