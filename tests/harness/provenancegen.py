"""SLSA provenance attestations and built-image documents as BuildKit writes them (fixture side).

Used by :mod:`tests.harness.dockerfilegen`; the shapes follow moby/buildkit (see ``testdata/README.md``):

* the predicate types: ``solver/llbsolver/provenance/types/types.go`` (``ProvenancePredicateSLSA1`` and
  ``ProvenancePredicateSLSA02`` = ``ConvertToSLSA02``), with the in-toto structs they embed
  (``vendor/github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/{v0.2,v1}``) — Go's rules for
  embedded fields decide the key order, and ``internalParameters`` (v1) / ``environment`` (v0.2) are
  marshalled through a ``map[string]any`` (keys sorted at every level);
* their content: ``solver/llbsolver/provenance/predicate.go`` (``NewPredicate``, materials as package URLs),
  ``provenance/buildconfig.go`` (``AddBuildConfig``: ``llbDefinition`` = the LLB ops in post-order from
  the terminal, ids ``step<N>``, ``digestMapping``, ``source.locations`` keyed ``step<N>``,
  ``source.infos``), ``solver/llbsolver/provenance.go`` (mode=max ``buildkit_metadata.layers``:
  ``step<N>:<output>`` → layer descriptor chains of results that already have blobs, internal
  annotations removed);
* the LLB ops' JSON: ``solver/pb/json.go`` (``"Op"`` wrapper key, ``"Action"``) and ``ops.pb.go`` tags;
* the statement and attestation manifest: ``exporter/attestation/make.go``,
  ``exporter/containerimage/writer.go`` (``commitAttestationsManifest``, ``attestationsConfig``).

LLB vertex digests are synthetic (``sha256("fixturegen.llb.v0:" + JSON of the op and its inputs)``) but
stable, like the cache's op digests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from tests.harness.fixturegen import (
    Descriptor,
    GoValue,
    Platform,
    RealLayer,
    digest_of,
    go_json,
    go_json_indent,
    go_map,
    go_sorted,
    key_digest,
)

__all__ = [
    "ATTESTATION_PLATFORM",
    "BUILDKIT_BUILD_TYPE_V02",
    "BUILDKIT_BUILD_TYPE_V1",
    "INTOTO_MEDIA_TYPE",
    "PREDICATE_V02",
    "PREDICATE_V1",
    "STATEMENT_TYPE",
    "LlbGraph",
    "ProvenanceInput",
    "ProvenanceVersion",
    "Vertex",
    "attestation_manifest",
    "image_purl",
    "provenance_predicate",
    "statement",
]

ProvenanceVersion: TypeAlias = Literal["v1", "v0.2"]

PREDICATE_V1 = "https://slsa.dev/provenance/v1"
PREDICATE_V02 = "https://slsa.dev/provenance/v0.2"
BUILDKIT_BUILD_TYPE_V1 = "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
BUILDKIT_BUILD_TYPE_V02 = "https://mobyproject.org/buildkit@v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
INTOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
ATTESTATION_PLATFORM = Platform("unknown", "unknown")
BUILDER_PLATFORM = Platform()  # linux/amd64: the provenance builderPlatform
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


# --------------------------------------------------------------------------------------------------
# LLB graph


def pb_platform(platform: Platform) -> dict[str, GoValue]:
    """``pb.Platform`` (capitalised JSON names, ``omitempty``)."""
    out: dict[str, GoValue] = {"Architecture": platform.architecture, "OS": platform.os}
    if platform.variant:
        out["Variant"] = platform.variant
    return out


@dataclass(eq=False)
class Vertex:
    """One LLB op: its JSON (``pb.Op`` without inputs, as provenance prints it) and its inputs.

    ``result`` names what the op's output 0 is in the cache export, for the provenance layer map:
    ``("base", key)`` or ``("step", key)``; ``None`` for ops without a layer result (local sources).
    """

    op: dict[str, GoValue]
    inputs: tuple[tuple[Vertex, int], ...] = ()
    locations: list[tuple[int, int]] = field(default_factory=list)
    result: tuple[str, object] | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        self.digest = key_digest(
            "fixturegen.llb.v0:"
            + go_json([self.op, [f"{vertex.digest}:{index}" for vertex, index in self.inputs]]).decode()
        )


class LlbGraph:
    """The LLB definition of one platform's build; identical ops are one vertex (as in ``llb.Marshal``)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.vertices: dict[str, Vertex] = {}

    def add(self, vertex: Vertex, location: tuple[int, int] | None = None) -> Vertex:
        existing = self.vertices.setdefault(vertex.digest, vertex)
        if location is not None:
            existing.locations.append(location)
        return existing

    def op(self, kind: str, body: Mapping[str, GoValue], *, platform: bool = True) -> dict[str, GoValue]:
        """``solver/pb/json.go`` ``jsonOp``: ``{"Op": {kind: body}, "platform": …, "constraints": {}}``."""
        out: dict[str, GoValue] = {"Op": {kind: dict(body)}}
        if platform:
            out["platform"] = pb_platform(self.platform)
        out["constraints"] = {}
        return out

    def image(self, ref: str, location: tuple[int, int], result: object) -> Vertex:
        vertex = Vertex(self.op("source", {"identifier": "docker-image://" + ref}), result=("base", result))
        return self.add(vertex, location)

    def local(self, name: str, attrs: Mapping[str, str]) -> Vertex:
        # client/llb/source.go: local sources carry no platform; local.session/local.unique are
        # dropped by provenance (buildconfig.go toBuildSteps).
        body: dict[str, GoValue] = {"identifier": "local://" + name}
        if attrs:
            body["attrs"] = go_map(attrs)
        return self.add(Vertex(self.op("source", body, platform=False)))

    def exec(
        self,
        root: Vertex,
        args: Sequence[str],
        env: Sequence[str],
        cwd: str,
        user: str,
        location: tuple[int, int],
        result: object,
    ) -> Vertex:
        meta: dict[str, GoValue] = {"args": list(args)}
        if env:
            meta["env"] = list(env)
        meta["cwd"] = cwd
        if user:
            meta["user"] = user
        meta["removeMountStubsRecursive"] = True  # client/llb/exec.go
        body: dict[str, GoValue] = {"meta": meta, "mounts": [{"dest": "/"}]}  # input 0 / output 0: omitempty
        vertex = Vertex(self.op("exec", body), ((root, 0),), result=("step", result))
        return self.add(vertex, location)

    def mkdir(
        self, base: Vertex | None, path: str, user: str, location: tuple[int, int], result: object
    ) -> Vertex:
        mkdir: dict[str, GoValue] = {"path": path, "mode": 0o755, "makeParents": True}
        if user:
            mkdir["owner"] = {"user": {"User": {"byName": {"name": user}}}}
        mkdir["timestamp"] = -1
        action = _file_action(0 if base is not None else -1, -1, 0, "mkdir", mkdir)
        inputs = ((base, 0),) if base is not None else ()
        vertex = Vertex(self.op("file", {"actions": [action]}), inputs, result=("step", result))
        return self.add(vertex, location)

    def copy(
        self,
        base: Vertex | None,
        source: Vertex,
        sources: Sequence[str],
        dest: str,
        *,
        unpack: bool,
        chown: str,
        chmod: str,
        location: tuple[int, int],
        result: object,
    ) -> Vertex:
        """A COPY/ADD FileOp: one copy action per source, chained (``client/llb/fileop.go`` Marshal)."""
        inputs: list[tuple[Vertex, int]] = [(base, 0)] if base is not None else []
        inputs.append((source, 0))
        source_index = len(inputs) - 1
        actions: list[GoValue] = []
        for i, src in enumerate(sources):
            copy: dict[str, GoValue] = {"src": src, "dest": dest}
            if chown:
                copy["owner"] = _chown(chown)
            if chmod and chmod.isdigit():
                copy["mode"] = int(chmod, 8)
            elif not chmod:
                copy["mode"] = -1
            copy["followSymlink"] = True
            copy["dirCopyContents"] = True
            if unpack:
                copy["attemptUnpackDockerCompatibility"] = True
            copy["createDestPath"] = True
            copy["allowWildcard"] = True
            copy["allowEmptyWildcard"] = True
            copy["timestamp"] = -1
            if chmod and not chmod.isdigit():
                copy["modeStr"] = chmod
            # the first action works on the destination input (-1: scratch), the next on the previous
            # action's output (numbered after the op's inputs)
            first = 0 if base is not None else -1
            parent = first if i == 0 else len(inputs) + i - 1
            output = 0 if i == len(sources) - 1 else -1
            actions.append(_file_action(parent, source_index, output, "copy", copy))
        vertex = Vertex(self.op("file", {"actions": actions}), tuple(inputs), result=("step", result))
        return self.add(vertex, location)

    def merge(self, base: Vertex, diff: Vertex, location: tuple[int, int], result: object) -> Vertex:
        body: dict[str, GoValue] = {"inputs": [{}, {"input": 1}]}  # MergeInput.input 0 is omitempty
        vertex = Vertex(self.op("merge", body), ((base, 0), (diff, 0)), result=("step", result))
        return self.add(vertex, location)

    def definition(self, target: Vertex) -> tuple[list[Vertex], Vertex]:
        """Post-order walk from a terminal op over ``target`` (``buildconfig.go`` ``walkDigests``)."""
        terminal = Vertex({"Op": {}}, ((target, 0),))
        order: list[Vertex] = []
        seen: set[str] = set()

        def walk(vertex: Vertex) -> None:
            if vertex.digest in seen:
                return
            seen.add(vertex.digest)
            for parent, _ in vertex.inputs:
                walk(parent)
            order.append(vertex)

        walk(terminal)
        return order, terminal


