"""Inventory matches in dump memory: primes of registered RSA keys, bare scalars of registered EC keys.

Only with an inventory: without one, a bare 32- or 48-byte number is never
reported (any 32 bytes are a valid scalar). A stored prime c of a registered
key is proven by n % c == 0; a stored EC scalar by deriving its public point
and comparing it with the registered one. Both are bounded per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan.dumps.candidates import U64, Islands, Positions, View, numbers_of_size
from agent.scan.dumps.openssl_ec import CURVES
from agent.values import KeyFinding

if TYPE_CHECKING:
    from agent.scan.inventory import Inventory, KnownKey

RULE_PRIME = "inventory_prime"
RULE_SCALAR = "inventory_ec_scalar"
MIN_SCALAR_CELLS = 3
MAX_SCALAR_CHECKS = 5000  # per stream; each costs one scalar multiplication

_CURVES: dict[str, ec.EllipticCurve] = {
    "secp256r1": ec.SECP256R1(),
    "prime256v1": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
}
_ORDERS = {c.curve.name: c.n for c in CURVES}  # group orders, shared with the OpenSSL EC search


class WindowAccess(Protocol):
    """What the matcher needs from the window being searched."""

    @property
    def owner(self) -> _Budget: ...

    def absolute(self, view: View, idx: int) -> int: ...
    def owns(self, offset: int) -> bool: ...
    def value(self, view: View, idx: int, cells: int) -> int: ...

    @property
    def positions(self) -> dict[tuple[int, int], Positions]: ...


class _Budget(Protocol):
    def spend_division(self) -> bool: ...
    def claim(self, n: int) -> bool: ...
    def note_limit(self, detail: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _EcKey:
    key: KnownKey
    curve: ec.EllipticCurve
    order: int
    size: int  # scalar bytes


class Matcher:
    """Registered keys worth looking for in memory."""

    def __init__(self, inventory: Inventory) -> None:
        self.rsa = [
            k
            for k in inventory.keys
            if k.algorithm == "rsa" and k.rsa_n and k.rsa_n.bit_length() >= 1024
        ]
        self.ec = [
            _EcKey(
                k,
                _CURVES[k.curve],
                _ORDERS[k.curve.replace("prime256v1", "secp256r1")],
                (_CURVES[k.curve].key_size + 7) // 8,
            )
            for k in inventory.keys
            if k.algorithm == "ec" and k.curve in _CURVES and k.ec_public_point
        ]
        self._scalar_checks = MAX_SCALAR_CHECKS
        self._found: set[str] = set()

    @property
    def has_ec(self) -> bool:
        """True when some registered key is an EC key we can look for."""
        return bool(self.ec)

    def search(
        self, win: WindowAccess, view: View, words: U64, islands: Islands
    ) -> list[KeyFinding]:
        """Findings for registered keys in one byte order of the window."""
        out: list[KeyFinding] = []
        for key in self.rsa:
            out += self._primes(win, view, words, islands, key)
        if self.ec and view.phase == 0 and view.order in ("le", "be"):
            out += self._scalars(win, view, islands)
        return out

    def _primes(
        self, win: WindowAccess, view: View, words: U64, islands: Islands, key: KnownKey
    ) -> list[KeyFinding]:
        n = key.rsa_n
        assert n is not None
        if key.fingerprint in self._found:
            return []
        cells = (n.bit_length() // 2 + 63) // 64
        cand = numbers_of_size(words, islands, view, cells, cache=win.positions)
        for idx in cand.idx[cand.at_start].tolist():
            offset = win.absolute(view, idx)
            if not win.owns(offset) or not win.owner.spend_division():
                continue
            c = win.value(view, idx, cells)
            if 1 < c < n and n % c == 0:
                self._found.add(key.fingerprint)
                return [
                    KeyFinding(
                        rule=RULE_PRIME,
                        format=f"rsa-prime-{view.order}",
                        algorithm="rsa",
                        offset=offset,
                        validated=True,
                        bits=n.bit_length(),
                        fingerprint=key.fingerprint,
                        inventory_name=key.name,
                    )
                ]
        return []

    def _scalars(self, win: WindowAccess, view: View, islands: Islands) -> list[KeyFinding]:
        out: list[KeyFinding] = []
        starts, ends = islands.start, islands.start + islands.length
        for item in self.ec:
            if item.key.fingerprint in self._found:
                continue
            # a 521-bit scalar's top limb is mostly zero bytes, so its island is one cell short
            need = item.size // 8
            cells = (item.size + 7) // 8
            for start in starts[(ends - starts) >= need].tolist():
                offset = win.absolute(view, start)
                if not win.owns(offset):
                    continue
                if self._scalar_checks <= 0:
                    win.owner.note_limit("the EC scalar search reached its budget of point checks")
                    return out
                raw = win.value(view, start, cells)
                s = (
                    raw & ((1 << (8 * item.size)) - 1)
                    if view.order == "le"
                    else raw >> (8 * (8 * cells - item.size))
                )
                if not 0 < s < item.order:
                    continue
                self._scalar_checks -= 1
                point = (
                    ec.derive_private_key(s, item.curve)
                    .public_key()
                    .public_bytes(
                        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                    )
                )
                if point == item.key.ec_public_point:
                    self._found.add(item.key.fingerprint)
                    out.append(
                        KeyFinding(
                            rule=RULE_SCALAR,
                            format=f"ec-scalar-{view.order}",
                            algorithm="ec",
                            offset=offset,
                            validated=True,
                            bits=item.curve.key_size,
                            curve=item.curve.name,
                            fingerprint=item.key.fingerprint,
                            inventory_name=item.key.name,
                        )
                    )
                    break
        return out
