"""Parsing set expressions: precedence, flat chains, llama-swap's error wording."""

from __future__ import annotations

import pytest

from swapd.matrix.parser import MAX_NESTING, And, DslSyntaxError, Ident, Or, Ref, parse, refs_of


def test_and_binds_tighter_than_or():
    assert parse("a | b & c") == Or((Ident("a"), And((Ident("b"), Ident("c")))))
    assert parse("a & b | c") == Or((And((Ident("a"), Ident("b"))), Ident("c")))


def test_chains_are_flat():
    assert parse("a & b & c") == And((Ident("a"), Ident("b"), Ident("c")))
    assert parse("a|b|c") == Or((Ident("a"), Ident("b"), Ident("c")))


def test_parentheses_and_references():
    assert parse(" ( g | q ) & +llms ") == And((Or((Ident("g"), Ident("q"))), Ref("llms")))
    assert parse("((a))") == Ident("a")


def test_refs_in_order_of_first_appearance():
    assert refs_of(parse("+b & (+a | x) & +b & +c")) == ["b", "a", "c"]
    assert refs_of(parse("x")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty DSL expression"),
        (" \t\xa0\n", "empty DSL expression"),
        ("a &", 'parse: unexpected token ""'),
        ("a |", 'parse: unexpected token ""'),
        ("()", 'parse: unexpected token ")"'),
        ("& a", 'parse: unexpected token "&"'),
        ("a & | b", 'parse: unexpected token "|"'),
        ("(a", "parse: missing closing parenthesis"),
        ("(a b", "parse: missing closing parenthesis"),
        ("(a | (b & c)", "parse: missing closing parenthesis"),
        ("a)", 'parse: unexpected token ")" after expression'),
        ("a b", 'parse: unexpected token "b" after expression'),
        ("a +b", 'parse: unexpected token "b" after expression'),
        ("(a)(b)", 'parse: unexpected token "(" after expression'),
        ("a @ b", "tokenize: unexpected character '@' at position 2"),
        # positions count in the trimmed text
        ("   a & +", "tokenize: expected set name after '+' at position 5"),
        (
            "(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1),
            f"parse: parentheses nested deeper than {MAX_NESTING} levels",
        ),
    ],
)
def test_errors(text: str, message: str):
    with pytest.raises(DslSyntaxError) as info:
        parse(text)
    assert str(info.value) == message


def test_deepest_allowed_nesting_parses():
    text = "(" * MAX_NESTING + "a" + ")" * MAX_NESTING
    assert parse(text) == Ident("a")