def _file_action(
    input_index: int, secondary: int, output: int, kind: str, body: Mapping[str, GoValue]
) -> dict[str, GoValue]:
    # solver/pb/json.go jsonFileAction: input/secondaryInput/output always written, then "Action"
    return {"input": input_index, "secondaryInput": secondary, "output": output, "Action": {kind: dict(body)}}


def _chown(spec: str) -> dict[str, GoValue]:
    def user_opt(text: str) -> dict[str, GoValue]:
        if text.isdigit():
            return {"User": {"byId": int(text)}} if int(text) else {"User": {}}
        return {"User": {"byName": {"name": text}}}

    user, _, group = spec.partition(":")
    out: dict[str, GoValue] = {"user": user_opt(user)}
    if group:
        out["group"] = user_opt(group)
    return out


def build_steps(
    order: Sequence[Vertex], *, sort_keys: bool
) -> tuple[list[GoValue], dict[str, GoValue], dict[str, int]]:
    """``toBuildSteps``: ``[{id, op, inputs}]``, the digest → ``step<N>`` mapping, and digest → N."""
    index = {vertex.digest: i for i, vertex in enumerate(order)}
    steps: list[GoValue] = []
    for i, vertex in enumerate(order):
        step: dict[str, GoValue] = {"id": f"step{i}", "op": vertex.op}
        if vertex.inputs:
            step["inputs"] = [f"step{index[parent.digest]}:{out}" for parent, out in vertex.inputs]
        steps.append(go_sorted(step) if sort_keys else step)
    mapping = go_map({digest: f"step{i}" for digest, i in index.items()})
    return steps, mapping, index


