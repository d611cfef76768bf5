"""Describe a build as a Dockerfile and get what BuildKit would export for it.

:func:`from_dockerfile` parses a Dockerfile with the ``dockerfile`` package (BuildKit's own Go parser),
applies ``ARG`` substitution and stage pruning the way the Dockerfile frontend does, and turns every
stage the target needs into :mod:`tests.harness.fixturegen` stages (one :class:`~tests.harness.fixturegen.Build` per
platform). :meth:`DockerfileBuild.export` then gives

* the cache export (all platforms in one config, like ``solver/llbsolver/export.go``),
* the truth a reader should reconstruct: every step with its progress label exactly as BuildKit prints
  it (``[build 3/5] RUN …``, ``[linux/arm64 build 3/5] …``), its Dockerfile lines, record and layer,
  and every ``FROM`` image with its two root records,
* the built image as the image exporter pushes it: an OCI index of the platform manifests (config
  ``history`` as the frontend writes it) plus one attestation manifest per platform holding a mode=max
  SLSA provenance (v1 or v0.2) whose layer map and step indexes match the cache.

BuildKit sources followed (moby/buildkit; line numbers at the commit in ``/work/shared/spec``):
``frontend/dockerfile/dockerfile2llb/convert.go`` (``toDispatchState``: meta ARGs, ``buildMetaArgs``,
``buildDispatchStates`` stage names and totals at 487-499, ``resolveBaseImage`` FROM label,
``dispatch*`` for every instruction, ``commitToHistory``, ``prefixCommand``, ``uppercaseCmd``,
``processCmdEnv``, ``runCommandString``), ``convert_copy.go`` (``dispatchCopy``: labels, ``LINK``
merge, commit message), ``platform.go`` (``defaultArgs``), ``image.go`` (``emptyImage``),
``frontend/dockerfile/shell/lex.go`` (see :mod:`tests.harness.bkshell`), ``exporter/containerimage/writer.go``
(index, manifests, ``patchImageConfig``, ``normalizeLayersAndHistory``).
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import dockerfile

from tests.harness.bkshell import EnvList, Lex
from tests.harness.fixturegen import (
    DEFAULT_STARTED_AT,
    BaseImage,
    BaseIndex,
    BaseInfo,
    Build,
    CacheExport,
    Compression,
    Descriptor,
    File,
    FilesArg,
    GoValue,
    LayerSpec,
    LayoutEntry,
    Mode,
    Platform,
    RealLayer,
    Stage,
    Step,
    StepInfo,
    copy,
    digest_of,
    generate_platforms,
    go_json,
    go_json_indent,
    go_map,
    go_time,
    parse_go_time,
    run,
    workdir,
)
from tests.harness.provenancegen import (
    PREDICATE_V02,
    PREDICATE_V1,
    LlbGraph,
    ProvenanceInput,
    ProvenanceVersion,
    Vertex,
    attestation_manifest,
    image_purl,
    invocation_id,
    provenance_predicate,
    statement,
)

__all__ = [
    "BUILDER_PLATFORM",
    "BuiltImage",
    "DockerfileBuild",
    "DockerfileExport",
    "ExpectedBase",
    "ExpectedStep",
    "StepFiles",
    "base_documents",
    "from_dockerfile",
    "go_quote",
    "normalize_ref",
]

BUILDER_PLATFORM = Platform()
"""The builder's own platform: ``BUILDPLATFORM`` and the provenance ``builderPlatform``."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"

StepFiles: TypeAlias = "FilesArg | Callable[[Platform], FilesArg]"
"""What one step leaves in its layer: files, or a function of the platform giving them."""

_EMPTY: Mapping[str, str] = MappingProxyType({})


# --------------------------------------------------------------------------------------------------
# Small Go helpers


def _go_log10(x: float) -> float:
    """Go's pure ``math.Log10`` (``log2(x) * (Ln2/Ln10)``, constants rounded once) for ``%*d`` widths."""
    frac, exp = math.frexp(x)
    log2 = float(exp - 1) if frac == 0.5 else math.log(frac) * 1.4426950408889634 + exp
    return log2 * 0.3010299956639812


def go_quote(text: str) -> str:
    """Go ``strconv.Quote`` for printable text (``%q``)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_strings(values: Sequence[str]) -> str:
    """``fmt.Sprintf("%q", []string)``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def _go_slice(values: Sequence[str]) -> str:
    """``fmt.Sprintf("%v", []string)``: ``[a b]``."""
    return "[" + " ".join(values) + "]"


def normalize_ref(ref: str) -> str:
    """``reference.TagNameOnly(reference.ParseNormalizedNamed(ref)).String()``.

    ``golang:1.23-alpine`` → ``docker.io/library/golang:1.23-alpine``; ``alpine`` → ``…alpine:latest``.
    """
    name, at, digest = ref.partition("@")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if not sep:
        domain, path = "docker.io", name
    elif "." in first or ":" in first or first == "localhost":
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    out = f"{domain}/{path}"
    if tag:
        out += ":" + tag
    elif not at:
        out += ":latest"
    return out + (at + digest if at else "")


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ExpectedStep:
    """One Dockerfile step the cache holds a record for, as BuildKit's progress names it."""

    platform: str
    stage: str
    number: int
    total: int
    label: str
    line: int
    end_line: int
    instruction: str
    record: str  # the record on the stage's chain (for COPY --link onto a state: the MergeOp record)
    record_index: int
    layer: str | None  # the blob this step added, when the cache stores it
    link_copy_record: str | None = None  # COPY --link: the FileOp record (the copy onto scratch)
    link_label: str | None = None  # COPY --link: the MergeOp's own label ("[s n/m] LINK COPY …")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "stage": self.stage,
            "number": self.number,
            "total": self.total,
            "label": self.label,
            "line": self.line,
            "end_line": self.end_line,
            "instruction": self.instruction,
            "record": self.record,
            "record_index": self.record_index,
            "layer": self.layer,
            "platform": self.platform,
        }
        if self.link_copy_record is not None:
            out["link_copy_record"] = self.link_copy_record
            out["link_label"] = self.link_label
        return out


