"""Real processes holding fresh keys, captured as core files with gdb's gcore (nothing is stored).

Each holder prints `READY` once its keys are loaded and then waits on stdin,
so the core is taken while the keys are live. `scan_numbers` runs the number
search over a file in overlapping windows exactly as the scanner does.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent.scan import dumps
from agent.values import KeyFinding, ScanProblem

CHUNK = 64 * 1024 * 1024
OVERLAP = 1024 * 1024


@contextmanager
def holder(
    argv: list[str], *, env: dict[str, str] | None = None, deadline: float = 60.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start a process, wait (polling with a deadline) for READY; yield it and what it printed."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout is not None
        buf = b""
        end = time.monotonic() + deadline
        while b"READY" not in buf:
            left = end - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} did not get ready (exit {proc.poll()})")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if ready:
                buf += os.read(proc.stdout.fileno(), 4096)
        yield proc, buf.decode(errors="replace")
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def gcore(pid: int, dest: Path) -> Path:
    """Capture a core of a live process with gdb's gcore; returns the core's path."""
    prefix = dest / "core"
    subprocess.run(
        ["gcore", "-o", str(prefix), str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    path = Path(f"{prefix}.{pid}")
    assert path.is_file(), "gcore wrote no core"
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_core(argv: list[str], port: int, dest: Path, *, remove: tuple[Path, ...] = ()) -> Path:
    """Start a server, wait until it listens on 127.0.0.1:port, delete `remove` (its key
    files: only memory holds the key then), capture its core and stop it."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_listening(port)
        for path in remove:
            path.unlink()
        return gcore(proc.pid, dest)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        assert proc.stdin is not None
        proc.stdin.close()


