"""Tests of the cache fixture generator (tests/harness/fixturegen.py) and of the committed testdata/."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import make_testdata
from tests.harness.bkshell import Lex
from tests.harness.dockerfilegen import from_dockerfile, normalize_ref
from tests.harness.fixturegen import (
    FORMS,
    BaseImage,
    Build,
    CacheExport,
    File,
    Form,
    LayerSpec,
    Overrides,
    Platform,
    Stage,
    Step,
    chain_id,
    checksum_record_digest,
    copy,
    generate,
    go_json,
    go_map,
    go_time,
    image_root_digests,
    key_digest,
    make_tar,
    manifest_key,
    parse_go_time,
    path_selector,
    run,
    workdir,
    write_layout,
)
from tests.harness.paths import SHARED, TESTDATA

SPEC_FILE = SHARED / "spec" / "buildkit-cache.md"

SPEC = {
    "min": {
        "config": ("sha256:219cf2d0d41cb265ccb4436698ab164fedc8bde0998af9a3c825f414c564237c", 1190),
        "image-manifest": ("sha256:93ab7c42e4e064822312811576580913546fd34d12b1205608f1afe3a03d2391", 907),
        "oci-index": ("sha256:640a44bbc85244722dd750bae9aef8e906ded018994def8bd1662a83c5d7fe70", 898),
        "docker-manifest-list": (
            "sha256:227190ff44952fc115ecdf5169c3a8174f7a13d3f926df643387ee0ced649c94",
            928,
        ),
    },
    "max": {
        "config": ("sha256:798663bb0ffcefae15bfd59cbafbc397e23f70c29f27f01325b0be2ebaa61254", 1676),
        "image-manifest": ("sha256:d7f2f19d5b9d57867c20bb02ec60119b3d8ce91f8bb696295e01bfa111fc60ad", 1895),
        "oci-index": ("sha256:5d9437d956c87032cacd850c21df00fe8b8abb57379b87a6a1c4b1353fbdf6a6", 1886),
        "docker-manifest-list": (
            "sha256:82269df40d42a0e05e65f9d94271bfe1b53f38990484f39ccb13d85549cc4d55",
            1934,
        ),
    },
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# The spec §2.5 / §1.4 example, rebuilt from its Dockerfile


@pytest.mark.parametrize("mode", ["min", "max"])
def test_spec_config_digest(mode: str) -> None:
    export = generate(make_testdata.spec_example("min" if mode == "min" else "max"))
    digest, size = SPEC[mode]["config"]
    assert (export.config_descriptor.digest, export.config_descriptor.size) == (digest, size)
    assert sha(export.config_bytes) == digest and len(export.config_bytes) == size


@pytest.mark.parametrize("form", FORMS)
def test_spec_min_wrappers(form: Form) -> None:
    export = generate(make_testdata.spec_example("min"))
    data = export.document(form)
    assert (sha(data), len(data)) == SPEC["min"][form]
    assert export.descriptor(form).digest == SPEC["min"][form][0]


@pytest.mark.parametrize("form", FORMS)
def test_spec_max_wrapper_sizes(form: Form) -> None:
    data = generate(make_testdata.spec_example("max")).document(form)
    assert len(data) == SPEC["max"][form][1]


# The mode=max wrappers' digests (d7f2f19d…, 5d9437d9…, 82269df4…) cannot be reproduced: they embed the
# diffIDs of the apk, COPY hello.c and gcc layers, which spec §2.5 never gives. Sizes match (above).


def test_spec_image_roots_come_from_the_formulas() -> None:
    alpine = make_testdata.SPEC_ALPINE
    assert alpine.digest is not None
    diff_ids = [spec.diff_id or "" for spec in alpine.layers]
    mk = manifest_key(alpine.digest, Platform())
    assert mk == "sha256:f46577938c6c6662e6aea4598415dfe3610f3eafdcabf496544456f5200173ba"
    assert key_digest("buildkit.source.v0:" + mk) == (
        "sha256:127416376d5f3efb0f7996f567f937b1dc2b443303ef52005730468cb3fe4777"
    )
    assert key_digest("buildkit.source.v0:" + chain_id(diff_ids)) == (
        "sha256:583aab6a8cb5a6032714089ea4eb1e946ea4d7a7110286cb1bc55e8ddb23e452"
    )
    manifest_root, chain_root = image_root_digests(alpine.digest, diff_ids, Platform())
    assert manifest_root == "sha256:bb39352f1b61078855a402a5b490531a3b7d3013a952a3690dfbf2ad049c344a"
    assert chain_root == "sha256:4f2a62c1c806b3343cb133b0cf4f26efad8aaf19a8d8e98d2d22165d10a53c15"
    config = generate(make_testdata.spec_example("min")).config
    digests = [r.digest for r in config.records]
    assert digests[5] == manifest_root and digests[1] == chain_root  # the record numbers of spec §2.5


def test_spec_selector_is_derived_not_overridden() -> None:
    selector = "sha256:c9449c45a79df4af7583ba94c964f75acef0c31094ab6ad62bf7a92b6c8f5e9d"
    assert path_selector(["/out/hello"]) == selector == key_digest("/out/hello")
    final_copy = generate(make_testdata.spec_example("max")).config.records[0]
    assert [i.selector for i in final_copy.inputs[1]] == [selector, ""]


def test_spec_compact_texts_are_what_the_spec_prints() -> None:
    compact = [line for line in SPEC_FILE.read_text().splitlines() if line.startswith('{"layers":')]
    assert len(compact) == 2
    assert generate(make_testdata.spec_example("max")).config_bytes.decode() == compact[0]
    assert generate(make_testdata.spec_example("min")).config_bytes.decode() == compact[1]


def test_testdata_spec_files() -> None:
    for mode in ("min", "max"):
        export = generate(make_testdata.spec_example("min" if mode == "min" else "max"))
        config = (TESTDATA / "spec" / f"{mode}-config.json").read_bytes()
        assert config == export.config_bytes and sha(config) == SPEC[mode]["config"][0]
        for name, form in make_testdata.SPEC_FILE_FORMS.items():
            data = (TESTDATA / "spec" / f"{mode}-{name}.json").read_bytes()
            assert data == export.document(form) and len(data) == SPEC[mode][form][1]
            if mode == "min":
                assert sha(data) == SPEC[mode][form][0]


# --------------------------------------------------------------------------------------------------
# Go encoding/json rules


def test_go_json_escapes_like_go() -> None:
    value = {"b": '<a & b>\u2028\u2029\x01\n\t\b\f"\\é', "a": [1, -1, True, None]}
    assert go_json(value) == (
        b'{"b":"\\u003ca \\u0026 b\\u003e\\u2028\\u2029\\u0001\\n\\t\\b\\f\\"\\\\\xc3\xa9","a":[1,-1,true,null]}'
    )
    assert go_json(go_map({"z": 1, "a": 2, "B": 3})) == b'{"B":3,"a":2,"z":1}'
    assert go_json(b"\x00\xff") == b'"AP8="'


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1748859333515337020, "2025-06-02T10:15:33.51533702Z"),
        (1748859333000000000, "2025-06-02T10:15:33Z"),
        (1748859333100000000, "2025-06-02T10:15:33.1Z"),
        (1748859333515337026, "2025-06-02T10:15:33.515337026Z"),
    ],
)
def test_go_time(ns: int, text: str) -> None:
    assert go_time(ns) == text
    assert parse_go_time(text) == ns


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_go_time_round_trips(ns: int) -> None:
    text = go_time(ns)
    assert parse_go_time(text) == ns
    assert not re.search(r"\.\d*0Z$", text)


def test_omitempty_and_field_order() -> None:
    export = generate(make_testdata.spec_example("max"))
    text = export.config_bytes.decode()
    assert text.startswith('{"layers":[{"blob":')
    assert '"parent":0' not in text and '"selector":""' not in text
    layer3 = json.loads(text)["layers"][3]
    assert layer3 == {"blob": export.config.layers[3].blob}  # parent 0 is omitted
    first = json.loads(text)["records"][0]
    assert list(first) == ["layers", "digest", "inputs"]
    assert list(first["layers"][0]) == ["layer", "createdAt"]
    assert list(first["inputs"][1][0]) == ["selector", "link"]


# --------------------------------------------------------------------------------------------------
# Graph and sorting rules

ALPINE = make_testdata.ALPINE


def tiny(*stages: Stage, mode: str = "max") -> Build:
    return Build(tuple(stages), mode="min" if mode == "min" else "max")


def test_same_blob_under_two_parents_gives_two_entries_listed_twice() -> None:
    export = generate(make_testdata.copy_link())
    blobs = [layer.blob for layer in export.config.layers]
    twice = {b for b in blobs if blobs.count(b) == 2}
    assert len(twice) == 2  # the two --link diffs
    for blob in twice:
        entries = [layer for layer in export.config.layers if layer.blob == blob]
        assert entries[0].parent == -1 and entries[1].parent != -1  # sorted by blob, then old parent
    for form in FORMS:
        listed = [d["digest"] for d in _layer_entries(json.loads(export.document(form)))]
        assert listed == blobs  # one descriptor per config layer entry, in config order


MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


def _layer_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "layers" in document:
        return list(document["layers"])
    return list(document["manifests"][:-1])


def test_copy_link_records() -> None:
    export = generate(make_testdata.copy_link())
    step = export.step("final", 2)
    assert step.merge_record_index is not None
    copy_record = export.config.records[step.record_index]
    merge_record = export.config.records[step.merge_record_index]
    assert len(copy_record.inputs) == 1  # FileOp on scratch: the source is input 0
    assert [i.selector != "" for i in copy_record.inputs[0]].count(True) == 1
    assert [[i.link for i in alts] for alts in merge_record.inputs][1] == [step.record_index]
    assert export.config.chain(copy_record.results[0].layer) == [step.layer_blob]
    merged = export.config.chain(merge_record.results[0].layer)
    assert merged[-1] == step.layer_blob and len(merged) == 3


def test_records_and_layers_are_sorted_and_in_range() -> None:
    for build in (make_testdata.multistage("max"), make_testdata.three_stages(), make_testdata.copy_link()):
        config = generate(build).config
        digests = [r.digest for r in config.records]
        assert digests == sorted(digests)
        assert [(lay.blob) for lay in config.layers] == sorted(lay.blob for lay in config.layers)
        for record in config.records:
            for alts in record.inputs:
                links = [i.link for i in alts]
                assert alts and links == sorted(links) and all(0 <= x < len(config.records) for x in links)
            for result in record.results:
                config.chain(result.layer)  # in range, no loop


def test_mode_max_gives_every_op_record_one_result_and_min_only_the_target() -> None:
    for mode in ("min", "max"):
        export = generate(make_testdata.multistage("min" if mode == "min" else "max"))
        with_results = [r for r in export.config.records if r.results]
        ops = [r for r in export.config.records if r.inputs]
        assert all(not r.results for r in export.config.records if not r.inputs)  # roots never
        if mode == "max":
            assert len(with_results) == len(ops) and all(len(r.results) == 1 for r in ops)
        else:
            target = export.step("final", 2)
            assert with_results == [export.config.records[target.record_index]]


def test_each_step_adds_one_layer_to_its_input_chain() -> None:
    export = generate(make_testdata.multistage("max"))
    config = export.config
    for step in export.steps:
        record = config.records[step.record_index]
        chain = config.chain(record.results[0].layer)
        assert chain[-1] == step.layer_blob
        parents = [config.records[i.link] for i in record.inputs[0] if config.records[i.link].results]
        for parent in parents:
            assert config.chain(parent.results[0].layer) == chain[:-1]


def test_image_roots_and_checksum_roots() -> None:
    export = generate(make_testdata.multistage("max"))
    config = export.config
    golang = make_testdata.GOLANG
    diff_ids = [d.annotations["containerd.io/uncompressed"] for d in export.layer_descriptors]
    assert len(diff_ids) == len(config.layers)
    first = config.records[export.step("build", 1).record_index]
    roots = {config.records[i.link].digest for i in first.inputs[0]}
    resolved = golang.image(Platform()).manifest_descriptor.digest
    golang_diffs = [
        next(d for d in export.layer_descriptors if d.digest == blob).annotations[
            "containerd.io/uncompressed"
        ]
        for blob in config.chain(config.records[export.step("build", 1).record_index].results[0].layer)[:3]
    ]
    assert roots == set(image_root_digests(resolved, golang_diffs, Platform()))
    copy_from = config.records[export.step("final", 2).record_index]
    checksum_links = [i for i in copy_from.inputs[1] if not i.selector]
    assert len(checksum_links) == 1 and not config.records[checksum_links[0].link].inputs
    with_checksum = generate(
        tiny(
            Stage(
                "final",
                ALPINE,
                (
                    copy(
                        "a.txt",
                        dest="/a.txt",
                        files={"a.txt": "a"},
                        overrides=Overrides(checksum="sha256:" + "1" * 64),
                    ),
                ),
            )
        )
    )
    assert checksum_record_digest("sha256:" + "1" * 64) in {r.digest for r in with_checksum.config.records}


def test_from_scratch_and_from_stage() -> None:
    export = generate(make_testdata.three_stages())
    config = export.config
    first = config.records[export.step("release", 1).record_index]
    assert len(first.inputs) == 1 and any(i.selector for i in first.inputs[0])
    assert config.chain(first.results[0].layer) == [export.step("release", 1).layer_blob]
    test_run = config.records[export.step("test", 1).record_index]
    assert [i.link for i in test_run.inputs[0]] == [export.step("build", 3).record_index]


def test_identical_step_on_identical_input_collapses_and_same_text_elsewhere_shares_digest() -> None:
    build = tiny(
        Stage("a", ALPINE, (run("apk add curl", {"usr/bin/curl": "x"}),)),
        Stage(
            "b",
            ALPINE,
            (run("apk add curl", {"usr/bin/curl": "x"}), copy("/usr/bin/curl", dest="/c", from_stage="a")),
        ),
        Stage("c", "b", (workdir("/w"),)),
        Stage("d", "a", (workdir("/w"), copy("/c", dest="/c", from_stage="c"))),
    )
    export = generate(build)
    assert export.step("a", 1).record_index == export.step("b", 1).record_index
    assert export.step("c", 1).record_digest == export.step("d", 1).record_digest
    assert export.step("c", 1).record_index != export.step("d", 1).record_index


def test_invalid_builds_are_refused() -> None:
    with pytest.raises(ValueError, match="not used by the target"):
        generate(tiny(Stage("unused", ALPINE, (run("true"),)), Stage("final", ALPINE, (run("false"),))))
    with pytest.raises(ValueError, match="RUN on scratch"):
        generate(tiny(Stage("final", None, (run("true"),))))
    with pytest.raises(ValueError, match="no op"):
        generate(tiny(Stage("final", ALPINE, ())))
    with pytest.raises(ValueError, match="earlier stage"):
        generate(tiny(Stage("final", "nope", (run("true"),))))


def test_docker_list_converts_layer_media_types() -> None:
    export = generate(make_testdata.multistage("max", "zstd", uncompressed_step=True))
    oci = {d["mediaType"] for d in json.loads(export.document("image-manifest"))["layers"]}
    assert oci == {
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar",
    }
    docker = json.loads(export.document("docker-manifest-list"))
    assert {d["mediaType"] for d in docker["manifests"][:-1]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
    }
    assert docker["manifests"][-1]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    assert list(docker["manifests"][-1]) == ["mediaType", "digest", "size"]


# --------------------------------------------------------------------------------------------------
# Layer content


def test_layer_blobs_are_real_and_decompress_to_their_diff_id() -> None:
    export = generate(make_testdata.multistage("max", "zstd", uncompressed_step=True))
    for descriptor in export.layer_descriptors:
        data = export.blobs[descriptor.digest]
        assert sha(data) == descriptor.digest and len(data) == descriptor.size
        if descriptor.media_type.endswith("+gzip"):
            tar = gzip.decompress(data)
            assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
        elif descriptor.media_type.endswith("+zstd"):
            tar = zstandard.ZstdDecompressor().decompress(data)
        else:
            tar = data
        assert sha(tar) == descriptor.annotations["containerd.io/uncompressed"]
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            assert all(m.mtime == 1717200000 and m.uid == 0 for m in archive.getmembers())


def test_copy_from_takes_the_file_from_the_source_stage() -> None:
    export = generate(make_testdata.multistage("max"))
    blob = export.step("final", 2).layer_blob
    assert blob is not None
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(export.blobs[blob]))) as archive:
        member = archive.extractfile("usr/local/bin/app")
        assert member is not None and member.read().startswith(b"\x7fELF")


def test_make_tar_has_parents_sorted_and_no_record_padding() -> None:
    tar = make_tar([File("b/c/d.txt", b"hi"), File("a", b"")])
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert archive.getnames() == ["a", "b", "b/c", "b/c/d.txt"]
    assert len(tar) == 512 * (4 + 1 + 2)  # 4 headers, one data block, two zero blocks


def test_generation_is_deterministic() -> None:
    for build in (make_testdata.multistage("max", "zstd", uncompressed_step=True), make_testdata.copy_link()):
        a, b = generate(build), generate(build)
        assert a.config_bytes == b.config_bytes and a.blobs == b.blobs
        assert all(a.document(f) == b.document(f) for f in FORMS)


# --------------------------------------------------------------------------------------------------
# Property: random small builds give well-formed configs that re-encode identically

_step = st.one_of(
    st.builds(lambda c: run(f"echo {c}", {f"f{c}": str(c)}), st.integers(0, 3)),
    st.builds(lambda p: workdir(f"/w{p}"), st.integers(0, 2)),
    st.builds(lambda n: copy(f"src{n}", dest="/dst/", files={f"dst/src{n}": "x"}), st.integers(0, 2)),
)


@st.composite
def _builds(draw: st.DrawFn) -> Build:
    count = draw(st.integers(1, 3))
    stages: list[Stage] = []
    for index in range(count):
        name = f"s{index}"
        bases: list[BaseImage | str | None] = [ALPINE, make_testdata.GOLANG, *(s.name for s in stages)]
        base = draw(st.sampled_from(bases))
        steps: list[Step] = list(draw(st.lists(_step, min_size=1, max_size=3)))
        for earlier in stages:  # every earlier stage must be used by the target
            if index == count - 1 and base != earlier.name:
                steps.append(copy(f"/f{earlier.name}", dest=f"/from-{earlier.name}", from_stage=earlier.name))
        link = draw(st.booleans())
        if link and stages:
            steps.append(copy("/x", dest="/linked", from_stage=stages[0].name, link=True))
        stages.append(Stage(name, base, tuple(steps)))
    return Build(tuple(stages), mode=draw(st.sampled_from(["min", "max"])))


@settings(max_examples=40, deadline=None)
@given(_builds())
def test_random_builds_are_well_formed(build: Build) -> None:
    try:
        export = generate(build)
    except ValueError as error:  # a stage only reachable through FROM chains that the target skips
        assert "not used by the target" in str(error)
        return
    config = export.config
    assert go_json(json.loads(export.config_bytes)) == export.config_bytes
    for form in FORMS:
        assert go_json(json.loads(export.document(form))) == export.document(form)
    blobs = {layer.blob for layer in config.layers}
    assert blobs == {d.digest for d in export.layer_descriptors} == set(export.blobs)
    for record in config.records:
        for alts in record.inputs:
            assert alts and all(0 <= i.link < len(config.records) for i in alts)
        for result in record.results:
            config.chain(result.layer)
    assert sum(1 for r in config.records if r.results) >= 1


# --------------------------------------------------------------------------------------------------
# Layouts and the committed testdata


def test_write_layout_shares_blobs_between_tags(tmp_path: Path) -> None:
    export = generate(make_testdata.spec_example("min"))
    with pytest.raises(ValueError, match="does not hash"):  # synthetic layers have no bytes
        write_layout(tmp_path, [export.layout_entry("latest", "image-manifest")], {"sha256:" + "0" * 64: b""})
    real = generate(make_testdata.multistage("min"))
    entries = [real.layout_entry(f, f) for f in FORMS] + [real.layout_entry("latest", "oci-index")]
    write_layout(tmp_path / "layout", entries, real.layout_blobs())
    index = json.loads((tmp_path / "layout" / "index.json").read_bytes())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        *FORMS,
        "latest",
    ]
    assert (tmp_path / "layout" / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert (tmp_path / "layout" / "index.json").read_bytes() == go_json(
        json.loads((tmp_path / "layout" / "index.json").read_bytes())
    )


def test_make_testdata_check_passes_on_committed_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert make_testdata.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_make_testdata_check_reports_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_dir = tmp_path / "testdata"
    shutil.copytree(TESTDATA, copy_dir)
    (copy_dir / "spec" / "min-config.json").write_bytes(b"{}")
    (copy_dir / "layouts" / "loop" / "stray").write_bytes(b"x")
    (copy_dir / "samples.json").unlink()
    assert make_testdata.main(["--check", "--testdata", str(copy_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "differs: testdata/layouts/loop/stray",
        "differs: testdata/samples.json",
        "differs: testdata/spec/min-config.json",
    ]


def _samples() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((TESTDATA / "samples.json").read_text())
    return data


def test_testdata_is_small() -> None:
    total = sum(p.stat().st_size for p in TESTDATA.rglob("*") if p.is_file())
    assert total < 3 * 1024 * 1024


@pytest.mark.parametrize("sample", [s["name"] for s in _samples()])
def test_layout_blobs_hash_to_their_names_and_descriptors_match(sample: str) -> None:
    entry = next(s for s in _samples() if s["name"] == sample)
    layout = TESTDATA / entry["layout"]
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    present = {}
    for folder in ("blobs", "removed-blobs"):
        for path in (layout / folder / "sha256").glob("*"):
            data = path.read_bytes()
            assert sha(data) == "sha256:" + path.name
            present["sha256:" + path.name] = data
    removed = {"sha256:" + p.name for p in (layout / "removed-blobs" / "sha256").glob("*")}
    assert removed == set(entry["removed_blobs"])
    index = json.loads((layout / "index.json").read_bytes())
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert tags == entry["tags"] + entry.get("image_tags", [])
    referenced: set[str] = set()

    def walk(descriptor: dict[str, Any]) -> None:
        """Every child of a document, descending into image indexes whose children are manifests."""
        document = json.loads(present[descriptor["digest"]])
        assert descriptor["mediaType"] == document["mediaType"]
        if "manifests" in document and all(m["mediaType"] in MANIFEST_TYPES for m in document["manifests"]):
            children = list(document["manifests"])  # an image index
        else:
            children = ([document["config"]] if "config" in document else []) + _layer_entries(document)
            if "manifests" in document:
                children.append(document["manifests"][-1])
        for child in children:
            referenced.add(child["digest"])
            if child["digest"] in present:
                assert len(present[child["digest"]]) == child["size"]
                if child["mediaType"] in MANIFEST_TYPES:
                    walk(child)
            else:
                assert child["digest"] in entry["removed_blobs"]

    for top in index["manifests"]:
        assert len(present[top["digest"]]) == top["size"]
        walk(top)
        form = entry["forms"][tags[index["manifests"].index(top)]]
        expected_type = {
            "image-manifest": "application/vnd.oci.image.manifest.v1+json",
            "image": "application/vnd.oci.image.manifest.v1+json",
            "image-index": "application/vnd.oci.image.index.v1+json",
            "oci-index": "application/vnd.oci.image.index.v1+json",
            "docker-manifest-list": "application/vnd.docker.distribution.manifest.list.v2+json",
        }[form]
        assert top["mediaType"] == json.loads(present[top["digest"]])["mediaType"] == expected_type
    assert referenced | {m["digest"] for m in index["manifests"]} == set(present) | removed


def _cache_config(entry: dict[str, Any]) -> tuple[bytes, bytes]:
    layout = TESTDATA / entry["layout"]
    index = json.loads((layout / "index.json").read_bytes())
    top = index["manifests"][0]
    manifest = (layout / "blobs" / "sha256" / top["digest"][7:]).read_bytes()
    document = json.loads(manifest)
    config = document["config"] if "config" in document else document["manifests"][-1]
    return manifest, (layout / "blobs" / "sha256" / config["digest"][7:]).read_bytes()


def test_samples_json_describes_the_layouts() -> None:
    samples = {s["name"]: s for s in _samples()}
    assert set(samples) == {
        "multistage-max",
        "multistage-min",
        "mixed-compression",
        "copy-link",
        "three-stages",
        "missing-blob",
        "oversized-config",
        "loop",
        "not-a-cache",
        "named-build",
        "named-build-min",
        "scratch-and-link",
        "multi-platform",
        "explain-demo",
    }
    for name, entry in samples.items():
        assert set(entry) >= {"name", "layout", "tags", "forms", "removed_blobs", "stages", "mode"}
        assert set(entry) >= {"expected_problems", "notes", "layers", "records"}
        if name == "not-a-cache":
            assert entry["records"] is None and entry["mode"] is None
            continue
        manifest, raw = _cache_config(entry)
        config = json.loads(raw)
        assert len(config["records"]) == entry["records"]
        assert len({layer["blob"] for layer in config["layers"]}) == entry["layers"]
        assert entry["mode"] in ("min", "max")
        healthy = name not in ("missing-blob", "oversized-config", "loop")
        assert (entry["expected_problems"] == []) == healthy
        if name == "oversized-config":
            assert len(raw) > 1048576 and len(manifest) < 65536
            assert entry["expected_problems"] == ["config-too-large"]
        if name == "missing-blob":
            assert entry["expected_problems"] == ["blob-missing"] and len(entry["removed_blobs"]) == 1
        if name == "loop":
            assert entry["expected_problems"] == ["config-invalid"]
    assert samples["multistage-max"]["forms"] == {f: f for f in FORMS}
    assert samples["three-stages"]["stages"] == 3


def test_loop_sample_has_a_reachable_cycle() -> None:
    entry = next(s for s in _samples() if s["name"] == "loop")
    config = json.loads(_cache_config(entry)[1])
    layers = config["layers"]

    def loops(index: int) -> bool:
        seen = set()
        while index != -1:
            if index in seen:
                return True
            seen.add(index)
            index = layers[index].get("parent", 0)
        return False

    assert any(loops(result["layer"]) for record in config["records"] for result in record.get("layers", []))


def test_not_a_cache_images() -> None:
    layout = TESTDATA / "layouts" / "not-a-cache"
    index = json.loads((layout / "index.json").read_bytes())
    configs = {}
    for top in index["manifests"]:
        manifest = json.loads((layout / "blobs" / "sha256" / top["digest"][7:]).read_bytes())
        assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        raw = (layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes()
        configs[top["annotations"]["org.opencontainers.image.ref.name"]] = json.loads(raw)
        assert len(
            configs[top["annotations"]["org.opencontainers.image.ref.name"]]["rootfs"]["diff_ids"]
        ) == len(manifest["layers"])
    assert "moby.buildkit.cache.v0" not in configs["image"]
    records = json.loads(base64.b64decode(configs["inline-cache"]["moby.buildkit.cache.v0"]))
    assert [r["layers"] for r in records if "layers" in r] == [
        [{"layer": 1, "createdAt": records[-1]["layers"][0]["createdAt"]}]
    ]


def test_cache_export_with_config_rehashes() -> None:
    export = generate(make_testdata.multistage("max"))
    looped = export.with_config(make_testdata.loop_config(export))
    assert looped.config_bytes != export.config_bytes
    assert looped.config_descriptor.digest == sha(looped.config_bytes)
    assert looped.layer_descriptors == export.layer_descriptors
    assert (
        json.loads(looped.document("image-manifest"))["config"]["digest"] == looped.config_descriptor.digest
    )
    assert isinstance(looped, CacheExport)
    with pytest.raises(ValueError, match="invalid layer chain"):
        looped.config.chain(looped.step("final", 2).layer_index or 0)


def test_synthetic_layers_need_a_size() -> None:
    base = BaseImage("x", (LayerSpec(blob="sha256:" + "a" * 64),), digest="sha256:" + "b" * 64)
    with pytest.raises(ValueError, match="explicit size"):
        generate(tiny(Stage("final", base, (run("true"),))))


# --------------------------------------------------------------------------------------------------
# Dockerfile samples (tests/harness/dockerfilegen.py): labels, roots, images, provenance

DOCKERFILE_SAMPLES = ("named-build", "named-build-min", "scratch-and-link", "multi-platform")


def _sample(name: str) -> dict[str, Any]:
    return next(s for s in _samples() if s["name"] == name)


def _blob(entry: dict[str, Any], digest: str) -> bytes:
    layout: Path = TESTDATA / entry["layout"]
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _tagged(entry: dict[str, Any], tag: str) -> tuple[str, bytes]:
    index = json.loads((TESTDATA / entry["layout"] / "index.json").read_bytes())
    top = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    return top["digest"], _blob(entry, top["digest"])


def _config(entry: dict[str, Any]) -> dict[str, Any]:
    manifest = json.loads(_tagged(entry, "latest")[1])
    config: dict[str, Any] = json.loads(_blob(entry, manifest["config"]["digest"]))
    return config


def _totals(text: str) -> dict[str, int]:
    """Stage totals counted independently of the generator (convert.go 487-499): 1 for FROM of an
    external image, plus one per ADD/COPY/RUN/WORKDIR."""
    totals: dict[str, int] = {}
    names: list[str] = []
    current = ""
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        word = words[0].upper()
        if word == "FROM":
            current = words[3].lower() if len(words) == 4 else f"stage-{len(names)}"
            base = words[1]
            totals[current] = 0 if base == "scratch" or base in names else 1
            names.append(current)
        elif word in ("ADD", "COPY", "RUN", "WORKDIR") and names:
            totals[current] += 1
    return totals


@pytest.mark.parametrize("name", DOCKERFILE_SAMPLES)
def test_dockerfile_sample_entries(name: str) -> None:
    entry = _sample(name)
    for key in ("stages", "layers", "records", "mode", "forms", "expected_problems", "expected_steps"):
        assert key in entry
    assert entry["expected_problems"] == [] and set(entry) >= {"expected_bases", "dockerfile", "push"}
    text = (TESTDATA / entry["dockerfile"]).read_text()
    config = _config(entry)
    blobs = {layer["blob"] for layer in config["layers"]}
    lines = text.splitlines()
    totals = _totals(text)
    multi = len(entry["platforms"]) > 1
    for step in entry["expected_steps"]:
        assert config["records"][step["record_index"]]["digest"] == step["record"]
        assert step["total"] == totals[step["stage"]]
        prefix = f"[{step['platform']} " if multi else "["
        assert step["label"].startswith(f"{prefix}{step['stage']} {step['number']}/{step['total']}] ")
        instruction = lines[step["line"] - 1].split()[0].upper()
        assert instruction == step["instruction"] and step["label"].split("] ", 1)[1].startswith(instruction)
        if entry["mode"] == "max":
            assert step["layer"] in blobs
            record = config["records"][step["record_index"]]
            assert len(record["layers"]) == 1
        elif step["layer"] is not None:
            assert step["layer"] in blobs
    for base in entry["expected_bases"]:
        digests = [r["digest"] for r in config["records"]]
        assert all(root in digests for root in base["root_records"])
        prefix = f"[{base['platform']} " if multi else "["
        assert base["label"] == (
            f"{prefix}{base['stage']} 1/{base['total']}] FROM {normalize_ref(base['ref'])}@{base['digest']}"
        )
    # every (platform, stage, number) once; numbers run 2.. after an external FROM, 1.. otherwise
    keys = [(s["platform"], s["stage"], s["number"]) for s in entry["expected_steps"]]
    assert len(keys) == len(set(keys))


def test_named_build_labels_are_what_buildkit_prints() -> None:
    steps = {(s["stage"], s["number"]): s for s in _sample("named-build")["expected_steps"]}
    assert steps["build", 2]["label"] == "[build 2/6] WORKDIR /src"
    assert steps["build", 3]["label"] == "[build 3/6] COPY go.mod go.sum ./"
    # ${VERSION} expanded from the stage's ARG, quotes kept, the continuation's spaces kept
    assert (
        steps["build", 6]["label"]
        == '[build 6/6] RUN go build -ldflags "-X main.version=dev"       -o /out/app ./cmd/app'
    )
    assert (steps["build", 6]["line"], steps["build", 6]["end_line"]) == (11, 12)
    assert steps["test", 1]["label"] == "[test 1/1] RUN go test ./... > /out/test-report.txt"
    assert steps["stage-2", 3]["label"] == "[stage-2 3/4] COPY --from=build /out/app /usr/local/bin/app"
    assert (
        steps["stage-2", 4]["label"] == "[stage-2 4/4] COPY --from=test /out/test-report.txt /usr/share/app/"
    )
    assert [(b["stage"], b["ref"]) for b in _sample("named-build")["expected_bases"]] == [
        ("build", "docker.io/library/golang:1.23-alpine"),
        ("stage-2", "docker.io/library/alpine:3.20"),
    ]
    golang = make_testdata.GOLANG_123.digest
    assert _sample("named-build")["expected_bases"][0]["label"] == (
        f"[build 1/6] FROM docker.io/library/golang:1.23-alpine@{golang}"
    )
    minimal = _sample("named-build-min")
    assert [s["label"] for s in minimal["expected_steps"]] == [s["label"] for s in steps.values()]
    assert [s["layer"] is not None for s in minimal["expected_steps"]] == [False] * 6 + [True] * 3


def test_scratch_and_link_labels_shared_record_and_pruned_stage() -> None:
    entry = _sample("scratch-and-link")
    steps = {(s["stage"], s["number"]): s for s in entry["expected_steps"]}
    assert steps["certs", 2]["label"] == "[certs 2/2] RUN apk add --no-cache ca-certificates"
    assert steps["tools", 2]["label"] == "[tools 2/3] RUN apk add --no-cache ca-certificates"
    assert steps["certs", 2]["record"] == steps["tools", 2]["record"]  # same op on the same input: one record
    assert steps["certs", 2]["record_index"] == steps["tools", 2]["record_index"]
    assert steps["certs", 2]["layer"] == steps["tools", 2]["layer"]
    first = steps["stage-3", 1]
    assert (
        first["label"] == "[stage-3 1/3] COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/"
    )
    link = steps["stage-3", 2]
    assert link["label"] == "[stage-3 2/3] COPY --link --from=tools /usr/bin/curl /usr/bin/curl"
    assert link["link_label"] == "[stage-3 2/3] LINK COPY --link --from=tools /usr/bin/curl /usr/bin/curl"
    assert "unused" not in {s["stage"] for s in entry["expected_steps"]} and entry["stages"] == 3
    config = _config(entry)
    copy_record = next(r for r in config["records"] if r["digest"] == link["link_copy_record"])
    merge_record = config["records"][link["record_index"]]
    assert [i["link"] for i in merge_record["inputs"][0]] == [first["record_index"]]
    layers = config["layers"]
    assert layers[copy_record["layers"][0]["layer"]] == {"blob": link["layer"], "parent": -1}
    # FROM scratch: the first COPY's only input is its source (certs' RUN, selector) + checksum root
    first_record = config["records"][first["record_index"]]
    assert len(first_record["inputs"]) == 1
    assert steps["certs", 2]["record_index"] in [i["link"] for i in first_record["inputs"][0]]


def test_multi_platform_labels_and_per_platform_roots() -> None:
    entry = _sample("multi-platform")
    assert entry["platforms"] == ["linux/amd64", "linux/arm64"]
    labels = [s["label"] for s in entry["expected_steps"]]
    assert "[linux/arm64 build 4/4] RUN CGO_ENABLED=0 GOARCH=arm64 go build -o /out/app ." in labels
    assert "[linux/amd64 build 4/4] RUN CGO_ENABLED=0 GOARCH=amd64 go build -o /out/app ." in labels
    assert "[linux/arm64 stage-1 3/3] COPY --from=build /out/app /usr/local/bin/app" in labels
    bases = {(b["platform"], b["stage"]): b for b in entry["expected_bases"]}
    index = make_testdata.GOLANG_123.digest
    assert bases["linux/amd64", "build"]["digest"] == bases["linux/arm64", "build"]["digest"] == index
    assert bases["linux/amd64", "build"]["root_records"] != bases["linux/arm64", "build"]["root_records"]
    config = _config(entry)
    amd = {s["record"] for s in entry["expected_steps"] if s["platform"] == "linux/amd64"}
    arm = {s["record"] for s in entry["expected_steps"] if s["platform"] == "linux/arm64"}
    assert not amd & arm  # every op carries its platform
    assert sum(1 for s in entry["expected_steps"]) == 10 and len(config["records"]) == entry["records"]


@pytest.mark.parametrize("name", DOCKERFILE_SAMPLES)
def test_dockerfile_sample_roots_follow_the_key_formulas(name: str) -> None:
    """Both root records of every FROM, recomputed from the base documents (spec §3.3)."""
    entry = _sample(name)
    config = _config(entry)
    bases = {"docker.io/library/golang:1.23-alpine": make_testdata.GOLANG_123}
    bases["docker.io/library/alpine:3.20"] = make_testdata.ALPINE_320
    for base in entry["expected_bases"]:
        index = bases[normalize_ref(base["ref"])]
        platform = Platform.parse(base["platform"])
        index_doc = json.loads(index.index_bytes)
        child = next(m for m in index_doc["manifests"] if m["platform"] == platform.to_oci())
        image = {c.platform: img for c, img in index.children()}[platform]
        assert image.manifest_descriptor.digest == child["digest"]
        diff_ids = json.loads(image.config_bytes)["rootfs"]["diff_ids"]
        assert base["chain_id"] == chain_id(diff_ids)
        manifest_root, chain_root = image_root_digests(index.digest, diff_ids, platform)
        assert base["root_records"] == [chain_root, manifest_root]
        expected = key_digest(key_digest("buildkit.source.v0:" + manifest_key(index.digest, platform)) + "@0")
        assert manifest_root == expected
        # both roots are the alternatives of one input of the stage's first op
        links = {i: r["digest"] for i, r in enumerate(config["records"])}
        assert any(
            {links[i["link"]] for i in alts} == {chain_root, manifest_root}
            for r in config["records"]
            for alts in r.get("inputs", [])
        )
        if "base-golang" in entry["forms"]:  # the pushed bases are these bytes
            tag = "base-golang" if "golang" in base["ref"] else "base-alpine"
            digest, data = _tagged(entry, tag)
            assert digest == index.digest and data == index.index_bytes


def test_dockerfile_build_args_override_the_registry_and_keep_the_roots() -> None:
    text = make_testdata.DOCKERFILES["named-build"]
    host = "127.0.0.1:5000"
    bases = {
        f"{host}/library/golang:1.23-alpine": make_testdata.GOLANG_123,
        f"{host}/library/alpine:3.20": make_testdata.ALPINE_320,
    }
    export = from_dockerfile(text, bases=bases, build_args={"REGISTRY": host}).export()
    assert [b.ref for b in export.bases] == [
        f"{host}/library/golang:1.23-alpine",
        f"{host}/library/alpine:3.20",
    ]
    assert export.bases[0].label.startswith(f"[build 1/6] FROM {host}/library/golang:1.23-alpine@sha256:")
    default = _sample("named-build")["expected_bases"]
    assert [[b.chain_root, b.manifest_root] for b in export.bases] == [b["root_records"] for b in default]
    pruned = from_dockerfile(text, bases=bases, build_args={"REGISTRY": host}, target="test")
    assert pruned.stages == ("build", "test")
    assert [s.label for s in pruned.export().steps][
        -1
    ] == "[test 1/1] RUN go test ./... > /out/test-report.txt"


def test_dockerfile_label_width_env_and_no_record_instructions() -> None:
    alpine = make_testdata.ALPINE_320
    runs = "\n".join(f"RUN echo {i}" for i in range(9))
    text = f"FROM alpine:3.20\nENV GREETING=hello\nLABEL a=b\nUSER root\n{runs}\nRUN echo $GREETING $UNSET '$X'\n"
    export = from_dockerfile(text, bases={"alpine:3.20": alpine}).export()
    labels = [s.label for s in export.steps]
    # one stage: no stage name; total 11 -> "%*d" pads to two digits; RUN keeps unset vars and quotes
    assert labels[0] == "[ 2/11] RUN echo 0" and labels[-1] == "[11/11] RUN echo hello $UNSET '$X'"
    assert export.bases[0].label.startswith("[ 1/11] FROM docker.io/library/alpine:3.20@")
    assert len(export.cache.config.records) == 10 + 2  # ENV/LABEL/USER make no record
    ten = from_dockerfile("FROM scratch\n" + "\n".join(f"COPY f{i} /" for i in range(10)), bases={}).export()
    assert ten.steps[0].label == "[ 1/10] COPY f0 /"  # Go's Log10(10) is exactly 1


def test_shell_lexer_matches_buildkit_rules() -> None:
    env = {"A": "x y", "E": "", "P": "/usr/local/bin"}
    lex = Lex()
    assert lex.process_word('"$A" ${A:-d} ${E:-d} ${E-d} ${U:+s} ${A:+s}', env) == "x y x y d   s"
    assert (
        lex.process_word("'$A' \\$A ${P#/usr} ${P##*/} ${P%/*} ${P/local/l}", env)
        == "$A $A /local/bin bin /usr/local /usr/l/bin"
    )
    raw = Lex(raw_quotes=True, skip_unset_env=True)
    assert raw.process_word("echo \"$A\" '$A' $U ${U}", env) == "echo \"x y\" '$A' $U ${U}"
    assert lex.process_words('a "b c" $A', env) == ["a", "b c", "x", "y"]
    assert normalize_ref("golang:1.23") == "docker.io/library/golang:1.23"
    assert normalize_ref("alpine") == "docker.io/library/alpine:latest"
    assert normalize_ref("127.0.0.1:5000/library/alpine:3.20") == "127.0.0.1:5000/library/alpine:3.20"
    assert normalize_ref("ghcr.io/acme/app") == "ghcr.io/acme/app:latest"


# --- the built images and their provenance


def _image(entry: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    _, raw = _tagged(entry, "image")
    assert raw == json.dumps(json.loads(raw), indent=2).encode()  # json.MarshalIndent(…, "", "  ")
    index = json.loads(raw)
    platforms = [m for m in index["manifests"] if "annotations" not in m]
    attestations = [m for m in index["manifests"] if "annotations" in m]
    return index, platforms, attestations


@pytest.mark.parametrize("name", ["named-build", "multi-platform"])
def test_built_image_index_manifests_and_history(name: str) -> None:
    entry = _sample(name)
    index, platforms, attestations = _image(entry)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in platforms] == entry["platforms"]
    assert index["manifests"] == platforms + attestations  # platform manifests first
    final_steps = [s for s in entry["expected_steps"] if s["stage"] == entry["built_stages"][-1]]
    for manifest_desc in platforms:
        manifest = json.loads(_blob(entry, manifest_desc["digest"]))
        assert _blob(entry, manifest_desc["digest"]) == json.dumps(manifest, indent=2).encode()
        config = json.loads(_blob(entry, manifest["config"]["digest"]))
        assert list(config) == sorted(config)
        diff_ids = []
        for layer in manifest["layers"]:
            assert set(layer) == {"mediaType", "digest", "size"}
            diff_ids.append(sha(gzip.decompress(_blob(entry, layer["digest"]))))
        assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
        history = config["history"]
        assert sum(1 for h in history if not h.get("empty_layer")) == len(manifest["layers"])
        ours = [h for h in history if h.get("comment") == "buildkit.dockerfile.v0"]
        assert all("created" in h for h in history)
        assert "RUN /bin/sh -c apk add --no-cache ca-certificates # buildkit" in [
            h["created_by"] for h in ours
        ]
        assert "COPY /out/app /usr/local/bin/app # buildkit" in [h["created_by"] for h in ours]
        platform = f"{manifest_desc['platform']['os']}/{manifest_desc['platform']['architecture']}"
        top_layers = [s["layer"] for s in final_steps if s["platform"] == platform]
        assert [layer["digest"] for layer in manifest["layers"]][-len(top_layers) :] == top_layers
    if name == "named-build":
        assert [h["created_by"] for h in ours][-4:] == [
            "ENV APP_ENV=production",
            "EXPOSE [8080/tcp]",
            "USER nobody",
            'CMD ["/usr/local/bin/app"]',
        ]
        assert all(h["empty_layer"] for h in ours[-4:])
        assert config["config"]["User"] == "nobody" and config["config"]["ExposedPorts"] == {"8080/tcp": {}}
        assert config["created"] == history[-1]["created"]


V1_KEYS = {
    "buildDefinition": {"buildType", "externalParameters", "internalParameters", "resolvedDependencies"},
    "runDetails": {"builder", "metadata"},
}


def _provenance(entry: dict[str, Any], platform: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statement, the predicate's buildkit metadata) of one platform's attestation."""
    _, platforms, attestations = _image(entry)
    target = next(
        m for m in platforms if f"{m['platform']['os']}/{m['platform']['architecture']}" == platform
    )
    att = next(m for m in attestations if m["annotations"]["vnd.docker.reference.digest"] == target["digest"])
    assert att["annotations"] == {
        "vnd.docker.reference.digest": target["digest"],
        "vnd.docker.reference.type": "attestation-manifest",
    }
    assert att["platform"] == {"architecture": "unknown", "os": "unknown"}
    manifest = json.loads(_blob(entry, att["digest"]))
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.in-toto+json"
    predicate_type = entry["attestations"]["image"]["predicate_type"]
    assert layer["annotations"] == {"in-toto.io/predicate-type": predicate_type}
    config = json.loads(_blob(entry, manifest["config"]["digest"]))
    assert config == {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    statement = json.loads(_blob(entry, layer["digest"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == predicate_type
    assert [s["digest"] for s in statement["subject"]] == [{"sha256": target["digest"][7:]}]
    predicate = statement["predicate"]
    if predicate_type.endswith("/v1"):
        for key, keys in V1_KEYS.items():
            assert set(predicate[key]) == keys
        assert predicate["buildDefinition"]["buildType"] == (
            "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
        )
        internal = predicate["buildDefinition"]["internalParameters"]
        assert list(internal) == sorted(internal) and internal["builderPlatform"] == "linux/amd64"
        definition = internal["buildConfig"]["llbDefinition"]
        mapping = internal["buildConfig"]["digestMapping"]
        metadata = predicate["runDetails"]["metadata"]
        assert set(metadata) == {
            "invocationId",
            "startedOn",
            "finishedOn",
            "buildkit_metadata",
            "buildkit_completeness",
        }
        buildkit = metadata["buildkit_metadata"]
        assert predicate["buildDefinition"]["externalParameters"]["configSource"] == {"path": "Dockerfile"}
    else:
        assert list(predicate) == [
            "builder",
            "buildType",
            "materials",
            "invocation",
            "buildConfig",
            "metadata",
        ]
        assert predicate["buildType"] == "https://mobyproject.org/buildkit@v1"
        assert predicate["invocation"]["environment"] == {
            "dockerfileVersion": "1.26.0",
            "platform": "linux/amd64",
        }
        assert predicate["invocation"]["configSource"] == {"entryPoint": "Dockerfile"}
        definition = predicate["buildConfig"]["llbDefinition"]
        mapping = predicate["buildConfig"]["digestMapping"]
        metadata = predicate["metadata"]
        assert metadata["completeness"] == {"parameters": True, "environment": True, "materials": False}
        buildkit = metadata["https://mobyproject.org/buildkit@v1#metadata"]
    assert [step["id"] for step in definition] == [f"step{i}" for i in range(len(definition))]
    assert sorted(mapping.values(), key=lambda v: int(v[4:])) == [s["id"] for s in definition]
    assert definition[-1]["op"] == {"Op": {}} and len(definition[-1]["inputs"]) == 1  # the terminal
    for step in definition:
        for ref in step.get("inputs", []):
            assert re.fullmatch(r"step\d+:0", ref) and int(ref[4:].split(":")[0]) < int(step["id"][4:])
    return statement, buildkit | {"_definition": definition}


@pytest.mark.parametrize(
    ("name", "platform"),
    [("named-build", "linux/amd64"), ("multi-platform", "linux/amd64"), ("multi-platform", "linux/arm64")],
)
def test_provenance_maps_cache_layers_to_steps_and_dockerfile_lines(name: str, platform: str) -> None:
    entry = _sample(name)
    _, buildkit = _provenance(entry, platform)
    definition = buildkit["_definition"]
    text = (TESTDATA / entry["dockerfile"]).read_text()
    info = buildkit["source"]["infos"][0]
    assert (info["filename"], info["language"]) == ("Dockerfile", "Dockerfile")
    assert base64.b64decode(info["data"]).decode() == text
    locations = buildkit["source"]["locations"]
    for key, value in locations.items():
        assert re.fullmatch(r"step\d+", key) and int(key[4:]) < len(definition)
        for location in value["locations"]:
            for r in location["ranges"]:
                assert 1 <= r["start"]["line"] <= r["end"]["line"] <= len(text.splitlines())
    cache_blobs = {layer["blob"] for layer in _config(entry)["layers"]}
    _, platforms, _ = _image(entry)
    image_blobs = {
        layer["digest"] for m in platforms for layer in json.loads(_blob(entry, m["digest"]))["layers"]
    }
    layers = buildkit["layers"]
    assert layers and list(layers) == sorted(layers)
    by_top: dict[str, list[str]] = {}
    for key, chains in layers.items():
        assert re.fullmatch(r"step\d+:0", key)
        for chain in chains:
            for descriptor in chain:
                assert set(descriptor) == {"mediaType", "digest", "size"}
                assert descriptor["digest"] in cache_blobs | image_blobs
            by_top.setdefault(chain[-1]["digest"], []).append(key.split(":")[0])
    # the exact mapping: cache layer blob -> LLB step -> Dockerfile line(s)
    mapped = 0
    for step in entry["expected_steps"]:
        if step["platform"] != platform or step["layer"] not in by_top:
            continue
        lines = {
            (r["start"]["line"], r["end"]["line"])
            for s in by_top[step["layer"]]
            for location in locations[s]["locations"]
            for r in location["ranges"]
        }
        assert (step["line"], step["end_line"]) in lines
        mapped += 1
    final = entry["built_stages"][-1]
    assert mapped == sum(
        1 for s in entry["expected_steps"] if s["platform"] == platform and s["stage"] == final
    )
    for base in entry["expected_bases"]:
        if base["platform"] == platform:  # every pulled base image is in the map with its chain
            assert any(
                [d["digest"] for d in chain] == base["layers"]
                for chains in layers.values()
                for chain in chains
            )


def test_provenance_materials_and_request() -> None:
    statement, _ = _provenance(_sample("named-build"), "linux/amd64")
    definition = statement["predicate"]["buildDefinition"]
    assert [d["uri"] for d in definition["resolvedDependencies"]] == [
        "pkg:docker/alpine@3.20?platform=linux%2Famd64",
        "pkg:docker/golang@1.23-alpine?platform=linux%2Famd64",
    ]
    assert definition["resolvedDependencies"][1]["digest"] == {"sha256": make_testdata.GOLANG_123.digest[7:]}
    assert definition["externalParameters"]["request"] == {
        "frontend": "dockerfile.v0",
        "locals": [{"name": "context"}, {"name": "dockerfile"}],
    }
    assert statement["subject"][0]["name"] == "pkg:docker/samples/named-build@image?platform=linux%2Famd64"
    v02, _ = _provenance(_sample("multi-platform"), "linux/arm64")
    assert [m["uri"] for m in v02["predicate"]["materials"]] == [
        "pkg:docker/alpine@3.20?platform=linux%2Farm64",
        "pkg:docker/golang@1.23-alpine?platform=linux%2Farm64",
    ]


def test_dockerfile_exports_are_deterministic_and_match_testdata() -> None:
    a, b = make_testdata.multi_platform().export(), make_testdata.multi_platform().export()
    assert a.cache.config_bytes == b.cache.config_bytes
    assert a.image("v0.2").index_bytes == b.image("v0.2").index_bytes
    entry = _sample("multi-platform")
    built = a.image("v0.2", "samples/multi-platform:image")
    assert _tagged(entry, "image") == (built.index_descriptor.digest, built.index_bytes)
    assert _tagged(entry, "latest")[1] == a.cache.document("image-manifest")
