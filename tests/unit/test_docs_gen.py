"""Generated documents stay equal to what the code renders."""

from __future__ import annotations

from pathlib import Path

from swapd.docs_gen import lifecycle_markdown
from swapd.process.states import TRANSITIONS, ProcessState

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_lifecycle_doc_is_current() -> None:
    assert (DOCS / "lifecycle.md").read_text() == lifecycle_markdown(), (
        "docs/lifecycle.md is stale: run `swapd docs lifecycle > docs/lifecycle.md`"
    )


def test_lifecycle_doc_names_every_state_and_transition() -> None:
    text = lifecycle_markdown()
    for state in ProcessState:
        assert f"`{state.value}`" in text
    assert text.count("\n| ") - 1 == len(TRANSITIONS)  # one row each, after the header
