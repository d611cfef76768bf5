from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.cache import config as cacheconfig
from inspector.cache.config import parse_cache_config
from inspector.errors import InvalidContent
from tests.harness.chains import result_chains

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
T = "2025-06-02T10:15:33.515337026Z"

REALWORLD_CONFIGS = {
    # file: (layers, records, records with results, layers with no parent key)
    "05-local-2021-cacheconfig.json": (3, 14, 2),
    "08-local-2025-cacheconfig.json": (10, 18, 6),
    "09-local-2025-cacheconfig-dup-digests.json": (9, 37, 5),
    "11-local-2026-cacheconfig.json": (10, 9, 5),
    "13-buildkit-pr7048-cyclic-merge-chain-cacheconfig.json": (18, 25, 20),
    "14-buildkit-pr4429-s3-config-with-annotations.json": (51, 52, 34),
}


def doc(**parts: object) -> bytes:
    return json.dumps(parts).encode()


@pytest.mark.parametrize("name", sorted(REALWORLD_CONFIGS))
def test_realworld_configs_parse(realworld: Path, name: str) -> None:
    raw = (realworld / name).read_bytes()
    config = parse_cache_config(raw)
    layers, records, with_results = REALWORLD_CONFIGS[name]
    assert (len(config.layers), len(config.records), sum(r.has_result for r in config.records)) == (
        layers,
        records,
        with_results,
    )
    # Every layer whose JSON has no "parent" key must come out with parent 0 (Go omitempty).
    for parsed, source in zip(config.layers, json.loads(raw)["layers"], strict=True):
        assert parsed.parent == source.get("parent", 0)


def test_missing_parent_means_zero_not_root(realworld: Path) -> None:
    config = parse_cache_config((realworld / "11-local-2026-cacheconfig.json").read_bytes())
    # layer 5 has no "parent" key: its chain goes through layer 0 down to the root layer 4.
    assert config.layers[5].parent == 0
    assert config.chain(5)[-2:] == (0, 5)
    assert config.layers[config.chain(5)[0]].parent == -1


def test_s3_annotations_and_unknown_fields(realworld: Path) -> None:
    config = parse_cache_config(
        (realworld / "14-buildkit-pr4429-s3-config-with-annotations.json").read_bytes()
    )
    annotated = [layer.annotations for layer in config.layers if layer.annotations is not None]
    assert len(annotated) == 51
    assert all(a.diff_id is not None and a.size is not None and a.created_at is not None for a in annotated)


def test_duplicate_record_digests_are_kept_by_position(realworld: Path) -> None:
    config = parse_cache_config((realworld / "09-local-2025-cacheconfig-dup-digests.json").read_bytes())
    digests = [r.digest for r in config.records]
    assert len(digests) - len(set(digests)) == 11


def test_chain_order() -> None:
    raw = doc(
        layers=[{"blob": A, "parent": 1}, {"blob": B, "parent": -1}, {"blob": C, "parent": 0}], records=[]
    )
    config = parse_cache_config(raw)
    assert config.chain(2) == (1, 0, 2)
    assert config.chain(1) == (1,)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"layers": [{"blob": "sha256:zz", "parent": -1}]}, "invalid digest"),
        ({"layers": [{"blob": A, "parent": 1.0}]}, "expected an integer"),
        ({"layers": [{"blob": A, "parent": True}]}, "expected an integer"),
        ({"records": [{"digest": A, "inputs": [[]]}]}, "inputs\\[0\\] is empty"),
        ({"records": [{"digest": A, "inputs": [[{"link": 3}]]}]}, "not a record index"),
        ({"records": [{"digest": A, "inputs": [[{"link": 0}]]}]}, "links to itself"),
        (
            {"records": [{"digest": A, "inputs": [[{"link": 1}]]}, {"digest": B, "inputs": [[{"link": 0}]]}]},
            "links to itself",
        ),
        (
            {
                "layers": [{"blob": A, "parent": -1}],
                "records": [{"digest": A, "layers": [{"layer": 1, "createdAt": T}]}],
            },
            "not a layer index",
        ),
        (
            {
                "layers": [{"blob": A, "parent": -1}],
                "records": [{"digest": A, "layers": [{"layer": 0, "createdAt": "yesterday"}]}],
            },
            "not an RFC 3339 time",
        ),
        (
            {
                "layers": [{"blob": A, "parent": -1}],
                "records": [{"digest": A, "layers": [{"layer": 0, "createdAt": 5}]}],
            },
            "expected a string",
        ),
        ({"records": [{"inputs": []}]}, "missing digest"),
        ({"layers": {}}, "expected an array"),
    ],
)
def test_structural_errors(parts: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidContent, match=message):
        parse_cache_config(json.dumps(parts).encode())


def _import(layers: list[dict[str, object]], results: list[int], listed: set[str]) -> str | None:
    """``import_error`` for one record whose results are the given layer indexes."""
    records = [{"digest": C, "layers": [{"layer": i, "createdAt": T} for i in results]}]
    config = parse_cache_config(doc(layers=layers, records=records))
    return cacheconfig.import_error(config, listed.__contains__)


