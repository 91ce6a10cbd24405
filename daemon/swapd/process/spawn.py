"""Starting a child: no shell, a new session, pipes into the log, death with its parent.

PR_SET_PDEATHSIG belongs to the *thread* that forked, not the process: trio's
`open_process` forks from a worker thread that retires when idle, and the
child would then be killed while swapd lives on. So `spawn` calls
`subprocess.Popen` directly, from the trio thread, and the child asks the
kernel for SIGKILL when that thread (the whole daemon, in practice) dies. Its
exit is awaited through a pidfd, so no thread is ever involved.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

import trio

from swapd.process.logs import LogRing, drain

PR_SET_PDEATHSIG = 1
# How often to look for an exit where pidfds are unavailable (old kernels).
EXIT_POLL_INTERVAL = 0.01


class SpawnError(OSError):
    """The command could not be executed at all (missing binary, no permission...)."""


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """The preexec function: ask for SIGKILL when the forking thread dies.

    If the parent already died between fork and prctl, the signal would never
    come, so the child kills itself instead.
    """

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class Child:
    """One running child: its pid (also its process group), its pipes and its exit.

    `start_tasks` must run in a nursery that outlives the child: it watches for
    the exit and drains both pipes into the log ring.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], stdout_fd: int, stderr_fd: int, argv: Sequence[str]
    ) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.argv = list(argv)
        self.spawned_at = trio.current_time()
        self.returncode: int | None = None
        self.exited = trio.Event()
        self.drained = trio.Event()
        self._streams = (trio.lowlevel.FdStream(stdout_fd), trio.lowlevel.FdStream(stderr_fd))
        self._open_drains = 2

    def start_tasks(
        self,
        nursery: trio.Nursery,
        ring: LogRing,
        names: tuple[str, str] = ("stdout", "stderr"),
        on_exit: Callable[[Child], None] | None = None,
    ) -> None:
        nursery.start_soon(self._watch_exit, on_exit)
        for stream, name in zip(self._streams, names, strict=True):
            nursery.start_soon(self._drain, stream, ring, name)

    async def _drain(self, stream: trio.lowlevel.FdStream, ring: LogRing, name: str) -> None:
        try:
            # Shielded: the output is read to its end even while the supervisor shuts
            # down, so the child never writes into a closed pipe. Whoever stops the
            # child closes the pipes by force if they stay open (stop.py).
            with trio.CancelScope(shield=True):
                await drain(stream, ring, name)
        finally:
            self._open_drains -= 1
            if self._open_drains == 0:
                self.drained.set()
            with contextlib.suppress(OSError), trio.CancelScope(shield=True):
                await stream.aclose()

    async def _watch_exit(self, on_exit: Callable[[Child], None] | None) -> None:
        await self.wait()
        if on_exit is not None:
            on_exit(self)

    async def wait(self) -> int:
        """Wait for the exit, reap, and return the exit status (negative: killed by a signal).

        Each caller watches the pid itself, so this works even when the
        watcher task of `start_tasks` has been cancelled (the shutdown path).
        """
        if not self.exited.is_set():
            await wait_for_exit(self.pid, self.popen)
            self.returncode = self.popen.wait()
            self.exited.set()
        assert self.returncode is not None
        return self.returncode

    @property
    def running(self) -> bool:
        return not self.exited.is_set()

    def signal_group(self, sig: int) -> bool:
        """Send `sig` to the child's process group (or the child alone if that fails)."""
        try:
            os.killpg(self.pid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
                return True
        return False

    async def close_pipes(self) -> None:
        """Force the drains to end (a grandchild that escaped the group may hold the pipes)."""
        for stream in self._streams:
            with contextlib.suppress(OSError):
                await stream.aclose()


async def wait_for_exit(pid: int, popen: subprocess.Popen[bytes]) -> None:
    """Return once `pid` has exited (it is not reaped here)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while popen.poll() is None:  # noqa: ASYNC110 (no pidfd: nothing to wait on but time)
            await trio.sleep(EXIT_POLL_INTERVAL)
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        trio.lowlevel.notify_closing(fd)
        os.close(fd)


def spawn(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
    """Start `argv` (no shell) in a new session with swapd's environment plus `env`.

    Must be called from the trio thread (see the module docstring); it blocks
    that thread for the few milliseconds fork and exec take.
    """
    trio.lowlevel.current_task()  # raises RuntimeError outside the trio thread
    if not argv:
        raise SpawnError("empty command")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            close_fds=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except (OSError, subprocess.SubprocessError) as err:
        for fd in (out_r, err_r):
            os.close(fd)
        raise SpawnError(f"failed to start command '{' '.join(argv)}': {err}") from err
    finally:
        os.close(out_w)
        os.close(err_w)
    return Child(popen, out_r, err_r, argv)
