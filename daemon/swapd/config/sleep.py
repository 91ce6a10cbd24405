"""`sleep`/`wake` or `cmdSleep`/`cmdWake`, and `sleepAfter`: a model's way to sleep.

A model that can sleep is put to sleep instead of being kept at full size
when idle for `sleepAfter`; its process lives on and the next request wakes
it. Sleep and wake come in pairs (an HTTP call each, or a command each); a
model has either the calls or the commands, not both.
"""

from __future__ import annotations

from swapd.config import cmdline
from swapd.config.errors import Issue, Path
from swapd.config.model import SleepCall, SleepConfig
from swapd.config.schema import ModelDoc, SleepCallDoc


def check(model_id: str, m: ModelDoc, issues: list[Issue]) -> SleepConfig | None:
    """The model's effective sleep settings; None when it cannot sleep."""
    base: Path = ("models", model_id)
    http = m.sleep is not None or m.wake is not None
    commands = bool(m.cmd_sleep.strip() or m.cmd_wake.strip())
    for key, command in (("cmdSleep", m.cmd_sleep), ("cmdWake", m.cmd_wake)):
        problem = cmdline.quote_problem(command)
        if problem is not None:
            issues.append(Issue((*base, key), problem))
    if http and commands:
        issues.append(Issue(base, "use either sleep/wake or cmdSleep/cmdWake, not both"))
        return None
    if http:
        if m.sleep is None or m.wake is None:
            missing = "wake" if m.wake is None else "sleep"
            issues.append(Issue(base, f"sleep and wake go together: {missing} is missing"))
            return None
        return SleepConfig(sleep=_call(m.sleep), wake=_call(m.wake), after=m.sleep_after)
    if commands:
        if not (m.cmd_sleep.strip() and m.cmd_wake.strip()):
            missing = "cmdWake" if not m.cmd_wake.strip() else "cmdSleep"
            issues.append(Issue(base, f"cmdSleep and cmdWake go together: {missing} is missing"))
            return None
        return SleepConfig(
            sleep=SleepCall(argv=cmdline.parse_command(m.cmd_sleep)),
            wake=SleepCall(argv=cmdline.parse_command(m.cmd_wake)),
            after=m.sleep_after,
        )
    if m.sleep_after:
        issues.append(
            Issue((*base, "sleepAfter"), "sleepAfter needs sleep/wake or cmdSleep/cmdWake")
        )
    return None


def _call(doc: SleepCallDoc) -> SleepCall:
    endpoint = doc.endpoint.strip()
    return SleepCall(
        method=doc.method, endpoint=endpoint if endpoint.startswith("/") else "/" + endpoint
    )
