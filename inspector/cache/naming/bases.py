"""Name base images with certainty: resolve ``FROM`` references and recompute their root keys.

An image source op leaves two root records (spec §3.3): one keyed by the
ChainID of the image's rootfs, one by its manifest key (the digest the
reference resolved to, plus the platform). Resolving a candidate reference in
its registry, reading each platform's diffIDs and recomputing both keys tells
exactly which roots are that image, for which platform — even when the cache
holds none of the base's layers (mode=min).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from inspector.cache.analysis import CacheGraph, Stage, chain_id, image_manifest_key, source_record_key
from inspector.cache.naming.dockerfile import BaseConfig
from inspector.errors import InvalidContent
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor, Platform, parse_platform
from inspector.oci.reference import Reference
from inspector.registry.client import MANIFEST_LIMIT, RegistryClient

__all__ = ["ResolvedBase", "name_bases", "resolve_base"]


@dataclass(frozen=True, slots=True)
class ResolvedBase:
    """One platform of a resolved base reference, with the record keys BuildKit would give it."""

    ref: str
    digest: Digest
    platform: Platform
    chain_id: Digest | None
    record_keys: tuple[Digest, ...]
    config: BaseConfig


def _label_config(doc: object) -> BaseConfig:
    """The config's ``Env`` (``K=V`` strings, in order), ``WorkingDir``, ``User`` and ``Shell``: what labels expand
    and what a RUN's cache key is built from."""
    inner = gojson.fields(
        gojson.fields(doc, ("config",), "image config").get("config"),
        ("Env", "WorkingDir", "User", "Shell"),
        "config",
    )
    env: dict[str, str] = {}
    for item in gojson.as_list(inner.get("Env"), "image config.config.Env"):
        key, _, value = gojson.as_str(item, "image config.config.Env[]").partition("=")
        env.pop(key, None)  # a repeated key takes its last place, as LLB's EnvList does
        env[key] = value
    shell = tuple(
        gojson.as_str(item, "image config.config.Shell[]")
        for item in gojson.as_list(inner.get("Shell"), "image config.config.Shell")
    )
    return BaseConfig(
        env,
        gojson.as_str(inner.get("WorkingDir"), "image config.config.WorkingDir"),
        gojson.as_str(inner.get("User"), "image config.config.User"),
        shell,
    )


def _diff_ids(
    client: RegistryClient, ref: Reference, manifest_descriptor: Descriptor | None
) -> tuple[list[Digest], Platform, BaseConfig]:
    target = ref if manifest_descriptor is None else ref.repository.at(manifest_descriptor.digest)
    manifest = client.get_manifest(target)
    if manifest.kind != "manifest" or manifest.config is None:
        raise InvalidContent(f"{target} is not an image manifest")
    raw = client.get_blob(ref.repository, manifest.config, limit=MANIFEST_LIMIT)
    doc = gojson.load(raw, f"image config of {target}")
    fields = gojson.fields(doc, ("rootfs",), "image config")
    rootfs = gojson.fields(fields.get("rootfs"), ("diff_ids",), "image config.rootfs")
    diffs = [
        gojson.as_digest(d, "image config.rootfs.diff_ids")
        for d in gojson.as_list(rootfs.get("diff_ids"), "diff_ids")
    ]
    return diffs, parse_platform(doc, "image config"), _label_config(doc)


def resolve_base(client: RegistryClient, ref: Reference, display: str | None = None) -> list[ResolvedBase]:
    """Every platform of ``ref`` with its ChainID and manifest record keys."""
    top = client.get_manifest(ref)
    shown = display or str(ref)
    entries: list[Descriptor | None]
    if top.kind == "index":
        entries = [
            d
            for d in top.manifests
            if d.media_type in mediatypes.MANIFEST_TYPES
            and d.platform is not None
            and d.platform.os != "unknown"
        ]
    else:
        entries = [None]

    def one(entry: Descriptor | None) -> ResolvedBase:
        diffs, config_platform, config = _diff_ids(client, ref, entry)
        # The index entry's platform, else the config's; OSVersion/OSFeatures are part of the key (pull.go).
        platform = entry.platform if entry is not None and entry.platform is not None else config_platform
        key = image_manifest_key(
            top.digest,
            platform.os,
            platform.architecture,
            platform.variant,
            platform.os_version,
            platform.os_features,
        )
        keys = [source_record_key(key)]
        cid = chain_id(diffs) if diffs else None
        if cid is not None:
            keys.append(source_record_key(cid))
        return ResolvedBase(shown, top.digest, platform, cid, tuple(keys), config)

    return client.map_bounded(one, entries)


def name_bases(graph: CacheGraph, resolved: Sequence[ResolvedBase]) -> CacheGraph:
    """Name every base whose root records match a resolved reference's keys (basis ``exact``)."""
    by_key = {key: base for base in resolved for key in base.record_keys}
    records = graph.config.records
    stages: list[Stage] = []
    matched: set[str] = set()
    for stage in graph.stages:
        image = stage.base.image
        if image is not None:
            hit = next((by_key[records[r].digest] for r in image.roots if records[r].digest in by_key), None)
            if hit is not None:
                matched.add(hit.ref)
                named = replace(image, name=hit.ref, basis="exact", platform=str(hit.platform))
                stage = replace(stage, base=replace(stage.base, kind="image", image=named))
        stages.append(stage)
    notes = [
        f"{ref} does not match any base in this cache (another version, platform or tag?)"
        for ref in dict.fromkeys(b.ref for b in resolved)
        if ref not in matched
    ]
    images = tuple(dict.fromkeys(s.base.image for s in stages if s.base.image is not None))
    return replace(graph, stages=tuple(stages), bases=images, notes=(*graph.notes, *notes))
