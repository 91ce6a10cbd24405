"""Readable text for protocol payloads: the tables `swapctl` prints without `--json`.

Pure functions from payloads to strings, so the CLI stays thin and the
output is tested without a daemon.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from swapctl import protocol as p


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; trailing spaces trimmed."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def duration(seconds: float | None) -> str:
    """The one duration format of swapctl and swaptui, compact for narrow columns:
    `-`, `850ms`, `4.2s`, `42s`, `3m05s`, `2h03m`, `3d04h`; rounded, never truncated
    (59.97 s is `1m00s`)."""
    if seconds is None:
        return "-"
    if seconds < 0.9995:
        return f"{max(0.0, seconds) * 1000:.0f}ms"
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    whole = int(seconds + 0.5)  # half up: 12.5 s is 13s
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def clock(unix: float) -> str:
    """Local wall-clock time with milliseconds."""
    return time.strftime("%H:%M:%S", time.localtime(unix)) + f".{int(unix % 1 * 1000):03d}"


def _opt(value: object) -> str:
    return "-" if value is None or value == "" or value == [] else str(value)


def _names(names: Sequence[str]) -> str:
    return ",".join(names) if names else "-"


def status(s: p.Status) -> str:
    d = s.daemon
    states = ", ".join(f"{n} {name}" for name, n in sorted(s.states.items())) or "no models"
    running = _names(s.running)
    if s.running_set:
        running += f" (set {s.running_set})"
    rows = [
        ("daemon", f"{d.name} {d.version} (pid {d.pid})"),
        ("uptime", duration(s.uptime)),
        ("config", _opt(d.config_path)),
        ("router", d.router),
        ("listen", _names(d.listen)),
        ("models", f"{s.models}: {states}"),
        ("running", running),
        ("in flight", str(s.in_flight)),
        ("queued", str(s.queued)),
        ("subscribers", str(s.subscribers)),
        ("host", host_line(s.host)),
    ]
    if s.capacity:
        rows.append(
            ("capacity", capacity_line(s.capacity).removeprefix("capacity in use: ").strip())
        )
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in rows)


def legend(entries: Sequence[p.StateLegend]) -> str:
    return table(
        ["STATE", "MEANING", "NEXT"],
        [(e.name, e.description, _names(e.next)) for e in entries],
    )


def models(rows: Sequence[p.ModelInfo], capacity: Sequence[p.CapacityUse] = ()) -> str:
    return _models_table(rows) + footprints(rows, capacity)


def _models_table(rows: Sequence[p.ModelInfo]) -> str:
    return table(
        [
            "MODEL",
            "STATE",
            "PID",
            "PORT",
            "INFLIGHT",
            "WAITING",
            "QUEUED",
            "TTL LEFT",
            "LAST LOAD",
            "CPU",
            "MEM",
            "GPU",
            "MEMBER OF",
        ],
        [
            (
                m.id,
                m.state,
                _opt(m.pid),
                _opt(m.port),
                str(m.in_flight),
                str(m.waiting),
                str(m.queued),
                duration(m.ttl_left) if m.ttl else "never",
                duration(m.last_load_seconds),
                *_meter_cells(m.meters),
                _names([*m.groups, *m.sets]),
            )
            for m in rows
        ],
    ) + "".join(failure_note(m) + "\n" for m in rows if m.state == "failed")


# --- live meters and budgets -------------------------------------------------------


def size(amount: int | None) -> str:
    """Bytes for people: `4294967296` -> `4.0G`, binary units."""
    if amount is None:
        return "-"
    value = float(amount)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit in ("B", "K") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def _meter_cells(m: p.Meters | None) -> tuple[str, str, str]:
    if m is None:
        return ("-", "-", "-")
    return (f"{m.cpu_percent:.0f}%", size(m.ram), size(m.vram))


def _amount(resource: str, amount: int | None, sized: set[str]) -> str:
    if amount is None:
        return "-"
    return size(amount) if resource in sized else str(amount)


def _sized(capacity: Sequence[p.CapacityUse]) -> set[str]:
    return {c.resource for c in capacity if c.sized} | {"ram", "vram"}


def footprints(rows: Sequence[p.ModelInfo], capacity: Sequence[p.CapacityUse] = ()) -> str:
    """Per model and resource: declared, measured and planned (and, for a model that can
    sleep, planned asleep); then the capacity in use."""
    sized = _sized(capacity)
    lines = []
    for m in rows:
        f = m.footprint
        if f is None:
            continue
        if f.devices and any(d in sized for d in f.devices):
            sized |= {r for r in f.planned if r not in {c.resource for c in capacity}}
            sized |= {r for r in f.declared if r not in {c.resource for c in capacity}}
        resources = dict.fromkeys([*f.declared, *f.measured, *f.planned, *f.blind])
        for r in resources:
            lines.append(
                (
                    m.id,
                    r + (f" on {f.device}" if f.device and r not in f.devices else ""),
                    _amount(r, f.declared.get(r), sized),
                    _amount(r, f.measured.get(r), sized)
                    + (
                        f" (asleep {_amount(r, f.asleep_measured[r], sized)})"
                        if f.asleep_measured and r in f.asleep_measured
                        else ""
                    ),
                    _amount(r, f.planned.get(r, 0), sized)
                    + (" (blind)" if r in f.blind else "")
                    + (
                        f" (asleep {_amount(r, f.asleep.get(r, 0), sized)})"
                        if f.asleep is not None
                        else ""
                    ),
                )
            )
    if not lines and not capacity:
        return ""
    text = "\n" + table(["MODEL", "RESOURCE", "DECLARED", "MEASURED", "PLANNED"], lines)
    return text + wakes_line(rows) + capacity_line(capacity)


def wakes_line(rows: Sequence[p.ModelInfo]) -> str:
    """`measured wakes (median): a 1.2s, b 0.4s`, for the models that ever woke."""
    parts = [
        f"{m.id} {duration(m.footprint.wake_s)}"
        for m in rows
        if m.footprint is not None and m.footprint.wake_s is not None
    ]
    return f"measured wakes (median): {', '.join(parts)}\n" if parts else ""


def capacity_line(capacity: Sequence[p.CapacityUse]) -> str:
    """`capacity in use: ram 8.0G of 10.0G (80%)`."""
    if not capacity:
        return ""
    sized = _sized(capacity)
    parts = []
    for c in capacity:
        share = f" ({100 * c.used / c.capacity:.0f}%)" if c.capacity else ""
        parts.append(
            f"{c.resource} {_amount(c.resource, c.used, sized)} of "
            f"{_amount(c.resource, c.capacity, sized)}{share}"
        )
    return "capacity in use: " + ", ".join(parts) + "\n"


def host_line(h: p.HostMeters | None) -> str:
    """`cpu 12%, memory 6.1G of 31.2G, gpu0 3.0G of 24.0G`; `-` before the first sample."""
    if h is None:
        return "-"
    text = f"cpu {h.cpu_percent:.0f}%, memory {size(h.mem_used)} of {size(h.mem_total)}"
    for g in h.gpus or ():
        text += f", gpu{g.index} {size(g.used)} of {size(g.total)}"
    return text


def failure_note(m: p.ModelInfo, now: float | None = None) -> str:
    """`chat: failed 2m ago: exited with code 3 while serving (1 failure in 4 starts)`."""
    when = ""
    if m.last_failure_at is not None:
        ago = max(0.0, (time.time() if now is None else now) - m.last_failure_at)
        when = f" {duration(ago)} ago"
    what = f": {m.last_failure}" if m.last_failure else ""
    count = f"{m.failures} failure{'s' if m.failures != 1 else ''} in {m.starts} start"
    count += "s" if m.starts != 1 else ""
    return f"{m.id}: failed{when}{what} ({count})"


def load(result: p.LoadResult) -> str:
    if result.seconds is None:
        text = f"{result.model} is {result.state} (already loaded)"
    else:
        text = f"{result.model} is {result.state} (loaded in {duration(result.seconds)})"
    if result.evicted:
        text += f"; evicted {', '.join(result.evicted)}"
    return text + "\n"


def unload(result: Mapping[str, Any]) -> str:
    """`{"models": [...], "cut": N}`: what `swapctl unload` prints."""
    if not result["models"]:
        return "nothing was running\n"
    text = f"stopped: {', '.join(result['models'])}"
    if result["cut"]:
        text += f" ({result['cut']} request(s) in flight were cut short)"
    return text + "\n"


def reload(result: p.ReloadResult) -> str:
    """What a reload did; each changed model with what changed: `chat (cmd, env)`."""
    lines = [f"reloaded {result.path}"]
    for label, names in (
        ("added", result.added),
        ("removed", result.removed),
        ("changed", result.changed_labels()),
        ("unchanged", result.unchanged),
    ):
        if names:
            lines.append(f"  {label}: {', '.join(names)}")
    lines += [f"  warning: {w.format()}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def error(e: p.Error) -> str:
    lines = [f"swapctl: {e.code}: {e.message}"]
    lines += [f"  {problem.format()}" for problem in e.problems]
    if e.log_tail:
        lines.append("  last log lines:")
        lines += [f"    {line}" for line in e.log_tail.rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def explanation(x: p.Explanation) -> str:
    rows = [("model", x.model if x.resolved in (None, x.model) else f"{x.model} -> {x.resolved}")]
    rows.append(("action", x.action))
    if x.why:
        rows.append(("why", x.why))
    if x.state is not None:
        rows.append(("state", x.state))
    rows.append(("running", _names(x.running)))
    rows.append(("evict", _names(x.evict)))
    if x.sleep:
        rows.append(("sleep", _names(x.sleep)))
    if x.set is not None:
        rows.append(("set", x.set))
    if x.cost is not None:
        rows.append(("cost", str(x.cost)))
    if x.queue_position is not None:
        rows.append(("queue position", str(x.queue_position)))
    if x.queued or x.in_flight:
        rows.append(("queued / in flight", f"{x.queued} / {x.in_flight}"))
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in rows)


def matrix(view: p.MatrixView) -> str:
    out: list[str] = [f"router: {view.router}"]
    running = _names(view.running)
    if view.running_set:
        running += f" (set {view.running_set})"
    out.append(f"running: {running}")
    for s in view.sets:
        marker = "*" if s.name == view.running_set else " "
        out.append(f"{marker} set {s.name}: {s.dsl}" if s.dsl else f"{marker} set {s.name}")
        for combination in s.combinations:
            current = set(combination) >= set(view.running) and bool(view.running)
            out.append(f"    {'>' if current else ' '} {' & '.join(combination) or '(empty)'}")
        if s.truncated:
            more = f"{s.more} more" if s.more else "more"
            out.append(f"      ... {more}")
    for g in view.groups:
        flags = [f for f, on in (("swap", g.swap), ("exclusive", g.exclusive)) if on]
        if g.persistent:
            flags.append("persistent")
        out.append(f"  group {g.name} [{', '.join(flags) or 'no flags'}]: {_names(g.members)}")
    if view.evict_costs:
        costs = ", ".join(f"{m}={c}" for m, c in sorted(view.evict_costs.items()))
        out.append(f"evict costs: {costs}")
    text = "\n".join(out) + "\n"
    if view.explain is not None:
        text += "\n" + explanation(view.explain)
    return text


def kv_note(records: Sequence[p.KvRecord]) -> str:
    """ "; kv: a saved 1 slot (6.6MiB, 12ms), b restored 2 slots (...)", or "" when none."""
    if not records:
        return ""
    parts = []
    for k in records:
        verb = "saved" if k.action == "save" else "restored"
        plural = "" if k.slots == 1 else "s"
        part = f"{k.model} {verb} {k.slots} slot{plural} ({_bytes(k.bytes)}, {duration(k.seconds)})"
        if k.errors:
            part += f" [{'; '.join(k.errors)}]"
        parts.append(part)
    return "; kv: " + ", ".join(parts)


def kv_summary(records: Sequence[p.KvRecord]) -> str:
    """A history record's KV-cache figures in one clause, "" when none:
    "kv: saved 3 slots 12.0MiB in 410ms; restored 3 in 80ms". Saves name their models
    when there are several; what went wrong is counted here, told in full by `--json`."""
    saves = [k for k in records if k.action == "save"]
    restores = [k for k in records if k.action == "restore"]
    named = len(saves) > 1
    parts = []
    if saves:
        parts.append(
            "saved "
            + ", ".join(
                (f"{k.model} " if named else "")
                + f"{k.slots} slot{'' if k.slots == 1 else 's'} {_bytes(k.bytes)}"
                + f" in {duration(k.seconds)}{_kv_trouble(k)}"
                for k in saves
            )
        )
    for k in restores:
        parts.append(f"restored {k.slots} in {duration(k.seconds)}{_kv_trouble(k)}")
    return "kv: " + "; ".join(parts) if parts else ""


def _kv_trouble(k: p.KvRecord) -> str:
    if k.timed_out:
        return " (timed out)"
    if k.errors:
        return f" ({len(k.errors)} error{'' if len(k.errors) == 1 else 's'})"
    return ""


def _bytes(amount: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if amount >= scale:
            return f"{amount / scale:.1f}{unit}"
    return f"{amount}B"


def decisions(rows: Sequence[p.Decision]) -> str:
    return table(
        ["TIME", "MODEL", "ACTION", "EVICT", "SET", "COST", "DURATION", "WHY"],
        [
            (
                clock(d.time),
                d.model,
                d.action,
                _names(d.evict) + (f" (sleep {_names(d.sleep)})" if d.sleep else ""),
                _opt(d.set),
                _opt(d.cost),
                duration(d.duration),
                d.why + kv_note(d.kv),
            )
            for d in rows
        ],
    )


def event(item: p.Event | p.Lagged) -> str:
    """One line per event, for `swapctl events`."""
    if isinstance(item, p.Lagged):
        return f"-- lagged: {item.missed} events missed --\n"
    d = item.data
    head = f"{clock(d.time)} {item.topic:8}"
    match d:
        case p.StateChanged():
            body = f"{d.model}: {d.old} -> {d.new}" + (f" ({d.reason})" if d.reason else "")
        case p.SwapStarted():
            body = (
                f"swap to {d.target} evict={_names(d.evict)} set={_opt(d.set)} cost={_opt(d.cost)}"
            )
            body += f" sleep={_names(d.sleep)}" if d.sleep else ""
            body += f" why={d.why}" if d.why else ""
        case p.SwapFinished():
            verdict = "ok" if d.ok else f"failed: {d.error}"
            body = f"swap to {d.target} {verdict} in {duration(d.duration)}" + kv_note(d.kv)
        case p.DecisionMade():
            x = d.decision
            body = f"{x.model}: {x.action} evict={_names(x.evict)} set={_opt(x.set)}"
            body += f" sleep={_names(x.sleep)}" if x.sleep else ""
            body += f" cost={_opt(x.cost)}" + (f" why={x.why}" if x.why else "")
        case p.RequestEvent():
            body = f"{d.model}: {d.phase}" + (f" {d.status}" if d.status is not None else "")
            body += f" in {duration(d.duration)}" if d.duration is not None else ""
            body += f" {d.detail}" if d.detail else ""
        case p.QueueChanged():
            body = "queue: " + (" ".join(d.order) if d.order else "empty")
        case p.LogLines():
            body = f"[{d.source}] {d.text.rstrip()}"
        case p.ConfigReloaded():
            body = f"config {d.path}: " + ("reloaded" if d.ok else f"{len(d.problems)} problem(s)")
            body += "".join(f"\n    {problem.format()}" for problem in d.problems)
        case p.OtherEvent():
            body = f"{d.name} {d.fields}"
    return f"{head} {body}\n"


# --- history: activity, history, stats, capture ---------------------------------


def stamp(unix: float) -> str:
    """Local date and time to the second: `2026-12-07 10:51:02`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _outcome(r: p.RequestRecord) -> str:
    return r.outcome if r.reason is None else f"{r.outcome}: {r.reason}"


