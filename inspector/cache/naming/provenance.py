"""Exact step names from the image the same build produced (``show --image``).

Two sources, both keyed by layer content, so nothing is guessed:

* the image config's ``history[]``: each entry with a layer names the
  instruction that made the layer whose diffID sits at the same position of
  ``rootfs.diff_ids`` (final stage only);
* a BuildKit provenance attestation with ``mode=max`` (an attestation manifest
  in the image index, ``vnd.docker.reference.type: attestation-manifest``):
  its BuildKit metadata maps ``step<N>:<output>`` to layer chains and
  ``step<N>`` to Dockerfile line ranges, and carries the Dockerfile itself —
  every cached layer of every stage, mapped to its instruction.

Where it sits in the predicate (``solver/llbsolver/provenance/types/types.go``):
SLSA v1 ``runDetails.metadata.buildkit_metadata``, SLSA v0.2
``metadata["https://mobyproject.org/buildkit@v1#metadata"]``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from inspector.cache.analysis import CacheGraph, Stage, Step
from inspector.cache.naming.dockerfile import BuildPlan, plan_dockerfile
from inspector.errors import CacheInspectError
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import Reference
from inspector.registry.client import MANIFEST_LIMIT, RegistryClient

__all__ = ["ImageFacts", "name_from_image", "read_image_facts"]

PROVENANCE_TYPES = ("https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2")
_V02_METADATA = "https://mobyproject.org/buildkit@v1#metadata"
_STATEMENT_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What an image says about the layers it was built from."""

    history: Mapping[str, str]  # diffID -> created_by
    step_of_blob: Mapping[str, str]  # layer blob digest or diffID -> "stepN"
    step_lines: Mapping[str, tuple[int, int]]  # "stepN" -> (first line, last line) of the Dockerfile
    dockerfile: str | None
    predicate_types: tuple[str, ...]


_ARG_COUNT = re.compile(r"\|(\d+) ")
_ARG_KEY = re.compile(r"[^ =]+=")
_NEXT_ARG = re.compile(r" [^ =]+=")
_SHELL = " /bin/sh -c "


def _without_build_args(command: str) -> str:
    """Drop the ``|N K=V …`` prefix of convert.go runCommandString: N pairs, values written unquoted.

    A value may hold spaces, so each value runs to the next `` KEY=``, and the last one to the default
    shell (`` /bin/sh -c ``); an exec-form command after a last value with spaces cannot be told apart.
    """
    count = _ARG_COUNT.match(command)
    if count is None:
        return command
    rest = command[count.end() :]
    for position in range(int(count.group(1))):
        if _ARG_KEY.match(rest) is None:
            return command  # not the shape BuildKit writes: leave it as it is
        last = position == int(count.group(1)) - 1
        end = rest.find(_SHELL) if last else -1
        if end < 0:
            found = _NEXT_ARG.search(rest) if not last else None
            end = found.start() if found is not None else rest.find(" ")
        if end < 0:
            return command
        rest = rest[end + 1 :]
    return rest


def _created_by(text: str) -> str:
    """``RUN |1 V=dev /bin/sh -c go build # buildkit`` -> ``RUN go build`` (BuildKit's history wording)."""
    text = text.removesuffix(" # buildkit")
    if not text.startswith("RUN "):
        return text
    command = _without_build_args(text[len("RUN ") :])
    return "RUN " + command.removeprefix(_SHELL[1:])


def _history(raw: bytes) -> dict[str, str]:
    doc = gojson.load(raw, "image config")
    fields = gojson.fields(doc, ("history", "rootfs"), "image config")
    rootfs = gojson.fields(fields.get("rootfs"), ("diff_ids",), "image config.rootfs")
    diffs = [gojson.as_str(d, "diff_ids") for d in gojson.as_list(rootfs.get("diff_ids"), "diff_ids")]
    out: dict[str, str] = {}
    position = 0
    for entry in gojson.as_list(fields.get("history"), "image config.history"):
        item = gojson.fields(entry, ("created_by", "empty_layer"), "image config.history[]")
        if item.get("empty_layer") is True:
            continue
        if position < len(diffs):
            out[diffs[position]] = _created_by(gojson.as_str(item.get("created_by"), "created_by"))
        position += 1
    return out


def _buildkit_metadata(statement: Any) -> tuple[str, Any]:
    fields = gojson.fields(statement, ("predicateType", "predicate"), "in-toto statement")
    kind = gojson.as_str(fields.get("predicateType"), "predicateType")
    predicate = fields.get("predicate")
    if kind.endswith("/v1"):
        run = gojson.fields(predicate, ("runDetails",), "predicate")
        meta = gojson.fields(
            gojson.fields(run.get("runDetails"), ("metadata",), "runDetails").get("metadata"),
            ("buildkit_metadata",),
            "runDetails.metadata",
        )
        return kind, meta.get("buildkit_metadata")
    v02 = gojson.fields(predicate, ("metadata",), "predicate").get("metadata")
    found: dict[str, Any] = dict(v02) if isinstance(v02, gojson.Obj) else {}
    return kind, found.get(_V02_METADATA)


