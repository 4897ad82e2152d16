"""Configuration: defaults, TOML file, environment precedence, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENTINEL_CONFIG", "SENTINEL_PORT", "SENTINEL_WORKERS", "SENTINEL_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 50051
    assert settings.workers >= 1
    assert settings.redis_url is None


def test_toml_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sentinel.toml"
    config.write_text('port = 6000\nworkers = 3\nredis_url = "redis://cache:6379/1"\n')
    assert load_settings(config).port == 6000
    monkeypatch.setenv("SENTINEL_PORT", "7000")
    settings = load_settings(config)
    assert (settings.port, settings.workers, settings.redis_url) == (7000, 3, "redis://cache:6379/1")
    assert load_settings(config, port=8000, workers=None).port == 8000


def test_every_bad_value_is_named_with_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sentinel.toml"
    config.write_text('workers = 0\nredis_url = "http://x"\nprot = 1\n')
    monkeypatch.setenv("SENTINEL_PORT", "70000")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "port [environment SENTINEL_PORT]: Input should be less than or equal to 65535" in message
    assert f"workers [{config}]: Input should be greater than or equal to 1 (got 0)" in message
    assert "redis_url" in message and "must start with redis://" in message
    assert "prot" in message and "unknown setting" in message


def test_non_numeric_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_WORKERS", "many")
    with pytest.raises(ConfigError, match=r"workers \[environment SENTINEL_WORKERS\].*integer.*'many'"):
        load_settings()


def test_missing_or_malformed_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(broken)


def test_cli_reports_config_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTINEL_LOG_LEVEL", "loud")
    assert main(["serve", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sentinel: invalid configuration:")
    assert "log_level [environment SENTINEL_LOG_LEVEL]" in err
