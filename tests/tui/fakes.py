"""An in-memory daemon for the TUI tests: fixed clock, fixed data, recorded actions.

`FakeSource` feeds the dashboard the same protocol messages a daemon would
(welcome, status, models, matrix, decisions, log backlog), then relays
whatever a test `emit()`s. Actions are recorded and answered with scripted
verdicts, so Pilot tests check that a key press reaches the "daemon".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from textual.app import App
from textual.pilot import Pilot

from swapctl import protocol as p
from swaptui.app import SwapTUI
from swaptui.state import DashboardState, Verdict

T0 = 1_700_000_000.0
"""The fixed 'now' of every snapshot (2023-11-14 22:13:20 UTC)."""


class FixedClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


LEGEND = [
    p.StateLegend(name="stopped", description="no process", next=["starting", "shutdown"]),
    p.StateLegend(
        name="starting", description="spawned, probing health", next=["ready", "stopped"]
    ),
    p.StateLegend(name="ready", description="serving requests", next=["stopping", "stopped"]),
    p.StateLegend(name="stopping", description="terminating the process group", next=["stopped"]),
    p.StateLegend(
        name="failed", description="ended on its own (failed start, crash)", next=["starting"]
    ),
    p.StateLegend(name="shutdown", description="the supervisor has exited", next=[]),
]

DAEMON = p.DaemonInfo(
    version="0.1.0",
    pid=4242,
    started=T0 - 3 * 3600 - 125,
    config_path="/etc/swapd/config.yaml",
    router="matrix",
    listen=["127.0.0.1:8080"],
)


FAILURE = "killed by SIGSEGV (segmentation fault: ...) while serving"


def sample_models() -> list[p.ModelInfo]:
    return [
        p.ModelInfo(
            id="llama-8b",
            state="ready",
            pid=41234,
            port=5801,
            in_flight=2,
            queued=0,
            ttl=300,
            ttl_left=245,
            last_load_seconds=3.4,
            sets=["chat"],
            argv=["llama-server", "--port", "5801", "-m", "llama-8b.gguf"],
            env={"CUDA_VISIBLE_DEVICES": "0"},
            proxy="http://127.0.0.1:5801",
            aliases=["gpt-4o-mini"],
        ),
        p.ModelInfo(
            id="embed",
            state="ready",
            pid=41240,
            port=5802,
            ttl=0,
            last_load_seconds=0.42,
            sets=["chat", "code"],
        ),
        p.ModelInfo(id="qwen-coder", state="stopped", port=5803, queued=3, ttl=600, sets=["code"]),
        # Its swap started (maxWait) and waits for llama-8b's requests before evicting it.
        p.ModelInfo(
            id="whisper",
            state="stopped",
            port=5804,
            waiting=1,
            last_load_seconds=12.5,
            sets=["audio"],
            starts=1,
        ),
        p.ModelInfo(
            id="qwen-72b",
            state="failed",
            port=5805,
            ttl=900,
            sets=["big"],
            last_exit_code=-11,
            starts=5,
            failures=2,
            last_failure=FAILURE,
            last_failure_at=T0 - 125,
        ),
    ]


def sample_matrix() -> p.MatrixView:
    many = [[f"tiny-{i:02d}", "embed"] for i in range(30)]
    return p.MatrixView(
        router="matrix",
        sets=[
            p.MatrixSet(name="chat", dsl="llama-8b & embed", combinations=[["llama-8b", "embed"]]),
            p.MatrixSet(
                name="code",
                dsl="qwen-coder & (embed | whisper)",
                combinations=[["qwen-coder", "embed"], ["qwen-coder", "whisper"]],
            ),
            p.MatrixSet(name="audio", dsl="whisper", combinations=[["whisper"]]),
            p.MatrixSet(name="big", dsl="qwen-72b", combinations=[["qwen-72b"]]),
            p.MatrixSet(name="tiny", dsl="(tiny-00 | ... | tiny-29) & embed", combinations=many),
        ],
        running=["embed", "llama-8b"],
        running_set="chat",
        evict_costs={"llama-8b": 2, "embed": 1},
    )


def sample_groups() -> p.MatrixView:
    return p.MatrixView(
        router="group",
        groups=[
            p.GroupInfo(name="chat", members=["llama-8b", "qwen-coder", "qwen-72b"]),
            p.GroupInfo(
                name="always", members=["embed"], swap=False, exclusive=False, persistent=True
            ),
            p.GroupInfo(name="(default)", members=["whisper"], swap=True, exclusive=True),
        ],
        running=["embed", "llama-8b"],
    )


def sample_explanation(model: str) -> p.Explanation:
    if model == "qwen-coder":
        return p.Explanation(
            model=model,
            action="swap",
            why="not running; set code is the cheapest containing it",
            state="stopped",
            evict=["llama-8b"],
            set="code",
            cost=2,
            running=["embed", "llama-8b"],
        )
    return p.Explanation(
        model=model,
        action="serve",
        why="ready: served at once",
        state="ready",
        running=["embed", "llama-8b"],
    )


def sample_decisions() -> list[p.Decision]:
    return [
        p.Decision(
            time=T0 - 600,
            model="llama-8b",
            action="swap",
            why="not running",
            evict=["qwen-coder"],
            set="chat",
            cost=3,
            duration=3.4,
        ),
        p.Decision(time=T0 - 300, model="llama-8b", action="serve", why="ready"),
        p.Decision(
            time=T0 - 120,
            model="qwen-coder",
            action="queue",
            why="collision: llama-8b busy (2 in flight)",
        ),
        p.Decision(
            time=T0 - 60,
            model="whisper",
            action="swap",
            why="maxWait reached (30s)",
            evict=[],
            set="audio",
            cost=0,
        ),
    ]


def sample_log_events() -> list[p.LogLines]:
    return [
        p.LogLines(time=T0 - 600, source="proxy", text="swapd 0.1.0 listening on 127.0.0.1:8080\n"),
        p.LogLines(time=T0 - 597, source="proxy", text="[llama-8b] health check passed in 3.4s\n"),
        p.LogLines(
            time=T0 - 596,
            source="llama-8b",
            text="main: server is listening on http://127.0.0.1:5801\n"
            "srv  update_slots: all slots are idle\n",
        ),
        p.LogLines(time=T0 - 300, source="llama-8b", text="slot launch_slot_: id  0 | task 12\n"),
        p.LogLines(
            time=T0 - 299, source="llama-8b", text="slot release: id  0 | task 12 | error: none\n"
        ),
        p.LogLines(time=T0 - 120, source="proxy", text="request qwen-coder queued (position 1)\n"),
        p.LogLines(time=T0 - 60, source="whisper", text="loading model weights...\n"),
    ]


def sample_records() -> list[p.RequestRecord]:
    """Finished requests, oldest first: a stream, a swap's wait, a failure, a client gone."""
    return [
        p.RequestRecord(
            id=101,
            start=T0 - 240,
            client="127.0.0.1:50412",
            requested="gpt-4o-mini",
            model="llama-8b",
            route="/v1/chat/completions",
            stream=True,
            outcome="done",
            status=200,
            queued_s=0.0,
            load_wait_s=3.4,
            ttfb_s=3.61,
            duration_s=5.2,
            prompt_tokens=24,
            completion_tokens=180,
            tokens_per_s=113.2,
            swap_id=3,
        ),
        p.RequestRecord(
            id=102,
            start=T0 - 200,
            client="127.0.0.1:50420",
            requested="embed",
            model="embed",
            route="/v1/embeddings",
            outcome="done",
            status=200,
            queued_s=0.0,
            ttfb_s=0.012,
            duration_s=0.015,
            prompt_tokens=9,
        ),
        p.RequestRecord(
            id=103,
            start=T0 - 130,
            client="10.0.0.7:41000",
            requested="qwen-72b",
            model="qwen-72b",
            route="/v1/chat/completions",
            outcome="failed",
            status=502,
            queued_s=0.2,
            load_wait_s=12.0,
            duration_s=12.3,
            reason="qwen-72b exited with code -11 while starting",
        ),
        p.RequestRecord(
            id=104,
            start=T0 - 30,
            client="127.0.0.1:50500",
            requested="llama-8b",
            model="llama-8b",
            route="/v1/chat/completions",
            stream=True,
            outcome="client_gone",
            status=200,
            queued_s=0.0,
            ttfb_s=0.09,
            duration_s=1.4,
            prompt_tokens=31,
            completion_tokens=12,
        ),
    ]


