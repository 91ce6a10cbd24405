"""Saved KV-cache slots on disk: where they live and which to keep, save or restore.

Pure decisions (no I/O) for `kv_slots`, the module that talks to the server.
A model's saved slots live in `ROOT/<model>/<argv key>/slot-<id>.bin`: the
key is a hash of the model's effective command, so a file is only ever
restored into a server started exactly as the one that saved it, and a
changed command leaves its old directory to be discarded.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

KEY_CHARS = 16
SLOT_FILE_RE = re.compile(r"slot-([0-9]{1,6})\.bin")
_SAFE = frozenset(string.ascii_letters + string.digits + "-_")


def argv_key(argv: Sequence[str]) -> str:
    """A short, stable hash of a command line (NUL-separated, so no two argvs collide)."""
    digest = hashlib.sha256("\0".join(argv).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:KEY_CHARS]


def model_dir_name(model_id: str) -> str:
    """A model ID as one safe path component: anything but [A-Za-z0-9_-] is %XX-escaped
    (so "." and ".." and "/" can never escape the root, and two IDs never share a name)."""
    out = []
    for char in model_id:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out) or "%"  # no other ID gives a lone "%"


def slot_file(slot_id: int) -> str:
    return f"slot-{slot_id}.bin"


def slot_of(name: str) -> int | None:
    """The slot a file name saved, or None when it is not a slot file of ours."""
    m = SLOT_FILE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


class NextToken(msgspec.Struct):
    n_decoded: int = 0
    n_past: int = 0


class Slot(msgspec.Struct):
    """One entry of llama-server's `GET /slots` (only what the decisions read)."""

    id: int
    is_processing: bool = False
    n_prompt_tokens: int = 0
    n_past: int = 0
    next_token: list[NextToken] | NextToken | None = None

    @property
    def tokens(self) -> int:
        """Tokens this slot holds in its cache (an empty, never used slot holds 0)."""
        nexts = self.next_token
        items = [] if nexts is None else [nexts] if isinstance(nexts, NextToken) else nexts
        decoded = max((n.n_decoded for n in items), default=0)
        past = max([self.n_past, *(n.n_past for n in items)])
        return max(self.n_prompt_tokens + decoded, past)


def parse_slots(body: bytes) -> list[Slot]:
    """`GET /slots` as typed slots; msgspec.DecodeError (a ValueError) when it is not one."""
    return msgspec.json.decode(body, type=list[Slot])


def slots_to_save(slots: Iterable[Slot]) -> list[int]:
    """The slots that hold tokens, largest first (what the time bound should save first)."""
    held = [s for s in slots if s.tokens > 0]
    return [s.id for s in sorted(held, key=lambda s: (-s.tokens, s.id))]


@dataclass(frozen=True)
class SavedFile:
    name: str
    size: int
    mtime: float


def files_over_budget(files: Iterable[SavedFile], max_bytes: int) -> list[str]:
    """The files to delete so that the rest fit in `max_bytes`: the oldest go first."""
    ordered = sorted(files, key=lambda f: (f.mtime, f.name))
    total = sum(f.size for f in ordered)
    doomed = []
    for f in ordered:
        if total <= max_bytes:
            break
        doomed.append(f.name)
        total -= f.size
    return doomed


def restore_plan(files: Iterable[SavedFile], slot_ids: Iterable[int]) -> list[tuple[int, str]]:
    """(slot, file) pairs to restore: each existing slot's file, newest first."""
    wanted = set(slot_ids)
    pairs = []
    for f in sorted(files, key=lambda f: (-f.mtime, f.name)):
        slot = slot_of(f.name)
        if slot is not None and slot in wanted:
            pairs.append((slot, f.name))
    return pairs


def stale_keys(existing: Iterable[str], current: str) -> list[str]:
    """The argv-key directories of a model that are not the current one (to discard)."""
    return sorted(name for name in existing if name != current)
