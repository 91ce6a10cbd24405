"""The group swap planner: `swap`, `exclusive`, `persistent` (docs/compat.md, Groups).

Rule, for target T in group G and each running model m (in running order,
skipping T): same group and G.swap -> evict; other group, G.exclusive and
m's group not persistent -> evict; otherwise keep.

Only the target's `exclusive` flag matters. Loading a member of a
non-exclusive group leaves members of exclusive groups running, but the next
load from the exclusive group evicts them ("one-way" rule, kept from
llama-swap for compatibility). A model in no group is treated as the only
member of an exclusive swapping group, like the implicit `(default)` group.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from swapd.router.swapper import NO_USAGE, Eviction, Usage

log = logging.getLogger(__name__)

DEFAULT_GROUP = "(default)"


class GroupLike(Protocol):
    @property
    def swap(self) -> bool: ...
    @property
    def exclusive(self) -> bool: ...
    @property
    def persistent(self) -> bool: ...
    @property
    def members(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Group:
    """One group's flags. Defaults are the YAML defaults (swap, exclusive, not persistent)."""

    members: tuple[str, ...]
    swap: bool = True
    exclusive: bool = True
    persistent: bool = False


_LONE = Group(members=(), swap=True, exclusive=True, persistent=False)


class GroupSwapper:
    """Eviction by group membership; `on_swap_start` only logs at debug level."""

    def __init__(self, groups: Mapping[str, GroupLike]) -> None:
        self._groups: dict[str, Group] = {}
        self._group_of: dict[str, str] = {}
        for name, g in groups.items():
            members = tuple(g.members)
            self._groups[name] = Group(
                members=members,
                swap=bool(g.swap),
                exclusive=bool(g.exclusive),
                persistent=bool(g.persistent),
            )
            for m in members:
                if m in self._group_of:
                    raise ValueError(f"model {m!r} is in groups {self._group_of[m]!r} and {name!r}")
                self._group_of[m] = name

    @classmethod
    def with_default(cls, groups: Mapping[str, GroupLike], models: Iterable[str]) -> GroupSwapper:
        """Add the implicit `(default)` group holding every model not in a group."""
        grouped = {m for g in groups.values() for m in g.members}
        rest = tuple(sorted(m for m in models if m not in grouped))
        merged: dict[str, GroupLike] = dict(groups)
        if DEFAULT_GROUP not in merged:
            merged[DEFAULT_GROUP] = Group(members=rest)
        return cls(merged)

    def _flags(self, model: str) -> tuple[str, Group]:
        name = self._group_of.get(model)
        if name is None:
            return f"({model})", _LONE
        return name, self._groups[name]

    def eviction_for(
        self, target: str, running: Sequence[str], usage: Usage = NO_USAGE
    ) -> Eviction:
        gname, group = self._flags(target)
        evict: list[str] = []
        seen: set[str] = set()
        for m in running:
            if m == target or m in seen:
                continue
            seen.add(m)
            mname, mgroup = self._flags(m)
            if mname == gname:
                if group.swap:
                    evict.append(m)
            elif group.exclusive and not mgroup.persistent:
                evict.append(m)
        return Eviction(evict=tuple(evict), set=self._group_of.get(target), cost=len(evict))

    def on_swap_start(self, target: str, running: Sequence[str], usage: Usage = NO_USAGE) -> None:
        decision = self.eviction_for(target, running)
        log.debug(
            "group: model=%s group=%s evict=%s running=%s",
            target,
            decision.set,
            list(decision.evict),
            list(running),
        )