def _served(r: p.RequestRecord) -> str:
    name = r.model or r.requested or "-"
    if r.peer:
        name = f"{r.peer}/{name}"
    if r.requested and r.requested not in (r.model, name):
        name += f" ({r.requested})"
    return name


ACTIVITY_HEADERS = (
    "TIME", "ID", "MODEL", "ROUTE", "STATUS", "QUEUE", "LOAD", "TTFB", "DURATION", "IN", "OUT",
    "TOK/S", "OUTCOME",
)  # fmt: skip


def activity(records: Sequence[p.RequestRecord]) -> str:
    """Finished requests, in the order given (newest first from the daemon)."""
    if not records:
        return "no requests\n"
    return table(ACTIVITY_HEADERS, [activity_row(r) for r in records])


def activity_row(r: p.RequestRecord) -> list[str]:
    return [
        stamp(r.start),
        str(r.id),
        _served(r),
        r.route + (" (stream)" if r.stream else ""),
        _count(r.status),
        duration(r.queued_s),
        duration(r.load_wait_s),
        duration(r.ttfb_s),
        duration(r.duration_s),
        _count(r.prompt_tokens),
        _count(r.completion_tokens),
        _rate(r.tokens_per_s),
        _outcome(r),
    ]


def activity_line(r: p.RequestRecord) -> str:
    """One finished request on one line, for `swapctl activity -f`."""
    cells = activity_row(r)
    return "  ".join(cells) + "\n"


