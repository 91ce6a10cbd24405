"""The history file: schema and migrations, lossless rows, queries, statistics, retention."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.history import database as database_module
from swapd.history.database import Database, HistoryUnavailable
from swapd.history.queries import MAX_LIMIT, ActivityQuery, HistoryQuery, activity_sql
from swapd.history.records import (
    OUTCOMES,
    ExitRecord,
    HistoryRecord,
    Outcome,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
)
from swapd.history.schema import MIGRATIONS, SCHEMA_VERSION, NewerSchema, migrate, schema_version
from swapd.history.settings import DAY, HistorySettings
from swapd.history.stats import percentile
from tests.unit.history.strategies import history_records, requests

NOW = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    opened = Database.open_writer(tmp_path / "h.sqlite3")
    yield opened
    opened.close()


def req(i: int, **fields: object) -> RequestRecord:
    base = RequestRecord(
        id=i, start=NOW + i, client="10.0.0.1", requested="chat", model="chat",
        route="/v1/chat/completions", stream=True, outcome="done", status=200,
    )  # fmt: skip
    return msgspec.structs.replace(base, **fields)


def swap(i: int, target: str = "chat", **fields: object) -> SwapRecord:
    base = SwapRecord(
        swap_id=i, start=NOW + i, target=target, evicted=(), why=f"request {i}", set=None,
        cost=0, load_s=1.0, result="ok",
    )  # fmt: skip
    return msgspec.structs.replace(base, **fields)


def exit_(i: int, model: str = "chat", **fields: object) -> ExitRecord:
    base = ExitRecord(
        time=NOW + i, model=model, pid=100 + i, exit_code=0, signal=None, reason="ttl",
        failed=False, uptime_s=10.0,
    )  # fmt: skip
    return msgspec.structs.replace(base, **fields)


def reload_(i: int, **fields: object) -> ReloadRecord:
    base = ReloadRecord(time=NOW + i, ok=True, source="signal", path="/etc/swapd/config.yaml")
    return msgspec.structs.replace(base, **fields)


# ----- schema ---------------------------------------------------------------------


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    db = Database.open_writer(path)
    try:
        assert schema_version(db.conn) == SCHEMA_VERSION == len(MIGRATIONS)
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master")}
        assert {"requests", "swaps", "exits", "reloads", "requests_model_start"} <= tables
    finally:
        db.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_migrations_apply_in_order_and_only_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    steps = (("CREATE TABLE a (x)",), ("CREATE TABLE b (y)", "INSERT INTO a VALUES (1)"))
    assert migrate(conn, steps[:1]) == (0, 1)
    assert migrate(conn, steps) == (1, 2)  # only the second step runs
    assert migrate(conn, steps) == (2, 2)
    assert conn.execute("SELECT COUNT(*) FROM a").fetchone()[0] == 1


def test_a_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    steps = (("CREATE TABLE a (x)",), ("CREATE TABLE b (y)", "THIS IS NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, steps)
    assert schema_version(conn) == 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"a"}


def test_a_newer_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE future (x)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NewerSchema):
        Database.open_writer(path)
    assert path.read_bytes() == before


def test_reading_a_missing_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HistoryUnavailable):
        Database.open_reader(tmp_path / "nothing.sqlite3")


# ----- every field survives the file ---------------------------------------------------


@settings(max_examples=50)
@given(st.lists(requests, max_size=15), st.lists(history_records, max_size=15))
def test_every_record_reads_back_as_written(
    reqs: list[RequestRecord], events: list[HistoryRecord]
) -> None:
    reqs = [msgspec.structs.replace(r, id=i + 1) for i, r in enumerate(reqs)]
    with tempfile.TemporaryDirectory() as tmp:
        writer = Database.open_writer(Path(tmp) / "h.sqlite3")
        reader = Database.open_reader(Path(tmp) / "h.sqlite3")
        try:
            writer.write([*reqs, *events])
            for r in reqs:
                assert reader.request(r.id) == r
            back = reader.history(HistoryQuery(limit=MAX_LIMIT))
            key = msgspec.json.encode
            assert sorted(map(key, back)) == sorted(map(key, events))
        finally:
            reader.close()
            writer.close()


def test_a_failed_batch_writes_nothing(db: Database) -> None:
    db.write([req(1)])
    bad = req(2, route=None)  # NOT NULL: the whole batch fails
    with pytest.raises(sqlite3.IntegrityError):
        db.write([req(3), bad])
    assert [r.id for r in db.activity(ActivityQuery())] == [1]
    assert not db.conn.in_transaction


# ----- activity ---------------------------------------------------------------------

models = st.sampled_from(["chat", "code", None])
times = st.integers(0, 50).map(lambda t: NOW + t)
queries = st.builds(
    ActivityQuery,
    model=st.sampled_from(["chat", "code", None]),
    outcome=st.none() | st.sampled_from(OUTCOMES),
    since=st.none() | times,
    until=st.none() | times,
    limit=st.integers(-3, 40),
)


@settings(max_examples=60)
@given(
    st.lists(st.tuples(models, st.sampled_from(OUTCOMES), times), max_size=40),
    st.lists(queries, min_size=1, max_size=5),
)
def test_activity_is_filtered_and_newest_first(
    rows: list[tuple[str | None, str, float]], asked: list[ActivityQuery]
) -> None:
    records = [
        req(i, model=m, outcome=o, start=t) for i, (m, o, t) in enumerate(rows, start=1)
    ]  # ids are the insertion order here
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open_writer(Path(tmp) / "h.sqlite3")
        try:
            db.write(records)
            for q in asked:
                expected = [
                    r
                    for r in records
                    if (q.model is None or r.model == q.model)
                    and (q.outcome is None or r.outcome == q.outcome)
                    and (q.since is None or r.start >= q.since)
                    and (q.until is None or r.start < q.until)
                ]
                expected.sort(key=lambda r: (r.start, r.id), reverse=True)
                assert db.activity(q) == expected[: max(1, q.limit)]
        finally:
            db.close()


def test_the_latest_request_of_an_id_wins(db: Database) -> None:
    db.write([req(5, route="/old"), req(6), req(5, route="/new")])
    found = db.request(5)
    assert found is not None and found.route == "/new"
    assert db.request(99) is None


def test_next_request_id_follows_the_largest_kept(db: Database) -> None:
    assert db.next_request_id() == 1
    db.write([req(41), req(7)])
    assert db.next_request_id() == 42
    db.write([req(9)])  # a request that finished late never lowers it
    assert db.next_request_id() == 42


def test_next_request_id_outlives_retention(db: Database) -> None:
    db.write([req(1), req(2)])
    assert db.prune(HistorySettings(retention_days=1), now=NOW + 10 * DAY) == 2
    assert db.next_request_id() == 3


def test_a_version_2_file_keeps_its_rows_and_its_next_request_id(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:2])
    columns = ", ".join(RequestRecord.__struct_fields__)
    marks = ", ".join("?" for _ in RequestRecord.__struct_fields__)
    for record in (req(30), req(12, outcome="failed")):
        row = msgspec.structs.astuple(record)
        conn.execute(f"INSERT INTO requests ({columns}) VALUES ({marks})", row)
    conn.close()
    db = Database.open_writer(path)
    try:
        assert schema_version(db.conn) == SCHEMA_VERSION
        assert db.next_request_id() == 31
        assert db.activity(ActivityQuery(outcome="failed")) == [req(12, outcome="failed")]
        names = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master")}
        assert "requests_id" not in names and "requests_not_done" in names
    finally:
        db.close()


def test_batches_of_every_size_are_written_whole_and_in_order(tmp_path: Path) -> None:
    db = Database.open_writer(tmp_path / "h.sqlite3")
    try:
        written = 0
        for size in (1, 9, 10, 11, 99, 100, 101, 257):
            db.write([req(written + i) for i in range(size)])
            written += size
        ids = [r[0] for r in db.conn.execute("SELECT id FROM requests ORDER BY seq")]
        assert ids == list(range(written))
        assert db.next_request_id() == written
    finally:
        db.close()


@pytest.mark.parametrize("outcome", ["failed", "client_gone", "aborted"])
def test_a_query_for_requests_not_done_uses_their_partial_index(
    db: Database, outcome: Outcome
) -> None:
    sql, params = activity_sql(ActivityQuery(outcome=outcome, since=NOW))
    plan = " ".join(str(row) for row in db.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "requests_not_done" in plan


# ----- history -----------------------------------------------------------------------


def test_history_merges_kinds_newest_first(db: Database) -> None:
    db.write([swap(1), exit_(2), reload_(3), swap(4), exit_(5)])
    times = [r.start if isinstance(r, SwapRecord) else r.time for r in db.history(HistoryQuery())]
    assert times == [NOW + 5, NOW + 4, NOW + 3, NOW + 2, NOW + 1]
    only = db.history(HistoryQuery(kinds=("exit",), limit=1))
    assert only == [exit_(5)]
    window = db.history(HistoryQuery(since=NOW + 2, until=NOW + 4))
    assert [type(r) for r in window] == [ReloadRecord, ExitRecord]


def test_history_of_a_model(db: Database) -> None:
    records: list[HistoryRecord] = [
        swap(1, target="chat"),
        swap(2, target="code", evicted=("chat",)),
        swap(3, target="code", evicted=("chatty",)),
        exit_(4, model="chat"),
        exit_(5, model="code"),
        reload_(6, added=("chat",)),
        reload_(7, changed=("chat (cmd, env)",)),
        reload_(8, changed=("chatty (cmd)", "code")),
        reload_(9, removed=("chat",)),
    ]
    db.write(records)
    found = db.history(HistoryQuery(model="chat"))
    assert sorted(map(msgspec.json.encode, found)) == sorted(
        map(msgspec.json.encode, [records[i] for i in (0, 1, 3, 5, 6, 8)])
    )
    windowed = db.history(HistoryQuery(model="chat", since=NOW + 2, until=NOW + 7, limit=2))
    assert windowed == [records[5], records[3]]


def test_load_times_are_the_latest_successful_loads(db: Database) -> None:
    db.write(
        [
            swap(1, load_s=1.0),
            swap(2, load_s=9.0, result="failed"),
            swap(3, load_s=None, result="aborted"),
            swap(4, load_s=2.0),
            swap(5, target="code", load_s=7.0),
            swap(6, load_s=3.0),
        ]
    )
    assert db.load_times("chat", 2) == [3.0, 2.0]
    assert db.load_times("chat", 100) == [3.0, 2.0, 1.0]
    assert db.load_times("none", 5) == []


# ----- statistics ---------------------------------------------------------------------


def test_stats_per_model(db: Database) -> None:
    db.write(
        [
            req(1, ttfb_s=0.1, duration_s=1.0, tokens_per_s=50.0, prompt_tokens=10,
                completion_tokens=20),
            req(2, ttfb_s=0.3, duration_s=3.0, tokens_per_s=70.0, prompt_tokens=5),
            req(3, outcome="failed", status=500, reason="load_failed"),
            req(4, status=404),
            req(5, outcome="client_gone", status=None),
            req(6, outcome="aborted", status=503),
            req(7, model="code", ttfb_s=1.0, duration_s=2.0),
            req(8, model=None, outcome="failed", status=404),
            req(100, ttfb_s=9.0),  # outside the window
            swap(1, load_s=1.0),
            swap(2, load_s=3.0),
            swap(3, load_s=None, result="failed", error="exited with code 1"),
            swap(4, target="code", load_s=5.0),
            exit_(1, failed=True, reason="killed by SIGSEGV"),
            exit_(2, reason="ttl"),
            exit_(3, model="embed", failed=True),
        ]
    )  # fmt: skip
    stats = db.stats(NOW, NOW + 50)
    assert (stats.since, stats.until) == (NOW, NOW + 50)
    by_model = {s.model: s for s in stats.models}
    assert list(by_model) == ["chat", "code", "embed"]
    chat = by_model["chat"]
    assert (chat.requests, chat.errors) == (6, 3)
    assert chat.ttfb_p50_s == pytest.approx(0.2) and chat.ttfb_p95_s == pytest.approx(0.29)
    assert chat.duration_p50_s == pytest.approx(2.0)
    assert chat.tokens_per_s_p50 == pytest.approx(60.0)
    assert (chat.prompt_tokens, chat.completion_tokens) == (15, 20)
    assert (chat.loads, chat.load_failures, chat.load_p50_s) == (3, 1, 2.0)
    assert chat.crashes == 1
    code = by_model["code"]
    assert (code.requests, code.errors, code.ttfb_p50_s, code.loads, code.load_p50_s) == (
        1, 0, 1.0, 1, 5.0,
    )  # fmt: skip
    embed = by_model["embed"]
    assert (embed.requests, embed.crashes, embed.ttfb_p50_s, embed.load_p50_s) == (
        0, 1, None, None,
    )  # fmt: skip


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.none() | st.floats(0, 100), times),
        max_size=60,
    )
)
def test_stats_percentiles_match_sorting_in_python(
    rows: list[tuple[str, float | None, float]],
) -> None:
    records = [req(i, model=m, ttfb_s=v, start=t) for i, (m, v, t) in enumerate(rows, start=1)]
    since, until = NOW + 10, NOW + 40
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open_writer(Path(tmp) / "h.sqlite3")
        try:
            db.write(records)
            got = {s.model: s for s in db.stats(since, until).models}
        finally:
            db.close()
    for model in ("a", "b"):
        inside = [r for r in records if r.model == model and since <= r.start < until]
        if not inside:
            assert model not in got
            continue
        values = [r.ttfb_s for r in inside if r.ttfb_s is not None]
        assert got[model].requests == len(inside)
        for p, figure in ((0.5, got[model].ttfb_p50_s), (0.95, got[model].ttfb_p95_s)):
            expected = percentile(values, p)
            assert figure == (None if expected is None else pytest.approx(expected))


# ----- retention -------------------------------------------------------------------


def test_retention_by_age_deletes_old_rows_of_every_kind(db: Database) -> None:
    old, new = NOW - 8 * DAY, NOW - 6 * DAY
    db.write(
        [req(1, start=old), req(2, start=new), swap(1, start=old), swap(2, start=new),
         exit_(1, time=old), exit_(2, time=new), reload_(1, time=old), reload_(2, time=new)]
    )  # fmt: skip
    assert db.prune(HistorySettings(retention_days=7), NOW) == 4
    assert [r.id for r in db.activity(ActivityQuery())] == [2]
    assert len(db.history(HistoryQuery())) == 3
    assert db.prune(HistorySettings(retention_days=0), NOW) == 0  # 0: no age limit


def test_retention_by_count_keeps_the_newest(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database_module, "PRUNE_CHUNK", 7)  # several chunks
    db.write([req(i) for i in range(1, 51)] + [swap(i) for i in range(1, 31)])
    settings = HistorySettings(retention_days=0, max_requests=20, max_events=4)
    assert db.prune(settings, NOW) == 30 + 26
    assert [r.id for r in db.activity(ActivityQuery(limit=100))] == list(range(50, 30, -1))
    assert [r.swap_id for r in db.history(HistoryQuery())] == [30, 29, 28, 27]  # type: ignore[union-attr]
    assert db.prune(settings, NOW) == 0
    assert db.prune(HistorySettings(retention_days=0, max_requests=0), NOW) == 0
