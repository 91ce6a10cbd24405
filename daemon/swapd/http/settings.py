"""What the HTTP layer needs to know of the configuration, as plain frozen data.

The app never reads the config tree directly: `swapd.daemon` builds an
`ApiSettings` from the loaded config. This keeps the HTTP code and its tests
independent of the config schema's shape, and makes a reload a swap of one
immutable object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_BODY_BUDGET = 256 * 1024 * 1024
DEFAULT_MAX_FORM_PARTS = 1000
DEFAULT_MAX_FORM_FIELD = 1024 * 1024
DEFAULT_IGNORE_PATHS = (re.compile(r".*\.(js|json|css|png|gif|jpg|jpeg|ico|txt)$"),)


@dataclass(frozen=True)
class Filters:
    """Body rewrites of a model or a peer (docs/compat.md, Filters)."""

    strip_params: str = ""
    set_params: Mapping[str, Any] = field(default_factory=dict)
    set_params_by_id: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """`capabilities` of a model; all-zero means not configured."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    tools: bool = False
    reranker: bool = False
    context: int = 0

    @property
    def configured(self) -> bool:
        return bool(self.inputs or self.outputs or self.tools or self.reranker or self.context)


@dataclass(frozen=True)
class ModelView:
    """One local model as the API sees it."""

    id: str
    proxy: str = ""
    cmd: str = ""
    ttl: int = 0
    name: str = ""
    description: str = ""
    unlisted: bool = False
    aliases: tuple[str, ...] = ()
    use_model_name: str = ""
    filters: Filters = field(default_factory=Filters)
    send_loading_state: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)


@dataclass(frozen=True)
class PeerView:
    """Another llama-swap/swapd (or any OpenAI server) that serves `models`."""

    id: str
    proxy: str
    models: tuple[str, ...]
    api_key: str = ""
    filters: Filters = field(default_factory=Filters)


@dataclass(frozen=True)
class ApiSettings:
    """Everything the HTTP layer reads from the config."""

    models: Mapping[str, ModelView] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    peers: Mapping[str, PeerView] = field(default_factory=dict)
    api_keys: tuple[str, ...] = ()
    include_aliases_in_list: bool = False
    max_request_body_size: int = DEFAULT_MAX_BODY
    # bytes of request bodies held at once, every request together
    request_body_budget: int = DEFAULT_BODY_BUDGET
    # Host (or Origin) names accepted besides loopback ones (see `swapd.http.origin`)
    allowed_hosts: tuple[str, ...] = ()
    max_form_parts: int = DEFAULT_MAX_FORM_PARTS
    max_form_field_size: int = DEFAULT_MAX_FORM_FIELD
    # /upstream/<model>/<path> paths that never start a model (docs/compat.md, Upstream passthrough)
    upstream_ignore_paths: tuple[re.Pattern[str], ...] = DEFAULT_IGNORE_PATHS
