"""Checks across keys, and the build of the effective `Config`.

Every check appends to one list of issues instead of raising, so a file with
several problems reports them all. Improvements on llama-swap, on purpose
(docs/compat.md, Config keys and decoding):
- an alias equal to another model's ID is rejected (llama-swap accepts it,
  and the model ID always wins, so the alias never reaches its model);
- a `cmd`/`cmdStop` with an unterminated quote is rejected (llama-swap runs
  the quote to the end of the command, which is never what was meant);
- group members that are not model IDs are rejected at load (llama-swap only
  fails when it builds the router, and silently never matches alias members);
- `routing.scheduler.settings.fifo.priority` keys that are aliases are
  resolved to their model (llama-swap accepts them and ignores them);
- `upstream.ignorePaths` are Python regular expressions, not RE2;
- `store.path` is only checked for being non-blank (files are checked by the
  store when it opens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from swapd.config import cmdline, kv_cache, resources, sleep
from swapd.config.errors import Issue, Path
from swapd.config.goparse import parse_duration, url_problem
from swapd.config.macros import Expanded
from swapd.config.model import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GROUP,
    Config,
    ControlConfig,
    FifoConfig,
    GroupConfig,
    HistoryConfig,
    ModelConfig,
    PerformanceConfig,
    RouterUse,
    RoutingConfig,
)
from swapd.config.schema import Capabilities, Compat, ConfigDoc, GroupDoc, MatrixDoc, ModelDoc

MIN_HEALTH_CHECK_TIMEOUT = 15
DEFAULT_IGNORE_PATHS = [r".*\.(js|json|css|png|gif|jpg|jpeg|ico|txt)$"]
MIGRATE_MESSAGE = (
    "config uses both the legacy top-level 'matrix'/'groups' keys and the new "
    "'routing.router' block; please migrate the top-level keys into 'routing.router' "
    "and remove them"
)


@dataclass
class Routing:
    """Which router is in use and the block it reads (with its path, for errors)."""

    use: RouterUse
    groups: dict[str, GroupDoc]
    groups_path: Path
    matrix: MatrixDoc | None
    matrix_path: Path


@dataclass
class Built:
    config: Config | None
    aliases: dict[str, str] = field(default_factory=dict)
    routing: Routing | None = None
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


def build(doc: ConfigDoc, expanded: Expanded) -> Built:
    """Validate `doc` (already type-checked) and build the effective config."""
    out = Built(config=None)
    issues = out.issues
    tree = expanded.tree

    health = max(doc.health_check_timeout, MIN_HEALTH_CHECK_TIMEOUT)
    every = parse_duration(doc.performance.every)
    if every is None:
        issues.append(
            Issue(("performance", "every"), f'invalid duration "{doc.performance.every}"')
        )
        every = 5.0
    elif every == 0:
        every = 5.0
    elif every < 5:
        issues.append(
            Issue(
                ("performance", "every"), f"every must be at least 5s, got {doc.performance.every}"
            )
        )
    unload_timeout = doc.unload_timeout or 10

    for i, key in enumerate(doc.api_keys):
        if key == "":
            issues.append(Issue(("apiKeys", i), "empty api key found in apiKeys"))
        elif " " in key:
            issues.append(Issue(("apiKeys", i), "api key cannot contain spaces"))

    store_path: str | None = None
    if doc.store is not None:
        store_path = doc.store.path.strip()
        if not store_path:
            issues.append(Issue(("store",), "store.path must not be empty"))

    sessions: list[str] = []
    for header in doc.ui.activity.session_id:
        header = header.strip()
        if header and header.lower() not in {h.lower() for h in sessions}:
            sessions.append(header)

    ignore_paths = doc.upstream.ignore_paths or list(DEFAULT_IGNORE_PATHS)
    for i, pattern in enumerate(doc.upstream.ignore_paths):
        try:
            re.compile(pattern)
        except re.error as exc:
            issues.append(
                Issue(
                    ("upstream", "ignorePaths", i),
                    f'invalid regular expression "{pattern}": {exc}',
                )
            )

    # Aliases: explicit first (sorted models), then setParamsByID automatic ones.
    aliases: dict[str, str] = {}
    model_ids = sorted(doc.models)
    for model_id in model_ids:
        for i, alias in enumerate(doc.models[model_id].aliases):
            if alias in doc.models and alias != model_id:
                issues.append(
                    Issue(
                        ("models", model_id, "aliases", i),
                        f'alias "{alias}" of model {model_id} is the ID of model {alias} '
                        f"(a request for {alias} always reaches model {alias})",
                    )
                )
                continue
            if alias in aliases:
                other = aliases[alias]
                also = f" (already used by model {other})" if other != model_id else ""
                issues.append(
                    Issue(
                        ("models", model_id, "aliases", i),
                        f"duplicate alias {alias} found in model: {model_id}{also}",
                    )
                )
                continue
            aliases[alias] = model_id
    auto: dict[str, list[str]] = {m: [] for m in model_ids}
    for model_id in model_ids:
        by_id = doc.models[model_id].filters.set_params_by_id
        for key in by_id:
            where = ("models", model_id, "filters", "setParamsByID", key)
            if key == model_id:
                continue
            if key in doc.models:
                issues.append(Issue(where, f"key '{key}' conflicts with an existing model ID"))
            elif key in aliases and aliases[key] != model_id:
                issues.append(
                    Issue(where, f"duplicate alias '{key}', already used by model {aliases[key]}")
                )
            elif key not in aliases:
                aliases[key] = model_id
                auto[model_id].append(key)

    routing = _routing(doc, tree, issues)
    out.routing = routing
    groups = _groups(routing, model_ids, aliases, issues) if routing else {}

    fifo = doc.routing.scheduler.settings.fifo
    if doc.routing.scheduler.use not in ("", "fifo"):
        issues.append(
            Issue(
                ("routing", "scheduler", "use"),
                f'unknown scheduler "{doc.routing.scheduler.use}" (valid: fifo)',
            )
        )
    priority: dict[str, int] = {}
    for key, value in fifo.priority.items():
        target = key if key in doc.models else aliases.get(key)
        if target is None:
            issues.append(
                Issue(
                    ("routing", "scheduler", "settings", "fifo", "priority", key),
                    f'references unknown model "{key}"',
                )
            )
        else:
            priority[target] = value

    budgeted = resources.check(doc, aliases, routing.use if routing else None)
    issues.extend(budgeted.issues)
    out.warnings.extend(budgeted.warnings)

    models: dict[str, ModelConfig] = {}
    for model_id in model_ids:
        models[model_id] = _model(
            doc, model_id, doc.models[model_id], expanded, auto[model_id], health,
            unload_timeout, priority.get(model_id, 0), issues,
            budgeted.declared.get(model_id, {}), budgeted.asleep.get(model_id, {}),
        )  # fmt: skip
    kv = kv_cache.check(tree, {m: models[m].argv for m in model_ids})
    issues.extend(kv.issues)
    out.warnings.extend(kv.warnings)
    for model_id, kv_config in kv.by_model.items():
        models[model_id] = msgspec.structs.replace(models[model_id], kv_cache=kv_config)

    preload: list[str] = []
    for name in doc.hooks.on_startup.preload:
        name = name.strip()
        target = name if name in doc.models else aliases.get(name)
        if target is not None:
            preload.append(target)

    _peers(doc, aliases, issues)
    _profiles(doc, aliases, issues)
    _selectors(doc, aliases, groups, routing, issues, _present(tree, "selectors") or {})

    if doc.control.group is not None and not doc.control.group.strip():
        issues.append(Issue(("control", "group"), "must be a Unix group name"))

    out.aliases = aliases
    if issues or routing is None:
        return out
    out.config = Config(
        models={m: models[m] for m in doc.models},
        health_check_timeout=health,
        log_level=doc.log_level,
        log_time_format=doc.log_time_format,
        log_to_stdout=doc.log_to_stdout,
        metrics_max_in_memory=doc.metrics_max_in_memory,
        capture_buffer=doc.capture_buffer,
        performance=PerformanceConfig(disabled=doc.performance.disabled, every=every),
        global_ttl=doc.global_ttl,
        unload_timeout=unload_timeout,
        start_port=doc.start_port,
        send_loading_state=doc.send_loading_state,
        include_aliases_in_list=doc.include_aliases_in_list,
        api_keys=list(doc.api_keys),
        preload=preload,
        hooks=doc.hooks,
        peers=dict(doc.peers),
        routing=RoutingConfig(
            use=routing.use,
            groups=groups,
            matrix=routing.matrix if routing.use == "matrix" else None,
            scheduler="fifo",
            fifo=FifoConfig(
                priority=priority,
                max_wait=fifo.max_wait,
                keep_abandoned_loads=fifo.keep_abandoned_loads,
            ),
            budget=budgeted.budget,
        ),
        profiles=dict(doc.profiles),
        selectors=dict(doc.selectors),
        store_path=store_path,
        session_id_headers=sessions,
        upstream_ignore_paths=ignore_paths,
        control=ControlConfig(group=doc.control.group.strip() if doc.control.group else None),
        http=doc.http,
        log_ring_bytes=doc.log_ring_bytes,
        max_request_body_size=doc.max_request_body_size,
        macros=dict(doc.macros),
        history=HistoryConfig(
            enabled=doc.history.enabled,
            retention_days=float(doc.history.retention_days),
            max_requests=doc.history.max_requests,
        ),
        resources=budgeted.resources,
    )
    return out


def _model(
    doc: ConfigDoc,
    model_id: str,
    m: ModelDoc,
    expanded: Expanded,
    auto_aliases: list[str],
    health: int,
    unload_timeout: int,
    priority: int,
    issues: list[Issue],
    declared: dict[str, int],
    declared_asleep: dict[str, int],
) -> ModelConfig:
    base: Path = ("models", model_id)
    ttl = doc.global_ttl if m.ttl == -1 else m.ttl
    for key, command in (("cmd", m.cmd), ("cmdStop", m.cmd_stop)):
        quoting = cmdline.quote_problem(command)
        if quoting is not None:
            issues.append(Issue((*base, key), quoting))
    if m.proxy and "${" not in m.proxy:
        problem = url_problem(m.proxy)
        if problem:
            issues.append(Issue((*base, "proxy"), f"invalid proxy URL: {problem}"))
    env: dict[str, str] = {}
    for entry in m.env:
        name, _, value = entry.partition("=")
        env[name] = value
    concurrency = m.concurrency_limit if m.concurrency_limit > 0 else DEFAULT_CONCURRENCY
    compat = m.compat
    if model_id == "comfyui_auto":
        concurrency = max(concurrency, 50)
        compat = Compat(ignore_websockets=True)
    capabilities = m.capabilities if m.capabilities != Capabilities() else Capabilities()
    return ModelConfig(
        id=model_id,
        cmd=m.cmd,
        cmd_stop=m.cmd_stop,
        argv=cmdline.parse_command(m.cmd),
        stop_argv=cmdline.parse_command(m.cmd_stop) if m.cmd_stop.strip() else None,
        port=expanded.ports.get(model_id),
        proxy=m.proxy,
        check_endpoint=m.check_endpoint.strip()
        if m.check_endpoint.strip() == "none"
        else m.check_endpoint,
        health_check_timeout=health,
        ttl=ttl,
        unload_timeout=m.unload_timeout or unload_timeout,
        env=env,
        aliases=[*m.aliases, *auto_aliases],
        use_model_name=m.use_model_name,
        unlisted=m.unlisted,
        name=m.name.strip(),
        description=m.description.strip(),
        metadata=m.metadata,
        filters=m.filters,
        concurrency_limit=concurrency,
        send_loading_state=doc.send_loading_state
        if m.send_loading_state is None
        else m.send_loading_state,
        capabilities=capabilities,
        timeouts=m.timeouts,
        compat=compat,
        log_ring_bytes=m.log_ring_bytes if m.log_ring_bytes is not None else doc.log_ring_bytes,
        priority=priority,
        resources=declared,
        resources_asleep=declared_asleep,
        devices=list(m.devices),
        sleep=sleep.check(model_id, m, issues),
    )


def _present(tree: dict[str, Any], *keys: str) -> Any:
    node: Any = tree
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _routing(doc: ConfigDoc, tree: dict[str, Any], issues: list[Issue]) -> Routing | None:
    """Pick the layout (top-level `groups`/`matrix`, or `routing.router`); mixing is an error."""
    router = doc.routing.router
    legacy = doc.matrix is not None or bool(doc.groups)
    modern = bool(router.use) or router.settings.matrix is not None or bool(router.settings.groups)
    settings_path: Path = ("routing", "router", "settings")
    if legacy and modern:
        issues.append(Issue(("routing", "router"), MIGRATE_MESSAGE))
        return None
    if legacy:
        if doc.matrix is not None and doc.groups:
            issues.append(Issue(("matrix",), "config cannot use both 'groups' and 'matrix'"))
            return None
        if doc.matrix is not None:
            return Routing("matrix", {}, ("groups",), doc.matrix, ("matrix",))
        return Routing("group", doc.groups, ("groups",), None, ("matrix",))
    if router.use == "matrix":
        if router.settings.matrix is None:
            issues.append(
                Issue(
                    ("routing", "router", "use"),
                    "routing.router.use is 'matrix' but routing.router.settings.matrix is not set",
                )
            )
            return None
        return Routing(
            "matrix",
            {},
            (*settings_path, "groups"),
            router.settings.matrix,
            (*settings_path, "matrix"),
        )
    if router.use == "budget":
        return Routing("budget", {}, (*settings_path, "groups"), None, (*settings_path, "matrix"))
    if router.use not in ("", "group"):
        issues.append(
            Issue(
                ("routing", "router", "use"),
                f'unknown router "{router.use}" (valid: group, matrix, budget)',
            )
        )
        return None
    return Routing(
        "group",
        router.settings.groups,
        (*settings_path, "groups"),
        None,
        (*settings_path, "matrix"),
    )


def _groups(
    routing: Routing, model_ids: list[str], aliases: dict[str, str], issues: list[Issue]
) -> dict[str, GroupConfig]:
    """The effective groups: the user's, then `(default)` with every other model."""
    if routing.use != "group":
        return {}
    owner: dict[str, str] = {}
    out: dict[str, GroupConfig] = {}
    for name, group in routing.groups.items():
        if name == DEFAULT_GROUP:
            continue  # overwritten by the implicit default group, as in llama-swap
        seen: set[str] = set()
        for i, member in enumerate(group.members):
            where = (*routing.groups_path, name, "members", i)
            if member in seen:
                issues.append(
                    Issue(where, f"duplicate model member {member} found in group: {name}")
                )
                continue
            seen.add(member)
            if member in owner:
                issues.append(
                    Issue(
                        where,
                        f"model member {member} is used in multiple groups: "
                        f"{owner[member]} and {name}",
                    )
                )
                continue
            if member not in model_ids:
                hint = f" (it is an alias of {aliases[member]})" if member in aliases else ""
                issues.append(
                    Issue(where, f'unknown model "{member}"{hint}: members are model IDs')
                )
                continue
            owner[member] = name
        out[name] = GroupConfig(
            swap=group.swap,
            exclusive=group.exclusive,
            persistent=group.persistent,
            members=list(group.members),
        )
    out[DEFAULT_GROUP] = GroupConfig(members=[m for m in model_ids if m not in owner])
    return out


