"""What every probe check works on: a ``ProbeSession``.

It holds the client and the repository, the run's own content and tag names, and the facts earlier checks
observed (their results, what the probe created, what is gone, the tag list); the checks in
``inspector.probe.checks`` read and add to those facts. The helpers here are the steps several checks share:
a write retried on transient failures, a PUT that records what it created, a read-back, a DELETE.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TypeVar

from inspector.cache.fetch import Form
from inspector.errors import (
    CacheInspectError,
    DigestMismatch,
    NotFound,
    RegistryError,
    TransportError,
    UsageError,
)
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import Reference, Repository
from inspector.probe.cacheto import CacheToPlan, parse_buildkit_version, parse_cache_to, plan_cache_to
from inspector.probe.classify import Answer, Status, classify
from inspector.probe.content import Blob, ProbeContent, ProbeDocument, make_content
from inspector.probe.kb import FamilyMatch, detect_family
from inspector.probe.model import EMPTY, Basis, Check, Leftover, Observed, ProbeOptions
from inspector.registry.client import RegistryClient, RetryPolicy

__all__ = ["ProbeSession", "Result", "Stop", "count", "is_transient", "summarize"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Result:
    """How one check ended, before it is recorded as a ``Check``."""

    status: Status
    summary: str
    answer: Answer | None = None
    hint: str | None = None
    basis: Basis = "probed"
    observed: Observed = field(default_factory=lambda: EMPTY)


class Stop(Exception):
    """Ends a check early with a result (a mismatch, a skip) from inside a helper."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.summary)
        self.result = result


def is_transient(exc: CacheInspectError) -> bool:
    return isinstance(exc, TransportError) or (isinstance(exc, RegistryError) and exc.temporary)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summarize(reason: str, exc: CacheInspectError, answer: Answer | None) -> str:
    if answer is not None and answer.message:
        return f"{reason}: {answer.message}"
    if answer is None and exc.message and exc.message not in reason:
        return f"{reason}: {exc.message}"
    return reason


def _failed(exc: CacheInspectError) -> Stop:
    outcome = classify(exc, "manifest-read")
    return Stop(Result(outcome.status, summarize(outcome.reason, exc, outcome.answer), outcome.answer))


