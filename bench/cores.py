"""Real process cores: egress-guard's number search vs `yara -r -p 2` with the PEM rules, in one run.

    .venv/bin/python bench/cores.py [/tmp/eg-cores] [--reuse] [--jobs 2]

Starts Python processes that generate RSA, EC and Ed25519 keys with
`cryptography` (never serialised: the keys live only as OpenSSL's numbers and
structs, as in a real server)
and hold a few hundred MiB of heap (random bytes, Python objects, or a mix),
captures each with `gcore` (gdb), and kills them. Then, page cache warm, times
`egress-guard sweep --dry-run` (number search on) and `yara -r -p 2` with the
PEM rules on the folder, and checks that each key was found by fingerprint.
Prints MiB/s, peak memory (see measure.py) and the ratio beside the targets
(<= 5x yara's time, <= 512 MiB). Never asserts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import measure
from measure import EGRESS_GUARD, PYTHON, MiB

CHILD = r"""
import hashlib, json, os, random, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

specs = sys.argv[1].split(",")
kind, heap_mib = sys.argv[2], int(sys.argv[3])
curves = {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1()}
keys = []
for spec in specs:  # use each key once, as a server would after start-up
    if spec.startswith("rsa"):
        k = rsa.generate_private_key(public_exponent=65537, key_size=int(spec[3:]))
        k.sign(b"hello", padding.PKCS1v15(), hashes.SHA256())
    elif spec == "ed25519":
        k = ed25519.Ed25519PrivateKey.generate()
        k.sign(b"hello")
    else:
        k = ec.generate_private_key(curves[spec])
        k.sign(b"hello", ec.ECDSA(hashes.SHA256()))
    keys.append(k)
