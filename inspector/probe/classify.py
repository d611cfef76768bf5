"""How the probe judges a failed request (registries.md §5.3), in one table.

``classify(error, op)`` turns what the client raised into one of the check statuses. Order
matters; the first matching row wins::

    signal                                                        status
    ------------------------------------------------------------  ------------
    network error, 429, 5xx (after retries), BLOB_UPLOAD_UNKNOWN   inconclusive
    catalog: 401/403/404/405 or a refused token                    unsupported  (normal on SaaS)
    token endpoint refused, 401, 403                               denied
    404 NAME_UNKNOWN                                               config-error (repository missing)
    PROTECTED_TAG, IMMUTABLE_TAG, TAG_IMMUTABLE, QUOTA_EXCEEDED,
      or "quota" in the message                                    config-error
    405 (any code, incl. UNSUPPORTED and zot's DENIED)             unsupported
    referrers: 404                                                 unsupported
    manifest read: 404 right after a successful PUT                inconclusive (eventual consistency)
    manifest PUT: 404 once its blobs were confirmed by HEAD        unsupported  (Harbor)
    other 4xx (400 MANIFEST_INVALID, UNSUPPORTED, DIGEST_INVALID,
      MANIFEST_BLOB_UNKNOWN, GOOGLE_MANIFEST_DANGLING_TAG, 415 …)   unsupported
    a malformed answer (bad JSON, missing Location)                unsupported
    anything else                                                  inconclusive

Docker Hub's 403 for a digest delete of a still-tagged manifest looks like ``denied``; the probe
settles it afterwards by whether an untagged manifest can be deleted (``probe._settle_hub_403``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from inspector.errors import AuthError, CacheInspectError, InvalidContent, RegistryError, TransportError

__all__ = ["CONFIG_CODES", "STATUSES", "Answer", "Op", "Outcome", "Status", "answer_of", "classify"]

Status = Literal["supported", "unsupported", "denied", "config-error", "inconclusive", "skipped"]
STATUSES: tuple[Status, ...] = (
    "supported",
    "unsupported",
    "denied",
    "config-error",
    "inconclusive",
    "skipped",
)

Op = Literal[
    "discovery",
    "auth",
    "repository",
    "blob-upload",
    "mount",
    "manifest-put",
    "manifest-read",
    "tags",
    "catalog",
    "referrers",
    "delete-tag",
    "delete-digest",
    "delete-untagged",
    "cleanup",
]

CONFIG_CODES = frozenset(
    {"NAME_UNKNOWN", "PROTECTED_TAG", "IMMUTABLE_TAG", "TAG_IMMUTABLE", "QUOTA_EXCEEDED"}
)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the registry said: method, path (no query), status, first OCI error code and message."""

    method: str
    path: str
    status: int | None
    code: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: str
    answer: Answer | None


def _path(url: str) -> str:
    return urlsplit(url).path or url


def answer_of(error: CacheInspectError) -> Answer | None:
    if not isinstance(error, RegistryError):
        return None
    first = error.errors[0] if error.errors else None
    message = first.message if first else (error.body.splitlines()[0][:200] if error.body else "")
    return Answer(error.method, _path(error.url), error.status, first.code if first else "", message)


def classify(error: CacheInspectError, op: Op, *, blobs_confirmed: bool = True) -> Outcome:
    """The status a failed request gives the check it belongs to (see the module table)."""
    answer = answer_of(error)
    if isinstance(error, TransportError):
        return Outcome("inconclusive", f"network error after retries: {error.message}", None)
    if not isinstance(error, RegistryError):
        if isinstance(error, AuthError):
            if op == "catalog":
                return Outcome(
                    "unsupported", f"catalog not available to these credentials: {error.message}", None
                )
            return Outcome("denied", error.message, None)
        if isinstance(error, InvalidContent):
            return Outcome("unsupported", f"malformed answer: {error.message}", None)
        return Outcome("inconclusive", error.message, None)
    status = error.status
    codes = set(error.codes)
    text = f"{error.status} {', '.join(error.codes) or ''}".strip()
    if error.temporary or "BLOB_UPLOAD_UNKNOWN" in codes:
        return Outcome("inconclusive", f"transient failure after retries ({text})", answer)
    if op == "catalog" and status in (401, 403, 404, 405):
        return Outcome("unsupported", f"catalog not available ({text}); normal on hosted registries", answer)
    if status in (401, 403):
        return Outcome("denied", f"refused by authorisation ({text})", answer)
    if "NAME_UNKNOWN" in codes:
        return Outcome("config-error", "the repository does not exist (NAME_UNKNOWN)", answer)
    message = " ".join(e.message for e in error.errors).lower() + " " + error.body[:500].lower()
    if codes & CONFIG_CODES or "quota" in message:
        return Outcome("config-error", f"refused by repository configuration ({text})", answer)
    if status == 405:
        return Outcome("unsupported", f"operation not supported ({text})", answer)
    if op == "referrers" and status == 404:
        return Outcome("unsupported", "no referrers API (404)", answer)
    if op == "manifest-read" and status == 404:
        return Outcome(
            "inconclusive", "404 reading back a manifest just pushed (eventual consistency?)", answer
        )
    if op == "manifest-put" and status == 404:
        if blobs_confirmed:
            return Outcome(
                "unsupported",
                "404 on manifest PUT although every blob it names exists (Harbor-style)",
                answer,
            )
        return Outcome("inconclusive", "404 on manifest PUT before its blobs were confirmed", answer)
    if 400 <= status < 500:
        return Outcome("unsupported", f"refused ({text})", answer)
    return Outcome("inconclusive", f"unexpected answer ({text})", answer)