class ProbeSession:
    """The client, the repository and what the checks so far have observed and created."""

    def __init__(
        self,
        client: RegistryClient,
        options: ProbeOptions,
        *,
        sleep: Callable[[float], None],
        now: Callable[[], datetime],
    ) -> None:
        if options.read_only and options.delete:
            raise UsageError("--read-only and --delete exclude each other")
        if options.read_only and options.mount_from is not None:
            raise UsageError("--read-only and --mount-from exclude each other (a mount writes)")
        self.client = client
        self.opts = options
        self.repo = options.repository
        self.sleep = sleep
        self.run_id = options.run_id or secrets.token_hex(6)
        self.prefix = f"cacheinspect-probe-{self.run_id}-"
        self.family: FamilyMatch = detect_family(self.repo.registry, override=options.family)
        self.content: ProbeContent = make_content(self.run_id, now())
        self.plan: CacheToPlan | None = None
        if options.cache_to is not None:
            self.plan = plan_cache_to(
                parse_cache_to(options.cache_to), parse_buildkit_version(options.buildkit_version)
            )
        self.ref = options.ref or (self.plan.ref if self.plan is not None else None)
        # Facts the checks observe, in the order they run.
        self.results: dict[str, Check] = {}
        self.anonymous = False  # discovery: GET /v2/ answered 200 without credentials
        self.all_tags: list[str] = []  # repository, tags-list
        self.existing_form: Form | None = None  # existing-cache
        self.existing_digest: Digest | None = None
        self.n_honoured: bool | None = None  # tags-n
        self.first_link: str | None = None
        # What the probe created, and what of it is gone: cleanup's worklist.
        self.created_tags: dict[str, Digest] = {}
        self.created_manifests: dict[Digest, str] = {}
        self.maybe: dict[str, Digest] = {}  # identifier -> digest of a PUT whose outcome is unknown
        self.uploaded: list[tuple[Repository, Blob]] = []
        self.gone: set[str] = set()
        self.leftover_reasons: dict[str, str] = {}
        self.leftovers: list[Leftover] = []
        self.retries = 0  # retries of the check running now (the client's and the probe's own)
        #: The probe's own retries (writes the client does not repeat, the anonymous ping): the client's policy,
        #: without jitter (one probe, one registry: nothing to spread) and within --retries / --max-wait.
        self.backoff = RetryPolicy(
            retries=options.retries,
            base=0.5,
            cap=options.max_wait,
            max_retry_after=options.max_wait,
            jitter=False,
        )

    # -- names

    @property
    def hub(self) -> bool:
        return self.family.family.id == "docker-hub"

    def tag(self, suffix: str) -> str:
        return self.prefix + suffix

    def ref_of(self, identifier: str) -> Reference:
        if identifier.startswith("sha256:"):
            return self.repo.at(Digest(identifier))
        return self.repo.tag(identifier)

    # -- waiting and retrying

    def count_wait(self, seconds: float) -> None:
        """The client is about to wait ``seconds`` before retrying: the current check counts a retry."""
        self.retries += 1

    def write(self, fn: Callable[[], T]) -> T:
        """Run a write, retrying transient failures (429 honouring Retry-After, 5xx, network)."""
        attempt = 0
        while True:
            try:
                return fn()
            except CacheInspectError as exc:
                if not is_transient(exc):
                    raise
                delay = self.backoff.delay(
                    attempt, exc.retry_after if isinstance(exc, RegistryError) else None
                )
                if delay is None:
                    raise
                self.retries += 1
                self.sleep(delay)
                attempt += 1

    # -- tags

    def read_all_tags(self) -> int:
        """List every tag of the repository, all pages, into ``all_tags``; returns how many pages it took."""
        tags: list[str] = []
        pages = 0
        for page in self.client.iter_tag_pages(self.repo):
            tags.extend(page)
            pages += 1
        self.all_tags = tags
        return pages

    # -- manifests

    def head(self, identifier: str, *, polls: int = 4) -> Descriptor:
        """HEAD a manifest just written; a 404 is retried a few times (eventual consistency)."""
        for attempt in range(polls):
            try:
                return self.client.head_manifest(self.ref_of(identifier))
            except NotFound:
                if attempt == polls - 1:
                    raise
                self.sleep(0.25 * 2.0**attempt)
        raise AssertionError("unreachable")

    def exists(self, identifier: str, *, expect_gone: bool) -> bool:
        """Whether a manifest still resolves; polls a few times when a delete should have removed it."""
        polls = 4 if expect_gone else 1
        for attempt in range(polls):
            try:
                self.client.head_manifest(self.ref_of(identifier))
            except NotFound:
                return False
            except CacheInspectError as exc:
                self.leftover_reasons.setdefault(identifier, f"could not check: {exc.message}")
                return True
            if attempt < polls - 1:
                self.sleep(0.25 * 2.0**attempt)
        return True

    def put(self, identifier: str, doc: ProbeDocument, *, tag: bool = True) -> None:
        """PUT a document (the client retries 429/5xx); a rewritten digest ends the check as unsupported."""
        self.maybe[identifier] = doc.digest
        try:
            self.client.put_manifest(self.ref_of(identifier), doc.raw, doc.media_type)
        except DigestMismatch as exc:
            del self.maybe[identifier]
            self.created_manifests[doc.digest] = doc.purpose
            if tag:
                self.created_tags[identifier] = doc.digest
            raise Stop(Result("unsupported", f"the registry rewrote the manifest: {exc.message}")) from None
        except CacheInspectError as exc:
            if not is_transient(exc):
                del self.maybe[identifier]
            raise
        del self.maybe[identifier]
        self.created_manifests[doc.digest] = doc.purpose
        if tag:
            self.created_tags[identifier] = doc.digest

    def read_back(self, tag: str, doc: ProbeDocument) -> list[str]:
        """HEAD the tag and GET the digest once; a difference ends the check as unsupported."""
        notes: list[str] = []
        try:
            head = self.head(tag)
        except CacheInspectError as exc:
            raise _failed(exc) from None
        if head.digest != doc.digest:
            raise Stop(
                Result(
                    "unsupported", f"HEAD {tag} reports {head.digest}, the pushed manifest is {doc.digest}"
                )
            )
        if head.media_type and head.media_type != doc.media_type:
            notes.append(f"served as {head.media_type}")
        if self.hub:
            notes.append("GET skipped: Docker Hub counts a manifest GET as a pull")
            return notes
        try:
            raw = self.client.get_manifest(self.repo.at(doc.digest)).raw
        except DigestMismatch:
            raise Stop(
                Result("unsupported", f"GET by digest served bytes that do not hash to {doc.digest}")
            ) from None
        except CacheInspectError as exc:
            raise _failed(exc) from None
        if raw != doc.raw:
            raise Stop(
                Result(
                    "unsupported",
                    f"GET by digest served {len(raw)} bytes that differ from the {doc.size} pushed",
                )
            )
        return notes

    def delete(self, identifier: str) -> None:
        """DELETE a manifest by tag or digest (``RegistryClient.delete_tag``/``delete_manifest``; retried there).

        A 404 to a DELETE the client had to send again is "already gone", not a refusal: an earlier attempt
        may have been carried out with its answer lost (the checks then confirm it no longer resolves).
        """
        retries = self.retries
        try:
            if identifier.startswith("sha256:"):
                self.client.delete_manifest(self.repo, Digest(identifier))
            else:
                self.client.delete_tag(self.repo.tag(identifier))
        except NotFound:
            if self.retries == retries:
                raise

    def subject(self) -> Digest | None:
        """A manifest to ask about (referrers): the probe's image manifest, any it made, or the existing cache."""
        for digest, purpose in self.created_manifests.items():
            if purpose == "image-manifest" and str(digest) not in self.gone:
                return digest
        return next((d for d in self.created_manifests if str(d) not in self.gone), self.existing_digest)

    # -- blobs

    def poll_blob(self, repo: Repository, blob: Blob) -> None:
        for attempt in range(4):
            stat = self.client.head_blob(repo, blob.digest)
            if stat.exists:
                if stat.size is not None and stat.size != blob.size:
                    raise Stop(
                        Result(
                            "unsupported",
                            f"HEAD of blob {blob.digest.short} reports {stat.size} bytes, {blob.size} were uploaded",
                        )
                    )
                return
            if attempt < 3:
                self.sleep(0.25 * 2.0**attempt)
        raise Stop(Result("inconclusive", f"blob {blob.digest.short} not found by HEAD after its upload"))

    def push_blob(self, repo: Repository, blob: Blob) -> None:
        """POST + PUT (``RegistryClient.push_blob``), retried here as a whole on transient failures."""
        try:
            self.write(partial(self.client.push_blob, repo, blob.data))
        except DigestMismatch as exc:
            self.uploaded.append((repo, blob))
            raise Stop(Result("unsupported", exc.message)) from None
        self.uploaded.append((repo, blob))

    def check_reported(self, blob: Blob, reported: str | None) -> None:
        if reported and reported != blob.digest:
            raise Stop(
                Result("unsupported", f"the registry reports digest {reported} for blob {blob.digest}")
            )
