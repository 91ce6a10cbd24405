"""Hypothesis strategies for every history record, with every field's range of values."""

from __future__ import annotations

from hypothesis import strategies as st

from swapd.history.records import (
    OUTCOMES,
    SWAP_RESULTS,
    ExitRecord,
    KvRecord,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
)

# SQLite keeps REAL as IEEE doubles and INTEGER up to 64 bits: what JSON can carry too.
text = st.text(max_size=30)
names = st.lists(st.text(min_size=1, max_size=12), max_size=4).map(tuple)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
seconds = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)
counts = st.none() | st.integers(min_value=0, max_value=2**40)
ids = st.integers(min_value=1, max_value=2**62)

kv_records = st.builds(
    KvRecord,
    model=st.text(min_size=1, max_size=12),
    action=st.sampled_from(["save", "restore"]),
    slots=st.integers(min_value=0, max_value=1024),
    bytes=st.integers(min_value=0, max_value=2**50),
    seconds=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    timed_out=st.booleans(),
    errors=names,
)

requests = st.builds(
    RequestRecord,
    id=ids,
    start=times,
    client=st.none() | text,
    requested=st.none() | text,
    model=st.none() | text,
    route=text,
    stream=st.booleans(),
    outcome=st.sampled_from(OUTCOMES),
    status=st.none() | st.integers(min_value=100, max_value=599),
    queued_s=seconds,
    load_wait_s=seconds,
    ttfb_s=seconds,
    duration_s=seconds,
    prompt_tokens=counts,
    completion_tokens=counts,
    tokens_per_s=seconds,
    peer=st.none() | text,
    reason=st.none() | text,
    swap_id=st.none() | ids,
)
swaps = st.builds(
    SwapRecord,
    swap_id=ids,
    start=times,
    target=text,
    evicted=names,
    why=text,
    set=st.none() | text,
    cost=st.integers(min_value=0, max_value=2**31),
    load_s=seconds,
    result=st.sampled_from(SWAP_RESULTS),
    error=st.none() | text,
    kv=st.lists(kv_records, max_size=3).map(tuple),
)
exits = st.builds(
    ExitRecord,
    time=times,
    model=text,
    pid=st.integers(min_value=1, max_value=2**22),
    exit_code=st.none() | st.integers(min_value=0, max_value=255),
    signal=st.none() | st.sampled_from(["SIGKILL", "SIGTERM", "SIGILL", "signal 77"]),
    reason=text,
    failed=st.booleans(),
    uptime_s=seconds,
    kv=st.none() | kv_records,
)
reloads = st.builds(
    ReloadRecord,
    time=times,
    ok=st.booleans(),
    source=st.sampled_from(["signal", "control", "watch"]),
    path=text,
    added=names,
    removed=names,
    changed=names,
    errors=names,
)
history_records = swaps | exits | reloads
any_records = requests | history_records
