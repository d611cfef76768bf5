"""Carry out a gc plan, safely by construction: every deletion passes one gate, ``_Execution``.

The invariants hold here, at execution time, whatever plan comes in (fresh,
or a reviewed ``--apply-plan`` file, or a hand-edited one):

* only tags the plan deletes, and only if they match one of the plan's templates,
  are ever untagged (checked when the run starts and again at each call);
* a manifest digest is deleted only when, at the last *check*, no other tag
  resolved to it, no image index or manifest list resolved by a tag listed it,
  and its ``subject`` (if any) was not such a manifest. A check lists the tags
  again (new tags count) and HEADs every one of them, concurrently; nothing from
  planning or an earlier check is trusted. One check covers the destructive
  requests sent after it for at most as many round trips as it had
  (``ceil(tags / concurrency)``; on the distribution API the deletions go
  ``concurrency`` at a time, so that is about one deletion per tag) and at most
  as long as it took (or 1 s, if longer): so every deletion is sent at most
  about two checks' time (or 1 s after one) after the tags it could hurt were
  read, and a run costs about one HEAD per tag per check plus one per deletion.
  Each batch (the first deletion alone, then the other whole deletions, then
  the manifests that only lose tags) starts with a new check. Tags the plan deletes
  count as "other" as soon as they no longer sit on the digest the plan recorded;
* each stale tag is HEADed again immediately before the request that removes it
  (placeholder PUT, tag DELETE): gone -> ``already-gone``; moved to another
  manifest -> ``moved``, left alone, unless that manifest is a placeholder this
  tool pushed for the tag (an interrupted run), which is then finished;
* a DELETE answered 404 is ``already-gone``, never ``deleted`` (another run did it).

What no client can close: a tag pushed onto a manifest between the check and the
DELETE (the distribution API has no conditional delete), or a stale tag re-pushed
between its HEAD and the placeholder PUT (one request).

Manifests that are deleted whole go first, then those that only lose tags, so a backend that
finds out on its first deletion that it may not delete (``DeleteDenied``, exit 4: GHCR, where no
harmless request tells) does so before any tag was re-pointed. Per manifest of the plan (stale
tags S, digest D; an untagged cache has no S):

1. when no other tag resolves to D and the registry's digest delete removes tags
   (everything but Google's registries), D is deleted by digest: one request,
   atomic, nothing half-done if the process dies;
2. otherwise each tag in S is untagged alone (OCI tag delete, or a placeholder
   re-point + delete where tag delete is refused), and on Google's registries D
   is deleted afterwards if still nothing else resolves to it.

A rate limit (429 after the client's retries) stops the run: the rest is
reported as not attempted, and a rerun picks it up. ``DeleteDenied`` stops it and
is raised (nothing was deleted). Any other failure is recorded per tag and the
run goes on.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from inspector.errors import (
    CacheInspectError,
    ExitCode,
    InvalidContent,
    InvalidReference,
    NotFound,
    RateLimited,
)
from inspector.gc.backends.base import (
    Capabilities,
    DeleteBackend,
    DeleteDenied,
    ManifestKept,
    PushedBlob,
    UntagIncomplete,
)
from inspector.gc.placeholder import PlaceholderInfo, parse_placeholder
from inspector.gc.plan import ManifestPlan, ManifestRule, RepositoryPlan, template_reading
from inspector.oci import mediatypes
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor, ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient

__all__ = [
    "CannotDelete",
    "ManifestOutcome",
    "RegistryTagReader",
    "RepositoryReport",
    "TagOutcome",
    "TagReader",
    "capabilities_to_json",
    "execute_plan",
    "gc_report_to_json",
]

Progress = Callable[[int, int], None]
TagStatus = Literal["deleted", "already-gone", "moved", "failed", "not-attempted"]
ManifestStatus = Literal["deleted", "already-gone", "kept", "failed", "not-attempted"]


class CannotDelete(CacheInspectError):
    """The registry refuses every deletion (exit 5); nothing was attempted."""

    exit_code = ExitCode.REFUSED


class TagReader(Protocol):
    """The reads the executor needs; every backend shares the distribution API for them."""

    @property
    def concurrency(self) -> int:
        """How many reads ``resolve`` keeps in flight (sets how many deletions one check covers)."""
        ...

    def list_tags(self) -> list[str]: ...

    def resolve(self, tags: Sequence[str]) -> list[Descriptor | None]:
        """What each tag resolves to now (digest and media type), None for a tag that does not exist."""
        ...

    def document(self, digest: Digest) -> ManifestDocument | None:
        """The manifest at ``digest``, or None when it is gone or unreadable."""
        ...


class RegistryTagReader:
    def __init__(self, client: RegistryClient, repository: Repository, page_size: int | None = None) -> None:
        self.client = client
        self.repository = repository
        self.page_size = page_size

    @property
    def concurrency(self) -> int:
        return self.client.options.concurrency

    def list_tags(self) -> list[str]:
        return list(dict.fromkeys(self.client.list_tags(self.repository, page_size=self.page_size)))

    def resolve(self, tags: Sequence[str]) -> list[Descriptor | None]:
        def head(tag: str) -> Descriptor | None:
            try:
                return self.client.head_manifest(self.repository.tag(tag))
            except NotFound:
                return None

        # Never more HEADs in flight than ``concurrency`` says, even under an adaptive limit: a check's
        # round trips, counted from it, set how many deletions the check covers.
        return self.client.map_bounded(head, tags, at_most=self.concurrency)

    def document(self, digest: Digest) -> ManifestDocument | None:
        try:
            return self.client.get_manifest(self.repository.at(digest))
        except (NotFound, InvalidContent):
            return None


def subject_of(document: ManifestDocument) -> Digest | None:
    """The ``subject`` a manifest names (OCI 1.1 referrers), or None."""
    try:
        doc = json.loads(document.raw)
        subject = doc.get("subject") if isinstance(doc, dict) else None
        value = subject.get("digest") if isinstance(subject, dict) else None
        return Digest(value) if isinstance(value, str) else None
    except (ValueError, InvalidReference):
        return None


@dataclass(frozen=True, slots=True)
class TagOutcome:
    tag: str
    planned_digest: Digest
    status: TagStatus
    method: str | None
    detail: str
    current_digest: Digest | None = None


@dataclass(frozen=True, slots=True)
class ManifestOutcome:
    digest: Digest
    status: ManifestStatus
    detail: str
    manifest_size: int
    rule: ManifestRule = "tags"


@dataclass(frozen=True, slots=True)
class RepositoryReport:
    repository: Repository
    capabilities: Capabilities
    tags: tuple[TagOutcome, ...]
    manifests: tuple[ManifestOutcome, ...]
    placeholders: tuple[PlaceholderInfo, ...]
    pushed_blobs: tuple[PushedBlob, ...]
    seconds: float
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """Everything went to plan: nothing failed, nothing left unattempted."""
        bad = ("failed", "not-attempted")
        return all(t.status not in bad for t in self.tags) and all(
            m.status not in bad for m in self.manifests
        )

    def count(self, status: TagStatus) -> int:
        return sum(1 for t in self.tags if t.status == status)


class _Stop(Exception):
    """Raised inside the run to stop it (rate limited); carries the reason."""


def execute_plan(
    plan: RepositoryPlan,
    backend: DeleteBackend,
    reader: TagReader,
    *,
    on_progress: Progress | None = None,
) -> RepositoryReport:
    """Apply ``plan``; nothing read while planning is trusted (every deletion is checked again).

    Raises ``CannotDelete`` (exit 5) before any change when the registry refuses
    deletes, ``InvalidContent`` when the plan asks for a tag its templates do
    not cover, and ``DeleteDenied`` (exit 4) when the backend's first deletion
    shows that its credentials cannot delete. Everything else is reported per tag.
    """
    started = time.monotonic()
    run = _Execution(plan, backend, reader)  # checks the plan before any request
    capabilities = backend.capabilities()
    if not capabilities.can_delete:
        raise CannotDelete(
            f"{plan.repository}: {capabilities.detail}", hint=_cannot_delete_hint(str(plan.repository))
        )
    run.run(capabilities, on_progress)
    return RepositoryReport(
        repository=plan.repository,
        capabilities=capabilities,
        tags=tuple(run.tags[d.tag] for d in plan.deletions if d.tag in run.tags),
        manifests=tuple(run.manifests[m.digest] for m in plan.manifests if m.digest in run.manifests),
        placeholders=tuple(run.placeholders),
        pushed_blobs=tuple(run.pushed),
        seconds=time.monotonic() - started,
        stopped=run.stopped,
    )


def _cannot_delete_hint(repository: str) -> str:
    if repository.split("/", 1)[0].lower() == "ghcr.io":
        return "GHCR deletes package versions through the GitHub REST API, not the registry API"
    return "a CNCF distribution registry deletes only with storage.delete.enabled: true in its config"


_NESTING = 4  # index -> index -> ... levels followed when collecting an index's children


class _Check:
    """One look at every tag in the repository: what each resolves to, and what that keeps alive."""

    def __init__(self, current: dict[str, Descriptor], seconds: float, covers: int) -> None:
        self.current = current
        self.seconds = seconds
        self.done_at = time.monotonic()
        self.left = covers  # destructive requests this check may still cover

    def expired(self) -> bool:
        """Past the check's time bound: as long as it took, or 1 s if longer."""
        return time.monotonic() - self.done_at > max(self.seconds, 1.0)


