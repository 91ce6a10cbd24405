"""End to end with the real llama-server and SmolLM2: swaps, collation, load, no orphans.

Each test starts its own `swapd serve` subprocess (see `conftest.py`) on
three model IDs A, B, C, which are the same GGUF served by three
llama-server processes. Loads are counted from swapd's own `/api/events`
stream. Answers are a few tokens long to keep the file within a few minutes
on two cores.
"""

from __future__ import annotations

import concurrent.futures
import queue
import random
import signal
import threading
import time
from collections import Counter

import openai
import psutil
import pytest

from tests.e2e.conftest import MODELS, RunningSwapd, processes_with_ports

pytestmark = pytest.mark.e2e

PROMPT = [{"role": "user", "content": "Say hello."}]


def ask(client: openai.OpenAI, model: str, max_tokens: int = 8) -> str:
    """One non-streaming chat completion; the answer's text (asserted non-empty)."""
    response = client.chat.completions.create(
        model=model, messages=PROMPT, max_tokens=max_tokens, temperature=0
    )
    assert response.model == model
    text = response.choices[0].message.content or ""
    assert text.strip(), f"empty answer from {model}: {response}"
    return text


def ask_streaming(client: openai.OpenAI, model: str, max_tokens: int = 8) -> str:
    parts = []
    stream = client.chat.completions.create(
        model=model, messages=PROMPT, max_tokens=max_tokens, temperature=0, stream=True
    )
    for chunk in stream:
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
    text = "".join(parts)
    assert text.strip(), f"empty streamed answer from {model}"
    return text


def load_all_three(swapd: RunningSwapd) -> list[psutil.Process]:
    """Ask A, B and C at once (they may run together), wait for swapd to settle; the children."""
    client = swapd.openai()
    with concurrent.futures.ThreadPoolExecutor(len(MODELS)) as pool:
        answers = list(pool.map(lambda m: ask(client, m, 2), MODELS))
    assert len(answers) == len(MODELS)
    assert swapd.settle() == set(MODELS)
    return swapd.llama_children()


def assert_children_accounted(swapd: RunningSwapd, children: list[psutil.Process]) -> None:
    """The children found three ways agree: by parent, by port in the command line, by swapd."""
    by_parent = {p.pid for p in children}
    by_port = {p.pid for p in processes_with_ports(swapd.model_ports)}
    reported = swapd.reported_pids()
    assert len(by_parent) == len(MODELS)
    assert by_port == by_parent
    assert set(reported) == set(MODELS)
    assert set(reported.values()) == by_parent


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def test_swap_a_b_a_with_the_openai_sdk(start_swapd) -> None:
    swapd = start_swapd(swap=True)
    client = swapd.openai()

    ask(client, "A")
    ask(client, "B")
    ask_streaming(client, "A")

    assert swapd.settle() == {"A"}
    assert swapd.events.loads() == Counter({"A": 2, "B": 1})
    assert swapd.events.swaps() == Counter({"A": 2, "B": 1})
    assert len(swapd.llama_children()) == 1


def test_a_b_c_a_b_c_sent_concurrently_loads_each_model_once(start_swapd) -> None:
    swapd = start_swapd(swap=True)
    client = swapd.openai()
    order = [*MODELS, *MODELS]
    answers: list[str | None] = [None] * len(order)
    errors: list[BaseException] = []

    def one(index: int, model: str) -> None:
        try:
            answers[index] = ask(client, model)
        except BaseException as exc:
            errors.append(exc)

    # started in the order A B C A B C; each blocks on its answer, so all six are
    # in swapd while the first load is under way
    threads = [threading.Thread(target=one, args=(i, m)) for i, m in enumerate(order)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)

    assert not errors, errors
    assert all(answers), answers
    swapd.settle()
    assert swapd.events.loads() == Counter({"A": 1, "B": 1, "C": 1})
    assert swapd.events.swaps() == Counter({"A": 1, "B": 1, "C": 1})
    assert len(swapd.llama_children()) == 1


def test_swapping_back_after_concurrent_requests_answers_at_once(start_swapd) -> None:
    """Connections pooled to a model's old process must not fail its next life's first request.

    Four concurrent requests leave four pooled connections to A; swapping to
    B stops that process, so all four are dead. After the swap back, the
    first request for A must be answered (one dead connection may be tried,
    but the retry has to be on a fresh one).
    """
    swapd = start_swapd(swap=True)
    client = swapd.openai()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: ask(client, "A", 2), range(4)))
    ask(client, "B", 2)

    ask(client, "A", 2)
    assert swapd.settle() == {"A"}
    assert swapd.events.loads() == Counter({"A": 2, "B": 1})


