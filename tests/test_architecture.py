"""The package's architecture, enforced: layers, private names, typer/rich, cycles and ``__all__``.

The rules are those of the README's Development section (from the design note on the layout): each subpackage
may import only the layers below it; a ``_private`` name (module, function, attribute) never crosses a subpackage line; only ``cli/``
imports typer or rich; no module imports another that (directly or not) imports it back; every subpackage's
``__init__`` declares ``__all__`` and it equals the names it exports. Each rule is checked over the AST of every
module, so a new file is covered the day it is added, and each has a test proving it would catch a breach.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inspector"

#: Modules at the root that every layer may use; they import nothing from the package themselves.
BASE = frozenset(
    {"inspector.errors", "inspector._version", "inspector._redact", "inspector._sanitize", "inspector._lazy"}
)
#: Each layer and the layers it may import (the base modules are always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "oci": frozenset(),
    "registry": frozenset({"oci"}),
    "cache": frozenset({"oci", "registry"}),
    "gc": frozenset({"oci", "registry", "cache"}),
    "probe": frozenset({"oci", "registry", "cache"}),
    "cli": frozenset({"oci", "registry", "cache", "gc", "probe"}),
}
#: The root modules that front the whole package (the lazy public API, ``python -m inspector``).
FRONT = frozenset({"inspector", "inspector.__main__"})
UI_LIBRARIES = ("typer", "rich", "click")
#: Private attribute names every Python object of a kind offers (namedtuple's API).
STANDARD_PRIVATE = frozenset({"_replace", "_asdict", "_fields", "_make"})


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name of the importing module
    target: str  # absolute dotted name imported from (a module or a package)
    names: tuple[str, ...]  # the names imported from it ("" for ``import target``)
    line: int
    runtime: bool  # False under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str, path: Path) -> str:
    """The package a relative import in ``module`` starts from."""
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, path: Path, source: str | None = None) -> Iterator[Import]:
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    typing_only = _type_checking_lines(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, ("",), node.lineno, node.lineno not in typing_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(module, path).split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            yield Import(module, target, names, node.lineno, node.lineno not in typing_only)


def layer_of(module: str) -> str | None:
    """``oci``, ``registry``, …, or None for the base and front modules at the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def _resolved(imp: Import) -> Iterator[str]:
    """The package modules an import names: the target, or ``target.name`` where that is a module."""
    known = modules()
    for name in imp.names:
        candidate = f"{imp.target}.{name}"
        yield candidate if name and candidate in known else imp.target


def layer_violations(module: str, imports: list[Import]) -> list[str]:
    problems = []
    own = layer_of(module)
    for imp in imports:
        if imp.target.split(".")[0] in UI_LIBRARIES and own != "cli":
            problems.append(f"{module}:{imp.line} imports {imp.target} (only inspector.cli may)")
        for target in _resolved(imp):
            if not target.startswith("inspector"):
                continue
            if module in FRONT:
                continue
            if module in BASE:
                problems.append(f"{module}:{imp.line} imports {target} (base modules import nothing)")
                continue
            if target in BASE:
                continue
            theirs = layer_of(target)
            if theirs is None or (theirs != own and theirs not in ALLOWED[own or ""]):
                problems.append(
                    f"{module}:{imp.line} ({own}) imports {target} ({theirs or 'the package root'})"
                )
    return problems


def private_violations(module: str, imports: list[Import]) -> list[str]:
    """A ``_name`` imported from another subpackage (names and module paths alike; the base modules are shared)."""
    problems = []
    own = layer_of(module)
    for imp in imports:
        if not imp.target.startswith("inspector") or imp.target in BASE or module in FRONT:
            continue
        if layer_of(imp.target) == own:
            continue
        private_path = any(part.startswith("_") for part in imp.target.split(".")[1:])
        private_names = [name for name in imp.names if name.startswith("_") and not name.startswith("__")]
        if private_path or private_names:
            problems.append(
                f"{module}:{imp.line} imports {', '.join(private_names) or imp.target} across layers"
            )
    return problems


