"""Regenerate ``testdata/`` (spec examples, OCI layouts of sample caches, ``samples.json``).

    python -m tests.harness.make_testdata            # rewrite testdata/spec, testdata/layouts, testdata/samples.json
    python -m tests.harness.make_testdata --check    # exit 1 and list the files that differ, 0 if all match

Everything is deterministic: layer tars have fixed names/owners/mtimes, gzip has mtime 0, zstd a fixed
level, and times come from a synthetic timeline. ``testdata/README.md`` is written by hand and left alone.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.harness.dockerfilegen import DockerfileBuild, StepFiles, base_documents, from_dockerfile
from tests.harness.explaingen import CONTEXT_FILES, base_image, previous_cache
from tests.harness.fixturegen import (
    FORMS,
    BaseImage,
    BaseIndex,
    Build,
    CacheConfig,
    CacheExport,
    Compression,
    File,
    Form,
    LayerSpec,
    LayoutEntry,
    Mode,
    Overrides,
    Platform,
    Stage,
    build_image,
    copy,
    digest_of,
    generate,
    inline_cache_records,
    run,
    workdir,
    write_layout,
)
from tests.harness.paths import TESTDATA
from tests.harness.provenancegen import ProvenanceVersion

__all__ = [
    "ALPINE",
    "ALPINE_320",
    "DOCKERFILES",
    "EXPLAIN_DEMO",
    "EXPLAIN_DEMO_EDITED",
    "GOLANG",
    "GOLANG_123",
    "SPEC_ALPINE",
    "SPEC_FILE_FORMS",
    "GeneratedSample",
    "generate_all",
    "main",
    "multistage",
    "spec_example",
]

GENERATED = ("spec", "layouts", "dockerfiles", "contexts", "samples.json")  # paths under testdata/ it owns


def _noise(label: str, size: int) -> bytes:
    """Deterministic incompressible bytes (stand-ins for binaries)."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _binary(label: str, size: int) -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + _noise(label, size - 8)


# --------------------------------------------------------------------------------------------------
# Base images (synthetic but with real layer content). The golang image shares alpine's layer,
# like golang:*-alpine really does, so the same (blob, parent -1) entry serves both chains.

_ALPINE_ROOTFS = LayerSpec(
    files=(
        File("bin/busybox", _binary("busybox", 1536), mode=0o755),
        File("bin/sh", type="symlink", linkname="/bin/busybox", mode=0o777),
        File("etc/alpine-release", b"3.20.0\n"),
        File(
            "etc/os-release",
            b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME="Alpine Linux v3.20"\n',
        ),
        File("etc/apk/world", b"alpine-baselayout\nbusybox\nmusl\n"),
        File("lib/ld-musl-x86_64.so.1", _binary("musl", 768), mode=0o755),
    )
)

ALPINE = BaseImage("alpine:3.20", (_ALPINE_ROOTFS,), created="2024-05-22T18:18:12Z")
GOLANG = BaseImage(
    "golang:1.22-alpine",
    (
        _ALPINE_ROOTFS,
        LayerSpec(
            files=(
                File("usr/local/go/VERSION", b"go1.22.4\ntime 2024-05-30T19:26:07Z\n"),
                File("usr/local/go/bin/go", _binary("go", 1280), mode=0o755),
                File("usr/local/go/bin/gofmt", _binary("gofmt", 512), mode=0o755),
            )
        ),
        LayerSpec(
            files=(
                File("go/bin", mode=0o777, type="dir"),
                File("go/src", mode=0o777, type="dir"),
                File("go/pkg", mode=0o777, type="dir"),
            )
        ),
    ),
    created="2024-06-04T21:03:44Z",
)

_APP = _binary("app", 1792)
_GO_MOD = "module example.com/app\n\ngo 1.22\n\nrequire github.com/google/uuid v1.6.0\n"
_GO_SUM = "github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n"


