"""TOML -> AgentConfig: parsed once, every problem reported with its key path.

Defaults live only in the dataclass fields. Unknown keys are refused with a
near-miss suggestion; wrong types say the path, what was expected and what
came. Secrets are file references (`SecretFile`) whose repr hides nothing
because it never holds the secret: it is read when used.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SecretFile:
    """A path to a file holding a secret (token, key). The secret is read on use, never kept."""

    path: str

    def read(self) -> str:
        """The secret, stripped; raises ConfigError naming the path when unreadable."""
        try:
            return Path(self.path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"secret file {self.path}: {exc.strerror}"]) from None

    def __repr__(self) -> str:
        return f"SecretFile({self.path!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSection:
    """[agent]"""

    state_dir: str = "/var/lib/egress-guard"
    id: str | None = None
    heartbeat_seconds: float = 60.0
    log_level: str = "info"
    nice: int = 10
    ionice_idle: bool = False
    memory_limit_mib: int = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchSection:
    """[[watch]] one watched root."""

    path: str
    recursive: bool = True
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSection:
    """[scan]"""

    rules: str = "builtin"
    engine: str = "yara-x"
    settle_seconds: float = 1.0
    max_wait_seconds: float = 300.0
    workers: int = 0  # 0: one per CPU
    queue_size: int = 10000
    chunk_mib: int = 32
    overlap_kib: int = 1024
    number_search: str = "dumps"  # dumps | all | off
    max_hits_per_file: int = 2000
    report_unvalidated: bool = False
    allowlist_files: tuple[str, ...] = ()
    inventory_file: str | None = None
    max_archive_depth: int = 4
    max_archive_members: int = 10000
    max_expanded_mib: int = 20480
    max_expansion_ratio: int = 200
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineSection:
    """[quarantine]"""

    dir: str | None = None
    seal_public_key: str | None = None
    retention_days: int | None = None
    restore_roots: tuple[str, ...] = ()
    retry_seconds: float = 60.0


SINK_TYPES = ("collector", "hec", "elastic", "syslog", "jsonl")

# keys each sink type accepts beyond `type`; anything else is refused
SINK_KEYS: dict[str, frozenset[str]] = {
    "collector": frozenset(
        {
            "url",
            "token_file",
            "ca_file",
            "timeout_seconds",
            "batch_max_events",
            "batch_max_bytes",
            "gzip",
            "name",
        }
    ),
    "hec": frozenset(
        {
            "url",
            "token_file",
            "ca_file",
            "timeout_seconds",
            "batch_max_events",
            "batch_max_bytes",
            "gzip",
            "channel",
            "index",
            "sourcetype",
            "ack",
            "name",
        }
    ),
    "elastic": frozenset(
        {
            "url",
            "token_file",
            "ca_file",
            "timeout_seconds",
            "batch_max_events",
            "batch_max_bytes",
            "gzip",
            "index",
            "name",
            "api_key_file",
        }
    ),
    "syslog": frozenset(
        {
            "host",
            "port",
            "tls",
            "ca_file",
            "message_format",
            "timeout_seconds",
            "batch_max_events",
            "batch_max_bytes",
            "app_name",
            "name",
        }
    ),
    "jsonl": frozenset({"path", "batch_max_events", "batch_max_bytes", "name"}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkSection:
    """[[sink]] one destination; `type` selects which other keys apply."""

    type: str
    name: str | None = None
    url: str | None = None
    token_file: SecretFile | None = None
    api_key_file: SecretFile | None = None
    ca_file: str | None = None
    timeout_seconds: float = 10.0
    batch_max_events: int = 500
    batch_max_bytes: int = 4 * MiB
    gzip: bool = True
    channel: str | None = None
    index: str | None = None
    sourcetype: str = "egress_guard"
    ack: bool = False
    host: str | None = None
    port: int | None = None
    tls: bool = False
    message_format: str = "json"  # json | cef
    app_name: str = "egress-guard"
    path: str | None = None

    @property
    def label(self) -> str:
        """How logs and errors name this sink."""
        return self.name or self.type


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSection:
    """[outbox]"""

    max_mib: int = 256
    retry_min_seconds: float = 1.0
    retry_max_seconds: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectorSection:
    """[collector] for `egress-guard collector serve`."""

    listen: str = "127.0.0.1:8765"
    db: str = "/var/lib/egress-guard/collector.db"
    tokens_file: SecretFile | None = None
    max_request_mib: int = 16
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    heartbeat_timeout_seconds: float = 300.0
    sink: tuple[SinkSection, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """The whole configuration file."""

    agent: AgentSection = field(default_factory=AgentSection)
    watch: tuple[WatchSection, ...] = ()
    scan: ScanSection = field(default_factory=ScanSection)
    quarantine: QuarantineSection = field(default_factory=QuarantineSection)
    sink: tuple[SinkSection, ...] = ()
    outbox: OutboxSection = field(default_factory=OutboxSection)
    collector: CollectorSection = field(default_factory=CollectorSection)
    source: str | None = None  # where it was read from; not a TOML key

    @property
    def state_dir(self) -> Path:
        """The agent's state folder."""
        return Path(self.agent.state_dir)


