"""`cmd` / `cmdStop` text -> argv, without a shell (docs/compat.md, Commands).

Three steps, each usable alone:
- `strip_comment_lines`: done at load, before macro expansion, so a macro in a
  commented-out line is never expanded or checked;
- `join_continuations`: a line ending in `\\` is joined to the next;
- `split_posix`: POSIX-style word splitting with quotes and backslashes, no
  variables, globbing, pipes or comments.

`split_posix` follows the Go splitter llama-swap uses, not `shlex.split`:
`\\r` is not a separator (a CRLF file leaves `\\r` in an argument), an
unterminated quote runs to the end of the input instead of failing, and inside
double quotes a backslash escapes only `$`, backquote, `"`, `\\` and newline.
"""

from __future__ import annotations

_SEPARATORS = " \t\n"
_DQUOTE_ESCAPABLE = '$`"\\\n'


def strip_comment_lines(text: str) -> str:
    """Drop every line whose stripped text starts with `#`; keep the rest verbatim."""
    return "\n".join(line for line in text.split("\n") if not line.strip().startswith("#"))


def join_continuations(text: str) -> str:
    """Replace each line ending in `\\` by its stripped text minus the `\\`, plus a space."""
    out = []
    for line in text.split("\n"):
        trimmed = line.strip()
        out.append(trimmed[:-1] + " " if trimmed.endswith("\\") else line)
    return "\n".join(out)


def split_posix(text: str) -> list[str]:
    """Split a command line into words (see the module docstring for the dialect)."""
    return _scan(text)[0]


def unterminated_quote(text: str) -> int | None:
    """The index in `text` of a quote that is never closed, or None.

    Not an error for the splitter (the quote runs to the end, as in
    llama-swap), but never what a user meant: the config check reports it.
    """
    return _scan(text)[1]


def _scan(text: str) -> tuple[list[str], int | None]:
    words: list[str] = []
    word: list[str] = []
    in_word = False
    open_quote: int | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SEPARATORS:
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
        elif c == "'":
            in_word = True
            end = text.find("'", i + 1)
            if end < 0:
                open_quote, end = i, n
            word.append(text[i + 1 : end])
            i = end + 1
        elif c == '"':
            in_word = True
            start = i
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in _DQUOTE_ESCAPABLE:
                    if text[i + 1] != "\n":
                        word.append(text[i + 1])
                    i += 2
                else:
                    word.append(text[i])
                    i += 1
            if i >= n:
                open_quote = start
            i += 1
        elif c == "\\":
            if i + 1 < n and text[i + 1] != "\n":
                in_word = True
                word.append(text[i + 1])
            i += 2
        else:
            in_word = True
            word.append(c)
            i += 1
    if in_word:
        words.append("".join(word))
    return words, open_quote


def parse_command(text: str) -> list[str]:
    """The argv a `cmd`/`cmdStop` value runs: comments, continuations, splitting."""
    return split_posix(prepare(text))


def prepare(text: str) -> str:
    """The text `parse_command` splits: comment lines dropped, continuations joined."""
    return join_continuations(strip_comment_lines(text))


def quote_problem(text: str) -> str | None:
    """What is wrong with the quoting of a `cmd`/`cmdStop` value, or None."""
    prepared = prepare(text)
    at = unterminated_quote(prepared)
    if at is None:
        return None
    rest = " ".join(prepared[at:].split())
    shown = rest if len(rest) <= 30 else rest[:29] + "…"
    return (
        f"unterminated {prepared[at]} quote in `{shown}`: everything after it would be one argument"
    )