def multistage(mode: Mode, compression: Compression = "gzip", *, uncompressed_step: bool = False) -> Build:
    """The two-stage Go build of the layout samples (``build`` on golang, final on alpine)."""
    context_copy = LayerSpec(
        files=(
            File("src/main.go", b'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n'),
            File("src/internal/version/version.go", b'package version\n\nconst Version = "1.4.2"\n'),
        ),
        compression="uncompressed" if uncompressed_step else None,
    )
    return Build(
        (
            Stage(
                "build",
                GOLANG,
                (
                    workdir("/src"),
                    copy(
                        "go.mod",
                        "go.sum",
                        dest="./",
                        files={"src/go.mod": _GO_MOD, "src/go.sum": _GO_SUM},
                    ),
                    run(
                        "go mod download",
                        {
                            "go/pkg/mod/cache/download/github.com/google/uuid/@v/v1.6.0.zip": _noise(
                                "uuid", 900
                            ),
                            "go/pkg/mod/cache/download/github.com/google/uuid/@v/list": "v1.6.0\n",
                        },
                    ),
                    copy(".", dest=".", layer=context_copy),
                    run("go build -o /out/app", [File("out/app", _APP, mode=0o755)]),
                ),
            ),
            Stage(
                "final",
                ALPINE,
                (
                    run(
                        "apk add --no-cache ca-certificates",
                        {
                            "etc/ssl/certs/ca-certificates.crt": "-----BEGIN CERTIFICATE-----\n"
                            + _noise("ca", 480).hex()
                            + "\n-----END CERTIFICATE-----\n",
                            "lib/apk/db/installed": "P:ca-certificates\nV:20240226-r0\n",
                        },
                    ),
                    copy("/out/app", dest="/usr/local/bin/app", from_stage="build"),
                ),
            ),
        ),
        mode=mode,
        compression=compression,
    )


def copy_link() -> Build:
    return Build(
        (
            Stage(
                "build",
                GOLANG,
                (
                    workdir("/src"),
                    copy(".", dest=".", files={"src/main.go": "package main\n\nfunc main() {}\n"}),
                    run("go build -o /out/app", [File("out/app", _APP, mode=0o755)]),
                ),
            ),
            Stage(
                "final",
                ALPINE,
                (
                    run(
                        "apk add --no-cache ca-certificates", {"etc/ssl/certs/ca-certificates.crt": "cert\n"}
                    ),
                    copy("/out/app", dest="/usr/local/bin/app", from_stage="build", link=True),
                    copy(
                        "config.yaml",
                        dest="/etc/app/",
                        link=True,
                        files={"etc/app/config.yaml": "listen: :8080\n"},
                    ),
                ),
            ),
        ),
        mode="max",
    )


def three_stages() -> Build:
    return Build(
        (
            Stage(
                "build",
                GOLANG,
                (
                    workdir("/src"),
                    copy(".", dest=".", files={"src/main.go": "package main\n\nfunc main() {}\n"}),
                    run("go build -o /out/app", [File("out/app", _APP, mode=0o755)]),
                ),
            ),
            Stage(
                "test",
                "build",
                (
                    run(
                        "go test ./... > /out/test-report.txt",
                        {"out/test-report.txt": "ok  \texample.com/app\t0.012s\n"},
                    ),
                ),
            ),
            Stage(
                "release",
                None,
                (
                    copy("/out/app", dest="/app", from_stage="build"),
                    copy("/out/test-report.txt", dest="/test-report.txt", from_stage="test"),
                ),
            ),
        ),
        mode="max",
    )


OVERSIZED_STEPS = 9600


def oversized() -> Build:
    steps = [run(f"echo step {i:05d} >> /var/log/steps") for i in range(1, OVERSIZED_STEPS)]
    steps.append(run(f"echo step {OVERSIZED_STEPS:05d} >> /var/log/steps", {"var/log/steps": "steps done\n"}))
    return Build(
        (
            Stage("build", ALPINE, tuple(steps)),
            Stage("final", ALPINE, (copy("/var/log/steps", dest="/steps", from_stage="build"),)),
        ),
        mode="min",
    )


def inline_cache_build() -> Build:
    return Build(
        (
            Stage(
                "final",
                ALPINE,
                (run("apk add --no-cache ca-certificates", {"etc/ssl/certs/ca.crt": "cert\n"}),),
            ),
        ),
        mode="min",
    )


def loop_config(export: CacheExport) -> CacheConfig:
    """Make the final stage's ``RUN apk`` layer point at the ``COPY --from`` layer above it."""
    apk = export.step("final", 1).layer_blob
    top = export.step("final", 2).layer_index
    assert apk is not None and top is not None
    apk_index = next(i for i, layer in enumerate(export.config.layers) if layer.blob == apk)
    layers = list(export.config.layers)
    layers[apk_index] = replace(layers[apk_index], parent=top)
    return replace(export.config, layers=tuple(layers))


# --------------------------------------------------------------------------------------------------
# The spec §2.5 example (layer blobs and op records are synthetic in the spec, so given explicitly)

SPEC_ALPINE = BaseImage(
    "alpine:3.20",
    (
        LayerSpec(
            blob="sha256:96006280b2ec9365a5c2def48896135172c5f678abb7aa07e955472421583f2d",
            size=3623807,
            diff_id="sha256:0db1b44e8cc72d74c613f43b0f1901fcecdae88a5aea216269ef2094d74a8e40",
            created_at="2025-06-02T10:14:58.902114471Z",
        ),
    ),
    digest="sha256:dfdb17f05669066f5f7d7c60d5cedd4270f29cf07f92be3c4a782f0e3ebb11b9",
)


