"""Fresh samples for rule self-tests: each generator makes a new key in one encoding, in memory.

`egress-guard rules check` runs every rule against the samples its `selftest`
meta names and requires a validated finding with the sample's fingerprint;
nothing here is ever written to disk, and no key is stored in the repository.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.scan.samples import binary, keyfiles, memory, text
from agent.scan.samples import more as more_samples
from agent.scan.samples.base import Sample, SampleMaker

__all__ = ["SAMPLES", "Sample", "SampleMaker"]


SAMPLES: Mapping[str, SampleMaker] = {**text.SAMPLES, **binary.SAMPLES, **memory.SAMPLES}
SAMPLES = {**SAMPLES, **more_samples.SAMPLES, **keyfiles.SAMPLES}  # rules/more.yar, text.yar