def _peers(doc: ConfigDoc, aliases: dict[str, str], issues: list[Issue]) -> None:
    fqns: dict[str, tuple[str, str]] = {}
    for peer_id in sorted(doc.peers):
        peer = doc.peers[peer_id]
        base: Path = ("peers", peer_id)
        if not peer.proxy:
            issues.append(Issue(base, "proxy is required"))
        else:
            problem = url_problem(peer.proxy)
            if problem:
                issues.append(
                    Issue((*base, "proxy"), f"invalid peer proxy URL ({peer.proxy}): {problem}")
                )
        if not peer.models:
            issues.append(Issue(base, "peer models can not be empty"))
        for i, model in enumerate(dict.fromkeys(peer.models)):
            fqn = f"{peer_id}/{model}"
            where = (*base, "models", i)
            if fqn in fqns and fqns[fqn][0] != peer_id:
                p1, m1 = fqns[fqn]
                issues.append(
                    Issue(
                        where,
                        f'peer model name "{fqn}" is ambiguous between peers.{p1} model "{m1}" '
                        f'and peers.{peer_id} model "{model}"',
                    )
                )
            fqns.setdefault(fqn, (peer_id, model))
            if fqn in doc.models:
                issues.append(
                    Issue(where, f'model ID "{fqn}" conflicts with fully qualified peer model name')
                )
            elif fqn in aliases:
                issues.append(
                    Issue(
                        where,
                        f'model {aliases[fqn]} alias "{fqn}" conflicts with '
                        "fully qualified peer model name",
                    )
                )
            elif fqn in doc.selectors:
                issues.append(
                    Issue(
                        where, f'selector ID "{fqn}" conflicts with fully qualified peer model name'
                    )
                )


