"""``show --top N``: a cache's largest layers and where each sits (stage, step, Dockerfile instruction).

The question behind it is "why is this cache big". A layer blob is placed where the stage graph uses it:
a stage's base image (step ``base``), a step (``#n``, BuildKit's numbering, ``FROM`` being 1) or another
version of a step's non-stage input (``#n variant``). A blob used in several places (a base shared by two
stages) is listed once, with every place; a blob no stage reaches has no place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inspector.cache.report import CacheReport, stage_label
from inspector.oci.digest import Digest

__all__ = [
    "TOP_TSV_HEADER",
    "LayerPlace",
    "TopLayer",
    "largest_layers",
    "top_layers_json",
    "top_layers_tsv_rows",
]


@dataclass(frozen=True, slots=True)
class LayerPlace:
    stage: str
    step: str
    instruction: str | None = None


@dataclass(frozen=True, slots=True)
class TopLayer:
    digest: Digest
    size: int
    places: tuple[LayerPlace, ...]


def _places(report: CacheReport) -> dict[Digest, list[LayerPlace]]:
    graph, config = report.graph, report.documents.config
    out: dict[Digest, list[LayerPlace]] = {}
    if graph is None or config is None:
        return out

    def add(index: int, place: LayerPlace) -> None:
        found = out.setdefault(config.layers[index].blob, [])
        if place not in found:
            found.append(place)

    for stage in graph.stages:
        label = stage_label(stage)
        if stage.base.image is not None:
            for index in stage.base.image.layers:
                add(index, LayerPlace(label, "base"))
        for step in stage.steps:
            for index in step.layers:
                add(index, LayerPlace(label, f"#{step.number}", step.instruction))
            for index in step.variant_layers:
                add(index, LayerPlace(label, f"#{step.number} variant", step.instruction))
    return out


def largest_layers(report: CacheReport, count: int) -> tuple[TopLayer, ...]:
    """The ``count`` largest distinct layer blobs the document lists, largest first (ties: by digest)."""
    places = _places(report)
    ranked = sorted(report.layers, key=lambda layer: (-layer.descriptor.size, str(layer.digest)))
    return tuple(
        TopLayer(layer.digest, layer.descriptor.size, tuple(places.get(layer.digest, ())))
        for layer in ranked[:count]
    )


def top_layers_json(layers: tuple[TopLayer, ...]) -> list[dict[str, Any]]:
    """``largestLayers`` of ``show --top N --json``."""
    return [
        {
            "digest": str(layer.digest),
            "size": layer.size,
            "places": [
                {"stage": p.stage, "step": p.step, "instruction": p.instruction} for p in layer.places
            ],
        }
        for layer in layers
    ]


TOP_TSV_HEADER = ("size", "digest", "stage", "step", "instruction", "places")


def top_layers_tsv_rows(layers: tuple[TopLayer, ...]) -> list[tuple[object, ...]]:
    """``show --top N -o tsv``: one row per layer (so sizes add up), its first place and how many it has."""
    rows: list[tuple[object, ...]] = []
    for layer in layers:
        first = layer.places[0] if layer.places else LayerPlace("", "")
        rows.append((layer.size, layer.digest, first.stage, first.step, first.instruction, len(layer.places)))
    return rows
