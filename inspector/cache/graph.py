"""Draw a cache's stages as a graph: Mermaid (renders in GitHub step summaries and Markdown) or DOT.

Nodes are base images and stages (label, steps, bytes); solid edges are ``FROM``
(a base image, or a stage grown from another), dashed edges are inputs copied
or mounted from another stage (``COPY --from``, ``RUN --mount=from``).
"""

from __future__ import annotations

from typing import Literal

from inspector._sanitize import sanitize
from inspector.cache.report import CacheReport, human_size, stage_label

__all__ = ["GraphFormat", "dot_label", "mermaid_label", "render_graph"]

GraphFormat = Literal["mermaid", "dot"]
Label = tuple[str, ...]  # a node's lines, as text (names come from images and Dockerfiles: hostile)

# Mermaid's entity codes ("Entity codes to escape characters": ``#quot;``, ``#35;``…, decoded after parsing):
# the quote closes the label, ``#`` and ``&`` start an entity, ``<``/``>`` HTML, a backtick a Markdown string.
_MERMAID = {char: f"#{ord(char)};" for char in '"#&<>`'}


def mermaid_label(lines: Label) -> str:
    """A Mermaid quoted label (quotes included) that shows ``lines`` as text, one per ``<br/>``.

    Each line is ``sanitize``d (no newline, so no second statement) and every character that could end
    the quoted string or be read as markup is an entity code: a label cannot close its quote or bracket."""
    return '"' + "<br/>".join("".join(_MERMAID.get(c, c) for c in sanitize(line)) for line in lines) + '"'


def dot_label(lines: Label) -> str:
    """A DOT quoted string (quotes included) that shows ``lines`` as text, one per ``\\n``.

    In a DOT quoted string only ``\\"`` is an escape for the lexer (Graphviz lib/cgraph/scan.l), so a
    trailing backslash would swallow the closing quote; in a label, ``\\\\`` is one backslash and ``\\n``, ``\\N``,
    ``\\G``… are line breaks and substitutions. So backslashes are doubled, quotes escaped, each line
    ``sanitize``d: the string closes exactly where it should and says what the text says."""
    return '"' + "\\n".join(sanitize(line).replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def _edges(report: CacheReport) -> tuple[list[tuple[str, Label]], list[tuple[str, str, str]], dict[str, str]]:
    """Nodes (id, label), edges (from, to, kind) and node kinds, shared by both formats."""
    graph = report.graph
    config = report.documents.config
    nodes: list[tuple[str, Label]] = []
    kinds: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    if graph is None or config is None:
        return nodes, edges, kinds
    sizes = {layer.digest: layer.descriptor.size for layer in report.layers}
    base_ids: dict[tuple[int, ...], str] = {}
    for stage in graph.stages:
        image = stage.base.image
        if stage.base.kind in ("image", "unknown") and image is not None and image.roots not in base_ids:
            node = f"base{len(base_ids)}"
            base_ids[image.roots] = node
            if image.name:
                text = image.name
            elif image.chain_id is not None:
                text = f"image {image.chain_id.short}"
            else:
                text = "unidentified base"
            layer_bytes = sum(sizes.get(config.layers[i].blob, 0) for i in image.layers)
            detail = (
                f"{len(image.layers)} layers, {human_size(layer_bytes)}"
                if image.layers
                else "layers not in cache"
            )
            nodes.append((node, (text, detail)))
            kinds[node] = "base"
    for stage in graph.stages:
        node = f"stage{stage.index}"
        own = [i for step in stage.steps for i in step.layers]
        stage_bytes = sum(sizes.get(config.layers[i].blob, 0) for i in dict.fromkeys(own))
        steps = len(stage.steps)
        nodes.append(
            (
                node,
                (stage_label(stage), f"{steps} step{'s' if steps != 1 else ''}, {human_size(stage_bytes)}"),
            )
        )
        kinds[node] = "stage"
        image = stage.base.image
        if stage.base.kind == "stage" and stage.base.stage is not None:
            edges.append((f"stage{stage.base.stage}", node, "from"))
        elif image is not None and image.roots in base_ids:
            edges.append((base_ids[image.roots], node, "from"))
        for step in stage.steps:
            for item in step.inputs:
                if item.kind == "stage" and item.stage is not None:
                    edge = (f"stage{item.stage}", node, "copy")
                    if edge not in edges:
                        edges.append(edge)
    return nodes, edges, kinds


def render_graph(report: CacheReport, fmt: GraphFormat) -> str:
    nodes, edges, kinds = _edges(report)
    if fmt == "mermaid":
        lines = ["flowchart TD"]
        for node, label in nodes:
            text = mermaid_label(label)
            shape = f"[({text})]" if kinds[node] == "base" else f"[{text}]"
            lines.append(f"    {node}{shape}")
        for source, target, kind in edges:
            lines.append(
                f"    {source} -->|FROM| {target}"
                if kind == "from"
                else f"    {source} -.->|COPY --from| {target}"
            )
        return "\n".join(lines) + "\n"
    lines = ["digraph cache {", "    rankdir=TB;", '    node [fontname="Helvetica", shape=box];']
    for node, label in nodes:
        shape = ", shape=cylinder" if kinds[node] == "base" else ""
        lines.append(f"    {node} [label={dot_label(label)}{shape}];")
    for source, target, kind in edges:
        style = ' [label="FROM"]' if kind == "from" else ' [label="COPY --from", style=dashed]'
        lines.append(f"    {source} -> {target}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"