# --------------------------------------------------------------------------------------------------
# Predicates


def image_purl(ref: str, platform: Platform | None) -> str:
    """``util/purl.RefToPURL(TypeDocker, ref, platform)`` for a normalized ``name:tag`` reference."""
    from urllib.parse import quote, quote_plus

    name, _, tag = ref.rpartition(":")
    if "/" in tag:  # no tag: a port, not a tag
        name, tag = ref, "latest"
    if name.startswith("docker.io/"):
        name = name.removeprefix("docker.io/")
        if name.startswith("library/") and name.count("/") == 1:
            name = name.removeprefix("library/")
    parts = name.split("/")
    out = "pkg:docker/"
    if len(parts) > 1:
        out += "/".join(quote_plus(p) for p in parts[:-1]) + "/"
    # packageurl-go: namespace segments and name url.QueryEscape'd, version and qualifier values
    # url.PathEscape'd (which keeps $&+:=@ and escapes / ; , ?)
    out += quote_plus(parts[-1]) + "@" + quote(tag, safe="$&+:=@")
    if platform is not None:
        out += "?platform=" + quote(platform.format(), safe="$&+:=@")
    return out


@dataclass(frozen=True)
class ProvenanceInput:
    """What one platform's provenance is made of (see :func:`provenance_predicate`)."""

    platform: Platform
    order: tuple[Vertex, ...]
    materials: tuple[tuple[str, str], ...]  # (package URL, sha256 digest), sorted by image reference
    args: Mapping[str, str]  # frontend args after FilterArgs, "filename" removed
    filename: str
    locals: tuple[str, ...]  # local source names, sorted
    dockerfile: bytes
    dockerfile_order: tuple[Vertex, ...]  # the LLB of the local source the Dockerfile was read from
    layers: Mapping[str, Sequence[Sequence[RealLayer]]]  # step<N>:<output> -> chains
    invocation_id: str
    started_on: str
    finished_on: str
    builder_platform: Platform = BUILDER_PLATFORM
    dockerfile_version: str = "1.26.0"


