"""copy's wrapper conversion against real BuildKit-written wrappers (../shared/realworld) and export.go.

The expected bytes are cut by hand out of the real documents, never produced by the converter. BuildKit's
``cache/remotecache/export.go`` (``Finalize``) writes, with Go ``encoding/json``:

- index form: ``{"schemaVersion":2,"mediaType":<index>,"manifests":[<layers in order>...,<config>]}``
  (``AddCacheBlob`` appends each layer, ``SetConfig`` appends the config last);
- image-manifest form: ``{"schemaVersion":2,"mediaType":<manifest>,"config":<config>,"layers":[<layers>]}``;
- the config descriptor is ``{Digest, Size, MediaType}``: ``{"mediaType":…,"digest":…,"size":…}``;
- layer media types go through ``ConvertAllLayerMediaTypes(oci)``: Docker types become OCI types.
So between the forms the layer descriptors are the same bytes, and only the wrapper around them changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.cache.copy import convert_wrapper
from inspector.errors import DigestMismatch
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import Descriptor, parse_manifest
from inspector.registry.client import _verified_chunks
from tests.harness.paths import TESTDATA

INDEX_HEAD = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
MANIFEST_HEAD = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":'
CONFIG_START = b'{"mediaType":"application/vnd.buildkit.cacheconfig.v0"'


def split_image_manifest(raw: bytes) -> tuple[bytes, bytes]:
    """(config descriptor bytes, layer descriptors bytes) of a compact BuildKit image manifest."""
    assert raw.startswith(MANIFEST_HEAD) and raw.endswith(b"]}")
    config, layers = raw[len(MANIFEST_HEAD) : -2].split(b',"layers":[', 1)
    return config, layers


def split_index(raw: bytes) -> tuple[bytes, bytes]:
    """(config descriptor bytes, layer descriptors bytes) of a compact BuildKit index: the config is last."""
    assert raw.startswith(INDEX_HEAD) and raw.endswith(b"]}")
    body = raw[len(INDEX_HEAD) : -2]
    at = body.rindex(b"," + CONFIG_START)
    return body[at + 1 :], body[:at]


@pytest.mark.parametrize(
    "name",
    [
        "07-local-2025-oci-image-manifest-cacheconfig.json",
        "10-local-2026-oci-image-manifest-cacheconfig.json",
    ],
)
def test_real_image_manifest_to_index_and_back(realworld: Path, name: str) -> None:
    raw = (realworld / name).read_bytes()
    config, layers = split_image_manifest(raw)
    # 07/10's config descriptors carry no annotations, exactly as SetConfig's desc marshals.
    assert json.loads(config).keys() == {"mediaType", "digest", "size"}
    expected_index = INDEX_HEAD + layers + b"," + config + b"]}"

    index, media_type = convert_wrapper(parse_manifest(raw), "oci-index")
    assert media_type == "application/vnd.oci.image.index.v1+json"
    assert index == expected_index
    # And back: the real BuildKit bytes again, so the image-manifest writer is byte-exact too.
    again, media_type = convert_wrapper(parse_manifest(index), "image-manifest")
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert again == raw
    assert sha256_digest(again) == sha256_digest(raw)


def test_real_index_to_image_manifest_and_back(realworld: Path) -> None:
    raw = (realworld / "04-local-2021-oci-index-cache-manifest.json").read_bytes()
    config, layers = split_index(raw)
    assert config == (
        b'{"mediaType":"application/vnd.buildkit.cacheconfig.v0",'
        b'"digest":"sha256:b0a167999ea2cc2e8f983e903296e5eec1c9db388b79a95a0afe8f49bd443f5c","size":2096}'
    )
    expected_manifest = MANIFEST_HEAD + config + b',"layers":[' + layers + b"]}"

    manifest, _ = convert_wrapper(parse_manifest(raw), "image-manifest")
    assert manifest == expected_manifest
    back, _ = convert_wrapper(parse_manifest(manifest), "oci-index")
    assert back == raw


def test_same_form_keeps_the_bytes(realworld: Path) -> None:
    raw = (realworld / "04-local-2021-oci-index-cache-manifest.json").read_bytes()
    assert convert_wrapper(parse_manifest(raw), "oci-index")[0] is raw


def _layout_document(layout: Path, tag: str) -> bytes:
    index = json.loads((layout / "index.json").read_bytes())
    (entry,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    path: Path = layout / "blobs" / "sha256" / entry["digest"].split(":")[1]
    return path.read_bytes()


def test_docker_list_becomes_the_image_manifest_with_oci_layer_types() -> None:
    """multistage-max holds one config in all three forms. A Docker list's layers are
    ``application/vnd.docker.image.rootfs.diff.tar.gzip``; toOCILayerType maps them to
    ``application/vnd.oci.image.layer.v1.tar+gzip``, so the list converts to the very image-manifest bytes."""
    layout = TESTDATA / "layouts" / "multistage-max"
    docker_list = _layout_document(layout, "docker-manifest-list")
    oci_index = _layout_document(layout, "oci-index")
    image_manifest = _layout_document(layout, "image-manifest")
    assert b"application/vnd.docker.image.rootfs.diff.tar.gzip" in docker_list
    assert convert_wrapper(parse_manifest(docker_list), "image-manifest")[0] == image_manifest
    assert convert_wrapper(parse_manifest(oci_index), "image-manifest")[0] == image_manifest
    assert convert_wrapper(parse_manifest(docker_list), "oci-index")[0] == oci_index


def test_go_escapes_in_annotations() -> None:
    """Go's encoder escapes <, > and & as \\u003c, \\u003e, \\u0026 and sorts map keys."""
    raw = (
        INDEX_HEAD
        + b'{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'
        + b"a" * 64
        + b'","size":1,"annotations":{"z":"1","a":"x\\u003cy\\u0026z"}},'
        + CONFIG_START
        + b',"digest":"sha256:'
        + b"b" * 64
        + b'","size":2}]}'
    )
    manifest, _ = convert_wrapper(parse_manifest(raw), "image-manifest")
    assert b'"annotations":{"a":"x\\u003cy\\u0026z","z":"1"}' in manifest


class _Body:
    """Just enough of an httpx response for the streaming verifier: fixed chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def iter_bytes(self, _size: int) -> list[bytes]:
        return self.chunks


def test_stream_holds_back_the_last_chunk_until_verified() -> None:
    good = b"hello, cache"
    descriptor = Descriptor("application/octet-stream", sha256_digest(good), len(good))
    assert b"".join(_verified_chunks(_Body([good[:5], good[5:]]), descriptor)) == good  # type: ignore[arg-type]

    spoiled = _verified_chunks(_Body([b"hello", b", cachE"]), descriptor)  # type: ignore[arg-type]
    assert next(spoiled) == b"hello"
    with pytest.raises(DigestMismatch):  # the last chunk is never handed on
        next(spoiled)
    longer = _verified_chunks(_Body([good, b"!"]), descriptor)  # type: ignore[arg-type]
    with pytest.raises(DigestMismatch):
        list(longer)
    empty_but_named_otherwise = Descriptor("application/octet-stream", Digest("sha256:" + "0" * 64), 0)
    with pytest.raises(DigestMismatch):
        list(_verified_chunks(_Body([]), empty_but_named_otherwise))  # type: ignore[arg-type]
