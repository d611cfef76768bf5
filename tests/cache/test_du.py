"""``du`` numbers on hand-made manifests, and its request budget against a mock registry."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from inspector.cache.du import SkippedTag, compute_usage, disk_usage, usage_to_json
from inspector.oci import mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import ManifestDocument, parse_manifest
from inspector.oci.reference import parse_repository
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.paths import schema
from tests.harness.support import validate_json

SCHEMA = schema("du")
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob(name: str) -> Digest:
    return sha256_digest(f"test blob {name}")


def descriptor(name: str, size: int, media_type: str = LAYER) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": blob(name), "size": size}


def cache(config: tuple[str, int], *layers: tuple[str, int]) -> ManifestDocument:
    """A cache in the image-manifest form."""
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": descriptor(*config, media_type=mediatypes.BUILDKIT_CACHE_CONFIG),
            "layers": [descriptor(*layer) for layer in layers],
        }
    ).encode()
    return parse_manifest(raw)


def cache_index(config: tuple[str, int], *layers: tuple[str, int]) -> ManifestDocument:
    """A cache in the OCI index form: layer blobs and the config are all entries of ``manifests``."""
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [descriptor(*layer) for layer in layers]
            + [descriptor(*config, media_type=mediatypes.BUILDKIT_CACHE_CONFIG)],
        }
    ).encode()
    return parse_manifest(raw)


def image(*layers: tuple[str, int]) -> ManifestDocument:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": descriptor("image config", 300, media_type=mediatypes.OCI_IMAGE_CONFIG),
            "layers": [descriptor(*layer) for layer in layers],
        }
    ).encode()
    return parse_manifest(raw)


def test_tags_on_one_digest_are_one_entry_whose_bytes_belong_to_neither_tag_alone() -> None:
    main = cache(("config main", 10), ("base", 1000), ("main step", 200))
    dev = cache(("config dev", 20), ("base", 1000), ("dev step", 30))
    usage = compute_usage("r.test/app", {"main": main, "latest": main, "dev": dev})
    assert [entry.tags for entry in usage.entries] == [("latest", "main"), ("dev",)]
    grouped, alone = usage.entries
    assert grouped.digest == main.digest
    assert (grouped.size, grouped.unique_size, grouped.shared_size) == (1210, 210, 1000)
    assert (alone.size, alone.unique_size, alone.shared_size) == (1050, 50, 1000)
    assert usage.cache_tags == 3
    assert usage.total_size == 10 + 20 + 1000 + 200 + 30
    assert usage.manifest_size == main.size + dev.size  # the shared manifest counted once
    json_doc = usage_to_json(usage)
    validate_json(json_doc, SCHEMA)
    assert json_doc["manifests"][0]["tags"] == ["latest", "main"]


def test_a_blob_shared_by_three_tags_is_unique_to_none_and_counted_once_in_the_total() -> None:
    documents = {
        tag: cache((f"config {tag}", 7), ("shared", 5000), (f"own {tag}", size))
        for tag, size in (("a", 100), ("b", 300), ("c", 200))
    }
    usage = compute_usage("r.test/app", documents)
    assert [e.tags for e in usage.entries] == [("b",), ("c",), ("a",)]  # sorted by unique bytes
    assert [e.unique_size for e in usage.entries] == [307, 207, 107]
    assert all(e.shared_size == 5000 for e in usage.entries)
    assert all(e.unique_blobs == 2 for e in usage.entries)
    assert usage.total_size == 5000 + 100 + 300 + 200 + 3 * 7
    assert len(usage.blob_sizes) == 7
    assert usage.referrers[blob("shared")] == frozenset(d.digest for d in documents.values())
    # Deleting two of them frees their own blobs; the shared one stays for the third.
    assert usage.freed_by([documents["a"].digest, documents["b"].digest]) == 107 + 307
    assert usage.freed_by(d.digest for d in documents.values()) == usage.total_size


def test_non_cache_tags_are_listed_and_left_out_of_every_number() -> None:
    app = image(("shared", 5000), ("app", 900))
    usage = compute_usage("r.test/app", {"cache": cache(("cfg", 1), ("shared", 5000)), "app": app})
    assert usage.non_cache_tags == ("app",)
    assert [e.tags for e in usage.entries] == [("cache",)]
    # The blob shared with the image still counts as unique: only cache manifests are considered.
    assert usage.entries[0].unique_size == 5001
    assert usage.total_size == 5001 and usage.tags_matched == 2 and usage.cache_tags == 1
    validate_json(usage_to_json(usage), SCHEMA)


def test_the_config_blob_counts_and_a_repeated_layer_counts_once() -> None:
    # copy-link caches list one blob twice; the index form lists the config among the layers.
    indexed = cache_index(("cfg", 50), ("one", 10), ("two", 20), ("one", 10))
    usage = compute_usage("r.test/app", {"latest": indexed})
    (entry,) = usage.entries
    assert entry.form == "oci-index"
    assert [layer.digest for layer in entry.layers] == [blob("one"), blob("two")]
    assert (entry.layer_size, entry.size, entry.unique_size) == (30, 80, 80)
    assert entry.config.digest == blob("cfg")
    doc = usage_to_json(usage)
    assert doc["manifests"][0]["layers"] == 2 and doc["manifests"][0]["config"]["size"] == 50
    # one cache alone: every blob is its own, so all 80 bytes are freed by deleting it
    assert doc["total"] == {
        "blobs": 3,
        "size": 80,
        "uniqueSize": 80,
        "manifests": 1,
        "manifestSize": indexed.size,
    }


def test_two_forms_of_one_config_share_the_config_blob() -> None:
    layers = (("l1", 10), ("l2", 20))
    usage = compute_usage(
        "r.test/app",
        {"m": cache(("cfg", 50), *layers), "i": cache_index(("cfg", 50), *layers)},
    )
    assert len(usage.entries) == 2
    assert all(e.unique_size == 0 and e.shared_size == 80 for e in usage.entries)
    assert usage.total_size == 80


class FakeRegistry:
    """A distribution-like registry: paginated tag list, manifest HEAD/GET; records every request."""

    def __init__(self, tags: dict[str, ManifestDocument], page: int = 2) -> None:
        self.tags = tags
        self.page = page
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if path.endswith("/tags/list"):
            names = sorted(self.tags)
            last = request.url.params.get("last")
            start = names.index(last) + 1 if last else 0
            chunk = names[start : start + self.page]
            headers = {}
            if start + self.page < len(names):
                headers["Link"] = f'</v2/team/app/tags/list?n={self.page}&last={chunk[-1]}>; rel="next"'
            return httpx.Response(200, json={"name": "team/app", "tags": chunk}, headers=headers)
        reference = path.rsplit("/manifests/", 1)[1]
        by_digest = {d.digest: d for d in self.tags.values()}
        document = self.tags.get(reference) or by_digest.get(Digest(reference))
        if document is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})
        headers = {"Docker-Content-Digest": document.digest, "Content-Type": document.media_type}
        if request.method == "HEAD":
            return httpx.Response(200, headers={**headers, "Content-Length": str(document.size)})
        return httpx.Response(200, content=document.raw, headers=headers)


@pytest.mark.parametrize("registry_host", ["r.test", "docker.io"])
def test_disk_usage_makes_the_fewest_requests_and_no_blob_request(registry_host: str) -> None:
    shared = cache(("cfg 1", 5), ("base", 100), ("one", 10))
    tags = {
        "main": shared,
        "latest": shared,
        "pr-1": cache(("cfg 2", 6), ("base", 100), ("two", 20)),
        "pr-2": cache_index(("cfg 3", 7), ("base", 100), ("three", 30)),
        "app": image(("base", 100)),
    }
    registry = FakeRegistry(tags, page=2)
    ticks: list[tuple[int, int]] = []
    with RegistryClient(ClientOptions(concurrency=3), transport=httpx.MockTransport(registry)) as client:
        usage = disk_usage(
            client,
            parse_repository(f"{registry_host}/team/app"),
            page_size=2,
            on_progress=lambda d, t: ticks.append((d, t)),
        )
        assert client.request_count == len(registry.requests)
    methods = Counter(method for method, _ in registry.requests)
    gets = [
        path.rsplit("/", 1)[1]
        for method, path in registry.requests
        if method == "GET" and "/manifests/" in path
    ]
    if registry_host == "docker.io":
        # GETs count as pulls there: a HEAD per tag, then one GET per distinct digest.
        assert methods == {"GET": 3 + 4, "HEAD": 5}
        assert sorted(gets) == sorted({d.digest for d in tags.values()})
        assert ticks[-1] == (9, 9)
    else:
        # Elsewhere one GET by tag per tag: the body is the digest's proof, a HEAD would be a wasted round trip.
        assert methods == {"GET": 3 + 5}
        assert sorted(gets) == sorted(tags)
        assert ticks[-1] == (5, 5)
    assert not any("/blobs/" in path for _, path in registry.requests)
    assert usage.tags_listed == 5 and usage.tags_matched == 5
    assert usage.non_cache_tags == ("app",)
    assert [e.tags for e in usage.entries] == [("pr-2",), ("pr-1",), ("latest", "main")]
    assert usage.total_size == 5 + 6 + 7 + 100 + 10 + 20 + 30


def test_tag_pattern_is_an_fnmatch_glob_that_selects_rows() -> None:
    tags = {
        "pr-1": cache(("c1", 1), ("l1", 10)),
        "pr-22": cache(("c2", 2), ("l2", 20)),
        "main": cache(("c3", 3), ("l3", 30)),
        "PR-3": cache(("c4", 4), ("l4", 40)),
    }
    registry = FakeRegistry(tags, page=10)
    with RegistryClient(transport=httpx.MockTransport(registry)) as client:
        usage = disk_usage(client, parse_repository("r.test/team/app"), tag_pattern="pr-?")
    assert [e.tags for e in usage.entries] == [("pr-1",)]  # not pr-22 (?), not PR-3 (case-sensitive)
    assert (usage.tags_listed, usage.tags_matched, usage.tag_pattern) == (4, 1, "pr-?")
    # every tag is read (1 tag page + 4 GETs by tag): the others decide what is unique to the rows
    assert Counter(m for m, _ in registry.requests) == {"GET": 5}
    with RegistryClient(transport=httpx.MockTransport(FakeRegistry(tags))) as client:
        usage = disk_usage(client, parse_repository("r.test/team/app"), tag_pattern="pr-*")
    assert sorted(t for e in usage.entries for t in e.tags) == ["pr-1", "pr-22"]


def test_unique_bytes_count_tags_outside_the_pattern() -> None:
    """Regression: with a pattern, blobs shared with tags outside it were counted as unique.

    pr-1 = config c1 (1) + a (100) + b (1000); pr-2 = c2 (2) + a (100) + d (10); main = c3 (3) + b (1000).
    By hand: pr-1's only blob used by no other cache is c1 -> unique 1, shared 1100 (a with pr-2, b with main);
    pr-2's are c2 and d -> unique 12, shared 100. Deleting both frees c1, c2, a, d = 1 + 2 + 100 + 10 = 113
    (b stays for main); the two rows hold c1, c2, a, b, d = 1113 bytes.
    """
    documents = {
        "pr-1": cache(("c1", 1), ("a", 100), ("b", 1000)),
        "pr-2": cache(("c2", 2), ("a", 100), ("d", 10)),
        "main": cache(("c3", 3), ("b", 1000)),
    }
    usage = compute_usage("r.test/app", documents, tag_pattern="pr-*")
    rows = {e.tags: (e.unique_size, e.shared_size) for e in usage.entries}
    assert rows == {("pr-1",): (1, 1100), ("pr-2",): (12, 100)}
    assert (usage.total_size, usage.unique_size, usage.tags_matched) == (1113, 113, 2)
    doc = usage_to_json(usage)
    validate_json(doc, SCHEMA)
    assert doc["total"] == {
        "blobs": 5,
        "size": 1113,
        "uniqueSize": 113,
        "manifests": 2,
        "manifestSize": documents["pr-1"].size + documents["pr-2"].size,
    }


def test_a_tag_deleted_after_listing_is_reported_not_fatal() -> None:
    tags = {"keep": cache(("c1", 1), ("l1", 10)), "gone": cache(("c2", 2), ("l2", 20))}
    registry = FakeRegistry(tags)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/manifests/gone"):
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "gone"}]})
        return registry(request)

    with RegistryClient(transport=httpx.MockTransport(handler)) as client:
        usage = disk_usage(client, parse_repository("r.test/team/app"))
    assert [e.tags for e in usage.entries] == [("keep",)]
    assert [s.tag for s in usage.skipped_tags] == ["gone"] and "MANIFEST_UNKNOWN" in usage.skipped_tags[
        0
    ].reason
    doc = usage_to_json(usage)
    validate_json(doc, SCHEMA)
    assert doc["tags"]["skipped"][0]["tag"] == "gone" and doc["tags"]["matched"] == 2


def test_compute_usage_counts_skipped_tags_as_matched() -> None:
    usage = compute_usage(
        "r.test/app", {"a": cache(("c", 1))}, tags_listed=9, skipped=[SkippedTag("b", "404")]
    )
    assert (usage.tags_listed, usage.tags_matched, usage.cache_tags) == (9, 2, 1)


@pytest.mark.parametrize("size", [0, 1])
def test_an_empty_cache_has_only_its_config(size: int) -> None:
    usage = compute_usage("r.test/app", {"t": cache(("c", size))})
    (entry,) = usage.entries
    assert (entry.size, entry.unique_size, len(entry.layers)) == (size, size, 0)
