"""cmd / cmdStop parsing (docs/compat.md, Commands)."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from swapd.config.cmdline import (
    join_continuations,
    parse_command,
    quote_problem,
    split_posix,
    strip_comment_lines,
    unterminated_quote,
)

REFERENCE = (
    "python model1.py \\\n"
    ' -a "double quotes" \\\n'
    " --arg2 'single quotes'\n"
    " -s\n"
    " # comment 1\n"
    " --arg3 123 \\\n"
    "\n"
    "   # comment 2\n"
    " --arg4 '\"string in string\"'\n"
    "\n"
    " -c \"'single quoted'\""
)


def test_reference_example_parses_to_documented_argv() -> None:
    assert parse_command(REFERENCE) == [
        "python",
        "model1.py",
        "-a",
        "double quotes",
        "--arg2",
        "single quotes",
        "-s",
        "--arg3",
        "123",
        "--arg4",
        '"string in string"',
        "-c",
        "'single quoted'",
    ]


def test_comment_lines_are_dropped_other_lines_kept_verbatim() -> None:
    text = "a\n  # c\n\n b # not a comment"
    assert strip_comment_lines(text) == "a\n\n b # not a comment"
    assert parse_command(text) == ["a", "b", "#", "not", "a", "comment"]


def test_continuation_joins_trimmed_line() -> None:
    assert join_continuations("  a \\  \nb") == "a  \nb"


def test_separators_are_space_tab_newline_not_cr() -> None:
    assert split_posix("a\tb\nc d\r") == ["a", "b", "c", "d\r"]


def test_single_quotes_are_literal() -> None:
    assert split_posix(r"'a\b $x'") == [r"a\b $x"]


def test_double_quotes_escape_only_five_characters() -> None:
    assert split_posix(r'"a\$b\`c\"d\\e\n"') == ['a$b`c"d\\e\\n']
    assert split_posix('"a\\\nb"') == ["ab"]


def test_backslash_outside_quotes() -> None:
    assert split_posix(r"a\ b c\\") == ["a b", "c\\"]
    assert split_posix("a\\\nb") == ["ab"]
    assert split_posix("a \\") == ["a"]


def test_adjacent_pieces_join_and_empty_quotes_give_empty_argument() -> None:
    assert split_posix("""a"b"'c'd "" ''""") == ["abcd", "", ""]


def test_unterminated_quotes_run_to_end() -> None:
    assert split_posix("a 'b c") == ["a", "b c"]
    assert split_posix('a "b c') == ["a", "b c"]


def test_an_unterminated_quote_is_found_where_it_opens() -> None:
    assert unterminated_quote("a 'b c") == 2
    assert unterminated_quote('a "b c') == 2
    assert unterminated_quote(r"""a "b\\" c \"d \'e""") is None  # closed or escaped
    assert unterminated_quote(r'x "it\"s') == 2  # an escaped quote does not close it
    assert unterminated_quote(r"""'a' \'b "c""") == 8
    assert unterminated_quote('"b \'c"') is None  # the double quotes hold a single one


def test_quote_problem_names_the_quote_and_what_follows() -> None:
    assert quote_problem('llama-server -m "x.gguf\n  --port 5800') == (
        'unterminated " quote in `"x.gguf --port 5800`: everything after it would be one argument'
    )
    assert quote_problem("# it's only a comment\nrun") is None
    long = quote_problem("run '" + "x" * 40)
    assert long is not None and "`'" + "x" * 28 + "…`" in long


def test_empty_command_gives_no_arguments() -> None:
    assert parse_command("  # only a comment\n\n") == []


def test_no_shell_features() -> None:
    assert split_posix("echo $HOME *.gguf | wc > out; x") == [
        "echo",
        "$HOME",
        "*.gguf",
        "|",
        "wc",
        ">",
        "out;",
        "x",
    ]


arguments = st.lists(st.text(min_size=0, max_size=12), max_size=8)


@given(arguments)
def test_split_inverts_shlex_join(args: list[str]) -> None:
    assert split_posix(shlex.join(args)) == args


@given(st.lists(st.text(alphabet=st.characters(exclude_characters="\n"), max_size=12), max_size=8))
def test_parse_command_inverts_shlex_join_on_one_line(args: list[str]) -> None:
    line = shlex.join(args)
    if line.strip().startswith("#") or line.strip().endswith("\\"):
        return  # a comment line or a continuation is not a plain command line
    assert parse_command(line) == args


@given(st.lists(st.text(alphabet="abc-=./_0123456789", min_size=1, max_size=8), max_size=8))
def test_one_argument_per_continued_line(args: list[str]) -> None:
    text = " \\\n".join(args)
    assert parse_command(text) == args


@given(arguments)
def test_quoted_command_lines_have_no_unterminated_quote(args: list[str]) -> None:
    assert unterminated_quote(shlex.join(args)) is None
    line = shlex.join(args)
    for quote in "'\"":
        assert unterminated_quote(line + " " + quote) == len(line) + 1