@dataclass(frozen=True)
class ExpectedBase:
    """A ``FROM`` of an external image and the root records BuildKit writes for it (spec §3.3)."""

    platform: str
    stage: str
    ref: str  # the FROM reference after ARG expansion, as written
    resolved: str  # the digest the reference resolved to (an index digest for a multi-platform base)
    label: str
    line: int
    total: int
    chain_id: str
    chain_root: str
    manifest_root: str
    layers: tuple[str, ...]  # the base layer blobs, bottom first

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "ref": self.ref,
            "digest": self.resolved,
            "label": self.label,
            "line": self.line,
            "number": 1,
            "total": self.total,
            "chain_id": self.chain_id,
            "root_records": [self.chain_root, self.manifest_root],
            "layers": list(self.layers),
            "platform": self.platform,
        }


@dataclass(frozen=True)
class BuiltImage:
    """The image a build pushed: index + platform manifests + attestation manifests and all blobs."""

    index_bytes: bytes
    index_descriptor: Descriptor
    manifests: tuple[tuple[str, Descriptor], ...]  # (platform, manifest descriptor)
    attestations: tuple[tuple[str, Descriptor], ...]  # (platform, attestation manifest descriptor)
    provenance: tuple[tuple[str, bytes], ...]  # (platform, in-toto statement blob)
    documents: Mapping[str, bytes]  # child manifests, by digest
    blobs: Mapping[str, bytes]  # configs, layers, statements, by digest

    def layout_entry(self, tag: str) -> LayoutEntry:
        return LayoutEntry(tag, self.index_descriptor, self.index_bytes)

    def layout_blobs(self) -> dict[str, bytes]:
        return {**self.documents, **self.blobs}

    def statement(self, platform: str) -> dict[str, Any]:
        data = dict(self.provenance)[platform]
        parsed: dict[str, Any] = json.loads(data)
        return parsed


def base_documents(base: BaseImage | BaseIndex) -> tuple[LayoutEntry, dict[str, bytes]]:
    """A base image as a registry serves it: the tag's document and every blob/child manifest.

    A :class:`BaseIndex` gives its OCI index (``platform`` on each entry) with the child manifests, their
    configs and layers; a :class:`BaseImage` its OCI manifest.
    """
    if isinstance(base, BaseImage):
        image = base.image(base.platform or Platform())
        return image.layout_entry(""), image.layout_blobs()
    blobs: dict[str, bytes] = {}
    for _, image in base.children():
        blobs[image.manifest_descriptor.digest] = image.manifest_bytes
        blobs.update(image.layout_blobs())
    data = base.index_bytes
    return LayoutEntry("", Descriptor.of(OCI_INDEX, data), data), blobs


# --------------------------------------------------------------------------------------------------
# Parsing (BuildKit's parser) and per-platform dispatch


@dataclass(frozen=True)
class _Stage:
    index: int
    name: str  # lowercased AS name, "" if unnamed
    base: str  # as written
    start: int
    end: int
    commands: tuple[dockerfile.Command, ...]


@dataclass(frozen=True)
class _Parsed:
    escape: str
    meta_args: tuple[dockerfile.Command, ...]
    stages: tuple[_Stage, ...]


_ESCAPE_RE = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)


def _parse(text: str) -> _Parsed:
    escape = "\\"
    for line in text.splitlines():  # parser directives: only comment lines at the very top
        if not line.startswith("#"):
            break
        match = _ESCAPE_RE.match(line)
        if match:
            escape = match.group(1)
    meta: list[dockerfile.Command] = []
    headers: list[tuple[dockerfile.Command, str, str]] = []
    bodies: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_string(text):
        instruction = command.cmd.upper()
        if instruction == "FROM":
            if command.flags:
                raise NotImplementedError(f"line {command.start_line}: FROM {' '.join(command.flags)}")
            value = list(command.value)
            name = ""
            if len(value) == 3 and value[1].lower() == "as":
                name = value[2].lower()
            elif len(value) != 1:
                raise ValueError(f"line {command.start_line}: FROM requires either one or three arguments")
            headers.append((command, name, value[0]))
            bodies.append([])
        elif not headers:
            if instruction != "ARG":
                raise ValueError(f"line {command.start_line}: {instruction} before the first FROM")
            meta.append(command)
        else:
            bodies[-1].append(command)
    if not headers:
        raise ValueError("dockerfile contains no stages to build")
    stages = tuple(
        _Stage(i, name, base, command.start_line, command.end_line, tuple(body))
        for i, ((command, name, base), body) in enumerate(zip(headers, bodies, strict=True))
    )
    return _Parsed(escape, tuple(meta), stages)


def _flags(command: dockerfile.Command, allowed: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for flag in command.flags:
        name, sep, value = flag.removeprefix("--").partition("=")
        if name not in allowed:
            raise NotImplementedError(f"line {command.start_line}: {command.cmd.upper()} --{name}")
        out[name] = value if sep else "true"
    return out


@dataclass
class _ImageConfig:
    """The parts of ``DockerOCIImageConfig`` the frontend sets (Go field order in :meth:`to_go`)."""

    user: str = ""
    exposed_ports: dict[str, None] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, None] = field(default_factory=dict)
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False
    shell: list[str] | None = None

    def copy(self) -> _ImageConfig:
        return replace(
            self,
            exposed_ports=dict(self.exposed_ports),
            env=list(self.env),
            entrypoint=list(self.entrypoint) if self.entrypoint is not None else None,
            cmd=list(self.cmd) if self.cmd is not None else None,
            volumes=dict(self.volumes),
            labels=dict(self.labels),
            shell=list(self.shell) if self.shell is not None else None,
        )

    def set_env(self, key: str, value: str) -> None:  # convert.go addEnv
        for i, entry in enumerate(self.env):
            if entry.partition("=")[0] == key:
                self.env[i] = f"{key}={value}"
                return
        self.env.append(f"{key}={value}")

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = go_map({port: {} for port in self.exposed_ports})
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = go_map({volume: {} for volume in self.volumes})
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = go_map(dict(self.labels))
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.shell:
            out["Shell"] = list(self.shell)
        return out

    @classmethod
    def from_go(cls, config: Mapping[str, Any]) -> _ImageConfig:
        return cls(
            user=config.get("User", ""),
            exposed_ports=dict.fromkeys(config.get("ExposedPorts") or {}),
            env=list(config.get("Env") or []),
            entrypoint=config.get("Entrypoint"),
            cmd=config.get("Cmd"),
            volumes=dict.fromkeys(config.get("Volumes") or {}),
            working_dir=config.get("WorkingDir", ""),
            labels=dict(config.get("Labels") or {}),
            stop_signal=config.get("StopSignal", ""),
            args_escaped=bool(config.get("ArgsEscaped", False)),
            shell=config.get("Shell"),
        )


