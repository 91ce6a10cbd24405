"""Building the HTTP layer's `ApiSettings` from a loaded config."""

from __future__ import annotations

import re

from swapd.config import LoadedConfig
from swapd.config.schema import Filters as ConfigFilters
from swapd.config.schema import PeerFilters
from swapd.http.settings import (
    DEFAULT_IGNORE_PATHS,
    ApiSettings,
    Capabilities,
    Filters,
    ModelView,
    PeerView,
)


def _filters(doc: ConfigFilters | PeerFilters) -> Filters:
    strip = doc.strip_params
    if isinstance(doc, ConfigFilters):
        strip = strip or doc.strip_params_legacy
    return Filters(
        strip_params=strip,
        set_params=dict(doc.set_params),
        set_params_by_id={k: dict(v) for k, v in doc.set_params_by_id.items()},
    )


def settings_from_config(loaded: LoadedConfig) -> ApiSettings:
    config = loaded.config
    models = {}
    for model_id, m in config.models.items():
        caps = m.capabilities
        models[model_id] = ModelView(
            id=model_id,
            proxy=m.proxy,
            cmd=m.cmd,
            ttl=m.ttl,
            name=m.name,
            description=m.description,
            unlisted=m.unlisted,
            aliases=tuple(m.aliases),
            use_model_name=m.use_model_name,
            filters=_filters(m.filters),
            send_loading_state=m.send_loading_state,
            metadata=dict(m.metadata),
            capabilities=Capabilities(
                inputs=tuple(caps.in_),
                outputs=tuple(caps.out),
                tools=caps.tools,
                reranker=caps.reranker,
                context=caps.context,
            ),
        )
    peers = {
        peer_id: PeerView(
            id=peer_id,
            proxy=peer.proxy,
            models=tuple(peer.models),
            api_key=peer.api_key,
            filters=_filters(peer.filters),
        )
        for peer_id, peer in config.peers.items()
    }
    return ApiSettings(
        models=models,
        aliases=dict(loaded.aliases),
        peers=peers,
        api_keys=tuple(config.api_keys),
        include_aliases_in_list=config.include_aliases_in_list,
        max_request_body_size=config.max_request_body_size,
        request_body_budget=config.http.request_body_budget,
        allowed_hosts=tuple(config.http.allowed_hosts),
        max_form_parts=config.http.max_form_parts,
        max_form_field_size=config.http.max_form_field_size,
        upstream_ignore_paths=tuple(re.compile(p) for p in config.upstream_ignore_paths)
        or DEFAULT_IGNORE_PATHS,
    )
