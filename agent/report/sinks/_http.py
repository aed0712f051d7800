"""Shared HTTP plumbing for the collector, HEC and Elasticsearch sinks (requests lives here).

TLS verification is always on (`ca_file` swaps the trust store, never
disables it); bodies are gzip-compressed when configured; status codes map to
the shipper's vocabulary: 2xx delivered, 429/503 (and 408, 5xx, network
errors) retry honouring Retry-After, 401/403 retry (a credential is fixable
configuration: setting every event aside would strand them), any other 4xx
rejected as poison.
"""

from __future__ import annotations

import email.utils
import gzip
import time
from typing import Any

import requests

from agent.config import SinkSection
from agent.errors import ConfigError, DeliveryError
from agent.logs import get_logger
from agent.values import Delivered, Rejected, Retry

log = get_logger(__name__)

_REASON_MAX = 200
_AUTH_RETRY_SECONDS = 30.0


def retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); 0 when absent or bad."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def short(text: str) -> str:
    """A response text cut to a bounded length for logs and dead-letter reasons."""
    flat = " ".join(text.split())
    return flat[:_REASON_MAX]


def classify(response: requests.Response) -> Delivered | Retry | Rejected:
    """Map an HTTP status onto Delivered / Retry / Rejected."""
    status = response.status_code
    if 200 <= status < 300:
        return Delivered()
    reason = f"HTTP {status}: {short(response.text)}"
    if status in (429, 503):
        return Retry(retry_after(response.headers.get("Retry-After")), reason)
    if status in (401, 403):
        return Retry(_AUTH_RETRY_SECONDS, reason)
    if status == 408 or status >= 500:
        return Retry(retry_after(response.headers.get("Retry-After")), reason)
    return Rejected(reason, status)


class HttpClient:
    """A requests.Session with the sink's TLS, timeout, compression and auth header."""

    def __init__(self, section: SinkSection, *, auth_header: str | None) -> None:
        self.section = section
        self.session = requests.Session()
        # passed on every request: a session-level verify loses to REQUESTS_CA_BUNDLE
        # in the environment (requests issue 3829), which would ignore ca_file
        self.verify: str | bool = section.ca_file or True
        self.session.headers["User-Agent"] = "egress-guard"
        if auth_header:
            self.session.headers["Authorization"] = auth_header
        self.timeout = section.timeout_seconds

    def post(
        self, url: str, body: bytes, *, content_type: str, headers: dict[str, str] | None = None
    ) -> requests.Response | Retry:
        """POST the body; a network or TLS failure comes back as Retry (never raises)."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if self.section.gzip:
            body = gzip.compress(body, compresslevel=5)
            all_headers["Content-Encoding"] = "gzip"
        try:
            return self.session.post(
                url, data=body, headers=all_headers, timeout=self.timeout, verify=self.verify
            )
        except requests.exceptions.SSLError:
            return Retry(0.0, "TLS handshake or certificate verification failed")
        except requests.exceptions.Timeout:
            return Retry(0.0, "timed out")
        except requests.exceptions.ConnectionError:
            return Retry(0.0, "connection failed")
        except requests.exceptions.RequestException as exc:
            return Retry(0.0, f"request failed: {type(exc).__name__}")

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()


def read_secret(section: SinkSection, which: str) -> str | None:
    """The token or API key named by the section, translated to DeliveryError when unreadable."""
    secret = getattr(section, which)
    if secret is None:
        return None
    try:
        value: str = secret.read()
    except ConfigError:
        raise DeliveryError(
            f"sink {section.label}: cannot read {which} {secret.path}",
            sink=section.label,
            hint="check the path and that the agent's user may read it",
        ) from None
    return value


def require_url(section: SinkSection) -> str:
    """The base URL without a trailing slash."""
    if not section.url:
        raise DeliveryError(
            f"sink {section.label} has no url", sink=section.label, hint="set url in [[sink]]"
        )
    return section.url.rstrip("/")


def json_or_none(response: requests.Response) -> Any:
    """The response body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