def _peer_names(doc: ConfigDoc) -> tuple[set[str], dict[str, list[str]]]:
    fqns: set[str] = set()
    bare: dict[str, list[str]] = {}
    for peer_id, peer in doc.peers.items():
        for model in peer.models:
            fqns.add(f"{peer_id}/{model}")
            bare.setdefault(model, []).append(f"{peer_id}/{model}")
    return fqns, bare


def _resolve(doc: ConfigDoc, aliases: dict[str, str], name: str) -> tuple[str, bool] | None:
    """(resolved name, is local) for a model/alias/peer name, or None."""
    if name in doc.models:
        return name, True
    if name in aliases:
        return aliases[name], True
    fqns, bare = _peer_names(doc)
    if name in fqns:
        return name, False
    if len(set(bare.get(name, []))) == 1:
        return bare[name][0], False
    return None


def _profiles(doc: ConfigDoc, aliases: dict[str, str], issues: list[Issue]) -> None:
    for name, profile in doc.profiles.items():
        base: Path = ("profiles", name)
        if not name.strip():
            issues.append(Issue(base, "profile names cannot be empty"))
        if not profile.pins:
            issues.append(Issue(base, "pins must contain at least one entry"))
        for pin, target in profile.pins.items():
            if not pin.strip():
                issues.append(Issue((*base, "pins"), "pin names cannot be empty"))
            elif target and target not in doc.selectors and _resolve(doc, aliases, target) is None:
                issues.append(Issue((*base, "pins", pin), f'references unknown model "{target}"'))


