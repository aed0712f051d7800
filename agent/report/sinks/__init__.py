"""Sinks: where the shipper delivers events, selected by `[[sink]] type` through SINKS.

    collector -> CollectorSink  (native JSON to the reference collector)
    hec       -> HecSink        (Splunk HTTP Event Collector)
    elastic   -> ElasticSink    (Elasticsearch / OpenSearch _bulk)
    syslog    -> SyslogSink     (RFC 5424 over TCP / TLS, JSON or CEF)
    jsonl     -> JsonlSink      (local file for SIEM file collectors)

`MemorySink` (sinks/memory.py) is the test double.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from agent.config import SinkSection
from agent.errors import DeliveryError
from agent.report.sinks.base import Outcome, Partial, Sink, batch_limits
from agent.report.sinks.collector import CollectorSink
from agent.report.sinks.elastic import ElasticSink
from agent.report.sinks.hec import HecSink
from agent.report.sinks.jsonl import JsonlSink
from agent.report.sinks.syslog import SyslogSink

__all__ = ["SINKS", "Outcome", "Partial", "Sink", "batch_limits", "build_sinks"]

SINKS: Mapping[str, Callable[[SinkSection], Sink]] = {
    "collector": CollectorSink,
    "hec": HecSink,
    "elastic": ElasticSink,
    "syslog": SyslogSink,
    "jsonl": JsonlSink,
}


def build_sinks(sections: Sequence[SinkSection]) -> list[Sink]:
    """One sink per [[sink]] table; labels must be distinct (the outbox tracks them by label)."""
    labels = [s.label for s in sections]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise DeliveryError(
            f"two sinks share the label {twice[0]!r}",
            sink=twice[0],
            hint="give each [[sink]] of the same type a distinct `name`",
        )
    sinks: list[Sink] = []
    for section in sections:
        factory = SINKS.get(section.type)
        if factory is None:
            for built in sinks:
                built.close()
            raise DeliveryError(
                f"unknown sink type {section.type!r}",
                sink=section.label,
                hint=f"use one of: {', '.join(SINKS)}",
            )
        try:
            sinks.append(factory(section))
        except DeliveryError:
            for built in sinks:
                built.close()
            raise
    return sinks