class _Execution:
    def __init__(self, plan: RepositoryPlan, backend: DeleteBackend, reader: TagReader) -> None:
        self.plan = plan
        self.backend = backend
        self.reader = reader
        self.capabilities: Capabilities | None = None
        self.stale: dict[str, Digest] = {}
        for decision in plan.deletions:
            if decision.digest is None or template_reading(decision.tag, plan.rules.templates) is None:
                raise InvalidContent(
                    f"{plan.repository}: the plan deletes {decision.tag!r}, which matches none of its templates"
                )
            self.stale[decision.tag] = decision.digest
        self.check: _Check | None = None
        self.turns = threading.Condition()  # guards check and in_flight
        self.in_flight = 0  # destructive requests sent under the current check, not yet answered
        self.workers = 1  # deletions by digest in flight at once (``run`` sets it from the backend)
        self.batch_workers = 1  # the current batch's (1 for the batches that go one at a time)
        self.denied: DeleteDenied | None = None
        self.untagging = threading.Lock()  # a tag's HEAD and the request that removes it, one tag at a time
        # Manifests are immutable: what a digest's document lists (index children) and names as its
        # subject is read once per run.
        self.documents: dict[Digest, ManifestDocument | None] = {}
        # Stale tags exempt from "another tag resolves to it" while they sit on this digest.
        self.exempt: dict[str, Digest] = dict(self.stale)
        self.tags: dict[str, TagOutcome] = {}
        self.manifests: dict[Digest, ManifestOutcome] = {}
        self.placeholders: list[PlaceholderInfo] = []
        self.pushed: list[PushedBlob] = []
        self.stopped: str | None = None

    # -- the gate ---------------------------------------------------------------------------------

    def _document(self, digest: Digest) -> ManifestDocument | None:
        if digest not in self.documents:
            self.documents[digest] = self.reader.document(digest)
        return self.documents[digest]

    def _refresh(self) -> _Check:
        """List the tags and HEAD every one of them; read the indexes among them (once per digest)."""
        started = time.monotonic()
        listed = self.reader.list_tags()
        current = {
            tag: found
            for tag, found in zip(listed, self.reader.resolve(listed), strict=True)
            if found is not None
        }
        todo = {d.digest for d in current.values() if d.media_type in mediatypes.INDEX_TYPES}
        for _ in range(_NESTING):
            todo -= self.documents.keys()
            if not todo:
                break
            wanted = sorted(todo)
            for digest, document in zip(wanted, self._read_documents(wanted), strict=True):
                self.documents[digest] = document
            todo = {
                child.digest
                for digest in wanted
                if (document := self.documents[digest]) is not None
                for child in document.manifests
                if child.media_type in mediatypes.INDEX_TYPES
            }
        rounds = max(1, math.ceil(len(listed) / max(1, self.reader.concurrency)))
        self.check = _Check(current, time.monotonic() - started, rounds * self.batch_workers)
        return self.check

    def _read_documents(self, digests: Sequence[Digest]) -> list[ManifestDocument | None]:
        if isinstance(self.reader, RegistryTagReader):
            return self.reader.client.map_bounded(self.reader.document, digests)
        return [self.reader.document(d) for d in digests]

    @contextmanager
    def _covered(self) -> Iterator[_Check]:
        """The check covering one more destructive request, held while that request is in flight.

        The last check if still fresh; else, once the requests it covered have all been answered, a
        new one: so a change made when a check starts is seen by every request sent after it.
        """
        with self.turns:
            while (check := self.check) is None or check.left <= 0 or check.expired():
                if self.in_flight == 0:
                    self._refresh()
                else:
                    self.turns.wait()
            check.left -= 1
            self.in_flight += 1
        try:
            yield check
        finally:
            with self.turns:
                self.in_flight -= 1
                self.turns.notify_all()

    def _children(self, digest: Digest, depth: int = 0) -> set[Digest]:
        document = self.documents.get(digest)
        if document is None or depth >= _NESTING:
            return set()
        found = {c.digest for c in document.manifests}
        for child in document.manifests:
            if child.media_type in mediatypes.INDEX_TYPES:
                found |= self._children(child.digest, depth + 1)
        return found

    def _holders(self, digest: Digest, check: _Check) -> list[str]:
        """Why ``digest`` must stay, per the check covering this request (empty: it may go)."""
        tags = {t: d.digest for t, d in check.current.items() if self.exempt.get(t) != d.digest}
        holders = sorted(t for t, d in tags.items() if d == digest)
        for tag, held in sorted(check.current.items()):
            if held.media_type in mediatypes.INDEX_TYPES and digest in self._children(held.digest):
                holders.append(f"{tag} (an index listing it)")
        subject = subject_of(doc) if (doc := self._document(digest)) is not None else None
        if subject is not None:
            needed = set(tags.values())
            for held in check.current.values():
                if held.media_type in mediatypes.INDEX_TYPES:
                    needed |= self._children(held.digest)
            if subject in needed:
                holders.append(f"its subject {subject.short}")
        return holders

    def _delete_manifest(self, digest: Digest) -> bool:
        """The only call of ``backend.delete_manifest``: refused while anything still needs ``digest``."""
        with self._covered() as check:
            holders = self._holders(digest, check)
            if holders:
                raise _Held(holders)
            try:
                return self.backend.delete_manifest(digest)
            except ManifestKept as kept:  # the backend's last look (GHCR: a new tag, the last version)
                raise _Held([], kept.message) from None

    def _recheck(self, tag: str, planned: Digest, digest: Digest) -> bool:
        """HEAD ``tag`` immediately before removing it: True when it still sits on ``digest``."""
        (now,) = self.reader.resolve([tag])
        if now is None:
            self._tag(tag, planned, "already-gone", None, "no such tag any more")
            self._forget(tag)
            return False
        if now.digest != digest:
            self.exempt.pop(tag, None)
            self._tag(
                tag,
                planned,
                "moved",
                None,
                f"moved to {now.digest.short} since planning: left alone",
                now.digest,
            )
            return False
        return True

    def _untag(self, tag: str, digest: Digest) -> None:
        """The only call of ``backend.untag``: only planned tags that a template covers, still on ``digest``."""
        if self.stale.get(tag) is None or template_reading(tag, self.plan.rules.templates) is None:
            raise AssertionError(f"gc would untag {tag!r}, which the plan does not delete")
        planned = self.stale[tag]
        with self.untagging:  # one tag at a time, even in a concurrent batch: HEAD, then its removal
            if not self._recheck(tag, planned, digest):
                return
            try:
                result = self.backend.untag(tag, digest)
            except UntagIncomplete as exc:
                self.placeholders.append(exc.placeholder)
                self.pushed.extend(exc.pushed)
                self._tag(tag, planned, "failed", "placeholder", exc.message)
                return
            if result.placeholder is not None:
                self.placeholders.append(result.placeholder)
            self.pushed.extend(result.pushed_blobs)
            if result.already_gone:
                self._tag(tag, planned, "already-gone", result.method, "gone before it was untagged")
            else:
                self._tag(tag, planned, "deleted", result.method, "untagged; the manifest stays")
            self._forget(tag)

    # -- bookkeeping ------------------------------------------------------------------------------

    def _tag(
        self,
        tag: str,
        planned: Digest,
        status: TagStatus,
        method: str | None,
        detail: str,
        current: Digest | None = None,
    ) -> None:
        self.tags[tag] = TagOutcome(tag, planned, status, method, detail, current)

    def _manifest(self, plan: ManifestPlan, status: ManifestStatus, detail: str) -> None:
        self.manifests[plan.digest] = ManifestOutcome(
            plan.digest, status, detail, plan.manifest_size, plan.rule
        )

    def _forget(self, tag: str) -> None:
        self.exempt.pop(tag, None)

    # -- the run ----------------------------------------------------------------------------------

    def run(self, capabilities: Capabilities, on_progress: Progress | None) -> None:
        self.capabilities = capabilities
        # Deletions by digest on the distribution API go ``concurrency`` at a time. GHCR paces its
        # deletions to GitHub's limits and ECR has its own, and Google's registries untag before each
        # digest delete: one at a time there. Removing a single tag goes one at a time everywhere
        # (``_untag``), so a change seen when one placeholder lands is seen by every later re-point.
        if capabilities.backend == "oci" and capabilities.digest_delete_removes_tags:
            self.workers = max(1, self.reader.concurrency)
        groups = sorted(self.plan.manifests, key=lambda g: not g.delete_manifest)  # stable
        whole = [g.digest for g in groups if g.delete_manifest]
        # Their subjects, read up front and concurrently (a manifest's content never changes).
        for digest, document in zip(whole, self._read_documents(whole), strict=True):
            self.documents[digest] = document
        # The first manifest alone (a backend that may not delete finds out before anything else
        # changes), then the other whole deletions, then the manifests that only lose tags; each batch
        # starts with a new check, so none relies on a reading older than the batch before it.
        first, rest = groups[:1], groups[1:]
        batches = [first, [g for g in rest if g.delete_manifest], [g for g in rest if not g.delete_manifest]]
        progress = _Counter(len(groups), on_progress)
        for batch in batches:
            if not batch:
                continue
            self.check = None
            concurrent = len(batch) > 1 and batch[0].delete_manifest
            self.batch_workers = min(self.workers, len(batch)) if concurrent else 1
            if self.batch_workers == 1:
                for group in batch:
                    self._attempt(group, progress)
            else:
                with ThreadPoolExecutor(max_workers=self.batch_workers) as pool:
                    list(pool.map(lambda g: self._attempt(g, progress), batch))
            if self.denied is not None:
                raise self.denied

    def _attempt(self, group: ManifestPlan, progress: _Counter) -> None:
        """One manifest of the plan, unless the run has stopped (then it is reported not attempted)."""
        if self.stopped is None:
            try:
                self._group(group)
            except _Stop as stop:
                self.stopped = self.stopped or str(stop)
            except DeleteDenied as denied:
                self.denied = self.denied or denied
                self.stopped = self.stopped or denied.message
        if self.stopped is not None:
            self._not_attempted(group)
        progress.step()

    def _not_attempted(self, group: ManifestPlan) -> None:
        for tag in group.delete_tags:
            if tag not in self.tags:
                self._tag(tag, group.digest, "not-attempted", None, f"run stopped: {self.stopped}")
        if group.digest not in self.manifests:
            self._manifest(group, "not-attempted", f"run stopped: {self.stopped}")

    def _group(self, group: ManifestPlan) -> None:
        digest = group.digest
        try:
            on_digest = self._classify(group)
            assert self.capabilities is not None
            direct = self.capabilities.digest_delete_removes_tags or not on_digest
            if group.delete_manifest and direct:
                try:
                    self._delete_group(group, on_digest)
                    return
                except _Held as held:
                    self._manifest(group, "kept", held.detail)
            elif not group.delete_manifest:
                why = (
                    _held_by(list(group.kept_tags))
                    if group.kept_tags
                    else group.reason.removeprefix("kept: ")
                )
                self._manifest(group, "kept", f"as planned: {why}")
            for tag in on_digest:
                self._untag(tag, digest)
            if digest in self.manifests:
                return
            # Google's registries: the tags first, then the digest, if nothing else took it meanwhile.
            if any(self.tags[t].status == "failed" for t in on_digest):
                self._manifest(group, "failed", "not deleted: a tag on it could not be removed")
                return
            try:
                self._delete_group(group, [])
            except _Held as held:
                self._manifest(group, "kept", held.detail)
        except RateLimited as exc:
            raise _Stop(exc.message) from None
        except DeleteDenied:
            raise
        except CacheInspectError as exc:
            for tag in group.delete_tags:
                if tag not in self.tags:
                    self._tag(tag, digest, "failed", None, exc.message)
            if digest not in self.manifests:
                self._manifest(group, "failed", exc.message)

    def _classify(self, group: ManifestPlan) -> list[str]:
        """HEAD each stale tag before acting; finish placeholders; return those still on the digest."""
        digest = group.digest
        on_digest: list[str] = []
        current = self.reader.resolve(list(group.delete_tags)) if group.delete_tags else []
        for tag, now in zip(group.delete_tags, current, strict=True):
            if now is None:
                self._tag(tag, digest, "already-gone", None, "no such tag any more")
                self._forget(tag)
                continue
            if now.digest == digest:
                on_digest.append(tag)
                continue
            document = self._document(now.digest)
            placeholder = parse_placeholder(document) if document is not None else None
            if placeholder is not None and placeholder.tag == tag:
                self.exempt[tag] = now.digest
                self._finish_placeholder(tag, digest, placeholder)
                continue
            self.exempt.pop(tag, None)
            self._tag(
                tag,
                digest,
                "moved",
                None,
                f"moved to {now.digest.short} since planning: left alone",
                now.digest,
            )
        return on_digest

    def _finish_placeholder(self, tag: str, planned: Digest, placeholder: PlaceholderInfo) -> None:
        try:
            deleted = self._delete_manifest(placeholder.digest)
        except _Held as held:
            self._tag(tag, planned, "failed", "placeholder", f"placeholder kept: {held.detail}")
            return
        if deleted:
            self._tag(
                tag,
                planned,
                "deleted",
                "placeholder-finished",
                "a placeholder from an interrupted run, deleted",
            )
        else:
            self._tag(
                tag,
                planned,
                "already-gone",
                "placeholder-finished",
                "its placeholder was deleted by another run",
            )
        self._forget(tag)

    def _delete_group(self, group: ManifestPlan, on_digest: Sequence[str]) -> None:
        """Delete the manifest by digest; the stale tags still on it go with it."""
        deleted = self._delete_manifest(group.digest)
        if deleted:
            self._manifest(group, "deleted", "deleted by digest")
        else:
            self._manifest(group, "already-gone", "no such manifest any more (404): not deleted by this run")
        for tag in on_digest:
            status: TagStatus = "deleted" if deleted else "already-gone"
            self._tag(tag, group.digest, status, "manifest-delete", "deleted with its manifest")
            self._forget(tag)


