"""The BuildKit cache config (``application/vnd.buildkit.cacheconfig.v0``).

Schema: ``cache/remotecache/v1/types/spec.go``. The traps, all handled here:

* ``parent`` is ``omitempty``: a missing ``parent`` means layer **0**; only
  ``-1`` means "no parent".
* A record's ``layers`` are its *results* (indexes of the top layer of a chain).
* Keys match case-insensitively, unknown keys are ignored (Go decoding).
* Blob digests and record digests repeat; records are sorted by digest, not
  topologically, so links point forward and backward.

What BuildKit's importer (``cache/remotecache/v1/parse.go``) rejects is split
in two, as it is there:

* ``parse_cache_config`` raises ``InvalidContent`` for what fails whatever the
  document lists: JSON that Go cannot decode into the types (a time that is not
  RFC 3339, a string where a number goes), a record link out of range, an empty
  input list, a looping record, a result's layer index out of range.
* ``import_error`` answers for what depends on the listed blobs: ``getRemoteChain``
  walks a result's chain from its top and stops, with no error, at the first
  blob the document does not list, so an out-of-range parent or a layer loop is
  an error only where a walk reaches it through listed blobs. Layers no result
  reaches are never looked at.

A missing or ``null`` ``createdAt`` is Go's zero time (``ZERO_TIME``), not an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inspector.errors import InvalidContent
from inspector.oci import gojson
from inspector.oci.digest import Digest

__all__ = [
    "ZERO_TIME",
    "CacheConfig",
    "CacheInput",
    "CacheLayer",
    "CacheRecord",
    "CacheResult",
    "ChainedResult",
    "LayerAnnotations",
    "import_error",
    "parse_cache_config",
]

# Go's zero time.Time: what a missing or null ``createdAt`` decodes to (encoding/json leaves the field alone).
ZERO_TIME = gojson.parse_go_time("0001-01-01T00:00:00Z", "zero time")


@dataclass(frozen=True, slots=True)
class LayerAnnotations:
    """Layer metadata that only the gha/s3/azblob backends write (they have no wrapper descriptors)."""

    media_type: str
    diff_id: Digest | None
    size: int | None
    created_at: gojson.Timestamp | None


@dataclass(frozen=True, slots=True)
class CacheLayer:
    blob: Digest
    parent: int
    annotations: LayerAnnotations | None = None


@dataclass(frozen=True, slots=True)
class CacheResult:
    layer: int
    created_at: gojson.Timestamp


@dataclass(frozen=True, slots=True)
class ChainedResult:
    """Inline-cache results: explicit layer indexes, bottom to top, parents not followed.

    ``layers`` stops before the first index that names no layer; that index is
    kept in ``bad_index`` (an import error only if every blob before it is listed).
    """

    layers: tuple[int, ...]
    created_at: gojson.Timestamp
    bad_index: int | None = None


@dataclass(frozen=True, slots=True)
class CacheInput:
    link: int
    selector: str = ""


@dataclass(frozen=True, slots=True)
class CacheRecord:
    digest: Digest
    results: tuple[CacheResult, ...] = ()
    chains: tuple[ChainedResult, ...] = ()
    inputs: tuple[tuple[CacheInput, ...], ...] = ()

    @property
    def is_root(self) -> bool:
        return not self.inputs

    @property
    def has_result(self) -> bool:
        return bool(self.results or self.chains)


CHAIN_MEMO_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """A parsed config whose layers form a forest.

    A layer whose ``parent`` names no layer, or closes a loop, is cut there
    (``cut_layers``; ``parent_of`` is then -1): BuildKit either rejects such a
    config (``import_error``) or never walks past an unlisted blob below it,
    so the chains here are those of every result BuildKit imports.

    Chains share their bottoms, so a config of n layers can describe n² chain
    entries; the whole-config questions below are answered in one pass over
    the layers, never by walking a chain per record.
    """

    layers: tuple[CacheLayer, ...]
    records: tuple[CacheRecord, ...]
    parents_first: tuple[int, ...] = field(init=False, repr=False, compare=False)
    parent_of: tuple[int, ...] = field(init=False, repr=False, compare=False)
    cut_layers: frozenset[int] = field(init=False, repr=False, compare=False)
    _chains: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _memo_entries: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parent_of, order, cut = _forest(self.layers)
        object.__setattr__(self, "parents_first", order)
        object.__setattr__(self, "parent_of", parent_of)
        object.__setattr__(self, "cut_layers", cut)
        object.__setattr__(self, "_chains", {})
        object.__setattr__(self, "_memo_entries", [0])

    def chain(self, layer: int) -> tuple[int, ...]:
        """Layer indexes from the bottom of the chain up to ``layer``.

        Memoised, so that walking a deep chain record by record extends the
        previous tuple instead of walking to the bottom each time; the memo is
        dropped when it holds ``CHAIN_MEMO_LIMIT`` entries, so memory stays bounded.
        """
        known = self._chains.get(layer)
        if known is not None:
            return known
        path: list[int] = []
        index = layer
        while index != -1 and index not in self._chains:
            path.append(index)
            index = self.parent_of[index]
        path.reverse()
        chain = (self._chains[index] if index != -1 else ()) + tuple(path)
        if self._memo_entries[0] + len(chain) > CHAIN_MEMO_LIMIT:
            self._chains.clear()
            self._memo_entries[0] = 0
        self._chains[layer] = chain
        self._memo_entries[0] += len(chain)
        return chain

    def chains_where_all(self, keep: Callable[[Digest], bool]) -> list[bool]:
        """For each layer: does ``keep`` hold for every blob of its chain?"""
        verdict: dict[Digest, bool] = {}
        out = [True] * len(self.layers)
        for index in self.parents_first:
            layer = self.layers[index]
            if layer.blob not in verdict:
                verdict[layer.blob] = keep(layer.blob)
            parent = self.parent_of[index]
            out[index] = verdict[layer.blob] and (parent == -1 or out[parent])
        return out

    def referenced_layers(self) -> set[int]:
        """Every layer that some result's chain contains."""
        walked: set[int] = set()  # whole chains below each member are in too
        listed: set[int] = set()  # inline chains name their layers without parents
        for record in self.records:
            for result in record.results:
                index = result.layer
                while index != -1 and index not in walked:
                    walked.add(index)
                    index = self.parent_of[index]
            for chained in record.chains:
                listed.update(chained.layers)
        return walked | listed

    def results_per_blob(self) -> Counter[Digest]:
        """How many results (of all records) have each blob somewhere in their chain."""
        tops = [0] * len(self.layers)
        counts: Counter[Digest] = Counter()
        for record in self.records:
            for result in record.results:
                tops[result.layer] += 1
            for chained in record.chains:
                counts.update({self.layers[i].blob for i in chained.layers})
        # Results whose chain passes through each layer: the tops in its subtree, summed children first.
        through = tops[:]
        for index in reversed(self.parents_first):
            parent = self.parent_of[index]
            if parent != -1:
                through[parent] += through[index]
        # A chain holding a blob twice counts once: only the lowest layer of each blob on a path counts.
        children: dict[int, list[int]] = {}
        for index in self.parents_first:
            children.setdefault(self.parent_of[index], []).append(index)
        on_path: Counter[Digest] = Counter()
        stack: list[tuple[int, bool]] = [(i, True) for i in reversed(children.get(-1, []))]
        while stack:
            index, entering = stack.pop()
            blob = self.layers[index].blob
            if not entering:
                on_path[blob] -= 1
                continue
            if not on_path[blob]:
                counts[blob] += through[index]
            on_path[blob] += 1
            stack.append((index, False))
            stack.extend((child, True) for child in reversed(children.get(index, [])))
        return +counts


