"""The DSL tokenizer: Go's character classes and llama-swap's error messages."""

from __future__ import annotations

import pytest

from swapd.matrix.errors import go_quote, go_quote_rune
from swapd.matrix.lexer import LexError, TokenKind, is_space, tokenize, trim_space


def kinds_values(text: str) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.value) for t in tokenize(text)]


def test_operators_identifiers_and_references():
    assert kinds_values("(g|q)&+llms") == [
        (TokenKind.LPAREN, "("),
        (TokenKind.IDENT, "g"),
        (TokenKind.OR, "|"),
        (TokenKind.IDENT, "q"),
        (TokenKind.RPAREN, ")"),
        (TokenKind.AND, "&"),
        (TokenKind.REF, "llms"),
        (TokenKind.EOF, ""),
    ]


def test_identifier_characters():
    text = "Qwen2.5-coder_7B modèle ٣x"
    assert [v for k, v in kinds_values(text) if k is TokenKind.IDENT] == [
        "Qwen2.5-coder_7B",
        "modèle",
        "٣x",  # Arabic-Indic digit three is category Nd
    ]


def test_positions_are_code_point_indexes():
    tokens = tokenize("é & +set")
    assert [(t.kind, t.position) for t in tokens] == [
        (TokenKind.IDENT, 0),
        (TokenKind.AND, 2),
        (TokenKind.REF, 4),
        (TokenKind.EOF, 8),
    ]


@pytest.mark.parametrize(
    "space",
    ["\t", "\n", "\v", "\f", "\r", " ", "\x85", "\xa0", "\u2003", "\u3000", "\u2028", "\u2029"],
)
def test_go_whitespace_is_skipped(space: str):
    assert kinds_values(f"a{space}&{space}b") == [
        (TokenKind.IDENT, "a"),
        (TokenKind.AND, "&"),
        (TokenKind.IDENT, "b"),
        (TokenKind.EOF, ""),
    ]


@pytest.mark.parametrize("ch", ["\x1c", "\x1d", "\x1e", "\x1f"])
def test_python_only_whitespace_is_rejected(ch: str):
    assert ch.isspace() and not is_space(ch)
    with pytest.raises(LexError) as info:
        tokenize(f"a{ch}b")
    assert str(info.value) == f"unexpected character '\\x{ord(ch):02x}' at position 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a @ b", "unexpected character '@' at position 2"),
        ("a²", "unexpected character '²' at position 1"),  # category No, not Nd
        ("a'", "unexpected character '\\'' at position 1"),
        ('a"', "unexpected character '\"' at position 1"),
        ("a\\", "unexpected character '\\\\' at position 1"),
        ("a\x00", "unexpected character '\\x00' at position 1"),
        ("a\u200b", "unexpected character '\\u200b' at position 1"),  # Cf, not a space in Go
        ("+", "expected set name after '+' at position 1"),
        ("a & +", "expected set name after '+' at position 5"),
        ("+ name", "expected set name after '+' at position 1"),
        ("++a", "expected set name after '+' at position 1"),
    ],
)
def test_errors(text: str, message: str):
    with pytest.raises(LexError) as info:
        tokenize(text)
    assert str(info.value) == message


def test_trim_space_uses_go_whitespace():
    assert trim_space("\xa0 a & b\u3000\n") == "a & b"
    assert trim_space("\x1ca\x1c") == "\x1ca\x1c"
    assert trim_space(" \t ") == ""


def test_go_quoting():
    assert go_quote('se"t\\1') == '"se\\"t\\\\1"'
    assert go_quote("tab\tnl\n") == '"tab\\tnl\\n"'
    assert go_quote("modèle") == '"modèle"'
    assert go_quote("\x7f\U000e0001") == '"\\x7f\\U000e0001"'
    assert go_quote_rune('"') == "'\"'"
    assert go_quote_rune("\u00a0") == "'\\u00a0'"
