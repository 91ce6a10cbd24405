"""YAML text -> plain builtins, with the position of every key and item.

ruamel.yaml composes the node tree (YAML 1.2 core: `yes` is a string); we build
plain dicts, lists and scalars from it ourselves, because `msgspec.convert`
rejects ruamel's own scalar types (only plain builtins convert) and because building from
nodes gives us positions, independent copies for every alias use and `<<`
merge keys in one walk.

`${env.NAME}` references are substituted first, in the raw text, as
llama-swap does (so they work in flow lists, keys and unquoted numbers): only
references that the parser sees outside comments count, unless the text does
not parse before substitution; `\\` and `"` in values are escaped as for a
double-quoted scalar. Columns on a line after a substitution are those of the
substituted text.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from swapd.config.errors import Issue, Path

ENV_RE = re.compile(r"\$\{env\.([a-zA-Z_][a-zA-Z0-9_]*)\}")

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_RE = re.compile(r"[-+]?[0-9_]+|0o[0-7_]+|0x[0-9a-fA-F_]+")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?")
_INF_RE = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN_RE = re.compile(r"\.(nan|NaN|NAN)")


@dataclass
class Document:
    """A parsed file: the plain tree and where each key path starts in the text.

    `positions` maps a key path to the 1-based (line, column) of the mapping
    key (or of the sequence item); `texts` keeps the source text of every
    non-string scalar so a string field can take it literally (`name: 1.50`
    is the name "1.50", as in yaml.v3). `parsed` is False when the text gave
    no tree to check further (invalid YAML, an unset variable, a root that is
    not a mapping); problems inside a tree (a duplicate key) leave it True.
    """

    tree: dict[str, Any]
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    texts: dict[Path, str] = field(default_factory=dict)
    parsed: bool = True

    def locate(self, path: Path) -> tuple[int, int]:
        """The position of `path`, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return pos
        return (1, 1)

    def alias_position(self, new: Path, old: Path) -> None:
        """Make `new` (a renamed key) point where `old` was written."""
        for p, pos in list(self.positions.items()):
            if p[: len(old)] == old:
                self.positions.setdefault(new + p[len(old) :], pos)


def _tag(node: Node) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag))


def resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema resolution of a plain scalar (what yaml.v3 does)."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT_RE.fullmatch(text):
        return _to_int(text)
    if _FLOAT_RE.fullmatch(text):
        return float(text.replace("_", ""))
    if _INF_RE.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN_RE.fullmatch(text):
        return math.nan
    return text


def _to_int(text: str) -> int:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        return int(clean, 10)  # "017": YAML 1.2 reads a leading zero as decimal


def _scalar(node: ScalarNode, value_text: str) -> Any:
    tag = _tag(node)
    if node.style is not None and node.style not in ("", "plain"):
        return value_text
    if tag.endswith(":str"):
        return value_text
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return value_text.lower() == "true"
    if tag.endswith(":int"):
        try:
            return _to_int(value_text)
        except ValueError:
            return value_text
    if tag.endswith(":float"):
        return (
            resolve_plain(value_text)
            if not _FLOAT_RE.fullmatch(value_text)
            else float(value_text.replace("_", ""))
        )
    return value_text


