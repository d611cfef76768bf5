"""``gc`` on GHCR: a ``DeleteBackend`` on GitHub's Packages REST API, and untagged-cache planning.

ghcr.io refuses ``DELETE /v2/<name>/manifests/…`` (405 UNSUPPORTED, spec registries.md §3). On GHCR
a *package version* is one manifest digest with all its tags (``ghcr.GhcrClient``), so:

* **delete a manifest** = delete the version whose ``name`` is that digest. The versions are listed
  once per run (by the untagged scan when planning, else on ``capabilities()``); a digest that the
  listing does not have is looked up once more in a fresh listing, and a version that is gone by
  then counts as already deleted;
* **the last look**: right before each version DELETE the version is read again (one GET; a
  placeholder found in a listing just now is not read twice). It is deleted only if every tag GitHub
  lists on it now is one the plan deletes on that digest (``expect``; without a plan: one it had when
  listed) — a version that gained a tag since planning is left alone and reported ``kept``
  (``ManifestKept``), one that is gone counts as already deleted. The window that remains is that
  GET and the DELETE after it (GitHub has no conditional delete);
* **the last version**: GitHub refuses to delete a package's last version (400, ``LastVersionRefused``).
  When the version about to go is the only one (a fresh listing says so), it is kept and reported
  (``kept``: "last version of the package", exit 0), unless ``delete_empty_packages`` deletes the
  package itself (restorable by GitHub for 30 days);
* **untag one tag** of a manifest other tags still need = ``PlaceholderPusher`` re-points the tag to
  a unique placeholder through the registry API (pushing works on GHCR), then the placeholder's
  version is deleted through REST. GitHub lists versions newest first: the placeholder is found on
  the first page, after a short wait if GitHub has not listed it yet;
* **capabilities** come from the REST answers: resolving the package and listing its versions are
  harmless calls (a 401/403/404 there raises, with GitHub's permission explained). No harmless call
  tells whether the token may *delete*; the first deletion does. When it is refused (401, 403, or
  GitHub's 404 for a token that may not manage the package) before anything was deleted, the
  backend raises ``DeleteDenied`` (exit 4) and the executor stops: nothing was deleted. The answer
  is classified once: every later call raises again without a request.

Deletions are paced by ``GhcrClient`` to GitHub's documented limits (one second apart, 80 a minute,
500 an hour), slowed further when the primary limit's ``x-ratelimit-remaining`` runs low; ``pacing_note``
says in the plan how long a plan's deletions take at that pace. They go one at a time, never
concurrently: GitHub's "Best practices for using the REST API" ask for serial requests ("Avoid
concurrent requests") and a second between mutating ones, so a concurrent DELETE could only meet
the secondary limit sooner. Rate
limits and other errors surface as ``inspector.registry.github_packages`` raises them: short waits are slept there; a
long one is ``RateLimited``, which stops the executor's run (the rest is reported as not attempted,
exit 7; a rerun finishes).

``plan_untagged`` adds the untagged versions whose manifest is a BuildKit cache and that no image
index lists (``gc.untagged.select_untagged_caches``: multi-arch children and attestation manifests are
never selected) to a gc ``Inventory``; the planner deletes them (rule ``untagged-cache``) unless a
tag resolves to them. ``recheck_untagged`` repeats the selection before a reviewed plan
(``--apply-plan``) is applied, and drops what is no longer selected.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from inspector.errors import CacheInspectError, Denied, Unauthorized, UsageError
from inspector.gc.backends.base import (
    Capabilities,
    DeleteDenied,
    ManifestKept,
    PlaceholderPusher,
    Untagged,
    UntagIncomplete,
)
from inspector.gc.inventory import Inventory, add_untagged
from inspector.gc.plan import RepositoryPlan, drop_unselected
from inspector.gc.untagged import CacheSelection, select_untagged_caches
from inspector.oci.digest import Digest
from inspector.oci.models import ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.github_packages import (
    TOKEN_HINT,
    DeleteOutcome,
    GhcrClient,
    LastVersionRefused,
    Pace,
    Package,
    PackageVersion,
    backlog_seconds,
    format_seconds,
)

__all__ = [
    "LAST_VERSION",
    "GhcrBackend",
    "pacing_note",
    "package_of",
    "plan_untagged",
    "recheck_untagged",
    "rest_deletions",
]

#: Waits (seconds) for GitHub to list a placeholder version that was just pushed.
_PLACEHOLDER_WAITS = (1.0, 2.0, 4.0)
#: Why a package's only version stays (the ``kept`` detail).
LAST_VERSION = "last version of the package"


def package_of(repository: Repository, override: str | None = None) -> tuple[str, str]:
    """``(owner, name)`` of the GitHub package: ``override`` (``OWNER/NAME``), else the repository path
    (``ghcr.io/OWNER/NAME``; NAME may contain ``/``)."""
    text = override if override is not None else repository.path
    owner, _, name = text.partition("/")
    if not owner or not name or name.startswith("/") or name.endswith("/"):
        where = f"package {override!r}" if override is not None else f"{repository}"
        raise UsageError(f"{where}: expected OWNER/NAME for the GitHub package")
    return owner, name


class GhcrBackend:
    """Deletes package versions through the GitHub REST API; not thread-safe (the executor is sequential)."""

    def __init__(
        self,
        client: RegistryClient,
        repository: Repository,
        github: GhcrClient,
        *,
        package: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
        sleep: Callable[[float], None] = time.sleep,
        delete_empty_packages: bool = False,
    ) -> None:
        self.client = client
        self.repository = repository
        self.github = github
        self.delete_empty_packages = delete_empty_packages
        self.owner, self.name = package_of(repository, package)
        self._allowed: dict[Digest, frozenset[str]] | None = None  # expect(plan)
        self.placeholders = PlaceholderPusher(client, repository, clock=clock, nonce=nonce)
        self._sleep = sleep
        self._package: Package | None = None
        self._versions: dict[Digest, PackageVersion] | None = None
        self._capabilities: Capabilities | None = None
        self._denied: CacheInspectError | None = None
        self._verified = False  # a deletion succeeded: the token may delete
        self._lock = threading.Lock()

    # -- reads -------------------------------------------------------------------------------------

    def package(self) -> Package:
        """The package, its owner kind decided by the API (once)."""
        if self._package is None:
            self._package = self.github.package(self.owner, self.name, host=self.repository.registry)
        return self._package

    def expect(self, plan: RepositoryPlan) -> None:
        """The tags ``plan`` deletes on each manifest it deletes whole: no other tag may be on a version
        when it is deleted (the last look). Placeholders and manifests outside the plan keep the rule
        "no tag it did not have when listed"."""
        self._allowed = {m.digest: frozenset(m.delete_tags) for m in plan.manifests if m.delete_manifest}

    def versions(self) -> list[PackageVersion]:
        """Every version of the package, listed once per run."""
        if self._versions is None:
            self._versions = {v.digest: v for v in self.github.versions(self.package())}
        return list(self._versions.values())

    def untagged_caches(self) -> tuple[CacheSelection, Mapping[Digest, ManifestDocument]]:
        """``select_untagged_caches`` over the versions (one manifest GET each), and the manifests read."""
        documents: dict[Digest, ManifestDocument] = {}
        lock = threading.Lock()

        def fetch(digest: Digest) -> ManifestDocument:
            document = self.client.get_manifest(self.repository.at(digest))
            with lock:
                documents[digest] = document
            return document

        selection = select_untagged_caches(self.versions(), fetch, map_bounded=self.client.map_bounded)
        return selection, documents

    # -- DeleteBackend -----------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        with self._lock:
            if self._capabilities is None:
                package = self.package()
                count = len(self.versions())
                self._capabilities = Capabilities(
                    "ghcr",
                    True,
                    "placeholder",
                    True,
                    f"GitHub Packages REST API ({package.scope} package {package.owner}/{package.name}, "
                    f"{count} versions): a version (a manifest with all its tags) is deleted by id; "
                    "a single tag is re-pointed to a placeholder whose version is then deleted",
                )
            return self._capabilities

    def untag(self, tag: str, digest: Digest) -> Untagged:
        self._check_denied()
        try:
            return self.placeholders.untag(tag, digest, self._delete_placeholder)
        except UntagIncomplete as exc:
            if self._denied is None:
                raise
            raise DeleteDenied(
                f"{self._denied.message}; {tag} now points at placeholder {exc.placeholder.digest.short}, "
                "which the next run with a token that can delete finishes",
                hint=self._denied.hint,
                placeholder=exc.placeholder,
            ) from None

    def delete_manifest(self, digest: Digest) -> bool:
        """Delete the version named ``digest``; False when no such version exists (any more)."""
        self._check_denied()
        self.versions()
        assert self._versions is not None
        version = self._versions.get(digest)
        if version is None:  # not there when listed: look once more, it may have been pushed since
            self._versions = {v.digest: v for v in self.github.versions(self.package())}
            version = self._versions.get(digest)
            if version is None:
                return False
        return self._delete(version)

    # -- internals ---------------------------------------------------------------------------------

    def _delete_placeholder(self, digest: Digest) -> bool:
        """Delete a placeholder pushed just now: search the newest versions first, waiting for GitHub."""
        self._check_denied()
        for wait in (*_PLACEHOLDER_WAITS, None):
            version = self._search(digest)
            if version is not None:  # listed just now: that listing is the last look
                return self._delete(version, listed_now=True)
            if wait is not None:
                self._sleep(wait)
        raise CacheInspectError(
            f"GitHub lists no package version for placeholder {digest.short} of {self.package()}"
        )

    def _search(self, digest: Digest) -> PackageVersion | None:
        for version in self.github.iter_versions(self.package()):
            if self._versions is not None:
                self._versions.setdefault(version.digest, version)
            if version.digest == digest:
                return version
        return None

    def _delete(self, version: PackageVersion, *, listed_now: bool = False) -> bool:
        """The last look (``_look``), then the version's DELETE, or the package's when it is the last."""
        current = self._look(version, listed_now=listed_now)
        if current is None:
            self._forget(version.digest)
            return False
        if self._is_last(current, relist=False):
            return self._delete_package(current)
        try:
            outcome = self._guarded(lambda: self.github.delete_version(self.package(), current.id))
        except LastVersionRefused:  # the other versions went meanwhile (another run)
            if not self._is_last(current, relist=True):
                raise
            return self._delete_package(current)
        self._forget(version.digest)
        return outcome == "deleted"

    def _look(self, version: PackageVersion, *, listed_now: bool) -> PackageVersion | None:
        """``version`` as GitHub has it now (None: gone); ``ManifestKept`` when it gained a tag."""
        current = version if listed_now else self.github.get_version(self.package(), version.id)
        if current is None or current.deleted_at is not None:
            return None
        allowed = self._allowed.get(version.digest) if self._allowed is not None else None
        if allowed is None:
            allowed = frozenset(version.tags)
        extra = sorted(set(current.tags) - allowed)
        if current.digest != version.digest or extra:
            raise ManifestKept(
                f"GitHub lists {', '.join(extra) or 'another manifest'} on package version {version.id} "
                "now, which the plan does not delete: left alone"
            )
        return current

    def _is_last(self, version: PackageVersion, *, relist: bool) -> bool:
        """Whether ``version`` is the package's only version; a fresh listing decides (new ones count)."""
        if not relist and self._versions is not None and len(self._versions) > 1:
            return False
        self._versions = {v.digest: v for v in self.github.versions(self.package())}
        return set(self._versions) == {version.digest}

    def _delete_package(self, version: PackageVersion) -> bool:
        """The last version goes only with its package (``delete_empty_packages``); else it is kept."""
        if not self.delete_empty_packages:
            raise ManifestKept(
                f"{LAST_VERSION} (version {version.id}): GitHub refuses to delete a package's last version; "
                "--delete-empty-packages deletes the package instead"
            )
        outcome = self._guarded(lambda: self.github.delete_package(self.package()))
        self._versions = {}
        return outcome == "deleted"

    def _guarded(self, delete: Callable[[], DeleteOutcome]) -> DeleteOutcome:
        """Run one deletion; the first refusal of the run becomes ``DeleteDenied`` (nothing was deleted)."""
        try:
            outcome = delete()
        except (Unauthorized, Denied) as exc:
            if self._verified:  # deletions worked before in this run: this one is a failure of its own
                raise
            self._denied = DeleteDenied(
                f"{self.repository}: the GitHub token may not delete versions of {self.package()} "
                f"({exc.message}); nothing was deleted",
                hint=exc.hint or TOKEN_HINT,
            )
            raise self._denied from None
        if outcome == "deleted":
            self._verified = True
        return outcome

    def _forget(self, digest: Digest) -> None:
        if self._versions is not None:
            self._versions.pop(digest, None)

    def _check_denied(self) -> None:
        if self._denied is not None:
            raise DeleteDenied(self._denied.message, hint=self._denied.hint)


