"""PEM files stored base64-encoded: kubeconfig `client-key-data`, Kubernetes Secrets (`tls.key`),
Helm values, CI variables. The whole PEM text is base64 (`LS0tLS1CRUdJTi...` is "-----BEGIN"),
so no armour and no DER prefix shows in the file.

The base64 run at the hit is decoded (line breaks and YAML indentation inside
it are dropped, the run is capped) and every private-key block in the decoded
text goes to the PEM validator; a bundle of certificate then key is common.
Findings keep the PEM format with a `base64-` prefix and the offset of the run.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import replace

from agent.scan.validators import Hit
from agent.scan.validators import pem as pem_validator
from agent.values import KeyFinding

MAX_RUN_CHARS = 96 * 1024  # base64 of the largest PEM private key a validator accepts, and more
_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n\t ]+")
_NOISE = re.compile(rb"[\r\n\t ]+")
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----")


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for the private keys in the base64-encoded PEM text at the hit."""
    if _inside_a_run(hit):
        return ()  # a later "-----BEGIN" of a bundle, aligned by chance: the run's start covers it
    run = _RUN.match(bytes(hit.data[hit.start : hit.start + MAX_RUN_CHARS]))
    if run is None:
        return ()
    chars = _NOISE.sub(b"", run.group())
    end = chars.find(b"=")
    if end >= 0:
        chars = chars[: end + 2 if chars[end + 1 : end + 2] == b"=" else end + 1]
    chars = chars[: len(chars) - len(chars) % 4]
    try:
        text = base64.b64decode(chars, validate=True)
    except (binascii.Error, ValueError):
        return ()
    decoded = memoryview(text)
    found: list[KeyFinding] = []
    for block in _BEGIN.finditer(text.decode("latin-1")):
        inner = replace(
            hit,
            data=decoded,
            start=block.start(),
            end=block.end(),
            base_offset=hit.offset - block.start(),
        )
        found += [
            replace(f, format=f"base64-{f.format}", offset=hit.offset)
            for f in pem_validator.validate(inner)
        ]
    return found


_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _inside_a_run(hit: Hit) -> bool:
    """True when base64 (possibly wrapped onto earlier lines) goes on before the hit."""
    before = bytes(hit.data[max(0, hit.start - 256) : hit.start]).rstrip(b" \t\r\n")
    return bool(before) and before[-1] in _ALPHABET
