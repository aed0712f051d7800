"""structlog set-up: JSON on stderr unless stderr is a terminal, with a redaction backstop.

Event names follow `<stage>.<noun>_<past verb>` (a test walks the code to
check). The backstop drops any value that looks like PEM armour or a long
base64 run, so a mistake elsewhere cannot put key text in a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

# structlog imports rich, when it is installed, to pretty-print tracebacks on a
# terminal; import-linter pulls it into every dev venv. The agent renders
# exceptions plainly, and rich costs every process (each sweep, each burst worker,
# the idle daemon) about 60 ms of start-up and 5 MB of RSS. None in sys.modules
# makes `import rich` fail, so structlog takes its plain path.
if "rich" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment]

import structlog

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*-----")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{80,}={0,2}")
_REDACTED = "[redacted: looked like key material]"


def _redact_value(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[redacted: {len(value)} bytes]"
    if isinstance(value, str) and (_PEM.search(value) or _BASE64_RUN.search(value)):
        return _REDACTED
    return value


def redact(_logger: object, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Last processor before rendering: no bytes and no key-like text reach a log line."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(value)
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time of the write, not at configure time
    (a replaced or closed stderr, as under test capture, must not break logging)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(
    *, level: str = "info", stream: TextIO | None = None, json: bool | None = None
) -> None:
    """Route structlog (and stdlib logging, for libraries) to stderr."""
    out: Any = stream if stream is not None else _CurrentStderr()
    use_json = json if json is not None else not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=out, format="%(name)s: %(message)s")


def get_logger(name: str | None = None) -> Any:
    """A bound structlog logger (typed Any: structlog's proxies are not precise)."""
    return structlog.get_logger(name)