fps = [
    "sha256:" + hashlib.sha256(k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    for k in keys
]
heap = []
rng = random.Random(3)
if kind in ("random", "mixed"):
    n = heap_mib if kind == "random" else heap_mib // 2
    heap += [os.urandom(1 << 20) for _ in range(n)]
if kind in ("objects", "mixed"):
    target = (heap_mib if kind == "objects" else heap_mib // 2) << 20
    size = 0
    while size < target:
        start = rng.randrange(1 << 30)
        ints = list(range(start, start + 200_000))
        strs = [f"session-{i}-{rng.random()}" for i in range(20_000)]
        heap += [ints, strs, {s: i for i, s in enumerate(strs[:5000])}]
        size += 200_000 * 36 + 20_000 * 90 + 5000 * 100
print("READY " + json.dumps(fps), flush=True)
sys.stdin.read()
"""

# (name, keys, heap kind, heap MiB)
CORES = (
    ("random-heap", "rsa2048,ec-p256", "random", 300),
    ("object-heap", "rsa3072,rsa4096,ed25519", "objects", 300),
    ("mixed-heap", "rsa2048,rsa2048,ec-p384", "mixed", 200),
)


def capture(out: Path) -> list[dict[str, object]]:
    measure.need("gcore", "apt-get install gdb")
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name, bits, kind, mib in CORES:
        print(f"capturing {name}: {bits}, {mib} MiB {kind} heap ...", flush=True)
        child = subprocess.Popen(
            [PYTHON, "-c", CHILD, bits, kind, str(mib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline().decode()
            if not line.startswith("READY "):
                raise SystemExit(f"{name}: child did not start")
            fps = json.loads(line[6:])
            prefix = out / f"core-{name}"
            subprocess.run(
                ["gcore", "-o", str(prefix), str(child.pid)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            core = Path(f"{prefix}.{child.pid}")
            final = out / f"core.{child.pid}"
            core.rename(final)
        finally:
            child.kill()
            child.wait()
        made.append(
            {
                "name": name,
                "path": str(final),
                "bits": bits,
                "heap": kind,
                "fingerprints": fps,
                "bytes": final.stat().st_size,
            }
        )
    (out / "cores.json").write_text(json.dumps(made, indent=1))
    return made


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("folder", nargs="?", default="/tmp/eg-cores")
    ap.add_argument("--reuse", action="store_true", help="use the cores a previous run captured")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rules-dir", default=str(measure.REPO / "rules"))
    ap.add_argument("--repeat", type=int, default=1, help="run each tool N times, keep the fastest")
    args = ap.parse_args()
    folder = Path(args.folder).resolve()
    if folder == measure.REPO or measure.REPO in folder.parents:
        ap.error("cores hold private keys: keep them outside the repository")
    index = folder / "cores.json"
    if args.reuse and index.is_file():
        cores = json.loads(index.read_text())
    else:
        if folder.exists():
            shutil.rmtree(folder)
        cores = capture(folder)
    files = [Path(c["path"]) for c in cores]
    nbytes = sum(p.stat().st_size for p in files)
    rules = sorted(Path(args.rules_dir).glob("pem*.yar"))
    rules_note = "PEM rules " + ", ".join(p.name for p in rules)
    if not rules:
        rules = sorted(Path(args.rules_dir).glob("*.yar"))
        rules_note = "no pem*.yar found: all rules " + ", ".join(p.name for p in rules)
    measure.warm(files)
    print(f"page cache warm; {measure.load_note()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="eg-cores-bench-"))
    cfg = tmp / "sweep.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{tmp / "state"}"\n\n[scan]\nnumber_search = "all"\n')
    jobs = str(args.jobs)

    print(f"{len(files)} cores, {nbytes / MiB:.0f} MiB; yara runs {rules_note}", flush=True)
    print("running: yara -r -p 2 ...", flush=True)
    yara = measure.best_of(
        args.repeat,
        ["yara", "-w", "-r", "-p", jobs, *map(str, rules), str(folder)],
        stdout=tmp / "yara.txt",
    )
    print("running: egress-guard sweep ...", flush=True)
    out = tmp / "eg.jsonl"
    eg = measure.best_of(
        args.repeat,
        [
            EGRESS_GUARD,
            "--log-format",
            "json",
            "sweep",
            "--config",
            str(cfg),
            "--dry-run",
            "--format",
            "jsonl",
            "--jobs",
            jobs,
            str(folder),
        ],
        stdout=out,
    )
    failed = eg.returncode not in (0, 1) or "Traceback" in eg.stderr
    if failed:
        print(f"egress-guard FAILED (exit {eg.returncode}): {eg.stderr.strip()[-800:]}")

    found: dict[str, set[str]] = {}
    for line in out.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        fps = found.setdefault(doc.get("file", {}).get("path", ""), set())
        fps.update(
            f.get("fingerprint")
            for f in doc.get("egress_guard", {}).get("findings", [])
            if f.get("fingerprint")
        )

    print()
    rows = []
    for label, res in (
        ("yara -r -p 2 (" + ("PEM rules" if "PEM" in rules_note else "all rules") + ")", yara),
        ("egress-guard sweep (number search)", eg),
    ):
        rows.append(
            [
                label,
                round(res.seconds, 2),
                round(nbytes / MiB / res.seconds, 1),
                round(res.seconds / yara.seconds, 2),
                round(res.rss_tree / MiB),
                round(res.pss_tree / MiB),
                round(res.rss_max / MiB),
                res.returncode,
            ]
        )
    print(
        measure.table(
            [
                "tool",
                "seconds",
                "MiB/s",
                "x yara time",
                "RSS tree MiB",
                "PSS tree MiB",
                "RSS max MiB",
                "rc",
            ],
            rows,
        )
    )
    print()
    krows = []
    total = hit = 0
    for c in cores:
        for bits, fp in zip(str(c["bits"]).split(","), c["fingerprints"], strict=True):
            ok = fp in found.get(c["path"], set())
            total += 1
            hit += ok
            krows.append(
                [
                    Path(c["path"]).name,
                    c["heap"],
                    f"{c['bytes'] / MiB:.0f}",
                    f"RSA {bits}" if bits.isdigit() else bits,  # cores.json of older runs: sizes
                    fp[:23] + "...",
                    "found" if ok else "MISSED",
                ]
            )
    print(measure.table(["core", "heap", "MiB", "key", "fingerprint", "egress-guard"], krows))
    print()
    ratio = eg.seconds / yara.seconds
    targets = [
        ("whole sweep <= 5x `yara -r -p 2` time", f"{ratio:.2f}x", None if failed else ratio <= 5),
        (
            "peak memory <= 512 MiB (PSS of the process tree)",
            f"{eg.pss_tree / MiB:.0f} MiB",
            None if failed else eg.pss_tree <= 512 * MiB,
        ),
        ("every planted key found by fingerprint", f"{hit}/{total}", hit == total),
    ]
    print(
        measure.table(
            ["target", "measured", "status"], [[t, m, measure.verdict(ok)] for t, m, ok in targets]
        )
    )
    print(f"\n{measure.load_note()}; raw outputs kept in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
