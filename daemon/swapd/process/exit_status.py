"""How a child ended, in words: the exit code, or the signal that killed it and what it means.

`subprocess` reports a death by signal as a negative return code (-4 for
SIGILL); an operator reading "code -4" has to know that convention and the
signal table. Every place that reports an exit (the log, a 500 body, the
control socket) says it with `describe_exit` instead.
"""

from __future__ import annotations

import signal

#: The usual cause of a death by these signals, for someone who did not send them.
SIGNAL_MEANINGS: dict[int, str] = {
    signal.SIGILL: "illegal instruction: the binary needs CPU features this machine lacks",
    signal.SIGSEGV: "segmentation fault: the program touched memory it does not own",
    signal.SIGBUS: "bus error: a bad memory access, often a truncated or changed mapped file",
    signal.SIGFPE: "arithmetic error, such as an integer division by zero",
    signal.SIGABRT: "aborted by the program itself, usually a failed assertion",
}


def signal_name(signum: int) -> str:
    """`4` -> `"SIGILL"`; a number with no name -> `"signal 77"`."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(returncode: int | None) -> str:
    """`0` -> "exited with code 0"; `-4` -> "killed by SIGILL (illegal instruction: ...)"."""
    if returncode is None:
        return "still running"
    if returncode >= 0:
        return f"exited with code {returncode}"
    signum = -returncode
    meaning = SIGNAL_MEANINGS.get(signum)
    text = f"killed by {signal_name(signum)}"
    return f"{text} ({meaning})" if meaning else text
