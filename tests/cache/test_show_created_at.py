"""A result without ``createdAt`` through the real CLI: a warning with its own code, shown as unknown.

BuildKit's ``CacheResult.CreatedAt`` is a ``time.Time`` (``cache/remotecache/v1/spec.go``); ``encoding/json``
leaves it at Go's zero time (0001-01-01T00:00:00Z) when the key is missing and when it is ``null``, and
``parse.go`` imports such a result like any other. So the tool warns (``result-time-missing``, docs/show.md) and
never errs: exit 0, with ``--strict`` too (exit 10 is for an unhealthy cache, docs/exit-codes.md, and a warning
does not make a cache unhealthy). The zero time is no date anyone wrote: text and JSON show it as unknown.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.paths import TESTDATA, schema
from tests.harness.support import run_cli, validate_json

TAG = "image-manifest"
CREATED_ANNOTATION = "buildkit/createdat"
YEAR_ONE = re.compile(r"0001-01-01[T ]00:00")  # the zero time as a timestamp (JSON) or a table cell (text)


def _put(root: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return digest, len(data)


def _edited_layout(
    tmp_path: Path,
    edit_config: Callable[[dict[str, Any]], None],
    edit_manifest: Callable[[dict[str, Any]], None] = lambda manifest: None,
) -> str:
    """A copy of the generated multistage-max layout whose image-manifest tag names an edited config."""
    root = tmp_path / "layout"
    shutil.copytree(TESTDATA / "layouts" / "multistage-max", root)
    index = json.loads((root / "index.json").read_text())
    entry = next(
        m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == TAG
    )
    manifest = json.loads((root / "blobs" / "sha256" / entry["digest"][7:]).read_bytes())
    config = json.loads((root / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    edit_config(config)
    edit_manifest(manifest)
    manifest["config"]["digest"], manifest["config"]["size"] = _put(root, json.dumps(config).encode())
    entry["digest"], entry["size"] = _put(root, json.dumps(manifest).encode())
    (root / "index.json").write_text(json.dumps(index))
    return f"oci:{root}:{TAG}"


def _record(config: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(r for r in config["records"] if r["digest"].startswith("sha256:" + prefix))


# The generated config (testdata/layouts/multistage-max, image-manifest): record a3e0c338 (index 7) is the final
# stage's COPY --from (result layer 1), f7f394f2 (index 13) its RUN (layer 8); the 5 other results keep their times.
NULL_RECORD, MISSING_RECORD = 13, 7


def _untime_two(config: dict[str, Any]) -> None:
    _record(config, "f7f394f2")["layers"][0]["createdAt"] = None
    del _record(config, "a3e0c338")["layers"][0]["createdAt"]


def test_results_without_created_at_warn_with_their_own_code_and_exit_0(tmp_path: Path) -> None:
    ref = _edited_layout(tmp_path, _untime_two)
    for strict in ((), ("--strict",)):
        result = run_cli("show", ref, "--no-check-blobs", *strict)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        health = result.stdout[result.stdout.index("health") :].splitlines()
        # OK (no error), then one warning line: two results, one null and one missing, both counted.
        assert health[0].split()[:2] == ["health", "OK"]
        assert [line.split()[:2] for line in health[1:]] == [["warning", "result-time-missing"]]
        assert "2 results have no createdAt" in health[1]
    doc = json.loads(run_cli("show", ref, "--no-check-blobs", "--json").stdout)
    validate_json(doc, schema("show"))
    assert [(p["code"], p["severity"]) for p in doc["health"]["problems"]] == [
        ("result-time-missing", "warning")
    ]
    assert doc["health"]["ok"] is True


def test_a_null_or_missing_created_at_is_unknown_not_year_one(tmp_path: Path) -> None:
    ref = _edited_layout(tmp_path, _untime_two)
    doc = json.loads(run_cli("show", ref, "--no-check-blobs", "--json").stdout)
    records = doc["records"]
    assert records[NULL_RECORD]["results"][0]["createdAt"] is None
    assert records[MISSING_RECORD]["results"][0]["createdAt"] is None
    # The other five results keep the times the generator wrote (2025-06-02).
    timed = [r["createdAt"] for rec in records for r in rec["results"] if r["createdAt"] is not None]
    assert len(timed) == 5 and all(t.startswith("2025-06-02T") for t in timed)
    steps = {step["recordIndex"]: step for stage in doc["stages"] for step in stage["steps"]}
    assert steps[NULL_RECORD]["createdAt"] is None and steps[MISSING_RECORD]["createdAt"] is None
    assert not YEAR_ONE.search(json.dumps(doc))  # the warning may name the zero time; no field holds it


def test_with_no_time_anywhere_text_and_json_say_unknown(tmp_path: Path) -> None:
    """Every result untimed (null and missing alternate) and no ``buildkit/createdat`` on any descriptor:
    nothing in the cache carries a date, so there is no created range, and no row shows year 1."""

    def untime_all(config: dict[str, Any]) -> None:
        results = [r for rec in config["records"] for r in rec.get("layers", [])]
        for n, result in enumerate(results):
            if n % 2:
                result["createdAt"] = None
            else:
                del result["createdAt"]

    def strip_annotations(manifest: dict[str, Any]) -> None:
        for layer in manifest["layers"]:
            layer.get("annotations", {}).pop(CREATED_ANNOTATION, None)

    ref = _edited_layout(tmp_path, untime_all, strip_annotations)
    text = run_cli("show", ref, "--no-check-blobs")
    assert text.returncode == 0, text.stderr
    assert not YEAR_ONE.search(text.stdout)
    assert not [line for line in text.stdout.splitlines() if line.startswith("created")]
    # 7 results (the generator's 7 records with a result), all untimed.
    assert "7 results have no createdAt" in text.stdout
    doc = json.loads(run_cli("show", ref, "--no-check-blobs", "--json").stdout)
    validate_json(doc, schema("show"))
    assert doc["created"] is None
    assert {r["createdAt"] for rec in doc["records"] for r in rec["results"]} == {None}
    assert not YEAR_ONE.search(json.dumps(doc))


def test_every_warning_code_validates_against_the_schema(tmp_path: Path) -> None:
    """``layer-parent-invalid`` beside ``result-time-missing``: a layer entry no result reaches, whose parent is
    out of range (99 of 11 layers). parse.go only walks layers from results, so BuildKit never sees it: a
    warning. Before the schema listed both codes, a valid ``show --json`` document failed its own schema."""

    def add_stray_layer(config: dict[str, Any]) -> None:
        _untime_two(config)
        config["layers"].append({"blob": config["layers"][0]["blob"], "parent": 99})

    doc = json.loads(
        run_cli("show", _edited_layout(tmp_path, add_stray_layer), "--no-check-blobs", "--json").stdout
    )
    assert sorted(p["code"] for p in doc["health"]["problems"]) == [
        "layer-parent-invalid",
        "result-time-missing",
    ]
    assert doc["health"]["ok"] is True
    validate_json(doc, schema("show"))