def history(records: Sequence[p.HistoryRecord]) -> str:
    """Swaps, exits and reloads, one line each, in the order given."""
    if not records:
        return "no swaps, exits or reloads\n"
    return table(["TIME", "KIND", "WHAT"], [history_row(r) for r in records])


def history_row(r: p.HistoryRecord) -> list[str]:
    match r:
        case p.SwapRecord():
            what = f"#{r.swap_id} {'woke' if r.wake else 'to'} {r.target}: {r.result}"
            what += f" in {duration(r.load_s)}" if r.load_s is not None else ""
            what += f", evicted {_names(r.evicted)}" if r.evicted else ""
            what += f", slept {_names(r.slept)}" if r.slept else ""
            what += f", set {r.set} cost {r.cost}" if r.set else ""
            what += f" ({r.error})" if r.error else ""
            what += f"; {r.why}" if r.why else ""
            kv = kv_summary(r.kv)
            what += f"; {kv}" if kv else ""
            return [stamp(r.start), "swap", what]
        case p.ExitRecord():
            how = f"code {r.exit_code}" if r.exit_code is not None else _opt(r.signal)
            what = f"{r.model} pid {r.pid} {how}, up {duration(r.uptime_s)}: {r.reason}"
            what += " (failed)" if r.failed else ""
            what += f"; {kv_summary([r.kv])}" if r.kv is not None else ""
            return [stamp(r.time), "exit", what]
        case p.ReloadRecord():
            if r.ok:
                parts = [
                    f"{label} {_names(names)}"
                    for label, names in (
                        ("added", r.added), ("removed", r.removed), ("changed", r.changed)
                    )
                    if names
                ]  # fmt: skip
                what = f"{r.path} ({r.source}): " + ("; ".join(parts) or "no model changed")
            else:
                what = f"{r.path} ({r.source}) refused: " + "; ".join(r.errors)
            return [stamp(r.time), "reload", what]


