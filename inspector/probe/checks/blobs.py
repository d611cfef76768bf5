"""Blob uploads: POST + PUT, the single-POST and chunked variants, and cross-repository mounts."""

from __future__ import annotations

from inspector.errors import RegistryError
from inspector.probe.classify import Answer
from inspector.probe.requests import mount_blob, upload_chunked, upload_single_post
from inspector.probe.session import ProbeSession, Result

__all__ = ["blob_upload", "chunked", "mount", "single_post"]


def blob_upload(s: ProbeSession) -> Result:
    notes: list[str] = []
    uploaded: list[str] = []
    for blob in (s.content.layer, s.content.config):
        if s.client.head_blob(s.repo, blob.digest).exists:
            notes.append(f"{blob.purpose} blob already present (HEAD 200), not uploaded again")
            continue
        s.push_blob(s.repo, blob)
        s.poll_blob(s.repo, blob)
        uploaded.append(f"{blob.purpose} ({blob.size} bytes)")
    summary = f"POST + PUT uploaded {' and '.join(uploaded)}, read back by HEAD"
    return Result("supported", summary + (f"; {'; '.join(notes)}" if notes else ""))


def single_post(s: ProbeSession) -> Result:
    blob = s.content.extra_blob("single-post")
    result = s.write(lambda: upload_single_post(s.client, s.repo, blob.data, blob.digest))
    s.uploaded.append((s.repo, blob))
    s.check_reported(blob, result.reported_digest)
    s.poll_blob(s.repo, blob)
    path = f"/v2/{s.repo.path}/blobs/uploads/"
    if result.direct:
        return Result(
            "supported",
            "POST ?digest= with the body answered 201: one request uploads a blob",
            Answer("POST", path, 201),
        )
    return Result(
        "unsupported",
        "POST ?digest= with the body answered 202: the body was ignored and an upload session opened "
        "(finished with PUT <Location>&digest=)",
        Answer("POST", path, 202),
    )


def chunked(s: ProbeSession) -> Result:
    blob = s.content.extra_blob("chunked", 192)
    result = s.write(lambda: upload_chunked(s.client, s.repo, blob.data, blob.digest))
    s.uploaded.append((s.repo, blob))
    s.check_reported(blob, result.reported_digest)
    s.poll_blob(s.repo, blob)
    return Result(
        "supported", f"POST, 2 × PATCH with Content-Range, PUT: {blob.size} bytes uploaded in chunks"
    )


def mount(s: ProbeSession) -> Result:
    source = s.opts.mount_from
    assert source is not None
    try:
        s.client.list_tags(source)
    except RegistryError as exc:
        if "NAME_UNKNOWN" in exc.codes:
            return Result("config-error", f"--mount-from {source} does not exist (NAME_UNKNOWN)")
        raise
    blob = s.content.extra_blob("mount")
    s.push_blob(source, blob)
    result = s.write(lambda: mount_blob(s.client, s.repo, blob.digest, source, blob.data))
    s.uploaded.append((s.repo, blob))
    s.poll_blob(s.repo, blob)
    path = f"/v2/{s.repo.path}/blobs/uploads/"
    if result.direct:
        return Result("supported", f"mount from {source.path} answered 201", Answer("POST", path, 201))
    scope = ""
    if s.results["discovery"].observed.get("challenge") == "bearer":
        scope = (
            f" (the token covers {s.repo.path} only; registries that want pull rights on "
            f"{source.path} in the same token also answer 202)"
        )
    return Result(
        "unsupported",
        f"mount from {source.path} answered 202: not mounted, the blob was uploaded instead{scope}",
        Answer("POST", path, 202),
    )