class _Counter:
    """Progress over groups finished by several threads."""

    def __init__(self, total: int, on_progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.on_progress = on_progress
        self.lock = threading.Lock()

    def step(self) -> None:
        with self.lock:
            self.done += 1
            if self.on_progress is not None:
                self.on_progress(self.done, self.total)


def _held_by(tags: Sequence[str]) -> str:
    return f"{', '.join(tags)} {'resolves' if len(tags) == 1 else 'resolve'} to it"


class _Held(Exception):
    def __init__(self, holders: list[str], detail: str | None = None) -> None:
        super().__init__(", ".join(holders))
        self.holders = holders
        self.detail = detail or _held_by(holders)


def capabilities_to_json(capabilities: Capabilities) -> dict[str, Any]:
    return {
        "backend": capabilities.backend,
        "canDelete": capabilities.can_delete,
        "tagDelete": capabilities.tag_delete,
        "digestDeleteRemovesTags": capabilities.digest_delete_removes_tags,
        "detail": capabilities.detail,
    }


def gc_report_to_json(report: RepositoryReport) -> dict[str, Any]:
    """One repository's outcome, the ``report`` member of the ``gc --json`` document."""
    deleted = [m for m in report.manifests if m.status == "deleted"]
    return {
        "ok": report.ok,
        "stopped": report.stopped,
        "seconds": round(report.seconds, 3),
        "capabilities": capabilities_to_json(report.capabilities),
        "summary": {
            "deleted": report.count("deleted"),
            "alreadyGone": report.count("already-gone"),
            "moved": report.count("moved"),
            "failed": report.count("failed"),
            "notAttempted": report.count("not-attempted"),
            "manifestsDeleted": len(deleted),
            "untaggedDeleted": sum(1 for m in deleted if m.rule == "untagged-cache"),
            "manifestBytesDeleted": sum(m.manifest_size for m in deleted),
            "placeholderBytes": sum(p.size for p in report.placeholders),
            "pushedBlobBytes": sum(b.size for b in report.pushed_blobs),
        },
        "tags": [
            {
                "tag": t.tag,
                "plannedDigest": t.planned_digest,
                "status": t.status,
                "method": t.method,
                "detail": t.detail,
                "currentDigest": t.current_digest,
            }
            for t in report.tags
        ],
        "manifests": [
            {
                "digest": m.digest,
                "status": m.status,
                "detail": m.detail,
                "manifestSize": m.manifest_size,
                "rule": m.rule,
            }
            for m in report.manifests
        ],
        "placeholders": [
            {"digest": p.digest, "size": p.size, "tag": p.tag, "replaces": p.replaces}
            for p in report.placeholders
        ],
        "pushedBlobs": [{"digest": b.digest, "size": b.size} for b in report.pushed_blobs],
    }