def _spec_layer(blob: str, size: int, created: str, diff_id: str | None = None) -> LayerSpec:
    # The spec gives no diffIDs for the apk / COPY hello.c / gcc layers: fixturegen's synthetic ones.
    return LayerSpec(blob="sha256:" + blob, size=size, created_at=created, diff_id=diff_id)


def spec_example(mode: Mode) -> Build:
    """The Dockerfile of spec §2.5 with the spec's synthetic digests and times."""
    return Build(
        (
            Stage(
                "build",
                SPEC_ALPINE,
                (
                    run(
                        "apk add --no-cache gcc musl-dev",
                        layer=_spec_layer(
                            "5b340055b6d75bd56e24bdeb81a1c1f732444397ecf0d0790cd6d4201bc28fcd",
                            48129733,
                            "2025-06-02T10:15:31.118402266Z",
                        ),
                        overrides=Overrides(
                            record_digest="sha256:85da398e20620b0de875757b1ef49817dada0d435d669569ab41d269e523980e",
                            result_created_at="2025-06-02T10:15:31.121800142Z",
                        ),
                    ),
                    copy(
                        "hello.c",
                        dest="/src/",
                        layer=_spec_layer(
                            "13770c64e792a3dcc32b43469222e662d0029d9a6d76f4c52ea41a17bbb6d2bc",
                            412,
                            "2025-06-02T10:15:31.640288905Z",
                        ),
                        overrides=Overrides(
                            record_digest="sha256:6e0b581142e11503fb36583b4cbb79e55f7a0c083a22a0bbd325926bee20b183",
                            checksum_record="sha256:ef2b99155512ab32433ebb172d4ccfb4b07f9c8c3b85abf95876a1772fe23862",
                            result_created_at="2025-06-02T10:15:31.642001377Z",
                        ),
                    ),
                    run(
                        "gcc -static -o /out/hello /src/hello.c",
                        layer=_spec_layer(
                            "bb9c6b2abc0783d97155e32bad55abde684dd668fcd089f677cdff2e52cf37e9",
                            31760,
                            "2025-06-02T10:15:33.027715483Z",
                        ),
                        overrides=Overrides(
                            record_digest="sha256:b495a4829198bf0846580aa3f4da184f2889e61b645300ef551a600f13f83309",
                            result_created_at="2025-06-02T10:15:33.030111804Z",
                        ),
                    ),
                ),
            ),
            Stage(
                "final",
                SPEC_ALPINE,
                (
                    copy(
                        "/out/hello",
                        dest="/usr/local/bin/hello",
                        from_stage="build",
                        layer=_spec_layer(
                            "c0718bf693f4e8e3ee0f9198f08b2379e8bf3f9e5cc79169681aba555c803847",
                            31902,
                            "2025-06-02T10:15:33.512904617Z",
                            "sha256:2c6dca65ea50946ac99dc3732787703e1ce5c0a1272ef959cb4739112af207e3",
                        ),
                        overrides=Overrides(
                            record_digest="sha256:18a67adb3db3e90734e34b8d443f5bd6a642611ce67cf410d0d7ef6f2bf29e09",
                            checksum_record="sha256:c02799bc024fac2f9483747b66b62d23e1a8207b563a7eef8838f00e49b19d59",
                            result_created_at="2025-06-02T10:15:33.515337026Z",
                        ),
                    ),
                ),
            ),
        ),
        mode=mode,
        exec_root_selector=False,  # the spec's example predates BuildKit 0.13's rootfs selector
    )


SPEC_FILE_FORMS: dict[str, Form] = {
    "oci-manifest": "image-manifest",
    "oci-index": "oci-index",
    "docker-list": "docker-manifest-list",
}


# --------------------------------------------------------------------------------------------------
# Samples


@dataclass
class GeneratedSample:
    name: str
    directory: str
    tags: list[str]
    forms: dict[str, str]
    stages: int | None
    mode: Mode | None
    expected_problems: list[str]
    notes: str
    layers: int | None
    layer_entries: int | None
    records: int | None
    removed_blobs: list[str] = field(default_factory=list)
    # Dockerfile samples only (left out of the JSON of the other samples)
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "layout": f"layouts/{self.directory}",
            "tags": self.tags,
            "forms": self.forms,
            "removed_blobs": self.removed_blobs,
            "stages": self.stages,
            "mode": self.mode,
            "expected_problems": self.expected_problems,
            "layers": self.layers,
            "layer_entries": self.layer_entries,
            "records": self.records,
            "notes": self.notes,
            **self.extra,
        }


