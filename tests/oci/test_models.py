from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.cache.fetch import find_cache_config, form_of
from inspector.errors import InvalidContent
from inspector.oci import mediatypes
from inspector.oci.digest import sha256_digest
from inspector.oci.models import parse_manifest

D = "sha256:" + "d" * 64


@pytest.mark.parametrize(
    ("name", "form", "layers"),
    [
        ("01-issue-buildkit1143-oci-index.json", "oci-index", 2),
        ("04-local-2021-oci-index-cache-manifest.json", "oci-index", 3),
        ("07-local-2025-oci-image-manifest-cacheconfig.json", "image-manifest", 10),
        ("10-local-2026-oci-image-manifest-cacheconfig.json", "image-manifest", 10),
    ],
)
def test_realworld_cache_documents(realworld: Path, name: str, form: str, layers: int) -> None:
    raw = (realworld / name).read_bytes()
    document = parse_manifest(raw)
    assert document.digest == sha256_digest(raw)
    assert form_of(document) == form
    found = find_cache_config(document)
    assert found is not None
    config, layer_descriptors = found
    assert config.media_type == mediatypes.BUILDKIT_CACHE_CONFIG
    assert len(layer_descriptors) == layers
    assert all(mediatypes.ANNOTATION_UNCOMPRESSED in d.annotations for d in layer_descriptors)


def test_local_index_files_point_at_cache_documents(realworld: Path) -> None:
    for name in (
        "03-local-2021-index.json",
        "06-local-2025-image-manifest-index.json",
        "12-local-2025-index-to-oci-index.json",
    ):
        document = parse_manifest((realworld / name).read_bytes())
        assert document.kind == "index"
        assert [d.annotations["org.opencontainers.image.ref.name"] for d in document.manifests] == ["latest"]


def test_elided_paste_is_rejected_with_a_clear_error(realworld: Path) -> None:
    with pytest.raises(InvalidContent, match="not valid JSON"):
        parse_manifest((realworld / "02-issue-buildx173-docker-manifest-list-ELIDED.json").read_bytes())


def test_type_detected_from_body_like_buildkit() -> None:
    body = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": mediatypes.BUILDKIT_CACHE_CONFIG, "digest": D, "size": 1}],
    }
    document = parse_manifest(json.dumps(body).encode(), content_type="application/octet-stream")
    assert document.kind == "index" and document.media_type == mediatypes.DOCKER_MANIFEST_LIST
    document = parse_manifest(
        json.dumps(body).encode(), content_type=mediatypes.OCI_INDEX + "; charset=utf-8"
    )
    assert document.media_type == mediatypes.OCI_INDEX


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"schemaVersion": 2, "manifests": [], "layers": []}, "ambiguous"),
        ({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "layers": []}, "does not match"),
        ({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "manifests": []}, "does not match"),
        ({"schemaVersion": 1, "fsLayers": []}, "schema 1"),
        ({"schemaVersion": 2, "config": {"digest": D, "size": -1}}, "negative size"),
        ({"schemaVersion": 2, "config": {"digest": "md5:x", "size": 1}}, "invalid digest"),
        ([1, 2], "expected an object"),
    ],
)
def test_rejections(body: object, message: str) -> None:
    with pytest.raises(InvalidContent, match=message):
        parse_manifest(json.dumps(body).encode())


def test_not_utf8() -> None:
    with pytest.raises(InvalidContent, match="not UTF-8"):
        parse_manifest(b"\xff\xfe{}")


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_invalid_content(data: bytes) -> None:
    with contextlib.suppress(InvalidContent):
        parse_manifest(data)
