"""Tokens of the matrix DSL (docs/compat.md, Swap matrix).

The character classes follow Go's `unicode` package, which llama-swap uses, not
Python's wider `str.isspace` / `str.isdigit`:

- whitespace is Go's `unicode.IsSpace`: `\\t \\n \\v \\f \\r`, space, U+0085,
  U+00A0 and the Unicode `Z*` separators (Python's `isspace` also accepts
  U+001C-U+001F, which Go rejects as unexpected characters);
- identifiers are letters (`L*`), decimal digits (`Nd` only), `_`, `-`, `.`;
- a reference is `+` immediately followed by identifier characters.

Error positions are 0-based code point (Go rune) indexes into the text given.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

from swapd.matrix.errors import go_quote_rune

_LATIN1_SPACE = frozenset("\t\n\v\f\r \x85\xa0")


def is_space(ch: str) -> bool:
    """Go's `unicode.IsSpace` for one character."""
    if ch in _LATIN1_SPACE:
        return True
    return ord(ch) > 0xFF and unicodedata.category(ch)[0] == "Z"


def is_ident_char(ch: str) -> bool:
    """Letters, decimal digits, `_`, `-` and `.`."""
    if ch in "_-.":
        return True
    category = unicodedata.category(ch)
    return category[0] == "L" or category == "Nd"


def trim_space(text: str) -> str:
    """Go's `strings.TrimSpace`."""
    start, end = 0, len(text)
    while start < end and is_space(text[start]):
        start += 1
    while end > start and is_space(text[end - 1]):
        end -= 1
    return text[start:end]


class TokenKind(enum.Enum):
    IDENT = "identifier"
    REF = "reference"
    AND = "&"
    OR = "|"
    LPAREN = "("
    RPAREN = ")"
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    """One token; `value` is the identifier or referenced set name (`""` at EOF)."""

    kind: TokenKind
    value: str
    position: int


class LexError(ValueError):
    """A character the DSL does not accept; the message is llama-swap's."""


_OPERATORS = {
    "&": TokenKind.AND,
    "|": TokenKind.OR,
    "(": TokenKind.LPAREN,
    ")": TokenKind.RPAREN,
}


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens, ending with one EOF token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if is_space(ch):
            i += 1
            continue
        kind = _OPERATORS.get(ch)
        if kind is not None:
            tokens.append(Token(kind, ch, i))
            i += 1
            continue
        if ch == "+":
            start = i + 1
            i = _ident_end(text, start)
            if i == start:
                raise LexError(f"expected set name after '+' at position {start}")
            tokens.append(Token(TokenKind.REF, text[start:i], start - 1))
            continue
        if is_ident_char(ch):
            start = i
            i = _ident_end(text, start)
            tokens.append(Token(TokenKind.IDENT, text[start:i], start))
            continue
        raise LexError(f"unexpected character {go_quote_rune(ch)} at position {i}")
    tokens.append(Token(TokenKind.EOF, "", n))
    return tokens


def _ident_end(text: str, start: int) -> int:
    i = start
    while i < len(text) and is_ident_char(text[i]):
        i += 1
    return i
