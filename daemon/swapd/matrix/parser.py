"""Parse one matrix set expression into a syntax tree.

```
expr    := andExpr ( '|' andExpr )*
andExpr := atom ( '&' atom )*
atom    := IDENT | REF | '(' expr ')'
```

`&` binds tighter than `|`, chains are n-ary. The text is trimmed first.
Error messages are llama-swap's (`empty DSL expression`, `tokenize: ...`,
`parse: ...`), plus one of our own: parentheses nested deeper than
`MAX_NESTING` are rejected, so a pathological config cannot exhaust Python's
recursion limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from swapd.matrix.errors import go_quote
from swapd.matrix.lexer import LexError, Token, TokenKind, tokenize, trim_space

MAX_NESTING = 100


@dataclass(frozen=True, slots=True)
class Ident:
    """A var or model name, resolved by the compiler."""

    name: str


@dataclass(frozen=True, slots=True)
class Ref:
    """`+name`: the family of the set `name`."""

    name: str


@dataclass(frozen=True, slots=True)
class And:
    """Pick one combination from each child and unite them."""

    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Pick the combinations of any one child."""

    children: tuple[Expr, ...]


Expr = Ident | Ref | And | Or


class DslSyntaxError(ValueError):
    """A set expression that does not parse; the message is llama-swap's."""


def parse(text: str) -> Expr:
    """Parse one set expression."""
    text = trim_space(text)
    if not text:
        raise DslSyntaxError("empty DSL expression")
    try:
        tokens = tokenize(text)
    except LexError as exc:
        raise DslSyntaxError(f"tokenize: {exc}") from None
    try:
        return _Parser(tokens).parse()
    except _ParseError as exc:
        raise DslSyntaxError(f"parse: {exc}") from None


class _ParseError(ValueError):
    pass


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._i = 0
        self._depth = 0

    def _peek(self) -> Token:
        return self._tokens[self._i]

    def _next(self) -> Token:
        token = self._tokens[self._i]
        if token.kind is not TokenKind.EOF:
            self._i += 1
        return token

    def parse(self) -> Expr:
        node = self._expr()
        token = self._peek()
        if token.kind is not TokenKind.EOF:
            raise _ParseError(f"unexpected token {go_quote(token.value)} after expression")
        return node

    def _expr(self) -> Expr:
        children = [self._and()]
        while self._peek().kind is TokenKind.OR:
            self._next()
            children.append(self._and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self) -> Expr:
        children = [self._atom()]
        while self._peek().kind is TokenKind.AND:
            self._next()
            children.append(self._atom())
        return children[0] if len(children) == 1 else And(tuple(children))

    def _atom(self) -> Expr:
        token = self._peek()
        if token.kind is TokenKind.IDENT:
            self._next()
            return Ident(token.value)
        if token.kind is TokenKind.REF:
            self._next()
            return Ref(token.value)
        if token.kind is TokenKind.LPAREN:
            self._next()
            self._depth += 1
            if self._depth > MAX_NESTING:
                raise _ParseError(f"parentheses nested deeper than {MAX_NESTING} levels")
            node = self._expr()
            if self._peek().kind is not TokenKind.RPAREN:
                raise _ParseError("missing closing parenthesis")
            self._next()
            self._depth -= 1
            return node
        raise _ParseError(f"unexpected token {go_quote(token.value)}")


def refs_of(expr: Expr) -> list[str]:
    """Referenced set names, in order of first appearance (left to right)."""
    seen: dict[str, None] = {}
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Ref):
            seen.setdefault(node.name)
        elif isinstance(node, And | Or):
            stack.extend(reversed(node.children))
    return list(seen)