def stats(s: p.Stats) -> str:
    head = f"{stamp(s.since)} .. {stamp(s.until)}\n"
    if not s.models:
        return head + "no activity\n"
    # The sleep columns only when some model slept or woke in the window.
    sleeping = any(m.sleeps or m.wakes for m in s.models)
    return head + table(
        ["MODEL", "REQUESTS", "ERRORS", "TTFB P50", "TTFB P95", "DUR P50", "DUR P95",
         "TOK/S P50", "IN", "OUT", "LOADS", "LOAD P50", "LOAD FAIL", "CRASHES"]
        + (["SLEEPS", "WAKES", "WAKE P50", "WAKE FAIL"] if sleeping else []),
        [
            [
                m.model, str(m.requests), str(m.errors), duration(m.ttfb_p50_s),
                duration(m.ttfb_p95_s), duration(m.duration_p50_s), duration(m.duration_p95_s),
                _rate(m.tokens_per_s_p50), str(m.prompt_tokens), str(m.completion_tokens),
                str(m.loads), duration(m.load_p50_s), str(m.load_failures), str(m.crashes),
            ]
            + (
                [str(m.sleeps), str(m.wakes), duration(m.wake_p50_s), str(m.wake_failures)]
                if sleeping
                else []
            )
            for m in s.models
        ],
    )  # fmt: skip


