"""egress-guard: keeps private keys from leaving debug hosts.

The flow, one stage per package:

    sources (watch / sweep / catch-up)  -> Arrival
    scan (open, unpack, YARA, validate) -> ScanResult with KeyFindings
    policy                              -> Verdict (severity, action)
    quarantine (atomic, sealed vault)   -> ActionRecord
    report (event, outbox, shipper)     -> Event delivered to sinks
"""

__version__ = "0.1.0"