def _selectors(
    doc: ConfigDoc,
    aliases: dict[str, str],
    groups: dict[str, GroupConfig],
    routing: Routing | None,
    issues: list[Issue],
    written: dict[str, Any],
) -> None:
    for sel_id in sorted(doc.selectors):
        sel = doc.selectors[sel_id]
        base: Path = ("selectors", sel_id)
        if not sel_id.strip():
            issues.append(Issue(base, "selector names cannot be empty"))
            continue
        if sel_id in doc.models:
            issues.append(Issue(base, f'name conflicts with model ID "{sel_id}"'))
        elif sel_id in aliases:
            issues.append(Issue(base, f'name conflicts with model alias "{sel_id}"'))
        if not sel.strategy and "strategy" not in (written.get(sel_id) or {}):
            issues.append(Issue(base, "strategy is required"))
        if not sel.targets:
            issues.append(Issue(base, "targets must contain at least one entry"))
        resolved: list[tuple[str, bool]] = []
        for i, target in enumerate(sel.targets):
            where = (*base, "targets", i)
            if target in doc.selectors:
                issues.append(
                    Issue(
                        where, f'references selector "{target}"; selector chaining is not supported'
                    )
                )
                continue
            r = _resolve(doc, aliases, target)
            if r is None:
                issues.append(Issue(where, f'references unknown model "{target}"'))
                continue
            if sel.strategy == "warm" and not r[1]:
                issues.append(Issue(where, 'must resolve to a local model for strategy "warm"'))
            resolved.append(r)
        if sel.strategy != "spillover":
            continue
        if sel.settings.spillover < 1:
            issues.append(Issue((*base, "settings", "spillover"), "must be >= 1"))
        names = [n for n, _ in resolved]
        for n in {n for n in names if names.count(n) > 1}:
            issues.append(Issue((*base, "targets"), f'contains duplicate resolved model "{n}"'))
        local = list(dict.fromkeys(n for n, is_local in resolved if is_local))
        if len(local) > 1 and routing is not None and routing.use == "group":
            owner = {m: g for g, cfg in groups.items() for m in cfg.members}
            first = owner.get(local[0])
            if first is None:
                issues.append(Issue(base, f'target "{local[0]}" is not in a routing group'))
            elif groups[first].swap:
                issues.append(Issue(base, "spillover targets must share a group with swap: false"))
            elif any(owner.get(m) != first for m in local):
                issues.append(Issue(base, "spillover targets must share one routing group"))
