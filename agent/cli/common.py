"""What the subcommands share: exit codes, config loading, building the scanner."""

from __future__ import annotations

import os
from pathlib import Path

from agent import config as config_mod
from agent.config import AgentConfig
from agent.scan import allowlist as allowlist_mod
from agent.scan import inventory as inventory_mod
from agent.scan import rules as rules_mod
from agent.scan import unpack
from agent.scan.scanner import Scanner, ScanSettings
from agent.scan.validators import VALIDATORS

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_ERROR = 2

DEFAULT_CONFIG = "/etc/egress-guard/agent.toml"


def load_config(path: str | None, *, required: bool = False) -> AgentConfig:
    """The config at `path`; the system default when present; else built-in defaults."""
    if path:
        return config_mod.load(path)
    if required:
        return config_mod.load(DEFAULT_CONFIG)
    if os.path.exists(DEFAULT_CONFIG) and os.access(DEFAULT_CONFIG, os.R_OK):
        return config_mod.load(DEFAULT_CONFIG)
    return config_mod.default_sweep_config()


def inventory_path(cfg: AgentConfig) -> Path:
    """Where the known-key inventory lives."""
    if cfg.scan.inventory_file:
        return Path(cfg.scan.inventory_file)
    return cfg.state_dir / "keys.json"


def scan_settings(cfg: AgentConfig) -> ScanSettings:
    """ScanSettings from the [scan] section."""
    s = cfg.scan
    return ScanSettings(
        chunk_bytes=s.chunk_mib * 1024 * 1024,
        overlap_bytes=s.overlap_kib * 1024,
        number_search=s.number_search,
        max_hits_per_file=s.max_hits_per_file,
        report_unvalidated=s.report_unvalidated,
        limits=unpack.Limits(
            max_depth=s.max_archive_depth,
            max_members=s.max_archive_members,
            max_expanded_bytes=s.max_expanded_mib * 1024 * 1024,
            max_ratio=s.max_expansion_ratio,
        ),
    )


def build_scanner(cfg: AgentConfig, *, engine: str | None = None) -> Scanner:
    """Compile the configured rules and load inventory and allowlist (RuleError on bad rules)."""
    ruleset = rules_mod.load(cfg.scan.rules, engine or cfg.scan.engine, validators=set(VALIDATORS))
    inv_file = inventory_path(cfg)
    inventory = inventory_mod.load_inventory(inv_file) if inv_file.exists() else None
    allow = allowlist_mod.load_allowlist(cfg.scan.allowlist_files)
    return Scanner(ruleset, scan_settings(cfg), inventory=inventory, allowlist=allow)