def _body(body: bytes | None) -> str:
    if body is None:
        return "(not kept)\n"
    if not body:
        return "(empty)\n"
    text = body.decode("utf-8", errors="replace")
    return text if text.endswith("\n") else text + "\n"


def capture(c: p.Capture) -> str:
    lines = [f"request {c.id}: {c.req_path}" + (" (truncated)" if c.truncated else "")]
    lines.extend(f"> {k}: {v}" for k, v in (c.req_headers or {}).items())
    text = "\n".join(lines) + "\n\n" + _body(c.req_body) + "\n"
    text += "".join(f"< {k}: {v}\n" for k, v in (c.resp_headers or {}).items())
    return text + "\n" + _body(c.resp_body)


# --- simulate: the table `swapd simulate` prints --------------------------------

SIM_FIGURES: tuple[str, ...] = (
    "requests", "loads", "load_seconds", "wait_p50", "wait_p95", "wait_max",
    "over_max_wait", "failures", "peak_queue", "wakes",
)  # fmt: skip
SIM_HEAD: tuple[str, ...] = (
    "model", "requests", "loads", "load s", "p50 s", "p95 s", "max s", ">maxWait",
    "failed", "peak q", "wakes",
)  # fmt: skip
_SIM_SECONDS = frozenset({"load_seconds", "wait_p50", "wait_p95", "wait_max"})