@dataclass(frozen=True)
class _History:
    created_by: str
    empty_layer: bool
    created: str | None = None
    comment: str = HISTORY_COMMENT

    def to_go(self) -> dict[str, GoValue]:
        out: dict[str, GoValue] = {}
        if self.created is not None:
            out["created"] = self.created
        out["created_by"] = self.created_by
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass
class _DfStep:
    """One op-producing instruction of one platform: label data + where it is in the fixturegen build."""

    stage: str
    number: int
    total: int
    label: str
    link_label: str | None
    line: int
    end_line: int
    instruction: str
    gen_stage: str
    gen_number: int


@dataclass
class _DfFrom:
    stage: str
    ref: str
    base: BaseImage
    label: str
    line: int
    total: int


@dataclass
class _DState:
    """``dispatchState``: one stage being dispatched for one platform."""

    stage: _Stage
    name: str  # stage-<index> when unnamed
    label_name: str  # "" when the Dockerfile has one stage
    total: int
    base_stage: _DState | None = None
    cmd_index: int = 0
    env: EnvList = field(default_factory=EnvList)
    user: str = ""
    workdir: str = "/"
    config: _ImageConfig = field(default_factory=_ImageConfig)
    history: list[_History] = field(default_factory=list)
    build_args: list[tuple[str, str | None]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    vertex: Vertex | None = None
    cmd_set: bool = False
    gen_base: BaseImage | str | None = None
    dispatched: bool = False
    author: str = ""


@dataclass
class _Conversion:
    platform: Platform
    build: Build
    steps: list[_DfStep]
    froms: list[_DfFrom]
    target: _DState
    graph: LlbGraph
    context_paths: tuple[str, ...]
    uses_context: bool


class _Converter:
    def __init__(
        self,
        parsed: _Parsed,
        platform: Platform,
        *,
        multi: bool,
        bases: Mapping[str, BaseImage | BaseIndex],
        build_args: Mapping[str, str],
        target: str | None,
        files: Mapping[int, StepFiles],
        mode: Mode,
        compression: Compression,
        started_at: str,
        context_paths: tuple[str, ...] | None,
    ) -> None:
        self.parsed = parsed
        self.platform = platform
        self.multi = multi
        self.bases = {normalize_ref(k): v for k, v in bases.items()}
        self.build_args = build_args
        self.target_name = target
        self.files = files
        self.mode: Mode = mode
        self.compression: Compression = compression
        self.started_at = started_at
        self.lex = Lex(parsed.escape)
        self.run_lex = Lex(parsed.escape, raw_quotes=True, skip_unset_env=True)
        self.graph = LlbGraph(platform)
        self.known_context_paths = context_paths
        self.context_paths: set[str] = set()
        self.context_vertex: Vertex | None = None
        self.steps: list[_DfStep] = []
        self.froms: list[_DfFrom] = []
        self.states: list[_DState] = []
        self.by_name: dict[str, _DState] = {}

    # ARGs -----------------------------------------------------------------------------------------

    def global_args(self, target_stage_name: str) -> EnvList:
        """``defaultArgs`` + ``buildMetaArgs``: the environment FROM references are expanded in."""
        tp, bp = self.platform, BUILDER_PLATFORM
        defaults = [
            ("BUILDPLATFORM", bp.format()),
            ("BUILDOS", bp.os),
            ("BUILDOSVERSION", ""),
            ("BUILDARCH", bp.architecture),
            ("BUILDVARIANT", bp.variant),
            ("TARGETPLATFORM", tp.format()),
            ("TARGETOS", tp.os),
            ("TARGETOSVERSION", ""),
            ("TARGETARCH", tp.architecture),
            ("TARGETVARIANT", tp.variant),
            ("TARGETSTAGE", target_stage_name or "default"),
        ]
        env = EnvList((k, self.build_args.get(k, v)) for k, v in defaults)
        for command in self.parsed.meta_args:
            for word in command.value:
                key, sep, value = word.partition("=")
                if key in self.build_args:
                    env.set(key, self.build_args[key])
                elif sep:
                    env.set(key, self.lex.process_word(value, env))
        return env

    # dispatch -------------------------------------------------------------------------------------

    def run(self) -> _Conversion:
        stages = self.parsed.stages
        last_name = stages[-1].name
        target_stage_name = self.target_name or last_name
        global_args = self.global_args(target_stage_name)
        states = self.states
        by_name = self.by_name
        for stage in stages:
            expanded = self.lex.process_word(stage.base, global_args)
            if not expanded:
                raise ValueError(f"line {stage.start}: base name ({stage.base}) should not be blank")
            total = 0
            base_stage = by_name.get(expanded)
            if expanded != "scratch" and base_stage is None:
                total = 1
            for command in stage.commands:
                if command.cmd.upper() in ("ADD", "COPY", "RUN", "WORKDIR"):
                    total += 1
            name = stage.name or f"stage-{stage.index}"
            state = _DState(replace(stage, base=expanded), name, name, total, base_stage)
            states.append(state)
            if stage.name:
                by_name[stage.name] = state
        if len(states) == 1:
            states[0].label_name = ""
        if self.target_name:
            target = by_name.get(self.target_name.lower())
            if target is None:
                raise ValueError(f"target stage {self.target_name!r} could not be found")
        else:
            target = states[-1]
        deps = {id(s): self.dependencies(s) for s in states}
        reachable: set[int] = set()
        todo = [target]
        while todo:
            state = todo.pop()
            if id(state) in reachable:
                continue
            reachable.add(id(state))
            if state.base_stage is not None:
                todo.append(state.base_stage)
            todo.extend(deps[id(state)])
        order = [s for s in states if id(s) in reachable]
        for state in order:
            self.resolve_base(state, global_args)
        for state in order:
            self.dispatch_stage(state, global_args)
        build = Build(
            tuple(Stage(s.name, s.gen_base, tuple(s.steps)) for s in order),
            mode=self.mode,
            compression=self.compression,
            platform=self.platform,
            started_at=self.started_at,
            file_op_platform=True,
        )
        return _Conversion(
            self.platform,
            build,
            self.steps,
            self.froms,
            target,
            self.graph,
            tuple(sorted(self.context_paths)),
            self.context_vertex is not None,
        )

    def dependencies(self, state: _DState) -> list[_DState]:
        out = []
        for command in state.stage.commands:
            if command.cmd.upper() == "COPY":
                source = _flags(command, ("from", "link", "chown", "chmod")).get("from")
                if source is not None:
                    out.append(self.stage_ref(source, command))
        return out

    def stage_ref(self, source: str, command: dockerfile.Command) -> _DState:
        """``toCommand``: ``--from`` names an earlier stage (by name or index)."""
        if source.isdigit():
            index = int(source)
            if index >= len(self.states):
                raise ValueError(f"line {command.start_line}: invalid stage index {index}")
            return self.states[index]
        found = self.by_name.get(source.lower())
        if found is None:
            raise NotImplementedError(
                f"line {command.start_line}: COPY --from={source} (an image, not a stage)"
            )
        return found

    def prefix(self, state: _DState, text: str, env: EnvList | None) -> str:
        """``prefixCommand`` (``convert.go``): ``[platform stage k/n] text``."""
        if state.total == 0:
            return text
        out = "["
        if self.multi:
            out += self.platform.format() + self.target_platform_suffix(env) + " "
        if state.label_name:
            out += state.label_name + " "
        state.cmd_index += 1
        width = int(1 + _go_log10(float(state.total)))
        out += f"{state.cmd_index:>{width}d}/{state.total}] "
        return out + text

    def target_platform_suffix(self, env: EnvList | None) -> str:
        """``formatTargetPlatform(platform, platformFromEnv(env))``."""
        if env is None:
            return ""
        target: Platform | None = None
        keys = env.keys()
        if "TARGETPLATFORM" in keys:
            try:
                target = Platform.parse(env.get("TARGETPLATFORM") or "")
            except ValueError:
                target = None
        if target is None and any(k in keys for k in ("TARGETOS", "TARGETARCH", "TARGETVARIANT")):
            target = Platform(
                env.get("TARGETOS") or self.platform.os,
                env.get("TARGETARCH") or self.platform.architecture,
                env.get("TARGETVARIANT") or "",
            )
        if target is None:
            return ""
        if target.os == self.platform.os and target.architecture != self.platform.architecture:
            return "->" + "/".join(p for p in (target.architecture, target.variant) if p)
        if target.os != self.platform.os:
            return "->" + target.format()
        return ""

    def resolve_base(self, state: _DState, global_args: EnvList) -> None:
        """``resolveReachableStages`` / ``resolveBaseImage``: scratch, or pull the image (FROM label)."""
        if state.base_stage is not None:
            return
        if state.stage.base == "scratch":
            state.gen_base = None
            state.config = _ImageConfig(env=["PATH=" + DEFAULT_PATH], working_dir="/")
            return
        ref = normalize_ref(state.stage.base)
        found = self.bases.get(ref)
        if found is None:
            raise ValueError(f"line {state.stage.start}: no base image given for {ref!r}")
        if isinstance(found, BaseIndex):
            base = found.for_platform(self.platform)
            resolved = found.digest
        else:
            if found.platform is not None and found.platform != self.platform:
                raise ValueError(f"base {ref} is for {found.platform.format()}, not {self.platform.format()}")
            base = replace(found, platform=self.platform)
            resolved = base.digest or base.image(self.platform).manifest_descriptor.digest
        image = base.image(self.platform)
        config = json.loads(image.config_bytes)
        pinned = f"{ref}@{resolved}"
        label = self.prefix(state, "FROM " + pinned, None)
        state.gen_base = base
        state.config = _ImageConfig.from_go(config.get("config") or {})
        state.history = [
            _History(
                h.get("created_by", ""),
                bool(h.get("empty_layer", False)),
                h.get("created"),
                h.get("comment", ""),
            )
            for h in config.get("history") or []
        ]
        state.vertex = self.graph.image(pinned, (state.stage.start, state.stage.end), base)
        self.froms.append(_DfFrom(state.name, state.stage.base, base, label, state.stage.start, state.total))

    def dispatch_stage(self, state: _DState, global_args: EnvList) -> None:
        parent = state.base_stage
        if parent is not None:  # dispatchState.init: inherit the base stage
            if not parent.dispatched:
                raise ValueError(f"stage {state.name}: FROM a stage that was not dispatched")
            state.gen_base = parent.name
            state.env = parent.env.copy()
            state.user = parent.user
            state.workdir = parent.workdir
            state.config = parent.config.copy()
            state.history = list(parent.history)
            state.build_args = list(parent.build_args)
            state.vertex = parent.vertex
            state.author = parent.author
        else:
            if not any(e.startswith("PATH=") for e in state.config.env):
                state.config.env.append("PATH=" + DEFAULT_PATH)
            for entry in state.config.env:
                key, _, value = entry.partition("=")
                state.env.set(key, value)
            if state.config.working_dir:
                state.workdir = state.config.working_dir
            state.user = state.config.user
        for command in state.stage.commands:
            self.dispatch(state, command, global_args)
        state.dispatched = True

    def dispatch(self, state: _DState, command: dockerfile.Command, global_args: EnvList) -> None:
        instruction = command.cmd.upper()
        location = (command.start_line, command.end_line)
        if command.heredocs:
            raise NotImplementedError(f"line {command.start_line}: heredocs")
        handler = getattr(self, "do_" + instruction.lower(), None)
        if handler is None:
            raise NotImplementedError(f"line {command.start_line}: {instruction}")
        handler(state, command, location, global_args)

    # instructions ---------------------------------------------------------------------------------

    def expand(self, state: _DState, word: str) -> str:
        return self.lex.process_word(word, state.env)

    def label_text(self, state: _DState, command: dockerfile.Command, *, run: bool) -> str:
        """``uppercaseCmd(processCmdEnv(shlex, c.String(), env))``."""
        lexer = self.run_lex if run else self.lex
        original = command.original.strip()
        try:
            text = lexer.process_word(original, state.env)
        except ValueError:
            text = original
        word, sep, rest = text.partition(" ")
        return word.upper() + sep + rest

    def layer_files(self, command: dockerfile.Command) -> LayerSpec | None:
        given = self.files.get(command.start_line)
        if given is None:
            return None
        files = given(self.platform) if callable(given) else given
        if files is None:
            return None
        if isinstance(files, Mapping):
            return LayerSpec(
                files=tuple(File(p, c.encode() if isinstance(c, str) else c) for p, c in files.items())
            )
        return LayerSpec(files=tuple(files))

    def add_step(
        self,
        state: _DState,
        command: dockerfile.Command,
        step: Step,
        label: str,
        instruction: str,
        link_label: str | None = None,
    ) -> None:
        state.steps.append(step)
        self.steps.append(
            _DfStep(
                state.name,
                state.cmd_index,
                state.total,
                label,
                link_label,
                command.start_line,
                command.end_line,
                instruction,
                state.name,
                len(state.steps),
            )
        )

    def do_env(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        values = list(command.value)
        pairs = [
            (self.expand(state, values[i]), self.expand(state, values[i + 1]))
            for i in range(0, len(values), 2)
        ]
        for key, value in pairs:
            state.env.set(key, value)
            state.config.set_env(key, value)
        state.history.append(_History("ENV " + " ".join(f"{k}={v}" for k, v in pairs), True))

    def do_arg(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        commits = []
        for word in command.value:
            key, sep, default = word.partition("=")
            value: str | None = default if sep else None
            if key in self.build_args:
                value = self.build_args[key]
            elif value is not None:
                value = self.expand(state, value)
            elif key in global_args:
                value = global_args.get(key)
            if value is not None:
                state.env.set(key, value)
            state.build_args.append((key, value))
            commits.append(key if value is None else f"{key}={value}")
        state.history.append(_History("ARG " + " ".join(commits), True))

    def do_label(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        values = list(command.value)
        parts = []
        for i in range(0, len(values), 2):
            key, value = self.expand(state, values[i]), self.expand(state, values[i + 1])
            state.config.labels[key] = value
            parts.append(f"{key}={value}")
        state.history.append(_History("LABEL " + " ".join(parts), True))

    def do_user(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        user = self.expand(state, command.value[0])
        state.user = user
        state.config.user = user
        state.history.append(_History(f"USER {user}", True))

    def do_expose(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        ports: list[str] = []
        for word in command.value:
            for port in self.lex.process_words(word, state.env):
                number, _, proto = port.partition("/")
                ports.append(f"{number}/{(proto or 'tcp').lower()}")
        for port in ports:
            state.config.exposed_ports[port] = None
        state.history.append(_History("EXPOSE " + _go_slice(ports), True))

    def do_volume(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        volumes = [self.expand(state, v) for v in command.value]
        for volume in volumes:
            state.config.volumes[volume] = None
        state.history.append(_History("VOLUME " + _go_slice(volumes), True))

    def do_stopsignal(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        signal = self.expand(state, command.value[0])
        state.config.stop_signal = signal
        state.history.append(_History(f"STOPSIGNAL {signal}", True))

    def do_shell(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        state.config.shell = list(command.value)
        state.history.append(_History("SHELL " + _go_slice(command.value), True))

    def do_maintainer(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        author = " ".join(command.value)
        state.author = author
        state.history.append(_History(f"MAINTAINER {author}", True))

    def shell_args(self, state: _DState, command: dockerfile.Command) -> list[str]:
        if command.json:
            return list(command.value)
        shell = state.config.shell or ["/bin/sh", "-c"]
        return [*shell, " ".join(command.value)]

    def do_cmd(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        args = self.shell_args(state, command)
        state.config.cmd = args
        state.config.args_escaped = True
        state.cmd_set = True
        state.history.append(_History("CMD " + _go_strings(args), True))

    def do_entrypoint(
        self, state: _DState, command: dockerfile.Command, location: Any, global_args: EnvList
    ) -> None:
        args = self.shell_args(state, command)
        state.config.entrypoint = args
        if not state.cmd_set:
            state.config.cmd = None
        state.history.append(_History("ENTRYPOINT " + _go_strings(args), True))

    def do_workdir(
        self, state: _DState, command: dockerfile.Command, location: tuple[int, int], global_args: EnvList
    ) -> None:
        path = self.expand(state, command.value[0])
        wd = posixpath.normpath(posixpath.join(state.config.working_dir or "/", path))
        if wd.startswith("//"):
            wd = wd[1:]
        state.config.working_dir = wd
        state.workdir = wd
        if wd == "/":  # no op, no label index (but counted in the stage total)
            state.history.append(_History("WORKDIR /", True))
            return
        label = self.prefix(state, self.label_text(state, command, run=False), state.env)
        step = replace(workdir(wd, layer=self.layer_files(command)), user=state.user)
        key = (self.platform.format(), state.name, len(state.steps) + 1, "main")
        state.vertex = self.graph.mkdir(state.vertex, wd, state.user, location, key)
        self.add_step(state, command, step, label, "WORKDIR")
        state.history.append(_History("WORKDIR " + wd, False))

    def do_run(
        self, state: _DState, command: dockerfile.Command, location: tuple[int, int], global_args: EnvList
    ) -> None:
        if command.flags:
            raise NotImplementedError(f"line {command.start_line}: RUN {' '.join(command.flags)}")
        if state.vertex is None:
            raise ValueError(f"line {command.start_line}: RUN on scratch")
        args = self.shell_args(state, command)
        label = self.prefix(state, self.label_text(state, command, run=True), state.env)
        text = " ".join(command.value)
        layer = self.layer_files(command)
        if layer is None:
            content = text + "\n" + (self.platform.format() + "\n" if self.multi else "")
            layer = LayerSpec(
                files=(File(f"var/lib/fixturegen/{state.name}-{command.start_line}.txt", content.encode()),)
            )
        step = replace(
            run(text, layer=layer),
            env=tuple(state.env.to_list()),
            user=state.user,
            argv=tuple(args),
        )
        key = (self.platform.format(), state.name, len(state.steps) + 1, "main")
        state.vertex = self.graph.exec(
            state.vertex, args, state.env.to_list(), state.workdir, state.user, location, key
        )
        self.add_step(state, command, step, label, "RUN")
        state.history.append(_History("RUN " + self.run_command_string(state, args) + " # buildkit", False))

    def run_command_string(self, state: _DState, args: Sequence[str]) -> str:
        """``runCommandString``: ``|N K=V … args`` for the stage's build args."""
        build_env: list[str] = []
        index: dict[str, int] = {}
        for key, value in state.build_args:
            current = state.env.get(key)
            text = f"{key}={current if current is not None else (value or '')}"
            if key in index:
                build_env[index[key]] = text
            else:
                index[key] = len(build_env)
                build_env.append(text)
        prefix = [f"|{len(build_env)}", *build_env] if build_env else []
        return " ".join([*prefix, *args])

    def do_add(
        self, state: _DState, command: dockerfile.Command, location: tuple[int, int], global_args: EnvList
    ) -> None:
        self.do_copy(state, command, location, global_args, add=True)

    def do_copy(
        self,
        state: _DState,
        command: dockerfile.Command,
        location: tuple[int, int],
        global_args: EnvList,
        *,
        add: bool = False,
    ) -> None:
        instruction: Literal["ADD", "COPY"] = "ADD" if add else "COPY"
        flags = _flags(command, ("link", "chown", "chmod") if add else ("from", "link", "chown", "chmod"))
        # convert_copy.go 331: --link becomes a MergeOp only without --chmod
        link = flags.get("link", "false").lower() in ("true", "1") and "chmod" not in flags
        chown = self.expand(state, flags["chown"]) if "chown" in flags else ""
        chmod = self.expand(state, flags["chmod"]) if "chmod" in flags else ""
        words = [self.expand(state, w) for w in command.value]
        sources, dest = words[:-1], words[-1]
        if any(s.startswith(("http://", "https://", "git@")) for s in sources):
            raise NotImplementedError(f"line {command.start_line}: {instruction} from a URL or git")
        name = self.label_text(state, command, run=False)
        label = self.prefix(state, name, state.env)
        link_label: str | None = None
        from_stage: _DState | None = None
        if "from" in flags:
            from_stage = self.stage_ref(flags["from"], command)
            if not from_stage.dispatched:
                raise ValueError(f"line {command.start_line}: cannot copy from stage {from_stage.name!r}")
        key = (self.platform.format(), state.name, len(state.steps) + 1)
        if from_stage is not None:
            if from_stage.vertex is None:
                raise ValueError(f"line {command.start_line}: COPY --from an empty scratch stage")
            source_vertex = from_stage.vertex
            gen_sources = [posixpath.normpath(posixpath.join("/", s)) for s in sources]
        else:
            for src in sources:
                self.context_paths.add(posixpath.normpath(posixpath.join("/", src)))
            source_vertex = self.context()
            gen_sources = list(sources)
        abs_sources = [posixpath.normpath(posixpath.join("/", s)) for s in sources]
        dest_path = _normalize_dest(state.workdir, dest)
        layer = self.layer_files(command)
        step = copy(
            *gen_sources,
            dest=dest_path,  # absolute (trailing slash kept): independent of the generator's workdir
            from_stage=from_stage.name if from_stage is not None else None,
            link=link,
            layer=layer,
        )
        step = replace(step, kind=instruction, chown=chown, chmod=chmod)
        if link and state.vertex is not None:
            # dispatchCopy: the copy onto scratch keeps the label, the MergeOp is "LINK <name>", both
            # with the same number (d.cmdIndex-- before each prefixCommand)
            state.cmd_index -= 1
            label = self.prefix(state, name, state.env)
            state.cmd_index -= 1
            link_label = self.prefix(state, "LINK " + name, state.env)
            copied = self.graph.copy(
                None,
                source_vertex,
                abs_sources,
                dest_path,
                unpack=add,
                chown=chown,
                chmod=chmod,
                location=location,
                result=(*key, "main"),
            )
            state.vertex = self.graph.merge(state.vertex, copied, location, (*key, "merge"))
        else:
            state.vertex = self.graph.copy(
                state.vertex,
                source_vertex,
                abs_sources,
                dest_path,
                unpack=add,
                chown=chown,
                chmod=chmod,
                location=location,
                result=(*key, "main"),
            )
        self.add_step(state, command, step, label, instruction, link_label)
        message: str = instruction
        if chown:
            message += " --chown=" + chown
        if chmod:
            message += " --chmod=" + chmod
        message += "".join(" " + s for s in sources) + " " + dest
        state.history.append(_History(message + " # buildkit", False))

    def context(self) -> Vertex:
        """The build context ``llb.Local("context")`` (``dockerui.DefaultMainContext``), one per build."""
        if self.context_vertex is None:
            attrs = {"local.sharedkeyhint": "context"}
            paths = self.known_context_paths or ()
            if paths and "/" not in paths:
                attrs["local.followpaths"] = go_json(sorted(p.lstrip("/") or "." for p in paths)).decode()
            self.context_vertex = self.graph.local("context", attrs)
        return self.context_vertex


def _normalize_dest(workdir: str, dest: str) -> str:
    """``pathRelativeToWorkingDir``: absolute, cleaned, trailing slash kept."""
    keep = dest.endswith("/") or dest in (".", "")
    path = posixpath.normpath(posixpath.join(workdir, dest or "."))
    if keep and not path.endswith("/"):
        path += "/"
    return path


# --------------------------------------------------------------------------------------------------
# The build and its export


@dataclass(frozen=True, eq=False)
class DockerfileBuild:
    """A Dockerfile build: one fixturegen :class:`~tests.harness.fixturegen.Build` per platform plus what the
    frontend knew (labels, lines, image config, LLB). Make one with :func:`from_dockerfile`."""

    text: str
    filename: str
    platforms: tuple[Platform, ...]
    build_args: Mapping[str, str]
    target: str | None
    mode: Mode
    conversions: tuple[_Conversion, ...]

    @property
    def builds(self) -> tuple[Build, ...]:
        return tuple(c.build for c in self.conversions)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages BuildKit builds for the target (pruned), in Dockerfile order."""
        return tuple(stage.name for stage in self.conversions[0].build.stages)

    def export(self) -> DockerfileExport:
        return DockerfileExport(self, generate_platforms(self.builds))


def from_dockerfile(
    text: str,
    *,
    bases: Mapping[str, BaseImage | BaseIndex],
    build_args: Mapping[str, str] = _EMPTY,
    target: str | None = None,
    platforms: Sequence[Platform] = (Platform(),),
    mode: Mode = "max",
    compression: Compression = "gzip",
    files: Mapping[int, StepFiles] | None = None,
    started_at: str = DEFAULT_STARTED_AT,
    filename: str = "Dockerfile",
) -> DockerfileBuild:
    """The build of ``text`` as BuildKit's Dockerfile frontend would solve it.

    ``bases`` maps ``FROM`` references (after ``ARG`` expansion; normalized, so ``alpine:3.20`` and
    ``docker.io/library/alpine:3.20`` are one key) to images. ``files`` maps a step's start line to what
    it leaves in its layer (default: a small file naming the command, or what ``COPY --from`` finds in
    the source stage). Several ``platforms`` make a multi-platform build (labels prefixed with the
    platform, one export holding every platform's records). ``ENV``, ``ARG``, ``LABEL``, ``USER``,
    ``CMD``, ``ENTRYPOINT``, ``EXPOSE``, ``VOLUME``, ``STOPSIGNAL``, ``SHELL``, ``MAINTAINER`` change state
    and image config only. Not supported (``NotImplementedError``): heredocs, ``RUN``/``FROM`` flags,
    ``COPY --from=<image>``, ``COPY --parents/--exclude``, ``ADD <url>``/git, ``ONBUILD``, ``HEALTHCHECK``.
    """
    if not platforms:
        raise ValueError("at least one platform")
    parsed = _parse(text)
    multi = len(platforms) > 1
    conversions = []
    for platform in platforms:

        def convert(context_paths: tuple[str, ...] | None, platform: Platform = platform) -> _Conversion:
            return _Converter(
                parsed,
                platform,
                multi=multi,
                bases=bases,
                build_args=build_args,
                target=target,
                files=files or {},
                mode=mode,
                compression=compression,
                started_at=started_at,
                context_paths=context_paths,
            ).run()

        # The context's followpaths are known only after dispatching every stage: dispatch twice.
        conversions.append(convert(convert(None).context_paths))
    return DockerfileBuild(
        text, filename, tuple(platforms), dict(build_args), target, mode, tuple(conversions)
    )


def _fill_history(history: list[_History], created: Sequence[str]) -> list[_History]:
    """``normalizeLayersAndHistory``: layer times from the refs, then empty entries get the first new
    layer time (before it) or the previous entry's time."""
    out = list(history)
    layers = [i for i, h in enumerate(out) if not h.empty_layer]
    if len(layers) != len(created):
        raise ValueError(f"{len(layers)} history entries with layers for {len(created)} layers")
    for index, position in enumerate(layers):
        if out[position].created is None:
            out[position] = replace(out[position], created=created[index])
    first: str | None = None
    missing = False
    for entry in out:
        if entry.created is not None:
            first = entry.created
            if missing:
                break
        else:
            missing = True
    missing = False
    current = first
    for i, entry in enumerate(out):
        if entry.created is not None:
            if missing:
                current = entry.created
        else:
            missing = True
            out[i] = replace(entry, created=current)
    return out


class DockerfileExport:
    """The cache export of a :class:`DockerfileBuild` and everything derived from it."""

    def __init__(self, build: DockerfileBuild, cache: CacheExport) -> None:
        self.build = build
        self.cache = cache
        self._infos = {(s.platform, s.stage, s.number): s for s in cache.steps}
        self._bases = {(b.platform, b.base): b for b in cache.bases}

    def info(self, platform: str, stage: str, number: int) -> StepInfo:
        return self._infos[(platform, stage, number)]

    @property
    def steps(self) -> tuple[ExpectedStep, ...]:
        out = []
        for conversion in self.build.conversions:
            platform = conversion.platform.format()
            for step in conversion.steps:
                info = self.info(platform, step.gen_stage, step.gen_number)
                merged = info.merge_record_index is not None
                out.append(
                    ExpectedStep(
                        platform=platform,
                        stage=step.stage,
                        number=step.number,
                        total=step.total,
                        label=step.label,
                        line=step.line,
                        end_line=step.end_line,
                        instruction=step.instruction,
                        record=info.merge_record_digest
                        if merged and info.merge_record_digest
                        else info.record_digest,
                        record_index=info.merge_record_index
                        if info.merge_record_index is not None
                        else info.record_index,
                        layer=info.layer_blob,
                        link_copy_record=info.record_digest if merged else None,
                        link_label=step.link_label if merged else None,
                    )
                )
        return tuple(out)

    @property
    def bases(self) -> tuple[ExpectedBase, ...]:
        out = []
        for conversion in self.build.conversions:
            platform = conversion.platform.format()
            for entry in conversion.froms:
                info = self._bases[(platform, entry.base)]
                out.append(
                    ExpectedBase(
                        platform=platform,
                        stage=entry.stage,
                        ref=entry.ref,
                        resolved=info.resolved_digest,
                        label=entry.label,
                        line=entry.line,
                        total=entry.total,
                        chain_id=info.chain_id,
                        chain_root=info.chain_root,
                        manifest_root=info.manifest_root,
                        layers=tuple(layer.blob for layer in info.layers),
                    )
                )
        return tuple(out)

    def base_info(self, platform: str, base: BaseImage) -> BaseInfo:
        return self._bases[(platform, base)]

    # the built image ------------------------------------------------------------------------------

    def _target_chain(self, conversion: _Conversion) -> tuple[tuple[RealLayer, ...], tuple[str, ...]]:
        target = conversion.target
        if not target.steps:
            raise ValueError(f"target stage {target.name!r} has no op of its own")
        info = self.info(conversion.platform.format(), target.name, len(target.steps))
        return (info.merge_chain or info.chain), info.created

    def _image_config(self, conversion: _Conversion) -> bytes:
        chain, created = self._target_chain(conversion)
        history = _fill_history(conversion.target.history, created)
        last = next((h.created for h in reversed(history) if h.created is not None), None)
        platform = conversion.platform
        config: dict[str, GoValue] = {
            "architecture": platform.architecture,
            **({"author": conversion.target.author} if conversion.target.author else {}),
            "config": conversion.target.config.to_go(),
            "created": last,
            "history": [h.to_go() for h in history],
            "os": platform.os,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in chain]},
        }
        if platform.variant:
            config["variant"] = platform.variant
        return go_json(go_map(config))

    def _provenance_layers(
        self, conversion: _Conversion, order: Sequence[Vertex], index: Mapping[str, int]
    ) -> dict[str, list[tuple[RealLayer, ...]]]:
        """mode=max ``buildkit_metadata.layers``: the results that have blobs when the attestation is
        made (after the image's layers were exported, before the cache export): pulled base images, the
        steps on the image's own chain and the ``--link`` diffs in it. Other stages' steps have no blobs
        in a fresh build, so they are absent (``provenance.go`` exports with ``CacheExportModeRemoteOnly``)."""
        platform = conversion.platform.format()
        final, _ = self._target_chain(conversion)
        blobs = [layer.blob for layer in final]
        available = {tuple(blobs[: i + 1]) for i in range(len(blobs))}
        chains: dict[str, tuple[RealLayer, ...]] = {}
        for vertex in order:
            if vertex.result is None:
                continue
            kind, key = vertex.result
            if kind == "base":
                assert isinstance(key, BaseImage)
                chain = self._bases[(platform, key)].layers
                available.add(tuple(layer.blob for layer in chain))
            else:
                assert isinstance(key, tuple)
                p, stage, number, which = key
                info = self.info(p, stage, number)
                chain = info.merge_chain if which == "merge" else info.chain
                if which == "merge" and tuple(layer.blob for layer in chain) in available:
                    available.add(tuple(layer.blob for layer in info.chain))  # the diff's own ref
            chains[vertex.digest] = chain
        out: dict[str, list[tuple[RealLayer, ...]]] = {}
        for vertex in order:
            chain = chains.get(vertex.digest, ())
            if chain and tuple(layer.blob for layer in chain) in available:
                out[f"step{index[vertex.digest]}:0"] = [chain]
        return out

    def provenance_input(self, conversion: _Conversion) -> ProvenanceInput:
        target = conversion.target
        if target.vertex is None:
            raise ValueError("the target is empty")
        order, _terminal = conversion.graph.definition(target.vertex)
        index = {vertex.digest: i for i, vertex in enumerate(order)}
        materials: dict[str, tuple[str, str]] = {}
        for entry in conversion.froms:
            ref = normalize_ref(entry.ref)
            resolved = self._bases[(conversion.platform.format(), entry.base)].resolved_digest
            materials[ref] = (image_purl(ref, conversion.platform), resolved.removeprefix("sha256:"))
        dockerfile_graph = LlbGraph(conversion.platform)
        names = [self.build.filename, self.build.filename + ".dockerignore"]
        if posixpath.basename(self.build.filename) == "Dockerfile":
            names.append(posixpath.join(posixpath.dirname(self.build.filename), "dockerfile"))
        local = dockerfile_graph.local(
            "dockerfile",
            {
                "local.differ": "none",
                "local.followpaths": go_json(names).decode(),
                "local.sharedkeyhint": "dockerfile",
            },
        )
        dockerfile_order, _ = dockerfile_graph.definition(local)
        args = {f"build-arg:{k}": v for k, v in self.build.build_args.items()}
        if self.build.target:
            args["target"] = self.build.target
        steps = list(self.cache.steps)
        finished = max(parse_go_time(s.created[-1]) for s in steps if s.created) + 1_234_567_890
        return ProvenanceInput(
            platform=conversion.platform,
            order=tuple(order),
            materials=tuple(materials[k] for k in sorted(materials)),
            args=args,
            filename=self.build.filename,
            locals=("context", "dockerfile") if conversion.uses_context else ("dockerfile",),
            dockerfile=self.build.text.encode(),
            dockerfile_order=tuple(dockerfile_order),
            layers=self._provenance_layers(conversion, order, index),
            invocation_id=invocation_id(self.build.text),
            started_on=self.build.conversions[0].build.started_at,
            finished_on=go_time(finished),
        )

    def image(self, provenance: ProvenanceVersion | None = "v1", image_name: str | None = None) -> BuiltImage:
        """The image the build exports: an OCI index of the platform manifests and (with ``provenance``)
        one attestation manifest per platform (``exporter/containerimage/writer.go`` ``Commit``).

        ``image_name`` (e.g. ``samples/app:image``) becomes the in-toto subject, as the exporter's
        ``name=`` does; without it the statement has no subject.
        """
        documents: dict[str, bytes] = {}
        blobs: dict[str, bytes] = {}
        manifests: list[tuple[str, Descriptor]] = []
        attestations: list[tuple[str, Descriptor]] = []
        statements: list[tuple[str, bytes]] = []
        for conversion in self.build.conversions:
            platform = conversion.platform
            chain, _ = self._target_chain(conversion)
            config = self._image_config(conversion)
            config_descriptor = Descriptor.of(OCI_IMAGE_CONFIG, config)
            manifest = go_json_indent(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config_descriptor.to_go(),
                    "layers": [
                        Descriptor(layer.media_type, layer.blob, layer.size).to_go() for layer in chain
                    ],
                }
            )
            descriptor = Descriptor(OCI_MANIFEST, digest_of(manifest), len(manifest), {}, platform)
            documents[descriptor.digest] = manifest
            blobs[config_descriptor.digest] = config
            for layer in chain:
                data = layer.data if layer.data is not None else self.cache.blobs.get(layer.blob)
                if data is None:
                    raise ValueError(f"layer {layer.blob} has no bytes")
                blobs[layer.blob] = data
            manifests.append((platform.format(), descriptor))
            if provenance is None:
                continue
            predicate = provenance_predicate(self.provenance_input(conversion), provenance)
            subjects = (
                [(image_purl(normalize_ref(image_name), platform), descriptor.digest)] if image_name else []
            )
            data = statement(predicate, provenance, subjects)
            manifest_bytes, entry, attestation_blobs = attestation_manifest(
                [(data, PREDICATE_V1 if provenance == "v1" else PREDICATE_V02)], descriptor
            )
            documents[entry.digest] = manifest_bytes
            blobs.update(attestation_blobs)
            attestations.append((platform.format(), entry))
            statements.append((platform.format(), data))
        index = go_json_indent(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [d.to_go() for _, d in manifests] + [d.to_go() for _, d in attestations],
            }
        )
        return BuiltImage(
            index,
            Descriptor.of(OCI_INDEX, index),
            tuple(manifests),
            tuple(attestations),
            tuple(statements),
            documents,
            blobs,
        )
