"""GCR and Artifact Registry: the ``manifest`` map their ``tags/list`` answer carries.

Beside the standard ``{"name", "tags"}``, Google's registries answer ``GET /v2/<name>/tags/list`` with
a map of every manifest in the repository, tagged or not (spec registries.md §2 "GCR" [C8])::

    "manifest": {"sha256:…": {"imageSizeBytes": "1234", "mediaType": "…", "tag": ["a"],
                              "timeCreatedMs": "1519762343000", "timeUploadedMs": "1519762343000"}}

The shapes are those go-containerregistry's ``pkg/v1/google/list.go`` decodes: sizes and times are
decimal strings of milliseconds, except ``timeUploadedMs``, which GCR sends as a string and Artifact
Registry as a number (its ``rawManifestInfo`` comment); both are read. ``timeCreatedMs`` comes from
the image config (0 for a cache, whose config has no ``created``); ``timeUploadedMs`` is when the
registry received the manifest: the age gc uses.

Credentials: with none configured for a Google host, ``default_credentials`` asks Google's
Application Default Credentials through ``google-auth`` (optional: ``pip install 'cacheinspect[gcp]'``,
imported only then) for an access token, sent as user ``oauth2accesstoken`` as ``gcloud auth
configure-docker`` does (registries.md §4 [C13]). Without google-auth:
``gcloud auth print-access-token | cacheinspect … -u oauth2accesstoken --password-stdin``.

Packages: ``iter_packages`` lists the images (packages) of one Artifact Registry repository through its
REST API, ``GET {API}/v1/projects/{project}/locations/{location}/repositories/{repository}/packages``
("Method: projects.locations.repositories.packages.list", at most 1,000 a page, ``nextPageToken`` to
go on; a package ``name`` is ``projects/…/packages/{PACKAGE}``, a nested image path URL-encoded,
``a%2Fb``), sent the same access token as a ``Bearer``. The API's address and a location for a host
that does not name one are gcloud's own settings: ``CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY``
and ``CLOUDSDK_ARTIFACTS_LOCATION``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

from inspector.errors import AuthError, InvalidContent
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.reference import Repository
from inspector.registry.catalog import MAX_CATALOG_PAGES, MAX_REPOSITORIES
from inspector.registry.client import TAG_PAGE_LIMIT, RegistryClient
from inspector.registry.credentials import Credentials

__all__ = [
    "ADC_SOURCE",
    "API_URL_ENV",
    "ARTIFACT_REGISTRY_API",
    "LOCATION_ENV",
    "PACKAGES_PAGE",
    "TOKEN_HINT",
    "GoogleManifest",
    "default_credentials",
    "is_google_host",
    "iter_packages",
    "location_of",
    "parse_manifest_map",
    "parse_packages_page",
    "read_manifest_map",
]

ADC_SOURCE = "Google Application Default Credentials (google-auth)"
TOKEN_HINT = (
    "gcloud auth print-access-token | cacheinspect … --username oauth2accesstoken --password-stdin, "
    "or pip install 'cacheinspect[gcp]' to use Application Default Credentials"
)
ARTIFACT_REGISTRY_API = "https://artifactregistry.googleapis.com"
API_URL_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY"  # gcloud's api_endpoint_overrides
LOCATION_ENV = "CLOUDSDK_ARTIFACTS_LOCATION"  # gcloud's artifacts/location
PACKAGES_PAGE = 1000  # the most packages.list returns a page (its pageSize reference)
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MANIFESTS = 1_000_000  # entries one listing may hold, as for tags (``client.MAX_TAGS``)


@dataclass(frozen=True, slots=True)
class GoogleManifest:
    """One entry of the ``manifest`` map: a manifest of the repository, with its tags (maybe none)."""

    digest: Digest
    tags: tuple[str, ...]
    media_type: str
    uploaded: datetime | None  # timeUploadedMs; None when absent or 0
    created: datetime | None  # timeCreatedMs (from the image config; 0 for caches)
    size: int | None

    @property
    def tagged(self) -> bool:
        return bool(self.tags)


def _millis(value: Any, where: str) -> datetime | None:
    """A time in ms since the epoch, sent as a decimal string (GCR) or a number (AR); 0 is unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InvalidContent(f"{where}: {value[:40]!r} is not a number of milliseconds")
        ms = int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        ms = value
    else:
        raise InvalidContent(f"{where}: expected milliseconds as a string or a number")
    if ms == 0:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise InvalidContent(f"{where}: {ms} ms is out of range") from None