def private_attribute_violations(module: str, source: str) -> list[str]:
    """``obj._name`` on anything but ``self``/``cls`` where ``_name`` is not defined in this module, and any
    assignment to ``obj._name`` (monkeypatching another object's private state, e.g. ``client._sleep = …``,
    is caught even when the module defines a ``_name`` of its own)."""
    tree = ast.parse(source)
    defined = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    defined |= {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    }
    defined |= {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    problems = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        ):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if isinstance(node.ctx, ast.Store | ast.Del):
            problems.append(f"{module}:{node.lineno} assigns {ast.unparse(node)}")
            continue
        if node.attr in defined or node.attr in STANDARD_PRIVATE:
            continue
        problems.append(f"{module}:{node.lineno} reaches into {ast.unparse(node)}")
    return problems


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports at run time (typing-only imports cannot form a cycle)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules().items():
        edges = graph.setdefault(module, set())
        for imp in imports_of(module, path):
            if imp.runtime and imp.target.startswith("inspector"):
                edges.update(target for target in _resolved(imp) if target != module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None (depth-first search, colours white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _all_problems() -> list[str]:
    problems = []
    for module, path in modules().items():
        source = path.read_text(encoding="utf-8")
        imports = list(imports_of(module, path, source))
        problems += layer_violations(module, imports)
        problems += private_violations(module, imports)
        problems += private_attribute_violations(module, source)
    return problems


def test_no_module_crosses_a_layer_or_reaches_into_a_private_name() -> None:
    assert _all_problems() == []


def test_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


SUBPACKAGES = sorted(
    module for module, path in modules().items() if path.name == "__init__.py" and module != "inspector"
)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_declares_all_and_it_is_exactly_its_public_names(name: str) -> None:
    package = importlib.import_module(name)
    for exported in package.__all__:  # every name resolves (lazy re-exports included)
        getattr(package, exported)
    public = {
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_") and not inspect.ismodule(value) and attr != "annotations"
    }
    assert sorted(package.__all__) == sorted(public), name


# The checks themselves must be able to fail: each breach below is one the rules exist for.


def _check(module: str, source: str) -> list[str]:
    path = PACKAGE / (module.removeprefix("inspector.").replace(".", "/") + ".py")
    imports = list(imports_of(module, path, source))
    return layer_violations(module, imports) + private_violations(module, imports)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("inspector.oci.models", "from inspector.registry.client import RegistryClient\n"),  # upward
        ("inspector.registry.client", "from inspector.cache.fetch import load_cache\n"),  # upward
        ("inspector.gc.plan", "from inspector.probe.run import run_probe\n"),  # sideways
        ("inspector.probe.run", "from inspector.gc import plan\n"),  # sideways, as a module
        ("inspector.cache.report", "from inspector.cli.app import console\n"),  # into the CLI
        ("inspector.cache.report", "import rich\n"),  # UI library below the CLI
        ("inspector.gc.plan", "from typer import Option\n"),
        ("inspector.errors", "from inspector.oci.digest import Digest\n"),  # the base imports nothing
        ("inspector.probe.requests", "from inspector.registry.client import _next_link\n"),  # private name
        ("inspector.probe.requests", "from inspector.registry._http import retry\n"),  # private module
        ("inspector.oci.reference", "from ..cache import fetch\n"),  # relative imports resolve too
    ],
)
def test_the_import_rules_catch_a_breach(module: str, source: str) -> None:
    assert _check(module, source), source


def test_a_private_attribute_of_another_object_is_caught_and_self_is_not() -> None:
    source = (
        "def f(client):\n    return client._request()\nclass C:\n    def g(self):\n        return self._x\n"
    )
    assert private_attribute_violations("inspector.probe.run", source) == [
        "inspector.probe.run:2 reaches into client._request"
    ]


def test_monkeypatching_another_objects_private_attribute_is_caught() -> None:
    # What probe/run.py did before RegistryClient.on_retry: swap the client's sleeper. The module defines a
    # ``_sleep`` of its own (``self._sleep``), which made the read-only rule above blind to it.
    source = (
        "class P:\n    def __init__(self):\n        self._sleep = None\n"
        "def f(client, p):\n    original = client._sleep\n    client._sleep = p._sleep\n"
    )
    assert private_attribute_violations("inspector.probe.run", source) == [
        "inspector.probe.run:6 assigns client._sleep"
    ]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
