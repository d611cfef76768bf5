"""Write BuildKit registry/local build caches byte for byte as BuildKit's Go encoder does.

A cache is described declaratively (base images, Dockerfile-like stages and steps, export mode,
compression) and turned into the exact bytes BuildKit would export: the cache config
(``application/vnd.buildkit.cacheconfig.v0``), the wrapper document in each wire form, and the layer
blobs. The rules imitated, with the BuildKit source they come from (moby/buildkit, see
``/work/shared/spec/buildkit-cache.md``):

* record graph and layer forest: ``cache/remotecache/v1/chains.go`` (``Marshal``, ``marshalItem``) and
  ``utils.go`` (``marshalRemote``: a layer entry is identified by (blob, parent chain); ``sortConfig``);
* keys: image roots ``solver/llbsolver/ops/source.go`` + ``source/containerimage/pull.go``, record digests
  ``solver/cachemanager.go`` ``rootKey``, content-checksum roots ``solver/edge.go`` (output ``-1``), path
  selectors ``solver/llbsolver/ops/file.go`` (paths sorted, reversed, NUL-joined);
* wrapper forms: ``cache/remotecache/export.go``; layer media types ``util/compression/compression.go``;
* JSON: Go ``encoding/json`` (compact, struct field order, sorted map keys, HTML-safe escaping, omitempty).

Go's exporter visits maps in random order (leaves, input alternatives); where that order is observable
(the record sort tie-break and the old parent index used to sort two entries of one blob) this module
uses creation order, which is one of the orders Go can produce.

Op cache-map digests are synthetic (``D = sha256("fixturegen.<op>.v0:" + JSON of the step)``) but
stable; record digests are ``sha256(D + "@0")`` like BuildKit's. Image roots use BuildKit's real
formulas, content-checksum roots are ``sha256(checksum + "@-1")`` with a synthetic checksum.

Several :class:`Build` s (one per platform) go into one export with :func:`generate_platforms`, like a
multi-platform build; a multi-platform base is a :class:`BaseIndex`. To describe a build as a Dockerfile
(labels, image, provenance), see :mod:`tests.harness.dockerfilegen`.
"""

from __future__ import annotations

import base64
import gzip
import io
import posixpath
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeAlias

import zstandard

from inspector.oci.digest import sha256_digest
from inspector.oci.mediatypes import (
    ANNOTATION_CREATED,
    ANNOTATION_UNCOMPRESSED,
    BUILDKIT_CACHE_CONFIG,
    DOCKER_MANIFEST_LIST,
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)

__all__ = [
    "FORMS",
    "OCI_LAYER_TYPES",
    "SCRATCH",
    "TAR_MTIME",
    "BaseImage",
    "BaseIndex",
    "BaseInfo",
    "Build",
    "CacheConfig",
    "CacheExport",
    "CacheInput",
    "CacheLayer",
    "CacheRecord",
    "CacheResult",
    "ChainedResult",
    "Compression",
    "Descriptor",
    "File",
    "Form",
    "ImageExport",
    "LayerAnnotations",
    "LayerSpec",
    "LayoutEntry",
    "Mode",
    "Overrides",
    "Platform",
    "RealLayer",
    "Stage",
    "Step",
    "StepInfo",
    "build_image",
    "chain_id",
    "checksum_record_digest",
    "copy",
    "digest_of",
    "generate",
    "generate_platforms",
    "go_json",
    "go_json_indent",
    "go_map",
    "go_sorted",
    "go_time",
    "image_root_digests",
    "inline_cache_records",
    "key_digest",
    "make_tar",
    "manifest_key",
    "parse_go_time",
    "path_selector",
    "realize_layer",
    "record_digest",
    "run",
    "workdir",
    "write_layout",
]

Compression: TypeAlias = Literal["gzip", "zstd", "uncompressed"]
Mode: TypeAlias = Literal["min", "max"]
Form: TypeAlias = Literal["image-manifest", "oci-index", "docker-manifest-list"]
FORMS: tuple[Form, ...] = ("image-manifest", "oci-index", "docker-manifest-list")

OCI_LAYER_TYPES: dict[Compression, str] = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "uncompressed": "application/vnd.oci.image.layer.v1.tar",
}
# util/compression/compression.go toDockerLayerType, applied by FinalizeCache when oci-mediatypes=false.
_TO_DOCKER_LAYER_TYPE = {
    "application/vnd.oci.image.layer.v1.tar+gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.oci.image.layer.v1.tar": "application/vnd.docker.image.rootfs.diff.tar",
}
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
INLINE_CACHE_KEY = "moby.buildkit.cache.v0"

SCRATCH = "scratch"
"""``Stage.base`` value for ``FROM scratch`` (``None`` means the same)."""

TAR_MTIME = 1717200000
"""mtime of every tar entry (2024-06-01T00:00:00Z), so layer bytes never depend on the clock."""

DEFAULT_STARTED_AT = "2025-06-02T10:14:58Z"
_TICK_NS = 1_870_123_457  # time between two steps of the synthetic build timeline
_RESULT_DELAY_NS = 1_712_472  # result saved this long after its layer was created (as in spec §2.5)


# --------------------------------------------------------------------------------------------------
# Go encoding/json