def _forest(layers: tuple[CacheLayer, ...]) -> tuple[tuple[int, ...], tuple[int, ...], frozenset[int]]:
    """Parents with bad links cut, every index after its parent, and the cut layers. O(n) for any shape."""
    count = len(layers)
    parent_of = [layer.parent for layer in layers]
    cut: set[int] = set()
    state = [0] * count  # 0 unseen, 1 on the current walk, 2 placed
    order: list[int] = []
    for start in range(count):
        path: list[int] = []
        index = start
        while index != -1 and state[index] != 2:
            state[index] = 1
            path.append(index)
            parent = parent_of[index]
            if parent != -1 and (not 0 <= parent < count or state[parent] == 1):
                parent_of[index] = parent = -1
                cut.add(index)
            index = parent
        for member in reversed(path):
            state[member] = 2
            order.append(member)
    return tuple(parent_of), tuple(order), frozenset(cut)


def import_error(config: CacheConfig, listed: Callable[[Digest], bool]) -> str | None:
    """What BuildKit's importer fails with, given which blobs the document lists; None when it imports.

    Mirrors ``parse.go``: ``getRemoteChain`` per result (loop check, index check,
    then the provider lookup that ends the walk quietly) and the chained results'
    loop (index check, then lookup, ``break`` on the first missing blob).
    """
    count = len(config.layers)
    outcome: dict[int, str | None] = {}  # a walk from each layer, once: the error it meets, or None

    def walk(top: int) -> str | None:
        path: list[int] = []
        on_path: set[int] = set()
        index = top
        while True:
            if index in outcome:
                found = outcome[index]
                break
            if index in on_path:
                found = f"invalid looping layer (layer {index})"
                break
            if not 0 <= index < count:
                found = f"invalid layer index {index}"
                break
            path.append(index)
            on_path.add(index)
            layer = config.layers[index]
            if not listed(layer.blob) or layer.parent == -1:
                found = None
                break
            index = layer.parent
        for member in path:
            outcome[member] = found
        return found

    for position, record in enumerate(config.records):
        for result in record.results:
            found = walk(result.layer)
            if found is not None:
                return f"record {position} ({record.digest.short}): {found}"
        for chained in record.chains:
            if chained.bad_index is not None and all(listed(config.layers[i].blob) for i in chained.layers):
                return f"record {position} ({record.digest.short}): invalid layer index {chained.bad_index}"
    return None


