"""pyproject.toml declares exactly what each program imports from outside the standard library.

The daemon and swapctl run on the base dependencies alone; swaptui adds the
`tui` extra; the demo's launcher the `demo` extra. A third-party import in
one of them that its distribution does not declare would work in the
development .venv (where every extra is installed) and fail for a user.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"swapd", "swapctl", "swaptui", "swapd_demo"}
#: Each program's sources and the extras it may use beyond the base dependencies.
PROGRAMS = {
    "daemon/swapd": ("gpu",),
    "shared/swapctl": (),
    "tui/swaptui": ("tui",),
    "demo/swapd_demo": ("demo",),
}


def imported_modules(root: Path) -> set[str]:
    """Top-level names of every absolute import under `root`."""
    names: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def distribution(requirement: str) -> str:
    """`"ruamel.yaml>=0.19"` -> `"ruamel-yaml"` (normalised as in PEP 503)."""
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return normalise(name)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extras: Iterable[str]) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {distribution(r) for r in project["dependencies"]}
    for extra in extras:
        names |= {distribution(r) for r in project["optional-dependencies"][extra]}
    return names


@pytest.mark.parametrize(("root", "extras"), list(PROGRAMS.items()))
def test_every_third_party_import_is_declared(root: str, extras: tuple[str, ...]) -> None:
    owners = packages_distributions()
    allowed = declared(extras)
    third_party = imported_modules(REPO / root) - FIRST_PARTY - set(sys.stdlib_module_names)
    missing = {
        module: owners.get(module)
        for module in sorted(third_party)
        if not any(normalise(d) in allowed for d in owners.get(module, [module]))
    }
    assert not missing, f"{root} imports what pyproject.toml does not declare for it: {missing}"


def test_the_base_dependencies_are_all_used() -> None:
    """Nothing in `dependencies` that no program imports (a test tool belongs in `dev`)."""
    owners = packages_distributions()
    used: set[str] = set()
    for root in PROGRAMS:
        for module in imported_modules(REPO / root):
            used |= {normalise(d) for d in owners.get(module, [])}
    unused = declared(()) - used
    assert not unused, f"declared but imported by no program: {sorted(unused)}"
