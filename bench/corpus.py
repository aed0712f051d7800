"""Generate the benchmark corpus: fake dumps with planted keys, archives, real system binaries.

    .venv/bin/python bench/corpus.py [/tmp/eg-corpus] [--size-gb 1.2] [--seed 7] [--big]

Layout under the output folder (never inside the repository):
    plain/dumps/   dump-like files (random, zero pages, pointer words, ASCII) with keys planted
    plain/keys/    small stand-alone key files (id_rsa, server.key, key.jwk, ...)
    plain/bin/     real binaries and libraries copied from /usr/bin and /usr/lib/x86_64-linux-gnu
                   (negatives; /usr/bin/openssl embeds public test keys)
    packed/        tar.gz, zip (with a nested zip), xz, bz2 and zst of dumps and key files
    big/           with --big: a 4 GiB sparse-ish dump, keys near the end and across 2 GiB
    manifest.json  every planted key: file, member, encoding, algorithm, fingerprint, offset

Deterministic for a given seed (keys included: their primes come from the seed).
Prints counts and bytes per kind.
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import lzma
import os
import random
import shutil
import sys
import tarfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keygen
import numpy as np
import zstandard
from cryptography.hazmat.primitives.asymmetric import ec

PAGE = 4096
MiB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Planted:
    path: str  # relative to the corpus root
    member: str | None
    encoding: str
    algorithm: str
    fingerprint: str
    offset: int


@dataclass
class Manifest:
    seed: int
    planted: list[Planted] = field(default_factory=list)
    files: dict[str, dict[str, object]] = field(default_factory=dict)

    def add_file(self, root: Path, path: Path, kind: str) -> None:
        self.files[str(path.relative_to(root))] = {"kind": kind, "bytes": path.stat().st_size}


class KeyPool:
    """A fixed set of seeded keys, handed out round-robin per kind."""

    def __init__(self, rng: random.Random) -> None:
        t0 = time.monotonic()
        self.keys: dict[str, list[object]] = {
            "rsa": [keygen.rsa_from_seed(2048, rng) for _ in range(8)]
            + [keygen.rsa_from_seed(3072, rng) for _ in range(2)]
            + [keygen.rsa_from_seed(4096, rng)],
            "ec": [keygen.ec_from_seed(ec.SECP256R1(), rng) for _ in range(4)]
            + [keygen.ec_from_seed(ec.SECP384R1(), rng) for _ in range(2)],
            "ed25519": [keygen.ed25519_from_seed(rng) for _ in range(4)],
        }
        self._next = dict.fromkeys(self.keys, 0)
        self.rng = rng
        self.encodings = list(keygen.ENCODINGS)
        self._enc_next = 0
        print(f"keys: generated in {time.monotonic() - t0:.1f} s", file=sys.stderr)

    def next_encoded(self) -> keygen.Encoded:
        """The next encoding in turn, applied to the next key of a kind it supports."""
        encoding = self.encodings[self._enc_next % len(self.encodings)]
        self._enc_next += 1
        kinds = keygen.ENCODINGS[encoding]
        kind = kinds[self.rng.randrange(len(kinds))]
        i = self._next[kind]
        self._next[kind] = i + 1
        key = self.keys[kind][i % len(self.keys[kind])]
        return keygen.encode(key, encoding, self.rng)  # type: ignore[arg-type]


class Filler:
    """Dump-like filler from a seeded numpy generator: fast enough for a GB."""

    WORDS = (
        b"malloc free thread pool request handler connection session timeout retry "
        b"GET POST /api/v1/items user_id=42 status=200 latency_ms=13 libc.so.6 "
        b"pthread_mutex_lock std::vector<int> Traceback (most recent call last) "
        b"ERROR WARN INFO DEBUG config.yaml /var/log/app.log 0x7ffd3a2b1c00 "
    ).split()

    def __init__(self, seed: int) -> None:
        self.np = np.random.default_rng(seed)
        words = [self.WORDS[i] for i in self.np.integers(0, len(self.WORDS), 400_000)]
        self.text = b" ".join(words).replace(b"ERROR", b"\nERROR")

    def segment(self, kind: str, size: int) -> bytes:
        if kind == "random":
            return self.np.bytes(size)
        if kind == "zero":
            return bytes(size)
        if kind == "pointers":
            n = size // 8
            base = np.uint64(0x00007F0000000000)
            words = (self.np.integers(0, 1 << 36, n, dtype=np.uint64) << np.uint64(3)) | base
            mask = self.np.random(n) < 0.3  # many small ints and NULLs between pointers
            words[mask] = self.np.integers(0, 256, int(mask.sum()), dtype=np.uint64)
            return words.astype("<u8").tobytes()
        if kind == "ints":
            return self.np.integers(0, 4096, size // 4, dtype=np.uint32).astype("<u4").tobytes()
        start = int(self.np.integers(0, len(self.text) - size)) if size < len(self.text) else 0
        chunk = self.text[start : start + size]
        return chunk + bytes(size - len(chunk))

    def dump(self, size: int, profile: dict[str, float]) -> bytearray:
        kinds = list(profile)
        weights = np.array([profile[k] for k in kinds])
        weights /= weights.sum()
        out = bytearray()
        while len(out) < size:
            pages = int(self.np.integers(1, 64))
            kind = kinds[int(self.np.choice(len(kinds), p=weights))]
            out += self.segment(kind, min(pages * PAGE, size - len(out)))
        return out


PROFILES = {
    "heap": {"random": 0.2, "zero": 0.25, "pointers": 0.3, "ascii": 0.15, "ints": 0.1},
    "noisy": {"random": 0.6, "zero": 0.1, "pointers": 0.2, "ascii": 0.1},
    "sparse": {"zero": 0.6, "pointers": 0.2, "ascii": 0.1, "ints": 0.1},
}
DUMP_NAMES = ("core.{n}", "app-{n}.dmp", "worker.{n}.core", "heap-{n}.mem", "crash-{n}.dump")


def plant_keys(
    buf: bytearray, pool: KeyPool, count: int, rng: random.Random
) -> list[tuple[int, keygen.Encoded]]:
    """Overwrite `count` random, non-overlapping spots of buf with encoded keys."""
    out: list[tuple[int, keygen.Encoded]] = []
    if count == 0:
        return out
    span = len(buf) // count
    for i in range(count):
        enc = pool.next_encoded()
        lo = i * span
        hi = max(lo + 1, (i + 1) * span - len(enc.data) - 1)
        off = rng.randrange(lo, hi)
        if enc.encoding.startswith("rsa-limbs"):
            off -= off % 16  # malloc hands out 16-byte aligned blocks: BIGNUM limbs sit aligned
        buf[off : off + len(enc.data)] = enc.data
        out.append((off, enc))
    return out


def make_dump(
    filler: Filler, pool: KeyPool, rng: random.Random, size: int, keys: int
) -> tuple[bytearray, list[tuple[int, keygen.Encoded]]]:
    profile = PROFILES[rng.choice(list(PROFILES))]
    buf = filler.dump(size, profile)
    return buf, plant_keys(buf, pool, keys, rng)


def write_dumps(
    root: Path, budget: int, filler: Filler, pool: KeyPool, rng: random.Random, man: Manifest
) -> None:
    folder = root / "plain" / "dumps"
    folder.mkdir(parents=True, exist_ok=True)
    written, n = 0, 0
    while written < budget:
        size = min(rng.randrange(2 * MiB, 40 * MiB), budget - written)
        size = max(size, 64 * 1024)
        keys = 0 if rng.random() < 0.3 else rng.randint(1, 4)
        buf, planted = make_dump(filler, pool, rng, size, keys)
        path = folder / rng.choice(DUMP_NAMES).format(n=1000 + n)
        path.write_bytes(buf)
        rel = str(path.relative_to(root))
        man.planted += [
            Planted(rel, None, e.encoding, e.algorithm, e.fingerprint, off) for off, e in planted
        ]
        man.add_file(root, path, "dump")
        written += size
        n += 1


KEYFILE_NAMES = {
    "pem-pkcs8": "service.key",
    "pem-pkcs1": "server.key",
    "pem-sec1": "ec.pem",
    "der-pkcs8": "key.p8.der",
    "der-pkcs1": "rsa.der",
    "der-sec1": "ec.der",
    "openssh": "id_key",
    "jwk": "key.jwk",
    "rsa-limbs-le": "limbs.bin",
}


def write_keyfiles(root: Path, pool: KeyPool, man: Manifest) -> None:
    folder = root / "plain" / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    while i < (len(keygen.ENCODINGS) - 1) * 2:
        enc = pool.next_encoded()
        if enc.encoding.startswith("rsa-limbs"):
            continue  # bare numbers are searched in dumps only; a lone limbs file is not a dump
        i += 1
        path = folder / f"{i:02d}-{KEYFILE_NAMES[enc.encoding]}"
        path.write_bytes(enc.data)
        man.planted.append(
            Planted(
                str(path.relative_to(root)), None, enc.encoding, enc.algorithm, enc.fingerprint, 0
            )
        )
        man.add_file(root, path, "keyfile")


def write_binaries(root: Path, budget: int, rng: random.Random, man: Manifest) -> None:
    folder = root / "plain" / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    candidates: list[Path] = []
    for base in (Path("/usr/bin"), Path("/usr/lib/x86_64-linux-gnu")):
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink() and 0 < p.stat().st_size < 128 * MiB:
                    candidates.append(p)
    candidates.sort()
    must = [
        Path("/usr/bin/openssl"),
        *sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libcrypto.so.*")),
    ]
    rest = [p for p in candidates if p not in must]
    rng.shuffle(rest)
    written = 0
    for src in [p for p in must if p.is_file()] + rest:
        if written >= budget:
            break
        dest = folder / str(src).strip("/").replace("/", "__")
        try:
            shutil.copyfile(src, dest)
        except OSError:
            continue
        written += dest.stat().st_size
        man.add_file(root, dest, "binary")


def write_packed(
    root: Path, budget: int, filler: Filler, pool: KeyPool, rng: random.Random, man: Manifest
) -> None:
    """Archives of dumps and key files; `budget` is the uncompressed input size."""
    folder = root / "packed"
    folder.mkdir(parents=True, exist_ok=True)
    per_kind = (
        budget // 6
    )  # tar.gz and zip get two shares between them, the single-stream kinds one each
    n = 0

    def member(size: int, keys: int) -> tuple[bytes, list[tuple[int, keygen.Encoded]]]:
        buf, planted = make_dump(filler, pool, rng, size, keys)
        return bytes(buf), planted

    def record(
        path: Path, member_name: str | None, planted: list[tuple[int, keygen.Encoded]]
    ) -> None:
        rel = str(path.relative_to(root))
        man.planted += [
            Planted(rel, member_name, e.encoding, e.algorithm, e.fingerprint, off)
            for off, e in planted
        ]

    # single-stream compressors: one dump each
    single = {
        "gz": lambda b: __import__("gzip").compress(b, compresslevel=6, mtime=0),
        "xz": lambda b: lzma.compress(b, preset=1),
        "bz2": lambda b: bz2.compress(b, compresslevel=9),
        "zst": lambda b: zstandard.ZstdCompressor(level=3).compress(b),
    }
    for ext, compress in single.items():
        done = 0
        while done < per_kind:
            size = min(rng.randrange(4 * MiB, 24 * MiB), per_kind - done + MiB)
            data, planted = member(size, rng.randint(0, 2))
            name = f"core.{2000 + n}"
            path = folder / f"{name}.{ext}"
            path.write_bytes(compress(data))
            record(path, name if planted else None, planted)
            man.add_file(root, path, f"packed-{ext}")
            done += size
            n += 1

    # tar.gz of a support bundle: dumps plus key files
    done = 0
    while done < per_kind:
        path = folder / f"bundle-{n}.tar.gz"
        n += 1
        with tarfile.open(path, "w:gz", compresslevel=6) as tar:
            for j in range(3):
                size = rng.randrange(2 * MiB, 12 * MiB)
                data, planted = member(size, rng.randint(0, 2))
                info = tarfile.TarInfo(f"bundle/dump-{j}.core")
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
                record(path, info.name, planted)
                done += size
            enc = pool.next_encoded()
            info = tarfile.TarInfo("bundle/conf/tls.key")
            info.size, info.mtime = len(enc.data), 0
            tar.addfile(info, io.BytesIO(enc.data))
            record(path, info.name, [(0, enc)])
        man.add_file(root, path, "packed-tar.gz")

    # zip with dumps and a nested zip holding a key file
    done = 0
    while done < per_kind:
        path = folder / f"evidence-{n}.zip"
        n += 1
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for j in range(2):
                size = rng.randrange(2 * MiB, 12 * MiB)
                data, planted = member(size, rng.randint(0, 2))
                name = f"dumps/proc-{j}.dmp"
                zf.writestr(
                    zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED
                )
                record(path, name, planted)
                done += size
            inner = io.BytesIO()
            enc = pool.next_encoded()
            while enc.encoding.startswith("rsa-limbs"):
                enc = pool.next_encoded()  # a lone key file is not a dump: no number search
            with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as iz:
                iz.writestr(zipfile.ZipInfo("secrets/app.key", (1980, 1, 1, 0, 0, 0)), enc.data)
            zf.writestr(
                zipfile.ZipInfo("nested/inner.zip", (1980, 1, 1, 0, 0, 0)), inner.getvalue()
            )
            record(path, "nested/inner.zip/secrets/app.key", [(0, enc)])
        man.add_file(root, path, "packed-zip")


def write_big(
    root: Path,
    filler: Filler,
    pool: KeyPool,
    rng: random.Random,
    man: Manifest,
    size: int = 4 * 1024**3,
) -> None:
    """A 4 GiB dump: 1 MiB of filler every 64 MiB, holes between, keys near 2 GiB and the end."""
    folder = root / "big"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "huge.core"
    rel = str(path.relative_to(root))
    with path.open("wb") as f:
        f.truncate(size)
        for off in range(0, size, 64 * MiB):
            f.seek(off)
            f.write(filler.dump(MiB, PROFILES["heap"]))
        for off in (
            2 * 1024**3 - 700,
            size - 3 * MiB,
        ):  # across a power-of-two boundary; near the end
            enc = pool.next_encoded()
            while enc.encoding not in ("pem-pkcs8", "pem-pkcs1", "der-pkcs8", "openssh"):
                enc = pool.next_encoded()
            f.seek(off)
            f.write(enc.data)
            man.planted.append(
                Planted(rel, None, enc.encoding, enc.algorithm, enc.fingerprint, off)
            )
    man.add_file(root, path, "big")


def summary(man: Manifest) -> str:
    kinds: dict[str, list[int]] = {}
    for info in man.files.values():
        k = kinds.setdefault(str(info["kind"]), [0, 0])
        k[0] += 1
        k[1] += int(info["bytes"])  # type: ignore[call-overload]
    lines = [f"{'kind':<16}{'files':>8}{'MB':>10}"]
    for kind, (count, nbytes) in sorted(kinds.items()):
        lines.append(f"{kind:<16}{count:>8}{nbytes / 1e6:>10.1f}")
    total = sum(v[1] for v in kinds.values())
    lines.append(f"{'total':<16}{sum(v[0] for v in kinds.values()):>8}{total / 1e6:>10.1f}")
    encs: dict[str, int] = {}
    for p in man.planted:
        encs[p.encoding] = encs.get(p.encoding, 0) + 1
    lines.append(
        f"planted keys: {len(man.planted)} in {len({p.path for p in man.planted})} files: "
        + ", ".join(f"{k} {v}" for k, v in sorted(encs.items()))
    )
    return "\n".join(lines)


def load_manifest(root: Path) -> dict[str, object]:
    """The manifest a previous run wrote (for the other benchmarks)."""
    return json.loads((root / "manifest.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", nargs="?", default="/tmp/eg-corpus")
    ap.add_argument(
        "--size-gb", type=float, default=1.2, help="corpus size without --big (default 1.2)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--big", action="store_true", help="also write a 4 GiB sparse-ish dump")
    args = ap.parse_args()
    root = Path(args.out).resolve()
    if root == REPO or REPO in root.parents:
        ap.error("the corpus holds private keys: write it outside the repository")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    t0 = time.monotonic()
    rng = random.Random(args.seed)
    filler = Filler(args.seed)
    pool = KeyPool(rng)
    man = Manifest(seed=args.seed)
    total = int(args.size_gb * 1e9)
    write_binaries(root, total * 25 // 100, rng, man)
    write_keyfiles(root, pool, man)
    write_packed(root, total * 20 // 100, filler, pool, rng, man)
    on_disk = sum(int(v["bytes"]) for v in man.files.values())  # type: ignore[call-overload]
    write_dumps(root, max(total - on_disk, 0), filler, pool, rng, man)
    if args.big:
        write_big(root, filler, pool, rng, man)
    doc = {"seed": man.seed, "files": man.files, "planted": [asdict(p) for p in man.planted]}
    (root / "manifest.json").write_text(json.dumps(doc, indent=1))
    print(f"corpus {root} written in {time.monotonic() - t0:.0f} s (seed {args.seed})")
    print(summary(man))
    return 0


if __name__ == "__main__":
    sys.exit(main())