def parse_manifest_map(raw: bytes, repo: Repository) -> dict[Digest, GoogleManifest]:
    """The ``manifest`` map of one ``tags/list`` page (empty when the registry sends none)."""
    what = f"tag list of {repo}"
    doc = gojson.load(raw, what)
    found = gojson.fields(doc, ("manifest",), what).get("manifest")
    if found is None:
        return {}
    if not isinstance(found, gojson.Obj):
        raise InvalidContent(f"{what}.manifest: expected an object")
    manifests: dict[Digest, GoogleManifest] = {}
    for key, entry in found:
        where = f"{what}.manifest[{key[:80]!r}]"
        digest = gojson.as_digest(key, where)
        f = gojson.fields(
            entry, ("tag", "mediaType", "timeUploadedMs", "timeCreatedMs", "imageSizeBytes"), where
        )
        tags = tuple(gojson.as_str(t, f"{where}.tag") for t in gojson.as_list(f.get("tag"), f"{where}.tag"))
        size_text = f.get("imageSizeBytes")
        size = None
        if isinstance(size_text, str) and size_text.isascii() and size_text.isdigit():
            size = int(size_text)
        elif isinstance(size_text, int) and not isinstance(size_text, bool):
            size = size_text
        manifests[digest] = GoogleManifest(
            digest,
            tags,
            gojson.as_str(f.get("mediaType"), f"{where}.mediaType"),
            _millis(f.get("timeUploadedMs"), f"{where}.timeUploadedMs"),
            _millis(f.get("timeCreatedMs"), f"{where}.timeCreatedMs"),
            size,
        )
    return manifests


def read_manifest_map(client: RegistryClient, repo: Repository) -> Mapping[Digest, GoogleManifest]:
    """Every manifest of ``repo`` as the ``tags/list`` manifest map lists it.

    Whether Google pages this answer is unknown (registries.md §2): ``Link`` pages are followed with
    the tag listing's caps and their maps merged; more than ``MAX_MANIFESTS`` entries is ``InvalidContent``.
    """
    manifests: dict[Digest, GoogleManifest] = {}
    for raw in client.iter_tag_list_bodies(repo):
        manifests.update(parse_manifest_map(raw, repo))
        if len(manifests) > MAX_MANIFESTS:
            raise InvalidContent(
                f"list tags of {repo}: the manifest map lists more than {MAX_MANIFESTS:,} manifests"
            )
    return manifests


def is_google_host(host: str) -> bool:
    """GCR (``gcr.io``, ``*.gcr.io``) or Artifact Registry (``*-docker.pkg.dev``)."""
    name = host.split(":", 1)[0].lower()
    return name == "gcr.io" or name.endswith((".gcr.io", "-docker.pkg.dev"))


