"""Helpers for the config tests: load YAML text with a controlled environment."""

from __future__ import annotations

import textwrap

import pytest

from swapd.config import ConfigError, LoadedConfig, PortsInUse, load_config_text


def load(
    text: str, env: dict[str, str] | None = None, *, ports: PortsInUse | None = None
) -> LoadedConfig:
    return load_config_text(
        textwrap.dedent(text), file="config.yaml", environ=env or {}, ports=ports
    )


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    """Every problem of an invalid config, formatted."""
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return [str(p) for p in info.value.problems]