def wait_listening(port: int, deadline: float = 30.0) -> None:
    """Poll until something accepts connections on 127.0.0.1:port."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        select.select([], [], [], 0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


PYTHON_RSA = textwrap.dedent(
    """
    import os, sys
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    junk = [os.urandom(1 << 20) for _ in range(int(sys.argv[1]))]
    held = []
    for bits in map(int, sys.argv[2:]):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        buf = bytearray(key.private_bytes(serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        del key
        held.append(serialization.load_der_private_key(bytes(buf), None))
        buf[:] = bytes(len(buf))
    for k in held:
        pub = k.public_key().public_bytes(serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        print(pub.hex(), flush=True)
    print("READY", flush=True)
    sys.stdin.read()
    """
)

PYTHON_EC = textwrap.dedent(
    """
    import sys
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, x448, x25519
    curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1(),
              "k256": ec.SECP256K1()}
    okp = {"ed25519": ed25519.Ed25519PrivateKey, "x25519": x25519.X25519PrivateKey,
           "ed448": ed448.Ed448PrivateKey, "x448": x448.X448PrivateKey}
    held = []
    for spec in sys.argv[1:]:  # generated:p256, decoded:p384, generated:ed25519, ...
        how, name = spec.split(":")
        key = okp[name].generate() if name in okp else ec.generate_private_key(curves[name])
        if how == "decoded":
            buf = bytearray(key.private_bytes(serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            del key
            key = serialization.load_pem_private_key(bytes(buf), None)
            buf[:] = bytes(len(buf))
        if name in curves:
            key.sign(b"used once", ec.ECDSA(hashes.SHA256()))
        elif name.startswith("ed"):
            key.sign(b"used once")
        else:
            key.exchange(okp[name].generate().public_key())
        held.append(key)
        pub = key.public_key().public_bytes(serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        print(pub.hex(), flush=True)
    print("READY", flush=True)
    sys.stdin.read()
    """
)

PYTHON_INTS = textwrap.dedent(
    """
    import sys
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    held = []
    for bits in map(int, sys.argv[1:]):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        nums = key.private_numbers()  # Python ints, as python-rsa or pycryptodome hold them
        held.append((nums.public_numbers.n, nums.public_numbers.e, nums.d, nums.p, nums.q))
        pub = key.public_key().public_bytes(serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        print(pub.hex(), flush=True)
        del key, nums  # OpenSSL clears the private BIGNUMs: only the ints are left
    print("READY", flush=True)
    sys.stdin.read()
    """
)

PYTHON_EC_INTS = textwrap.dedent(
    """
    import sys
    import ecdsa
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1(),
              "k256": ec.SECP256K1()}
    pure = {"p256": ecdsa.NIST256p, "p384": ecdsa.NIST384p, "p521": ecdsa.NIST521p,
            "k256": ecdsa.SECP256k1}
    held = []
    for spec in sys.argv[1:]:  # numbers:p256 (private_numbers()), ecdsa:k256 (python-ecdsa)
        how, name = spec.split(":")
        if how == "numbers":
            key = ec.generate_private_key(curves[name])
            nums = key.private_numbers()  # as JWK libraries make them
            held.append((nums.private_value, nums.public_numbers.x, nums.public_numbers.y))
            der = key.public_key().public_bytes(serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo)
            del key, nums  # OpenSSL clears the private BIGNUM: only the ints are left
        else:
            sk = ecdsa.SigningKey.generate(curve=pure[name])
            sk.sign(b"used once")
            held.append(sk)
            der = sk.get_verifying_key().to_der()
        print(der.hex(), flush=True)
    print("READY", flush=True)
    sys.stdin.read()
    """
)

PYTHON_PUBLIC_ONLY = textwrap.dedent(
    """
    import datetime, sys
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    held = []
    for bits in (2048, 3072):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "public")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM)
        del key
        held.append(x509.load_pem_x509_certificate(pem))
        held.append(held[-1].public_key())
    held.append(ec.generate_private_key(ec.SECP256R1()).public_key())
    print("READY", flush=True)
    sys.stdin.read()
    """
)

JAVA_HOLDER = textwrap.dedent(
    """
    import java.nio.file.*;
    import java.security.*;
    import java.security.spec.*;
    public class Holder {
        public static void main(String[] a) throws Exception {
            byte[] der = Files.readAllBytes(Paths.get(a[0]));
            PrivateKey k = KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(der));
            java.util.Arrays.fill(der, (byte) 0);
            Files.delete(Paths.get(a[0]));
            System.out.println("READY " + k.getAlgorithm());
            System.out.flush();
            System.in.read();
            System.out.println(k.hashCode());
        }
    }
    """
)

JAVA_EC_HOLDER = textwrap.dedent(
    """
    import java.nio.file.*;
    import java.security.*;
    import java.security.spec.*;
    public class EcHolder {
        static String hex(byte[] b) {
            StringBuilder sb = new StringBuilder();
            for (byte x : b) sb.append(String.format("%02x", x));
            return sb.toString();
        }
        public static void main(String[] a) throws Exception {
            java.util.List<Object> held = new java.util.ArrayList<>();
            SecureRandom random = new SecureRandom();
            for (String spec : a) {  // generate:secp256r1, pkcs8:FILE (and FILE.pub), public:FILE
                String how = spec.substring(0, spec.indexOf(':'));
                String arg = spec.substring(spec.indexOf(':') + 1);
                for (int i = 0; i < 200; i++) held.add(random.generateSeed(32));  // look-alikes
                if (how.equals("public")) {
                    byte[] der = Files.readAllBytes(Paths.get(arg));
                    held.add(KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(der)));
                    continue;
                }
                PrivateKey priv;
                PublicKey pub;
                if (how.equals("generate")) {
                    KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
                    g.initialize(new ECGenParameterSpec(arg));
                    KeyPair kp = g.generateKeyPair();
                    priv = kp.getPrivate();
                    pub = kp.getPublic();
                } else {  // a key and its certificate's public key, as a server loads them
                    byte[] der = Files.readAllBytes(Paths.get(arg));
                    priv = KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(der));
                    java.util.Arrays.fill(der, (byte) 0);
                    Files.delete(Paths.get(arg));
                    byte[] spki = Files.readAllBytes(Paths.get(arg + ".pub"));
                    held.add(KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(spki)));
                    pub = null;
                }
                Signature s = Signature.getInstance("SHA256withECDSA");
                s.initSign(priv);
                s.update(new byte[] {1});
                s.sign();
                held.add(priv);
                if (pub != null) {
                    held.add(pub);
                    System.out.println(hex(pub.getEncoded()));
                }
            }
            System.out.println("READY");
            System.out.flush();
            System.in.read();
            System.out.println(held.size());
        }
    }
    """
)

NODE_HOLDER = textwrap.dedent(
    """
    const fs = require('fs');
    const pem = fs.readFileSync(process.argv[process.argv.length - 1]);
    fs.unlinkSync(process.argv[process.argv.length - 1]);
    const key = require('crypto').createPrivateKey(pem);
    const sig = require('crypto').sign('sha256', Buffer.from('x'), key);
    console.log('READY ' + sig.length);
    process.stdin.on('data', () => {});
    """
)

# Go keeps numbers as big.Int words (little-endian, each alone in its allocation):
# RSA via rsa.GenerateKey, EC via ecdsa.GenerateKey; each key signs once, its
# public key is printed as DER SubjectPublicKeyInfo in hex
GO_HOLDER = textwrap.dedent(
    """
    package main

    import (
        "bufio"
        "crypto"
        "crypto/ecdsa"
        "crypto/elliptic"
        "crypto/rand"
        "crypto/rsa"
        "crypto/sha256"
        "crypto/x509"
        "fmt"
        "os"
    )

    var held []crypto.Signer

    func main() {
        digest := sha256.Sum256([]byte("x"))
        for _, bits := range []int{2048, 3072} {
            k, err := rsa.GenerateKey(rand.Reader, bits)
            if err != nil {
                panic(err)
            }
            held = append(held, k)
        }
        for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P521()} {
            k, err := ecdsa.GenerateKey(c, rand.Reader)
            if err != nil {
                panic(err)
            }
            held = append(held, k)
        }
        for _, k := range held {
            if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
                panic(err)
            }
            der, err := x509.MarshalPKIXPublicKey(k.Public())
            if err != nil {
                panic(err)
            }
            fmt.Printf("%x\\n", der)
        }
        fmt.Println("READY")
        bufio.NewReader(os.Stdin).ReadString('\\n')
    }
    """
)


def python_argv(script: str, *args: str) -> list[str]:
    """Run a script with this interpreter (it has cryptography)."""
    return [sys.executable, "-c", script, *args]


@dataclass
class NumberScan:
    """What the number search found in one file, and how fast."""

    findings: list[KeyFinding] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    seconds: float = 0.0
    size: int = 0
    info: dumps.DumpInfo | None = None

    @property
    def fingerprints(self) -> set[str | None]:
        return {f.fingerprint for f in self.findings}

    @property
    def by_fingerprint(self) -> dict[str | None, KeyFinding]:
        return {f.fingerprint: f for f in self.findings}

    @property
    def mib_per_second(self) -> float:
        return self.size / (1 << 20) / max(self.seconds, 1e-9)


def scan_numbers(
    data_or_path: Path | bytes, chunk: int = CHUNK, overlap: int = OVERLAP
) -> NumberScan:
    """Feed a file (or bytes) to inspect() and NumberSearch in overlapping windows, as the scanner does."""
    out = NumberScan()
    search: dumps.NumberSearch | None = None
    started = time.perf_counter()
    if isinstance(data_or_path, bytes):
        size = len(data_or_path)
        read = lambda pos, n: data_or_path[pos : pos + n]  # noqa: E731
    else:
        fd = os.open(data_or_path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        read = lambda pos, n: os.pread(fd, n, pos)  # noqa: E731
    try:
        pos = 0
        while True:
            data = read(pos, chunk)
            last = pos + len(data) >= size
            if search is None:
                out.info = dumps.inspect(data, size)
                search = dumps.NumberSearch(memory=out.info)
            own_end = len(data) if last else len(data) - overlap
            view = memoryview(data)
            out.findings += search.feed(view, pos, pos, pos + own_end)
            view.release()
            if last:
                break
            pos += chunk - overlap
    finally:
        if not isinstance(data_or_path, bytes):
            os.close(fd)
    out.seconds = time.perf_counter() - started
    out.size = size
    out.problems = list(search.problems) if search is not None else []
    return out


def have(*tools: str) -> bool:
    """True when every tool is on PATH."""
    return all(shutil.which(t) for t in tools)


def _note(ntype: int, name: bytes, desc: bytes) -> bytes:
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def build_elf_core(
    segments: list[tuple[int, bytes]],
    *,
    pid: int = 4242,
    fname: str = "signer",
    files: tuple[str, ...] = ("/usr/bin/signer", "/usr/lib/libcrypto.so.3"),
    notes_last: bool = False,
) -> bytes:
    """A minimal x86_64 ELF core: PT_NOTE (PRSTATUS, PRPSINFO, FILE) and page-aligned PT_LOADs.

    `notes_last` puts the notes after the memory, where gdb's gcore writes them.
    """
    prstatus = bytearray(336)
    struct.pack_into("<i", prstatus, 32, pid)
    prpsinfo = bytearray(136)
    struct.pack_into("<i", prpsinfo, 24, pid)
    prpsinfo[40 : 40 + len(fname[:15])] = fname[:15].encode()
    nt_file = struct.pack("<QQ", len(files), 4096)
    nt_file += b"".join(
        struct.pack("<QQQ", 0x400000 + i * 0x1000, 0x401000 + i * 0x1000, 0)
        for i in range(len(files))
    )
    nt_file += b"".join(f.encode() + b"\0" for f in files)
    notes = (
        _note(1, b"CORE", bytes(prstatus))
        + _note(3, b"CORE", bytes(prpsinfo))
        + _note(0x46494C45, b"CORE", nt_file)
    )
    phnum = 1 + len(segments)
    head_notes = b"" if notes_last else notes
    at = (64 + 56 * phnum + len(head_notes) + 4095) & ~4095
    body = b""
    loads = b""
    for addr, data in segments:
        loads += struct.pack("<IIQQQQQQ", 1, 6, at + len(body), addr, 0, len(data), len(data), 4096)
        body += data + bytes(-len(data) % 4096)
    notes_at = at + len(body) if notes_last else 64 + 56 * phnum
    phdrs = struct.pack("<IIQQQQQQ", 4, 0, notes_at, 0, 0, len(notes), 0, 4) + loads
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    head = header + phdrs + head_notes
    return head + bytes(at - len(head)) + body + (notes if notes_last else b"")


def build_minidump(
    ranges: list[tuple[int, bytes]],
    *,
    pid: int = 777,
    module: str = "C:\\Program Files\\Signer\\signer.exe",
    memory64: bool = True,
) -> bytes:
    """A minimal minidump: ModuleList, MiscInfo and a Memory64List (or MemoryList) over `ranges`."""
    streams: list[tuple[int, bytes]] = []
    name = module.encode("utf-16-le")
    streams.append((15, struct.pack("<III", 24, 1, pid) + bytes(12)))
    module_stream_index = len(streams)
    streams.append((4, b""))  # filled below once the name's offset is known
    mem_index = len(streams)
    streams.append((9 if memory64 else 5, b""))
    directory_at = 32
    data_at = directory_at + 12 * len(streams)
    # layout: misc, module list, memory list, module name, memory bytes
    misc = streams[0][1]
    module_list_len = 4 + 108
    mem_list_len = (16 + 16 * len(ranges)) if memory64 else (4 + 16 * len(ranges))
    name_at = data_at + len(misc) + module_list_len + mem_list_len
    memory_at = (name_at + 4 + len(name) + 15) & ~15
    module_rec = bytearray(108)
    struct.pack_into("<QIII", module_rec, 0, 0x140000000, 0x10000, 0, 0)
    struct.pack_into("<I", module_rec, 20, name_at)
    streams[module_stream_index] = (4, struct.pack("<I", 1) + bytes(module_rec))
    if memory64:
        mem = struct.pack("<QQ", len(ranges), memory_at) + b"".join(
            struct.pack("<QQ", a, len(d)) for a, d in ranges
        )
    else:
        recs, rva = b"", memory_at
        for a, d in ranges:
            recs += struct.pack("<QII", a, len(d), rva)
            rva += len(d)
        mem = struct.pack("<I", len(ranges)) + recs
    streams[mem_index] = (streams[mem_index][0], mem)
    directory, blobs, at = b"", b"", data_at
    for stype, blob in streams:
        directory += struct.pack("<III", stype, len(blob), at)
        blobs += blob
        at += len(blob)
    header = b"MDMP" + struct.pack("<HHIIIIQ", 0xA793, 0, len(streams), directory_at, 0, 0, 0)
    out = header + directory + blobs + struct.pack("<I", len(name)) + name
    out += bytes(memory_at - len(out))
    return out + b"".join(d for _, d in ranges)


def wait_listening_unix(path: Path, deadline: float = 30.0) -> None:
    """Poll until a Unix socket at `path` accepts connections."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket(socket.AF_UNIX) as s:
            if s.connect_ex(str(path)) == 0:
                return
        select.select([], [], [], 0.05)
    raise RuntimeError(f"nothing listens on {path}")
