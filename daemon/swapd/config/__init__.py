"""Configuration: load a llama-swap compatible YAML file into a typed, resolved config.

    loaded = load_config("config.yaml")      # raises ConfigError with every problem
    loaded.config.models["llama"].argv       # what to execute
    loaded.aliases["gpt-4"]                  # -> "llama"
    loaded.matrix                            # compiled swap matrix (matrix router) or None
    loaded.warnings                          # problems that did not stop it loading

The pipeline, one module each: `loader` (YAML -> plain tree with positions,
`${env.X}`), `macros` (macros and ports), `coerce` (types, yaml.v3 rules),
`validate` (cross-key rules, effective config), `cmdline` (cmd -> argv), then
the matrix block compiled by `swapd.matrix.compile_matrix`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from swapd.config.errors import ConfigError, ConfigProblem, format_path
from swapd.config.model import (
    DEFAULT_GROUP,
    Config,
    FifoConfig,
    GroupConfig,
    ModelConfig,
    RoutingConfig,
)
from swapd.config.pipeline import load_text
from swapd.config.ports import PortsInUse

if TYPE_CHECKING:
    from swapd.matrix import Matrix

__all__ = [
    "DEFAULT_GROUP",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "FifoConfig",
    "GroupConfig",
    "LoadedConfig",
    "ModelConfig",
    "PortsInUse",
    "RoutingConfig",
    "default_config_path",
    "format_path",
    "load_config",
    "load_config_text",
]


@dataclass(frozen=True)
class LoadedConfig:
    """A loaded config and what the daemon derives from it."""

    path: Path
    config: Config
    aliases: dict[str, str]  # alias (explicit or setParamsByID) -> model ID
    matrix: Matrix | None  # compiled when the matrix router is in use
    groups: dict[str, GroupConfig]  # effective groups, "(default)" included
    router_use: Literal["group", "matrix", "budget"]
    warnings: tuple[ConfigProblem, ...] = ()  # e.g. a matrix model in no set

    @property
    def models(self) -> dict[str, ModelConfig]:
        return self.config.models

    def resolve(self, name: str) -> str | None:
        """The model ID a requested name means (model ID first, then alias)."""
        return name if name in self.config.models else self.aliases.get(name)


def default_config_path() -> Path:
    """`$SWAPD_CONFIG`, else `/etc/swapd/config.yaml`."""
    return Path(os.environ.get("SWAPD_CONFIG") or "/etc/swapd/config.yaml")


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    ports: PortsInUse | None = None,
) -> LoadedConfig:
    """Read, expand and validate a config file; raise `ConfigError` listing every problem.

    `ports`: for a reload, the ports in use, so that models keep theirs
    (`swapd.config.ports`); None lays them out from `startPort`.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigProblem(str(p), 0, 0, "", f"cannot read config: {_reason(exc)}")]
        ) from None
    return load_text(text, file=p, environ=environ, factory=_make, ports=ports)


def load_config_text(
    text: str,
    *,
    file: str | os.PathLike[str] = "config.yaml",
    environ: dict[str, str] | None = None,
    ports: PortsInUse | None = None,
) -> LoadedConfig:
    """As `load_config`, from text; `file` is only used to name it in problems."""
    return load_text(text, file=Path(file), environ=environ, factory=_make, ports=ports)


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _make(
    path: Path,
    config: Config,
    aliases: dict[str, str],
    matrix: Any,
    warnings: list[ConfigProblem],
) -> LoadedConfig:
    return LoadedConfig(
        path=path,
        config=config,
        aliases=aliases,
        matrix=matrix,
        groups=config.routing.groups,
        router_use=config.routing.use,
        warnings=tuple(warnings),
    )