def _sim_figures(s: p.SimSummary) -> dict[str, float]:
    return {
        "requests": s.requests, "loads": s.loads, "load_seconds": s.load_seconds,
        "wait_p50": s.wait_p50, "wait_p95": s.wait_p95, "wait_max": s.wait_max,
        "over_max_wait": s.over_max_wait, "failures": s.failures,
        "peak_queue": s.peak_queue, "wakes": s.wakes,
    }  # fmt: skip


def _sim_row(
    name: str, figures: Mapping[str, float], width: int, *, signed: bool = False
) -> tuple[str, ...]:
    def num(key: str) -> str:
        value = figures[key]
        if key in _SIM_SECONDS:
            return f"{value:+.2f}" if signed else f"{value:.2f}"
        return f"{int(value):+d}" if signed else str(int(value))

    return (name, *(num(k) for k in SIM_FIGURES[:width]))


def _sim_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """The first column left-aligned, numbers right-aligned, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]


def simulation(s: p.Simulation) -> str:
    """The table `swapd simulate` prints, and a note when the window was cut."""
    lines: list[str] = [f"{s.requests} requests replayed"]
    if s.truncated:
        lines[0] += " (the latest of the window: more is not replayed)"
    # The wakes column only when a model can sleep.
    width = len(SIM_FIGURES) - (0 if s.wake_times else 1)
    head = SIM_HEAD[: width + 1]
    for cfg in s.configs:
        bound = f"maxWait {cfg.max_wait:g}s" if cfg.max_wait > 0 else "no maxWait"
        lines += ["", f"{cfg.config} ({cfg.router} router, {bound})"]
        rows: list[tuple[str, ...]] = [head]
        rows += [_sim_row(m, _sim_figures(f), width) for m, f in cfg.models.items()]
        rows.append(_sim_row("total", _sim_figures(cfg.totals), width))
        lines += _sim_table(rows)
        failures = cfg.totals.failure_kinds
        if failures:
            lines.append("failed: " + ", ".join(f"{n} {kind}" for kind, n in failures.items()))
    if s.diff is not None and len(s.configs) > 1:
        new, old = s.configs[0].config, s.configs[1].config
        lines += ["", f"{new} minus {old}"]
        rows = [head, *(_sim_row(m, d, width, signed=True) for m, d in s.diff.items())]
        lines += _sim_table(rows)
    lines += ["", "load times:"]
    rows = [(m, f"{lt.seconds:g}s", lt.source) for m, lt in s.load_times.items()]
    lines += ["  " + line for line in _sim_table(rows)] if rows else ["  (no model)"]
    if s.wake_times:
        lines += ["", "wake times:"]
        rows = [(m, f"{lt.seconds:g}s", lt.source) for m, lt in s.wake_times.items()]
        lines += ["  " + line for line in _sim_table(rows)]
    return "\n".join(lines) + "\n"
