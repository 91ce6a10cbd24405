"""Matrix compilation problems, and Go-compatible quoting for their messages.

The messages are llama-swap's (docs/compat.md, Swap matrix), so they quote names the
way Go's `%q` does; `go_quote` and `go_quote_rune` reproduce that quoting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
}


def _escape(ch: str, quote: str) -> str:
    if ch == quote:
        return "\\" + ch
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(text: str) -> str:
    """`text` quoted like Go's `strconv.Quote` (what `%q` prints for a string)."""
    return '"' + "".join(_escape(ch, '"') for ch in text) + '"'


def go_quote_rune(ch: str) -> str:
    """`ch` quoted like Go's `strconv.QuoteRune` (what `%q` prints for a rune)."""
    return "'" + _escape(ch, "'") + "'"


@dataclass(frozen=True, slots=True)
class MatrixProblem:
    """One problem in a matrix block.

    `path` is relative to the matrix block (`("sets", "big")`, `("vars", "g")`,
    `("evict_costs", "x")`, `("sets",)`), so the config loader can attach the
    YAML line and column; `message` is llama-swap's wording, without the loader's
    `matrix: ` prefix.
    """

    path: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


class MatrixError(ValueError):
    """A matrix block that does not compile; `problems` lists every problem found."""

    def __init__(self, problems: Iterable[MatrixProblem]) -> None:
        self.problems: list[MatrixProblem] = list(problems)
        super().__init__("\n".join(f"matrix: {p.message}" for p in self.problems))
