"""`swapd-llama-server` maps llama-server's flags onto llama.cpp's server parameters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from swapd_demo.llama_server import ServerParams, apply, parser


def fresh_params() -> ServerParams:
    """A stand-in with llama.cpp's defaults for what the launcher sets."""
    params = SimpleNamespace(
        model=SimpleNamespace(path=""),
        hostnames=["127.0.0.1"],
        port=0,
        n_ctx=0,
        n_parallel=1,
        n_batch=2048,
        n_ubatch=512,
        n_predict=-1,
        model_alias=set(),
        cpuparams=SimpleNamespace(n_threads=-1),
        cpuparams_batch=SimpleNamespace(n_threads=-1),
        sampling=SimpleNamespace(temp=0.8, seed=0xFFFFFFFF),
        embedding=False,
        slot_save_path="",
        endpoint_slots=True,
        endpoint_metrics=False,
        endpoint_props=False,
        verbosity=3,
    )
    return params  # type: ignore[return-value]


def parsed(*argv: str) -> ServerParams:
    params = fresh_params()
    apply(parser().parse_args(list(argv)), params)
    return params


def test_the_demo_flags() -> None:
    argv = "--host 127.0.0.1 --port 18100 --model /m.gguf --ctx-size 2048 --parallel 2"
    p = parsed(*argv.split(), "--threads", "1", "--alias", "chat", "--temp", "1.1")
    assert p.model.path == "/m.gguf"
    assert (p.hostnames, p.port, p.n_ctx, p.n_parallel) == (["127.0.0.1"], 18100, 2048, 2)
    assert (p.cpuparams.n_threads, p.cpuparams_batch.n_threads) == (1, 1)
    assert p.model_alias == {"chat"}
    assert p.sampling.temp == pytest.approx(1.1)
    assert (p.n_batch, p.n_predict, p.sampling.seed) == (2048, -1, 0xFFFFFFFF), "defaults kept"


def test_short_flags_and_the_rest() -> None:
    p = parsed(
        "-m", "/m.gguf", "-c", "512", "-np", "4", "-t", "2", "-tb", "3", "-b", "64",
        "-ub", "32", "-n", "16", "-a", "x,y", "-s", "7", "--embedding",
        "--slot-save-path", "/kv", "--metrics", "--props", "--no-slots", "-lv", "1",
    )  # fmt: skip
    assert (p.n_ctx, p.n_parallel, p.n_batch, p.n_ubatch, p.n_predict) == (512, 4, 64, 32, 16)
    assert (p.cpuparams.n_threads, p.cpuparams_batch.n_threads) == (2, 3)
    assert p.model_alias == {"x", "y"}
    assert p.sampling.seed == 7
    assert p.embedding and p.endpoint_metrics and p.endpoint_props and not p.endpoint_slots
    assert p.slot_save_path == "/kv/", "llama.cpp joins it to a file name as plain text"
    assert p.verbosity == 1


def test_an_unknown_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--model", "/m.gguf", "--flash-attn-typo"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --flash-attn-typo" in capsys.readouterr().err
