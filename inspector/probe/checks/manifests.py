"""Manifest PUTs: each cache form, a tag changing form, and a manifest at BuildKit's import limit."""

from __future__ import annotations

import json
from collections.abc import Callable

from inspector.cache.fetch import Form
from inspector.probe.model import FORM_TAGS
from inspector.probe.session import ProbeSession, Result

__all__ = ["migration", "near_limit", "shape"]


def shape(form: Form) -> Callable[[ProbeSession], Result]:
    """The check of one cache form: PUT a document of that form under the probe's tag, read it back."""

    def check(s: ProbeSession) -> Result:
        doc = s.content.document(form)
        tag = s.tag(FORM_TAGS[form])
        s.put(tag, doc)
        notes = s.read_back(tag, doc)
        reads = "HEAD" if s.hub else "HEAD and GET (byte-identical)"
        extra = f"; {'; '.join(notes)}" if notes else ""
        return Result(
            "supported",
            f"PUT {tag} accepted, digest as computed, read back by {reads}{extra}",
            observed={"tag": tag, "digest": str(doc.digest), "size": doc.size},
        )

    return check


def migration(s: ProbeSession) -> Result:
    index = s.content.document("oci-index")
    image = s.content.document("image-manifest")
    tag = s.tag("migrate")
    s.put(tag, index)
    s.put(tag, image)
    head = s.head(tag)
    if head.digest is not None and head.digest != image.digest:
        return Result("unsupported", f"after both PUTs {tag} still resolves to {head.digest}")
    return Result(
        "supported",
        f"PUT of an index, then an image manifest, to {tag}: both accepted, the tag now resolves to "
        "the image manifest",
    )


def near_limit(s: ProbeSession) -> Result:
    doc = s.content.near_limit()
    tag = s.tag("large")
    s.put(tag, doc)
    head = s.head(tag)
    if head.size is not None and head.size != doc.size:
        return Result("unsupported", f"HEAD {tag} reports {head.size} bytes, {doc.size} were pushed")
    notes = s.read_back(tag, doc)
    layers = json.loads(doc.raw)["layers"]
    extra = f"; {'; '.join(notes)}" if notes else ""
    return Result(
        "supported",
        f"a {doc.size:,}-byte image manifest ({len(layers)} layer entries, exactly BuildKit's import "
        f"limit) accepted and read back{extra}",
        observed={"size": doc.size, "layers": len(layers)},
    )