def default_credentials(host: str) -> Credentials | None:
    """An ADC access token for a Google ``host`` as user ``oauth2accesstoken``; None for another host,
    without google-auth, or when no ADC is configured (anonymous then; a 401 names ``TOKEN_HINT``).

    A configured ADC that fails to give a token (refused refresh, unreachable token endpoint) is
    ``AuthError``: better one clear line than an anonymous request refused with a vaguer one.
    """
    if not is_google_host(host):
        return None
    try:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests
    except ImportError:
        return None
    found: Any  # google-auth's Credentials (untyped)
    try:
        found, _project = google.auth.default(scopes=list(_SCOPES))
    except google.auth.exceptions.DefaultCredentialsError:
        return None
    try:
        found.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.GoogleAuthError as exc:
        said = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise AuthError(f"{ADC_SOURCE}: no access token for {host}: {said}", hint=TOKEN_HINT) from None
    token = getattr(found, "token", None)
    if not isinstance(token, str) or not token:
        raise AuthError(f"{ADC_SOURCE}: no access token for {host}", hint=TOKEN_HINT)
    return Credentials(username="oauth2accesstoken", password=token, source=ADC_SOURCE)


def location_of(host: str, env: Mapping[str, str]) -> str | None:
    """The Artifact Registry location a host names (``LOCATION-docker.pkg.dev``); for another host (a
    test endpoint under ``backend = "google"``) gcloud's ``artifacts/location`` setting, if any."""
    name = host.split(":", 1)[0].lower()
    if name.endswith("-docker.pkg.dev"):
        return name.removesuffix("-docker.pkg.dev")
    return env.get(LOCATION_ENV, "").strip() or None


def parse_packages_page(raw: bytes, parent: str, what: str) -> tuple[list[str], str]:
    """The package (image) names of one ``packages.list`` body, URL-decoded, and its ``nextPageToken``."""
    doc = gojson.load(raw, what)
    f = gojson.fields(doc, ("packages", "nextPageToken"), what)
    names = []
    for entry in gojson.as_list(f.get("packages"), f"{what}.packages"):
        full = gojson.as_str(gojson.fields(entry, ("name",), what).get("name"), f"{what}.packages.name")
        package = full.removeprefix(f"{parent}/packages/")
        if package == full or not package or "/" in package:
            raise InvalidContent(f"{what}: package {full[:120]!r} is not under {parent}/packages/")
        names.append(unquote(package, errors="strict"))
    token = f.get("nextPageToken")
    return names, gojson.as_str(token, f"{what}.nextPageToken") if token is not None else ""


def iter_packages(
    client: RegistryClient,
    api_url: str,
    project: str,
    location: str,
    repository: str,
    *,
    token: str | None,
    page_size: int | None = None,
) -> Iterator[str]:
    """Every package (image path below ``PROJECT/REPOSITORY``) of an Artifact Registry repository, page by
    page; a page token seen before, more than ``MAX_CATALOG_PAGES`` pages or ``MAX_REPOSITORIES`` names
    is ``InvalidContent``, as for ``_catalog``; each body is capped at ``TAG_PAGE_LIMIT``."""
    parent = f"projects/{project}/locations/{location}/repositories/{repository}"
    base = f"{api_url.rstrip('/')}/v1/{quote(parent)}/packages"
    what = f"list the packages of {parent} (Artifact Registry API)"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    seen: set[bytes] = set()
    count = 0
    page_token = ""
    while True:
        query = {
            "pageSize": str(page_size or PACKAGES_PAGE),
            **({"pageToken": page_token} if page_token else {}),
        }
        _, raw = client.send(
            "GET", f"{base}?{urlencode(query)}", what=what, headers=headers, limit=TAG_PAGE_LIMIT
        )
        names, page_token = parse_packages_page(raw, parent, what)
        count += len(names)
        if count > MAX_REPOSITORIES:
            raise InvalidContent(f"{what}: the API lists more than {MAX_REPOSITORIES:,} packages")
        yield from names
        if not page_token:
            return
        key = hashlib.sha256(page_token.encode()).digest()
        if key in seen:
            raise InvalidContent(f"{what}: the API sent a page token it had sent before (the pages loop)")
        if len(seen) >= MAX_CATALOG_PAGES:
            raise InvalidContent(f"{what}: the API sent more than {MAX_CATALOG_PAGES:,} pages")
        seen.add(key)
