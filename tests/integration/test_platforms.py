"""Platform coverage in `show` and `--expect-platform`, on the seeded multi-platform sample.

``samples/multi-platform:latest`` is ``DOCKERFILES["multi-platform"]`` (tests/harness/make_testdata.py) built
for linux/amd64 and linux/arm64 in ONE export (BuildKit's multi-platform export: every platform's chains in one
config, spec §3.2): a ``build`` stage FROM golang:1.23-alpine and a final stage FROM alpine:3.20, once per
platform. Both bases are two-platform indexes (amd64, arm64) pushed to the registry as
``library/golang:1.23-alpine`` and ``library/alpine:3.20``. So, by hand:

* both bases resolved: every stage's root records match one platform's manifest key (index digest +
  platform, pull.go mainManifestKey) -> covered = linux/amd64, linux/arm64, state known;
* only alpine resolved: the final stages are proven (amd64, arm64), the golang-based stages are not ->
  state partial, the same two platforms covered, linux/s390x "unknown" rather than "absent";
* nothing resolved: nothing in the cache names a platform -> state unknown.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from inspector.cli import run
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli, validate_json

SCHEMA = schema("show")
BOTH = ("linux/amd64", "linux/arm64")


def bases(registry: LocalRegistry, *names: str) -> list[str]:
    refs = {"golang": "library/golang:1.23-alpine", "alpine": "library/alpine:3.20"}
    return [arg for name in names for arg in ("--base", f"{registry.host}/{refs[name]}")]


def show_json(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict[str, Any]:
    assert run(["show", *args, "--json", "--no-check-blobs"]) == code, capsys.readouterr().err
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    validate_json(doc, SCHEMA)
    return doc


def test_both_bases_resolved_prove_both_platforms_per_stage(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{registry.host}/samples/multi-platform:latest"
    doc = show_json(capsys, ref, *bases(registry, "golang", "alpine"))
    assert doc["platforms"] == {"state": "known", "covered": list(BOTH), "unknownStages": [], "expected": []}
    # Each image-based stage carries the platform its base was resolved for; a FROM-stage inherits it.
    for stage in doc["stages"]:
        assert stage["platform"] in BOTH
        if stage["base"]["kind"] == "image":
            assert stage["platform"] == stage["base"]["platform"]
    assert {s["platform"] for s in doc["stages"]} == set(BOTH)


def test_unresolved_stages_are_unknown_and_make_a_missing_platform_unknown(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{registry.host}/samples/multi-platform:latest"
    doc = show_json(capsys, ref, "--expect-platform", "linux/s390x,arm64", code=0)
    assert doc["platforms"]["state"] == "unknown"
    assert doc["platforms"]["covered"] == []
    assert doc["platforms"]["expected"] == [
        {"platform": "linux/s390x", "status": "unknown"},
        {"platform": "linux/arm64", "status": "unknown"},
    ]
    doc = show_json(capsys, ref, *bases(registry, "alpine"), "--expect-platform", "linux/s390x,linux/arm64")
    platforms = doc["platforms"]
    assert platforms["state"] == "partial" and platforms["covered"] == list(BOTH)
    golang = [s["index"] for s in doc["stages"] if s["platform"] is None]
    assert golang and platforms["unknownStages"] == golang
    assert platforms["expected"] == [
        {"platform": "linux/s390x", "status": "unknown"},
        {"platform": "linux/arm64", "status": "covered"},
    ]
    missing = [p for p in doc["health"]["problems"] if p["code"] == "platform-missing"]
    assert len(missing) == 1 and missing[0]["severity"] == "error"
    assert "linux/s390x is not proven" in missing[0]["message"]
    assert doc["health"]["ok"] is False


def test_expect_platform_under_strict_exits_10_in_a_subprocess(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    ref = f"{registry.host}/samples/multi-platform:latest"
    both = bases(registry, "golang", "alpine")
    # Proven absent: every stage is amd64 or arm64, so s390x is absent (not merely unknown).
    strict = run_cli("show", ref, *both, "--no-check-blobs", "--expect-platform", "linux/s390x", "--strict")
    assert strict.returncode == 10, strict.stderr
    assert "platform-missing" in strict.stdout
    assert "linux/s390x is absent" in strict.stdout
    assert "os/arch  linux/amd64, linux/arm64 (from resolved bases)" in strict.stdout
    lenient = run_cli("show", ref, *both, "--no-check-blobs", "--expect-platform", "linux/s390x")
    assert lenient.returncode == 0, lenient.stderr
    covered = run_cli(
        "show", ref, *both, "--no-check-blobs", "--expect-platform", "linux/amd64,linux/arm64/v8", "--strict"
    )
    assert covered.returncode == 0, covered.stdout + covered.stderr
    assert "platform-missing" not in covered.stdout


def test_text_names_each_stage_platform_where_stages_differ(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    ref = f"{registry.host}/samples/multi-platform:latest"
    shown = run_cli("show", ref, *bases(registry, "alpine"), "--no-check-blobs")
    assert shown.returncode == 0, shown.stderr
    assert "os/arch  linux/amd64, linux/arm64 (from resolved bases); 2 of " in shown.stdout
    assert "[linux/arm64]" in shown.stdout and "[linux/amd64]" in shown.stdout
    assert "[platform unknown]" in shown.stdout
    unknown = run_cli("show", ref, "--no-check-blobs")
    assert "os/arch  unknown (nothing in a cache names its platform" in unknown.stdout
    assert "[platform unknown]" not in unknown.stdout  # all stages alike: the header says it once


@pytest.mark.parametrize("value", ["linux", "linux/amd46", "linux/amd64/v1/x", ""])
def test_a_bad_expect_platform_is_one_line_and_exit_2(registry: LocalRegistry, value: str) -> None:
    done = run_cli("show", f"{registry.host}/samples/none:latest", "--expect-platform", value)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("cacheinspect: error: --expect-platform")
    assert "Traceback" not in done.stderr and done.stdout == ""
