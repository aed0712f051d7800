"""Config parsing: every problem reported at once, with its key path and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import config
from agent.errors import ConfigError

GOOD = """
[agent]
state_dir = "/tmp/eg-state"

[[watch]]
path = "/srv/debug/dumps"
exclude = ["*.tmp.partial"]

[scan]
settle_seconds = 2

[quarantine]
dir = "/tmp/eg-vault"

[[sink]]
type = "collector"
url = "http://127.0.0.1:8765"
token_file = "/etc/egress-guard/token"
"""


def test_good_config_parses_into_typed_sections() -> None:
    """A valid file becomes nested frozen dataclasses with defaults filled in."""
    cfg = config.loads(GOOD, source="agent.toml")
    assert cfg.watch[0].path == "/srv/debug/dumps"
    assert cfg.watch[0].exclude == ("*.tmp.partial",)
    assert cfg.scan.settle_seconds == 2.0
    assert cfg.scan.engine == "yara-x"
    assert cfg.sink[0].token_file == config.SecretFile("/etc/egress-guard/token")
    assert cfg.source == "agent.toml"


def test_unknown_keys_are_refused_with_a_near_miss_suggestion() -> None:
    """A typo names the key path and suggests the key that was meant."""
    text = GOOD.replace("token_file", "tokne_file").replace("settle_seconds", "setle_seconds")
    with pytest.raises(ConfigError) as err:
        config.loads(text)
    problems = err.value.problems
    assert "unknown key `sink[0].tokne_file`, did you mean `token_file`?" in problems
    assert "unknown key `scan.setle_seconds`, did you mean `settle_seconds`?" in problems


def test_wrong_types_say_path_expected_and_got() -> None:
    """A wrong type names the path, what was expected and what came."""
    with pytest.raises(ConfigError) as err:
        config.loads(
            '[scan]\nengine = 3\nsettle_seconds = "soon"\n[agent]\nheartbeat_seconds = true\n'
        )
    text = "\n".join(err.value.problems)
    assert "`scan.engine`: expected string, got int 3" in text
    assert "`scan.settle_seconds`: expected number, got str 'soon'" in text
    assert "`agent.heartbeat_seconds`: expected number, got boolean true" in text


def test_bad_values_are_refused() -> None:
    """Values outside their domain are refused with the key path."""
    text = (
        '[scan]\nengine = "clamav"\noverlap_kib = 4\n[[watch]]\npath = "relative/dir"\n'
        '[[sink]]\ntype = "syslog"\nhost = "127.0.0.1"\n[collector]\nlisten = "nowhere"\n'
    )
    with pytest.raises(ConfigError) as err:
        config.loads(text)
    text_out = "\n".join(err.value.problems)
    assert "`scan.engine`" in text_out
    assert "`scan.overlap_kib`: must be >= 64" in text_out
    assert "`watch[0].path`: must be an absolute path" in text_out
    assert "`sink[0].port`: required for sink type `syslog`" in text_out
    assert "`collector.listen`: expected HOST:PORT" in text_out


def test_sink_keys_depend_on_the_sink_type() -> None:
    """A key that exists for another sink type is refused for this one."""
    with pytest.raises(ConfigError) as err:
        config.loads('[[sink]]\ntype = "jsonl"\npath = "/tmp/x.jsonl"\nurl = "http://127.0.0.1"\n')
    assert "`sink[0].url`: not used by sink type `jsonl`" in err.value.problems


def test_unknown_sink_type_is_refused() -> None:
    """An unknown sink type is named, with the closest known type."""
    with pytest.raises(ConfigError) as err:
        config.loads('[[sink]]\ntype = "colector"\nurl = "http://127.0.0.1:1"\n')
    assert any("did you mean `collector`" in p for p in err.value.problems)


def test_not_toml_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    """Syntax errors and unreadable files raise ConfigError naming the file."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.loads("[agent\n")
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")


def test_secret_file_reads_on_use_and_never_shows_the_secret(tmp_path: Path) -> None:
    """A SecretFile holds a path; its repr cannot show the token."""
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    secret = config.SecretFile(str(token))
    assert secret.read() == "s3cr3t-token"
    assert "s3cr3t" not in repr(secret)


def test_packaged_demo_config_is_valid() -> None:
    """The embedded demo config parses once its folder is filled in."""
    text = (Path(__file__).parents[2] / "packaging" / "demo.toml").read_text()
    cfg = config.loads(text.replace("{demo}", "/tmp/demo"))
    assert cfg.watch[0].path == "/tmp/demo/drop"
