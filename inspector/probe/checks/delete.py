"""What DELETE does here (``--delete``): by tag, by digest while tagged, by digest when untagged."""

from __future__ import annotations

from dataclasses import replace

from inspector.errors import CacheInspectError
from inspector.probe.session import ProbeSession, Result

__all__ = ["delete_digest_tagged", "delete_digest_untagged", "delete_tag", "settle_hub_403"]


def delete_tag(s: ProbeSession) -> Result:
    doc = s.content.document("image-manifest", "delete-tag")
    tag = s.tag("deltag")
    s.put(tag, doc)
    s.delete(tag)
    if s.exists(tag, expect_gone=True):
        return Result("inconclusive", f"DELETE {tag} was accepted but the tag still resolves")
    s.gone.add(tag)
    kept = s.exists(str(doc.digest), expect_gone=False)
    if not kept:
        s.gone.add(str(doc.digest))
    semantics = "untag: the manifest stays, by digest" if kept else "the manifest went with the tag"
    return Result(
        "supported",
        f"DELETE {tag} accepted; {semantics}",
        observed={"semantics": "untag" if kept else "delete"},
    )


def delete_digest_tagged(s: ProbeSession) -> Result:
    doc = s.content.document("image-manifest", "delete-digest")
    tag = s.tag("deldigest")
    s.put(tag, doc)
    s.delete(str(doc.digest))
    if s.exists(str(doc.digest), expect_gone=True):
        return Result("inconclusive", f"DELETE {doc.digest.short} was accepted but it still resolves")
    s.gone.add(str(doc.digest))
    tag_left = s.exists(tag, expect_gone=True)
    if not tag_left:
        s.gone.add(tag)
    return Result(
        "supported",
        "DELETE by digest accepted; " + ("the tag still resolves" if tag_left else "its tag went with it"),
        observed={"removesTags": not tag_left},
    )


def delete_digest_untagged(s: ProbeSession) -> Result:
    doc = s.content.document("image-manifest", "delete-untagged")
    try:
        s.put(str(doc.digest), doc, tag=False)
    except CacheInspectError as exc:
        return Result(
            "skipped", f"PUT by digest was refused, so no untagged manifest could be made ({exc.message})"
        )
    s.delete(str(doc.digest))
    if s.exists(str(doc.digest), expect_gone=True):
        return Result("inconclusive", f"DELETE {doc.digest.short} was accepted but it still resolves")
    s.gone.add(str(doc.digest))
    return Result("supported", "DELETE by digest of an untagged manifest accepted")


def settle_hub_403(s: ProbeSession) -> None:
    """A 403 on a tagged digest delete means "still tagged" when an untagged one deletes fine [D1]."""
    tagged = s.results.get("delete-digest-tagged")
    untagged = s.results.get("delete-digest-untagged")
    if (
        tagged is not None
        and untagged is not None
        and tagged.status == "denied"
        and tagged.answer is not None
        and tagged.answer.status == 403
        and untagged.status == "supported"
    ):
        s.results["delete-digest-tagged"] = replace(
            tagged,
            status="unsupported",
            summary="403 while the manifest is tagged, yet an untagged manifest deletes fine: only "
            "untagged manifests can be deleted by digest",
            hint="remove the tag first (Docker Hub: Hub API or UI), then delete by digest",
        )
