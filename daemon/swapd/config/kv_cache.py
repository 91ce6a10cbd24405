"""`kvCache`: each model's effective slot-persistence settings, and what to warn about.

A model's `kvCache` block overrides the global one key by key (a key the
model's block does not write is the global block's). `config check` warns
when slots are to be persisted but the command does not pass
`--slot-save-path` (llama-server then refuses every save).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from swapd.config.errors import Issue, Path
from swapd.config.model import KvCacheConfig
from swapd.config.schema import KvCacheDoc
from swapd.config.sizes import SizeError, parse_size

KV_DIR_MACRO = "${KV_DIR}"
SLOT_SAVE_FLAG = "--slot-save-path"


@dataclass
class KvChecked:
    by_model: dict[str, KvCacheConfig] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


def _written(node: Any) -> dict[str, Any]:
    return dict(node) if isinstance(node, dict) else {}


def check(tree: dict[str, Any], argvs: dict[str, list[str]]) -> KvChecked:
    """Merge the global and per-model `kvCache` blocks of the expanded `tree`.

    `argvs` is each model's parsed command; the blocks were type-checked already.
    """
    out = KvChecked()
    base = _written(tree.get("kvCache"))
    base_ok = _size_ok(base, ("kvCache",), out.issues)
    models = tree.get("models")
    for model_id, argv in argvs.items():
        raw = models.get(model_id) if isinstance(models, dict) else None
        own = _written(raw.get("kvCache")) if isinstance(raw, dict) else {}
        own_ok = _size_ok(own, ("models", model_id, "kvCache"), out.issues)
        try:
            doc = msgspec.convert({**base, **own}, KvCacheDoc)
        except msgspec.ValidationError:
            continue  # the schema check has reported it, where it was written
        if not own_ok or (not base_ok and "maxBytes" not in own):
            continue
        max_bytes = parse_size(doc.max_bytes)
        config = KvCacheConfig(
            persist=doc.persist,
            dir=doc.dir.strip() or None,
            max_bytes=max_bytes,
            timeout=float(doc.timeout),
        )
        out.by_model[model_id] = config
        if config.persist and not has_slot_save_path(argv):
            out.warnings.append(
                Issue(
                    ("models", model_id, "cmd"),
                    f"kvCache.persist is on but cmd does not pass {SLOT_SAVE_FLAG} "
                    f"(add {SLOT_SAVE_FLAG} {KV_DIR_MACRO}): its slots cannot be saved",
                )
            )
    return out


def _size_ok(block: dict[str, Any], where: Path, issues: list[Issue]) -> bool:
    """Whether the block's `maxBytes` (if written) is a size; reports it when not."""
    if "maxBytes" not in block:
        return True
    try:
        parse_size(block["maxBytes"])
    except (SizeError, TypeError) as exc:
        issues.append(Issue((*where, "maxBytes"), str(exc)))
        return False
    return True


def has_slot_save_path(argv: list[str]) -> bool:
    """Whether the command passes `--slot-save-path DIR` or `--slot-save-path=DIR`."""
    return any(arg == SLOT_SAVE_FLAG or arg.startswith(SLOT_SAVE_FLAG + "=") for arg in argv)