SAMPLE_CAPTURE = p.Capture(
    id=101,
    req_path="/v1/chat/completions",
    req_headers={"content-type": "application/json", "authorization": "[REDACTED]"},
    req_body=b'{"model":"gpt-4o-mini","stream":true}',
    resp_headers={"content-type": "text/event-stream"},
    resp_body=b"data: [DONE]\n\n",
)


class FakeSource:
    """A scripted daemon. `verdicts` maps an action to the Verdict it answers."""

    def __init__(
        self,
        *,
        with_data: bool = True,
        router: str = "matrix",
        verdicts: dict[str, Verdict] | None = None,
    ) -> None:
        self.with_data = with_data
        self.router = router
        self.verdicts = verdicts or {}
        self.actions: list[tuple[str, object]] = []
        self.state: DashboardState | None = None
        self._changed: Callable[[], None] = lambda: None
        self.ready = asyncio.Event()
        self.acted = asyncio.Event()

    def describe(self) -> str:
        return "fake"

    async def run(self, state: DashboardState, changed: Callable[[], None]) -> None:
        self.state, self._changed = state, changed
        if self.with_data:
            state.set_connection("connected")
            state.apply_welcome(p.Welcome(protocol=p.PROTOCOL_VERSION, daemon=DAEMON))
            state.apply_status(
                p.Status(
                    daemon=DAEMON,
                    uptime=3 * 3600 + 125,
                    models=5,
                    states={"ready": 2, "stopped": 2, "failed": 1},
                    running=["embed", "llama-8b"],
                    legend=LEGEND,
                )
            )
            state.apply_models(sample_models())
            state.apply_matrix(sample_matrix() if self.router == "matrix" else sample_groups())
            state.apply_decisions(sample_decisions())
            state.apply_activity(reversed(sample_records()))
            for event in sample_log_events():
                state.apply_event(event)
        changed()
        self.ready.set()
        await asyncio.Event().wait()

    def emit(self, *events: p.EventPayload) -> None:
        assert self.state is not None
        for event in events:
            self.state.apply_event(event)
        self._changed()

    def reply_models(self, models: list[p.ModelInfo]) -> None:
        """A `models` reply, as the real source asks for one after a state change."""
        assert self.state is not None
        self.state.apply_models(models)
        self._changed()

    def _answer(self, action: str, arg: object) -> Verdict:
        self.actions.append((action, arg))
        self.acted.set()
        return self.verdicts.get(action, Verdict(action=action, ok=True, message=f"{action} ok"))

    async def load(self, model: str) -> Verdict:
        return self._answer("load", model)

    async def unload(self, models: Sequence[str] | None, *, now: bool = False) -> Verdict:
        """Recorded as "unload", or "unload --now" when it cuts the requests in flight."""
        return self._answer(
            "unload --now" if now else "unload", None if models is None else list(models)
        )

    async def reload(self) -> Verdict:
        return self._answer("reload", None)

    async def capture(self, request_id: int) -> None:
        """Request 101 has a capture; the others have none."""
        self.actions.append(("capture", request_id))
        assert self.state is not None
        found = SAMPLE_CAPTURE if request_id == SAMPLE_CAPTURE.id else "none kept"
        self.state.apply_capture(request_id, found)
        self._changed()

    async def explain(self, model: str) -> None:
        self.actions.append(("explain", model))
        assert self.state is not None
        self.state.apply_explanation(sample_explanation(model))
        self._changed()


