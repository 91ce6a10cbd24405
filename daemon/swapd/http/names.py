"""Resolving a requested model name to a local model or a peer.

Order: local model ID, then alias (explicit and setParamsByID automatic
aliases share one table), then a peer's fully qualified name `<peer>/<model>`,
then a bare peer model name listed by exactly one peer and not itself an FQN.
A local model always wins over a peer with the same name (docs/compat.md,
Model name resolution).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from swapd.http.settings import ApiSettings, PeerView


@dataclass(frozen=True)
class Target:
    """Where a request goes.

    `requested` is the name the client sent (filters are keyed on it);
    `model` is the local model ID, or the peer's own bare model name.
    """

    kind: Literal["local", "peer"]
    requested: str
    model: str
    peer: str | None = None

    @property
    def display(self) -> str:
        """The name used for metrics and logs: local ID or the peer FQN."""
        return self.model if self.peer is None else f"{self.peer}/{self.model}"


@dataclass(frozen=True)
class PeerNames:
    """The peer name map: FQNs always, bare names only when unambiguous."""

    fqn: Mapping[str, tuple[str, str]]
    bare: Mapping[str, tuple[str, str]]

    @classmethod
    def build(cls, peers: Mapping[str, PeerView]) -> PeerNames:
        fqn: dict[str, tuple[str, str]] = {}
        owners: dict[str, set[str]] = {}
        for peer_id in sorted(peers):
            for model in dict.fromkeys(peers[peer_id].models):
                fqn[f"{peer_id}/{model}"] = (peer_id, model)
                owners.setdefault(model, set()).add(peer_id)
        bare = {
            model: (next(iter(ids)), model)
            for model, ids in owners.items()
            if len(ids) == 1 and model not in fqn
        }
        return cls(fqn=fqn, bare=bare)

    def lookup(self, name: str) -> tuple[str, str] | None:
        return self.fqn.get(name) or self.bare.get(name)


class Resolver:
    """Name resolution over one `ApiSettings`; build a new one on reload."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.peer_names = PeerNames.build(settings.peers)

    def local_id(self, name: str) -> str | None:
        """The real model ID for a model ID or alias, or None."""
        if name in self.settings.models:
            return name
        real = self.settings.aliases.get(name)
        return real if real in self.settings.models else None

    def resolve(self, name: str) -> Target | None:
        local = self.local_id(name)
        if local is not None:
            return Target("local", name, local)
        peer = self.peer_names.lookup(name)
        if peer is not None:
            return Target("peer", name, peer[1], peer[0])
        return None

    def match_path(self, segments: list[str]) -> tuple[Target, int] | None:
        """The longest run of leading path segments naming a model.

        Returns the target and how many segments it used.
        """
        best: tuple[Target, int] | None = None
        for count in range(1, len(segments) + 1):
            target = self.resolve("/".join(segments[:count]))
            if target is not None:
                best = (target, count)
        return best