def _read_provenance(
    statement: Any,
    step_of_blob: dict[str, str],
    step_lines: dict[str, tuple[int, int]],
) -> tuple[str, str | None]:
    kind, metadata = _buildkit_metadata(statement)
    fields = gojson.fields(metadata, ("layers", "source"), "buildkit metadata")
    layers = fields.get("layers")
    if isinstance(layers, gojson.Obj):
        for key, chains in layers:
            step = key.split(":", 1)[0]
            for chain in gojson.as_list(chains, f"layers[{key}]"):
                descriptors = gojson.as_list(chain, f"layers[{key}][]")
                if not descriptors:
                    continue
                top = gojson.fields(descriptors[-1], ("digest", "annotations"), f"layers[{key}]")
                step_of_blob[gojson.as_str(top.get("digest"), "digest")] = step
                diff = gojson.as_str_map(top.get("annotations"), "annotations").get(
                    mediatypes.ANNOTATION_UNCOMPRESSED
                )
                if diff:
                    step_of_blob[diff] = step
    source = gojson.fields(fields.get("source"), ("locations", "infos"), "buildkit metadata.source")
    locations = source.get("locations")
    if isinstance(locations, gojson.Obj):
        for step, value in locations:
            entries = gojson.as_list(gojson.fields(value, ("locations",), step).get("locations"), step)
            lines = [
                (
                    gojson.as_int(
                        gojson.fields(gojson.fields(r, ("start",), step).get("start"), ("line",), step).get(
                            "line"
                        ),
                        step,
                    ),
                    gojson.as_int(
                        gojson.fields(gojson.fields(r, ("end",), step).get("end"), ("line",), step).get(
                            "line"
                        ),
                        step,
                    ),
                )
                for entry in entries
                for r in gojson.as_list(gojson.fields(entry, ("ranges",), step).get("ranges"), step)
            ]
            if lines:
                step_lines[step] = (min(a for a, _ in lines), max(b for _, b in lines))
    dockerfile: str | None = None
    for info in gojson.as_list(source.get("infos"), "source.infos"):
        item = gojson.fields(info, ("filename", "data", "language"), "source.infos[]")
        data = gojson.as_str(item.get("data"), "source.infos[].data")
        if data and dockerfile is None:
            try:
                dockerfile = base64.b64decode(data, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                dockerfile = None
    return kind, dockerfile


def read_image_facts(client: RegistryClient, ref: Reference) -> ImageFacts:
    """Fetch an image's configs and provenance attestations (each document verified by digest)."""
    top = client.get_manifest(ref)
    repo = ref.repository
    images: list[Descriptor] = []
    attestations: list[Descriptor] = []
    if top.kind == "index":
        for entry in top.manifests:
            if entry.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
                attestations.append(entry)
            elif entry.media_type in mediatypes.MANIFEST_TYPES:
                images.append(entry)
    history: dict[str, str] = {}
    step_of_blob: dict[str, str] = {}
    step_lines: dict[str, tuple[int, int]] = {}
    dockerfile: str | None = None
    kinds: list[str] = []
    documents = [top] if top.kind == "manifest" else [client.get_manifest(repo.at(d.digest)) for d in images]
    for manifest in documents:
        if manifest.config is not None and manifest.config.media_type in (
            mediatypes.OCI_IMAGE_CONFIG,
            mediatypes.DOCKER_IMAGE_CONFIG,
        ):
            history.update(_history(client.get_blob(repo, manifest.config, limit=MANIFEST_LIMIT)))
    for entry in attestations:
        manifest = client.get_manifest(repo.at(entry.digest))
        for layer in manifest.layers:
            if layer.annotations.get("in-toto.io/predicate-type") not in PROVENANCE_TYPES:
                continue
            statement = gojson.load(
                client.get_blob(repo, layer, limit=_STATEMENT_LIMIT), "provenance statement"
            )
            kind, text = _read_provenance(statement, step_of_blob, step_lines)
            kinds.append(kind)
            dockerfile = dockerfile or text
    return ImageFacts(history, step_of_blob, step_lines, dockerfile, tuple(dict.fromkeys(kinds)))


def name_from_image(graph: CacheGraph, facts: ImageFacts, diff_ids: Mapping[Digest, str]) -> CacheGraph:
    """Label steps whose own layer the image's provenance or history names (basis ``exact``).

    ``diff_ids`` maps cache layer blob digests to their diffIDs.
    """
    plan: BuildPlan | None = None
    if facts.dockerfile:
        try:
            plan = plan_dockerfile(facts.dockerfile)
        except CacheInspectError:
            plan = None
    planned_by_line = {s.line: s for stage in plan.stages for s in stage.steps} if plan else {}
    config = graph.config
    stages: list[Stage] = []
    for stage in graph.stages:
        steps: list[Step] = []
        names: list[str] = []
        for step in stage.steps:
            label: str | None = None
            line: int | None = None
            for index in reversed(step.layers):
                blob = config.layers[index].blob
                diff = diff_ids.get(blob)
                step_id = facts.step_of_blob.get(blob) or (facts.step_of_blob.get(diff) if diff else None)
                if step_id is not None and step_id in facts.step_lines:
                    line = facts.step_lines[step_id][0]
                    planned = planned_by_line.get(line)
                    label = planned.label() if planned else f"Dockerfile line {line}"
                    if planned and planned.stage not in names:
                        names.append(planned.stage)
                    break
                if diff is not None and diff in facts.history:
                    label = facts.history[diff]
                    break
            steps.append(replace(step, instruction=label, basis="exact", line=line) if label else step)
        named = replace(stage, steps=tuple(steps))
        if names:
            named = replace(named, name=" + ".join(names), basis="exact")
        stages.append(named)
    return replace(graph, stages=tuple(stages))