def _check_record_loops(records: tuple[CacheRecord, ...]) -> None:
    """Reject record cycles through ``inputs`` links, iteratively (BuildKit: invalid looping record)."""
    links = [tuple(i.link for alternatives in r.inputs for i in alternatives) for r in records]
    state = [0] * len(records)  # 0 new, 1 on the current path, 2 finished
    for root in range(len(records)):
        if state[root]:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, pos = stack[-1]
            if pos == len(links[node]):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, pos + 1)
            target = links[node][pos]
            if state[target] == 1:
                raise InvalidContent(
                    f"cache config: record {target} ({records[target].digest.short}) links to itself "
                    "through its inputs (BuildKit: invalid looping record)"
                )
            if state[target] == 0:
                state[target] = 1
                stack.append((target, 0))


def _parse_layer(value: Any, where: str) -> CacheLayer:
    f = gojson.fields(value, ("blob", "parent", "annotations"), where)
    parent = gojson.as_int(f.get("parent"), f"{where}.parent")  # checked only where a walk reaches it
    annotations = None
    if f.get("annotations") is not None:
        a = gojson.fields(
            f["annotations"], ("mediaType", "diffID", "size", "createdAt"), f"{where}.annotations"
        )
        diff_id = a.get("diffID")
        created = gojson.as_str(a.get("createdAt"), f"{where}.annotations.createdAt")
        annotations = LayerAnnotations(
            media_type=gojson.as_str(a.get("mediaType"), f"{where}.annotations.mediaType"),
            diff_id=gojson.as_digest(diff_id, f"{where}.annotations.diffID") if diff_id else None,
            size=gojson.as_int(a.get("size"), f"{where}.annotations.size")
            if a.get("size") is not None
            else None,
            created_at=gojson.parse_go_time(created, f"{where}.annotations.createdAt") if created else None,
        )
    return CacheLayer(gojson.as_digest(f.get("blob"), f"{where}.blob"), parent, annotations)


