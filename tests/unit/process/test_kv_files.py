"""The pure decisions about saved KV-cache slots: names, keys, what to save, keep, restore."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.process.kv_files import (
    SavedFile,
    Slot,
    argv_key,
    files_over_budget,
    model_dir_name,
    parse_slots,
    restore_plan,
    slot_file,
    slot_of,
    slots_to_save,
    stale_keys,
)

# What llama-server answers to GET /slots: one slot used, one never used.
LLAMA_SLOTS = (
    b'[{"id":0,"n_ctx":512,"speculative":false,"is_processing":false},'
    b'{"id":1,"n_ctx":512,"speculative":false,"is_processing":false,"id_task":0,'
    b'"n_prompt_tokens":6,"n_prompt_tokens_processed":0,"n_prompt_tokens_cache":0,'
    b'"params":{"seed":1,"samplers":["top_k"]},'
    b'"next_token":[{"has_next_token":false,"has_new_line":false,"n_remain":-1,"n_decoded":3}]}]'
)
# An older llama-server: the position in `next_token.n_past`.
OLD_SLOTS = b'[{"id":0,"next_token":{"n_past":42,"n_remain":0}},{"id":1,"next_token":{"n_past":0}}]'


def test_llama_server_slots_parse_and_count_their_tokens() -> None:
    slots = parse_slots(LLAMA_SLOTS)
    assert [(s.id, s.tokens) for s in slots] == [(0, 0), (1, 9)]
    assert slots_to_save(slots) == [1]
    old = parse_slots(OLD_SLOTS)
    assert [(s.id, s.tokens) for s in old] == [(0, 42), (1, 0)]


@pytest.mark.parametrize("body", [b"", b"{}", b'[{"n_ctx": 3}]', b"[1]", b"not json"])
def test_a_body_that_is_no_slot_listing_is_an_error(body: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        parse_slots(body)


@given(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 10_000)), unique_by=lambda t: t[0]))
def test_slots_to_save_are_those_holding_tokens_largest_first(pairs: list[tuple[int, int]]) -> None:
    slots = [Slot(id=i, n_prompt_tokens=n) for i, n in pairs]
    chosen = slots_to_save(slots)
    assert sorted(chosen) == sorted(i for i, n in pairs if n > 0)
    sizes = [dict(pairs)[i] for i in chosen]
    assert sizes == sorted(sizes, reverse=True)


def test_argv_key_is_stable_and_separates_arguments() -> None:
    assert argv_key(["a", "b"]) == argv_key(["a", "b"])
    assert argv_key(["a", "b"]) != argv_key(["a b"])
    assert argv_key(["ab"]) != argv_key(["a", "b"])
    assert len(argv_key(["x"])) == 16


@given(st.text(max_size=30))
def test_model_dir_names_are_one_safe_component_and_distinct(model_id: str) -> None:
    name = model_dir_name(model_id)
    assert name not in ("", ".", "..")
    assert "/" not in name and "\0" not in name and "." not in name
    assert set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_%")


@given(st.text(max_size=12), st.text(max_size=12))
def test_distinct_model_ids_get_distinct_directories(a: str, b: str) -> None:
    assert (model_dir_name(a) == model_dir_name(b)) == (a == b)


def test_slot_files_round_trip() -> None:
    assert slot_of(slot_file(7)) == 7
    for name in ("slot-7.bin.tmp", "x.bin", "slot-.bin", "slot-1234567.bin", "../slot-1.bin"):
        assert slot_of(name) is None


files_st = st.lists(
    st.builds(
        SavedFile,
        name=st.integers(0, 50).map(slot_file),
        size=st.integers(0, 1000),
        mtime=st.floats(0, 1e6, allow_nan=False),
    ),
    unique_by=lambda f: f.name,
)


@given(files_st, st.integers(0, 5000))
def test_over_budget_the_oldest_go_first_and_no_more_than_needed(
    files: list[SavedFile], max_bytes: int
) -> None:
    doomed = files_over_budget(files, max_bytes)
    kept = [f for f in files if f.name not in doomed]
    assert sum(f.size for f in kept) <= max_bytes
    if doomed:  # every deleted file is older than every kept one
        newest_doomed = max((f.mtime, f.name) for f in files if f.name in doomed)
        assert all((f.mtime, f.name) > newest_doomed for f in kept)
        # and the last one deleted was needed
        last = next(f for f in files if (f.mtime, f.name) == newest_doomed)
        assert sum(f.size for f in kept) + last.size > max_bytes


def test_within_budget_nothing_goes() -> None:
    files = [SavedFile("slot-0.bin", 10, 1.0), SavedFile("slot-1.bin", 10, 2.0)]
    assert files_over_budget(files, 20) == []
    assert files_over_budget(files, 19) == ["slot-0.bin"]
    assert files_over_budget(files, 0) == ["slot-0.bin", "slot-1.bin"]


@given(files_st, st.sets(st.integers(0, 60)))
def test_restore_plan_restores_existing_slots_newest_first(
    files: list[SavedFile], slots: set[int]
) -> None:
    plan = restore_plan(files, slots)
    by_name = {f.name: f for f in files}
    assert {s for s, _ in plan} == {slot_of(f.name) for f in files} & slots
    assert all(slot_file(s) == name for s, name in plan)
    times = [by_name[name].mtime for _, name in plan]
    assert times == sorted(times, reverse=True)


def test_stale_keys_are_every_other_command() -> None:
    assert stale_keys(["k2", "k1", "cur"], "cur") == ["k1", "k2"]
    assert stale_keys(["cur"], "cur") == []
