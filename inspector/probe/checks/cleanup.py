"""Removing what the probe created (unless ``--keep``), and naming what is left and why."""

from __future__ import annotations

from inspector.errors import CacheInspectError, RegistryError
from inspector.oci.digest import Digest
from inspector.probe.model import Leftover
from inspector.probe.session import ProbeSession, Result, is_transient
from inspector.probe.verdict import cleanup_advice

__all__ = ["cleanup"]


def cleanup(s: ProbeSession) -> Result:
    blob_reason = "blobs are left for the registry's garbage collection"
    uploaded = list(dict.fromkeys((repo, blob.digest) for repo, blob in s.uploaded))
    blob_leftovers = [Leftover("blob", f"{repo}@{digest}", blob_reason) for repo, digest in uploaded]
    if s.opts.read_only:
        return Result("skipped", "--read-only: nothing was written")
    for identifier, digest in s.maybe.items():
        if s.exists(identifier, expect_gone=False):
            if ":" in identifier:
                s.created_manifests.setdefault(digest, "uncertain")
            else:
                s.created_tags[identifier] = digest
                s.created_manifests.setdefault(digest, "uncertain")
    tags = [t for t in s.created_tags if t not in s.gone]
    manifests = [d for d in s.created_manifests if str(d) not in s.gone]
    if not tags and not manifests:
        s.leftovers = blob_leftovers
        if not uploaded:
            return Result("skipped", "nothing was created")
        return Result("supported", f"nothing to remove; {len(uploaded)} blobs left for garbage collection")
    if s.opts.keep:
        advice = cleanup_advice(s.family.family, s.results)
        s.leftovers = [
            *(Leftover("tag", f"{s.repo}:{t}", "kept (--keep)") for t in tags),
            *(Leftover("manifest", f"{s.repo}@{d}", "kept (--keep)") for d in manifests),
            *blob_leftovers,
        ]
        return Result(
            "skipped",
            f"--keep: {len(tags)} tags and {len(manifests)} manifests left; removing them needs: {advice.text}",
        )
    transient = _delete_all(s, tags, manifests)
    left_tags = [t for t in tags if s.exists(t, expect_gone=t in s.gone)]
    left_manifests = [d for d in manifests if s.exists(str(d), expect_gone=str(d) in s.gone)]
    s.leftovers = [
        *(Leftover("tag", f"{s.repo}:{t}", _tag_reason(s, t)) for t in left_tags),
        *(
            Leftover(
                "manifest",
                f"{s.repo}@{d}",
                s.leftover_reasons.get(str(d), "still resolves after cleanup"),
            )
            for d in left_manifests
        ),
        *blob_leftovers,
    ]
    removed = len(tags) - len(left_tags), len(manifests) - len(left_manifests)
    if not left_tags and not left_manifests:
        return Result(
            "supported",
            f"removed {removed[0]} tags and {removed[1]} manifests; {len(uploaded)} blobs left for garbage collection",
        )
    return Result(
        "inconclusive" if transient else "unsupported",
        f"{len(left_tags)} tags and {len(left_manifests)} manifests could not be removed "
        f"(removed {removed[0]} tags, {removed[1]} manifests)",
    )


def _tag_reason(s: ProbeSession, tag: str) -> str:
    if tag in s.leftover_reasons:
        return s.leftover_reasons[tag]
    manifest = s.leftover_reasons.get(str(s.created_tags[tag]))
    tag_check = s.results.get("delete-tag")
    if tag_check is not None and tag_check.status != "supported":
        why = f"; its manifest: {manifest}" if manifest else ""
        return f"tags cannot be deleted here (delete-tag: {tag_check.status}){why}"
    return f"its manifest could not be deleted: {manifest}" if manifest else "still resolves after cleanup"


def _delete_all(s: ProbeSession, tags: list[str], manifests: list[Digest]) -> bool:
    """Best-effort removal; returns whether a transient failure got in the way."""
    tag_ok = s.results.get("delete-tag") is not None and s.results["delete-tag"].status == "supported"
    transient = False

    def attempt(identifier: str) -> RegistryError | None:
        nonlocal transient
        try:
            s.delete(identifier)
        except RegistryError as exc:
            transient = transient or exc.temporary
            code = ", ".join(exc.codes)
            s.leftover_reasons[identifier] = f"DELETE answered {exc.status}{' ' + code if code else ''}"
            return exc
        except CacheInspectError as exc:
            transient = transient or is_transient(exc)
            s.leftover_reasons[identifier] = f"DELETE failed: {exc.message}"
            return None
        s.gone.add(identifier)
        s.leftover_reasons.pop(identifier, None)
        return None

    for digest in manifests:
        error = attempt(str(digest))
        if error is None or not tag_ok:
            continue
        if error.status == 403 or "GOOGLE_MANIFEST_DANGLING_TAG" in error.codes:
            for tag in [t for t, d in s.created_tags.items() if d == digest and t not in s.gone]:
                attempt(tag)
            attempt(str(digest))
    if tag_ok:
        for tag in tags:
            if tag not in s.gone and s.created_tags[tag] not in s.gone:
                attempt(tag)
    # a digest delete removes the tags on it (distribution, Quay, ACR, ECR): check them as "expected gone"
    for tag in tags:
        if str(s.created_tags[tag]) in s.gone:
            s.gone.add(tag)
    return transient
