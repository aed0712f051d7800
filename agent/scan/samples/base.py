"""The Sample value shared by the sample generators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """A generated sample and the fingerprint a correct scan must report for it."""

    data: bytes
    fingerprint: str | None  # None: an encrypted key whose public half is not in the sample


SampleMaker = Callable[[], Sample]