def _cache_sample(
    root: Path,
    name: str,
    build: Build,
    export: CacheExport,
    tags: Sequence[tuple[str, Form]],
    notes: str,
    problems: Sequence[str] = (),
) -> GeneratedSample:
    write_layout(root / name, [export.layout_entry(tag, form) for tag, form in tags], export.layout_blobs())
    return GeneratedSample(
        name=name,
        directory=name,
        tags=[tag for tag, _ in tags],
        forms=dict(tags),
        stages=len(build.stages),
        mode=build.mode,
        expected_problems=list(problems),
        notes=notes,
        layers=len({layer.blob for layer in export.config.layers}),
        layer_entries=len(export.config.layers),
        records=len(export.config.records),
    )


def _write_spec(out: Path) -> None:
    spec_dir = out / "spec"
    spec_dir.mkdir(parents=True)
    for mode in ("min", "max"):
        export = generate(spec_example(mode))
        (spec_dir / f"{mode}-config.json").write_bytes(export.config_bytes)
        for file_form, form in SPEC_FILE_FORMS.items():
            (spec_dir / f"{mode}-{file_form}.json").write_bytes(export.document(form))


def _write_layouts(out: Path) -> list[GeneratedSample]:
    root = out / "layouts"
    samples: list[GeneratedSample] = []
    one_tag: list[tuple[str, Form]] = [("latest", "image-manifest")]

    build = multistage("max")
    export = generate(build)
    samples.append(
        _cache_sample(
            root,
            "multistage-max",
            build,
            export,
            [
                ("image-manifest", "image-manifest"),
                ("oci-index", "oci-index"),
                ("docker-manifest-list", FORMS[2]),
            ],
            "2-stage Go build (golang base with 3 layers, alpine base with 1; the golang base shares "
            "alpine's layer), mode=max, the same config wrapped in all three wire forms.",
        )
    )

    build = multistage("min")
    samples.append(
        _cache_sample(
            root,
            "multistage-min",
            build,
            generate(build),
            one_tag,
            "The same build, mode=min: all records, only the target has a result; "
            "layers = the final image chain.",
        )
    )

    build = multistage("max", "zstd", uncompressed_step=True)
    samples.append(
        _cache_sample(
            root,
            "mixed-compression",
            build,
            generate(build),
            one_tag,
            "compression=zstd for the build's layers, base layers stay gzip, 'COPY . .' layer uncompressed.",
        )
    )

    build = copy_link()
    samples.append(
        _cache_sample(
            root,
            "copy-link",
            build,
            generate(build),
            one_tag,
            "COPY --link twice: each diff blob has two layer entries (parent -1 for the FileOp on scratch, "
            "and on top of the previous state for the MergeOp), so the manifest lists those blobs twice.",
        )
    )

    build = three_stages()
    samples.append(
        _cache_sample(
            root,
            "three-stages",
            build,
            generate(build),
            one_tag,
            "Stage 'test' is FROM build (no new root); stage 'release' is FROM scratch, so its first COPY's "
            "input 0 is the copy source and its chain starts at parent -1.",
        )
    )

    build = multistage("max")
    export = generate(build)
    missing = export.step("build", 3).layer_blob  # RUN go mod download
    assert missing is not None
    sample = _cache_sample(
        root,
        "missing-blob",
        build,
        export,
        one_tag,
        "multistage-max (image-manifest form) with the 'RUN go mod download' layer blob moved to "
        "removed-blobs/: listed in manifest and config but absent from blobs/.",
        ["blob-missing"],
    )
    hex_name = missing.removeprefix("sha256:")
    removed = root / "missing-blob" / "removed-blobs" / "sha256"
    removed.mkdir(parents=True)
    (root / "missing-blob" / "blobs" / "sha256" / hex_name).rename(removed / hex_name)
    sample.removed_blobs = [missing]
    samples.append(sample)

    build = oversized()
    export = generate(build)
    assert export.config_descriptor.size > 1048576, export.config_descriptor.size
    samples.append(
        _cache_sample(
            root,
            "oversized-config",
            build,
            export,
            one_tag,
            f"mode=min, {OVERSIZED_STEPS} RUN steps in stage 'build': config "
            f"{export.config_descriptor.size} B (> 1 MiB, BuildKit refuses to import it), "
            f"manifest {export.descriptor('image-manifest').size} B.",
            ["config-too-large"],
        )
    )

    build = multistage("max")
    export = generate(build)
    looped = export.with_config(loop_config(export))
    samples.append(
        _cache_sample(
            root,
            "loop",
            build,
            looped,
            one_tag,
            "multistage-max with the final stage's 'RUN apk' layer re-parented onto the 'COPY --from' layer "
            "above it: the target's chain loops (BuildKit: 'invalid looping layer').",
            ["config-invalid"],
        )
    )

    samples.append(_write_not_a_cache(root))
    return samples


