"""A client running as another uid is refused unless it is in the control group.

These run the client as `nobody`, which needs root; where the tests do not
run as root only the pure policy is tested
(tests/unit/control/test_peercred.py). The client is a forked child that drops to
uid nobody with os.setuid, so it needs nothing installed for that user.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import trio

from swapctl import protocol as p
from swapd.control import serve_control
from tests.integration.control.fake_backend import FakeBackend

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run a client as another uid"
)

NOBODY = 65534
CONTROL_GID = 45678


def _client(path: Path) -> str:
    """Connect, say hello, return the first line (or the connect errno)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as exc:
        return f"connect-error {exc.errno}"
    try:
        sock.sendall(b'{"type":"hello","client":"other"}\n')
    except BrokenPipeError:
        pass  # refused before we spoke: the refusal is still there to read
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


async def _as_nobody(path: Path, extra_groups: list[int]) -> str:
    """Run `_client` in a forked child that dropped to uid/gid nobody."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the test runner
        code = 1
        try:
            os.close(read_fd)
            os.setgroups(extra_groups)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_fd, _client(path).encode())
            code = 0
        except BaseException as exc:
            os.write(write_fd, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    async with trio.lowlevel.FdStream(read_fd) as stream:
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                chunks.append(chunk)
    _, status = await trio.to_thread.run_sync(os.waitpid, pid, 0)
    output = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, output
    return output


def _open_up(path: Path) -> None:
    os.chmod(path.parent, 0o755)  # let the other uid reach the socket at all


@pytest.mark.trio
async def test_other_uid_is_refused_by_peer_credentials(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sock_path, FakeBackend())
        _open_up(sock_path)
        # The 0600 mode alone keeps it out:
        assert await _as_nobody(sock_path, []) == "connect-error 13"
        # And with the mode opened up, SO_PEERCRED still does:
        os.chmod(sock_path, 0o666)
        reply = json.loads(await _as_nobody(sock_path, []))
        assert reply["type"] == "error" and reply["code"] == "permission_denied"
        assert f"uid {NOBODY}" in reply["message"]
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_control_group_member_is_let_in(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sock_path, FakeBackend(), CONTROL_GID)
        _open_up(sock_path)
        reply = json.loads(await _as_nobody(sock_path, [CONTROL_GID]))
        assert reply["type"] == "welcome" and reply["protocol"] == p.PROTOCOL_VERSION
        assert await _as_nobody(sock_path, []) == "connect-error 13"
        os.chmod(sock_path, 0o666)
        outsider = json.loads(await _as_nobody(sock_path, [NOBODY]))
        assert outsider["code"] == "permission_denied"
        nursery.cancel_scope.cancel()
