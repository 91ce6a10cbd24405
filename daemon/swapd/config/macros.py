"""Macro expansion over the plain tree, with llama-swap's rules (docs/compat.md, Macros and ports).

- Global `macros` apply to every top-level value except `models`; each model
  gets `[MODEL_ID] + globals + its own macros` (a model macro replaces a global
  of the same name in place). Entries apply from last to first, one pass each,
  so a macro may use macros declared before it, and `${MODEL_ID}` works in any
  macro; a forward reference is left over and reported as unknown.
- A string that is exactly `${NAME}` takes the macro's typed value; elsewhere
  the value is rendered like Go's `%v` (`go_format`).
- `${PORT}` is allocated (`swapd.config.ports`) to every model whose expanded
  `cmd` uses it, in sorted model-ID order, and substituted across that model.
- A model without a command (no `cmd`, or one with only comment lines) is
  reported as such, not as a proxy that uses `${PORT}` when cmd does not.
- `${PID}` is left in `cmdStop` (and `cmdSleep`, `cmdWake`) for the supervisor, and `${DEVICE}` and
  `${DEVICE_INDEX}` in `cmd`, `cmdStop` and `env` of a model with `devices`
  for the start that chooses its device; anywhere else, and any other
  leftover `${...}`, is an error. Keys are never expanded except those of
  `filters.setParamsByID`.
- `${KV_DIR}` is left in `cmd` for the daemon, which knows the state
  directory (the model's directory of saved slots, `kvCache`).
- `cmd`/`cmdStop` comment lines are dropped before expansion.

Deviation: a null model entry (`models: {m1: ~}`) is treated as an empty
mapping, so it gets the documented defaults; yaml.v3 gives it a zero record
(empty proxy, ttl 0) that only fails when started.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from swapd.config.cmdline import parse_command, strip_comment_lines
from swapd.config.errors import Issue, Path
from swapd.config.loader import ENV_RE, Document
from swapd.config.ports import PortAllocator, PortsInUse

MACRO_RE = re.compile(r"\$\{([a-zA-Z0-9_-]+)\}")
NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")
DEVICE_MACROS = frozenset({"DEVICE", "DEVICE_INDEX"})
KV_DIR = "KV_DIR"
PID_COMMANDS = ("cmdSleep", "cmdWake")  # like cmdStop, they may name the process
RESERVED = frozenset({"PID", "PORT", "MODEL_ID", KV_DIR, *DEVICE_MACROS})
DEFAULT_PROXY = "http://localhost:${PORT}"
DEFAULT_START_PORT = 5800

Macro = tuple[str, str | int | float | bool]


def go_format(value: Any) -> str:
    """Render a scalar like Go's `%v`: `true`, `1e+06`, `16384`, `0.7`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits_t, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    dp = len(digits_t) + exponent  # position of the decimal point
    exp = dp - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{prefix}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return prefix + digits + "0" * (dp - len(digits))
    return f"{prefix}{digits[:dp]}.{digits[dp:]}"


def substitute(value: Any, name: str, replacement: Any) -> Any:
    """`value` with `${name}` replaced; never mutates (YAML aliases stay independent)."""
    token = "${" + name + "}"
    if isinstance(value, str):
        if value == token:
            return replacement
        return value.replace(token, go_format(replacement)) if token in value else value
    if isinstance(value, dict):
        return {k: substitute(v, name, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, name, replacement) for v in value]
    return value


def declarations(raw: Any, path: Path) -> tuple[list[Macro], list[Issue]]:
    """Validate a `macros` mapping and return its entries in order."""
    if raw is None:
        return [], []
    if not isinstance(raw, dict):
        return [], [Issue(path, "macros must be a mapping")]
    out: list[Macro] = []
    issues: list[Issue] = []
    for name, value in raw.items():
        where = (*path, name)
        if len(name) >= 64:
            issues.append(
                Issue(where, f"macro name '{name}' exceeds maximum length of 63 characters")
            )
        elif not NAME_RE.fullmatch(name):
            issues.append(
                Issue(
                    where,
                    f"macro name '{name}' contains invalid characters, "
                    "must match pattern ^[a-zA-Z0-9_-]+$",
                )
            )
        elif value is None or isinstance(value, (list, dict)):
            kind = {type(None): "null", list: "list", dict: "map"}[type(value)]
            issues.append(
                Issue(
                    where,
                    f"macro '{name}' has invalid type {kind}, "
                    "must be a scalar type (string, int, float, or bool)",
                )
            )
        elif isinstance(value, str) and "${" + name + "}" in value:
            issues.append(Issue(where, f"macro '{name}' contains self-reference"))
        elif name in RESERVED:
            issues.append(Issue(where, f"macro name '{name}' is reserved"))
        else:
            out.append((name, value))
    return out, issues


