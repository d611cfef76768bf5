"""`cacheinspect probe` against emulated vendors: tests/harness/vendor_proxy.py in front of the real registry.

Each profile answers some requests the way registries.md documents (source ids in the
profile and in the ``X-Emulated-By`` header); the probe must classify each answer, explain it
with the family's documented facts, recommend the flags that work, and exit 0/9 for the user's
``--cache-to``. The family comes from ``--family`` since the proxy lives on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from inspector.cli import run
from inspector.oci.reference import parse_repository
from inspector.probe.run import ProbeOptions, run_probe
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import validate_json
from tests.harness.vendor_proxy import PROFILES as VENDORS
from tests.harness.vendor_proxy import (
    Ecr,
    Profile,
    ProxyRequest,
    RateLimit,
    VendorProxy,
    seed_repository,
    storage_state,
    vendor_proxy,
)

SCHEMA = schema("probe")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def probe(
    proxy: VendorProxy,
    repo: str,
    family: str,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    cache_to: str = "",
) -> tuple[int, dict[str, Any]]:
    args = ["probe", f"{proxy.host}/{repo}", "--family", family, "--no-near-limit", "--json", *extra]
    if cache_to:
        args += ["--cache-to", f"type=registry,ref={proxy.host}/{repo}:cache,{cache_to}"]
    code = run(args)
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    validate_json(doc, SCHEMA)
    assert doc["family"] == {"id": family, "name": doc["family"]["name"], "basis": "flag"}
    return code, doc


def get(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["id"] == check_id)
    return found


def sources(check: dict[str, Any]) -> set[str]:
    return {s for fact in check["documented"] for s in fact["sources"]}


def emulated(proxy: VendorProxy) -> set[str]:
    return {e.source for e in proxy.log if e.source}


def leftover_set(doc: dict[str, Any], kind: str) -> set[str]:
    out = set()
    for item in doc["leftovers"]:
        if item["kind"] == kind:
            ref: str = item["reference"]
            out.add(ref.rpartition(":")[2] if kind == "tag" else ref.partition("@")[2])
    return out


def test_ecr_rejects_index_and_list_and_recommends_image_manifest(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/ecr"
    seed_repository(registry.url, repo)
    with vendor_proxy(registry.host, Ecr()) as proxy:
        code, doc = probe(proxy, repo, "ecr", capsys, cache_to="mode=max,image-manifest=false")
        assert {"ecr [E1]", "ecr [E5]"} <= emulated(proxy)
        index, listing = get(doc, "manifest-index"), get(doc, "manifest-list")
        assert code == 9
        assert index["status"] == "unsupported" and index["answer"]["status"] == 400
        assert "S1" in sources(index) and "E5" in sources(index)
        assert (
            listing["status"] == "unsupported" and "Unsupported manifest type" in listing["answer"]["message"]
        )
        assert get(doc, "manifest-image")["status"] == "supported"
        assert get(doc, "manifest-migration")["status"] == "skipped"
        assert (doc["cacheTo"]["verdict"], doc["cacheTo"]["form"]) == ("will-not-work", "oci-index")
        rec = doc["recommendation"]
        assert rec["attributes"] == {"image-manifest": "true", "oci-mediatypes": "true"}
        assert (
            rec["cacheTo"]
            == f"type=registry,ref={proxy.host}/{repo}:cache,mode=max,image-manifest=true,oci-mediatypes=true"
        )
        assert "image-manifest=true" in (index["hint"] or "")
        assert rec["cleanup"]["method"] == "ecr-batch-delete-image"
        # the recommended flags, checked in turn, work: exit 0
        code, doc = probe(
            proxy, repo, "ecr", capsys, cache_to="mode=max,image-manifest=true,oci-mediatypes=true"
        )
        assert code == 0 and doc["cacheTo"]["verdict"] == "works"


def test_ecr_missing_repository_is_a_configuration_error(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/ecr-missing"
    with vendor_proxy(registry.host, Ecr(missing_repositories=(repo,))) as proxy:
        code, doc = probe(proxy, repo, "ecr", capsys, cache_to="mode=max")
        writes = [e for e in proxy.log if e.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert code == 3 and writes == []
    repository = get(doc, "repository")
    assert repository["status"] == "config-error" and repository["answer"]["code"] == "NAME_UNKNOWN"
    assert "create-repository" in (repository["hint"] or "")
    assert {"E14", "E15"} <= sources(repository)
    assert doc["cacheTo"]["verdict"] == "config-error"
    assert not (registry.root / "data" / "docker" / "registry" / "v2" / "repositories" / repo).exists()


def test_gcr_image_index_child_manifest_not_supported(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/gcr"
    seed_repository(registry.url, repo)
    with vendor_proxy(registry.host, VENDORS["gcr"]()) as proxy:
        code, doc = probe(proxy, repo, "gcr", capsys, cache_to="mode=max")
    index = get(doc, "manifest-index")
    assert index["status"] == "unsupported"
    assert (index["answer"]["status"], index["answer"]["code"]) == (400, "MANIFEST_INVALID")
    assert "Image index child manifest not supported" in index["answer"]["message"]
    assert get(doc, "manifest-list")["status"] == "unsupported"
    assert get(doc, "manifest-image")["status"] == "supported"
    assert code == 0 and doc["cacheTo"]["verdict"] == "works"
    assert doc["recommendation"]["form"] == "image-manifest"
    # The knowledge base says index caches work on gcr.io today (Artifact Registry); this registry refused
    # one live. BuildKit 0.11 writes the index form: the live answer decides, exit 9.
    assert get(doc, "manifest-index")["documented"][0]["verdict"] == "yes"
    with vendor_proxy(registry.host, VENDORS["gcr"]()) as proxy:
        code, doc = probe(proxy, repo, "gcr", capsys, "--buildkit-version", "0.11", cache_to="mode=max")
    assert code == 9 and doc["cacheTo"]["verdict"] == "will-not-work"
    assert (doc["cacheTo"]["basis"], doc["cacheTo"]["form"]) == ("probed", "oci-index")


def test_artifact_registry_untag_then_delete(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/gar"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host, VENDORS["artifact-registry"]()) as proxy:
        code, doc = probe(proxy, repo, "artifact-registry", capsys, "--delete")
        assert "artifact-registry [C4]" in emulated(proxy)
    assert code == 0
    tag = get(doc, "delete-tag")
    assert tag["status"] == "supported" and tag["observed"]["semantics"] == "untag"
    tagged = get(doc, "delete-digest-tagged")
    assert tagged["status"] == "unsupported"
    assert tagged["answer"]["code"] == "GOOGLE_MANIFEST_DANGLING_TAG"
    assert "untag first" in (tagged["hint"] or "")
    assert get(doc, "delete-digest-untagged")["status"] == "supported"
    cleanup = doc["recommendation"]["cleanup"]
    assert (cleanup["method"], cleanup["basis"]) == ("untag-then-delete", "probed")
    assert get(doc, "cleanup")["status"] == "supported"
    after = storage_state(registry.root, repo)
    assert (after.tags, after.manifests) == (before.tags, before.manifests)


def test_quay_platform_required_and_tag_centric_deletes(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/quay"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host, VENDORS["quay"]()) as proxy:
        code, doc = probe(proxy, repo, "quay", capsys, "--delete", cache_to="oci-mediatypes=false")
        visible = httpx.get(f"http://{proxy.host}/v2/{repo}/tags/list").json()["tags"]
    listing = get(doc, "manifest-list")
    assert listing["status"] == "unsupported"
    assert "'platform' is a required property" in listing["answer"]["message"]
    assert "Q3" in sources(listing)
    index = get(doc, "manifest-index")
    assert index["status"] == "unsupported" and "Could not find child manifest" in index["answer"]["message"]
    assert get(doc, "manifest-image")["status"] == "supported"
    assert code == 9 and doc["cacheTo"]["form"] == "docker-manifest-list"
    assert "legacy-form" in {p["code"] for p in doc["cacheTo"]["problems"]}
    assert get(doc, "delete-tag")["observed"]["semantics"] == "untag"
    assert get(doc, "delete-digest-tagged")["status"] == "supported"
    untagged = get(doc, "delete-digest-untagged")
    assert untagged["status"] == "unsupported" and untagged["answer"]["status"] == 404
    assert "Quay" in (untagged["hint"] or "")
    # untagged manifests cannot be deleted on Quay (it expires them): the one made untagged and the
    # one untagged by the tag delete stay, listed exactly; no tag is visible any more
    after = storage_state(registry.root, repo)
    assert leftover_set(doc, "manifest") == set(after.manifests - before.manifests)
    assert len(after.manifests - before.manifests) == 2
    assert leftover_set(doc, "tag") == set()
    assert set(visible) == before.tags


def test_harbor_404_on_index_put(registry: LocalRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    repo = "vendor/harbor"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host, VENDORS["harbor"]()) as proxy:
        code, doc = probe(proxy, repo, "harbor", capsys, "--delete", cache_to="image-manifest=false")
    for check_id in ("manifest-index", "manifest-list"):
        found = get(doc, check_id)
        assert found["status"] == "unsupported" and found["answer"]["status"] == 404
        assert "Harbor" in (found["hint"] or "")
    assert code == 9
    tag = get(doc, "delete-tag")
    assert tag["status"] == "unsupported" and (tag["answer"]["status"], tag["answer"]["code"]) == (
        400,
        "UNSUPPORTED",
    )
    assert get(doc, "delete-digest-tagged")["status"] == "supported"
    assert get(doc, "cleanup")["status"] == "supported"
    after = storage_state(registry.root, repo)
    assert (after.tags, after.manifests) == (before.tags, before.manifests)


def test_ghcr_refuses_deletes_so_cleanup_needs_the_rest_api(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/ghcr"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host, VENDORS["ghcr"]()) as proxy:
        code, doc = probe(proxy, repo, "ghcr", capsys, "--delete", cache_to="mode=max")
    assert code == 0 and doc["cacheTo"]["verdict"] == "works"
    for check_id in ("delete-tag", "delete-digest-tagged", "delete-digest-untagged"):
        found = get(doc, check_id)
        assert found["status"] == "unsupported"
        assert (found["answer"]["status"], found["answer"]["code"]) == (405, "UNSUPPORTED")
        assert "GitHub REST" in (found["hint"] or "")
    assert get(doc, "catalog")["status"] == "unsupported"
    assert get(doc, "referrers")["status"] == "unsupported"
    assert get(doc, "cleanup")["status"] == "unsupported"
    assert doc["recommendation"]["cleanup"]["method"] == "github-rest"
    after = storage_state(registry.root, repo)
    assert leftover_set(doc, "tag") == set(after.tags - before.tags)
    assert leftover_set(doc, "manifest") == set(after.manifests - before.manifests)


def test_docker_hub_digest_only_delete_and_link_pagination(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/hub"
    seed_repository(registry.url, repo)
    before = storage_state(registry.root, repo)
    with vendor_proxy(registry.host, VENDORS["docker-hub"]()) as proxy:
        code, doc = probe(proxy, repo, "docker-hub", capsys, "--delete")
        manifest_gets = [e for e in proxy.log if e.method == "GET" and "/manifests/" in e.path]
    assert code == 0 and manifest_gets == []  # a GET burns pull quota on Docker Hub [D4]
    tag = get(doc, "delete-tag")
    assert (
        tag["status"] == "unsupported" and tag["answer"]["message"] == "Only digest-based deletion is allowed"
    )
    tagged = get(doc, "delete-digest-tagged")
    assert tagged["status"] == "unsupported" and tagged["answer"]["status"] == 403
    assert get(doc, "delete-digest-untagged")["status"] == "supported"
    assert get(doc, "tags-n")["status"] == "supported"
    link = get(doc, "tags-link")
    assert link["status"] == "supported" and link["observed"]["pagesFollowed"] == 3
    assert doc["recommendation"]["cleanup"]["method"] == "docker-hub-api"
    after = storage_state(registry.root, repo)
    assert leftover_set(doc, "tag") == set(after.tags - before.tags)
    assert leftover_set(doc, "manifest") == set(after.manifests - before.manifests)


def test_false_200_on_referrers(registry: LocalRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    repo = "vendor/false-referrers"
    seed_repository(registry.url, repo)
    with vendor_proxy(registry.host, VENDORS["false-referrers"]()) as proxy:
        code, doc = probe(proxy, repo, "generic", capsys)
    referrers = get(doc, "referrers")
    assert referrers["status"] == "unsupported" and "false 200" in referrers["summary"]
    assert referrers["answer"]["status"] == 200
    assert "P2" in doc["sources"] or "[P2]" in (referrers["hint"] or "")
    assert code == 0


def test_zot_before_213_refuses_a_tag_changing_form(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "vendor/zot"
    seed_repository(registry.url, repo)
    with vendor_proxy(registry.host, VENDORS["zot-2.1.2"]()) as proxy:
        code, doc = probe(proxy, repo, "zot", capsys)
    migration = get(doc, "manifest-migration")
    assert migration["status"] == "unsupported" and "zot" in (migration["hint"] or "")
    assert "Z4" in sources(migration)
    assert code == 0


def _is_put(content_type: str | None = None) -> Any:
    def match(request: ProxyRequest) -> bool:
        return (
            request.method == "PUT"
            and request.kind == "manifests"
            and (content_type is None or request.content_type == content_type)
        )

    return match


def _probe_library(proxy: VendorProxy, repo: str, cache_to: str) -> tuple[Any, list[float]]:
    slept: list[float] = []
    with RegistryClient(ClientOptions(), sleep=slept.append) as client:
        report = run_probe(
            client,
            ProbeOptions(
                parse_repository(f"{proxy.host}/{repo}"),
                cache_to=f"type=registry,ref={proxy.host}/{repo}:cache,{cache_to}",
                near_limit=False,
            ),
            sleep=slept.append,
        )
    return report, slept


def test_429_with_retry_after_is_honoured(registry: LocalRegistry) -> None:
    repo = "vendor/ratelimited"
    seed_repository(registry.url, repo)
    with vendor_proxy(registry.host, RateLimit(_is_put(), times=1, retry_after="2")) as proxy:
        report, slept = _probe_library(proxy, repo, "mode=max")
        assert "rate-limit [D4]" in {e.source for e in proxy.log}
    image = report.check("manifest-image")
    assert image is not None and image.status == "supported" and image.retries == 1
    assert slept.count(2.0) == 1
    assert report.exit_code == 0


def test_429_that_never_ends_is_inconclusive(registry: LocalRegistry) -> None:
    repo = "vendor/ratelimited-forever"
    seed_repository(registry.url, repo)
    profile: Profile = RateLimit(_is_put(OCI_INDEX), times=1000, retry_after="1")
    with vendor_proxy(registry.host, profile) as proxy:
        report, slept = _probe_library(proxy, repo, "image-manifest=false")
        refused = [e for e in proxy.log if e.status == 429]
    index = report.check("manifest-index")
    # the client retries an idempotent PUT 4 times (ClientOptions.retries), each after Retry-After
    assert index is not None and index.status == "inconclusive" and index.retries == 4
    assert len(refused) == 5 and slept.count(1.0) == 4
    assert report.cache_to is not None and report.cache_to.verdict == "inconclusive"
    assert report.exit_code == 6