_NOT_KEYS = {"source"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "table"
    if tp is SecretFile:
        return "path"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _convert(value: object, tp: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, options[0], path, problems)
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if not isinstance(value, list):
            problems.append(f"`{path}`: expected {_type_name(tp)}, got {_describe(value)}")
            return ()
        return tuple(_convert(v, item_tp, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if tp is SecretFile:
        if not isinstance(value, str) or not value:
            problems.append(f"`{path}`: expected a file path, got {_describe(value)}")
            return None
        return SecretFile(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"`{path}`: expected a table, got {_describe(value)}")
            return None
        return _build(tp, value, path, problems)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        problems.append(f"`{path}`: expected {_type_name(tp)}, got {_describe(value)}")
        return None
    if not isinstance(value, tp):
        problems.append(f"`{path}`: expected {_type_name(tp)}, got {_describe(value)}")
        return None
    return value


def _build(cls: Any, raw: dict[str, Any], path: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS]
    allowed: set[str] | frozenset[str] = set(known)
    if cls is SinkSection and isinstance(raw.get("type"), str) and raw["type"] in SINK_KEYS:
        allowed = SINK_KEYS[raw["type"]] | {"type"}
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for key, value in raw.items():
        where = f"{path}.{key}" if path else key
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            tip = f", did you mean `{close[0]}`?" if close else ""
            if key in known:
                problems.append(f"`{where}`: not used by sink type `{raw.get('type')}`")
            else:
                problems.append(f"unknown key `{where}`{tip}")
            continue
        kwargs[key] = _convert(value, hints[key], where, problems)
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in required:
        if name not in raw:
            where = f"{path}.{name}" if path else name
            problems.append(f"`{where}`: required key is missing")
    if len(problems) != before:
        return None
    return cls(**kwargs)


def _check_values(cfg: AgentConfig, problems: list[str]) -> None:
    if cfg.scan.engine not in ("yara-x", "yara"):
        problems.append(f'`scan.engine`: expected "yara-x" or "yara", got {cfg.scan.engine!r}')
    if cfg.scan.number_search not in ("dumps", "all", "off"):
        problems.append(
            f'`scan.number_search`: expected "dumps", "all" or "off", got '
            f"{cfg.scan.number_search!r}"
        )
    if cfg.scan.settle_seconds < 0:
        problems.append("`scan.settle_seconds`: must be >= 0")
    if cfg.scan.max_wait_seconds < cfg.scan.settle_seconds:
        problems.append("`scan.max_wait_seconds`: must be >= scan.settle_seconds")
    if cfg.scan.overlap_kib < 64:
        problems.append(
            "`scan.overlap_kib`: must be >= 64 (the largest key encoding must fit in the overlap)"
        )
    if cfg.scan.chunk_mib * 1024 <= 2 * cfg.scan.overlap_kib:
        problems.append("`scan.chunk_mib`: must be more than twice scan.overlap_kib")
    if cfg.scan.workers < 0:
        problems.append("`scan.workers`: must be >= 0 (0 means one per CPU)")
    if cfg.agent.heartbeat_seconds <= 0:
        problems.append("`agent.heartbeat_seconds`: must be > 0")
    for i, w in enumerate(cfg.watch):
        if not os.path.isabs(w.path):
            problems.append(f"`watch[{i}].path`: must be an absolute path, got {w.path!r}")
    for prefix, sinks in (("sink", cfg.sink), ("collector.sink", cfg.collector.sink)):
        for i, s in enumerate(sinks):
            _check_sink(f"{prefix}[{i}]", s, problems)
    host, _, port = cfg.collector.listen.rpartition(":")
    if not host or not port.isdigit():
        problems.append(f"`collector.listen`: expected HOST:PORT, got {cfg.collector.listen!r}")


def _check_sink(where: str, s: SinkSection, problems: list[str]) -> None:
    if s.type not in SINK_TYPES:
        close = difflib.get_close_matches(s.type, SINK_TYPES, n=1)
        tip = f", did you mean `{close[0]}`?" if close else ""
        problems.append(f"`{where}.type`: unknown sink type {s.type!r}{tip}")
        return
    needs = {"collector": "url", "hec": "url", "elastic": "url", "syslog": "host", "jsonl": "path"}
    if getattr(s, needs[s.type]) is None:
        problems.append(f"`{where}.{needs[s.type]}`: required for sink type `{s.type}`")
    if s.type == "syslog":
        if s.port is None:
            problems.append(f"`{where}.port`: required for sink type `syslog`")
        if s.message_format not in ("json", "cef"):
            problems.append(f'`{where}.message_format`: expected "json" or "cef"')
    if s.url is not None and not s.url.startswith(("http://", "https://")):
        problems.append(f"`{where}.url`: expected an http:// or https:// URL, got {s.url!r}")


def parse(raw: dict[str, Any], *, source: str | None = None) -> AgentConfig:
    """Build an AgentConfig from parsed TOML, or raise ConfigError with every problem."""
    problems: list[str] = []
    cfg = _build(AgentConfig, raw, "", problems)
    if cfg is not None:
        _check_values(cfg, problems)
    if problems:
        raise ConfigError(problems, source=source)
    assert isinstance(cfg, AgentConfig)
    return dataclasses.replace(cfg, source=source)


def load(path: str | os.PathLike[str]) -> AgentConfig:
    """Read and check a TOML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {p}: {exc.strerror}"], source=str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p} is not UTF-8 text"], source=str(p)) from None
    return loads(text, source=str(p))


def loads(text: str, *, source: str | None = None) -> AgentConfig:
    """Parse TOML text into an AgentConfig."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=source) from None
    return parse(raw, source=source)


def default_sweep_config() -> AgentConfig:
    """What `sweep` and `scan` use without --config: built-in rules, report only."""
    return AgentConfig()