def _layer_descriptor(layer: RealLayer) -> GoValue:
    # provenance.go cacheExporter.Add: RemoveInternalLayerAnnotations drops containerd.io/uncompressed and
    # buildkit/createdat, leaving an empty map, which omitempty drops
    return Descriptor(layer.media_type, layer.blob, layer.size).to_go()


def _source(p: ProvenanceInput, index: Mapping[str, int]) -> dict[str, GoValue]:
    locations: dict[str, GoValue] = {}
    for vertex in p.order:
        if vertex.locations:
            locations[f"step{index[vertex.digest]}"] = {
                "locations": [
                    {"ranges": [{"start": {"line": a}, "end": {"line": b}}]} for a, b in vertex.locations
                ]
            }
    steps, mapping, _ = build_steps(p.dockerfile_order, sort_keys=False)
    info: dict[str, GoValue] = {
        "filename": p.filename,
        "language": "Dockerfile",
        "data": p.dockerfile,
        "llbDefinition": steps,
        "digestMapping": mapping,
    }
    return {"locations": go_map(locations), "infos": [info]}


def _buildkit_metadata(p: ProvenanceInput, index: Mapping[str, int]) -> dict[str, GoValue]:
    out: dict[str, GoValue] = {"source": _source(p, index)}
    if p.layers:
        out["layers"] = go_map(
            {
                key: [[_layer_descriptor(layer) for layer in chain] for chain in chains]
                for key, chains in p.layers.items()
            }
        )
    return out


def _request(p: ProvenanceInput) -> dict[str, GoValue]:
    request: dict[str, GoValue] = {"frontend": "dockerfile.v0"}
    if p.args:
        request["args"] = go_map(dict(p.args))
    if p.locals:
        request["locals"] = [{"name": name} for name in p.locals]
    return request