def upstream_sockets(swapd: RunningSwapd, model: str) -> Counter[str]:
    """TCP states of swapd's own connections to `model`'s llama-server port."""
    port = swapd.model_ports[model]
    conns = psutil.Process(swapd.pid).net_connections(kind="tcp")
    return Counter(c.status for c in conns if c.raddr and c.raddr.port == port)


def test_a_model_idle_past_llama_servers_keep_alive_still_answers(start_swapd) -> None:
    """llama-server closes a kept-alive connection after ~5 s idle, without telling anyone.

    Four concurrent requests leave four pooled connections in swapd; once the
    server has closed them all (swapd's side sits in CLOSE_WAIT), the next
    request must still be answered, not fail with 502 on a dead connection.
    """
    swapd = start_swapd(swap=True)
    client = swapd.openai()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: ask(client, "A", 2), range(4)))

    deadline = time.monotonic() + 30
    while True:  # the event is the server's own idle timer: watch the sockets for it
        states = upstream_sockets(swapd, "A")
        if states[psutil.CONN_CLOSE_WAIT] >= 2 and not states[psutil.CONN_ESTABLISHED]:
            break
        assert time.monotonic() < deadline, (
            f"llama-server never closed its idle connections: {states}"
        )
        time.sleep(0.1)

    ask(client, "A", 2)


REQUESTS = 300
CLIENTS = 8
REQUEST_TIMEOUT = 60.0


def test_300_requests_from_8_clients_finish_without_errors(start_swapd) -> None:
    """A may run beside B or C, never B beside C: the B/C requests keep swapping.

    Every request has a client timeout; one that hits it is counted as hung.
    The model of each request is drawn from a seeded generator, weighted
    towards A so the run stays short while B and C still swap many times.
    """
    swapd = start_swapd(matrix_sets={"ab": "A & B", "ac": "A & C"})
    rng = random.Random(8)
    jobs: queue.SimpleQueue[str] = queue.SimpleQueue()
    for _ in range(REQUESTS):
        jobs.put(rng.choices(MODELS, weights=(4, 1, 1))[0])
    answered: Counter[str] = Counter()
    errors: list[str] = []
    hung: list[str] = []
    lock = threading.Lock()
    began = time.monotonic()

    def client_loop() -> None:
        client = swapd.openai(timeout=REQUEST_TIMEOUT)
        while True:
            try:
                model = jobs.get_nowait()
            except queue.Empty:
                return
            started = time.monotonic()
            try:
                ask(client, model, max_tokens=2)
            except openai.APITimeoutError:
                with lock:
                    hung.append(f"{model} at +{started - began:.1f}s")
            except Exception as exc:
                with lock:
                    errors.append(f"{model}: {type(exc).__name__}: {exc}")
            else:
                with lock:
                    answered[model] += 1

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client_loop) for _ in range(CLIENTS)]
        done, not_done = concurrent.futures.wait(futures, timeout=240)
    assert not not_done, "client threads still waiting after 240 s"
    for future in done:
        future.result()

    tail = "\n".join(swapd.daemon.log.read_text(errors="replace").splitlines()[-60:])
    assert errors == [], f"{len(errors)} errors, the first: {errors[:3]}\nswapd's log:\n{tail}"
    assert hung == [], f"{len(hung)} requests hung: {hung[:8]}\nswapd's log:\n{tail}"
    assert sum(answered.values()) == REQUESTS
    swapd.settle()
    loads = swapd.events.loads()
    assert loads["B"] + loads["C"] > 2, f"B and C never swapped: {loads}"
    assert swapd.running() & {"B", "C"} != {"B", "C"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_swapd_with_running_models_leaves_no_llama_server(start_swapd, signum) -> None:
    swapd = start_swapd(swap=False)
    children = load_all_three(swapd)
    assert_children_accounted(swapd, children)

    swapd.daemon.proc.send_signal(signum)
    code = swapd.daemon.proc.wait(timeout=60)
    if signum == signal.SIGTERM:
        assert code == 0, swapd.daemon.log_text()[-2000:]
        assert alive(children) == []  # stopped before swapd exited
    else:
        assert code == -signal.SIGKILL
        # killed by the kernel as their parent died (PR_SET_PDEATHSIG), a moment later
        _gone, still = psutil.wait_procs(children, timeout=15)
        assert alive(still) == []
    assert processes_with_ports(swapd.model_ports) == []
