"""`cacheinspect du` and `diff` end to end against a real docker-registry seeded by oras-py.

Expected numbers are computed here by hand: manifests fetched with plain httpx,
descriptor sizes summed with sets and dicts, blob sizes read from the
registry's own storage directory. No inspector code computes an expectation.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from inspector.cache.du import disk_usage
from inspector.cli import run
from inspector.oci.reference import parse_repository
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.paths import TESTDATA, schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import validate_json

DU_SCHEMA = schema("du")
DIFF_SCHEMA = schema("diff")
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
REPO = "du/app"
# new tag -> (testdata layout, its tag). "main" is a second tag on min's manifest.
TAGS = {
    "max-manifest": ("multistage-max", "image-manifest"),
    "max-index": ("multistage-max", "oci-index"),
    "max-list": ("multistage-max", "docker-manifest-list"),
    "min": ("multistage-min", "latest"),
    "main": ("multistage-min", "latest"),
    "three": ("three-stages", "latest"),
    "link": ("copy-link", "latest"),
    "zstd": ("mixed-compression", "latest"),
    "app": ("not-a-cache", "image"),
    "app-inline": ("not-a-cache", "inline-cache"),
}
FORMS = {
    "application/vnd.oci.image.manifest.v1+json": "image-manifest",
    "application/vnd.oci.image.index.v1+json": "oci-index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "docker-manifest-list",
}


def push_tags(host: str, repository: str, tags: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Like ``seed_sample``, but several layouts into one repository under new tag names; tag -> digest."""
    import oras.container
    import oras.provider

    registry = oras.provider.Registry(hostname=host, insecure=True)
    container = oras.container.Container(f"{host}/{repository}:seed")
    for layout in sorted({layout for layout, _ in tags.values()}):
        for path in sorted((TESTDATA / "layouts" / layout / "blobs" / "sha256").glob("*")):
            layer = {"digest": f"sha256:{path.name}", "size": path.stat().st_size, "mediaType": "x/blob"}
            response = registry.upload_blob(str(path), container, layer)
            assert response.status_code in (200, 201, 202), response.text[:200]
    pushed: dict[str, str] = {}
    for new_tag, (layout, tag) in tags.items():
        index = json.loads((TESTDATA / "layouts" / layout / "index.json").read_bytes())
        entry = next(
            e for e in index["manifests"] if e["annotations"]["org.opencontainers.image.ref.name"] == tag
        )
        raw = (
            TESTDATA / "layouts" / layout / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]
        ).read_bytes()
        response = registry.do_request(
            f"http://{host}/v2/{repository}/manifests/{new_tag}",
            "PUT",
            data=raw,
            headers={"Content-Type": entry["mediaType"]},
        )
        assert response.status_code == 201, response.text[:300]
        pushed[new_tag] = response.headers["Docker-Content-Digest"]
    return pushed


@pytest.fixture(scope="module")
def du_repo(registry: LocalRegistry) -> dict[str, str]:
    return push_tags(registry.host, REPO, TAGS)


def newest_createdat(layers: list[dict[str, Any]]) -> str | None:
    """The newest ``buildkit/createdat`` of the layer descriptors, as written. Every time in testdata is UTC
    ("Z") with up to 9 fraction digits (Go trims trailing zeros), so the instant sorts by its date-time and
    its fraction padded to 9 digits."""

    def instant(text: str) -> tuple[str, str]:
        assert text.endswith("Z"), text
        whole, _, fraction = text[:-1].partition(".")
        return whole, fraction.ljust(9, "0")

    times = [t for layer in layers if (t := layer.get("annotations", {}).get("buildkit/createdat"))]
    return max(times, key=instant) if times else None


