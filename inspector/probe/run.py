"""``cacheinspect probe``: can this registry hold a BuildKit registry cache, and how is it cleaned up?

The probe works inside the repository the cache will use (registries.md §5): it never creates
repositories, writes only tags it owns (``cacheinspect-probe-<runid>-…``) and content carrying
its run id, reads with HEAD where it can, and at the end deletes what it created (``--keep`` leaves it; ``--delete`` adds the deletion checks) (only what it
created in this run). Each check ends as one of ``STATUSES``; failures are judged by
``probe_classify``. The documented behaviour of the registry's family (``probe_kb``) is attached
to each check, and a recommendation (the ``--cache-to`` attributes that work, and how cleanup
must be done) is derived from the live results, falling back to the documentation where
nothing could be probed. A user's ``--cache-to`` string is planned as BuildKit would export it
(``probe_cacheto``) and checked against the results.

Checks, in order, and the requests they make (``<p>`` = ``cacheinspect-probe-<runid>-``)::

    discovery               GET /v2/ without credentials (challenge, API version header)
    auth                    GET /v2/ with credentials
    repository              GET tags/list (all pages): exists? (404 NAME_UNKNOWN = config error)
    existing-cache          HEAD + GET the --cache-to ref (HEAD only on Docker Hub); read-only: + HEAD blobs
    blob-upload             HEAD blob, POST uploads/ + PUT <Location>&digest=, HEAD blob
    blob-upload-single-post POST uploads/?digest= with the body (202 = unsupported, finished by PUT)
    blob-upload-chunked     POST, PATCH × 2 (Content-Range), PUT <Location>&digest=
    blob-mount              upload to --mount-from, POST uploads/?mount=&from= (202 = unsupported)
    manifest-image          PUT <p>oman, HEAD <p>oman, GET by digest (not on Docker Hub)
    manifest-index          PUT <p>oidx, HEAD, GET
    manifest-list           PUT <p>dlist, HEAD, GET
    manifest-migration      PUT index then image manifest to <p>migrate, HEAD
    manifest-near-limit     PUT a 1,048,576-byte image manifest to <p>large, HEAD, GET
    tags-list               GET tags/list following Link: the probe's tags are listed
    tags-n                  GET tags/list?n=1
    tags-link               follow Link (up to 3 pages)
    catalog                 GET /v2/_catalog?n=1
    referrers               GET referrers/<digest> (validated by Content-Type and body)
    delete-tag              PUT <p>deltag, DELETE by tag, HEAD tag and digest          (--delete)
    delete-digest-tagged    PUT <p>deldigest, DELETE by digest, HEAD digest and tag    (--delete)
    delete-digest-untagged  PUT by digest, DELETE by digest, HEAD                      (--delete)
    token-scopes            (no request) actions granted by the Bearer tokens' JWT claims
    cleanup                 DELETE what the probe created (unless --keep), HEAD to list leftovers
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from types import MappingProxyType
from typing import TypeVar

from inspector.cache.fetch import IMPORT_LIMIT, Form, find_cache_config, form_of
from inspector.errors import (
    CacheInspectError,
    DigestMismatch,
    NotFound,
    RegistryError,
    TransportError,
    UsageError,
)
from inspector.oci import mediatypes
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import Reference, Repository, parse_reference
from inspector.probe.cacheto import (
    CacheToPlan,
    parse_buildkit_version,
    parse_cache_to,
    plan_cache_to,
)
from inspector.probe.classify import STATUSES, Answer, Op, Status, classify
from inspector.probe.content import Blob, ProbeContent, ProbeDocument, make_content
from inspector.probe.kb import FAMILY_IDS, Fact, detect_family
from inspector.probe.model import (
    CHECKS,
    CONTENT_TYPE_FORMS,
    EMPTY,
    FORM_CHECKS,
    FORM_NAMES,
    FORM_ORDER,
    FORM_TAGS,
    SPECS,
    Basis,
    CacheToVerdict,
    Check,
    CheckSpec,
    CleanupAdvice,
    Leftover,
    Observed,
    ProbeOptions,
    ProbeReport,
    Recommendation,
)
from inspector.probe.requests import (
    anonymous_ping,
    catalog_page,
    mount_blob,
    referrers,
    tags_page,
    upload_chunked,
    upload_single_post,
)
from inspector.probe.verdict import cleanup_advice, evaluate_cache_to, hint_for, judge_exit, recommend
from inspector.registry.auth import parse_www_authenticate
from inspector.registry.client import RegistryClient

__all__ = [
    "CHECKS",
    "FORM_CHECKS",
    "STATUSES",
    "CacheToVerdict",
    "Check",
    "CheckSpec",
    "CleanupAdvice",
    "Leftover",
    "ProbeOptions",
    "ProbeReport",
    "Recommendation",
    "evaluate_cache_to",
    "offline_report",
    "run_probe",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True, slots=True)
class _Result:
    status: Status
    summary: str
    answer: Answer | None = None
    hint: str | None = None
    basis: Basis = "probed"
    observed: Observed = field(default_factory=lambda: EMPTY)


class _Stop(Exception):
    """Ends a check early with a result (a mismatch, a skip) from inside a helper."""

    def __init__(self, result: _Result) -> None:
        super().__init__(result.summary)
        self.result = result


_NO_API = "no registry API at this address (wrong host, port or path?)"


def _is_transient(exc: CacheInspectError) -> bool:
    return isinstance(exc, TransportError) or (isinstance(exc, RegistryError) and exc.temporary)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _summary(reason: str, exc: CacheInspectError, answer: Answer | None) -> str:
    if answer is not None and answer.message:
        return f"{reason}: {answer.message}"
    if answer is None and exc.message and exc.message not in reason:
        return f"{reason}: {exc.message}"
    return reason


class _Prober:
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
        if options.family is not None and options.family not in FAMILY_IDS:
            raise UsageError(f"--family {options.family!r}: expected one of {', '.join(FAMILY_IDS)}")
        self.client = client
        self.opts = options
        self.repo = options.repository
        self.sleep = sleep
        self.run_id = options.run_id or secrets.token_hex(6)
        self.prefix = f"cacheinspect-probe-{self.run_id}-"
        self.content: ProbeContent = make_content(self.run_id, now())
        self.family = detect_family(self.repo.registry, override=options.family)
        self.plan: CacheToPlan | None = None
        if options.cache_to is not None:
            self.plan = plan_cache_to(
                parse_cache_to(options.cache_to), parse_buildkit_version(options.buildkit_version)
            )
        self.ref = options.ref or (self.plan.ref if self.plan is not None else None)
        self.results: dict[str, Check] = {}
        self.created_tags: dict[str, Digest] = {}
        self.created_manifests: dict[Digest, str] = {}
        self.maybe: dict[str, Digest] = {}  # identifier -> digest of a PUT whose outcome is unknown
        self.uploaded: list[tuple[Repository, Blob]] = []
        self.gone: set[str] = set()
        self.leftover_reasons: dict[str, str] = {}
        self.all_tags: list[str] = []
        self.n_honoured: bool | None = None
        self.first_link: str | None = None
        self.existing_form: Form | None = None
        self.existing_digest: Digest | None = None
        self.anonymous = False
        self._retries = 0
        self.leftovers: list[Leftover] = []

    # -- helpers

    def count_wait(self, seconds: float) -> None:
        """The client is about to wait ``seconds`` before retrying: the current check counts a retry."""
        self._retries += 1

    @property
    def _hub(self) -> bool:
        return self.family.family.id == "docker-hub"

    def _delay(self, attempt: int, exc: CacheInspectError) -> float | None:
        if attempt >= self.opts.retries:
            return None
        after: float | None = exc.retry_after if isinstance(exc, RegistryError) else None
        if after is not None:
            return after if after <= self.opts.max_wait else None
        return min(self.opts.max_wait, 0.5 * 2.0**attempt)

    def _write(self, fn: Callable[[], T]) -> T:
        """Run a write, retrying transient failures (429 honouring Retry-After, 5xx, network)."""
        attempt = 0
        while True:
            try:
                return fn()
            except CacheInspectError as exc:
                if not _is_transient(exc):
                    raise
                delay = self._delay(attempt, exc)
                if delay is None:
                    raise
                self._retries += 1
                self.sleep(delay)
                attempt += 1

    def _tag(self, suffix: str) -> str:
        return self.prefix + suffix

    def _ref(self, identifier: str) -> Reference:
        if identifier.startswith("sha256:"):
            return self.repo.at(Digest(identifier))
        return self.repo.tag(identifier)

    def _head(self, identifier: str, *, polls: int = 4) -> Descriptor:
        """HEAD a manifest just written; a 404 is retried a few times (eventual consistency)."""
        for attempt in range(polls):
            try:
                return self.client.head_manifest(self._ref(identifier))
            except NotFound:
                if attempt == polls - 1:
                    raise
                self.sleep(0.25 * 2.0**attempt)
        raise AssertionError("unreachable")

    def _exists(self, identifier: str, *, expect_gone: bool) -> bool:
        """Whether a manifest still resolves; polls a few times when a delete should have removed it."""
        polls = 4 if expect_gone else 1
        for attempt in range(polls):
            try:
                self.client.head_manifest(self._ref(identifier))
            except NotFound:
                return False
            except CacheInspectError as exc:
                self.leftover_reasons.setdefault(identifier, f"could not check: {exc.message}")
                return True
            if attempt < polls - 1:
                self.sleep(0.25 * 2.0**attempt)
        return True

    def _put(self, identifier: str, doc: ProbeDocument, *, tag: bool = True) -> None:
        """PUT a document (the client retries 429/5xx); a rewritten digest ends the check as unsupported."""
        self.maybe[identifier] = doc.digest
        try:
            self.client.put_manifest(self._ref(identifier), doc.raw, doc.media_type)
        except DigestMismatch as exc:
            del self.maybe[identifier]
            self.created_manifests[doc.digest] = doc.purpose
            if tag:
                self.created_tags[identifier] = doc.digest
            raise _Stop(_Result("unsupported", f"the registry rewrote the manifest: {exc.message}")) from None
        except CacheInspectError as exc:
            if not _is_transient(exc):
                del self.maybe[identifier]
            raise
        del self.maybe[identifier]
        self.created_manifests[doc.digest] = doc.purpose
        if tag:
            self.created_tags[identifier] = doc.digest

    def _read_back(self, tag: str, doc: ProbeDocument) -> list[str]:
        """HEAD the tag and GET the digest once; a difference ends the check as unsupported."""
        notes: list[str] = []
        try:
            head = self._head(tag)
        except CacheInspectError as exc:
            outcome = classify(exc, "manifest-read")
            raise _Stop(
                _Result(outcome.status, _summary(outcome.reason, exc, outcome.answer), outcome.answer)
            ) from None
        if head.digest != doc.digest:
            raise _Stop(
                _Result(
                    "unsupported", f"HEAD {tag} reports {head.digest}, the pushed manifest is {doc.digest}"
                )
            )
        if head.media_type and head.media_type != doc.media_type:
            notes.append(f"served as {head.media_type}")
        if self._hub:
            notes.append("GET skipped: Docker Hub counts a manifest GET as a pull")
            return notes
        try:
            raw = self.client.get_manifest(self.repo.at(doc.digest)).raw
        except DigestMismatch:
            raise _Stop(
                _Result("unsupported", f"GET by digest served bytes that do not hash to {doc.digest}")
            ) from None
        except CacheInspectError as exc:
            outcome = classify(exc, "manifest-read")
            raise _Stop(
                _Result(outcome.status, _summary(outcome.reason, exc, outcome.answer), outcome.answer)
            ) from None
        if raw != doc.raw:
            raise _Stop(
                _Result(
                    "unsupported",
                    f"GET by digest served {len(raw)} bytes that differ from the {doc.size} pushed",
                )
            )
        return notes

    def _documented(self, check_id: str) -> tuple[Fact, ...]:
        topic = SPECS[check_id].topic
        return self.family.family.facts_about(topic) if topic else ()

    def _record(self, check_id: str, result: _Result, *, blocked_by: str | None = None, ms: int = 0) -> Check:
        spec = SPECS[check_id]
        check = Check(
            id=spec.id,
            group=spec.group,
            title=spec.title,
            status=result.status,
            summary=result.summary,
            basis=result.basis,
            answer=result.answer,
            hint=result.hint
            or hint_for(check_id, result.status, result.answer, self.family.family, self.results),
            documented=self._documented(check_id),
            blocked_by=blocked_by,
            retries=self._retries,
            observed=result.observed,
            duration_ms=ms,
        )
        self.results[check_id] = check
        return check

    def _skip(self, check_id: str, why: str) -> Check:
        self._retries = 0
        return self._record(check_id, _Result("skipped", why))

    def _run(
        self,
        check_id: str,
        fn: Callable[[], _Result],
        op: Op,
        *,
        requires: tuple[str, ...] = (),
        why: Mapping[str, str] | None = None,
    ) -> Check:
        for dep in requires:
            found = self.results.get(dep)
            if found is None or found.status != "supported":
                status = found.status if found is not None else "missing"
                # The explanation fits a dependency that failed; one that was itself skipped is named as such.
                explained = (why or {}).get(dep) if status not in ("skipped", "missing") else None
                text = explained or f"not run: {dep} is {status}"
                self._retries = 0
                return self._record(check_id, _Result("skipped", text), blocked_by=dep)
        self._retries = 0
        started = time.monotonic()
        try:
            result = fn()
        except _Stop as stop:
            result = stop.result
        except CacheInspectError as exc:
            outcome = classify(exc, op)
            result = _Result(outcome.status, _summary(outcome.reason, exc, outcome.answer), outcome.answer)
        return self._record(check_id, result, ms=int((time.monotonic() - started) * 1000))

    # -- discovery

    def _discovery(self) -> _Result:
        attempt = 0
        while True:
            response = anonymous_ping(self.client, self.repo.registry)
            if response.status_code in (429, 500, 502, 503, 504) and attempt < self.opts.retries:
                self._retries += 1
                self.sleep(min(self.opts.max_wait, 0.5 * 2.0**attempt))
                attempt += 1
                continue
            break
        api = response.headers.get("Docker-Distribution-Api-Version")
        status = response.status_code
        answer = Answer("GET", "/v2/", status)
        version = f"; API version {api}" if api else "; no Docker-Distribution-Api-Version header"
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if status == 200 and not api and content_type == "text/html":
            # A web page at /v2/ (a catch-all web server): the header is how clients tell the API apart.
            return _Result(
                "config-error", f"{_NO_API}: GET /v2/ answered 200 with a web page (text/html)", answer
            )
        if status == 200:
            self.anonymous = True
            return _Result(
                "supported",
                f"GET /v2/ answered 200 without credentials (no authentication){version}",
                answer,
                observed={"challenge": "none", "apiVersion": api},
            )
        if status == 401:
            challenges = [
                c for v in response.headers.get_list("WWW-Authenticate") for c in parse_www_authenticate(v)
            ]
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if bearer is not None:
                realm = bearer.params.get("realm", "")
                service = bearer.params.get("service", "")
                if self.opts.family is None:
                    self.family = detect_family(self.repo.registry, challenge=f"{realm} {service}")
                return _Result(
                    "supported",
                    f"401 with a Bearer challenge (realm {realm}, service {service or '-'}){version}",
                    answer,
                    observed={"challenge": "bearer", "realm": realm, "service": service, "apiVersion": api},
                )
            if basic is not None:
                return _Result(
                    "supported",
                    f"401 with a Basic challenge (realm {basic.params.get('realm', '-')}){version}",
                    answer,
                    observed={"challenge": "basic", "realm": basic.params.get("realm"), "apiVersion": api},
                )
            return _Result(
                "denied", "401 without a usable WWW-Authenticate challenge: clients cannot log in", answer
            )
        if status in (429, 500, 502, 503, 504):
            return _Result("inconclusive", f"GET /v2/ kept answering {status}", answer)
        # The distribution spec (API Version Check): 404 "or other unexpected status" means the endpoint does not
        # implement the V2 API, i.e. this address is not a registry.
        return _Result("config-error", f"{_NO_API}: GET /v2/ answered {status}", answer)

    def _auth(self) -> _Result:
        self.client.ping(self.repo.registry)
        if self.anonymous:
            return _Result("supported", "no authentication required")
        challenge = self.results["discovery"].observed.get("challenge")
        return _Result("supported", f"GET /v2/ with credentials answered 200 ({challenge} authentication)")

    def _repository(self) -> _Result:
        tags: list[str] = []
        pages = 0
        for page in self.client.iter_tag_pages(self.repo):
            tags.extend(page)
            pages += 1
        self.all_tags = tags
        return _Result(
            "supported",
            f"{self.repo} exists ({_count(len(tags), 'tag')} in {_count(pages, 'page')})",
            observed={"tags": len(tags), "pages": pages},
        )

    def _existing_cache(self) -> _Result:
        ref = self.ref
        assert ref is not None
        if ref.repository != self.repo:
            return _Result("skipped", f"{ref} is not in {self.repo}: not read")
        try:
            head = self.client.head_manifest(ref)
        except NotFound:
            return _Result("skipped", f"no cache at {ref} yet: the first export creates it")
        observed: dict[str, str | int | bool | None] = {"digest": str(head.digest), "size": head.size}
        form: Form | None = CONTENT_TYPE_FORMS.get(head.media_type)
        notes: list[str] = []
        self.existing_digest = head.digest
        if not self._hub or self.opts.read_only:
            manifest = self.client.get_manifest(ref.with_digest(head.digest))
            found = find_cache_config(manifest)
            if found is None:
                return _Result(
                    "config-error",
                    f"{ref} is not a BuildKit cache ({manifest.media_type}): the export would overwrite it",
                    observed=observed,
                )
            form = form_of(manifest)
            self.existing_digest = manifest.digest
            observed.update(digest=str(manifest.digest), size=manifest.size, layers=len(found[1]))
            if self.opts.read_only:
                config, layers = found
                config_stat = self.client.head_blob(self.repo, config.digest)
                checked = [self.client.head_blob(self.repo, d.digest) for d in layers[:3]]
                missing = [s.digest.short for s in [config_stat, *checked] if not s.exists]
                observed.update(configPresent=config_stat.exists, layersChecked=len(checked))
                if missing:
                    notes.append(f"blobs missing: {', '.join(missing)}")
                else:
                    notes.append(f"config and {len(checked)} of {len(layers)} layers readable (HEAD)")
            if manifest.size > IMPORT_LIMIT * 0.9:
                notes.append(
                    f"the manifest is {manifest.size:,} bytes, {manifest.size * 100 // IMPORT_LIMIT}% of "
                    "BuildKit's 1 MiB import limit"
                )
        self.existing_form = form
        observed["form"] = form
        name = FORM_NAMES[form] if form else head.media_type or "unknown type"
        extra = f"; {'; '.join(notes)}" if notes else ""
        return _Result(
            "supported",
            f"{ref} is a cache in the {name} form ({head.size or '?'} bytes){extra}",
            observed=observed,
        )

    # -- uploads

    def _poll_blob(self, repo: Repository, blob: Blob) -> None:
        for attempt in range(4):
            stat = self.client.head_blob(repo, blob.digest)
            if stat.exists:
                if stat.size is not None and stat.size != blob.size:
                    raise _Stop(
                        _Result(
                            "unsupported",
                            f"HEAD of blob {blob.digest.short} reports {stat.size} bytes, {blob.size} were uploaded",
                        )
                    )
                return
            if attempt < 3:
                self.sleep(0.25 * 2.0**attempt)
        raise _Stop(_Result("inconclusive", f"blob {blob.digest.short} not found by HEAD after its upload"))

    def _push_blob(self, repo: Repository, blob: Blob) -> None:
        """POST + PUT (``RegistryClient.push_blob``), retried here as a whole on transient failures."""
        try:
            self._write(partial(self.client.push_blob, repo, blob.data))
        except DigestMismatch as exc:
            self.uploaded.append((repo, blob))
            raise _Stop(_Result("unsupported", exc.message)) from None
        self.uploaded.append((repo, blob))

    def _check_reported(self, blob: Blob, reported: str | None) -> None:
        if reported and reported != blob.digest:
            raise _Stop(
                _Result("unsupported", f"the registry reports digest {reported} for blob {blob.digest}")
            )

    def _blob_upload(self) -> _Result:
        notes: list[str] = []
        uploaded: list[str] = []
        for blob in (self.content.layer, self.content.config):
            if self.client.head_blob(self.repo, blob.digest).exists:
                notes.append(f"{blob.purpose} blob already present (HEAD 200), not uploaded again")
                continue
            self._push_blob(self.repo, blob)
            self._poll_blob(self.repo, blob)
            uploaded.append(f"{blob.purpose} ({blob.size} bytes)")
        summary = f"POST + PUT uploaded {' and '.join(uploaded)}, read back by HEAD"
        return _Result("supported", summary + (f"; {'; '.join(notes)}" if notes else ""))

    def _single_post(self) -> _Result:
        blob = self.content.extra_blob("single-post")
        result = self._write(lambda: upload_single_post(self.client, self.repo, blob.data, blob.digest))
        self.uploaded.append((self.repo, blob))
        self._check_reported(blob, result.reported_digest)
        self._poll_blob(self.repo, blob)
        path = f"/v2/{self.repo.path}/blobs/uploads/"
        if result.direct:
            return _Result(
                "supported",
                "POST ?digest= with the body answered 201: one request uploads a blob",
                Answer("POST", path, 201),
            )
        return _Result(
            "unsupported",
            "POST ?digest= with the body answered 202: the body was ignored and an upload session opened "
            "(finished with PUT <Location>&digest=)",
            Answer("POST", path, 202),
        )

    def _chunked(self) -> _Result:
        blob = self.content.extra_blob("chunked", 192)
        result = self._write(lambda: upload_chunked(self.client, self.repo, blob.data, blob.digest))
        self.uploaded.append((self.repo, blob))
        self._check_reported(blob, result.reported_digest)
        self._poll_blob(self.repo, blob)
        return _Result(
            "supported", f"POST, 2 × PATCH with Content-Range, PUT: {blob.size} bytes uploaded in chunks"
        )

    def _mount(self) -> _Result:
        source = self.opts.mount_from
        assert source is not None
        try:
            self.client.list_tags(source)
        except RegistryError as exc:
            if "NAME_UNKNOWN" in exc.codes:
                return _Result("config-error", f"--mount-from {source} does not exist (NAME_UNKNOWN)")
            raise
        blob = self.content.extra_blob("mount")
        self._push_blob(source, blob)
        result = self._write(lambda: mount_blob(self.client, self.repo, blob.digest, source, blob.data))
        self.uploaded.append((self.repo, blob))
        self._poll_blob(self.repo, blob)
        path = f"/v2/{self.repo.path}/blobs/uploads/"
        if result.direct:
            return _Result("supported", f"mount from {source.path} answered 201", Answer("POST", path, 201))
        scope = ""
        if self.results["discovery"].observed.get("challenge") == "bearer":
            scope = (
                f" (the token covers {self.repo.path} only; registries that want pull rights on "
                f"{source.path} in the same token also answer 202)"
            )
        return _Result(
            "unsupported",
            f"mount from {source.path} answered 202: not mounted, the blob was uploaded instead{scope}",
            Answer("POST", path, 202),
        )

    # -- manifests

    def _shape(self, form: Form) -> _Result:
        doc = self.content.document(form)
        tag = self._tag(FORM_TAGS[form])
        self._put(tag, doc)
        notes = self._read_back(tag, doc)
        reads = "HEAD" if self._hub else "HEAD and GET (byte-identical)"
        extra = f"; {'; '.join(notes)}" if notes else ""
        return _Result(
            "supported",
            f"PUT {tag} accepted, digest as computed, read back by {reads}{extra}",
            observed={"tag": tag, "digest": str(doc.digest), "size": doc.size},
        )

    def _migration(self) -> _Result:
        index = self.content.document("oci-index")
        image = self.content.document("image-manifest")
        tag = self._tag("migrate")
        self._put(tag, index)
        self._put(tag, image)
        head = self._head(tag)
        if head.digest is not None and head.digest != image.digest:
            return _Result("unsupported", f"after both PUTs {tag} still resolves to {head.digest}")
        return _Result(
            "supported",
            f"PUT of an index, then an image manifest, to {tag}: both accepted, the tag now resolves to "
            "the image manifest",
        )

    def _near_limit(self) -> _Result:
        doc = self.content.near_limit()
        tag = self._tag("large")
        self._put(tag, doc)
        head = self._head(tag)
        if head.size is not None and head.size != doc.size:
            return _Result("unsupported", f"HEAD {tag} reports {head.size} bytes, {doc.size} were pushed")
        notes = self._read_back(tag, doc)
        layers = json.loads(doc.raw)["layers"]
        extra = f"; {'; '.join(notes)}" if notes else ""
        return _Result(
            "supported",
            f"a {doc.size:,}-byte image manifest ({len(layers)} layer entries, exactly BuildKit's import "
            f"limit) accepted and read back{extra}",
            observed={"size": doc.size, "layers": len(layers)},
        )

    # -- listing

    def _tags_list(self) -> _Result:
        tags: list[str] = []
        pages = 0
        for page in self.client.iter_tag_pages(self.repo):
            tags.extend(page)
            pages += 1
        expected = {t for t in self.created_tags if t not in self.gone}
        missing = sorted(expected - set(tags))
        self.all_tags = tags
        if missing:
            return _Result("unsupported", f"tags/list omits tags the probe pushed: {', '.join(missing)}")
        mine = f"; the probe's {len(expected)} tags are listed" if expected else ""
        return _Result(
            "supported",
            f"{_count(len(tags), 'tag')} in {_count(pages, 'page')}{mine}",
            observed={"tags": len(tags), "pages": pages},
        )

    def _tags_n(self) -> _Result:
        total = len(self.all_tags)
        if total < 2:
            return _Result(
                "skipped", f"{total} tag{'s' if total != 1 else ''} in the repository: n=1 cannot be judged"
            )
        page, following = tags_page(self.client, self.repo, n=1)
        self.n_honoured = len(page) <= 1
        self.first_link = following
        observed = {"asked": 1, "got": len(page), "link": following is not None}
        if self.n_honoured:
            return _Result(
                "supported", f"n=1 honoured: 1 of {total} tags on the first page", observed=observed
            )
        return _Result(
            "unsupported",
            f"n=1 ignored: {len(page)} tags in one response, {'with' if following else 'no'} Link",
            observed=observed,
        )

    def _tags_link(self) -> _Result:
        if self.n_honoured is None:
            return _Result("skipped", "n was not checked")
        if self.first_link is None:
            if not self.n_honoured:
                return _Result("skipped", "n is ignored and no Link is sent: every tag comes in one response")
            return _Result(
                "unsupported",
                f"a page cut to n=1 (of {len(self.all_tags)} tags) came without a Link header: clients that "
                "follow Link miss tags",
            )
        seen: list[str] = []
        url: str | None = self.first_link
        pages = 0
        while url and pages < 3:
            page, url = tags_page(self.client, self.repo, url=url)
            pages += 1
            if not page:
                return _Result("unsupported", f"Link page {pages} is empty")
            if set(page) & set(seen):
                return _Result("unsupported", f"Link page {pages} repeats tags of earlier pages")
            seen.extend(page)
        return _Result(
            "supported",
            f"followed Link for {pages} more page{'s' if pages != 1 else ''} ({len(seen)} further tags)",
            observed={"pagesFollowed": pages},
        )

    def _catalog(self) -> _Result:
        count, link = catalog_page(self.client, self.repo.registry, 1)
        return _Result(
            "supported",
            f"_catalog?n=1 answered with {count} repositor{'y' if count == 1 else 'ies'}"
            f"{', with a Link to the next page' if link else ', no Link'}",
            observed={"link": link},
        )

    def _subject(self) -> Digest | None:
        for digest, purpose in self.created_manifests.items():
            if purpose == "image-manifest" and str(digest) not in self.gone:
                return digest
        return next((d for d in self.created_manifests if str(d) not in self.gone), self.existing_digest)

    def _referrers(self) -> _Result:
        subject = self._subject()
        if subject is None:
            return _Result("skipped", "no manifest to ask about (nothing pushed, no existing cache)")
        content_type, body = referrers(self.client, self.repo, subject)
        kind = mediatypes.base(content_type)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        shaped = (
            isinstance(doc, dict) and doc.get("schemaVersion") == 2 and isinstance(doc.get("manifests"), list)
        )
        answer = Answer("GET", f"/v2/{self.repo.path}/referrers/{subject}", 200)
        if kind == mediatypes.OCI_INDEX and shaped:
            assert isinstance(doc, dict)
            return _Result("supported", f"answers an OCI index ({len(doc['manifests'])} referrers)", answer)
        what = f"Content-Type {kind or 'none'}" + ("" if shaped else ", body is not an index")
        return _Result(
            "unsupported",
            f"200 without a referrers index ({what}): a false 200, the API is not there",
            answer,
            hint="some registries answer 200 on /referrers/ without supporting it [P2]; use the tag schema",
        )

    # -- deletes

    def _delete(self, identifier: str) -> None:
        """DELETE a manifest by tag or digest (``RegistryClient.delete_tag``/``delete_manifest``; retried there).

        A 404 to a DELETE the client had to send again is "already gone", not a refusal: an earlier attempt
        may have been carried out with its answer lost (the checks then confirm it no longer resolves).
        """
        retries = self._retries
        try:
            if identifier.startswith("sha256:"):
                self.client.delete_manifest(self.repo, Digest(identifier))
            else:
                self.client.delete_tag(self.repo.tag(identifier))
        except NotFound:
            if self._retries == retries:
                raise

    def _delete_tag(self) -> _Result:
        doc = self.content.document("image-manifest", "delete-tag")
        tag = self._tag("deltag")
        self._put(tag, doc)
        self._delete(tag)
        if self._exists(tag, expect_gone=True):
            return _Result("inconclusive", f"DELETE {tag} was accepted but the tag still resolves")
        self.gone.add(tag)
        kept = self._exists(str(doc.digest), expect_gone=False)
        if not kept:
            self.gone.add(str(doc.digest))
        semantics = "untag: the manifest stays, by digest" if kept else "the manifest went with the tag"
        return _Result(
            "supported",
            f"DELETE {tag} accepted; {semantics}",
            observed={"semantics": "untag" if kept else "delete"},
        )

    def _delete_digest_tagged(self) -> _Result:
        doc = self.content.document("image-manifest", "delete-digest")
        tag = self._tag("deldigest")
        self._put(tag, doc)
        self._delete(str(doc.digest))
        if self._exists(str(doc.digest), expect_gone=True):
            return _Result("inconclusive", f"DELETE {doc.digest.short} was accepted but it still resolves")
        self.gone.add(str(doc.digest))
        tag_left = self._exists(tag, expect_gone=True)
        if not tag_left:
            self.gone.add(tag)
        return _Result(
            "supported",
            "DELETE by digest accepted; "
            + ("the tag still resolves" if tag_left else "its tag went with it"),
            observed={"removesTags": not tag_left},
        )

    def _delete_digest_untagged(self) -> _Result:
        doc = self.content.document("image-manifest", "delete-untagged")
        try:
            self._put(str(doc.digest), doc, tag=False)
        except CacheInspectError as exc:
            return _Result(
                "skipped", f"PUT by digest was refused, so no untagged manifest could be made ({exc.message})"
            )
        self._delete(str(doc.digest))
        if self._exists(str(doc.digest), expect_gone=True):
            return _Result("inconclusive", f"DELETE {doc.digest.short} was accepted but it still resolves")
        self.gone.add(str(doc.digest))
        return _Result("supported", "DELETE by digest of an untagged manifest accepted")

    def _settle_hub_403(self) -> None:
        """A 403 on a tagged digest delete means "still tagged" when an untagged one deletes fine [D1]."""
        tagged = self.results.get("delete-digest-tagged")
        untagged = self.results.get("delete-digest-untagged")
        if (
            tagged is not None
            and untagged is not None
            and tagged.status == "denied"
            and tagged.answer is not None
            and tagged.answer.status == 403
            and untagged.status == "supported"
        ):
            self.results["delete-digest-tagged"] = replace(
                tagged,
                status="unsupported",
                summary="403 while the manifest is tagged, yet an untagged manifest deletes fine: only "
                "untagged manifests can be deleted by digest",
                hint="remove the tag first (Docker Hub: Hub API or UI), then delete by digest",
            )

    def _token_scopes(self) -> _Result:
        granted = self.client.granted_actions(self.repo)
        if granted is None:
            return _Result(
                "skipped",
                "no decodable Bearer token for the repository (Basic, anonymous or opaque tokens): the "
                "requests above prove the rights",
            )
        needed = {"pull"} if self.opts.read_only else {"pull", "push"}
        if self.opts.delete:
            needed.add("delete")
        missing = sorted(needed - set(granted))
        observed = {"granted": ",".join(granted)}
        if missing:
            return _Result(
                "denied",
                f"the token grants {','.join(granted) or 'nothing'} on {self.repo.path}; missing {','.join(missing)}",
                observed=observed,
            )
        return _Result(
            "supported", f"the token grants {','.join(granted)} on {self.repo.path}", observed=observed
        )

    # -- cleanup

    def _cleanup(self) -> _Result:
        blob_reason = "blobs are left for the registry's garbage collection"
        uploaded = list(dict.fromkeys((repo, blob.digest) for repo, blob in self.uploaded))
        blob_leftovers = [Leftover("blob", f"{repo}@{digest}", blob_reason) for repo, digest in uploaded]
        if self.opts.read_only:
            return _Result("skipped", "--read-only: nothing was written")
        for identifier, digest in self.maybe.items():
            if self._exists(identifier, expect_gone=False):
                if ":" in identifier:
                    self.created_manifests.setdefault(digest, "uncertain")
                else:
                    self.created_tags[identifier] = digest
                    self.created_manifests.setdefault(digest, "uncertain")
        tags = [t for t in self.created_tags if t not in self.gone]
        manifests = [d for d in self.created_manifests if str(d) not in self.gone]
        if not tags and not manifests:
            self.leftovers = blob_leftovers
            if not uploaded:
                return _Result("skipped", "nothing was created")
            return _Result(
                "supported", f"nothing to remove; {len(uploaded)} blobs left for garbage collection"
            )
        if self.opts.keep:
            advice = cleanup_advice(self.family.family, self.results)
            self.leftovers = [
                *(Leftover("tag", f"{self.repo}:{t}", "kept (--keep)") for t in tags),
                *(Leftover("manifest", f"{self.repo}@{d}", "kept (--keep)") for d in manifests),
                *blob_leftovers,
            ]
            return _Result(
                "skipped",
                f"--keep: {len(tags)} tags and {len(manifests)} manifests left; removing them needs: {advice.text}",
            )
        transient = self._delete_all(tags, manifests)
        left_tags = [t for t in tags if self._exists(t, expect_gone=t in self.gone)]
        left_manifests = [d for d in manifests if self._exists(str(d), expect_gone=str(d) in self.gone)]
        self.leftovers = [
            *(Leftover("tag", f"{self.repo}:{t}", self._tag_reason(t)) for t in left_tags),
            *(
                Leftover(
                    "manifest",
                    f"{self.repo}@{d}",
                    self.leftover_reasons.get(str(d), "still resolves after cleanup"),
                )
                for d in left_manifests
            ),
            *blob_leftovers,
        ]
        removed = len(tags) - len(left_tags), len(manifests) - len(left_manifests)
        if not left_tags and not left_manifests:
            return _Result(
                "supported",
                f"removed {removed[0]} tags and {removed[1]} manifests; {len(uploaded)} blobs left for garbage collection",
            )
        return _Result(
            "inconclusive" if transient else "unsupported",
            f"{len(left_tags)} tags and {len(left_manifests)} manifests could not be removed "
            f"(removed {removed[0]} tags, {removed[1]} manifests)",
        )

    def _tag_reason(self, tag: str) -> str:
        if tag in self.leftover_reasons:
            return self.leftover_reasons[tag]
        manifest = self.leftover_reasons.get(str(self.created_tags[tag]))
        tag_check = self.results.get("delete-tag")
        if tag_check is not None and tag_check.status != "supported":
            why = f"; its manifest: {manifest}" if manifest else ""
            return f"tags cannot be deleted here (delete-tag: {tag_check.status}){why}"
        return (
            f"its manifest could not be deleted: {manifest}" if manifest else "still resolves after cleanup"
        )

    def _delete_all(self, tags: list[str], manifests: list[Digest]) -> bool:
        """Best-effort removal; returns whether a transient failure got in the way."""
        tag_ok = (
            self.results.get("delete-tag") is not None and self.results["delete-tag"].status == "supported"
        )
        transient = False

        def attempt(identifier: str) -> RegistryError | None:
            nonlocal transient
            try:
                self._delete(identifier)
            except RegistryError as exc:
                transient = transient or exc.temporary
                code = ", ".join(exc.codes)
                self.leftover_reasons[identifier] = (
                    f"DELETE answered {exc.status}{' ' + code if code else ''}"
                )
                return exc
            except CacheInspectError as exc:
                transient = transient or _is_transient(exc)
                self.leftover_reasons[identifier] = f"DELETE failed: {exc.message}"
                return None
            self.gone.add(identifier)
            self.leftover_reasons.pop(identifier, None)
            return None

        for digest in manifests:
            error = attempt(str(digest))
            if error is None or not tag_ok:
                continue
            if error.status == 403 or "GOOGLE_MANIFEST_DANGLING_TAG" in error.codes:
                for tag in [t for t, d in self.created_tags.items() if d == digest and t not in self.gone]:
                    attempt(tag)
                attempt(str(digest))
        if tag_ok:
            for tag in tags:
                if tag not in self.gone and self.created_tags[tag] not in self.gone:
                    attempt(tag)
        # a digest delete removes the tags on it (distribution, Quay, ACR, ECR): check them as "expected gone"
        for tag in tags:
            if str(self.created_tags[tag]) in self.gone:
                self.gone.add(tag)
        return transient

    # -- the run

    def run(self) -> list[Check]:
        writes = not self.opts.read_only
        self._run("discovery", self._discovery, "discovery")
        self._run("auth", self._auth, "auth", requires=("discovery",))
        self._run("repository", self._repository, "repository", requires=("auth",))
        if self.ref is not None:
            self._run("existing-cache", self._existing_cache, "manifest-read", requires=("repository",))
        else:
            self._skip("existing-cache", "no cache ref given (REPO:TAG or --cache-to ref=…)")
        if not writes:
            self._read_only_checks()
        else:
            self._write_checks()
        self._run("tags-list", self._tags_list, "tags", requires=("repository",))
        self._run("tags-n", self._tags_n, "tags", requires=("tags-list",))
        self._run("tags-link", self._tags_link, "tags", requires=("tags-list",))
        self._run("catalog", self._catalog, "catalog", requires=("auth",))
        self._run("referrers", self._referrers, "referrers", requires=("repository",))
        if writes and self.opts.delete:
            need = ("manifest-image",)
            why = {"manifest-image": "needs an accepted image manifest to delete"}
            self._run("delete-tag", self._delete_tag, "delete-tag", requires=need, why=why)
            self._run(
                "delete-digest-tagged", self._delete_digest_tagged, "delete-digest", requires=need, why=why
            )
            self._run(
                "delete-digest-untagged",
                self._delete_digest_untagged,
                "delete-untagged",
                requires=need,
                why=why,
            )
            self._settle_hub_403()
        else:
            reason = "--read-only" if not writes else "needs --delete"
            for check_id in ("delete-tag", "delete-digest-tagged", "delete-digest-untagged"):
                self._skip(check_id, reason)
        self._run("token-scopes", self._token_scopes, "auth", requires=("auth",))
        self._run("cleanup", self._cleanup, "cleanup")
        return [self.results[c.id] for c in CHECKS if c.id in self.results]

    def _write_checks(self) -> None:
        self._run("blob-upload", self._blob_upload, "blob-upload", requires=("repository",))
        if self.opts.upload_variants:
            self._run("blob-upload-single-post", self._single_post, "blob-upload", requires=("blob-upload",))
            self._run("blob-upload-chunked", self._chunked, "blob-upload", requires=("blob-upload",))
        else:
            self._skip("blob-upload-single-post", "optional: --upload-variants")
            self._skip("blob-upload-chunked", "optional: --upload-variants")
        if self.opts.mount_from is not None:
            self._run("blob-mount", self._mount, "mount", requires=("blob-upload",))
        else:
            self._skip("blob-mount", "optional: --mount-from REPO")
        why = {"blob-upload": "the blobs it names could not be uploaded"}
        for form in FORM_ORDER:
            self._run(
                FORM_CHECKS[form],
                partial(self._shape, form),
                "manifest-put",
                requires=("blob-upload",),
                why=why,
            )
        self._run(
            "manifest-migration",
            self._migration,
            "manifest-put",
            requires=("manifest-index", "manifest-image"),
            why={
                "manifest-index": "the index form is not accepted here, so no cache tag can change form",
                "manifest-image": "the image-manifest form is not accepted here",
            },
        )
        if self.opts.near_limit:
            self._run(
                "manifest-near-limit",
                self._near_limit,
                "manifest-put",
                requires=("manifest-image",),
                why={"manifest-image": "the image-manifest form is not accepted here"},
            )
        else:
            self._skip("manifest-near-limit", "disabled (--no-near-limit)")

    def _read_only_checks(self) -> None:
        for check_id in ("blob-upload", "blob-upload-single-post", "blob-upload-chunked", "blob-mount"):
            self._skip(check_id, "--read-only")
        existing = self.results.get("existing-cache")
        for form in FORM_ORDER:
            check_id = FORM_CHECKS[form]
            if existing is not None and existing.status == "supported" and self.existing_form == form:
                self._retries = 0
                self._record(
                    check_id,
                    _Result(
                        "supported",
                        f"the registry stores a cache of this form at {self.ref}",
                        basis="existing-cache",
                    ),
                )
            else:
                self._skip(check_id, "--read-only: not pushed")
        self._skip("manifest-migration", "--read-only")
        self._skip("manifest-near-limit", "--read-only")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_probe(
    client: RegistryClient,
    options: ProbeOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProbeReport:
    """Probe ``options.repository`` and judge the results (and ``options.cache_to``)."""
    started = now()
    clock = time.monotonic()
    before = client.request_count
    prober = _Prober(client, options, sleep=sleep, now=now)
    with client.on_retry(prober.count_wait):  # the client's own retries count into the current check
        checks = prober.run()
    results = {c.id: c for c in checks}
    family = prober.family.family
    recommendation = recommend(family, results, prober.plan, options.repository)
    verdict = evaluate_cache_to(prober.plan, family, results, options.repository) if prober.plan else None
    exit_code, failed_by = judge_exit(verdict, recommendation, results)
    return ProbeReport(
        target=str(options.repository),
        mode="read-only" if options.read_only else "write",
        run_id=prober.run_id,
        family=prober.family,
        checks=tuple(checks),
        recommendation=recommendation,
        cache_to=verdict,
        leftovers=tuple(prober.leftovers),
        exit_code=exit_code,
        started_at=_iso(started),
        duration_ms=int((time.monotonic() - clock) * 1000),
        requests=client.request_count - before,
        failed_by=failed_by,
    )


_VERDICT_STATUS: Mapping[str, Status] = MappingProxyType(
    {
        "yes": "supported",
        "likely": "supported",
        "partial": "skipped",
        "no": "unsupported",
        "unknown": "skipped",
    }
)


def offline_report(
    target: str,
    *,
    family: str | None = None,
    cache_to: str | None = None,
    buildkit_version: str = "latest",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProbeReport:
    """What the knowledge base says about ``target`` (a host or repository), without any request."""
    if family is not None and family not in FAMILY_IDS:
        raise UsageError(f"--family {family!r}: expected one of {', '.join(FAMILY_IDS)}")
    host = target.strip().lower()
    repo: Repository | None = None
    if "/" in target:
        repo = parse_reference(target).repository
        host = repo.registry
    match = detect_family(host, override=family)
    fam = match.family
    checks: list[Check] = []
    for spec in CHECKS:
        if spec.topic is None:
            continue
        facts = fam.facts_about(spec.topic)
        if not facts or any(c.documented == facts for c in checks):
            continue
        fact = facts[0]
        checks.append(
            Check(
                id=spec.id,
                group=spec.group,
                title=spec.title,
                status=_VERDICT_STATUS[fact.verdict],
                summary=f"documented ({fact.verdict}): {fact.text}",
                basis="documented",
                documented=facts,
            )
        )
    results = {c.id: c for c in checks}
    plan = (
        plan_cache_to(parse_cache_to(cache_to), parse_buildkit_version(buildkit_version))
        if cache_to is not None
        else None
    )
    recommendation = recommend(fam, results, plan, repo)
    verdict = evaluate_cache_to(plan, fam, results, repo) if plan is not None else None
    exit_code, failed_by = judge_exit(verdict, recommendation, results)
    return ProbeReport(
        target=str(repo) if repo is not None else host,
        mode="offline",
        run_id=None,
        family=match,
        checks=tuple(checks),
        recommendation=recommendation,
        cache_to=verdict,
        leftovers=(),
        exit_code=exit_code,
        started_at=_iso(now()),
        duration_ms=0,
        failed_by=failed_by,
    )
