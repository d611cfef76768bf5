"""``inspect_cache``: fetch, analyse and judge one cache; and its JSON form.

The health verdict answers "would BuildKit's import of this cache work, and
would builds that hit it succeed?" (spec ``buildkit-cache.md`` §5). Each problem
has a stable ``code``; ``error`` problems make imports fail or builds break,
``warning`` problems degrade the cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from inspector.cache.analysis import CacheGraph, Stage, analyze
from inspector.cache.config import ZERO_TIME
from inspector.cache.coverage import coverage_to_json, expected_status, platform_coverage
from inspector.cache.fetch import FORM_WRITERS, IMPORT_LIMIT, CacheDocuments, load_cache
from inspector.cache.source import CacheSource
from inspector.errors import InvalidContent
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor
from inspector.registry.client import BlobStat

__all__ = [
    "CacheReport",
    "Health",
    "LayerInfo",
    "Problem",
    "RecordStatus",
    "base_label",
    "expect_platforms",
    "human_size",
    "inspect_cache",
    "report_to_json",
    "stage_label",
]

Severity = Literal["error", "warning"]
RecordStatus = Literal["root", "usable", "partial", "broken", "key-only"]
NEAR_LIMIT = 0.9


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    severity: Severity
    message: str
    digest: Digest | None = None


@dataclass(frozen=True, slots=True)
class Health:
    problems: tuple[Problem, ...]
    blobs_checked: bool

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """One distinct layer blob listed by the cache document."""

    descriptor: Descriptor
    compression: str
    diff_id: str | None
    created_at: gojson.Timestamp | None
    stat: BlobStat | None

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def present(self) -> bool | None:
        if self.stat is None:
            return None
        return self.stat.exists


@dataclass(frozen=True, slots=True)
class CacheReport:
    source: str
    documents: CacheDocuments
    layers: tuple[LayerInfo, ...]
    graph: CacheGraph | None
    record_status: tuple[RecordStatus, ...]
    health: Health
    expected_platforms: tuple[str, ...] = ()  # --expect-platform, normalised (see ``expect_platforms``)

    @property
    def total_size(self) -> int:
        """Bytes of the distinct layer blobs the document lists."""
        return sum(layer.descriptor.size for layer in self.layers)

    @property
    def mode(self) -> Literal["min", "max"] | None:
        """``max`` when every non-root record has a result; ``min`` when some only carry keys."""
        steps = [s for s in self.record_status if s != "root"]
        if not steps:
            return None
        return "min" if "key-only" in steps else "max"

    @property
    def compression(self) -> dict[str, int]:
        return dict(Counter(layer.compression for layer in self.layers))

    @property
    def created_range(self) -> tuple[gojson.Timestamp, gojson.Timestamp] | None:
        times = [layer.created_at for layer in self.layers if layer.created_at is not None]
        if self.documents.config is not None:
            times.extend(
                r.created_at
                for rec in self.documents.config.records
                for r in rec.results
                if r.created_at != ZERO_TIME
            )
        if not times:
            return None
        return min(times), max(times)

    def layer(self, digest: Digest) -> LayerInfo | None:
        return next((layer for layer in self.layers if layer.digest == digest), None)


def _layer_infos(docs: CacheDocuments, stats: Mapping[Digest, BlobStat]) -> tuple[LayerInfo, ...]:
    config_layers = {layer.blob: layer for layer in docs.config.layers} if docs.config else {}
    out: dict[Digest, LayerInfo] = {}
    for desc in docs.layer_descriptors:
        if desc.digest in out:
            continue
        created_text = desc.annotations.get(mediatypes.ANNOTATION_CREATED)
        created = None
        if created_text:
            try:
                created = gojson.parse_go_time(created_text, "buildkit/createdat")
            except InvalidContent:
                created = None  # BuildKit never parses this annotation; an odd value is not an import error
        diff_id = desc.annotations.get(mediatypes.ANNOTATION_UNCOMPRESSED)
        entry = config_layers.get(desc.digest)
        if entry is not None and entry.annotations is not None:
            diff_id = diff_id or entry.annotations.diff_id
            created = created or entry.annotations.created_at
        out[desc.digest] = LayerInfo(
            descriptor=desc,
            compression=mediatypes.compression_of(desc.media_type, dict(desc.annotations)),
            diff_id=diff_id,
            created_at=created,
            stat=stats.get(desc.digest),
        )
    return tuple(out.values())


def _record_status(docs: CacheDocuments, usable_blob: Callable[[Digest], bool]) -> tuple[RecordStatus, ...]:
    config = docs.config
    if config is None:
        return ()
    usable_upto = config.chains_where_all(usable_blob)
    statuses: list[RecordStatus] = []
    for record in config.records:
        if record.is_root:
            statuses.append("root")
            continue
        if not record.has_result:
            statuses.append("key-only")
            continue
        good = sum(usable_upto[r.layer] for r in record.results)
        good += sum(all(usable_blob(config.layers[i].blob) for i in c.layers) for c in record.chains)
        chains = len(record.results) + len(record.chains)
        statuses.append("usable" if good == chains else "partial" if good else "broken")
    return tuple(statuses)


def _size_problems(kind: str, size: int) -> list[Problem]:
    if size > IMPORT_LIMIT:
        return [
            Problem(
                f"{kind}-too-large",
                "error",
                f"the cache {kind} is {size} bytes; BuildKit refuses to import a {kind} over {IMPORT_LIMIT} bytes "
                "(moby/buildkit#3719), so every build ignores this cache",
            )
        ]
    if size > NEAR_LIMIT * IMPORT_LIMIT:
        return [
            Problem(
                f"{kind}-near-limit",
                "warning",
                f"the cache {kind} is {size} bytes, {size * 100 // IMPORT_LIMIT}% of BuildKit's {IMPORT_LIMIT} byte "
                "import limit",
            )
        ]
    return []


def _problems(
    docs: CacheDocuments,
    layers: tuple[LayerInfo, ...],
    statuses: tuple[RecordStatus, ...],
) -> list[Problem]:
    problems = _size_problems("manifest", docs.manifest.size)
    problems += _size_problems("config", docs.config_descriptor.size)
    if docs.config_error is not None and docs.config_raw is not None:
        problems.append(
            Problem(
                "config-invalid",
                "error",
                f"BuildKit cannot import this cache: {docs.config_error}",
                docs.config_descriptor.digest,
            )
        )
    listed = {d.digest for d in docs.layer_descriptors}
    config = docs.config
    if config is not None:
        users = config.results_per_blob()
        for blob in dict.fromkeys(layer.blob for layer in config.layers):
            if blob not in listed:
                problems.append(
                    Problem(
                        "blob-not-in-manifest",
                        "warning",
                        f"the config uses layer {blob} but the cache document lists no descriptor for it; "
                        f"BuildKit drops the {users[blob]} result(s) whose chains contain it",
                        blob,
                    )
                )
        cut = sorted(config.cut_layers)
        if cut:
            problems.append(
                Problem(
                    "layer-parent-invalid",
                    "warning",
                    f"layer{'s' if len(cut) > 1 else ''} {', '.join(map(str, cut[:5]))}"
                    f"{' …' if len(cut) > 5 else ''} of the config name a parent that is no layer or loops back; "
                    "BuildKit imports the cache anyway, because no result reaches that link through blobs the "
                    "document lists (parse.go getRemoteChain stops at the first unlisted blob)",
                )
            )
        untimed = sum(r.created_at == ZERO_TIME for rec in config.records for r in rec.results)
        untimed += sum(c.created_at == ZERO_TIME for rec in config.records for c in rec.chains)
        if untimed:
            problems.append(
                Problem(
                    "result-time-missing",
                    "warning",
                    f"{untimed} result{'s have' if untimed > 1 else ' has'} no createdAt; BuildKit reads Go's zero "
                    "time (0001-01-01) and imports them, but ranks them oldest",
                )
            )
        if not config.layers:
            problems.append(
                Problem(
                    "no-layers", "warning", "the cache holds no layers (BuildKit >= 0.13 never exports one)"
                )
            )
        elif not any(s in ("usable", "partial") for s in statuses):
            problems.append(
                Problem(
                    "no-usable-results",
                    "warning",
                    "no record has a usable result: builds can match keys but restore nothing",
                )
            )
    for layer in layers:
        stat = layer.stat
        if stat is None:
            continue
        desc = layer.descriptor
        if not stat.exists:
            problems.append(
                Problem(
                    "blob-missing",
                    "error",
                    f"layer blob {desc.digest} ({desc.size} bytes) is listed but missing from the registry; builds "
                    "that hit a record using it fail with 'failed to compute cache key: blob … not found'",
                    desc.digest,
                )
            )
        elif stat.size is not None and stat.size != desc.size:
            problems.append(
                Problem(
                    "blob-size-mismatch",
                    "error",
                    f"layer blob {desc.digest} is {stat.size} bytes in the registry but {desc.size} in the cache document",
                    desc.digest,
                )
            )
        elif stat.reported_digest and stat.reported_digest != desc.digest:
            problems.append(
                Problem(
                    "blob-digest-mismatch",
                    "error",
                    f"the registry reports digest {stat.reported_digest} for layer blob {desc.digest}",
                    desc.digest,
                )
            )
    return problems


def inspect_cache(
    source: CacheSource,
    *,
    check_blobs: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> CacheReport:
    """Fetch a cache, reconstruct its stages and judge its health."""
    docs = load_cache(source)
    stats: dict[Digest, BlobStat] = {}
    if check_blobs:
        digests = list(dict.fromkeys(d.digest for d in docs.layer_descriptors))
        stats = {stat.digest: stat for stat in source.stat_blobs(digests, on_progress)}
    layers = _layer_infos(docs, stats)
    listed = {d.digest for d in docs.layer_descriptors}

    def usable(blob: Digest) -> bool:
        stat = stats.get(blob)
        return blob in listed and (stat is None or stat.exists)

    statuses = _record_status(docs, usable)
    graph = None
    if docs.config is not None:
        graph = analyze(docs.config, {layer.digest: layer.descriptor.annotations for layer in layers})
    health = Health(tuple(_problems(docs, layers, statuses)), blobs_checked=check_blobs)
    return CacheReport(source.display, docs, layers, graph, statuses, health)


def expect_platforms(report: CacheReport, expected: tuple[str, ...]) -> CacheReport:
    """Add a ``platform-missing`` error per expected platform the cache is not proven to cover.

    Call it after naming (resolved bases prove platforms). "Absent" (every stage is proven another
    platform) and "not proven" (some stage's platform is unknown) are both errors, with distinct
    messages: a CI check that cannot see a platform must not pass as if it had.
    """
    coverage = platform_coverage(report.graph)
    problems = list(report.health.problems)
    unknown = len(coverage.unknown_stages)
    for platform in expected:
        status = expected_status(coverage, platform)
        if status == "covered":
            continue
        if status == "absent":
            message = (
                f"{platform} is absent: every stage of the cache is proven to be for "
                f"{', '.join(coverage.platforms)}, so a {platform} build starts cold"
            )
        else:
            message = (
                f"{platform} is not proven: {unknown} of {len(coverage.stages)} stages have an unknown platform "
                "(resolve their bases: --dockerfile with --resolve-bases, or --base REF)"
                if coverage.stages
                else f"{platform} is not proven: the cache has no stages whose platform could be read"
            )
        problems.append(Problem("platform-missing", "error", message))
    health = Health(tuple(problems), report.health.blobs_checked)
    return replace(report, health=health, expected_platforms=expected)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def stage_label(stage: Stage) -> str:
    return stage.name or f"stage {stage.index + 1}"


def base_label(stage: Stage, graph: CacheGraph) -> str:
    base = stage.base
    if base.kind == "stage" and base.stage is not None:
        return f"FROM {stage_label(graph.stages[base.stage])}"
    if base.kind == "scratch":
        return "FROM scratch"
    image = base.image
    if image is None:
        return "unknown base"
    if image.name:
        platform = f" {image.platform}" if image.platform else ""
        return f"FROM {image.name}{platform} ({image.basis})"
    count = len(image.layers)
    layers = f"{count} layer{'s' if count != 1 else ''}"
    if image.verified and image.chain_id is not None:
        return f"FROM image ({layers}, chainID {image.chain_id.short})"
    if base.kind == "image":
        return f"FROM image ({layers}, inferred)"
    return f"unidentified root ({layers} below the first step)"


def _timestamp(ts: gojson.Timestamp | None) -> str | None:
    """The time as written; None for none and for Go's zero time (a missing ``createdAt``)."""
    return ts.text if ts is not None and ts != ZERO_TIME else None


# Version of the ``show --json`` document. 2: a result names its top layer (``layer``, ``layerIndex``) instead
# of listing its whole chain, and ``configLayers`` gives every config layer's parent, so the document is linear
# in the config's size (a deep chain listed per record is quadratic); steps list their ``variantRecords``.
JSON_SCHEMA_VERSION = 2


def report_to_json(report: CacheReport) -> dict[str, Any]:
    """The stable ``show --json`` document (schema: ``inspector/schemas/show.schema.json``)."""
    docs = report.documents
    config = docs.config
    graph = report.graph

    def digest_of(index: int) -> str:
        assert config is not None
        return str(config.layers[index].blob)

    sizes = {layer.digest: layer.descriptor.size for layer in report.layers}

    def size_of(indexes: tuple[int, ...]) -> int:
        assert config is not None
        return sum(sizes.get(config.layers[i].blob, 0) for i in dict.fromkeys(indexes))

    coverage = platform_coverage(graph)
    stage_platforms = {s.stage: s.platform for s in coverage.stages}
    stages: list[dict[str, Any]] = []
    if graph is not None and config is not None:
        for stage in graph.stages:
            image = stage.base.image
            steps = []
            for step in stage.steps:
                record = config.records[step.record]
                steps.append(
                    {
                        "number": step.number,
                        "record": str(record.digest),
                        "recordIndex": step.record,
                        "instruction": step.instruction,
                        "basis": step.basis if step.instruction else None,
                        "line": step.line,
                        "layers": [digest_of(i) for i in step.layers],
                        "size": size_of(step.layers),
                        "layersInferred": step.inferred_layers,
                        "variantRecords": list(step.variants),
                        "variantLayers": [digest_of(i) for i in step.variant_layers],
                        "createdAt": _timestamp(max((r.created_at for r in record.results), default=None)),
                        "status": report.record_status[step.record],
                        "inputs": [
                            {"slot": i.slot, "kind": i.kind, "stage": i.stage, "selector": i.selector or None}
                            for i in step.inputs
                        ],
                    }
                )
            stages.append(
                {
                    "index": stage.index,
                    "name": stage.name,
                    "basis": stage.basis,
                    "label": stage_label(stage),
                    "base": {
                        "kind": stage.base.kind,
                        "label": base_label(stage, graph),
                        "stage": stage.base.stage,
                        "name": image.name if image else None,
                        "basis": image.basis if image else None,
                        "platform": image.platform if image else None,
                        "chainID": str(image.chain_id) if image and image.chain_id else None,
                        "verified": bool(image and image.verified),
                        "layers": [digest_of(i) for i in image.layers] if image else [],
                        "rootRecords": [str(config.records[r].digest) for r in image.roots] if image else [],
                    },
                    "layers": [digest_of(i) for i in stage.layers],
                    "size": size_of(stage.layers),
                    "platform": stage_platforms.get(stage.index),
                    "steps": steps,
                }
            )
    records = []
    if config is not None:
        for index, record in enumerate(config.records):
            records.append(
                {
                    "index": index,
                    "digest": str(record.digest),
                    "status": report.record_status[index],
                    "results": [
                        {
                            "createdAt": _timestamp(r.created_at),
                            "layer": digest_of(r.layer),
                            "layerIndex": r.layer,
                        }
                        for r in record.results
                    ]
                    + [
                        {"createdAt": _timestamp(c.created_at), "layers": [digest_of(i) for i in c.layers]}
                        for c in record.chains
                    ],
                    "inputs": [
                        [{"record": i.link, "selector": i.selector or None} for i in slot]
                        for slot in record.inputs
                    ],
                }
            )
    created = report.created_range
    return {
        "schemaVersion": JSON_SCHEMA_VERSION,
        "reference": report.source,
        "digest": str(docs.manifest.digest),
        "mediaType": docs.manifest.media_type,
        "size": docs.manifest.size,
        "form": docs.form,
        "writtenBy": FORM_WRITERS[docs.form],
        "mode": report.mode,
        "config": {
            "digest": str(docs.config_descriptor.digest),
            "size": docs.config_descriptor.size,
            "mediaType": docs.config_descriptor.media_type,
        },
        "totalSize": report.total_size,
        "compression": report.compression,
        "created": {"oldest": created[0].text, "newest": created[1].text} if created else None,
        "layers": [
            {
                "digest": str(layer.digest),
                "size": layer.descriptor.size,
                "mediaType": layer.descriptor.media_type,
                "compression": layer.compression,
                "diffID": layer.diff_id,
                "createdAt": _timestamp(layer.created_at),
                "present": layer.present,
            }
            for layer in report.layers
        ],
        "platforms": coverage_to_json(coverage, report.expected_platforms),
        "stages": stages,
        "unattributedLayers": [digest_of(i) for i in graph.unattributed_layers] if graph else [],
        "notes": list(graph.notes) if graph else [],
        "configLayers": [
            {"index": i, "blob": str(layer.blob), "parent": config.parent_of[i]}
            for i, layer in enumerate(config.layers)
        ]
        if config is not None
        else [],
        "records": records,
        "health": {
            "ok": report.health.ok,
            "blobsChecked": report.health.blobs_checked,
            "problems": [
                {
                    "code": p.code,
                    "severity": p.severity,
                    "message": p.message,
                    "digest": str(p.digest) if p.digest else None,
                }
                for p in report.health.problems
            ],
        },
    }