class _Builder:
    def __init__(self) -> None:
        self.positions: dict[Path, tuple[int, int]] = {}
        self.texts: dict[Path, str] = {}
        self.issues: list[Issue] = []
        self._stack: set[int] = set()

    def build(self, node: Node, path: Path) -> Any:
        if isinstance(node, ScalarNode):
            text = str(node.value)
            if node.style == ">":
                # The round-trip composer marks each folded line break with BEL
                # so it can re-emit the fold; the value itself has none.
                text = text.replace("\a", "")
            value = _scalar(node, text)
            if not isinstance(value, str) and value is not None:
                self.texts[path] = text
            return value
        if id(node) in self._stack:
            self.issues.append(Issue(path, "recursive YAML alias"))
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                out: list[Any] = []
                for i, item in enumerate(node.value):
                    self.positions[(*path, i)] = _mark(item)
                    out.append(self.build(item, (*path, i)))
                return out
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
        finally:
            self._stack.discard(id(node))
        self.issues.append(Issue(path, f"unsupported YAML node {type(node).__name__}"))
        return None

    def key(self, node: Node, path: Path) -> str | None:
        if not isinstance(node, ScalarNode):
            self.issues.append(Issue(path, "mapping keys must be scalars"))
            return None
        text = str(node.value)
        if _tag(node).endswith(":null") and node.style is None:
            return ""
        return text

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        explicit: dict[str, tuple[Node, Node]] = {}
        merged: dict[str, tuple[Node, Node]] = {}
        order: list[str] = []
        for key_node, value_node in node.value:
            if _tag(key_node) == _MERGE_TAG:
                for source in self._merge_sources(value_node, path):
                    for k_node, v_node in self._flatten(source, path):
                        k = self.key(k_node, path)
                        if k is None or k in merged:
                            continue
                        merged[k] = (k_node, v_node)
                        if k not in order:
                            order.append(k)
                continue
            k = self.key(key_node, path)
            if k is None:
                continue
            if k in explicit:
                line = explicit[k][0].start_mark.line + 1
                self.issues.append(
                    Issue(
                        (*path, k),
                        f'mapping key "{k}" already defined at line {line}',
                        _mark(key_node),
                    )
                )
                continue
            explicit[k] = (key_node, value_node)
            if k not in order:
                order.append(k)
        out: dict[str, Any] = {}
        for k in order:
            key_node, value_node = explicit.get(k) or merged[k]
            self.positions[(*path, k)] = _mark(key_node)
            out[k] = self.build(value_node, (*path, k))
        return out

    def _merge_sources(self, value: Node, path: Path) -> list[MappingNode]:
        if isinstance(value, MappingNode):
            return [value]
        if isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value):
            return list(value.value)
        self.issues.append(Issue(path, "a '<<' merge key needs a mapping or a list of mappings"))
        return []

    def _flatten(self, node: MappingNode, path: Path) -> list[tuple[Node, Node]]:
        """The entries a merge source contributes (its own merges included)."""
        own: list[tuple[Node, Node]] = []
        inherited: list[tuple[Node, Node]] = []
        if id(node) in self._stack:
            self.issues.append(Issue(path, "recursive YAML alias"))
            return []
        self._stack.add(id(node))
        try:
            for k, v in node.value:
                if _tag(k) == _MERGE_TAG:
                    for source in self._merge_sources(v, path):
                        inherited.extend(self._flatten(source, path))
                else:
                    own.append((k, v))
        finally:
            self._stack.discard(id(node))
        return own + inherited


def _mark(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _env_names(text: str) -> list[str] | None:
    """`${env.X}` names the parser sees (comments excluded); None if unparsable."""
    try:
        root = YAML(typ="rt").compose(text)
    except YAMLError:
        return None
    names: list[str] = []
    todo: list[Node] = [root] if root is not None else []
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            names.extend(ENV_RE.findall(str(node.value)))
        elif isinstance(node, SequenceNode):
            todo.extend(node.value)
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                todo.extend((k, v))
    return names


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def substitute_env(text: str, environ: Mapping[str, str]) -> tuple[str, list[Issue]]:
    """Replace `${env.NAME}` in the raw text; unset or multi-line values are issues."""
    names = _env_names(text)
    wanted = set(ENV_RE.findall(text) if names is None else names)
    issues: list[Issue] = []
    for name in sorted(wanted, key=lambda n: text.find("${env." + n + "}")):
        value = environ.get(name)
        pos = _line_col(text, text.find("${env." + name + "}"))
        if value is None:
            issues.append(Issue((), f"environment variable '{name}' is not set", pos))
        elif any(c in value for c in "\r\n\0"):
            issues.append(
                Issue(
                    (),
                    f"environment variable '{name}' contains newlines or null bytes "
                    "which are not allowed in YAML substitution",
                    pos,
                )
            )
    if issues:
        return text, issues

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in wanted:
            return m.group(0)
        return environ[m.group(1)].replace("\\", "\\\\").replace('"', '\\"')

    return ENV_RE.sub(sub, text), []


def parse_text(text: str, environ: Mapping[str, str] | None = None) -> tuple[Document, list[Issue]]:
    """Parse YAML text into a `Document`; issues are returned, not raised.

    An empty (or comment-only) document is an empty config; a root that is
    not a mapping is an issue.
    """
    text, env_issues = substitute_env(text, os.environ if environ is None else environ)
    if env_issues:
        return Document(tree={}, parsed=False), env_issues
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = f"invalid YAML: {exc.problem or exc.context}"
        doc = Document(tree={}, parsed=False)
        if mark is not None:
            doc.positions[()] = (mark.line + 1, mark.column + 1)
        return doc, [Issue((), msg)]
    except YAMLError as exc:
        return Document(tree={}, parsed=False), [Issue((), f"invalid YAML: {exc}")]
    builder = _Builder()
    builder.positions[()] = (1, 1)
    if root is None:
        return Document(tree={}, positions=builder.positions), []
    tree = builder.build(root, ())
    if tree is None:
        return Document(tree={}, positions=builder.positions, parsed=False), builder.issues
    if not isinstance(tree, dict):
        return Document(tree={}, positions=builder.positions, parsed=False), [
            *builder.issues,
            Issue((), "top-level YAML must be a mapping"),
        ]
    return Document(tree=tree, positions=builder.positions, texts=builder.texts), builder.issues
