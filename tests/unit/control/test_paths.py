"""The socket path rules, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapctl.paths import default_socket_path, resolve_socket_path


@pytest.mark.parametrize(
    ("env", "uid", "expected"),
    [
        ({"SWAPD_SOCKET": "/x/s.sock", "RUNTIME_DIRECTORY": "/run/swapd"}, 1000, "/x/s.sock"),
        (
            {"RUNTIME_DIRECTORY": "/run/swapd", "XDG_RUNTIME_DIR": "/run/user/1"},
            1000,
            "/run/swapd/control.sock",
        ),
        ({"RUNTIME_DIRECTORY": "/run/swapd:/run/other"}, 0, "/run/swapd/control.sock"),
        ({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, "/run/user/1000/swapd/control.sock"),
        ({}, 0, "/run/swapd/control.sock"),
        ({}, 1000, "/tmp/swapd-1000/control.sock"),
        ({"SWAPD_SOCKET": "", "XDG_RUNTIME_DIR": ""}, 7, "/tmp/swapd-7/control.sock"),
    ],
)
def test_default_socket_path(env: dict[str, str], uid: int, expected: str) -> None:
    assert default_socket_path(env, uid) == Path(expected)


def test_explicit_path_wins() -> None:
    assert resolve_socket_path("/a/b.sock", {"SWAPD_SOCKET": "/c"}, 0) == Path("/a/b.sock")
    assert resolve_socket_path(None, {"SWAPD_SOCKET": "/c"}, 0) == Path("/c")
