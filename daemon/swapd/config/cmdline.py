"""`cmd` / `cmdStop` text -> argv, without a shell (spec/config.md §11).

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
    words: list[str] = []
    word: list[str] = []
    in_word = False
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
            end = n if end < 0 else end
            word.append(text[i + 1 : end])
            i = end + 1
        elif c == '"':
            in_word = True
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in _DQUOTE_ESCAPABLE:
                    if text[i + 1] != "\n":
                        word.append(text[i + 1])
                    i += 2
                else:
                    word.append(text[i])
                    i += 1
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
    return words


def parse_command(text: str) -> list[str]:
    """The argv a `cmd`/`cmdStop` value runs: comments, continuations, splitting."""
    return split_posix(join_continuations(strip_comment_lines(text)))