def merge_macros(model_id: str, globals_: list[Macro], own: list[Macro]) -> list[Macro]:
    """`[MODEL_ID] + globals + own`, an own macro replacing a global in place."""
    merged: list[Macro] = [("MODEL_ID", model_id), *globals_]
    index = {name: i for i, (name, _) in enumerate(merged)}
    for name, value in own:
        if name in index:
            merged[index[name]] = (name, value)
        else:
            index[name] = len(merged)
            merged.append((name, value))
    return merged


@dataclass
class Expanded:
    """The expanded tree, each model's port, and models that got the default proxy."""

    tree: dict[str, Any]
    ports: dict[str, int] = field(default_factory=dict)
    default_proxy: set[str] = field(default_factory=set)
    issues: list[Issue] = field(default_factory=list)


def _start_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return DEFAULT_START_PORT  # the schema check reports it
    if isinstance(value, float) and not math.isfinite(value):
        return DEFAULT_START_PORT
    return int(value)


def expand(
    doc: Document, top_level_keys: frozenset[str], ports: PortsInUse | None = None
) -> Expanded:
    """Expand every macro of `doc.tree`; `top_level_keys` are checked for leftovers.

    `ports`: on a reload, the ports in use, which models keep (see `swapd.config.ports`).
    """
    tree = doc.tree
    globals_, issues = declarations(tree.get("macros"), ("macros",))
    result = Expanded(tree={}, issues=issues)
    for key, value in tree.items():
        if key in ("macros", "models"):
            continue
        for name, macro in reversed(globals_):
            value = substitute(value, name, macro)
        result.tree[key] = value
        if key in top_level_keys:
            _leftovers(value, (key,), result.issues, allow_pid=False)
    models = tree.get("models")
    if isinstance(models, dict):
        start_port = _start_port(result.tree.get("startPort", DEFAULT_START_PORT))
        allocator = PortAllocator(start_port, models, ports)
        out: dict[str, Any] = {}
        for model_id in sorted(models):
            raw = models[model_id]
            if raw is None:
                raw = {}
            if not isinstance(raw, dict):
                out[model_id] = raw  # the schema check reports the type
                continue
            out[model_id] = _expand_model(doc, model_id, raw, globals_, allocator, result)
        result.tree["models"] = {k: out[k] for k in models}  # file order
    elif "models" in tree:
        result.tree["models"] = models
    return result


def _expand_model(
    doc: Document,
    model_id: str,
    raw: dict[str, Any],
    globals_: list[Macro],
    ports: PortAllocator,
    result: Expanded,
) -> dict[str, Any]:
    base: Path = ("models", model_id)
    own, issues = declarations(raw.get("macros"), (*base, "macros"))
    result.issues.extend(issues)
    model = {k: v for k, v in raw.items() if k != "macros"}
    for key in ("cmd", "cmdStop", "cmdSleep", "cmdWake"):
        if isinstance(model.get(key), str):
            model[key] = strip_comment_lines(model[key])
    if model.get("proxy") is None:
        model["proxy"] = DEFAULT_PROXY
        result.default_proxy.add(model_id)
    key_origin: dict[str, str] = {}
    by_id = _by_id(model)
    if by_id is not None:
        key_origin = {k: k for k in by_id}
    collisions: list[tuple[str, str]] = []
    reported: str | None = None
    for name, macro in reversed(merge_macros(model_id, globals_, own)):
        model, key_origin = _substitute_model(model, key_origin, name, macro, collisions)
    cmd = model.get("cmd")
    no_command = cmd is None or (isinstance(cmd, str) and not parse_command(cmd))
    if no_command:
        result.issues.append(
            Issue(
                (*base, "cmd") if "cmd" in model else base,
                "cmd is missing: a model needs the command that starts its server"
                if cmd is None
                else "cmd is empty: it has no command, only comments or blanks",
            )
        )
    used_port = isinstance(cmd, str) and "${PORT}" in cmd
    if used_port:
        port = ports.take(model_id)
        result.ports[model_id] = port
        model, key_origin = _substitute_model(model, key_origin, "PORT", port, collisions)
    elif (
        (cmd is None or isinstance(cmd, str))  # a cmd of the wrong type is reported alone
        and isinstance(model.get("proxy"), str)
        and "${PORT}" in model["proxy"]
    ):
        reported = model.pop("proxy")  # checked here, not again as a leftover
        where = base if model_id in result.default_proxy else (*base, "proxy")
        if not no_command:  # the missing command is the problem to report
            result.issues.append(
                Issue(
                    where,
                    "proxy uses ${PORT} but cmd does not - "
                    "${PORT} is only available when used in cmd",
                )
            )
    if not isinstance(model.get("cmd", ""), str) and model_id in result.default_proxy:
        model["proxy"] = ""  # the cmd's type is the problem to report
    by_id_path: Path = (*base, "filters", "setParamsByID")
    for first, second in collisions:
        result.issues.append(
            Issue((*by_id_path, second), f'keys "{first}" and "{second}" resolve to the same value')
        )
    for new, old in key_origin.items():
        if new != old:
            doc.alias_position((*by_id_path, new), (*by_id_path, old))
        for m in MACRO_RE.finditer(new):
            result.issues.append(
                Issue((*by_id_path, new), f"unknown macro '${{{m.group(1)}}}' in this key")
            )
    devices = model.get("devices")
    _leftovers(
        model,
        base,
        result.issues,
        allow_pid=True,
        skip_port_msg=not used_port,
        allow_device=isinstance(devices, list) and bool(devices),
    )
    if not used_port and "proxy" not in model and reported is not None:
        model["proxy"] = ""
    return model


