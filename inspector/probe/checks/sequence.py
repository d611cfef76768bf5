"""The checks in the order they run, with what each requires (see ``inspector.probe.checks``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from inspector.cache.fetch import Form
from inspector.probe.checks.blobs import blob_upload, chunked, mount, single_post
from inspector.probe.checks.cleanup import cleanup
from inspector.probe.checks.delete import (
    delete_digest_tagged,
    delete_digest_untagged,
    delete_tag,
    settle_hub_403,
)
from inspector.probe.checks.discovery import auth, discovery, existing_cache, repository, token_scopes
from inspector.probe.checks.listing import catalog, referrers_api, tags_link, tags_list, tags_n
from inspector.probe.checks.manifests import migration, near_limit, shape
from inspector.probe.classify import Op
from inspector.probe.model import FORM_CHECKS, FORM_ORDER
from inspector.probe.session import ProbeSession, Result

__all__ = ["SEQUENCE", "ProbeCheck"]

_NO_REASONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProbeCheck:
    """One check: what it runs, how its failures are judged (``op``), and what it needs first."""

    id: str
    run: Callable[[ProbeSession], Result]
    op: Op
    #: Checks that must be ``supported`` first; otherwise this one is skipped, blocked by the first that is not.
    requires: tuple[str, ...] = ()
    #: Per requirement, the explanation when it failed (a requirement that was itself skipped is named as such).
    why: Mapping[str, str] = field(default_factory=lambda: _NO_REASONS)
    #: A result that stands without running (a skip for the options given), or None to run.
    decide: Callable[[ProbeSession], Result | None] | None = None
    #: Runs after the result is recorded (to revise an earlier check's result in the light of this one).
    after: Callable[[ProbeSession], None] | None = None


def _skip(why: str) -> Result:
    return Result("skipped", why)


def _writes(s: ProbeSession) -> Result | None:
    return _skip("--read-only") if s.opts.read_only else None


def _optional(flag: str, wanted: Callable[[ProbeSession], bool]) -> Callable[[ProbeSession], Result | None]:
    def decide(s: ProbeSession) -> Result | None:
        if s.opts.read_only:
            return _skip("--read-only")
        return None if wanted(s) else _skip(flag)

    return decide


def _has_ref(s: ProbeSession) -> Result | None:
    return None if s.ref is not None else _skip("no cache ref given (REPO:TAG or --cache-to ref=…)")


def _pushed_or_existing(form: Form) -> Callable[[ProbeSession], Result | None]:
    """Read-only: a form is known supported when the existing cache is stored in it; else not pushed."""

    def decide(s: ProbeSession) -> Result | None:
        if not s.opts.read_only:
            return None
        existing = s.results.get("existing-cache")
        if existing is not None and existing.status == "supported" and s.existing_form == form:
            return Result(
                "supported", f"the registry stores a cache of this form at {s.ref}", basis="existing-cache"
            )
        return _skip("--read-only: not pushed")

    return decide


_UPLOADED = MappingProxyType({"blob-upload": "the blobs it names could not be uploaded"})
_IMAGE = MappingProxyType({"manifest-image": "the image-manifest form is not accepted here"})
_DELETABLE = MappingProxyType({"manifest-image": "needs an accepted image manifest to delete"})
_deletes = _optional("needs --delete", lambda s: s.opts.delete)

#: Every check in the order it runs: each may read what the ones before it observed.
SEQUENCE: tuple[ProbeCheck, ...] = (
    ProbeCheck("discovery", discovery, "discovery"),
    ProbeCheck("auth", auth, "auth", requires=("discovery",)),
    ProbeCheck("repository", repository, "repository", requires=("auth",)),
    ProbeCheck("existing-cache", existing_cache, "manifest-read", requires=("repository",), decide=_has_ref),
    ProbeCheck("blob-upload", blob_upload, "blob-upload", requires=("repository",), decide=_writes),
    ProbeCheck(
        "blob-upload-single-post",
        single_post,
        "blob-upload",
        requires=("blob-upload",),
        decide=_optional("optional: --upload-variants", lambda s: s.opts.upload_variants),
    ),
    ProbeCheck(
        "blob-upload-chunked",
        chunked,
        "blob-upload",
        requires=("blob-upload",),
        decide=_optional("optional: --upload-variants", lambda s: s.opts.upload_variants),
    ),
    ProbeCheck(
        "blob-mount",
        mount,
        "mount",
        requires=("blob-upload",),
        decide=_optional("optional: --mount-from REPO", lambda s: s.opts.mount_from is not None),
    ),
    *(
        ProbeCheck(
            FORM_CHECKS[form],
            shape(form),
            "manifest-put",
            requires=("blob-upload",),
            why=_UPLOADED,
            decide=_pushed_or_existing(form),
        )
        for form in FORM_ORDER
    ),
    ProbeCheck(
        "manifest-migration",
        migration,
        "manifest-put",
        requires=("manifest-index", "manifest-image"),
        why=MappingProxyType(
            {
                "manifest-index": "the index form is not accepted here, so no cache tag can change form",
                "manifest-image": "the image-manifest form is not accepted here",
            }
        ),
        decide=_writes,
    ),
    ProbeCheck(
        "manifest-near-limit",
        near_limit,
        "manifest-put",
        requires=("manifest-image",),
        why=_IMAGE,
        decide=_optional("disabled (--no-near-limit)", lambda s: s.opts.near_limit),
    ),
    ProbeCheck("tags-list", tags_list, "tags", requires=("repository",)),
    ProbeCheck("tags-n", tags_n, "tags", requires=("tags-list",)),
    ProbeCheck("tags-link", tags_link, "tags", requires=("tags-list",)),
    ProbeCheck("catalog", catalog, "catalog", requires=("auth",)),
    ProbeCheck("referrers", referrers_api, "referrers", requires=("repository",)),
    ProbeCheck(
        "delete-tag", delete_tag, "delete-tag", requires=("manifest-image",), why=_DELETABLE, decide=_deletes
    ),
    ProbeCheck(
        "delete-digest-tagged",
        delete_digest_tagged,
        "delete-digest",
        requires=("manifest-image",),
        why=_DELETABLE,
        decide=_deletes,
    ),
    ProbeCheck(
        "delete-digest-untagged",
        delete_digest_untagged,
        "delete-untagged",
        requires=("manifest-image",),
        why=_DELETABLE,
        decide=_deletes,
        after=settle_hub_403,
    ),
    ProbeCheck("token-scopes", token_scopes, "auth", requires=("auth",)),
    ProbeCheck("cleanup", cleanup, "cleanup"),
)
