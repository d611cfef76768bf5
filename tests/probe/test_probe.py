"""Probe pieces without a registry: classification (registries.md §5.3), content, token scopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from inspector.cache.config import parse_cache_config
from inspector.cache.fetch import IMPORT_LIMIT, find_cache_config, form_of
from inspector.errors import (
    AuthError,
    CacheInspectError,
    InvalidContent,
    TransportError,
    UnknownFamily,
    registry_error_from_response,
)
from inspector.oci.models import parse_manifest
from inspector.oci.reference import parse_repository
from inspector.probe.checks import SEQUENCE
from inspector.probe.classify import Op, classify
from inspector.probe.content import PROBE_ANNOTATION, make_content
from inspector.probe.model import CHECKS, ProbeOptions
from inspector.probe.run import run_probe
from inspector.registry.client import ClientOptions, RegistryClient


def _error(status: int, code: str = "", message: str = "", body: bytes | None = None) -> CacheInspectError:
    if body is None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode() if code else b""
    return registry_error_from_response(
        status=status, method="PUT", url="https://r.example/v2/a/manifests/t", body=body, what="push"
    )


# (error, operation) -> status, one row per line of the §5.3 table and of probe_classify's table
CLASSIFICATION: list[tuple[CacheInspectError, Op, str]] = [
    (TransportError("timed out"), "manifest-put", "inconclusive"),
    (_error(429, "TOOMANYREQUESTS"), "manifest-put", "inconclusive"),
    (_error(503), "blob-upload", "inconclusive"),
    (_error(404, "BLOB_UPLOAD_UNKNOWN"), "blob-upload", "inconclusive"),
    (AuthError("token refused"), "blob-upload", "denied"),
    (_error(401, "UNAUTHORIZED"), "manifest-put", "denied"),
    (_error(403, "DENIED"), "delete-digest", "denied"),
    (_error(401, "UNAUTHORIZED"), "catalog", "unsupported"),
    (AuthError("no catalog scope"), "catalog", "unsupported"),
    (
        _error(404, "NAME_UNKNOWN", "The repository with name 'x' does not exist"),
        "repository",
        "config-error",
    ),
    (_error(400, "TAG_IMMUTABLE"), "manifest-put", "config-error"),
    (_error(400, "DENIED", "storage quota exceeded"), "manifest-put", "config-error"),
    (_error(405, "UNSUPPORTED", "The operation is unsupported."), "delete-digest", "unsupported"),
    (_error(405, "DENIED"), "delete-digest", "unsupported"),
    (_error(404, body=b"404 page not found"), "referrers", "unsupported"),
    (_error(404, "MANIFEST_UNKNOWN"), "manifest-read", "inconclusive"),
    (_error(404, "NOT_FOUND"), "manifest-put", "unsupported"),
    (
        _error(400, "MANIFEST_INVALID", "Image index child manifest not supported"),
        "manifest-put",
        "unsupported",
    ),
    (_error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"), "manifest-put", "unsupported"),
    (
        _error(400, "GOOGLE_MANIFEST_DANGLING_TAG", "Manifest is still referenced by tag"),
        "delete-digest",
        "unsupported",
    ),
    (_error(400, "DIGEST_INVALID"), "delete-tag", "unsupported"),
    (_error(400), "manifest-put", "unsupported"),
    (_error(415, "MANIFEST_INVALID"), "manifest-put", "unsupported"),
    (InvalidContent("not JSON"), "tags", "unsupported"),
]


@pytest.mark.parametrize(("error", "op", "status"), CLASSIFICATION)
def test_classification(error: CacheInspectError, op: Op, status: str) -> None:
    assert classify(error, op).status == status


def test_harbor_404_needs_confirmed_blobs() -> None:
    assert classify(_error(404, "NOT_FOUND"), "manifest-put", blobs_confirmed=False).status == "inconclusive"


def test_answer_keeps_status_code_and_message() -> None:
    outcome = classify(_error(400, "MANIFEST_INVALID", "bad child"), "manifest-put")
    assert outcome.answer is not None
    assert (outcome.answer.status, outcome.answer.code, outcome.answer.message) == (
        400,
        "MANIFEST_INVALID",
        "bad child",
    )
    assert outcome.answer.path == "/v2/a/manifests/t"


NOW = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)


def test_documents_are_caches_in_each_form() -> None:
    content = make_content("abc123", NOW)
    config = parse_cache_config(content.config.data)
    assert config.layers[0].blob == content.layer.digest
    for form in ("image-manifest", "oci-index", "docker-manifest-list"):
        doc = content.document(form)
        parsed = parse_manifest(doc.raw, content_type=doc.media_type)
        assert form_of(parsed) == form
        assert parsed.media_type == doc.media_type
        found = find_cache_config(parsed)
        assert found is not None
        assert found[0].digest == content.config.digest
        assert [d.digest for d in found[1]] == [content.layer.digest]
        assert found[1][0].annotations[PROBE_ANNOTATION] == f"abc123/{form}"
        assert doc.digest.matches(doc.raw)


def test_content_is_unique_per_run_and_purpose_but_the_layer_is_shared() -> None:
    a, b = make_content("run-a", NOW), make_content("run-b", NOW)
    assert a.layer.digest == b.layer.digest
    assert a.config.digest != b.config.digest
    assert a.document("image-manifest").digest != b.document("image-manifest").digest
    assert a.document("image-manifest", "x").digest != a.document("image-manifest", "y").digest


def test_near_limit_manifest_is_exactly_the_import_limit() -> None:
    doc = make_content("abc123", NOW).near_limit()
    assert doc.size == IMPORT_LIMIT
    parsed = parse_manifest(doc.raw)
    assert form_of(parsed) == "image-manifest"
    assert len(parsed.layers) > 2000


def test_recommendation_carries_valid_attributes_only() -> None:
    from inspector.probe.run import offline_report

    report = offline_report(
        "ghcr.io/a/b",
        cache_to="type=registry,ref=ghcr.io/a/b:c,compression=zstd,compression-level=x,ignore-error=true,foo=bar",
    )
    rec = report.recommendation
    assert (
        rec.cache_to
        == "type=registry,ref=ghcr.io/a/b:c,mode=max,image-manifest=true,oci-mediatypes=true,compression=zstd"
    )
    assert any("ignore-error" in note for note in rec.notes)
    assert any("likely" in note for note in rec.notes)
    assert report.cache_to is not None and report.cache_to.verdict == "will-not-work"
    assert {"invalid-compression-level", "ignore-error-hides"} <= {p.code for p in report.cache_to.problems}


def test_every_check_runs_once_after_everything_it_requires() -> None:
    """The sequence covers each check the report lists exactly once, and a requirement always ran before the check
    that names it (a check reading a requirement that has not run yet would be skipped as "missing")."""
    order = [check.id for check in SEQUENCE]
    assert sorted(order) == sorted(spec.id for spec in CHECKS) and len(set(order)) == len(order)
    for position, check in enumerate(SEQUENCE):
        assert set(check.requires) <= set(order[:position]), check.id
        assert set(check.why) <= set(check.requires), check.id


def test_an_unknown_family_is_a_usage_error_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")

    options = ProbeOptions(repository=parse_repository("r.example/team/app"), family="nope")
    with (
        RegistryClient(ClientOptions(), transport=httpx.MockTransport(handler)) as client,
        pytest.raises(UnknownFamily, match="--family 'nope'") as caught,
    ):
        run_probe(client, options)
    assert caught.value.exit_code == 2


def test_a_write_the_client_does_not_repeat_is_retried_by_the_probe_on_its_schedule() -> None:
    """An upload POST answering 503: the client never repeats a POST (only after a 429), so the probe does,
    ``--retries`` 3 times, waiting 0.5, 1 and 2 s (0.5 s doubled each time, no jitter, under ``--max-wait`` 30),
    then gives up; four POSTs in all, and the check counts its three retries."""
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, headers={"Docker-Distribution-Api-Version": "registry/2.0"})
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"name": "team/app", "tags": []})
        if path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["team/app"]})
        if request.method == "HEAD" and "/blobs/" in path:
            return httpx.Response(404)
        if request.method == "POST":
            posts.append(request)
            return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "later"}]})
        raise AssertionError(f"unexpected {request.method} {request.url}")

    slept: list[float] = []
    options = ProbeOptions(repository=parse_repository("r.example/team/app"), near_limit=False)
    with RegistryClient(
        ClientOptions(), transport=httpx.MockTransport(handler), sleep=slept.append
    ) as client:
        report = run_probe(client, options, sleep=slept.append)
    upload = report.check("blob-upload")
    assert upload is not None and upload.retries == 3 and upload.status != "supported"
    assert slept == [0.5, 1.0, 2.0] and len(posts) == 4
