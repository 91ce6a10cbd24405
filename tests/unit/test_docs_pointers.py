"""Comments point into the repository: every `docs/compat.md, <section>` names a
section that exists, and nothing cites a file the repository does not hold."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("daemon", "shared", "tui", "demo", "bench", "tests")
COMPAT = ROOT / "docs" / "compat.md"
POINTER = re.compile(r"docs/compat\.md, ([^)]+)\)")
# A line break inside a pointer, with the comment marker or indentation that follows.
WRAP = re.compile(r"[ \t]*\n[ \t]*(?:#[ \t]*)?")
OUTSIDE = re.compile(r"spec[/ ]\w+\.md|\b(?:router|api|config)\.md\b|\bSTACK\b|gotcha \d")


def python_files() -> list[Path]:
    return sorted(p for d in SOURCES for p in (ROOT / d).rglob("*.py") if p != Path(__file__))


def sections() -> list[str]:
    return [line[3:].strip() for line in COMPAT.read_text().splitlines() if line.startswith("## ")]


def test_compat_sections_are_unique_plain_headings() -> None:
    names = sections()
    assert len(names) == len(set(names))
    for name in names:
        # Plain words only, so the GitHub anchor is the lower-cased, hyphenated name.
        assert re.fullmatch(r"[A-Z][A-Za-z -]*[A-Za-z]", name), name


def test_every_pointer_names_a_compat_section() -> None:
    known = set(sections())
    found = 0
    for path in python_files():
        text = WRAP.sub(" ", path.read_text())
        for match in POINTER.finditer(text):
            found += 1
            assert match.group(1) in known, f"{path.relative_to(ROOT)}: {match.group(0)}"
    assert found > 20  # the pattern still matches how the code writes its pointers


def test_no_comment_cites_a_file_outside_the_repository() -> None:
    cited = []
    for path in python_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if OUTSIDE.search(line) or ("§" in line and not re.search(r"RFC \d+ §", line)):
                cited.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert cited == []