def _write_not_a_cache(root: Path) -> GeneratedSample:
    plain = build_image([_ALPINE_ROOTFS], ["ADD alpine-minirootfs-3.20.0-x86_64.tar.gz / # buildkit"])
    build = inline_cache_build()
    export = generate(build)
    target = export.step("final", 1).layer_index
    assert target is not None
    layers = export.chain_layers(target)
    inline = build_image(
        layers,
        [
            "ADD alpine-minirootfs-3.20.0-x86_64.tar.gz / # buildkit",
            "RUN /bin/sh -c apk add --no-cache ca-certificates # buildkit",
        ],
        inline_cache=inline_cache_records(export, [layer.blob for layer in layers]),
    )
    write_layout(
        root / "not-a-cache",
        [plain.layout_entry("image"), inline.layout_entry("inline-cache")],
        {**plain.layout_blobs(), **inline.layout_blobs()},
    )
    return GeneratedSample(
        name="not-a-cache",
        directory="not-a-cache",
        tags=["image", "inline-cache"],
        forms={"image": "image", "inline-cache": "image"},
        stages=None,
        mode=None,
        expected_problems=["not-a-cache"],
        notes="'image': a plain OCI image (OCI image config, one layer). 'inline-cache': an image whose "
        "config has 'moby.buildkit.cache.v0' (base64 records JSON, mode=min inline cache of "
        "'FROM alpine; RUN apk add').",
        layers=None,
        layer_entries=None,
        records=None,
    )


# --------------------------------------------------------------------------------------------------
# Dockerfile samples (tests.harness.dockerfilegen): a Dockerfile + base images -> cache, truth, built image

AMD64 = Platform()
ARM64 = Platform("linux", "arm64")
_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def _alpine_rootfs(platform: Platform) -> LayerSpec:
    arch = _ARCH[platform.architecture]
    return LayerSpec(
        files=(
            File("bin/busybox", _binary(f"busybox-{arch}", 1536), mode=0o755),
            File("bin/sh", type="symlink", linkname="/bin/busybox", mode=0o777),
            File("etc/alpine-release", b"3.20.3\n"),
            File(
                "etc/os-release",
                b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n',
            ),
            File("etc/apk/arch", f"{arch}\n".encode()),
            File("etc/apk/world", b"alpine-baselayout\nbusybox\nmusl\n"),
            File(f"lib/ld-musl-{arch}.so.1", _binary(f"musl-{arch}", 768), mode=0o755),
        )
    )


def _golang_layers(platform: Platform) -> tuple[LayerSpec, ...]:
    arch = platform.architecture
    return (
        _alpine_rootfs(platform),
        LayerSpec(
            files=(
                File("usr/local/go/VERSION", b"go1.23.2\ntime 2024-09-28T01:34:15Z\n"),
                File("usr/local/go/bin/go", _binary(f"go-{arch}", 1280), mode=0o755),
                File("usr/local/go/bin/gofmt", _binary(f"gofmt-{arch}", 512), mode=0o755),
            )
        ),
        LayerSpec(
            files=(
                File("go/bin", mode=0o777, type="dir"),
                File("go/src", mode=0o777, type="dir"),
                File("go/pkg", mode=0o777, type="dir"),
            )
        ),
    )


ALPINE_320 = BaseIndex(
    "alpine:3.20",
    tuple(
        BaseImage("alpine:3.20", (_alpine_rootfs(p),), platform=p, created="2024-09-06T22:20:07Z")
        for p in (AMD64, ARM64)
    ),
)
"""``alpine:3.20`` as a multi-platform index (linux/amd64, linux/arm64), one layer each."""

GOLANG_123 = BaseIndex(
    "golang:1.23-alpine",
    tuple(
        BaseImage("golang:1.23-alpine", _golang_layers(p), platform=p, created="2024-10-01T17:14:40Z")
        for p in (AMD64, ARM64)
    ),
)
"""``golang:1.23-alpine`` as a multi-platform index; each child's bottom layer is alpine's for that
platform, as in the real image."""

DOCKERFILE_BASES = {
    "docker.io/library/golang:1.23-alpine": GOLANG_123,
    "docker.io/library/alpine:3.20": ALPINE_320,
}
BASE_PUSHES = (  # layout tag, where seed_sample pushes it, image
    ("base-golang", "library/golang:1.23-alpine", GOLANG_123),
    ("base-alpine", "library/alpine:3.20", ALPINE_320),
)

