"""The health-probe schedule and status parsing, on a mock clock with a scripted probe.

`autojump_clock` is pytest-trio's fixture: time jumps whenever every task waits.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from swapd.process.readiness import (
    FAST_PHASE,
    FIRST_INTERVAL,
    MAX_INTERVAL,
    HealthTarget,
    HealthTimeout,
    parse_status,
    probe_interval,
    wait_healthy,
)


def test_interval_is_fast_first_then_backs_off_to_the_cap() -> None:
    assert probe_interval(0.0) == FIRST_INTERVAL
    assert probe_interval(FAST_PHASE) == FIRST_INTERVAL
    assert FIRST_INTERVAL < probe_interval(FAST_PHASE + 0.5) < MAX_INTERVAL
    assert probe_interval(60.0) == MAX_INTERVAL
    assert probe_interval(1e9) == MAX_INTERVAL


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_interval_never_shrinks_and_stays_in_bounds(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert FIRST_INTERVAL <= probe_interval(lo) <= probe_interval(hi) <= MAX_INTERVAL


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n", 503),
        (b"HTTP/1.1 200\r\n", 200),
        (b"SSH-2.0-OpenSSH\r\n", None),
        (b"", None),
        (b"HTTP/1.1 abc\r\n", None),
    ],
)
def test_parse_status(head: bytes, status: int | None) -> None:
    assert parse_status(head) == status


def test_target_request_goes_to_the_check_endpoint() -> None:
    target = HealthTarget("http://localhost:5800/health?x=1")
    assert (target.host, target.port, target.tls) == ("localhost", 5800, False)
    assert target.request.startswith(b"GET /health?x=1 HTTP/1.1\r\nHost: localhost:5800\r\n")
    assert HealthTarget("https://example.test/h").port == 443


class ScriptedProbe:
    """Answers 503 until `healthy_at` (mock time), then 200; records when it was asked."""

    def __init__(self, healthy_at: float) -> None:
        self.healthy_at = healthy_at
        self.times: list[float] = []

    async def __call__(self, target: HealthTarget) -> int | None:
        self.times.append(trio.current_time())
        return 200 if trio.current_time() >= self.healthy_at else 503


@pytest.mark.trio
@pytest.mark.parametrize("load", [0.0, 0.3, 1.7, 5.0])
async def test_ready_soon_after_the_server_is(load: float, autojump_clock: object) -> None:
    probe = ScriptedProbe(trio.current_time() + load)
    start = trio.current_time()
    await wait_healthy(HealthTarget("http://h:1/health"), start + 100, probe)
    late = trio.current_time() - (start + load)
    assert 0 <= late <= probe_interval(load) + 1e-9
    gaps = [b - a for a, b in zip(probe.times, probe.times[1:], strict=False)]
    assert all(FIRST_INTERVAL - 1e-9 <= gap <= MAX_INTERVAL + 1e-9 for gap in gaps)


@pytest.mark.trio
async def test_times_out_at_the_deadline(autojump_clock: object) -> None:
    probe = ScriptedProbe(float("inf"))
    start = trio.current_time()
    with pytest.raises(HealthTimeout):
        await wait_healthy(HealthTarget("http://h:1/health"), start + 3.0, probe)
    assert trio.current_time() == pytest.approx(start + 3.0)
    # fast at first, then slower: about 200 probes in the first second, far fewer later
    first_second = sum(1 for t in probe.times if t - start < 1.0)
    assert 150 <= first_second <= 201
    assert len(probe.times) - first_second < first_second


@pytest.mark.trio
async def test_a_hanging_probe_is_cut_at_the_deadline(autojump_clock: object) -> None:
    async def hang(target: HealthTarget) -> int | None:
        await trio.sleep_forever()
        raise AssertionError

    start = trio.current_time()
    with pytest.raises(HealthTimeout):
        await wait_healthy(HealthTarget("http://h:1/health"), start + 2.0, hang)
    assert trio.current_time() == pytest.approx(start + 2.0)