def make_app(source: FakeSource | None = None, **kwargs: object) -> SwapTUI:
    """The dashboard on a fake daemon: fixed clock, no countdown ticks, no animations."""
    app = SwapTUI(
        source or FakeSource(),
        DashboardState(clock=FixedClock()),
        refresh_interval=0.01,
        tick_interval=3600,
        **kwargs,  # type: ignore[arg-type]
    )
    app.animation_level = "none"
    return app


def screen_text(app: App[object]) -> str:
    """What the terminal shows, as plain text, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def rows_of(text: str) -> list[str]:
    """Each screen line with its runs of spaces collapsed: a table row as one string."""
    return [" ".join(line.split()) for line in text.splitlines()]


async def settle(pilot: Pilot[object]) -> None:
    """Apply pending state changes to the widgets and let Textual process the messages."""
    app = pilot.app
    assert isinstance(app, SwapTUI)
    app.flush()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def until(
    pilot: Pilot[object], condition: Callable[[], bool], what: str, within: float = 10.0
) -> None:
    """Wait until `condition()` holds (checked as the app processes messages), or fail."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {within}s waiting for {what}\n{screen_text(pilot.app)}"
            )
        await pilot.pause(0.02)
    app = pilot.app
    assert isinstance(app, SwapTUI)
    app.flush()
    await pilot.pause()