DOCKERFILES = {
    "named-build": """\
# A Go service: build, test, and a small runtime image.
ARG REGISTRY=docker.io
ARG GO_VERSION=1.23

FROM ${REGISTRY}/library/golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags "-X main.version=${VERSION}" \\
      -o /out/app ./cmd/app

FROM build AS test
RUN go test ./... > /out/test-report.txt

FROM ${REGISTRY}/library/alpine:3.20
RUN apk add --no-cache ca-certificates
COPY --from=build /out/app /usr/local/bin/app
COPY --from=test /out/test-report.txt /usr/share/app/
ENV APP_ENV=production
EXPOSE 8080
USER nobody
CMD ["/usr/local/bin/app"]
""",
    "scratch-and-link": """\
FROM alpine:3.20 AS certs
RUN apk add --no-cache ca-certificates

FROM alpine:3.20 AS tools
RUN apk add --no-cache ca-certificates
RUN apk add --no-cache curl

FROM alpine:3.20 AS unused
RUN echo never built

FROM scratch
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --link --from=tools /usr/bin/curl /usr/bin/curl
COPY --link config.yaml /etc/app/config.yaml
ENTRYPOINT ["/usr/bin/curl"]
""",
    "multi-platform": """\
ARG REGISTRY=docker.io

FROM ${REGISTRY}/library/golang:1.23-alpine AS build
ARG TARGETARCH
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 GOARCH=$TARGETARCH go build -o /out/app .

FROM ${REGISTRY}/library/alpine:3.20
RUN apk add --no-cache ca-certificates
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
""",
}