# Each case mirrors moby/buildkit cache/remotecache/v1/parse.go, getRemoteChain (per result, from its top):
# 1. `if _, ok := visited[idx]` -> "invalid looping layer"; 2. `if idx < 0 || idx >= len(layers)` ->
# "invalid layer index"; 3. `descPair, ok := provider[l.Blob]; if !ok { return nil, nil }` -> the result is
# dropped, nothing below it is looked at; 4. `if l.ParentIndex != -1` recurse, else the chain ends.
@pytest.mark.parametrize(
    ("layers", "results", "listed", "error"),
    [
        # A reached parent out of range with every blob listed: step 2 on the parent index.
        ([{"blob": A, "parent": 5}], [0], {A}, "invalid layer index 5"),
        # -2 is not -1, so step 4 recurses and step 2 rejects -2.
        ([{"blob": A, "parent": -2}], [0], {A}, "invalid layer index -2"),
        # No parent key is parent 0 (omitempty): layer 0 is its own parent, step 1 on the second visit.
        ([{"blob": A}], [0], {A}, "invalid looping layer"),
        ([{"blob": A, "parent": 1}, {"blob": B, "parent": 0}], [1], {A, B}, "invalid looping layer"),
        # The same shapes with the top blob unlisted: step 3 returns before the parent is looked at.
        ([{"blob": A, "parent": 5}], [0], set(), None),
        ([{"blob": A}], [0], set(), None),
        # A loop through a blob the document does not list: the walk from 1 stops at 0 (B unlisted).
        ([{"blob": B, "parent": 1}, {"blob": A, "parent": 0}], [1], {A}, None),
        # Layers no result reaches are never walked (ParseConfig only walks results).
        ([{"blob": A, "parent": -1}, {"blob": B, "parent": 9}, {"blob": B}], [0], {A, B}, None),
    ],
)
def test_importer_rejects_only_what_a_walk_through_listed_blobs_reaches(
    layers: list[dict[str, object]], results: list[int], listed: set[str], error: str | None
) -> None:
    found = _import(layers, results, listed)
    if error is None:
        assert found is None
    else:
        assert found is not None and error in found


def test_chained_results_check_indexes_until_the_first_unlisted_blob() -> None:
    # parse.go, the ChainedResults loop: `if diff < 0 || diff >= len(cc.Layers)` errors, but
    # `if !ok { remote = nil; break }` on the first unlisted blob ends the loop before later indexes.
    layers = [{"blob": A, "parent": -1}, {"blob": B, "parent": -1}]
    records = [{"digest": C, "chains": [{"layers": [0, 1, 7], "createdAt": T}]}]
    config = parse_cache_config(doc(layers=layers, records=records))
    assert config.records[0].chains[0].layers == (0, 1) and config.records[0].chains[0].bad_index == 7
    assert cacheconfig.import_error(config, {A}.__contains__) is None  # B unlisted: break before 7
    found = cacheconfig.import_error(config, {A, B}.__contains__)
    assert found is not None and "invalid layer index 7" in found


def test_cut_links_leave_a_forest() -> None:
    # Out-of-range and loop-closing parents are cut (parent_of -1) so every chain is finite; the cut
    # layers are reported as such.
    layers = [
        {"blob": A, "parent": 1},
        {"blob": B, "parent": 0},
        {"blob": C, "parent": 42},
        {"blob": A, "parent": 0},
    ]
    config = parse_cache_config(doc(layers=layers))
    assert config.cut_layers == {1, 2}
    assert config.parent_of == (1, -1, -1, 0)
    assert config.chain(3) == (1, 0, 3)


@pytest.mark.parametrize("created", [None, "absent"])
def test_missing_or_null_created_at_is_go_zero_time(created: str | None) -> None:
    # CacheResult.CreatedAt is a time.Time without omitempty: encoding/json leaves it at the zero
    # value when the key is absent, and time.Time.UnmarshalJSON treats `null` as a no-op.
    result: dict[str, object] = {"layer": 0}
    if created is None:
        result["createdAt"] = None
    config = parse_cache_config(
        doc(layers=[{"blob": A, "parent": -1}], records=[{"digest": C, "layers": [result]}])
    )
    stamp = config.records[0].results[0].created_at
    assert stamp == cacheconfig.ZERO_TIME and stamp.datetime.year == 1


def test_keys_match_case_insensitively_last_wins() -> None:
    raw = (
        f'{{"Layers":[{{"BLOB":"{A}","Parent":-1}}],"records":[{{"Digest":"{A}","LAYERS":[{{"Layer":0,"createdat":"{T}"}}]}}],'
        f'"records":[{{"digest":"{B}","layers":[{{"layer":0,"CreatedAt":"{T}"}}],"unknown":1}}],"extra":{{"x":1}}}}'
    ).encode()
    config = parse_cache_config(raw)
    assert config.layers[0].blob == A and config.layers[0].parent == -1
    assert [r.digest for r in config.records] == [B]
    assert config.records[0].results[0].created_at.text == T