def provenance_predicate(p: ProvenanceInput, version: ProvenanceVersion) -> dict[str, GoValue]:
    """The mode=max SLSA predicate of one platform, v1 or v0.2, as a Go-ordered JSON value."""
    steps_v1, mapping, index = build_steps(p.order, sort_keys=True)
    metadata = _buildkit_metadata(p, index)
    materials: list[GoValue] = [{"uri": uri, "digest": {"sha256": hexa}} for uri, hexa in p.materials]
    if version == "v1":
        internal: dict[str, GoValue] = {
            "buildConfig": {"llbDefinition": steps_v1, "digestMapping": mapping},
            "builderPlatform": p.builder_platform.format(),
            "dockerfileVersion": p.dockerfile_version,
        }
        definition: dict[str, GoValue] = {"buildType": BUILDKIT_BUILD_TYPE_V1}
        if materials:
            definition["resolvedDependencies"] = materials
        definition["externalParameters"] = {"configSource": {"path": p.filename}, "request": _request(p)}
        definition["internalParameters"] = go_sorted(internal)
        return {
            "buildDefinition": definition,
            "runDetails": {
                "builder": {"id": ""},
                "metadata": {
                    "invocationId": p.invocation_id,
                    "startedOn": p.started_on,
                    "finishedOn": p.finished_on,
                    "buildkit_metadata": metadata,
                    "buildkit_completeness": {"request": True, "resolvedDependencies": False},
                },
            },
        }
    steps_v02, _, _ = build_steps(p.order, sort_keys=False)
    out: dict[str, GoValue] = {"builder": {"id": ""}, "buildType": BUILDKIT_BUILD_TYPE_V02}
    if materials:
        out["materials"] = materials
    out["invocation"] = {
        "configSource": {"entryPoint": p.filename},
        "parameters": _request(p),
        "environment": go_sorted(
            {"platform": p.builder_platform.format(), "dockerfileVersion": p.dockerfile_version}
        ),
    }
    out["buildConfig"] = {"llbDefinition": steps_v02, "digestMapping": mapping}
    out["metadata"] = {
        "buildInvocationID": p.invocation_id,
        "buildStartedOn": p.started_on,
        "buildFinishedOn": p.finished_on,
        "completeness": {"parameters": True, "environment": True, "materials": False},
        "reproducible": False,
        "https://mobyproject.org/buildkit@v1#metadata": metadata,
    }
    return out


def statement(
    predicate: Mapping[str, GoValue], version: ProvenanceVersion, subjects: Iterable[tuple[str, str]]
) -> bytes:
    """The in-toto statement blob (``make.go`` ``makeInTotoStatement``; compact, the predicate
    ``MarshalIndent``-ed then compacted as a ``json.RawMessage``)."""
    return go_json(
        {
            "_type": STATEMENT_TYPE,
            "predicateType": PREDICATE_V1 if version == "v1" else PREDICATE_V02,
            "subject": [
                {"name": name, "digest": {"sha256": d.removeprefix("sha256:")}} for name, d in subjects
            ],
            "predicate": dict(predicate),
        }
    )


def attestation_manifest(
    statements: Sequence[tuple[bytes, str]], target: Descriptor
) -> tuple[bytes, Descriptor, dict[str, bytes]]:
    """``commitAttestationsManifest`` (not the OCI-artifact variant): manifest bytes, its index entry
    (annotations + ``unknown/unknown`` platform) and the blobs (config + statements)."""
    layers = [
        Descriptor(INTOTO_MEDIA_TYPE, digest_of(data), len(data), {"in-toto.io/predicate-type": ptype})
        for data, ptype in statements
    ]
    config = go_json(
        {
            "architecture": ATTESTATION_PLATFORM.architecture,
            "os": ATTESTATION_PLATFORM.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
    )
    manifest = go_json_indent(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Descriptor(OCI_IMAGE_CONFIG, digest_of(config), len(config)).to_go(),
            "layers": [layer.to_go() for layer in layers],
        }
    )
    entry = Descriptor(
        OCI_MANIFEST,
        digest_of(manifest),
        len(manifest),
        {"vnd.docker.reference.digest": target.digest, "vnd.docker.reference.type": "attestation-manifest"},
        ATTESTATION_PLATFORM,
    )
    blobs = {digest_of(config): config, **{digest_of(data): data for data, _ in statements}}
    return manifest, entry, blobs


def invocation_id(seed: str) -> str:
    """A stable stand-in for ``identity.NewID()`` (25 base-36 characters)."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(25):
        number, rest = divmod(number, 36)
        out.append(alphabet[rest])
    return "".join(out)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
