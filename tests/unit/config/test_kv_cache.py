"""`kvCache` (global default, per model key by key), its warning, and the `${KV_DIR}` macro."""

from __future__ import annotations

from pathlib import Path

from swapd.config.model import KvCacheConfig
from swapd.daemon import kv_save_seconds, process_specs
from swapd.process.kv_files import argv_key
from tests.unit.config.conftest import load, problems

FAKE = "python -m swapd.testing.fake_upstream --port ${PORT}"


def test_default_is_off() -> None:
    loaded = load(f"models:\n  a:\n    cmd: {FAKE}\n")
    assert loaded.models["a"].kv_cache == KvCacheConfig()
    assert not loaded.warnings
    assert process_specs(loaded, Path("/state"))[0].kv is None
    assert kv_save_seconds(loaded) == 0.0


def test_model_block_overrides_the_global_one_key_by_key() -> None:
    loaded = load(
        f"""
        kvCache: {{persist: true, maxBytes: 1GiB, timeout: 12, dir: /kv}}
        models:
          a:
            cmd: {FAKE} --slot-save-path ${{KV_DIR}}
            kvCache: {{timeout: 5}}
          b:
            cmd: {FAKE} --slot-save-path=${{KV_DIR}}
            kvCache: {{persist: false}}
        """
    )
    assert loaded.models["a"].kv_cache == KvCacheConfig(
        persist=True, dir="/kv", max_bytes=1 << 30, timeout=5.0
    )
    assert loaded.models["b"].kv_cache == KvCacheConfig(
        persist=False, dir="/kv", max_bytes=1 << 30, timeout=12.0
    )
    assert not loaded.warnings
    assert kv_save_seconds(loaded) == 5.0


def test_persist_without_slot_save_path_warns() -> None:
    loaded = load(
        f"""
        kvCache: {{persist: true}}
        models:
          a:
            cmd: {FAKE}
        """
    )
    assert [str(w) for w in loaded.warnings] == [
        "config.yaml:5:5: models.a.cmd: kvCache.persist is on but cmd does not pass "
        "--slot-save-path (add --slot-save-path ${KV_DIR}): its slots cannot be saved"
    ]


def test_kv_dir_is_filled_per_model_and_command_under_the_state_dir() -> None:
    text = f"""
        kvCache: {{persist: true}}
        models:
          "a/b":
            cmd: {FAKE} --slot-save-path ${{KV_DIR}} --tokens {{n}}
        """
    one = load(text.replace("{n}", "1"))
    two = load(text.replace("{n}", "2"))
    spec1 = process_specs(one, Path("/state"))[0]
    spec2 = process_specs(two, Path("/state"))[0]
    assert spec1.kv is not None and spec2.kv is not None
    assert spec1.kv.model_dir == spec2.kv.model_dir == Path("/state/kv/a%2Fb")
    assert spec1.kv.key == argv_key(one.models["a/b"].argv)
    assert spec1.kv.key != spec2.kv.key  # a changed command saves elsewhere
    assert spec1.argv[-4:-2] == ("--slot-save-path", str(spec1.kv.dir))
    assert spec1.kv.max_bytes == 20 << 30 and spec1.kv.timeout == 30.0


def test_kv_dir_is_only_a_cmd_macro() -> None:
    found = problems(
        f"""
        models:
          a:
            cmd: {FAKE}
            cmdStop: kill ${{KV_DIR}}
        """
    )
    assert found == [
        "config.yaml:5:5: models.a.cmdStop: macro '${KV_DIR}' is only available in cmd"
    ]


def test_bad_sizes_and_timeouts_are_errors() -> None:
    found = problems(
        f"""
        kvCache: {{maxBytes: 20GB}}
        models:
          a:
            cmd: {FAKE}
            kvCache: {{timeout: 0}}
        """
    )
    assert len(found) == 2, found
    assert any("maxBytes" in p and "write GiB" in p for p in found)
    assert any("timeout" in p for p in found)