def _index(value: Any, where: str, count: int, noun: str) -> int:
    index = gojson.as_int(value, where)
    if not 0 <= index < count:
        raise InvalidContent(f"{where}: {index} is not a {noun} index (there are {count})")
    return index


def _created_at(value: Any, where: str) -> gojson.Timestamp:
    """Go's ``time.Time`` decoding: ``null`` or absent leaves the zero time; any other non-time is an error."""
    if value is None:
        return ZERO_TIME
    return gojson.parse_go_time(gojson.as_str(value, where), where)


def _parse_record(value: Any, where: str, n_layers: int, n_records: int) -> CacheRecord:
    f = gojson.fields(value, ("layers", "chains", "digest", "inputs"), where)
    results = []
    for i, item in enumerate(gojson.as_list(f.get("layers"), f"{where}.layers")):
        r = gojson.fields(item, ("layer", "createdAt"), f"{where}.layers[{i}]")
        results.append(
            CacheResult(
                layer=_index(r.get("layer"), f"{where}.layers[{i}].layer", n_layers, "layer"),
                created_at=_created_at(r.get("createdAt"), f"{where}.layers[{i}].createdAt"),
            )
        )
    chains = []
    for i, item in enumerate(gojson.as_list(f.get("chains"), f"{where}.chains")):
        c = gojson.fields(item, ("layers", "createdAt"), f"{where}.chains[{i}]")
        indexes = [
            gojson.as_int(x, f"{where}.chains[{i}].layers[{j}]")
            for j, x in enumerate(gojson.as_list(c.get("layers"), f"{where}.chains[{i}].layers"))
        ]
        bad = next((j for j, x in enumerate(indexes) if not 0 <= x < n_layers), None)
        chains.append(
            ChainedResult(
                tuple(indexes if bad is None else indexes[:bad]),
                _created_at(c.get("createdAt"), f"{where}.chains[{i}].createdAt"),
                None if bad is None else indexes[bad],
            )
        )
    inputs = []
    for k, alternatives in enumerate(gojson.as_list(f.get("inputs"), f"{where}.inputs")):
        slot = []
        items = gojson.as_list(alternatives, f"{where}.inputs[{k}]")
        if not items:
            raise InvalidContent(f"{where}.inputs[{k}] is empty (BuildKit: invalid empty input for record)")
        for j, item in enumerate(items):
            x = gojson.fields(item, ("selector", "link"), f"{where}.inputs[{k}][{j}]")
            slot.append(
                CacheInput(
                    link=_index(x.get("link"), f"{where}.inputs[{k}][{j}].link", n_records, "record"),
                    selector=gojson.as_str(x.get("selector"), f"{where}.inputs[{k}][{j}].selector"),
                )
            )
        inputs.append(tuple(slot))
    return CacheRecord(
        digest=gojson.as_digest(f.get("digest"), f"{where}.digest"),
        results=tuple(results),
        chains=tuple(chains),
        inputs=tuple(inputs),
    )


def parse_cache_config(raw: bytes) -> CacheConfig:
    """Decode a cache config and reject what BuildKit's importer rejects whatever blobs are listed."""
    doc = gojson.load(raw, "cache config")
    if not isinstance(doc, gojson.Obj):
        raise InvalidContent("cache config: expected a JSON object")
    f = gojson.fields(doc, ("layers", "records"), "cache config")
    raw_layers = gojson.as_list(f.get("layers"), "cache config.layers")
    raw_records = gojson.as_list(f.get("records"), "cache config.records")
    layers = tuple(_parse_layer(v, f"cache config.layers[{i}]") for i, v in enumerate(raw_layers))
    records = tuple(
        _parse_record(v, f"cache config.records[{i}]", len(raw_layers), len(raw_records))
        for i, v in enumerate(raw_records)
    )
    _check_record_loops(records)
    return CacheConfig(layers, records)