def _by_id(model: dict[str, Any]) -> dict[str, Any] | None:
    filters = model.get("filters")
    by_id = filters.get("setParamsByID") if isinstance(filters, dict) else None
    return by_id if isinstance(by_id, dict) else None


def _substitute_model(
    model: dict[str, Any],
    key_origin: dict[str, str],
    name: str,
    macro: Any,
    collisions: list[tuple[str, str]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Substitute in the model's values and in its `setParamsByID` keys.

    `key_origin` maps each current key to the key written in the file; two keys
    that expand alike are appended to `collisions` (the first one is kept).
    """
    model = substitute(model, name, macro)
    by_id = _by_id(model)
    if by_id is None:
        return model, key_origin
    token, text = "${" + name + "}", go_format(macro)
    renamed: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in by_id.items():
        new = key.replace(token, text)
        if new in renamed:
            collisions.append((origin[new], key_origin.get(key, key)))
            continue
        renamed[new] = value
        origin[new] = key_origin.get(key, key)
    model["filters"] = {**model["filters"], "setParamsByID": renamed}
    return model, origin


def _leftovers(
    value: Any,
    path: Path,
    issues: list[Issue],
    *,
    allow_pid: bool,
    skip_port_msg: bool = True,
    allow_device: bool = False,
) -> None:
    if isinstance(value, str):
        for m in ENV_RE.finditer(value):
            issues.append(Issue(path, f"environment variable '{m.group(1)}' not set"))
        for m in MACRO_RE.finditer(value):
            name = m.group(1)
            in_cmd_stop = (
                len(path) == 3 and path[0] == "models" and path[2] in ("cmdStop", *PID_COMMANDS)
            )
            if name == "PID" and allow_pid and in_cmd_stop:
                continue
            if name == KV_DIR and allow_pid:
                if len(path) == 3 and path[2] == "cmd":
                    continue  # filled in by the daemon, which knows the state directory
                issues.append(Issue(path, "macro '${KV_DIR}' is only available in cmd"))
                continue
            if name in DEVICE_MACROS and allow_pid:
                if allow_device and _device_key(path):
                    continue
                where = "cmd, cmdStop and env" if allow_device else "a model with devices"
                issues.append(Issue(path, f"macro '${{{name}}}' is only available in {where}"))
                continue
            if name == "PID" and allow_pid:
                msg = "macro '${PID}' is only available in cmdStop"
            elif name == "PORT" and skip_port_msg and allow_pid:
                msg = "unknown macro '${PORT}': ${PORT} is only available when used in cmd"
            elif name in RESERVED and allow_pid:
                msg = f"macro '${{{name}}}' should have been substituted"
            else:
                msg = f"unknown macro '${{{name}}}'"
            issues.append(Issue(path, msg))
    elif isinstance(value, dict):
        for k, v in value.items():
            _leftovers(
                v, (*path, k), issues,
                allow_pid=allow_pid, skip_port_msg=skip_port_msg, allow_device=allow_device,
            )  # fmt: skip
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _leftovers(
                v, (*path, i), issues,
                allow_pid=allow_pid, skip_port_msg=skip_port_msg, allow_device=allow_device,
            )  # fmt: skip


def _device_key(path: Path) -> bool:
    """`models.X.cmd`, `models.X.cmdStop` or `models.X.env[i]`: where a device may be named."""
    if len(path) < 3 or path[0] != "models":
        return False
    return (len(path) == 3 and path[2] in ("cmd", "cmdStop")) or (
        len(path) == 4 and path[2] == "env"
    )
