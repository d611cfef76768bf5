"""`cacheinspect probe` against the real registry (distribution 2.8.2), delete enabled and disabled.

What is left behind is judged from the registry's own storage directory (tag directories,
manifest revision links, blob links), read before and after each probe; requests are seen
through the pass-through proxy of tests/harness/vendor_proxy.py where it matters which were sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from inspector.cli import run
from tests.harness.paths import schema
from tests.harness.registry import (
    LocalRegistry,
    RegistryUnavailable,
    find_registry_binary,
    load_samples,
    seed_sample,
    start_registry,
)
from tests.harness.support import registry_unavailable, validate_json
from tests.harness.vendor_proxy import Storage, check_junit, seed_repository, storage_state, vendor_proxy

SCHEMA = schema("probe")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def registry_without_delete(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if find_registry_binary() is None:
        registry_unavailable("docker-registry is not installed (apt-get install -y docker-registry)")
    try:
        instance = start_registry(tmp_path_factory.mktemp("registry-nodelete"), delete=False)
    except RegistryUnavailable as exc:
        registry_unavailable(str(exc))
        raise
    yield instance
    instance.stop()


def probe_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = run(["probe", *args, "--json"])
    out = capsys.readouterr().out
    doc: dict[str, Any] = json.loads(out)
    validate_json(doc, SCHEMA)
    return code, doc


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in doc["checks"]}


def check(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["id"] == check_id)
    return found


def leftovers(doc: dict[str, Any], kind: str, repository: str) -> set[str]:
    """Leftover tags (names) or manifests/blobs (digests) of one repository."""
    out: set[str] = set()
    for item in doc["leftovers"]:
        if item["kind"] != kind:
            continue
        ref: str = item["reference"]
        name, _, rest = ref.partition("@") if kind != "tag" else ref.rpartition(":")
        if name == repository:
            out.add(rest)
    return out


def test_full_probe_with_delete_leaves_nothing_behind(
    registry: LocalRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, source = "probe/full", "probe/mount-source"
    seed_repository(registry.url, repo)
    seed_repository(registry.url, source)
    before = storage_state(registry.root, repo), storage_state(registry.root, source)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = tmp_path / "probe.xml"
    code, doc = probe_json(
        [
            f"{registry.host}/{repo}",
            "--delete",
            "--upload-variants",
            "--mount-from",
            f"{registry.host}/{source}",
            "--cache-to",
            f"type=registry,ref={registry.host}/{repo}:main,mode=max",
            "--junit",
            str(junit),
        ],
        capsys,
    )
    assert code == 0
    assert statuses(doc) == {
        "discovery": "supported",
        "auth": "supported",
        "repository": "supported",
        "existing-cache": "skipped",
        "blob-upload": "supported",
        "blob-upload-single-post": "unsupported",
        "blob-upload-chunked": "supported",
        "blob-mount": "supported",
        "manifest-image": "supported",
        "manifest-index": "supported",
        "manifest-list": "supported",
        "manifest-migration": "supported",
        "manifest-near-limit": "supported",
        "tags-list": "supported",
        "tags-n": "unsupported",
        "tags-link": "skipped",
        "catalog": "supported",
        "referrers": "unsupported",
        "delete-tag": "unsupported",
        "delete-digest-tagged": "supported",
        "delete-digest-untagged": "supported",
        "token-scopes": "skipped",
        "cleanup": "supported",
    }
    answer = check(doc, "delete-tag")["answer"]
    assert (answer["method"], answer["status"], answer["code"]) == ("DELETE", 400, "DIGEST_INVALID")
    assert check(doc, "referrers")["answer"]["status"] == 404
    assert check(doc, "blob-upload-single-post")["answer"]["status"] == 202
    assert "ignored" in check(doc, "tags-n")["summary"]
    assert check(doc, "manifest-near-limit")["observed"]["size"] == 1048576
    assert doc["family"] == {"id": "generic", "name": "unrecognised registry", "basis": "unknown"}

    # nothing the probe created is left: same tags, same manifest revisions as before
    after = storage_state(registry.root, repo), storage_state(registry.root, source)
    assert (after[0].tags, after[0].manifests) == (before[0].tags, before[0].manifests)
    assert (after[1].tags, after[1].manifests) == (before[1].tags, before[1].manifests)
    # ... except blobs, listed exactly: the blob links the probe added, per repository
    assert {i["kind"] for i in doc["leftovers"]} == {"blob"}
    assert leftovers(doc, "blob", f"{registry.host}/{repo}") == after[0].blobs - before[0].blobs
    assert leftovers(doc, "blob", f"{registry.host}/{source}") == after[1].blobs - before[1].blobs
    assert len(after[0].blobs - before[0].blobs) == 5  # layer, config, single-post, chunked, mounted

    rec = doc["recommendation"]
    assert rec["form"] == "image-manifest" and rec["basis"] == "probed"
    assert (
        rec["cacheTo"]
        == f"type=registry,ref={registry.host}/{repo}:main,mode=max,image-manifest=true,oci-mediatypes=true"
    )
    assert rec["cleanup"]["method"] == "oci-digest-delete" and rec["cleanup"]["basis"] == "probed"
    assert doc["cacheTo"]["verdict"] == "works" and doc["cacheTo"]["form"] == "image-manifest"

    root = check_junit(junit.read_text())
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [c["id"] for c in doc["checks"]] + ["cache-to"]
    suite = root.find("testsuite")
    assert suite is not None
    # Exit 0: CI must show green. tags-n, referrers, single-POST upload and tag delete are unsupported here,
    # facts about the registry that decide nothing: passed cases with the answer in system-out.
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    assert int(suite.get("skipped", "")) == sum(1 for c in doc["checks"] if c["status"] == "skipped")
    delete_tag = next(c for c in cases if c.get("name") == "delete-tag")
    assert [child.tag for child in delete_tag] == ["system-out"]
    out = delete_tag.findtext("system-out") or ""
    assert "status: unsupported" in out and "DIGEST_INVALID" in out

    text = summary.read_text()
    assert text.startswith(f"## cacheinspect probe `{registry.host}/{repo}`")
    assert "| `manifest-index` | ✅ supported |" in text
    assert "**works**" in text


def test_delete_disabled_registry_refuses_deletes_and_leftovers_are_exact(
    registry_without_delete: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = registry_without_delete
    repo = "probe/nodelete"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    # BuildKit 0.21 with oci-mediatypes=false fails its export whatever the registry does: exit 9
    code, doc = probe_json(
        [
            f"{registry.host}/{repo}",
            "--delete",
            "--no-near-limit",
            "--family",
            "distribution",
            "--cache-to",
            f"type=registry,ref={registry.host}/{repo}:main,oci-mediatypes=false",
            "--buildkit-version",
            "0.21",
        ],
        capsys,
    )
    assert code == 9
    assert doc["cacheTo"]["basis"] == "configuration" and doc["cacheTo"]["form"] is None
    result = statuses(doc)
    assert result["manifest-image"] == result["manifest-index"] == result["manifest-list"] == "supported"
    for check_id in ("delete-tag", "delete-digest-tagged", "delete-digest-untagged"):
        assert result[check_id] == "unsupported"
        answer = check(doc, check_id)["answer"]
        assert (answer["status"], answer["code"]) == (405, "UNSUPPORTED")
    assert "storage.delete.enabled" in (check(doc, "delete-digest-tagged")["hint"] or "")
    assert result["cleanup"] == "unsupported"
    after = storage_state(registry.root, repo)
    assert leftovers(doc, "tag", f"{registry.host}/{repo}") == after.tags - before.tags
    assert leftovers(doc, "manifest", f"{registry.host}/{repo}") == after.manifests - before.manifests
    # oman, oidx, dlist, migrate, deltag, deldigest; manifests: 4 forms/purposes + 2 delete tests
    assert len(after.tags - before.tags) == 6 and len(after.manifests - before.manifests) == 6
    assert check(doc, "delete-digest-tagged")["documented"][0]["sources"] == ["R7"]


def test_without_delete_the_probe_still_removes_what_it_created(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "probe/nodeleteflag"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host) as proxy:
        code, doc = probe_json(
            [f"{proxy.host}/{repo}", "--no-near-limit", "--family", "distribution"], capsys
        )
        deletes = proxy.requests("DELETE")
    assert code == 0
    # no deletion checks ran (no -deltag/-deldigest tags), but the probe's own manifests were removed by digest
    assert all("/manifests/sha256:" in entry.path for entry in deletes) and deletes
    assert check(doc, "delete-tag")["status"] == "skipped"
    assert check(doc, "cleanup")["status"] == "supported"
    after = storage_state(registry.root, repo)
    assert after.tags == before.tags
    assert leftovers(doc, "tag", f"{proxy.host}/{repo}") == set()


def test_keep_leaves_the_probe_tags_and_lists_them(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "probe/keep"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host) as proxy:
        code = run(["probe", f"{proxy.host}/{repo}", "--no-near-limit", "--family", "distribution", "--keep"])
        human = capsys.readouterr().out
        assert proxy.requests("DELETE") == []
    assert code == 0
    assert "manifest-index" in human and "left in the registry: 7 tags/manifests" in human
    after = storage_state(registry.root, repo)
    assert len(after.tags - before.tags) == 4  # oman, oidx, dlist, migrate
    with vendor_proxy(registry.host) as proxy:
        code, doc = probe_json(
            [f"{proxy.host}/{repo}", "--no-near-limit", "--family", "distribution", "--keep"], capsys
        )
    cleanup = check(doc, "cleanup")
    assert cleanup["status"] == "skipped"
    assert "--keep" in cleanup["summary"] and "storage.delete.enabled" in cleanup["summary"]
    second = storage_state(registry.root, repo)
    assert leftovers(doc, "tag", f"{proxy.host}/{repo}") == second.tags - after.tags
    assert leftovers(doc, "manifest", f"{proxy.host}/{repo}") == second.manifests - after.manifests


def test_read_only_reads_an_existing_cache_and_writes_nothing(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "probe/readonly"
    sample = next(s for s in load_samples() if s["name"] == "multistage-max")
    seed_sample(registry.host, repo, sample)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host) as proxy:
        ref = f"{proxy.host}/{repo}:oci-index"
        code, doc = probe_json(
            [
                ref,
                "--read-only",
                "--cache-to",
                f"type=registry,ref={ref},mode=max",
                "--buildkit-version",
                "0.20",
            ],
            capsys,
        )
        sent = {e.method for e in proxy.requests()}
    assert sent <= {"GET", "HEAD"}, sent
    assert storage_state(registry.root, repo) == before
    assert code == 0 and doc["mode"] == "read-only"
    existing = check(doc, "existing-cache")
    assert existing["status"] == "supported" and existing["observed"]["form"] == "oci-index"
    index = check(doc, "manifest-index")
    assert (index["status"], index["basis"]) == ("supported", "existing-cache")
    result = statuses(doc)
    assert result["manifest-image"] == result["blob-upload"] == result["delete-tag"] == "skipped"
    assert result["tags-n"] == "unsupported"  # three tags, n ignored
    assert (doc["cacheTo"]["verdict"], doc["cacheTo"]["basis"]) == ("works", "existing-cache")
    assert doc["leftovers"] == []
    # current BuildKit would rewrite that index tag as an image manifest: not probed, said so
    with vendor_proxy(registry.host) as proxy:
        ref = f"{proxy.host}/{repo}:oci-index"
        code, doc = probe_json([ref, "--read-only", "--cache-to", f"type=registry,ref={ref}"], capsys)
    assert code == 0 and doc["cacheTo"]["verdict"] == "unknown"
    assert "form-change" in {p["code"] for p in doc["cacheTo"]["problems"]}


def test_missing_repository_is_a_configuration_error(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "probe/does-not-exist"
    with vendor_proxy(registry.host) as proxy:
        code, doc = probe_json(
            [f"{proxy.host}/{repo}", "--cache-to", f"type=registry,ref={proxy.host}/{repo}:cache"], capsys
        )
        assert [e for e in proxy.requests() if e.method in WRITES] == []
    assert code == 3
    assert check(doc, "repository")["status"] == "config-error"
    assert check(doc, "repository")["answer"]["code"] == "NAME_UNKNOWN"
    assert check(doc, "manifest-image")["blockedBy"] == "blob-upload"
    assert doc["cacheTo"]["verdict"] == "config-error"
    assert storage_state(registry.root, repo) == Storage(frozenset(), frozenset(), frozenset())


USER, PASSWORD = "probe-bot", "pr0be-Secret-91c2"


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if find_registry_binary() is None:
        registry_unavailable("docker-registry is not installed (apt-get install -y docker-registry)")
    workdir = tmp_path_factory.mktemp("registry-auth")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_bytes(
        USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)) + b"\n"
    )
    try:
        instance = start_registry(
            workdir, extra_config={"auth": {"htpasswd": {"realm": "probe-test", "path": str(htpasswd)}}}
        )
    except RegistryUnavailable as exc:
        registry_unavailable(str(exc))
        raise
    yield instance
    instance.stop()


def test_credentials_refused_then_accepted(
    auth_registry: LocalRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = "probe/private"
    seed_repository(auth_registry.url, repo, auth=(USER, PASSWORD))
    for name in ("CACHEINSPECT_USERNAME", "CACHEINSPECT_PASSWORD", "DOCKER_AUTH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-docker-config")
    cache_to = f"type=registry,ref={auth_registry.host}/{repo}:cache,mode=max"
    args = [f"{auth_registry.host}/{repo}", "--no-near-limit", "--cache-to", cache_to]
    code, doc = probe_json(args, capsys)
    assert code == 4 and doc["cacheTo"]["verdict"] == "denied"
    discovery = check(doc, "discovery")
    assert discovery["status"] == "supported" and discovery["observed"]["challenge"] == "basic"
    auth = check(doc, "auth")
    assert auth["status"] == "denied" and (auth["answer"]["status"], auth["answer"]["code"]) == (
        401,
        "UNAUTHORIZED",
    )
    assert check(doc, "manifest-image")["status"] == "skipped"

    monkeypatch.setenv("CACHEINSPECT_USERNAME", USER)
    monkeypatch.setenv("CACHEINSPECT_PASSWORD", PASSWORD)
    code = run(["probe", *args, "--json", "--delete"])
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    doc = json.loads(captured.out)
    assert code == 0 and doc["cacheTo"]["verdict"] == "works"
    assert check(doc, "auth")["summary"].endswith("(basic authentication)")
    assert check(doc, "cleanup")["status"] == "supported"
