"""Where the state directory is: --state-dir, systemd, XDG, then the home directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapd.history.paths import database_path, resolve_state_dir

HOME = Path("/home/op")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(HOME))
    return monkeypatch


def test_home_when_nothing_is_set(clean_env: pytest.MonkeyPatch) -> None:
    assert resolve_state_dir() == HOME / ".local/state/swapd"


def test_xdg_state_home(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("XDG_STATE_HOME", "/var/xdg")
    assert resolve_state_dir() == Path("/var/xdg/swapd")


@pytest.mark.parametrize("value", ["", "relative/state"])
def test_an_empty_or_relative_xdg_state_home_is_ignored(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("XDG_STATE_HOME", value)
    assert resolve_state_dir() == HOME / ".local/state/swapd"


def test_systemd_state_directory_wins_over_xdg(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("XDG_STATE_HOME", "/var/xdg")
    clean_env.setenv("STATE_DIRECTORY", "/var/lib/swapd")
    assert resolve_state_dir() == Path("/var/lib/swapd")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/var/lib/swapd:/var/lib/other", "/var/lib/swapd"),
        (":/var/lib/swapd", "/var/lib/swapd"),  # empty entries are skipped
        ("/var/lib/swapd:", "/var/lib/swapd"),
    ],
)
def test_several_systemd_state_directories_take_the_first(
    clean_env: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    clean_env.setenv("STATE_DIRECTORY", value)
    assert resolve_state_dir() == Path(expected)


def test_an_empty_systemd_value_falls_through(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("STATE_DIRECTORY", ":")
    clean_env.setenv("XDG_STATE_HOME", "/var/xdg")
    assert resolve_state_dir() == Path("/var/xdg/swapd")


def test_the_option_overrides_everything(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("STATE_DIRECTORY", "/var/lib/swapd")
    clean_env.setenv("XDG_STATE_HOME", "/var/xdg")
    assert resolve_state_dir("/srv/state") == Path("/srv/state")
    assert resolve_state_dir("~/st") == HOME / "st"
    assert resolve_state_dir("") == Path("/var/lib/swapd")  # an empty option is no option


def test_explicit_env_and_home_need_no_process_environment() -> None:
    env = {"XDG_STATE_HOME": "/x"}
    assert resolve_state_dir(None, env, home=HOME) == Path("/x/swapd")
    assert resolve_state_dir(None, {}, home=HOME) == HOME / ".local/state/swapd"


def test_database_file_name() -> None:
    assert database_path(Path("/var/lib/swapd")) == Path("/var/lib/swapd/history.sqlite3")
