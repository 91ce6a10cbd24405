"""`GET /v1/models` and `/models` (docs/compat.md, Model listing), from settings and states.

Pure: the handler passes the set of running models and the request time.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from swapd.http.settings import ApiSettings, Capabilities, ModelView

OWNED_BY = "swapd"
_BUILT_KEYS = ("architecture", "capabilities", "supported_parameters", "context_length")


def capability_fields(caps: Capabilities) -> dict[str, Any]:
    """architecture, capabilities, supported_parameters, context_length; empty when unset."""
    fields: dict[str, Any] = {}
    arch: dict[str, Any] = {}
    if caps.inputs:
        arch["input_modalities"] = list(caps.inputs)
    if caps.inputs and caps.outputs:
        arch["modality"] = "+".join(caps.inputs) + "->" + "+".join(caps.outputs)
    if caps.outputs:
        arch["output_modalities"] = list(caps.outputs)
    if arch:
        fields["architecture"] = arch
    if caps.inputs or caps.outputs or caps.tools or caps.reranker:
        ins, outs = set(caps.inputs), set(caps.outputs)
        flags = {
            "audio_speech": "text" in ins and "audio" in outs,
            "audio_transcriptions": "audio" in ins and "text" in outs,
            "function_calling": caps.tools,
            "image_generation": "text" in ins and "image" in outs,
            "image_to_image": "image" in ins and "image" in outs,
            "reranker": caps.reranker,
            "vision": "image" in ins,
        }
        fields["capabilities"] = {k: True for k, v in flags.items() if v}
    if caps.tools:
        fields["supported_parameters"] = ["tools", "tool_choice"]
    if caps.context > 0:
        fields["context_length"] = caps.context
    return fields


def _meta(model: ModelView, llamaswap: dict[str, Any]) -> dict[str, Any]:
    merged = dict(model.metadata)
    if model.capabilities.configured:
        for key in _BUILT_KEYS:
            merged.pop(key, None)
    merged.update(llamaswap)
    meta: dict[str, Any] = {}
    cleaned = {k: merged[k] for k in sorted(merged) if merged[k] not in (None, "", 0, [], {})}
    if cleaned:
        meta["llamaswap"] = cleaned
    if model.capabilities.context > 0:
        meta["n_ctx"] = model.capabilities.context
    return meta


def _record(
    record_id: str, model: ModelView, created: int, loaded: bool, llamaswap: dict[str, Any]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": record_id,
        "object": "model",
        "created": created,
        "owned_by": OWNED_BY,
    }
    if model.name.strip():
        record["name"] = model.name.strip()
    if model.description.strip():
        record["description"] = model.description.strip()
    record.update(capability_fields(model.capabilities))
    meta = _meta(model, llamaswap)
    if meta:
        record["meta"] = meta
    record["status"] = {"value": "loaded" if loaded else "unloaded"}
    return record


def list_models(settings: ApiSettings, running: Collection[str], created: int) -> dict[str, Any]:
    """The listing body: local models, aliases (if enabled), then peer models, sorted by id.

    `running` holds the IDs of models in any running state (starting, ready,
    stopping); they are reported as `loaded`.
    """
    records: list[dict[str, Any]] = []
    for model_id, model in settings.models.items():
        if model.unlisted:
            continue
        loaded = model_id in running
        extra: dict[str, Any] = {"type": "model"}
        if model.aliases:
            extra["aliases"] = list(model.aliases)
        records.append(_record(model_id, model, created, loaded, extra))
        if settings.include_aliases_in_list:
            for alias in model.aliases:
                if alias.strip():
                    alias_meta = {"type": "alias", "modelID": model_id}
                    records.append(_record(alias.strip(), model, created, loaded, alias_meta))
    for peer_id, peer in settings.peers.items():
        for name in dict.fromkeys(peer.models):
            record = {
                "id": f"{peer_id}/{name}",
                "object": "model",
                "created": created,
                "owned_by": OWNED_BY,
                "name": f"{peer_id}: {name}",
                "meta": {"llamaswap": {"peerID": peer_id, "type": "peer"}},
                "status": {"value": "unloaded"},
            }
            records.append(record)
    records.sort(key=lambda r: r["id"].encode())
    return {"data": records, "object": "list"}
