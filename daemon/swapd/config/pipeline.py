"""The load pipeline from text to effective config; positions attached at the end.

A problem found early (a duplicate key, a bad macro) does not stop the later
checks, so one run reports them all; only a text that gives no tree at all
(invalid YAML) stops it there. Warnings are problems that do not stop a
config from loading: they come back with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from swapd.config.coerce import MISSING, Coercer
from swapd.config.errors import ConfigError, ConfigProblem, Issue, format_path
from swapd.config.loader import Document, parse_text
from swapd.config.macros import expand
from swapd.config.model import Config
from swapd.config.ports import PortsInUse
from swapd.config.schema import ConfigDoc
from swapd.config.validate import Routing, build

T = TypeVar("T")

# Checked for leftover macros; `defs` only holds YAML anchors, as in llama-swap.
TOP_LEVEL_KEYS = frozenset(
    f.encode_name
    for f in msgspec.structs.fields(ConfigDoc)
    if f.encode_name not in ("models", "defs")
)


def _profile_hook(path: tuple[Any, ...], value: Any) -> tuple[bool, Any]:
    if len(path) == 2 and path[0] == "profiles" and isinstance(value, list):
        return True, MISSING
    return False, None


def load_text(
    text: str,
    *,
    file: Path,
    environ: Mapping[str, str] | None,
    factory: Callable[[Path, Config, dict[str, str], Any, list[ConfigProblem]], T],
    ports: PortsInUse | None = None,
) -> T:
    """Run the whole pipeline on `text`; `factory` builds the result from the parts
    (the last is the warnings). `ports`: see `swapd.config.ports`."""
    doc, issues = parse_text(text, environ)
    if not doc.parsed:
        raise _error(file, doc, issues)
    expanded = expand(doc, TOP_LEVEL_KEYS, ports)
    issues.extend(expanded.issues)
    coercer = Coercer(doc.texts, hooks={"ProfileDoc": _profile_hook})
    plain = coercer.struct(ConfigDoc, expanded.tree)
    issues.extend(coercer.issues)
    for name, value in (
        (expanded.tree.get("profiles") or {}).items()
        if isinstance(expanded.tree.get("profiles"), dict)
        else ()
    ):
        if isinstance(value, list):
            issues.append(
                Issue(
                    ("profiles", name),
                    "profile must be a mapping with description and pins; "
                    "the legacy list syntax is no longer supported",
                )
            )
    config_doc = msgspec.convert(plain, ConfigDoc, strict=True)
    built = build(config_doc, expanded)
    issues.extend(built.issues)
    matrix = None
    warnings: list[Issue] = list(built.warnings)
    if built.routing is not None and built.routing.use == "matrix" and built.config is not None:
        matrix, matrix_issues = compile_block(built.routing, list(config_doc.models))
        issues.extend(matrix_issues)
        if matrix is not None:
            issues.extend(_spillover_in_matrix(config_doc, built.aliases, matrix))
            warnings.extend(_outside_matrix(config_doc, matrix))
    if issues or built.config is None:
        raise _error(file, doc, issues)
    return factory(file, built.config, built.aliases, matrix, _locate(file, doc, warnings))


def compile_block(routing: Routing, models: list[str]) -> tuple[Any, list[Issue]]:
    """Compile the matrix block; problems come back located under its key path.

    Sets are passed in file (definition) order, the documented tie-break order
    and v790's; llama-swap latest loses it by re-encoding the YAML with sorted
    keys (docs/compat.md, Swap matrix), which we do not reproduce.
    """
    from swapd.matrix import MatrixError, compile_matrix

    block = routing.matrix
    assert block is not None
    try:
        matrix = compile_matrix(
            sets=list(block.sets.items()),
            vars=block.vars,
            evict_costs=block.evict_costs,
            models=models,
        )
    except MatrixError as exc:
        return None, [
            Issue((*routing.matrix_path, *p.path), f"matrix: {p.message}") for p in exc.problems
        ]
    return matrix, []


def _spillover_in_matrix(doc: ConfigDoc, aliases: dict[str, str], matrix: Any) -> list[Issue]:
    """Spillover targets must be able to run together: some set holds them all."""
    issues = []
    for sel_id, sel in sorted(doc.selectors.items()):
        if sel.strategy != "spillover":
            continue
        local = list(
            dict.fromkeys(
                t if t in doc.models else aliases[t]
                for t in sel.targets
                if t in doc.models or t in aliases
            )
        )
        if len(local) > 1 and matrix.solve(local[0], local[1:]).evict:
            issues.append(
                Issue(
                    ("selectors", sel_id, "targets"),
                    "targets must all appear together in one expanded matrix set",
                )
            )
    return issues


def _outside_matrix(doc: ConfigDoc, matrix: Any) -> list[Issue]:
    """A model in no matrix set still runs, alone: loading it stops every other model."""
    return [
        Issue(
            ("models", model_id),
            "in no matrix set: it runs alone, and loading it stops every running model",
        )
        for model_id in doc.models
        if not matrix.sets_of(model_id)
    ]


def _locate(file: Path, doc: Document, issues: list[Issue]) -> list[ConfigProblem]:
    problems = []
    for issue in issues:
        line, column = issue.pos or doc.locate(issue.path)
        problems.append(
            ConfigProblem(str(file), line, column, format_path(issue.path), issue.message)
        )
    problems.sort(key=lambda p: (p.line, p.column))
    return problems


def _error(file: Path, doc: Document, issues: list[Issue]) -> ConfigError:
    return ConfigError(_locate(file, doc, issues))
