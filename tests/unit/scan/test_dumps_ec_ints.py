"""EC keys held as CPython ints: a scalar whose point's x is an int of the stream, coordinates never tried."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath
from agent.scan.dumps import NumberSearch, ec_ints
from agent.scan.dumps.openssl_ec import CURVES
from agent.scan.dumps.pylong import PyLong
from tests import cores
from tests.unit.scan.test_dumps_pylong import _numbers as _rsa_numbers
from tests.unit.scan.test_dumps_pylong import heap, pyint

CURVE_NAMES = [c.curve.name for c in CURVES]


def _key(name: str) -> tuple[int, int, int, str]:
    curve = next(c.curve for c in CURVES if c.curve.name == name)
    key = ec.generate_private_key(curve)
    nums = key.private_numbers()
    pub = nums.public_numbers
    return nums.private_value, pub.x, pub.y, keymath.fingerprint(key.public_key())


def _found(data: bytes, chunk: int = cores.CHUNK, overlap: int = cores.OVERLAP) -> set[tuple]:
    return {
        (f.format, f.curve, f.fingerprint, f.validated)
        for f in cores.scan_numbers(data, chunk=chunk, overlap=overlap).findings
    }


def test_curve_constants_put_the_generator_on_each_curve() -> None:
    """a, b and p put G on the curve; n is G's order: (n-1)G = -G, and OpenSSL refuses n."""
    for c in CURVES:
        g = ec.derive_private_key(1, c.curve).public_key().public_numbers()
        assert (g.y**2 - g.x**3 - c.a * g.x - c.b) % c.p == 0, c.curve.name
        minus_g = ec.derive_private_key(c.n - 1, c.curve).public_key().public_numbers()
        assert (minus_g.x, minus_g.y) == (g.x, c.p - g.y), c.curve.name
        with pytest.raises(ValueError):
            ec.derive_private_key(c.n, c.curve)


@pytest.mark.parametrize("name", CURVE_NAMES)
@pytest.mark.parametrize("tagged", [False, True], ids=["3.11", "3.12"])
def test_scalar_and_its_public_x_as_ints_are_a_key(name: str, tagged: bool) -> None:
    """private_numbers() of a key (d, x, y as ints), its OpenSSL object gone."""
    d, x, y, fingerprint = _key(name)
    data = heap(pyint(x, tagged=tagged), pyint(y, tagged=tagged), pyint(d, tagged=tagged))
    assert _found(data) == {("ec-numbers-pylong", name, fingerprint, True)}


def test_scalar_before_its_x_windows_apart_is_found() -> None:
    """The point is derived when d is seen and matched when x comes, megabytes later."""
    d, x, _, fingerprint = _key("secp384r1")
    data = heap(pyint(d)) + os.urandom(3 << 20) + heap(pyint(x))
    assert _found(data, chunk=1 << 20, overlap=64 * 1024) == {
        ("ec-numbers-pylong", "secp384r1", fingerprint, True)
    }


def test_look_alikes_are_not_keys() -> None:
    """A scalar without its point, a point without its scalar, the scalar of another key beside
    a point, y without x, random 256-bit ints: nothing."""
    d1, _, _, _ = _key("secp256r1")
    _, x2, y2, _ = _key("secp256r1")
    d3, _, y3, _ = _key("secp256k1")
    randoms = [int.from_bytes(os.urandom(32), "big") | (1 << 255) for _ in range(20)]
    data = heap(pyint(d1), pyint(x2), pyint(y2), pyint(d3), pyint(y3), *map(pyint, randoms))
    assert _found(data) == set()


def test_coordinates_of_a_point_table_are_not_tried_as_scalars() -> None:
    """python-ecdsa keeps ~1,000 affine multiples of G per curve: recognised as points for free,
    so a budget of a few scalar multiplications still reaches the key behind them."""
    table = []
    for k in range(2, 400):
        g = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
        table += [g.x, g.y]
    d, x, y, fingerprint = _key("secp256r1")
    ints = [PyLong(v, 64 * i) for i, v in enumerate([*table, x, y, d])]
    search = ec_ints.EcIntKeys(format_name="ec-numbers-pylong", budget=4 * 21)
    found = search.feed(ints)
    assert [f.fingerprint for f in found] == [fingerprint]
    assert not search.limit_reached


def test_budget_bounds_the_work_and_is_reported() -> None:
    """Thousands of random key-sized ints cost at most the budget; the problem says so."""
    fakes = b"".join(pyint(int.from_bytes(os.urandom(32), "big") | (1 << 255)) for _ in range(3000))
    search = NumberSearch()
    assert search.feed(memoryview(fakes), 0, 0, len(fakes)) == []
    assert any("language-runtime numbers reached its budget" in p.detail for p in search.problems)


def test_each_search_that_hits_its_budget_says_so() -> None:
    """The RSA division budget and the EC budget are separate limits: both are reported."""
    n, p, _, _, _ = _rsa_numbers(2048)
    fakes = b"".join(pyint(int.from_bytes(os.urandom(32), "big") | (1 << 255)) for _ in range(3000))
    data = heap(pyint(n), pyint(p)) + fakes
    search = NumberSearch(max_divisions=0)
    search.feed(memoryview(data), 0, 0, len(data))
    details = [p.detail for p in search.problems]
    assert any("budget of big-integer checks" in d for d in details), details
    assert any("language-runtime numbers reached its budget" in d for d in details), details


def test_scalars_nearest_their_points_are_tried_first() -> None:
    """Hundreds of random P-384-sized numbers around a P-384 point, and a P-521 key whose
    scalar lies beside its point: the budget goes to the nearest first, so the key is found."""
    _, x384, y384, _ = _key("secp384r1")
    d, x, y, fingerprint = _key("secp521r1")
    fakes = [int.from_bytes(os.urandom(48), "big") | (1 << 383) for _ in range(400)]
    ints = [PyLong(v, (1 << 20) + 64 * i) for i, v in enumerate([x384, y384, *fakes])]
    ints += [PyLong(x, 4096), PyLong(y, 4096 + 112), PyLong(d, 4096 - 224)]
    search = ec_ints.EcIntKeys(format_name="ec-numbers-le", near=256 * 1024, budget=200)
    assert [f.fingerprint for f in search.feed(ints)] == [fingerprint]
    assert search.limit_reached  # the fakes then took the rest
