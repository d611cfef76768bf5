"""Typed errors and the exit codes they map to.

Every failure the library reports is a ``CacheInspectError``; the CLI turns its
``exit_code`` into the process exit status, so the mapping lives here, once.
Exit 1 is no error: it is only ``diff --exit-code`` saying the caches differ::

    CacheInspectError                      exit 70 (bug / unexpected; sysexits' EX_SOFTWARE)
    ├── UsageError                         exit 2  bad flag combination, bad local path
    │   ├── InvalidReference               exit 2  unparseable reference or digest
    │   └── UnknownFamily                  exit 2  probe --family names no registry family
    ├── InvalidContent                     exit 8  bad JSON, wrong structure, oversized body
    │   ├── DigestMismatch                 exit 8  bytes do not hash to the digest asked for
    │   ├── RedirectRefused                exit 8  a redirect the transport does not follow
    │   └── NotACache                      exit 8  the reference is an image, not a cache
    ├── MissingContent                     exit 3  a tag or blob absent from a local layout
    ├── TransportError                     exit 6  connect / TLS / timeout after retries
    ├── AuthError                          exit 4  token endpoint failed, no usable challenge
    └── RegistryError                      (status + OCI error envelope)
        ├── NotFound                       exit 3  404, *_UNKNOWN
        ├── Unauthorized                   exit 4  401, UNAUTHORIZED
        ├── Denied                         exit 4  403, DENIED
        ├── Unsupported                    exit 5  405, UNSUPPORTED
        ├── InvalidRequest                 exit 5  400, *_INVALID
        ├── RateLimited                    exit 6  429, TOOMANYREQUESTS (after retries)
        └── ServerError                    exit 6  5xx, UNAVAILABLE (after retries)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "CacheInspectError",
    "Denied",
    "DigestMismatch",
    "ExitCode",
    "InvalidContent",
    "InvalidReference",
    "InvalidRequest",
    "MissingContent",
    "NotACache",
    "NotFound",
    "OCIError",
    "RateLimited",
    "RedirectRefused",
    "RegistryError",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "UnknownFamily",
    "Unsupported",
    "UsageError",
    "registry_error_from_response",
]


class ExitCode(IntEnum):
    """Process exit codes; documented in the README."""

    OK = 0
    #: Only ``diff --exit-code``: the caches differ (as ``git diff --exit-code``); never an error.
    DIFFERENT = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    REFUSED = 5
    NETWORK = 6
    PARTIAL = 7
    INVALID_CONTENT = 8
    WILL_NOT_WORK = 9
    UNHEALTHY = 10
    #: An internal error (a bug); sysexits.h's EX_SOFTWARE, so that 1 keeps its single meaning.
    BUG = 70


class CacheInspectError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: ClassVar[ExitCode] = ExitCode.BUG

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CacheInspectError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class UnknownFamily(UsageError):
    """A registry family id (``probe --family``) the knowledge base does not know."""


class InvalidReference(UsageError, ValueError):
    """A reference or digest string that does not parse."""


class InvalidContent(CacheInspectError):
    """Bytes we fetched or read are not what they claim to be."""

    exit_code = ExitCode.INVALID_CONTENT


class DigestMismatch(InvalidContent):
    """Content whose sha256 differs from the digest it was fetched by."""


class RedirectRefused(InvalidContent):
    """A redirect the transport will not follow: of a write, a loop, too many hops, or down to plain HTTP."""


class NotACache(InvalidContent):
    """The reference resolves to something that is not a BuildKit cache."""


class MissingContent(CacheInspectError):
    """A tag or blob that a local OCI layout does not have."""

    exit_code = ExitCode.NOT_FOUND


class TransportError(CacheInspectError):
    """Connection, TLS or timeout failure, after retries."""

    exit_code = ExitCode.NETWORK


class AuthError(CacheInspectError):
    """Authentication could not be negotiated (token endpoint, challenge)."""

    exit_code = ExitCode.AUTH


@dataclass(frozen=True, slots=True)
class OCIError:
    """One entry of the distribution error envelope ``{"errors": [...]}``."""

    code: str
    message: str
    detail: Any = None


class RegistryError(CacheInspectError):
    """The registry answered with an error status."""

    exit_code = ExitCode.REFUSED
    temporary: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        url: str,
        errors: tuple[OCIError, ...] = (),
        body: str = "",
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.method = method
        self.url = url
        self.errors = errors
        self.body = body
        self.retry_after = retry_after

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)


class NotFound(RegistryError):
    exit_code = ExitCode.NOT_FOUND


class Unauthorized(RegistryError):
    exit_code = ExitCode.AUTH


class Denied(RegistryError):
    exit_code = ExitCode.AUTH


class Unsupported(RegistryError):
    exit_code = ExitCode.REFUSED


class InvalidRequest(RegistryError):
    exit_code = ExitCode.REFUSED


class RateLimited(RegistryError):
    exit_code = ExitCode.NETWORK
    temporary = True


class ServerError(RegistryError):
    exit_code = ExitCode.NETWORK
    temporary = True


_CODE_CLASSES: dict[str, type[RegistryError]] = {
    "BLOB_UNKNOWN": NotFound,
    "MANIFEST_UNKNOWN": NotFound,
    "NAME_UNKNOWN": NotFound,
    "BLOB_UPLOAD_UNKNOWN": NotFound,
    "UNAUTHORIZED": Unauthorized,
    "DENIED": Denied,
    "UNSUPPORTED": Unsupported,
    "TOOMANYREQUESTS": RateLimited,
    "UNAVAILABLE": ServerError,
    "NAME_INVALID": InvalidRequest,
    "TAG_INVALID": InvalidRequest,
    "DIGEST_INVALID": InvalidRequest,
    "MANIFEST_INVALID": InvalidRequest,
    "MANIFEST_BLOB_UNKNOWN": InvalidRequest,
    "MANIFEST_UNVERIFIED": InvalidRequest,
    "SIZE_INVALID": InvalidRequest,
    "BLOB_UPLOAD_INVALID": InvalidRequest,
    "PAGINATION_NUMBER_INVALID": InvalidRequest,
}

_STATUS_CLASSES: dict[int, type[RegistryError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Denied,
    404: NotFound,
    405: Unsupported,
    429: RateLimited,
}

MAX_ERROR_BODY = 64 * 1024


def _parse_envelope(body: bytes) -> tuple[OCIError, ...]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return ()
    out: list[OCIError] = []
    for item in doc["errors"]:
        if isinstance(item, dict):
            out.append(
                OCIError(
                    code=str(item.get("code", "")),
                    message=str(item.get("message", "")),
                    detail=item.get("detail"),
                )
            )
    return tuple(out)


def registry_error_from_response(
    *,
    status: int,
    method: str,
    url: str,
    body: bytes,
    what: str,
    retry_after: float | None = None,
) -> RegistryError:
    """The one place an HTTP error answer becomes a typed error.

    The class is chosen by the first error code we know, else by status; the
    status wins for 401/403/429 because some registries send a generic code
    (``UNKNOWN``) with them.
    """
    body = body[:MAX_ERROR_BODY]
    errors = _parse_envelope(body)
    cls: type[RegistryError] | None = None
    if status in (401, 403, 429):
        cls = _STATUS_CLASSES[status]
    else:
        for err in errors:
            if err.code in _CODE_CLASSES:
                cls = _CODE_CLASSES[err.code]
                break
    if cls is None:
        cls = ServerError if status >= 500 else _STATUS_CLASSES.get(status, RegistryError)
    text = body.decode("utf-8", "replace").strip()
    if errors:
        reason = "; ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors)
    else:
        reason = text.splitlines()[0][:200] if text else "no body"
    message = f"{what}: {method} answered {status} ({reason})"
    return cls(
        message,
        status=status,
        method=method,
        url=url,
        errors=errors,
        body=text,
        retry_after=retry_after,
    )