def _line(text: str, prefix: str) -> int:
    """The 1-based line of the instruction starting with ``prefix``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))


_CERTS = {
    "etc/ssl/certs/ca-certificates.crt": "-----BEGIN CERTIFICATE-----\n"
    + _noise("ca-bundle", 360).hex()
    + "\n-----END CERTIFICATE-----\n",
    "lib/apk/db/installed": "P:ca-certificates\nV:20240705-r0\n",
}


def named_build(mode: Mode) -> DockerfileBuild:
    """``DOCKERFILES["named-build"]``: 3 stages (``build``, ``test`` FROM build, unnamed final)."""
    text = DOCKERFILES["named-build"]
    files: dict[int, StepFiles] = {
        _line(text, "COPY go.mod"): {
            "src/go.mod": _GO_MOD.replace("go 1.22", "go 1.23"),
            "src/go.sum": _GO_SUM,
        },
        _line(text, "RUN go mod download"): {
            "go/pkg/mod/cache/download/github.com/google/uuid/@v/v1.6.0.zip": _noise("uuid", 900),
            "go/pkg/mod/cache/download/github.com/google/uuid/@v/list": "v1.6.0\n",
        },
        _line(text, "COPY . ."): {
            "src/cmd/app/main.go": "package main\n\nvar version string\n\nfunc main() { println(version) }\n",
            "src/cmd/app/main_test.go": 'package main\n\nimport "testing"\n\nfunc TestMain(t *testing.T) {}\n',
        },
        _line(text, "RUN go build"): [File("out/app", _binary("named-build-app", 1792), mode=0o755)],
        _line(text, "RUN go test"): {"out/test-report.txt": "ok  \texample.com/app/cmd/app\t0.004s\n"},
        _line(text, "RUN apk add"): _CERTS,
    }
    return from_dockerfile(text, bases=DOCKERFILE_BASES, mode=mode, files=files)


def scratch_and_link() -> DockerfileBuild:
    """``DOCKERFILES["scratch-and-link"]``: two stages with the same ``RUN`` on the same base (one
    record), an unused stage (pruned), and a ``FROM scratch`` target with ``COPY --link``."""
    text = DOCKERFILES["scratch-and-link"]
    first, second = (
        i for i, line in enumerate(text.splitlines(), 1) if line.startswith("RUN apk add --no-cache ca")
    )
    files: dict[int, StepFiles] = {
        first: _CERTS,
        second: _CERTS,
        _line(text, "RUN apk add --no-cache curl"): [
            File("usr/bin/curl", _binary("curl", 1024), mode=0o755),
            File("lib/apk/db/installed", b"P:ca-certificates\nV:20240705-r0\n\nP:curl\nV:8.10.1-r0\n"),
        ],
        _line(text, "COPY --link config.yaml"): {"etc/app/config.yaml": "listen: :8080\n"},
    }
    return from_dockerfile(text, bases=DOCKERFILE_BASES, mode="max", files=files)


def multi_platform() -> DockerfileBuild:
    """``DOCKERFILES["multi-platform"]`` for linux/amd64 and linux/arm64 from multi-platform bases."""
    text = DOCKERFILES["multi-platform"]

    def app(platform: Platform) -> list[File]:
        return [File("out/app", _binary(f"app-{platform.architecture}", 1536), mode=0o755)]

    files: dict[int, StepFiles] = {
        _line(text, "COPY . ."): {"src/main.go": 'package main\n\nfunc main() { println("hi") }\n'},
        _line(text, "RUN CGO_ENABLED"): app,
        _line(text, "RUN apk add"): lambda p: {
            **_CERTS,
            "lib/apk/db/installed": f"P:ca-certificates\nV:20240705-r0\nA:{_ARCH[p.architecture]}\n",
        },
    }
    return from_dockerfile(text, bases=DOCKERFILE_BASES, platforms=(AMD64, ARM64), files=files)


def _dockerfile_sample(
    out: Path,
    name: str,
    dockerfile: str,
    build: DockerfileBuild,
    notes: str,
    *,
    image: ProvenanceVersion | None = None,
    push_bases: bool = False,
) -> GeneratedSample:
    export = build.export()
    cache = export.cache
    entries = [cache.layout_entry("latest", "image-manifest")]
    blobs = cache.layout_blobs()
    forms = {"latest": "image-manifest"}
    push: dict[str, str] = {}
    attestations: dict[str, object] = {}
    if image is not None:
        built = export.image(image, f"samples/{name}:image")
        entries.append(built.layout_entry("image"))
        blobs.update(built.layout_blobs())
        forms["image"] = "image-index"
        push["image"] = f"samples/{name}:image"
        attestations["image"] = {
            "predicate_type": "https://slsa.dev/provenance/" + image,
            "platforms": {
                platform: {
                    "manifest": manifest.digest,
                    "attestation_manifest": dict(built.attestations)[platform].digest,
                    "statement": digest_of(dict(built.provenance)[platform]),
                }
                for platform, manifest in built.manifests
            },
        }
    if push_bases:
        for tag, target, base in BASE_PUSHES:
            entry, base_blobs = base_documents(base)
            entries.append(LayoutEntry(tag, entry.descriptor, entry.data))
            blobs.update(base_blobs)
            forms[tag] = "image-index"
            push[tag] = target
    write_layout(out / "layouts" / name, entries, blobs)
    path = out / "dockerfiles" / f"{dockerfile}.Dockerfile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build.text, encoding="utf-8")
    return GeneratedSample(
        name=name,
        directory=name,
        tags=["latest"],
        forms=forms,
        stages=len(build.stages),
        mode=build.mode,
        expected_problems=[],
        notes=notes,
        layers=len({layer.blob for layer in cache.config.layers}),
        layer_entries=len(cache.config.layers),
        records=len(cache.config.records),
        extra={
            "image_tags": [e.tag for e in entries[1:]],
            "push": push,
            "dockerfile": f"dockerfiles/{dockerfile}.Dockerfile",
            "platforms": [p.format() for p in build.platforms],
            "build_args": dict(build.build_args),
            "target": build.target,
            "built_stages": list(build.stages),
            "attestations": attestations,
            "expected_steps": [s.to_json() for s in export.steps],
            "expected_bases": [b.to_json() for b in export.bases],
        },
    )


def _write_dockerfile_samples(out: Path) -> list[GeneratedSample]:
    return [
        _dockerfile_sample(
            out,
            "named-build",
            "named-build",
            named_build("max"),
            "Dockerfile sample, mode=max: stages build (golang, WORKDIR, COPY, RUN), test (FROM build) and "
            "an unnamed final stage (alpine, COPY --from=build, COPY --from=test). FROM refs are "
            "${REGISTRY}/library/...: --build-arg REGISTRY=<test registry> makes them resolvable there "
            "(bases pushed to library/golang:1.23-alpine and library/alpine:3.20). 'image' is the built "
            "image with a SLSA v1 provenance attestation.",
            image="v1",
            push_bases=True,
        ),
        _dockerfile_sample(
            out,
            "named-build-min",
            "named-build",
            named_build("min"),
            "named-build exported with mode=min: the same records, only the target has a result.",
        ),
        _dockerfile_sample(
            out,
            "scratch-and-link",
            "scratch-and-link",
            scratch_and_link(),
            "Stages certs and tools run the same RUN on the same base (one record, two expected steps); "
            "stage 'unused' is pruned; the target is FROM scratch with COPY --from and two COPY --link "
            "(one from a stage, one from the context).",
        ),
        _dockerfile_sample(
            out,
            "multi-platform",
            "multi-platform",
            multi_platform(),
            "linux/amd64 + linux/arm64 in one export, bases resolved through multi-platform indexes (the "
            "manifest-key roots use the index digest). 'image' has a SLSA v0.2 provenance per platform.",
            image="v0.2",
            push_bases=True,
        ),
    ]


# --------------------------------------------------------------------------------------------------
# The explain demo (scripts/demo.py): a cache whose records carry BuildKit's keys of its Dockerfile

EXPLAIN_DEMO_BASE = "library/demo-base:1"
"""Where ``seed_sample`` pushes the demo's base image (its config's Env is fixturegen's ``PATH_ENV``)."""
EXPLAIN_DEMO = """\
# The build that wrote samples/explain-demo:latest: `cacheinspect explain` finds every step in that cache.
ARG REGISTRY=docker.io
FROM ${REGISTRY}/library/demo-base:1
WORKDIR /app
COPY . .
RUN make
RUN make check
"""
EXPLAIN_DEMO_EDITED = EXPLAIN_DEMO.replace(
    "# The build that wrote samples/explain-demo:latest: `cacheinspect explain` finds every step in that cache.",
    "# explain-demo.Dockerfile with its first RUN edited: the next build runs from that step.",
).replace("RUN make\n", "RUN make CFLAGS=-O2\n")


