"""What swapd keeps of what happened: one typed record per request, swap, exit and reload.

Records are msgspec Structs so the store, the control socket and `--json`
output share one shape. A `RequestRecord` encodes to the keys `swapctl
activity --json` promises (`id`, `start`, `client`, `requested`, `model`,
`route`, `stream`, `outcome`, `status`, `queued_s`, `load_wait_s`, `ttfb_s`,
`duration_s`, `prompt_tokens`, `completion_tokens`, `tokens_per_s`) plus a
few of its own; a value that is not known is None (null), never 0 or -1, so
"no tokens reported" and "zero tokens" stay distinct.

Times are Unix seconds (`time.time()`), durations seconds (`*_s`). The
event records (`SwapRecord`, `ExitRecord`, `ReloadRecord`) carry a `kind` tag
so a mixed list of them decodes back into the right types.

KV-cache figures (`KvRecord`, with `kvCache.persist`) ride on the records of
the events they belong to rather than forming a kind of their own: a swap
carries the saves of the models it evicted and the restore of its target;
an exit carries the save made just before that stop, so a stop outside any
swap (a TTL, an unload, a reload, the shutdown) is kept too, found by the
same `--kind exit --model` filters and dropped by the same retention as the
exit it preceded.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from swapd.process.exit_status import signal_name

#: How a request ended: answered in full; the client left first; cut short by
#: swapd (an unload or shutdown); or failed (with the reason) before or while
#: being answered.
Outcome = Literal["done", "client_gone", "aborted", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("done", "client_gone", "aborted", "failed")

#: How a swap ended: the target is ready; it failed to load; it was abandoned
#: (every waiter left, or an unload or shutdown came first).
SwapResult = Literal["ok", "failed", "aborted"]
SWAP_RESULTS: tuple[SwapResult, ...] = ("ok", "failed", "aborted")

HistoryKind = Literal["swap", "exit", "reload"]
HISTORY_KINDS: tuple[HistoryKind, ...] = ("swap", "exit", "reload")


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One finished request, as the relay saw it from arrival to its last byte."""

    id: int
    """The daemon's request number (see `HistoryStore.next_request_id`)."""
    start: float
    """Arrival, Unix seconds."""
    client: str | None
    """The client's address (`host` or `host:port`), when known."""
    requested: str | None
    """The model name the client asked for (an ID, alias or peer name); None if it gave none."""
    model: str | None
    """The model that served it: a local model ID, or the model asked of `peer`."""
    route: str
    """The path relayed, e.g. `/v1/chat/completions`."""
    stream: bool
    """Whether the client asked for a stream."""
    outcome: Outcome
    status: int | None
    """The HTTP status the client got; None when nothing was sent (client gone first)."""
    queued_s: float | None = None
    """Seconds waiting in the router's queue behind other models' swaps."""
    load_wait_s: float | None = None
    """Seconds waiting for its model to load (the load of swap `swap_id`)."""
    ttfb_s: float | None = None
    """Seconds from arrival to the first byte of the response body."""
    duration_s: float | None = None
    """Seconds from arrival to the end of the response."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_s: float | None = None
    """Generation speed: llama-server's own figure, else completion tokens over the
    time from first to last byte of a stream; None when neither is known."""
    peer: str | None = None
    """The peer that served it, for a request relayed to another server."""
    reason: str | None = None
    """Why it failed or was cut (`load_failed: ...`, `upstream unreachable: ...`)."""
    swap_id: int | None = None
    """The swap whose load it waited for, if any."""


KvAction = Literal["save", "restore"]


class KvRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One model's KV-cache save (before a planned stop) or restore (after a start)."""

    model: str
    action: KvAction
    slots: int
    """Slots saved or restored."""
    bytes: int
    """Bytes written or read, as the server reported them."""
    seconds: float
    timed_out: bool = False
    """`kvCache.timeout` ran out before every slot was done."""
    errors: tuple[str, ...] = ()
    """What failed (a slot call, the listing, pruning old files); the stop or start went on."""


class SwapRecord(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="swap"):
    """One swap: stop `evicted` and put `slept` to sleep, then make `target` ready (start
    it, or wake it: `wake`)."""

    swap_id: int
    start: float
    """When the swap started, Unix seconds."""
    target: str
    evicted: tuple[str, ...]
    why: str
    """What asked for it: `request 12`, `load command`, `preload`."""
    set: str | None
    """The matrix set chosen (None with groups)."""
    cost: int
    """The evict cost of that choice."""
    load_s: float | None
    """Seconds from the start of the swap to its end (ready or not)."""
    result: SwapResult
    error: str | None = None
    kv: tuple[KvRecord, ...] = ()
    """The KV-cache saves of the evicted models, then the restore of the target; empty
    when none was made (or the record predates KV figures)."""
    slept: tuple[str, ...] = ()
    """The models put to sleep to make room (alive, their accelerator memory released);
    empty when none was (or the record predates sleep figures)."""
    wake: bool = False
    """The target was asleep when the swap began: the swap woke it rather than started it."""


class ExitRecord(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="exit"):
    """A model server process ended."""

    time: float
    """When it ended, Unix seconds."""
    model: str
    pid: int
    exit_code: int | None
    """Its exit code; None when a signal killed it."""
    signal: str | None
    """The signal that killed it (`SIGKILL`); None when it exited."""
    reason: str
    """Why it ended: what stopped it (`ttl`, `evicted by code`, `unload`) or, for an
    end of its own, how (`exited with code 3`)."""
    failed: bool
    """It ended on its own (a crash, a failed start), not because swapd stopped it."""
    uptime_s: float | None
    """Seconds from spawn to exit."""
    kv: KvRecord | None = None
    """The KV-cache save made just before this stop; None when there was none."""


class ReloadRecord(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="reload"):
    """One config reload, applied or refused."""

    time: float
    ok: bool
    source: str
    """What asked for it: `signal`, `control`, `watch`."""
    path: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    """Changed models with what changed in each: `chat (cmd, env)`."""
    errors: tuple[str, ...] = ()
    """Why it was refused: each config error as `file:line:col: key: reason`."""


HistoryRecord = SwapRecord | ExitRecord | ReloadRecord
AnyRecord = RequestRecord | SwapRecord | ExitRecord | ReloadRecord


def exit_fields(returncode: int) -> tuple[int | None, str | None]:
    """A `subprocess` return code as (exit code, signal name): `-9` -> `(None, "SIGKILL")`."""
    if returncode >= 0:
        return returncode, None
    return None, signal_name(-returncode)
