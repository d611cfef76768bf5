"""Reaching the registry: the anonymous challenge, logging in, the repository, an existing cache, token scopes."""

from __future__ import annotations

from inspector.cache.fetch import IMPORT_LIMIT, Form, find_cache_config, form_of
from inspector.errors import NotFound
from inspector.probe.classify import Answer
from inspector.probe.kb import detect_family
from inspector.probe.model import CONTENT_TYPE_FORMS, FORM_NAMES
from inspector.probe.requests import anonymous_ping
from inspector.probe.session import ProbeSession, Result, count
from inspector.registry.auth import parse_www_authenticate

__all__ = ["auth", "discovery", "existing_cache", "repository", "token_scopes"]

_NO_API = "no registry API at this address (wrong host, port or path?)"


def discovery(s: ProbeSession) -> Result:
    """``GET /v2/`` without credentials: the challenge (which also names the family) and the API version."""
    attempt = 0
    while True:
        response = anonymous_ping(s.client, s.repo.registry)
        if response.status_code in (429, 500, 502, 503, 504) and attempt < s.opts.retries:
            s.retries += 1
            s.sleep(s.backoff.backoff(attempt))
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
        return Result("config-error", f"{_NO_API}: GET /v2/ answered 200 with a web page (text/html)", answer)
    if status == 200:
        s.anonymous = True
        return Result(
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
            if s.opts.family is None:
                s.family = detect_family(s.repo.registry, challenge=f"{realm} {service}")
            return Result(
                "supported",
                f"401 with a Bearer challenge (realm {realm}, service {service or '-'}){version}",
                answer,
                observed={"challenge": "bearer", "realm": realm, "service": service, "apiVersion": api},
            )
        if basic is not None:
            return Result(
                "supported",
                f"401 with a Basic challenge (realm {basic.params.get('realm', '-')}){version}",
                answer,
                observed={"challenge": "basic", "realm": basic.params.get("realm"), "apiVersion": api},
            )
        return Result(
            "denied", "401 without a usable WWW-Authenticate challenge: clients cannot log in", answer
        )
    if status in (429, 500, 502, 503, 504):
        return Result("inconclusive", f"GET /v2/ kept answering {status}", answer)
    # The distribution spec (API Version Check): 404 "or other unexpected status" means the endpoint does not
    # implement the V2 API, i.e. this address is not a registry.
    return Result("config-error", f"{_NO_API}: GET /v2/ answered {status}", answer)


def auth(s: ProbeSession) -> Result:
    s.client.ping(s.repo.registry)
    if s.anonymous:
        return Result("supported", "no authentication required")
    challenge = s.results["discovery"].observed.get("challenge")
    return Result("supported", f"GET /v2/ with credentials answered 200 ({challenge} authentication)")


def repository(s: ProbeSession) -> Result:
    pages = s.read_all_tags()
    tags = len(s.all_tags)
    return Result(
        "supported",
        f"{s.repo} exists ({count(tags, 'tag')} in {count(pages, 'page')})",
        observed={"tags": tags, "pages": pages},
    )


def existing_cache(s: ProbeSession) -> Result:
    ref = s.ref
    assert ref is not None
    if ref.repository != s.repo:
        return Result("skipped", f"{ref} is not in {s.repo}: not read")
    try:
        head = s.client.head_manifest(ref)
    except NotFound:
        return Result("skipped", f"no cache at {ref} yet: the first export creates it")
    observed: dict[str, str | int | bool | None] = {"digest": str(head.digest), "size": head.size}
    form: Form | None = CONTENT_TYPE_FORMS.get(head.media_type)
    notes: list[str] = []
    s.existing_digest = head.digest
    if not s.hub or s.opts.read_only:
        manifest = s.client.get_manifest(ref.with_digest(head.digest))
        found = find_cache_config(manifest)
        if found is None:
            return Result(
                "config-error",
                f"{ref} is not a BuildKit cache ({manifest.media_type}): the export would overwrite it",
                observed=observed,
            )
        form = form_of(manifest)
        s.existing_digest = manifest.digest
        observed.update(digest=str(manifest.digest), size=manifest.size, layers=len(found[1]))
        if s.opts.read_only:
            config, layers = found
            config_stat = s.client.head_blob(s.repo, config.digest)
            checked = [s.client.head_blob(s.repo, d.digest) for d in layers[:3]]
            missing = [stat.digest.short for stat in [config_stat, *checked] if not stat.exists]
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
    s.existing_form = form
    observed["form"] = form
    name = FORM_NAMES[form] if form else head.media_type or "unknown type"
    extra = f"; {'; '.join(notes)}" if notes else ""
    return Result(
        "supported",
        f"{ref} is a cache in the {name} form ({head.size or '?'} bytes){extra}",
        observed=observed,
    )


def token_scopes(s: ProbeSession) -> Result:
    """The actions the Bearer tokens grant (no request): a missing one explains a later refusal."""
    granted = s.client.granted_actions(s.repo)
    if granted is None:
        return Result(
            "skipped",
            "no decodable Bearer token for the repository (Basic, anonymous or opaque tokens): the "
            "requests above prove the rights",
        )
    needed = {"pull"} if s.opts.read_only else {"pull", "push"}
    if s.opts.delete:
        needed.add("delete")
    missing = sorted(needed - set(granted))
    observed = {"granted": ",".join(granted)}
    if missing:
        return Result(
            "denied",
            f"the token grants {','.join(granted) or 'nothing'} on {s.repo.path}; missing {','.join(missing)}",
            observed=observed,
        )
    return Result("supported", f"the token grants {','.join(granted)} on {s.repo.path}", observed=observed)