def by_hand(host: str, repository: str, tags: list[str], pattern: str = "*") -> dict[str, Any]:
    """The du numbers, from manifests fetched with httpx and descriptor sizes added up here.

    ``tags`` are all the repository's tags (uniqueness is relative to all of them); ``pattern`` picks the rows.
    """
    caches: dict[str, dict[str, Any]] = {}
    tag_digest: dict[str, str] = {}
    non_cache = []
    for tag in tags:
        response = httpx.get(f"http://{host}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT})
        response.raise_for_status()
        digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        doc = response.json()
        entries = doc.get("manifests", [])
        if "manifests" in doc:
            configs = [e for e in entries if e["mediaType"] == CACHE_CONFIG]
            layers = [e for e in entries if e["mediaType"] != CACHE_CONFIG]
        else:
            configs = [doc["config"]] if doc["config"]["mediaType"] == CACHE_CONFIG else []
            layers = doc["layers"]
        if not configs:
            non_cache.append(tag)
            continue
        tag_digest[tag] = digest
        caches[digest] = {
            "mediaType": doc["mediaType"],
            "manifestSize": len(response.content),
            "config": configs[0],
            "layers": {layer["digest"]: layer["size"] for layer in layers},
            "created": newest_createdat(layers),
        }
    blob_sizes: dict[str, int] = {}
    users: dict[str, set[str]] = {}
    for digest, cache in caches.items():
        blobs = {**cache["layers"], cache["config"]["digest"]: cache["config"]["size"]}
        cache["blobs"] = blobs
        for blob, size in blobs.items():
            blob_sizes[blob] = size
            users.setdefault(blob, set()).add(digest)
    rows = {d for t, d in tag_digest.items() if fnmatchcase(t, pattern)}
    manifests = {}
    for digest, cache in caches.items():
        if digest not in rows:
            continue
        blobs = cache["blobs"]
        unique = sum(size for blob, size in blobs.items() if users[blob] == {digest})
        manifests[digest] = {
            "digest": digest,
            "tags": sorted(t for t, d in tag_digest.items() if d == digest),
            "mediaType": cache["mediaType"],
            "form": FORMS[cache["mediaType"]],
            "manifestSize": cache["manifestSize"],
            "config": {"digest": cache["config"]["digest"], "size": cache["config"]["size"]},
            "layers": len(cache["layers"]),
            "layerSize": sum(cache["layers"].values()),
            "size": sum(blobs.values()),
            "uniqueSize": unique,
            "uniqueBlobs": sum(1 for blob in blobs if users[blob] == {digest}),
            "sharedSize": sum(blobs.values()) - unique,
            "createdAt": cache["created"],
        }
    listed_blobs = {blob: size for d in rows for blob, size in caches[d]["blobs"].items()}
    return {
        "manifests": manifests,
        "nonCache": sorted(t for t in non_cache if fnmatchcase(t, pattern)),
        "blobSizes": listed_blobs,
        "total": {
            "blobs": len(listed_blobs),
            "size": sum(listed_blobs.values()),
            # freed by deleting every row: blobs whose users are all rows
            "uniqueSize": sum(size for blob, size in listed_blobs.items() if users[blob] <= rows),
            "manifests": len(rows),
            "manifestSize": sum(caches[d]["manifestSize"] for d in rows),
        },
    }


def stored_size(registry: LocalRegistry, digest: str) -> int:
    """Size of a blob as the registry stores it on disk (filesystem driver layout)."""
    hex_digest = digest.split(":", 1)[1]
    storage = registry.root / "data" / "docker" / "registry" / "v2"
    link = storage / "repositories" / REPO / "_layers" / "sha256" / hex_digest / "link"
    assert link.read_text() == digest, f"{digest} is not linked into {REPO}"
    return (storage / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data").stat().st_size


def du_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert run(["du", *args, "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    validate_json(doc, DU_SCHEMA)
    return doc


def test_du_numbers_match_a_computation_by_hand_and_the_registry_storage(
    registry: LocalRegistry, du_repo: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = du_json(capsys, f"{registry.host}/{REPO}")
    expected = by_hand(registry.host, REPO, sorted(TAGS))
    assert doc["repository"] == f"{registry.host}/{REPO}" and doc["tagPattern"] is None
    assert doc["tags"] == {
        "listed": 10,
        "matched": 10,
        "cache": 8,
        "nonCache": ["app", "app-inline"],
        "skipped": [],
    }
    assert expected["nonCache"] == ["app", "app-inline"]
    assert len(doc["manifests"]) == 7 == len(expected["manifests"])
    for entry in doc["manifests"]:
        assert entry == expected["manifests"][entry["digest"]]
    assert [e["uniqueSize"] for e in doc["manifests"]] == sorted(
        (e["uniqueSize"] for e in doc["manifests"]), reverse=True
    )
    # Tags on one digest are one entry: min and main.
    (grouped,) = [e for e in doc["manifests"] if len(e["tags"]) > 1]
    assert grouped["tags"] == ["main", "min"] and grouped["digest"] == du_repo["min"] == du_repo["main"]
    # The three forms of multistage-max wrap one config and the same layers: nothing unique to any of them.
    max_entries = [e for e in doc["manifests"] if e["tags"][0].startswith("max-")]
    assert len(max_entries) == 3 and all(e["uniqueSize"] == 0 for e in max_entries)
    assert len({e["config"]["digest"] for e in max_entries}) == 1
    assert doc["total"] == expected["total"]
    # The total is what the registry really stores for those blobs, each once.
    assert doc["total"]["size"] == sum(stored_size(registry, blob) for blob in expected["blobSizes"])
    assert doc["total"]["manifestSize"] == sum(stored_size(registry, d) for d in expected["manifests"])
    assert doc["configCounted"] is True


def test_du_tag_pattern(
    registry: LocalRegistry, du_repo: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = du_json(capsys, f"{registry.host}/{REPO}", "--tag-pattern", "max-*")
    expected = by_hand(registry.host, REPO, sorted(TAGS), "max-*")
    assert doc["tagPattern"] == "max-*"
    assert doc["tags"]["listed"] == 10 and doc["tags"]["matched"] == 3 and doc["tags"]["nonCache"] == []
    assert {e["digest"]: e for e in doc["manifests"]} == expected["manifests"]
    assert doc["total"] == expected["total"]
    # Alone among themselves the three still share everything but the documents.
    assert all(e["sharedSize"] == e["size"] for e in doc["manifests"])
    doc = du_json(capsys, f"{registry.host}/{REPO}", "--tag-pattern", "app*")
    assert doc["manifests"] == [] and doc["tags"]["nonCache"] == ["app", "app-inline"]
    assert doc["total"] == {"blobs": 0, "size": 0, "uniqueSize": 0, "manifests": 0, "manifestSize": 0}


def push_blob(host: str, repository: str, content: bytes) -> dict[str, Any]:
    """Upload ``content`` with plain httpx (POST + PUT); its OCI descriptor."""
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    response = httpx.post(f"http://{host}/v2/{repository}/blobs/uploads/")
    assert response.status_code == 202, response.text
    location = httpx.URL(urljoin(f"http://{host}/", response.headers["Location"])).copy_merge_params(
        {"digest": digest}
    )
    assert httpx.put(location, content=content).status_code == 201
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest,
        "size": len(content),
    }


def test_du_tag_pattern_counts_blobs_shared_with_tags_outside_it(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression (issue 13.8): with --tag-pattern, blobs shared with tags outside it were counted as unique.

    Blob sizes chosen here: a 1,000, b 20,000, d 300 bytes; configs c1, c2, c3 are 41 bytes each
    ('{"note": "du pattern test cache N"}' padded below). pr-1 = c1 + a + b; pr-2 = c2 + a + d; main = c3 + b.
    By hand, for the pattern pr-*: pr-1's blobs used by no other cache: c1 only (a is pr-2's too, b is
    main's) -> unique 41, shared 21,000. pr-2's: c2 and d -> unique 341, shared 1,000 (a). The rows hold
    c1, c2, a, b, d = 41 + 41 + 1,000 + 20,000 + 300 = 21,382 bytes; deleting both frees all but b = 1,382.
    Reading only pr-* (the bug) would call b unique to pr-1: 21,041.
    """
    repo = "du/pattern"
    a, b, d = (
        push_blob(registry.host, repo, bytes([n]) * size) for n, size in ((1, 1000), (2, 20000), (3, 300))
    )
    configs = []
    for n in (1, 2, 3):
        body = json.dumps({"note": f"du pattern test cache {n}"}).encode().ljust(41)
        configs.append({**push_blob(registry.host, repo, body), "mediaType": CACHE_CONFIG})
    assert [c["size"] for c in configs] == [41, 41, 41]
    layout = {"pr-1": (configs[0], [a, b]), "pr-2": (configs[1], [a, d]), "main": (configs[2], [b])}
    sizes = {}
    for tag, (config, layers) in layout.items():
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": layers,
            }
        ).encode()
        response = httpx.put(
            f"http://{registry.host}/v2/{repo}/manifests/{tag}",
            content=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert response.status_code == 201, response.text
        sizes[tag] = len(body)

    doc = du_json(capsys, f"{registry.host}/{repo}", "--tag-pattern", "pr-*")
    rows = {tuple(e["tags"]): (e["size"], e["uniqueSize"], e["sharedSize"]) for e in doc["manifests"]}
    assert rows == {("pr-1",): (21041, 41, 21000), ("pr-2",): (1341, 341, 1000)}
    assert doc["tags"]["listed"] == 3 and doc["tags"]["matched"] == 2
    assert doc["total"] == {
        "blobs": 5,
        "size": 21382,
        "uniqueSize": 1382,
        "manifests": 2,
        "manifestSize": sizes["pr-1"] + sizes["pr-2"],
    }
    # without a pattern, main is a row too and nothing is unique to it but its config
    doc = du_json(capsys, f"{registry.host}/{repo}")
    assert {tuple(e["tags"]): e["uniqueSize"] for e in doc["manifests"]} == {
        ("pr-1",): 41,
        ("pr-2",): 341,
        ("main",): 41,
    }


def count_tag_pages(host: str, repository: str, page_size: int | None) -> int:
    url = f"http://{host}/v2/{repository}/tags/list" + (f"?n={page_size}" if page_size else "")
    pages = 0
    while url:
        response = httpx.get(url)
        response.raise_for_status()
        pages += 1
        link = response.headers.get("Link")
        url = urljoin(url, link.split(";")[0].strip().strip("<>")) if link else ""
    return pages


@pytest.mark.parametrize("page_size", [None, 3])
def test_du_makes_the_minimum_number_of_requests(
    registry: LocalRegistry, du_repo: dict[str, str], page_size: int | None
) -> None:
    # distribution 2.8 ignores ?n= and answers one page; FakeRegistry in test_du.py covers real paging.
    pages = count_tag_pages(registry.host, REPO, page_size)
    assert len(set(du_repo.values())) == 9  # 10 tags on 9 manifests
    with RegistryClient(ClientOptions(concurrency=4)) as client:
        usage = disk_usage(client, parse_repository(f"{registry.host}/{REPO}"), page_size=page_size)
        # one GET by tag per tag: cheaper than a HEAD per tag plus a GET per distinct manifest
        assert client.request_count == pages + len(TAGS)
    assert usage.cache_tags == 8


def test_du_human_output(
    registry: LocalRegistry,
    du_repo: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["du", f"{registry.host}/{REPO}"]) == 0
    out = capsys.readouterr().out
    assert "8 cache tags on 7 manifests" in out and "2 not caches" in out
    assert "not caches  app, app-inline" in out
    (row,) = [line for line in out.splitlines() if line.startswith("main, min ")]
    assert row.split()[2] == du_repo["min"].split(":")[1][:12]


def show_json(capsys: pytest.CaptureFixture[str], ref: str) -> dict[str, Any]:
    assert run(["show", ref, "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def diff_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = run(["diff", *args, "--json"])
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    validate_json(doc, DIFF_SCHEMA)
    return code, doc


def expected_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Layers and records of a diff, from two `show --json` documents."""
    layers_a = {layer["digest"]: layer for layer in a["layers"]}
    layers_b = {layer["digest"]: layer for layer in b["layers"]}

    def records(doc: dict[str, Any]) -> Counter[tuple[str, bool]]:
        return Counter((r["digest"], bool(r["results"])) for r in doc["records"])

    only_a, only_b = records(a) - records(b), records(b) - records(a)
    return {
        "added": sorted(set(layers_b) - set(layers_a)),
        "removed": sorted(set(layers_a) - set(layers_b)),
        "addedSize": sum(layers_b[d]["size"] for d in set(layers_b) - set(layers_a)),
        "removedSize": sum(layers_a[d]["size"] for d in set(layers_a) - set(layers_b)),
        "sharedSize": sum(layers_a[d]["size"] for d in set(layers_a) & set(layers_b)),
        "missingInB": sorted(d for d, layer in layers_b.items() if layer["present"] is False),
        "onlyInA": sorted((d, r, n) for (d, r), n in only_a.items()),
        "onlyInB": sorted((d, r, n) for (d, r), n in only_b.items()),
        "shared": sum((records(a) & records(b)).values()),
    }


def check_layers_and_records(doc: dict[str, Any], expected: dict[str, Any]) -> None:
    layers = doc["layers"]
    assert sorted(d["digest"] for d in layers["added"]) == expected["added"]
    assert sorted(d["digest"] for d in layers["removed"]) == expected["removed"]
    for key in ("addedSize", "removedSize", "sharedSize"):
        assert layers[key] == expected[key], key
    assert sorted(layers["missingInB"]) == expected["missingInB"]
    records = doc["records"]
    assert sorted((r["digest"], r["result"], r["count"]) for r in records["onlyInA"]) == expected["onlyInA"]
    assert sorted((r["digest"], r["result"], r["count"]) for r in records["onlyInB"]) == expected["onlyInB"]
    assert records["shared"] == expected["shared"]


def same_steps(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[int, int]]:
    """Per stage index: how many leading steps carry the same record digest in both show documents."""
    out = []
    for stage_a, stage_b in zip(a["stages"], b["stages"], strict=False):
        n = 0
        for x, y in zip(stage_a["steps"], stage_b["steps"], strict=False):
            if x["record"] != y["record"]:
                break
            n += 1
        out.append((stage_a["index"], n))
    return out


def test_diff_against_the_same_cache_with_a_deleted_blob(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    ref_a = f"{registry.host}/samples/multistage-max:image-manifest"
    ref_b = f"{registry.host}/samples/missing-blob:latest"
    show_a, show_b = show_json(capsys, ref_a), show_json(capsys, ref_b)
    code, doc = diff_json(capsys, ref_a, ref_b)
    assert code == 0
    expected = expected_diff(show_a, show_b)
    check_layers_and_records(doc, expected)
    (removed,) = next(s for s in samples if s["name"] == "missing-blob")["removed_blobs"]
    assert expected["missingInB"] == [removed] and doc["layers"]["missingInA"] == []
    assert doc["sameDocument"] is True  # the same bytes in both repositories; one blob deleted from B's
    assert [(s["a"]["index"], s["matchingSteps"]) for s in doc["stages"]] == same_steps(show_a, show_b)
    assert all(s["firstDifference"] is None for s in doc["stages"])
    assert doc["identical"] is False
    assert run(["diff", ref_a, ref_b, "--exit-code"]) == 1
    human = capsys.readouterr().out
    assert f"{removed} is missing from the registry of B" in human
    assert run(["diff", ref_a, ref_b, "--exit-code", "--no-check-blobs", "--json"]) == 0  # unchecked: alike
    capsys.readouterr()


def test_diff_max_against_min(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    ref_a = f"{registry.host}/samples/multistage-max:image-manifest"
    ref_b = f"{registry.host}/samples/multistage-min:latest"
    show_a, show_b = show_json(capsys, ref_a), show_json(capsys, ref_b)
    code, doc = diff_json(capsys, ref_a, ref_b, "--exit-code")
    assert code == 1
    expected = expected_diff(show_a, show_b)
    check_layers_and_records(doc, expected)
    assert len(expected["removed"]) == 7 and expected["added"] == []
    assert doc["a"]["mode"] == "max" and doc["b"]["mode"] == "min"
    assert [(s["a"]["index"], s["matchingSteps"]) for s in doc["stages"]] == same_steps(show_a, show_b)
    assert [s["matchingSteps"] for s in doc["stages"]] == [len(s["steps"]) for s in show_b["stages"]]


def test_diff_registry_forms_and_local_layout_are_identical(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    ref_a = f"{registry.host}/samples/multistage-max:image-manifest"
    assert (
        run(["diff", ref_a, f"{registry.host}/samples/multistage-max:docker-manifest-list", "--exit-code"])
        == 0
    )
    assert "identical" in capsys.readouterr().out
    layout = f"oci:{TESTDATA / 'layouts' / 'multistage-max'}:oci-index"
    code, doc = diff_json(capsys, ref_a, layout, "--exit-code")
    assert code == 0 and doc["identical"] is True and doc["sameConfig"] is True
    assert doc["b"]["reference"] == layout and doc["b"]["form"] == "oci-index"


def test_diff_with_a_changed_step_end_to_end(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """multistage's stage 1 vs three-stages' stage 1: same WORKDIR, then different COPY."""
    ref_a = f"{registry.host}/samples/multistage-max:oci-index"
    ref_b = f"{registry.host}/samples/three-stages:latest"
    show_a, show_b = show_json(capsys, ref_a), show_json(capsys, ref_b)
    code, doc = diff_json(capsys, ref_a, ref_b)
    assert code == 0
    check_layers_and_records(doc, expected_diff(show_a, show_b))
    first = doc["stages"][0]
    matching = same_steps(show_a, {"stages": show_b["stages"][:1]})[0][1]
    assert first["matchingSteps"] == matching == 1
    step_a = show_a["stages"][0]["steps"][matching]
    step_b = show_b["stages"][0]["steps"][matching]
    assert first["firstDifference"]["recordA"] == step_a["record"]
    assert first["firstDifference"]["recordB"] == step_b["record"]
    assert first["firstDifference"]["stepB"] == step_b["number"] == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["diff", "{host}/samples/not-a-cache:image", "{host}/samples/multistage-min:latest"],
            8,
            "not a BuildKit",
        ),
        (
            ["diff", "{host}/samples/multistage-min:nope", "{host}/samples/multistage-min:latest"],
            3,
            "MANIFEST",
        ),
        (["diff", "{host}/Bad/x", "{host}/samples/multistage-min:latest"], 2, "lowercase"),
        (["du", "{host}/samples/multistage-min:latest"], 2, "without tag"),
    ],
)
def test_errors_keep_the_documented_exit_codes(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    assert run([a.format(host=registry.host) for a in args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