def _detail(version: PackageVersion) -> str:
    updated = version.updated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return f"package version {version.id}, updated {updated} UTC; no image index lists it"


def _exclusion_notes(selection: CacheSelection) -> list[str]:
    """One note counting the untagged versions the selection keeps, by kind of reason."""
    counts = {"listed by an image index (multi-arch children, attestations)": 0, "not BuildKit caches": 0}
    other: list[str] = []
    for exclusion in selection.excluded:
        if exclusion.version.tagged:
            continue
        if exclusion.reason.startswith(("listed by image index", "attestation manifest in")):
            counts["listed by an image index (multi-arch children, attestations)"] += 1
        elif exclusion.reason.startswith("not a BuildKit cache"):
            counts["not BuildKit caches"] += 1
        else:
            other.append(f"{exclusion.version.digest.short} ({exclusion.reason})")
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    parts += other
    if not parts:
        return []
    return [f"untagged versions kept: {'; '.join(parts)}"]


def rest_deletions(plan: RepositoryPlan) -> int:
    """REST DELETEs the plan costs on GHCR: one per manifest deleted whole, one per placeholder."""
    return sum(1 if m.delete_manifest else len(m.delete_tags) for m in plan.manifests)


def pacing_note(plan: RepositoryPlan, pace: Pace) -> str | None:
    """How long the plan's deletions take at GitHub's pace (None when it deletes nothing)."""
    count = rest_deletions(plan)
    if count < 2:  # one deletion waits for nothing
        return None
    return (
        f"GitHub pacing: {count} package-version deletions take at least "
        f"{format_seconds(backlog_seconds(count, pace))} at GitHub's documented limits "
        f"({pace.min_interval:g} s apart, at most {pace.per_minute} a minute and {pace.per_hour} an hour)"
    )


def plan_untagged(backend: GhcrBackend, inventory: Inventory) -> Inventory:
    """``inventory`` plus the package's untagged caches (``gc --untagged``); reads every version's manifest."""
    selection, documents = backend.untagged_caches()
    found = [(documents[v.digest], _detail(v)) for v in selection.selected if v.digest in documents]
    return add_untagged(inventory, found, _exclusion_notes(selection))


def recheck_untagged(plan: RepositoryPlan, backend: GhcrBackend) -> RepositoryPlan:
    """``plan`` without the untagged caches the selection no longer picks (before ``--apply-plan``).

    A reviewed plan may be old, or edited: an untagged entry is deleted only if, now, it is still an
    untagged version whose manifest is a cache that no image index lists.
    """
    if not plan.untagged_deletions:
        return plan
    selection, _ = backend.untagged_caches()
    selected = {v.digest for v in selection.selected}
    reasons = {e.version.digest: e.reason for e in selection.excluded}
    return drop_unselected(plan, selected, reasons, "no such package version")