def _write_explain_demo(out: Path) -> GeneratedSample:
    """``EXPLAIN_DEMO`` built on ``base_image(1)``, mode=max, plus that base image (tag ``base``), the edited
    Dockerfile and the build context (``contexts/explain-demo``)."""
    base = base_image(1)
    export = previous_cache(EXPLAIN_DEMO, base, started_at="2025-06-03T09:00:00Z")
    image = base.image(Platform())
    entries = [export.layout_entry("latest", "image-manifest"), image.layout_entry("base")]
    write_layout(out / "layouts" / "explain-demo", entries, {**export.layout_blobs(), **image.layout_blobs()})
    dockerfiles = out / "dockerfiles"
    dockerfiles.mkdir(parents=True, exist_ok=True)
    (dockerfiles / "explain-demo.Dockerfile").write_text(EXPLAIN_DEMO, encoding="utf-8")
    (dockerfiles / "explain-demo-edited.Dockerfile").write_text(EXPLAIN_DEMO_EDITED, encoding="utf-8")
    context = out / "contexts" / "explain-demo"
    context.mkdir(parents=True)
    for name, data in CONTEXT_FILES.items():
        (context / name).write_bytes(data)
    return GeneratedSample(
        name="explain-demo",
        directory="explain-demo",
        tags=["latest"],
        forms={"latest": "image-manifest", "base": "image"},
        stages=1,
        mode="max",
        expected_problems=[],
        notes="Records keyed with BuildKit's keys of dockerfiles/explain-demo.Dockerfile (WORKDIR, COPY . ., "
        "two RUNs) on the base image 'base' (pushed to library/demo-base:1): explain with --build-arg "
        "REGISTRY=<registry> --resolve-bases --context contexts/explain-demo hits every step; "
        "explain-demo-edited.Dockerfile misses from its edited RUN.",
        layers=len({layer.blob for layer in export.config.layers}),
        layer_entries=len(export.config.layers),
        records=len(export.config.records),
        extra={
            "image_tags": ["base"],
            "push": {"base": EXPLAIN_DEMO_BASE},
            "dockerfile": "dockerfiles/explain-demo.Dockerfile",
            "explain": {
                "edited": "dockerfiles/explain-demo-edited.Dockerfile",
                "context": "contexts/explain-demo",
            },
        },
    )


def generate_all(out: Path) -> None:
    """Write the generated part of testdata into ``out`` (which must not contain it yet)."""
    _write_spec(out)
    samples = _write_layouts(out)
    samples.extend(_write_dockerfile_samples(out))
    samples.append(_write_explain_demo(out))
    text = json.dumps([s.to_json() for s in samples], indent=2) + "\n"
    (out / "samples.json").write_text(text, encoding="utf-8")


def _files(base: Path) -> set[str]:
    out: set[str] = set()
    for name in GENERATED:
        path = base / name
        if path.is_file():
            out.add(name)
        elif path.is_dir():
            out.update(p.relative_to(base).as_posix() for p in path.rglob("*") if p.is_file())
    return out


def differences(expected: Path, actual: Path) -> list[str]:
    """Generated paths (relative) that are missing, extra or different in ``actual``."""
    want, have = _files(expected), _files(actual)
    changed = [p for p in sorted(want & have) if not filecmp.cmp(expected / p, actual / p, shallow=False)]
    return sorted([*(want ^ have), *changed])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.make_testdata", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on differences"
    )
    parser.add_argument(
        "--testdata", type=Path, default=TESTDATA, help="testdata directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    target: Path = args.testdata
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate_all(fresh)
        if args.check:
            diff = differences(fresh, target)
            for path in diff:
                print(f"differs: testdata/{path}")
            if diff:
                print(
                    f"{len(diff)} file(s) differ; run: python -m tests.harness.make_testdata", file=sys.stderr
                )
                return 1
            return 0
        target.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            old = target / name
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
            src = fresh / name
            if src.is_dir():
                shutil.copytree(src, old)
            else:
                shutil.copyfile(src, old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