def test_null_fields_are_zero_values() -> None:
    config = parse_cache_config(doc(layers=[{"blob": A, "parent": -1, "annotations": None}], records=None))
    assert config.records == ()


def test_deeply_nested_json_is_invalid_content() -> None:
    with pytest.raises(InvalidContent):
        parse_cache_config(b"[" * 100_000 + b"]" * 100_000)


def test_long_chain_has_no_recursion_limit() -> None:
    n = 50_000
    layers = [{"blob": A, "parent": -1}] + [{"blob": A, "parent": i} for i in range(n - 1)]
    config = parse_cache_config(doc(layers=layers))
    assert len(config.chain(n - 1)) == n


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_invalid_content(data: bytes) -> None:
    with contextlib.suppress(InvalidContent):
        parse_cache_config(data)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 5)
    | st.floats(allow_nan=False)
    | st.sampled_from([A, B, T, "", "x"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "layers",
                    "records",
                    "blob",
                    "parent",
                    "digest",
                    "inputs",
                    "link",
                    "selector",
                    "layer",
                    "createdAt",
                    "chains",
                    "annotations",
                    "Layers",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=500)
@given(_json_values)
def test_arbitrary_json_shapes_raise_only_invalid_content(value: object) -> None:
    try:
        config = parse_cache_config(json.dumps(value).encode())
    except InvalidContent:
        return
    for index in range(len(config.layers)):
        assert config.chain(index)[-1] == index


@st.composite
def _forests(draw: st.DrawFn) -> dict[str, object]:
    """A config with a random layer forest (few distinct blobs, so blobs repeat along chains) and results."""
    n = draw(st.integers(1, 25))
    parents = [draw(st.integers(-1, i - 1)) for i in range(n)]
    blobs = ["sha256:" + f"{draw(st.integers(0, 4)):064x}" for _ in range(n)]
    layers = [{"blob": b, "parent": p} for b, p in zip(blobs, parents, strict=True)]
    t = "2024-01-01T00:00:00Z"
    records = [
        {
            "digest": "sha256:" + f"{r:064x}",
            "layers": [
                {"layer": draw(st.integers(0, n - 1)), "createdAt": t} for _ in range(draw(st.integers(0, 3)))
            ],
            "chains": [
                {"layers": draw(st.lists(st.integers(0, n - 1), max_size=4)), "createdAt": t}
                for _ in range(draw(st.integers(0, 1)))
            ],
        }
        for r in range(draw(st.integers(0, 6)))
    ]
    return {"layers": layers, "records": records}


@given(_forests(), st.sets(st.integers(0, 4)))
@settings(max_examples=300, deadline=None)
def test_whole_config_passes_agree_with_walking_every_chain(doc: dict[str, object], bad: set[int]) -> None:
    config = parse_cache_config(json.dumps(doc).encode())
    chains = [chain for record in config.records for chain in result_chains(config, record)]
    expected_users: Counter[str] = Counter()
    for chain in chains:
        expected_users.update({config.layers[i].blob for i in chain})
    assert config.results_per_blob() == expected_users
    assert config.referenced_layers() == {i for chain in chains for i in chain}
    unusable = {"sha256:" + f"{b:064x}" for b in bad}
    assert config.chains_where_all(lambda blob: blob not in unusable) == [
        all(config.layers[i].blob not in unusable for i in config.chain(top))
        for top in range(len(config.layers))
    ]


def test_chain_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheconfig, "CHAIN_MEMO_LIMIT", 50)
    n = 30
    doc = {"layers": [{"blob": "sha256:" + f"{i:064x}", "parent": i - 1} for i in range(n)], "records": []}
    config = parse_cache_config(json.dumps(doc).encode())
    for top in range(n):
        assert config.chain(top) == tuple(range(top + 1))
    assert sum(len(c) for c in config._chains.values()) <= 50


def test_an_index_with_two_cacheconfig_entries_uses_the_last() -> None:
    # cache/remotecache/import.go: `for _, m := range mfst.Manifests { if m.MediaType == CacheConfigMediaTypeV0
    # { configDesc = m; continue } ...}` overwrites configDesc on each entry, so the last one is imported.
    from inspector.cache.fetch import find_cache_config
    from inspector.oci.models import parse_manifest

    def entry(digest: str, media_type: str) -> dict[str, object]:
        return {"mediaType": media_type, "digest": digest, "size": 10}

    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(A, "application/vnd.buildkit.cacheconfig.v0"),
            entry(C, "application/vnd.oci.image.layer.v1.tar+gzip"),
            entry(B, "application/vnd.buildkit.cacheconfig.v0"),
        ],
    }
    found = find_cache_config(parse_manifest(json.dumps(index).encode()))
    assert found is not None
    config, layers = found
    assert config.digest == B and [d.digest for d in layers] == [C]
