"""Where the tests' fixed inputs live, and the one way to read a JSON schema."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

#: The repository root (this file is ``tests/harness/paths.py``).
REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA = REPO_ROOT / "testdata"
SCHEMAS = REPO_ROOT / "inspector" / "schemas"
#: ``../shared`` beside the checkout: the specifications and the real BuildKit documents.
SHARED = REPO_ROOT.parent / "shared"
REALWORLD = SHARED / "realworld"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The JSON schema of one stable document (``show``, ``diff``, ``du``, ``gc-plan``, ``probe`` …)."""
    document: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return document
