"""The ``tags/list`` manifest map of GCR and Artifact Registry (``inspector.registry.google``).

Shapes from go-containerregistry ``pkg/v1/google/list.go`` (``rawManifestInfo``: sizes and times are
decimal strings of milliseconds, ``timeUploadedMs`` a number on Artifact Registry) and registries.md [C8].
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from inspector.errors import InvalidContent
from inspector.oci.digest import Digest
from inspector.oci.reference import parse_repository
from inspector.registry.google import parse_manifest_map

REPO = parse_repository("europe-docker.pkg.dev/acme/caches/app")
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_string_and_number_times_and_untagged_entries() -> None:
    raw = json.dumps(
        {
            "name": "acme/caches/app",
            "tags": ["main"],
            "child": [],
            "manifest": {
                # GCR: every field a string. 1519762343000 ms = 2018-02-27T20:12:23Z (by hand: 1519762343 s).
                A: {
                    "imageSizeBytes": "1234",
                    "layerId": "",
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "tag": ["main"],
                    "timeCreatedMs": "0",
                    "timeUploadedMs": "1519762343000",
                },
                # Artifact Registry: timeUploadedMs a number; no tag: an untagged manifest.
                B: {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "tag": [],
                    "timeUploadedMs": 1519762343500,
                },
            },
        }
    ).encode()
    found = parse_manifest_map(raw, REPO)
    a, b = found[Digest(A)], found[Digest(B)]
    assert a.tags == ("main",) and a.size == 1234 and a.created is None  # 0 ms: unknown, not 1970
    assert a.uploaded == datetime(2018, 2, 27, 20, 12, 23, tzinfo=UTC)
    assert b.tags == () and not b.tagged
    assert b.uploaded == datetime(2018, 2, 27, 20, 12, 23, 500_000, tzinfo=UTC)


def test_a_plain_distribution_answer_has_no_map() -> None:
    assert parse_manifest_map(b'{"name":"a","tags":["x"]}', REPO) == {}


@pytest.mark.parametrize(
    "entry",
    [
        {"timeUploadedMs": "12x"},
        {"timeUploadedMs": -5},
        {"timeUploadedMs": True},
        {"tag": "main"},
    ],
)
def test_bad_entries_are_one_clear_error(entry: dict[str, object]) -> None:
    with pytest.raises(InvalidContent, match=r"manifest\["):
        parse_manifest_map(json.dumps({"manifest": {A: entry}}).encode(), REPO)


def test_a_bad_digest_key_is_refused() -> None:
    with pytest.raises(InvalidContent, match="invalid digest"):
        parse_manifest_map(b'{"manifest": {"sha256:zz": {}}}', REPO)
