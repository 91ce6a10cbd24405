"""Configuration problems: every one names file, line, column and key path.

Loading collects problems instead of stopping at the first, so that a user
fixing a config sees the whole list at once (llama-swap reports only the
first error, and with Go's random map order not always the same one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """`("models", "llama", "aliases", 0)` -> `models.llama.aliases[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem; `line` and `column` are 1-based (0 when unknown)."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """Loading failed; `.problems` holds every problem found, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem before it is located: a key path in the document and a message."""

    path: Path
    message: str
    pos: tuple[int, int] | None = None  # set when the position is not the path's
