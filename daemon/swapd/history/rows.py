"""Records to table rows and back: one `Table` per record type, no I/O.

Columns follow the record's fields in order (so a row is built from
`astuple` with a few values converted): tuples and nested records are stored
as JSON text (None as NULL), booleans as 0/1, and `SwapRecord.set` in the
column `set_name` (`set` is an SQL keyword). A NULL in a JSON column (a row
written before that column existed) reads as the field's default. Rows are
inserted many to a statement (`Table.insert_rows_sql`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

import msgspec

from swapd.history.records import ExitRecord, ReloadRecord, RequestRecord, SwapRecord

R = TypeVar("R", RequestRecord, SwapRecord, ExitRecord, ReloadRecord)

_encode = msgspec.json.encode


@dataclass(frozen=True)
class Table(Generic[R]):
    """How one record type is stored."""

    name: str
    record: type[R]
    time_column: str
    json_fields: frozenset[str] = frozenset()
    bool_fields: frozenset[str] = frozenset()
    renamed: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.record.__struct_fields__

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.renamed.get(f, f) for f in self.fields)

    @property
    def insert_sql(self) -> str:
        marks = ", ".join("?" for _ in self.fields)
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({marks})"

    def insert_rows_sql(self, count: int) -> str:
        """Insert `count` rows in one statement (their values flattened, row after row).

        One statement for many rows: the sqlite3 module gives the GIL up and takes
        it back around each step, and with `executemany` that is once per row;
        on a busy loop each of those hand-offs costs the event loop's thread
        more than the row costs the writer.
        """
        row = f"({', '.join('?' for _ in self.fields)})"
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES " + ", ".join(
            [row] * count
        )

    @property
    def select_columns(self) -> str:
        return ", ".join(self.columns)

    def select_present(self, present: frozenset[str]) -> str:
        """The select list for a file whose table has only the columns `present` (one
        written by an older schema and left so, e.g. read-only): NULL for the others."""
        return ", ".join(c if c in present else "NULL" for c in self.columns)

    @cached_property
    def _json_decoders(self) -> dict[str, msgspec.json.Decoder[Any]]:
        """Per JSON column, a decoder for its field's type."""
        return {
            info.name: msgspec.json.Decoder(info.type)
            for info in msgspec.structs.fields(self.record)
            if info.name in self.json_fields
        }

    def to_row(self, record: R) -> tuple[Any, ...]:
        values = msgspec.structs.astuple(record)
        if not self.json_fields:
            return values
        return tuple(
            _encode(v).decode() if f in self.json_fields and v is not None else v
            for f, v in zip(self.fields, values, strict=True)
        )

    def from_row(self, row: Sequence[Any]) -> R:
        values: dict[str, Any] = {}
        decoders = self._json_decoders
        for f, v in zip(self.fields, row, strict=True):
            if f in decoders:
                if v is None:
                    continue  # a row older than the column: the field's default
                v = decoders[f].decode(v)
            elif f in self.bool_fields:
                v = bool(v)
            values[f] = v
        return self.record(**values)


REQUESTS: Table[RequestRecord] = Table(
    "requests", RequestRecord, "start", bool_fields=frozenset({"stream"})
)
SWAPS: Table[SwapRecord] = Table(
    "swaps",
    SwapRecord,
    "start",
    json_fields=frozenset({"evicted", "kv", "slept"}),
    bool_fields=frozenset({"wake"}),
    renamed={"set": "set_name"},
)
EXITS: Table[ExitRecord] = Table(
    "exits",
    ExitRecord,
    "time",
    json_fields=frozenset({"kv"}),
    bool_fields=frozenset({"failed"}),
)
RELOADS: Table[ReloadRecord] = Table(
    "reloads",
    ReloadRecord,
    "time",
    json_fields=frozenset({"added", "removed", "changed", "errors"}),
    bool_fields=frozenset({"ok"}),
)

TABLE_OF: dict[type, Table[Any]] = {
    RequestRecord: REQUESTS,
    SwapRecord: SWAPS,
    ExitRecord: EXITS,
    ReloadRecord: RELOADS,
}
HISTORY_TABLES: dict[str, Table[Any]] = {"swap": SWAPS, "exit": EXITS, "reload": RELOADS}