GoValue: TypeAlias = "bool | int | str | bytes | Sequence[GoValue] | Mapping[str, GoValue] | None"

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _go_string(text: str) -> str:
    """A JSON string as Go's encoding/json writes it (HTML-safe, Go ≥ 1.22 escapes)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        short = _SHORT_ESCAPES.get(ch)
        if short is not None:
            out.append(short)
        elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:  # not valid UTF-8: Go substitutes U+FFFD
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _encode(value: GoValue, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif isinstance(value, bytes):  # Go []byte: standard base64 in a string
        out.append(_go_string(base64.b64encode(value).decode("ascii")))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")


def go_json(value: GoValue) -> bytes:
    """Compact Go ``encoding/json`` bytes of ``value``.

    A ``dict`` is written in insertion order, so build Go structs with their fields in declaration
    order and leave out omitted (``omitempty``) fields; pass Go maps through :func:`go_map`, which
    sorts the keys. ``bytes`` become base64 strings (Go ``[]byte``), ``None`` is ``null``.
    """
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode()


def go_map(mapping: Mapping[str, GoValue]) -> dict[str, GoValue]:
    """A Go map: keys sorted (Go sorts by UTF-8 bytes, which is code point order)."""
    return dict(sorted(mapping.items()))


def go_json_indent(value: GoValue) -> bytes:
    """Go ``json.MarshalIndent(value, "", "  ")`` (BuildKit's image manifests and indexes).

    The compact encoding re-indented with ``encoding/json``'s ``Indent`` rules: a newline and the
    indent after ``{``, ``[`` and ``,`` (not inside strings), ``": "`` after keys, and empty ``{}``/``[]``
    kept on one line. No trailing newline.
    """
    compact = go_json(value).decode()
    out: list[str] = []
    depth = 0
    need_indent = False
    in_string = escaped = False
    for ch in compact:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if need_indent and ch not in "]}":
            need_indent = False
            depth += 1
            out.append("\n" + "  " * depth)
        if ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "{[":
            out.append(ch)
            need_indent = True
        elif ch == ",":
            out.append(ch + "\n" + "  " * depth)
        elif ch == ":":
            out.append(": ")
        elif ch in "}]":
            if need_indent:
                need_indent = False
            else:
                depth -= 1
                out.append("\n" + "  " * depth)
            out.append(ch)
        else:
            out.append(ch)
    return "".join(out).encode()


def go_sorted(value: GoValue) -> GoValue:
    """``value`` after a round trip through Go's ``map[string]any``: every object's keys sorted.

    BuildKit marshals the SLSA v1 ``internalParameters`` and the v0.2 ``environment`` this way
    (``provenance/types/types.go`` ``MarshalJSON``: struct → JSON → map → JSON).
    """
    if isinstance(value, Mapping):
        return {key: go_sorted(item) for key, item in sorted(value.items())}
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, (bool, int)):
        return value
    return [go_sorted(item) for item in value]


# --------------------------------------------------------------------------------------------------
# Times (Go time.Time marshals as RFC3339Nano, trailing fractional zeros trimmed)

_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


def go_time(unix_ns: int) -> str:
    """Go ``time.Time.MarshalText`` of a UTC instant given in Unix nanoseconds."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def parse_go_time(text: str) -> int:
    """Unix nanoseconds of a UTC RFC3339Nano time (``…Z`` only)."""
    match = _TIME_RE.match(text)
    if match is None:
        raise ValueError(f"not a UTC RFC3339Nano time: {text!r}")
    moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = (match.group(2) or "").ljust(9, "0")
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction)


# --------------------------------------------------------------------------------------------------
# Digests and BuildKit key formulas (spec §3.3)


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of bytes."""
    return sha256_digest(data)


def key_digest(text: str) -> str:
    """``H(s)`` of the spec: ``sha256:<hex>`` of the UTF-8 text."""
    return sha256_digest(text)


def record_digest(cache_map_digest: str, output: int = 0) -> str:
    """A record digest: ``H(D + "@" + output)`` (``solver/cachemanager.go`` ``rootKey``)."""
    return key_digest(f"{cache_map_digest}@{output}")


def checksum_record_digest(checksum: str) -> str:
    """A content-checksum root: ``H(checksum + "@-1")`` (``solver/edge.go``)."""
    return record_digest(checksum, -1)


def chain_id(diff_ids: Sequence[str]) -> str:
    """OCI ChainID of a rootfs: ``C1 = diffID1``, ``Cn = H(C(n-1) + " " + diffIDn)``."""
    if not diff_ids:
        raise ValueError("ChainID of an empty rootfs")
    current = diff_ids[0]
    for diff_id in diff_ids[1:]:
        current = key_digest(f"{current} {diff_id}")
    return current


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def format(self) -> str:
        """``platforms.Format``: ``linux/arm64``, ``linux/arm/v7``."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_oci(self) -> dict[str, GoValue]:
        """An OCI ``platform`` object (``architecture``, ``os``, ``variant``: Go field order)."""
        out: dict[str, GoValue] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"not an os/arch[/variant] platform: {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def manifest_key(resolved_digest: str, platform: Platform) -> str:
    """BuildKit's ``mainManifestKey`` (``source/containerimage/pull.go``)."""
    fields: dict[str, GoValue] = {"Digest": resolved_digest, "OS": platform.os, "Arch": platform.architecture}
    if platform.variant:
        fields["Variant"] = platform.variant
    return digest_of(go_json(fields))


def _source_record(key: str) -> str:
    return record_digest(key_digest("buildkit.source.v0:" + key))


def image_root_digests(resolved_digest: str, diff_ids: Sequence[str], platform: Platform) -> tuple[str, str]:
    """(manifest-key root, ChainID root) record digests of a ``FROM`` image (spec §3.3)."""
    return _source_record(manifest_key(resolved_digest, platform)), _source_record(chain_id(diff_ids))


def path_selector(paths: Iterable[str]) -> str:
    """A FileOp input selector: paths sorted, reversed, NUL-joined, hashed (``ops/file.go`` CacheMap)."""
    ordered = sorted((p.encode() for p in paths), reverse=True)
    return digest_of(b"\0".join(ordered))


# --------------------------------------------------------------------------------------------------
# Layer content


@dataclass(frozen=True)
class File:
    """One tar entry. ``path`` may start with ``/``; it is stored relative, like image layers."""

    path: str
    content: bytes = b""
    mode: int = 0o644
    type: Literal["file", "dir", "symlink"] = "file"
    linkname: str = ""

    @property
    def name(self) -> str:
        return self.path.strip("/")


FilesArg: TypeAlias = "Mapping[str, bytes | str] | Sequence[File] | None"


def _files(files: FilesArg) -> tuple[File, ...] | None:
    if files is None:
        return None
    if isinstance(files, Mapping):
        return tuple(File(p, c.encode() if isinstance(c, str) else c) for p, c in files.items())
    return tuple(files)


def make_tar(files: Iterable[File]) -> bytes:
    """A deterministic uncompressed layer tar (ustar, fixed mtime/owner, parents added, sorted).

    Ends with two zero blocks and no record padding, like Go's ``archive/tar``.
    """
    entries: dict[str, File] = {}
    for item in files:
        name = item.name
        if not name:
            continue
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            entries.setdefault(parent, File(parent, mode=0o755, type="dir"))
        entries[name] = item
    buffer = io.BytesIO()
    archive = tarfile.TarFile(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT)
    for name in sorted(entries):
        item = entries[name]
        info = tarfile.TarInfo(name + "/" if item.type == "dir" else name)
        info.mtime = TAR_MTIME
        info.mode = item.mode
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if item.type == "dir":
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        elif item.type == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = item.linkname
            archive.addfile(info)
        else:
            info.size = len(item.content)
            archive.addfile(info, io.BytesIO(item.content))
    data = buffer.getvalue()[: archive.offset] + bytes(2 * tarfile.BLOCKSIZE)
    archive.close()
    return data


def _compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    if compression == "zstd":
        compressor = zstandard.ZstdCompressor(level=3, write_checksum=False, write_content_size=True)
        return bytes(compressor.compress(data))
    return data


@dataclass(frozen=True)
class LayerSpec:
    """What one layer is: real files, or synthetic digests when ``blob`` is given.

    Real layers: ``files`` (``None`` = a default file derived from the step), compressed with
    ``compression`` (``None`` = the build's compression for steps, gzip for base images).
    Synthetic layers: ``blob`` and ``size`` are required, ``diff_id`` defaults to a synthetic digest;
    no bytes exist for them. ``created_at`` overrides the ``buildkit/createdat`` annotation
    (``omit_created_at`` drops it, as after a forced compression conversion); ``annotations`` adds keys.
    """

    files: tuple[File, ...] | None = None
    compression: Compression | None = None
    blob: str | None = None
    size: int | None = None
    diff_id: str | None = None
    created_at: str | None = None
    omit_created_at: bool = False
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RealLayer:
    """A layer after realization: digests, sizes, OCI media type, bytes (``None`` when synthetic)."""

    blob: str
    size: int
    diff_id: str
    media_type: str
    data: bytes | None
    uncompressed: bytes | None

    def descriptor(self, created_at: str | None, extra: Iterable[tuple[str, str]] = ()) -> Descriptor:
        annotations = {ANNOTATION_UNCOMPRESSED: self.diff_id, **dict(extra)}
        if created_at is not None:
            annotations[ANNOTATION_CREATED] = created_at
        return Descriptor(self.media_type, self.blob, self.size, annotations)


def realize_layer(
    spec: LayerSpec, default_files: Sequence[File], default_compression: Compression
) -> RealLayer:
    """Build the bytes (or take the synthetic digests) of one layer."""
    compression = spec.compression or default_compression
    media_type = OCI_LAYER_TYPES[compression]
    if spec.blob is not None:
        if spec.size is None:
            raise ValueError(f"synthetic layer {spec.blob} needs an explicit size")
        diff_id = spec.diff_id or key_digest("fixturegen.synthetic-diffid:" + spec.blob)
        return RealLayer(spec.blob, spec.size, diff_id, media_type, None, None)
    tar = make_tar(spec.files if spec.files is not None else default_files)
    data = _compress(tar, compression)
    return RealLayer(digest_of(data), len(data), digest_of(tar), media_type, data, tar)


# --------------------------------------------------------------------------------------------------
# OCI descriptors and documents


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = go_map(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_oci()
        return out

    @classmethod
    def of(cls, media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return cls(media_type, digest_of(data), len(data), dict(annotations or {}))


def _oci_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_go(),
            "layers": [d.to_go() for d in layers],
        }
    )


def _index(media_type: str, manifests: Sequence[Descriptor]) -> bytes:
    return go_json({"schemaVersion": 2, "mediaType": media_type, "manifests": [d.to_go() for d in manifests]})


def _wrap(form: Form, config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    """The top-level cache document (``cache/remotecache/export.go``)."""
    if form == "image-manifest":
        return _oci_manifest(config, layers)
    if form == "oci-index":
        return _index(OCI_INDEX, [*layers, config])
    docker_layers = [
        replace(d, media_type=_TO_DOCKER_LAYER_TYPE.get(d.media_type, d.media_type)) for d in layers
    ]
    return _index(DOCKER_MANIFEST_LIST, [*docker_layers, config])


_FORM_MEDIA_TYPES: dict[Form, str] = {
    "image-manifest": OCI_MANIFEST,
    "oci-index": OCI_INDEX,
    "docker-manifest-list": DOCKER_MANIFEST_LIST,
}


# --------------------------------------------------------------------------------------------------
# Cache config model (cache/remotecache/v1/types/spec.go)


@dataclass(frozen=True)
class LayerAnnotations:
    """Only gha/s3/azblob write these; kept so such configs can be modelled too."""

    created_at: str
    media_type: str = ""
    diff_id: str = ""
    size: int = 0

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.diff_id:
            out["diffID"] = self.diff_id
        if self.size:
            out["size"] = self.size
        out["createdAt"] = self.created_at
        return out


@dataclass(frozen=True)
class CacheLayer:
    blob: str
    parent: int = -1
    annotations: LayerAnnotations | None = None

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.blob:
            out["blob"] = self.blob
        if self.parent:
            out["parent"] = self.parent
        if self.annotations is not None:
            out["annotations"] = self.annotations.to_go()
        return out


@dataclass(frozen=True)
class CacheResult:
    layer: int
    created_at: str

    def to_go(self) -> dict[str, GoValue]:
        return {"layer": self.layer, "createdAt": self.created_at}


@dataclass(frozen=True)
class ChainedResult:
    layers: tuple[int, ...]
    created_at: str

    def to_go(self) -> dict[str, GoValue]:
        return {"layers": list(self.layers), "createdAt": self.created_at}


@dataclass(frozen=True)
class CacheInput:
    link: int
    selector: str = ""

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.selector:
            out["selector"] = self.selector
        out["link"] = self.link
        return out


@dataclass(frozen=True)
class CacheRecord:
    digest: str
    inputs: tuple[tuple[CacheInput, ...], ...] = ()
    results: tuple[CacheResult, ...] = ()
    chains: tuple[ChainedResult, ...] = ()

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.results:
            out["layers"] = [r.to_go() for r in self.results]
        if self.chains:
            out["chains"] = [c.to_go() for c in self.chains]
        if self.digest:
            out["digest"] = self.digest
        if self.inputs:
            # An empty alternatives list is a nil slice in Go (built by append): it encodes as null.
            out["inputs"] = [[i.to_go() for i in alts] if alts else None for alts in self.inputs]
        return out


@dataclass(frozen=True)
class CacheConfig:
    layers: tuple[CacheLayer, ...]
    records: tuple[CacheRecord, ...]

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.layers:
            out["layers"] = [layer.to_go() for layer in self.layers]
        if self.records:
            out["records"] = [r.to_go() for r in self.records]
        return out

    def encode(self) -> bytes:
        return go_json(self.to_go())

    def chain(self, layer_index: int) -> list[str]:
        """Blobs of the chain ending at ``layer_index``, bottom first (raises on loops)."""
        blobs: list[str] = []
        seen: set[int] = set()
        index = layer_index
        while index != -1:
            if index in seen or not 0 <= index < len(self.layers):
                raise ValueError(f"invalid layer chain at index {index}")
            seen.add(index)
            blobs.append(self.layers[index].blob)
            index = self.layers[index].parent
        return blobs[::-1]


# --------------------------------------------------------------------------------------------------
# Declarative build description


@dataclass(frozen=True)
class BaseImage:
    """An external ``FROM`` image. ``digest`` is what the reference resolved to; by default the digest
    of a real minimal OCI image manifest of ``layers`` (see :meth:`image`)."""

    name: str
    layers: tuple[LayerSpec, ...]
    digest: str | None = None
    platform: Platform | None = None
    created: str = "2024-05-22T18:18:12Z"

    def image(self, platform: Platform) -> ImageExport:
        """The base image itself (manifest + config + layer blobs), real or with synthetic layers."""
        realized = [realize_layer(spec, self._default_files(i), "gzip") for i, spec in enumerate(self.layers)]
        history = [f"/bin/sh -c #(nop) ADD file:{layer.diff_id[7:19]} in / " for layer in realized]
        return _image_documents(realized, platform, self.created, history, comment="", extra_config={})

    def _default_files(self, index: int) -> tuple[File, ...]:
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", self.name).strip("-")
        return (File(f"etc/fixturegen/{slug}-layer{index}.txt", f"{self.name} layer {index}\n".encode()),)


@dataclass(frozen=True)
class BaseIndex:
    """A multi-platform ``FROM`` image: an OCI image index of per-platform :class:`BaseImage` s.

    BuildKit resolves the tag to the index digest, so both the ``FROM`` label's ``@digest`` and the
    manifest-key root (spec §3.3) use the index digest with the platform of the build, while the ChainID
    root uses the platform child's diffIDs. Every child needs ``platform`` set.
    """

    name: str
    manifests: tuple[BaseImage, ...]

    def __post_init__(self) -> None:
        if not self.manifests or any(m.platform is None for m in self.manifests):
            raise ValueError("a base index needs children, each with a platform")

    def children(self) -> tuple[tuple[BaseImage, ImageExport], ...]:
        return tuple((m, m.image(m.platform or Platform())) for m in self.manifests)

    @property
    def index_bytes(self) -> bytes:
        """The OCI index (compact; ``platform`` on every entry)."""
        entries = [
            replace(image.manifest_descriptor, platform=child.platform) for child, image in self.children()
        ]
        return _index(OCI_INDEX, entries)

    @property
    def digest(self) -> str:
        return digest_of(self.index_bytes)

    def for_platform(self, platform: Platform) -> BaseImage:
        """The child for ``platform``, resolved through the index (``digest`` = the index digest)."""
        for child in self.manifests:
            if child.platform == platform:
                return replace(child, digest=self.digest)
        raise ValueError(f"base {self.name} has no manifest for {platform.format()}")


@dataclass(frozen=True)
class Overrides:
    """Explicit values instead of the synthetic/derived ones (to reproduce documents exactly).

    ``record_digest`` wins over ``op_digest`` (the cache-map digest ``D``); ``checksum_record`` wins over
    ``checksum`` (the content checksum of a COPY source). ``merge_*`` apply to the MergeOp record of a
    ``COPY --link``.
    """

    op_digest: str | None = None
    record_digest: str | None = None
    checksum: str | None = None
    checksum_record: str | None = None
    selector: str | None = None
    result_created_at: str | None = None
    merge_op_digest: str | None = None
    merge_record_digest: str | None = None
    merge_result_created_at: str | None = None


@dataclass(frozen=True)
class Step:
    """One Dockerfile instruction that makes a cache record: ``RUN``, ``COPY``/``ADD`` or ``WORKDIR``.

    Use :func:`run`, :func:`copy` and :func:`workdir` to build them. ``env``, ``user``, ``chown`` and
    ``chmod`` are part of the op (and so of its synthetic digest) only when set; :mod:`tests.harness.dockerfilegen`
    sets them from the Dockerfile.
    """

    kind: Literal["RUN", "COPY", "ADD", "WORKDIR"]
    args: str
    sources: tuple[str, ...] = ()
    dest: str = ""
    from_stage: str | None = None
    link: bool = False
    layer: LayerSpec = LayerSpec()
    overrides: Overrides = Overrides()
    env: tuple[str, ...] = ()
    user: str = ""
    chown: str = ""
    chmod: str = ""
    argv: tuple[str, ...] = ()  # RUN: the process arguments when not ``/bin/sh -c args`` (exec form, SHELL)

    @property
    def text(self) -> str:
        """The instruction as it would read in a Dockerfile."""
        if self.kind not in ("COPY", "ADD"):
            return f"{self.kind} {self.args}"
        flags = "".join(
            [" --link" if self.link else "", f" --from={self.from_stage}" if self.from_stage else ""]
        )
        return f"{self.kind}{flags} {' '.join([*self.sources, self.dest])}"


def _with_files(layer: LayerSpec | None, files: FilesArg) -> LayerSpec:
    spec = layer or LayerSpec()
    normalized = _files(files)
    return replace(spec, files=normalized) if normalized is not None else spec


def run(
    command: str,
    files: FilesArg = None,
    *,
    layer: LayerSpec | None = None,
    overrides: Overrides = Overrides(),
) -> Step:
    """``RUN command``; ``files`` = what the command leaves in its layer."""
    return Step("RUN", command, layer=_with_files(layer, files), overrides=overrides)


def copy(
    *sources: str,
    dest: str,
    from_stage: str | None = None,
    link: bool = False,
    files: FilesArg = None,
    layer: LayerSpec | None = None,
    overrides: Overrides = Overrides(),
) -> Step:
    """``COPY [--link] [--from=stage] sources... dest``.

    Without ``files``, the layer holds the source files found in ``from_stage``'s layers (or a small
    placeholder file per source for build-context copies).
    """
    if not sources:
        raise ValueError("COPY needs at least one source")
    return Step(
        "COPY",
        " ".join([*sources, dest]),
        sources=tuple(sources),
        dest=dest,
        from_stage=from_stage,
        link=link,
        layer=_with_files(layer, files),
        overrides=overrides,
    )


def workdir(path: str, *, layer: LayerSpec | None = None, overrides: Overrides = Overrides()) -> Step:
    """``WORKDIR path`` (a FileOp mkdir: one record and a layer holding the directory)."""
    return Step("WORKDIR", path, layer=layer or LayerSpec(), overrides=overrides)


@dataclass(frozen=True)
class Stage:
    """``FROM base AS name`` + steps. ``base``: a :class:`BaseImage`, the name of an earlier stage,
    or ``None``/``"scratch"``."""

    name: str
    base: BaseImage | str | None
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Build:
    """A single-platform build whose target is the last stage, exported with ``mode``.

    mode=max: every non-root record gets its result (its layer chain). mode=min: only the target
    (last step of the last stage) gets a result; all records are still written. ``compression`` is
    the default for layers created by the build's steps; base image layers keep their own (gzip).
    """

    stages: tuple[Stage, ...]
    mode: Mode = "max"
    compression: Compression = "gzip"
    platform: Platform = Platform()
    started_at: str = DEFAULT_STARTED_AT
    # BuildKit >= 0.13 (dc608427e, 091fb2c80) links a RUN's rootfs input with the selector sha256("/");
    # older versions, and the spec's §2.5 example, write no selector there.
    exec_root_selector: bool = True
    # Put the platform into FileOp/MergeOp digests too (every LLB op carries the platform, so the same
    # COPY in two platforms of one multi-platform build gives two records). Off for the older samples,
    # whose digests predate it.
    file_op_platform: bool = False


# --------------------------------------------------------------------------------------------------
# Generation


@dataclass(frozen=True)
class StepInfo:
    """Where one step ended up: its record (index into ``config.records``) and its own layer."""

    stage: str
    number: int  # 1-based among the stage's steps
    text: str
    record_digest: str
    record_index: int
    layer_blob: str | None  # the layer this step added, when some exported chain holds it
    layer_index: int | None  # config layer index of this step's result, when the record has one
    merge_record_index: int | None = None  # COPY --link: the MergeOp record
    platform: str = ""  # os/arch[/variant] of the build this step belongs to
    merge_record_digest: str | None = None
    # the layer chain (bottom first) of the step's result, and of its MergeOp for COPY --link; filled for
    # every step, exported or not (blobs of unexported layers are not in the cache)
    chain: tuple[RealLayer, ...] = field(default=(), compare=False, repr=False)
    merge_chain: tuple[RealLayer, ...] = field(default=(), compare=False, repr=False)
    created: tuple[str, ...] = field(default=(), compare=False, repr=False)  # buildkit/createdat per layer


class _Layer:
    """A layer that is realized only when an exported chain needs it."""

    def __init__(
        self, spec: LayerSpec, default_files: tuple[File, ...], compression: Compression, created: str
    ):
        self.spec = spec
        self.default_files = default_files
        self.compression: Compression = compression
        self.created_at = spec.created_at or created
        self._real: RealLayer | None = None

    @property
    def files(self) -> tuple[File, ...]:
        return self.spec.files if self.spec.files is not None else self.default_files

    @property
    def realized(self) -> RealLayer | None:
        """The layer if some exported chain needed it, else ``None``."""
        return self._real

    def real(self) -> RealLayer:
        if self._real is None:
            self._real = realize_layer(self.spec, self.default_files, self.compression)
        return self._real

    def descriptor(self) -> Descriptor:
        created = None if self.spec.omit_created_at else self.created_at
        return self.real().descriptor(created, self.spec.annotations)


@dataclass(eq=False)
class _Node:
    layer: _Layer
    parent: _Node | None

    def bottom_up(self) -> list[_Layer]:
        out: list[_Layer] = []
        node: _Node | None = self
        while node is not None:
            out.append(node.layer)
            node = node.parent
        return out[::-1]


@dataclass(eq=False)
class _Item:
    digest: str
    inputs: list[list[tuple[str, _Item]]]
    node: _Node | None = None
    created_at: str = ""
    children: int = 0


@dataclass(frozen=True)
class _State:
    links: tuple[_Item, ...]  # alternatives for the next op's input 0 (empty = scratch)
    node: _Node | None
    workdir: str = "/"


@dataclass(frozen=True)
class BaseInfo:
    """A ``FROM`` image as the export sees it: its two root records and its layer chain."""

    base: BaseImage
    platform: str
    resolved_digest: str
    chain_id: str
    manifest_root: str
    chain_root: str
    layers: tuple[RealLayer, ...]
    created: tuple[str, ...]  # buildkit/createdat of each layer (the pull time)


class _Generator:
    def __init__(self, builds: Sequence[Build]) -> None:
        if not builds:
            raise ValueError("no build to export")
        first = builds[0]
        for other in builds[1:]:
            if (other.mode, other.started_at) != (first.mode, first.started_at):
                raise ValueError("the builds of one export share mode and start time")
        self.builds = tuple(builds)
        self.build = first
        self.items: list[_Item] = []
        self.roots: dict[str, _Item] = {}
        self.ops: dict[tuple[str, tuple[frozenset[tuple[str, int]], ...]], _Item] = {}
        self.stages: dict[str, _State] = {}
        self.bases: dict[BaseImage, _State] = {}
        self.base_infos: list[BaseInfo] = []
        self.start = parse_go_time(first.started_at)
        self.ticks = 0
        self.steps: list[tuple[str, int, Step, _Item, _Item | None, str]] = []

    # records --------------------------------------------------------------------------------------

    def root(self, digest: str) -> _Item:
        item = self.roots.get(digest)
        if item is None:
            item = self.roots[digest] = _Item(digest, [])
            self.items.append(item)
        return item

    def op(self, digest: str, inputs: list[list[tuple[str, _Item]]], node: _Node, created: str) -> _Item:
        """Add an op record, or return the existing one with the same digest and inputs."""
        if not inputs:  # an op without inputs (e.g. WORKDIR on scratch) is a root key
            item = self.root(digest)
            if item.node is None:
                item.node, item.created_at = node, created
            return item
        key = (digest, tuple(frozenset((sel, id(src)) for sel, src in alts) for alts in inputs))
        found = self.ops.get(key)
        if found is not None:  # same op on the same inputs: BuildKit reuses the cached result
            return found
        item = self.ops[key] = _Item(digest, inputs, node, created)
        self.items.append(item)
        for alts in inputs:
            for _, src in alts:
                src.children += 1
        return item

    def tick(self) -> tuple[str, str]:
        self.ticks += 1
        moment = self.start + self.ticks * _TICK_NS
        return go_time(moment), go_time(moment + _RESULT_DELAY_NS)

    # stages ---------------------------------------------------------------------------------------

    def base_state(self, base: BaseImage) -> _State:
        state = self.bases.get(base)
        if state is not None:
            return state
        platform = base.platform or self.build.platform
        node: _Node | None = None
        pulled = self.start - (len(self.bases) + 1) * 137_000_000
        for i, spec in enumerate(base.layers):
            layer = _Layer(spec, base._default_files(i), "gzip", go_time(pulled + i * 1_300_000))
            node = _Node(layer, node)
        if node is None:
            raise ValueError(f"base image {base.name} has no layers (BuildKit gives it no cache key)")
        resolved = base.digest or base.image(platform).manifest_descriptor.digest
        diff_ids = [layer.real().diff_id for layer in node.bottom_up()]
        manifest_root, chain_root = image_root_digests(resolved, diff_ids, platform)
        state = _State((self.root(manifest_root), self.root(chain_root)), node)
        self.bases[base] = state
        self.base_infos.append(
            BaseInfo(
                base,
                platform.format(),
                resolved,
                chain_id(diff_ids),
                manifest_root,
                chain_root,
                tuple(layer.real() for layer in node.bottom_up()),
                tuple(layer.created_at for layer in node.bottom_up()),
            )
        )
        return state

    def run_stage(self, stage: Stage) -> None:
        if stage.name in self.stages:
            raise ValueError(f"duplicate stage name {stage.name!r}")
        if isinstance(stage.base, BaseImage):
            state = self.base_state(stage.base)
        elif stage.base is None or stage.base == SCRATCH:
            state = _State((), None)
        elif stage.base in self.stages:
            state = self.stages[stage.base]
        else:
            raise ValueError(f"stage {stage.name!r}: FROM {stage.base!r} is not an earlier stage")
        for number, step in enumerate(stage.steps, start=1):
            state = self.run_step(stage.name, number, step, state)
        self.stages[stage.name] = state

    def run_step(self, stage: str, number: int, step: Step, state: _State) -> _State:
        layer_created, result_created = self.tick()
        result_created = step.overrides.result_created_at or result_created
        base_links = [("", item) for item in state.links]
        kind = step.kind
        if kind == "WORKDIR":
            path = posixpath.normpath(posixpath.join(state.workdir, step.args))
            default: tuple[File, ...] = (File(path, mode=0o755, type="dir"),)
            spec: dict[str, GoValue] = {"action": "mkdir", "path": path, "makeParents": True}
            if step.user:
                spec["user"] = step.user
            if self.build.file_op_platform:
                spec["platform"] = self.platform_json()
            layer = _Layer(step.layer, default, self.compression(step), layer_created)
            item = self.op(
                self.op_record(step, "file", spec),
                [base_links] if base_links else [],
                _Node(layer, state.node),
                result_created,
            )
            self.add_step(stage, number, step, item, None)
            return _State((item,), item.node, path)
        if kind == "RUN":
            if not state.links:
                raise ValueError(f"stage {stage!r} step {number}: RUN on scratch is not supported")
            slug = f"{stage}-{number}"
            default = (File(f"var/lib/fixturegen/{slug}.txt", f"{step.args}\n".encode()),)
            spec = {
                "args": list(step.argv) if step.argv else ["/bin/sh", "-c", step.args],
                "cwd": state.workdir,
                "platform": self.platform_json(),
            }
            if step.env:
                spec["env"] = list(step.env)
            if step.user:
                spec["user"] = step.user
            layer = _Layer(step.layer, default, self.compression(step), layer_created)
            node = _Node(layer, state.node)
            rootfs = path_selector(["/"]) if self.build.exec_root_selector else ""
            item = self.op(
                self.op_record(step, "exec", spec), [[(rootfs, i) for i in state.links]], node, result_created
            )
            self.add_step(stage, number, step, item, None)
            return replace(state, links=(item,), node=item.node)
        return self.run_copy(stage, number, step, state, layer_created, result_created)

    def run_copy(
        self, stage: str, number: int, step: Step, state: _State, layer_created: str, result_created: str
    ) -> _State:
        dest = posixpath.normpath(posixpath.join(state.workdir, step.dest))
        into_dir = step.dest.endswith(("/", ".")) or len(step.sources) > 1
        spec: dict[str, GoValue] = {"action": "copy", "src": list(step.sources), "dest": dest}
        if step.kind == "ADD":
            spec["unpack"] = True
        for key, value in (("chown", step.chown), ("chmod", step.chmod)):
            if value:
                spec[key] = value
        if self.build.file_op_platform:
            spec["platform"] = self.platform_json()
        if step.from_stage is not None:
            source = self.stages.get(step.from_stage)
            if source is None:
                raise ValueError(f"COPY --from={step.from_stage}: not an earlier stage")
            if not source.links:
                raise ValueError(f"COPY --from={step.from_stage}: the stage is empty scratch")
            selector = step.overrides.selector or path_selector(step.sources)
            default = self.copied_files(source, step.sources, dest, into_dir)
            checksum = step.overrides.checksum or key_digest(
                "fixturegen.contenthash.v0:" + go_json([[i.digest for i in source.links], selector]).decode()
            )
            source_links = [(selector, item) for item in source.links]
            spec["from"] = selector
        else:
            default = tuple(
                File(
                    posixpath.join(dest, _basename(src)) if into_dir or _basename(src) == "context" else dest,
                    f"build context: {src}\n".encode(),
                )
                for src in step.sources
            )
            layer_files = step.layer.files if step.layer.files is not None else default
            checksum = step.overrides.checksum or key_digest(
                "fixturegen.contenthash.v0:"
                + go_json(
                    [list(step.sources), [[f.name, digest_of(f.content)] for f in layer_files]]
                ).decode()
            )
            source_links = []
        checksum_root = self.root(step.overrides.checksum_record or checksum_record_digest(checksum))
        source_links.append(("", checksum_root))
        layer = _Layer(step.layer, default, self.compression(step), layer_created)
        base_links = [("", item) for item in state.links]

        if not step.link or not state.links:  # COPY onto the state (a --link onto scratch is just the copy)
            inputs = [base_links, source_links] if base_links else [source_links]
            item = self.op(
                self.op_record(step, "file", spec), inputs, _Node(layer, state.node), result_created
            )
            self.add_step(stage, number, step, item, None)
            return replace(state, links=(item,), node=item.node)

        # COPY --link: FileOp copy onto scratch (a chain of its own), then MergeOp(state, copy).
        spec["link"] = True
        copied = self.op(
            self.op_record(step, "file", spec), [source_links], _Node(layer, None), result_created
        )
        merge_spec: dict[str, GoValue] = {"merge": step.text}
        if self.build.file_op_platform:
            merge_spec["platform"] = self.platform_json()
        merge_d = step.overrides.merge_op_digest or key_digest(
            "fixturegen.merge.v0:" + go_json(merge_spec).decode()
        )
        merge_digest = step.overrides.merge_record_digest or record_digest(merge_d)
        merge_created = step.overrides.merge_result_created_at or go_time(
            parse_go_time(result_created) + _RESULT_DELAY_NS
        )
        assert copied.node is not None
        merged = self.op(
            merge_digest, [base_links, [("", copied)]], _Node(copied.node.layer, state.node), merge_created
        )
        self.add_step(stage, number, step, copied, merged)
        return replace(state, links=(merged,), node=merged.node)

    def copied_files(
        self, source: _State, paths: Sequence[str], dest: str, into_dir: bool
    ) -> tuple[File, ...]:
        """The files ``COPY --from`` takes from ``source``'s layers (topmost wins), placed at ``dest``."""
        chain = source.node.bottom_up() if source.node is not None else []
        out: list[File] = []
        for path in paths:
            name = path.strip("/")
            found = next((f for layer in reversed(chain) for f in layer.files if f.name == name), None)
            content = found.content if found is not None else f"copied from {path}\n".encode()
            mode = found.mode if found is not None else 0o644
            out.append(File(posixpath.join(dest, _basename(path)) if into_dir else dest, content, mode))
        return tuple(out)

    def add_step(self, stage: str, number: int, step: Step, item: _Item, merged: _Item | None) -> None:
        self.steps.append((stage, number, step, item, merged, self.build.platform.format()))

    def compression(self, step: Step) -> Compression:
        return step.layer.compression or self.build.compression

    def platform_json(self) -> dict[str, GoValue]:
        p = self.build.platform
        return {"os": p.os, "arch": p.architecture, "variant": p.variant}

    def op_record(self, step: Step, op_type: str, spec: Mapping[str, GoValue]) -> str:
        if step.overrides.record_digest:
            return step.overrides.record_digest
        d = step.overrides.op_digest or key_digest(f"fixturegen.{op_type}.v0:" + go_json(spec).decode())
        return record_digest(d)

    # export ---------------------------------------------------------------------------------------

    def run_build(self, build: Build) -> _Item:
        """Solve one platform's build into the shared record graph; returns its target record."""
        self.build = build
        self.stages = {}
        if not build.stages:
            raise ValueError("a build needs at least one stage")
        for build_stage in build.stages:
            self.run_stage(build_stage)
        target = self.stages[build.stages[-1].name]
        if len(target.links) != 1 or not target.links[0].inputs:
            raise ValueError("the target stage has no op (BuildKit skips exporting an empty result)")
        self.check_all_used(target.links[0])
        return target.links[0]

    def export(self) -> CacheExport:
        # One export for all platforms (solver/llbsolver/export.go runCacheExporters: every ref of the
        # result is exported into the same cache chains, then marshalled once).
        targets = [self.run_build(build) for build in self.builds]
        exported: set[int]
        if self.build.mode == "max":
            exported = {id(item) for item in self.items if item.inputs and item.node is not None}
        else:
            exported = {id(target) for target in targets}
        config, blob_descriptors, new_record, new_layer = _marshal(self.items, exported)
        blobs: dict[str, bytes] = {}
        for item in self.items:
            if id(item) in exported and item.node is not None:
                for layer in item.node.bottom_up():
                    data = layer.real().data
                    if data is not None:
                        blobs[layer.real().blob] = data
        in_cache = {layer.blob for layer in config.layers}
        infos = []
        for stage, number, step, item, merged, platform in self.steps:
            own = item.node.layer.realized if item.node is not None else None
            infos.append(
                StepInfo(
                    stage=stage,
                    number=number,
                    text=step.text,
                    record_digest=item.digest,
                    record_index=new_record[id(item)],
                    layer_blob=own.blob if own is not None and own.blob in in_cache else None,
                    layer_index=new_layer.get(id(item)),
                    merge_record_index=new_record[id(merged)] if merged is not None else None,
                    platform=platform,
                    merge_record_digest=merged.digest if merged is not None else None,
                )
            )
        # the chains of every step (realized only now, so that ``layer_blob`` above reflects the export)
        infos = [
            replace(
                info,
                chain=_chain(item),
                merge_chain=_chain(merged) if merged is not None else (),
                created=tuple(layer.created_at for layer in (merged or item).node.bottom_up())
                if (merged or item).node is not None
                else (),
            )
            for info, (_, _, _, item, merged, _) in zip(infos, self.steps, strict=True)
        ]
        return CacheExport.from_config(config, blob_descriptors, blobs, tuple(infos), tuple(self.base_infos))

    def check_all_used(self, target: _Item) -> None:
        """BuildKit only solves (and exports) what the target needs: refuse unused stages."""
        seen: set[int] = set()
        todo = [target]
        while todo:
            item = todo.pop()
            if id(item) in seen:
                continue
            seen.add(id(item))
            todo.extend(src for alts in item.inputs for _, src in alts)
        for name, state in self.stages.items():
            if state.links and not any(id(i) in seen for i in state.links):
                raise ValueError(f"stage {name!r} is not used by the target, BuildKit would not build it")


def _chain(item: _Item) -> tuple[RealLayer, ...]:
    return tuple(layer.real() for layer in item.node.bottom_up()) if item.node is not None else ()


def _basename(path: str) -> str:
    name = posixpath.basename(path.rstrip("/"))
    return "context" if name in ("", ".", "..") else name


def _marshal(
    items: Sequence[_Item], exported: set[int]
) -> tuple[CacheConfig, dict[str, Descriptor], dict[int, int], dict[int, int]]:
    """``CacheChains.Marshal``: post-order walk from the leaves, then ``sortConfig``.

    Returns the config, the descriptor of every blob (last write wins, as in ``marshalRemote``), and
    maps from item id to its new record index and to its result's new layer index.
    """
    old_layers: list[tuple[str, int]] = []  # (blob, old parent index)
    chains_by_id: dict[tuple[str, int], int] = {}
    descriptors: dict[str, Descriptor] = {}
    old_records: list[tuple[str, list[list[tuple[str, int]]], list[tuple[int, str]]]] = []
    record_of: dict[int, int] = {}  # id(item) -> old record index (-1 while being visited)
    result_layer: dict[int, int] = {}  # id(item) -> old layer index of its result

    def marshal_remote(node: _Node) -> int:
        parent = -1
        for layer in node.bottom_up():
            descriptor = layer.descriptor()
            descriptors[descriptor.digest] = descriptor
            chain = (descriptor.digest, parent)
            if chain not in chains_by_id:
                chains_by_id[chain] = len(old_layers)
                old_layers.append(chain)
            parent = chains_by_id[chain]
        return parent

    for leaf in (item for item in items if item.children == 0):
        if id(leaf) in record_of:
            continue
        record_of[id(leaf)] = -1
        stack: list[tuple[_Item, list[list[tuple[str, int]]], list[int]]] = [
            (leaf, [[] for _ in leaf.inputs], [0, 0])
        ]
        while stack:
            item, inputs, pos = stack[-1]
            descended = False
            while pos[0] < len(item.inputs):
                alts = item.inputs[pos[0]]
                if pos[1] >= len(alts):
                    pos[0], pos[1] = pos[0] + 1, 0
                    continue
                selector, src = alts[pos[1]]
                if id(src) not in record_of:
                    record_of[id(src)] = -1
                    stack.append((src, [[] for _ in src.inputs], [0, 0]))
                    descended = True
                    break
                if record_of[id(src)] != -1:  # -1: a link back into the walk, skipped like Go does
                    inputs[pos[0]].append((selector, record_of[id(src)]))
                pos[1] += 1
            if descended:
                continue
            results: list[tuple[int, str]] = []
            if id(item) in exported and item.node is not None:
                index = marshal_remote(item.node)
                results.append((index, item.created_at))
                result_layer[id(item)] = index
            record_of[id(item)] = len(old_records)
            old_records.append((item.digest, inputs, results))
            stack.pop()

    # sortConfig: layers by (blob, old parent index)
    layer_order = sorted(range(len(old_layers)), key=lambda i: old_layers[i])
    new_layer_index = {old: new for new, old in enumerate(layer_order)}
    layers = tuple(
        CacheLayer(
            old_layers[old][0], new_layer_index[old_layers[old][1]] if old_layers[old][1] != -1 else -1
        )
        for old in layer_order
    )

    # records by digest, then input count, then per input: alternatives count, then each
    # alternative's selector and linked digest (old order, before the inputs are sorted)
    def record_key(i: int) -> tuple[object, ...]:
        digest, inputs, _ = old_records[i]
        per_input = tuple(
            (len(alts), tuple((sel, old_records[link][0]) for sel, link in alts)) for alts in inputs
        )
        return (digest, len(inputs), per_input)

    record_order = sorted(range(len(old_records)), key=record_key)
    new_record_index = {old: new for new, old in enumerate(record_order)}
    records = []
    for old in record_order:
        digest, inputs, results = old_records[old]
        new_inputs = tuple(
            tuple(
                sorted(
                    (CacheInput(new_record_index[link], sel) for sel, link in alts),
                    key=lambda i: i.link,
                )
            )
            for alts in inputs
        )
        new_results = tuple(CacheResult(new_layer_index[layer], created) for layer, created in results)
        records.append(CacheRecord(digest, new_inputs, new_results))
    config = CacheConfig(layers, tuple(records))
    item_record = {key: new_record_index[old] for key, old in record_of.items()}
    item_layer = {key: new_layer_index[old] for key, old in result_layer.items()}
    return config, descriptors, item_record, item_layer


@dataclass(frozen=True)
class LayoutEntry:
    """One ``index.json`` entry: a tag and the document it points to."""

    tag: str
    descriptor: Descriptor
    data: bytes


@dataclass(frozen=True)
class CacheExport:
    """Everything BuildKit would push for one cache export."""

    config: CacheConfig
    config_bytes: bytes
    config_descriptor: Descriptor
    layer_descriptors: tuple[Descriptor, ...]  # one per config layer entry, OCI media types
    blobs: Mapping[str, bytes]  # layer blob digest -> bytes (layers with real content only)
    steps: tuple[StepInfo, ...] = ()
    bases: tuple[BaseInfo, ...] = ()  # every FROM image, in the order the builds first used them

    @classmethod
    def from_config(
        cls,
        config: CacheConfig,
        descriptors: Mapping[str, Descriptor],
        blobs: Mapping[str, bytes],
        steps: tuple[StepInfo, ...] = (),
        bases: tuple[BaseInfo, ...] = (),
    ) -> CacheExport:
        """Encode ``config`` and list one descriptor per layer entry (``export.go`` ``Finalize``)."""
        data = config.encode()
        missing = {layer.blob for layer in config.layers} - set(descriptors)
        if missing:
            raise ValueError(f"no descriptor for config blob(s) {sorted(missing)}")
        layer_descriptors = tuple(descriptors[layer.blob] for layer in config.layers)
        return cls(
            config,
            data,
            Descriptor.of(BUILDKIT_CACHE_CONFIG, data),
            layer_descriptors,
            dict(blobs),
            steps,
            bases,
        )

    def with_config(self, config: CacheConfig) -> CacheExport:
        """The same blobs under another (e.g. hand-broken) config: re-encoded, re-hashed, re-wrapped."""
        descriptors = {d.digest: d for d in self.layer_descriptors}
        blobs = {layer.blob: self.blobs[layer.blob] for layer in config.layers if layer.blob in self.blobs}
        return CacheExport.from_config(config, descriptors, blobs, self.steps, self.bases)

    def document(self, form: Form) -> bytes:
        """The top-level document (tag target) in one wire form."""
        return _wrap(form, self.config_descriptor, self.layer_descriptors)

    def descriptor(self, form: Form) -> Descriptor:
        return Descriptor.of(_FORM_MEDIA_TYPES[form], self.document(form))

    @property
    def oci_manifest_bytes(self) -> bytes:
        return self.document("image-manifest")

    @property
    def oci_index_bytes(self) -> bytes:
        return self.document("oci-index")

    @property
    def docker_list_bytes(self) -> bytes:
        return self.document("docker-manifest-list")

    def layout_entry(self, tag: str, form: Form) -> LayoutEntry:
        data = self.document(form)
        return LayoutEntry(tag, Descriptor.of(_FORM_MEDIA_TYPES[form], data), data)

    def layout_blobs(self) -> dict[str, bytes]:
        """Config + layer blobs (the documents are added by :func:`write_layout`)."""
        return {self.config_descriptor.digest: self.config_bytes, **self.blobs}

    def chain_layers(self, layer_index: int) -> tuple[RealLayer, ...]:
        """The layers of the chain ending at config layer ``layer_index``, bottom first."""
        descriptors = {d.digest: d for d in self.layer_descriptors}
        out = []
        for blob in self.config.chain(layer_index):
            d = descriptors[blob]
            data = self.blobs.get(blob)
            out.append(
                RealLayer(blob, d.size, d.annotations[ANNOTATION_UNCOMPRESSED], d.media_type, data, None)
            )
        return tuple(out)

    def step(self, stage: str, number: int, platform: str | None = None) -> StepInfo:
        """Step ``number`` (1-based among the stage's op steps) of ``stage`` (of ``platform`` if given)."""
        return next(
            s
            for s in self.steps
            if s.stage == stage and s.number == number and platform in (None, s.platform)
        )


def generate(build: Build) -> CacheExport:
    """Export ``build``'s cache as BuildKit's registry/local exporter would."""
    return _Generator([build]).export()


def generate_platforms(builds: Sequence[Build]) -> CacheExport:
    """One cache export of a multi-platform build: one :class:`Build` per platform, in platform order.

    The builds' records go into one graph (identical records are shared, e.g. a build-context checksum
    root) and are marshalled once, like BuildKit exporting every ref of a multi-platform result into the
    same cache chains. All builds must share ``mode`` and ``started_at``.
    """
    return _Generator(builds).export()


# --------------------------------------------------------------------------------------------------
# Plain images (not caches) and inline cache


@dataclass(frozen=True)
class ImageExport:
    config_bytes: bytes
    config_descriptor: Descriptor
    manifest_bytes: bytes
    manifest_descriptor: Descriptor
    blobs: Mapping[str, bytes]  # layer blobs with real content

    def layout_entry(self, tag: str) -> LayoutEntry:
        return LayoutEntry(tag, self.manifest_descriptor, self.manifest_bytes)

    def layout_blobs(self) -> dict[str, bytes]:
        return {self.config_descriptor.digest: self.config_bytes, **self.blobs}


def _image_documents(
    layers: Sequence[RealLayer],
    platform: Platform,
    created: str,
    history: Sequence[str],
    *,
    comment: str,
    extra_config: Mapping[str, GoValue],
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    cmd: Sequence[str] = ("/bin/sh",),
) -> ImageExport:
    """An image config (keys sorted: BuildKit patches it as a Go map) and its OCI manifest."""
    entries: list[GoValue] = []
    for text in history:
        entry: dict[str, GoValue] = {"created": created, "created_by": text}
        if comment:
            entry["comment"] = comment
        entries.append(entry)
    image_config: dict[str, GoValue] = {"Env": list(env), "Cmd": list(cmd)}
    if platform.variant:
        extra_config = {**extra_config, "variant": platform.variant}
    config = go_map(
        {
            "architecture": platform.architecture,
            "config": image_config,
            "created": created,
            "history": entries,
            "os": platform.os,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            **extra_config,
        }
    )
    config_bytes = go_json(config)
    config_descriptor = Descriptor.of(OCI_IMAGE_CONFIG, config_bytes)
    layer_descriptors = [Descriptor(layer.media_type, layer.blob, layer.size) for layer in layers]
    manifest = _oci_manifest(config_descriptor, layer_descriptors)
    blobs = {layer.blob: layer.data for layer in layers if layer.data is not None}
    return ImageExport(
        config_bytes, config_descriptor, manifest, Descriptor.of(OCI_MANIFEST, manifest), blobs
    )


def build_image(
    layers: Sequence[LayerSpec | RealLayer],
    history: Sequence[str],
    *,
    platform: Platform = Platform(),
    created: str = DEFAULT_STARTED_AT,
    inline_cache: bytes | None = None,
) -> ImageExport:
    """A plain OCI image as BuildKit's image exporter writes it (no layer annotations).

    ``history`` holds one ``created_by`` per layer. ``inline_cache`` (records JSON, see
    :func:`inline_cache_records`) is stored under ``moby.buildkit.cache.v0`` as a base64 string.
    """
    if len(history) != len(layers):
        raise ValueError("one history entry per layer")
    realized = [
        layer
        if isinstance(layer, RealLayer)
        else realize_layer(layer, (File(f"layer{i}.txt", b"x\n"),), "gzip")
        for i, layer in enumerate(layers)
    ]
    extra: dict[str, GoValue] = {INLINE_CACHE_KEY: inline_cache} if inline_cache is not None else {}
    return _image_documents(
        realized, platform, created, history, comment="buildkit.dockerfile.v0", extra_config=extra
    )


def inline_cache_records(export: CacheExport, image_layers: Sequence[str]) -> bytes:
    """The inline-cache payload for an image whose layers are ``image_layers`` (blob digests).

    As ``cache/remotecache/inline/inline.go``: results whose chain has a blob outside the image are
    dropped; a chain equal to the image's bottom layers becomes ``layer`` = its top image index, any
    other becomes a ``chains`` entry of image layer indexes. Only the records array is written.
    """
    position = {blob: i for i, blob in enumerate(image_layers)}
    records: list[CacheRecord] = []
    for record in export.config.records:
        results: list[CacheResult] = []
        chains: list[ChainedResult] = []
        for result in record.results:
            blobs = export.config.chain(result.layer)
            if any(blob not in position for blob in blobs):
                continue
            if list(image_layers[: len(blobs)]) == blobs:
                results.append(CacheResult(len(blobs) - 1, result.created_at))
            else:
                chains.append(ChainedResult(tuple(position[b] for b in blobs), result.created_at))
        records.append(replace(record, results=tuple(results), chains=tuple(chains)))
    return go_json([r.to_go() for r in records])


# --------------------------------------------------------------------------------------------------
# OCI image layout (the local cache exporter's directory)


def write_layout(directory: Path, entries: Sequence[LayoutEntry], blobs: Mapping[str, bytes]) -> None:
    """Write an OCI image layout: ``oci-layout``, ``blobs/sha256/<hex>``, ``index.json``.

    Several tags (and wire forms) share one layout: pass all their entries and the union of their
    blobs in one call. ``index.json`` lists the entries in order; a repeated tag replaces the earlier
    entry, as ``client/ociindex`` does. Every blob is checked to hash to its digest.
    """
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    everything = dict(blobs)
    for entry in entries:
        everything[entry.descriptor.digest] = entry.data
    for digest, data in sorted(everything.items()):
        if digest_of(data) != digest:
            raise ValueError(f"blob {digest} does not hash to its digest")
        (blob_dir / digest.removeprefix("sha256:")).write_bytes(data)
    manifests: list[Descriptor] = []
    for entry in entries:
        manifests = [m for m in manifests if m.annotations.get(ANNOTATION_REF_NAME) != entry.tag]
        annotations = {**entry.descriptor.annotations, ANNOTATION_REF_NAME: entry.tag}
        manifests.append(replace(entry.descriptor, annotations=annotations))
    (directory / "oci-layout").write_bytes(go_json({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(_index(OCI_INDEX, manifests))
