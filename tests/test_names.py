"""One name, one meaning: a public function or class is defined in one module of the package, so
``report_to_json`` or ``render_report`` cannot mean a cache in one place and a gc run in another."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import inspector

PACKAGE = Path(inspector.__file__).parent

#: Names defined in two modules on purpose, with why; anything else defined twice fails the test.
ALLOWED = {
    # Each delete backend that can list untagged manifests selects and rechecks them its own way
    # (GHCR: package versions; ECR: DescribeImages); gc picks the module by backend type.
    "plan_untagged": {"gc/backends/ecr.py", "gc/backends/ghcr.py", "gc/backends/google.py"},
    "recheck_untagged": {"gc/backends/ecr.py", "gc/backends/ghcr.py", "gc/backends/google.py"},
    # Two different values: a health problem of a cache, and a problem of a --cache-to value.
    "Problem": {"cache/report.py", "probe/cacheto.py"},
}


def _public_definitions() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                found[node.name].add(path.relative_to(PACKAGE).as_posix())
    return found


def test_each_public_name_is_defined_once() -> None:
    twice = {name: modules for name, modules in _public_definitions().items() if len(modules) > 1}
    assert twice == ALLOWED


def test_the_json_documents_and_views_have_one_name_each() -> None:
    found = _public_definitions()
    assert found["report_to_json"] == {"cache/report.py"}
    assert found["gc_report_to_json"] == {"gc/execute.py"}
    assert found["probe_report_to_json"] == {"probe/output.py"}
    assert found["render_report"] == {"cli/render/cache.py"}
    assert found["render_gc_report"] == {"cli/render/gc.py"}
